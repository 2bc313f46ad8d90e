// Launchers of the fused kernel (network_kernel.cuh) for each mode and variant.
#include "launch.h"
#include "network_kernel.cuh"

namespace lenet5 {
namespace {

// A variant's launch shape, field by field (Config's parameters, network_kernel.cuh, by name).
struct Shape {
    int block;             // threads per block
    int team;              // threads sharing images_per_team images: a warp (32) or the block
    int images_per_team;
    int conv1_channels;    // output channels a thread computes per conv1 work item
    int conv2_channels;    // ... per conv2 work item
    int dense_images;      // images a thread computes per dense work item
    int dense_outputs;     // outputs per dense work item (at most)
    int partial_sums;      // independent partial sums per dense output
    int min_blocks;        // blocks per SM the compiler must fit (register budget)
    bool all_weights_smem; // every weight in shared memory as float32 (latency)
    int conv2_split;       // 0, or conv2 split over this many input-channel groups (one image a block)
    bool dense_weights_smem;
};

// Throughput: a warp per 2 images, 4 warps a block.
constexpr Shape kWarp = {128, 32, 2, 6, 8, 2, 4, 1, 1, false, 0, false};
// 8 warps sharing the conv weights, at most 128 registers: 16 warps per SM instead of 8.
constexpr Shape kWarpSmall = {256, 32, 2, 6, 4, 2, 4, 1, 2, false, 0, false};
// Latency: a block of 1024 threads per image; conv2 split over its 6 input channels and the dense
// layers over k, so every stage has short paths; dense weights read from L2.
// Both modes keep the conv weights in shared memory as float32 (exact for the fixed mode's 16-bit
// integers; its sums stay float64): one fixed-mode image 15.9-16.1 us on an H200 instead of 18.2.
constexpr Shape kBlockPerImage = {1024, 1024, 1, 2, 2, 1, 2, 1, 1, true, 6, false};

// The Config of a mode, a shape and the activations' type in shared memory.
template <class M, const Shape& S, class ActT>
using ConfigOf =
    Config<M, S.block, S.team, S.images_per_team, S.conv1_channels, S.conv2_channels, S.dense_images, S.dense_outputs,
           S.partial_sums, S.min_blocks, ActT, S.all_weights_smem, S.conv2_split, S.dense_weights_smem>;

template <class M> struct Variants;

template <> struct Variants<FloatMode> {
    using Warp = ConfigOf<FloatMode, kWarp, float>;
    using WarpSmall = Warp;  // float activations already
    using Block = ConfigOf<FloatMode, kBlockPerImage, float>;
};

template <> struct Variants<FixedMode> {
    using Warp = ConfigOf<FixedMode, kWarp, double>;
    using WarpSmall = ConfigOf<FixedMode, kWarpSmall, float>;  // float activations: exact for 16-bit integers
    using Block = ConfigOf<FixedMode, kBlockPerImage, float>;  // float activations: exact for 16-bit integers
};

template <class C, class K>
cudaError_t prepare_kernel(K kernel, LaunchInfo* info) {
    return prepare_launch(kernel, C::kBlock, C::kTeamsPerBlock * C::kImagesPerTeam, C::kSmemBytes, info);
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
