// Launchers of the tensor kernel (tensor_kernel.cuh) for each arithmetic.
#include "launch.h"
#include "tensor_kernel.cuh"

namespace lenet5 {
namespace {

constexpr int kTensorWarps = 8;  // warps a block: 16 images' tiles shared by 8 warps

template <class A>
constexpr auto tensor_kernel = tensor_network_kernel<A, kTensorWarps>;

}  // namespace

template <class A>
cudaError_t prepare_tensor(LaunchInfo* info) {
    using T = TensorLayout<A>;
    *info = LaunchInfo{kTensorWarps * 32, T::kImages, T::kSmemBytes, 0, 0};
    int device = 0, major = 0;
    cudaError_t e = cudaGetDevice(&device);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    if (e != cudaSuccess || major < 8) return e;  // no tensor kernel before sm_80: occupancy 0
    return prepare_launch(tensor_kernel<A>, kTensorWarps * 32, T::kImages, T::kSmemBytes, info);
}

template <class A>
cudaError_t launch_tensor(const TensorParams<A>& p, const NetIO& io, int grid, cudaStream_t stream) {
    tensor_kernel<A><<<grid, kTensorWarps * 32, TensorLayout<A>::kSmemBytes, stream>>>(p, io);
    return cudaGetLastError();
}

template cudaError_t prepare_tensor<HalfArith>(LaunchInfo*);
template cudaError_t prepare_tensor<LimbArith>(LaunchInfo*);
template cudaError_t launch_tensor<HalfArith>(const TensorParams<HalfArith>&, const NetIO&, int, cudaStream_t);
template cudaError_t launch_tensor<LimbArith>(const TensorParams<LimbArith>&, const NetIO&, int, cudaStream_t);

}  // namespace lenet5
