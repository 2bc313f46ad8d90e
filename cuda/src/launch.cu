// Launchers of the fused kernel (network_kernel.cuh) for each mode and variant.
#include "launch.h"
#include "network_kernel.cuh"

namespace lenet5 {
namespace {

// Variants, per mode.  Config<mode, block, team, images per team, conv1 channels per item,
// conv2 channels per item, dense images per item, dense outputs per item, partial sums,
// min blocks per SM, activation type, all weights in shared memory, conv2 input-channel split>
template <class M> struct Variants;

template <> struct Variants<FloatMode> {
    // Throughput: a warp per 2 images, 4 warps a block.
    using Warp = Config<FloatMode, 128, 32, 2, 6, 8, 2, 4, 1, 1, float, false>;
    using WarpSmall = Warp;  // float activations already
    // Latency: a block of 1024 threads per image, conv weights in shared memory (float32), dense
    // weights read from L2; conv2 split over its 6 input channels and the dense layers over
    // k, so every stage has short paths.
    using Block = Config<FloatMode, 1024, 1024, 1, 2, 2, 1, 2, 1, 1, float, true, 6, false>;
};

template <> struct Variants<FixedMode> {
    using Warp = Config<FixedMode, 128, 32, 2, 6, 8, 2, 4, 1, 1, double, false>;
    // Activations as float (exact: 16-bit integers), 8 warps sharing the conv weights, at most
    // 128 registers: 16 warps per SM instead of 8.
    using WarpSmall = Config<FixedMode, 256, 32, 2, 6, 4, 2, 4, 1, 2, float, false>;
    // Latency: as for float, but the weights stay float64 (no conversions on the critical path).
    using Block = Config<FixedMode, 1024, 1024, 1, 2, 2, 1, 2, 1, 1, double, false, 6, false>;
};

template <class C, class K>
cudaError_t prepare_kernel(K kernel, LaunchInfo* info) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes);
    if (e != cudaSuccess) return e;
    cudaFuncAttributes attr;
    e = cudaFuncGetAttributes(&attr, kernel);
    if (e != cudaSuccess) return e;
    int blocks = 0;
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, C::kBlock, C::kSmemBytes);
    if (e != cudaSuccess) return e;
    info->block = C::kBlock;
    info->images_per_block = C::kTeamsPerBlock * C::kImagesPerTeam;
    info->smem_bytes = C::kSmemBytes;
    info->max_blocks_per_sm = blocks;
    info->registers = attr.numRegs;
    return cudaSuccess;
}

template <class C>
cudaError_t prepare_config(LaunchInfo* info) {
    return prepare_kernel<C>(fused_network_kernel<C>, info);
}

template <class C>
cudaError_t launch_config(const NetParams<typename C::mode>& p, const NetIO& io, int grid, cudaStream_t stream) {
    fused_network_kernel<C><<<grid, C::kBlock, C::kSmemBytes, stream>>>(p, io);
    return cudaGetLastError();
}

}  // namespace

template <class M>
cudaError_t prepare(Variant v, LaunchInfo* info) {
    switch (v) {
        case kVariantWarp: return prepare_config<typename Variants<M>::Warp>(info);
        case kVariantWarpSmall: return prepare_config<typename Variants<M>::WarpSmall>(info);
        case kVariantBlock: return prepare_config<typename Variants<M>::Block>(info);
        default: return cudaErrorInvalidValue;
    }
}

template <class M>
cudaError_t launch(Variant v, const NetParams<M>& p, const NetIO& io, int grid, cudaStream_t stream) {
    switch (v) {
        case kVariantWarp: return launch_config<typename Variants<M>::Warp>(p, io, grid, stream);
        case kVariantWarpSmall: return launch_config<typename Variants<M>::WarpSmall>(p, io, grid, stream);
        case kVariantBlock: return launch_config<typename Variants<M>::Block>(p, io, grid, stream);
        default: return cudaErrorInvalidValue;
    }
}

template <class M>
cudaError_t prepare_resident(LaunchInfo* info) {
    using C = typename Variants<M>::Block;
    return prepare_kernel<C>(resident_network_kernel<C>, info);
}

template <class M>
cudaError_t launch_resident(const NetParams<M>& p, const ResidentIO& io, int grid, cudaStream_t stream) {
    using C = typename Variants<M>::Block;
    resident_network_kernel<C><<<grid, C::kBlock, C::kSmemBytes, stream>>>(p, io);
    return cudaGetLastError();
}

template cudaError_t prepare<FloatMode>(Variant, LaunchInfo*);
template cudaError_t prepare<FixedMode>(Variant, LaunchInfo*);
template cudaError_t launch<FloatMode>(Variant, const NetParams<FloatMode>&, const NetIO&, int, cudaStream_t);
template cudaError_t launch<FixedMode>(Variant, const NetParams<FixedMode>&, const NetIO&, int, cudaStream_t);
template cudaError_t prepare_resident<FloatMode>(LaunchInfo*);
template cudaError_t prepare_resident<FixedMode>(LaunchInfo*);
template cudaError_t launch_resident<FloatMode>(const NetParams<FloatMode>&, const ResidentIO&, int, cudaStream_t);
template cudaError_t launch_resident<FixedMode>(const NetParams<FixedMode>&, const ResidentIO&, int, cudaStream_t);

}  // namespace lenet5
