// Launchers of the fused kernel: one per (mode, variant).  Host code; the C API calls these.
#pragma once

#include <cuda_runtime.h>

#include "lenet5_gpu.h"
#include "network_types.cuh"
#include "tensor_arith.cuh"
#include "tensor_layout.cuh"

namespace lenet5 {

// Values of lenet5_variant, less one (AUTO is resolved by the caller): indices from 0.
enum Variant : int {
    kVariantWarp = LENET5_VARIANT_WARP - 1,
    kVariantBlock = LENET5_VARIANT_BLOCK - 1,
    kVariantWarpSmall = LENET5_VARIANT_WARP_SMALL - 1,
    kNumVariants = LENET5_VARIANT_WARP_SMALL
};
static_assert(LENET5_VARIANT_AUTO == 0 && kVariantWarp >= 0 && kVariantBlock >= 0 && kVariantWarpSmall >= 0,
              "the variants after AUTO index the launch tables");

struct LaunchInfo {
    int block;               // threads per block
    int images_per_block;    // images a block takes per pass
    int smem_bytes;          // dynamic shared memory per block
    int max_blocks_per_sm;   // occupancy (0: cannot run on this device)
    int registers;           // per thread
};

// Raises the kernel's shared-memory limit and reads its occupancy on the current device.
// Must be called (once per device) before launch().
template <class M>
cudaError_t prepare(Variant v, LaunchInfo* info);

// Launches on `stream` with `grid` blocks; returns the launch's error.
template <class M>
cudaError_t launch(Variant v, const NetParams<M>& p, const NetIO& io, int grid, cudaStream_t stream);

// The resident latency kernel (one image per block, the block variant's configuration).
template <class M>
cudaError_t prepare_resident(LaunchInfo* info);
template <class M>
cudaError_t launch_resident(const NetParams<M>& p, const ResidentIO& io, int grid, cudaStream_t stream);

// Raises `kernel`'s dynamic shared-memory limit to `smem_bytes` and fills `info` with its launch
// shape and its occupancy on the current device (both launch files).
template <class K>
cudaError_t prepare_launch(K kernel, int block, int images_per_block, int smem_bytes, LaunchInfo* info) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
    if (e != cudaSuccess) return e;
    cudaFuncAttributes attr;
    if ((e = cudaFuncGetAttributes(&attr, kernel)) != cudaSuccess) return e;
    int blocks = 0;
    if ((e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, block, smem_bytes)) != cudaSuccess)
        return e;
    *info = LaunchInfo{block, images_per_block, smem_bytes, blocks, attr.numRegs};
    return cudaSuccess;
}

// The tensor kernel (tensor_kernel.cuh) for HalfArith or LimbArith; launch_tensor.cu.  Cards
// before compute capability 8.0 have no such kernel: prepare_tensor reports no occupancy there.
template <class A>
cudaError_t prepare_tensor(LaunchInfo* info);
template <class A>
cudaError_t launch_tensor(const TensorParams<A>& p, const NetIO& io, int grid, cudaStream_t stream);

}  // namespace lenet5
