// What the C API's files share (handle.h): status messages, the launch of the fused kernel with
// its variant chosen by batch size, and the handle's teardown.
#include <cstdarg>
#include <cstdio>

#include "handle.h"

namespace lenet5::api {

namespace {

thread_local char g_message[1024] = "";

// Below this many images, AUTO uses the block-per-image variant (crossovers measured on an H100).
constexpr int64_t kBlockVariantBelow[2] = {512, 1024};  // float, fixed
// AUTO's variant for fixed mode at larger batches.
constexpr Variant kFixedThroughputVariant = kVariantWarpSmall;
// From this many images AUTO runs fixed mode on the tensor kernel, where it is loaded (H200: the
// block variant 18.7 us at 16 images and 128 us at 1,024; the tensor kernel 38-39 us for both).
constexpr int64_t kTensorFixedFrom = 512;

}  // namespace

int fail(int status, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(g_message, sizeof g_message, fmt, args);
    va_end(args);
    return status;
}

const char* last_message() { return g_message; }

int cuda_status(cudaError_t e) {
    switch (e) {
        case cudaErrorMemoryAllocation: return LENET5_ERR_OUT_OF_MEMORY;
        case cudaErrorNoDevice: return LENET5_ERR_NO_DEVICE;
        case cudaErrorInsufficientDriver:
        case cudaErrorStubLibrary:
        case cudaErrorCallRequiresNewerDriver: return LENET5_ERR_NO_DRIVER;
        case cudaErrorNoKernelImageForDevice:
        case cudaErrorUnsupportedPtxVersion:
        case cudaErrorInvalidPtx: return LENET5_ERR_UNSUPPORTED;
        default: return LENET5_ERR_CUDA;
    }
}

int cuda_fail(cudaError_t e, const char* what) {
    return fail(cuda_status(e), "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

int check_mode(const lenet5_gpu* h, int mode) {
    if (mode != LENET5_MODE_FLOAT && mode != LENET5_MODE_FIXED && mode != LENET5_MODE_HALF)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "mode %d is not LENET5_MODE_FLOAT, _FIXED or _HALF", mode);
    if (mode == LENET5_MODE_HALF && !h->loaded[mode] && h->loaded[LENET5_MODE_FLOAT])
        return fail(LENET5_ERR_MODE_NOT_LOADED, "half mode: %s", h->tensor_missing[0]);
    if (!h->loaded[mode])
        return fail(LENET5_ERR_MODE_NOT_LOADED, "the handle was created without %s weights",
                    mode == LENET5_MODE_FIXED ? "fixed-point" : "float");
    return LENET5_OK;
}

namespace {

// Blocks for n images: as many as the images need, at most as many as stay resident (the grids
// are persistent).
int grid_for(const lenet5_gpu* h, const LaunchInfo& info, int64_t n) {
    const int64_t blocks_needed = (n + info.images_per_block - 1) / info.images_per_block;
    const int64_t resident = int64_t(info.max_blocks_per_sm) * h->sms;
    return int(blocks_needed < resident ? blocks_needed : resident);
}

template <class A>
int run_tensor(const lenet5_gpu* h, const TensorParams<A>& params, const LaunchInfo& info, const NetIO& io,
               cudaStream_t stream) {
    const cudaError_t e = launch_tensor<A>(params, io, grid_for(h, info, io.n), stream);
    if (e != cudaSuccess) return cuda_fail(e, "tensor network kernel launch");
    return LENET5_OK;
}

}  // namespace

int run(lenet5_gpu* h, int mode, const NetIO& io, cudaStream_t stream) {
    if (io.n <= 0) return LENET5_OK;
    if (mode == LENET5_MODE_HALF) return run_tensor(h, h->half_params, h->tensor_info[0], io, stream);
    if (mode == LENET5_MODE_FIXED && h->variant == LENET5_VARIANT_TENSOR && !h->limb_loaded)
        return fail(LENET5_ERR_UNSUPPORTED, "tensor variant: %s", h->tensor_missing[1]);
    if (mode == LENET5_MODE_FIXED && h->limb_loaded &&
        (h->variant == LENET5_VARIANT_TENSOR || (h->variant == LENET5_VARIANT_AUTO && io.n >= kTensorFixedFrom)))
        return run_tensor(h, h->limb_params, h->tensor_info[1], io, stream);
    // A CUDA-core kernel.  TENSOR gets here only in float mode, which has no tensor variant: AUTO's choice.
    Variant v;
    if (h->variant != LENET5_VARIANT_AUTO && h->variant != LENET5_VARIANT_TENSOR) v = Variant(h->variant - 1);
    else if (io.n < kBlockVariantBelow[mode]) v = kVariantBlock;
    else v = mode == LENET5_MODE_FIXED ? kFixedThroughputVariant : kVariantWarp;
    const int grid = grid_for(h, h->launch_info[mode][v], io.n);
    const cudaError_t e = mode == LENET5_MODE_FLOAT ? launch<FloatMode>(v, h->float_params, io, grid, stream)
                                                    : launch<FixedMode>(v, h->fixed_params, io, grid, stream);
    if (e != cudaSuccess) return cuda_fail(e, "fused network kernel launch");
    return LENET5_OK;
}

void release(lenet5_gpu* h) {
    // Best effort: errors while tearing down are ignored (the handle is going away).
    if (h->stream) cudaStreamSynchronize(h->stream);
    release_weights(h);
    release_tensor_weights(h);
    release_resident(h);
    release_host_path(h);  // last: it destroys the stream
}

}  // namespace lenet5::api
