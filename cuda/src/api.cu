// The C API of lenet5_gpu.h: the exported entry points.  Each checks its arguments, makes the
// handle's device current and calls the part that does the work (handle.h lists them).  Every
// CUDA call is checked; failures return a status and leave a message for lenet5_gpu_last_error().
// Nothing here exits or aborts.
#include <cstdio>
#include <new>

#include "handle.h"

#define LENET5_API extern "C" __attribute__((visibility("default")))

using lenet5::kImageBytes;
using lenet5::kNumClasses;
using lenet5::kNumLayers;
using lenet5::NetIO;
using lenet5::api::alloc_pinned;
using lenet5::api::check_mode;
using lenet5::api::cuda_status;
using lenet5::api::DeviceScope;
using lenet5::api::fail;
using lenet5::api::free_pinned;
using lenet5::api::host_pipeline;
using lenet5::api::infer_host;
using lenet5::api::kLayers;
using lenet5::api::kResidentMaxIdleUs;
using lenet5::api::last_message;
using lenet5::api::LayerDesc;
using lenet5::api::load_fixed;
using lenet5::api::load_float;
using lenet5::api::load_half;
using lenet5::api::load_limbs;
using lenet5::api::logit_bytes;
using lenet5::api::open_host_path;
using lenet5::api::open_resident;
using lenet5::api::pinned_bytes;
using lenet5::api::release;
using lenet5::api::resident_stop;
using lenet5::api::run;
using lenet5::api::set_host_pipeline;
using lenet5::api::time_copy;

LENET5_API int lenet5_gpu_num_layers(void) { return kNumLayers; }
LENET5_API int lenet5_gpu_num_classes(void) { return kNumClasses; }
LENET5_API int lenet5_gpu_image_bytes(void) { return kImageBytes; }

LENET5_API int lenet5_gpu_layer_info(int index, lenet5_layer_info* info) {
    if (index < 0 || index >= kNumLayers || info == nullptr)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "layer index %d outside 0..%d (or info is NULL)", index,
                    kNumLayers - 1);
    const LayerDesc& d = kLayers[index];
    info->name = d.name;
    info->is_conv = d.is_conv;
    info->relu = d.relu;
    info->fan_in = d.fan_in;
    info->outputs = d.outputs;
    info->kernel_count = d.kernel_count;
    info->bias_count = d.bias_count;
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_device_count(int* count) {
    if (count == nullptr) return fail(LENET5_ERR_INVALID_ARGUMENT, "count is NULL");
    *count = 0;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0))
        return fail(LENET5_ERR_NO_DEVICE, "no CUDA-capable GPU found (%s)", cudaGetErrorString(e));
    if (e != cudaSuccess) {
        const int status = cuda_status(e);
        int runtime = 0;
        cudaRuntimeGetVersion(&runtime);
        return fail(status == LENET5_ERR_CUDA ? LENET5_ERR_NO_DRIVER : status,
                    "cudaGetDeviceCount: %s (%s); the library needs an NVIDIA driver for CUDA %d.%d or newer",
                    cudaGetErrorString(e), cudaGetErrorName(e), runtime / 1000, (runtime % 1000) / 10);
    }
    *count = n;
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_create(int device, const lenet5_layer_params* layers, int num_layers, lenet5_gpu** handle) {
    if (handle == nullptr) return fail(LENET5_ERR_INVALID_ARGUMENT, "handle is NULL");
    *handle = nullptr;
    if (layers == nullptr || num_layers != kNumLayers)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "expected %d layers, got %d", kNumLayers, layers ? num_layers : 0);
    int float_set = 0, fixed_set = 0;
    for (int i = 0; i < kNumLayers; ++i) {
        float_set += (layers[i].kernel != nullptr) + (layers[i].bias != nullptr);
        fixed_set += (layers[i].kernel_raw != nullptr) + (layers[i].bias_raw != nullptr);
    }
    if ((float_set != 0 && float_set != 2 * kNumLayers) || (fixed_set != 0 && fixed_set != 2 * kNumLayers))
        return fail(LENET5_ERR_INVALID_ARGUMENT, "give every layer's kernel and bias for a mode, or none");
    if (float_set == 0 && fixed_set == 0) return fail(LENET5_ERR_INVALID_ARGUMENT, "no weights given");
    int count = 0;
    int status = lenet5_gpu_device_count(&count);
    if (status) return status;
    if (device < 0 || device >= count)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "device %d outside 0..%d", device, count - 1);

    lenet5_gpu* h = new (std::nothrow) lenet5_gpu;
    if (h == nullptr) return fail(LENET5_ERR_OUT_OF_MEMORY, "host allocation of the handle failed");
    h->device = device;
    DeviceScope scope;
    auto setup = [&]() -> int {
        int s = scope.enter(device);
        if (s) return s;
        cudaDeviceProp prop;
        CUDA_TRY(cudaGetDeviceProperties(&prop, device));
        std::snprintf(h->name, sizeof h->name, "%s", prop.name);
        h->sms = prop.multiProcessorCount;
        h->cc_major = prop.major;
        h->cc_minor = prop.minor;
        if ((s = open_host_path(h))) return s;
        if ((s = open_resident(h))) return s;
        if (float_set && ((s = load_float(h, layers)) || (s = load_half(h, layers)))) return s;
        if (fixed_set && ((s = load_fixed(h, layers)) || (s = load_limbs(h, layers)))) return s;
        return LENET5_OK;
    };
    status = setup();
    if (status) {
        release(h);
        delete h;
        return status;
    }
    *handle = h;
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_destroy(lenet5_gpu* handle) {
    if (handle == nullptr) return LENET5_OK;
    DeviceScope scope;
    scope.enter(handle->device);  // best effort: the handle is freed regardless
    resident_stop(handle);
    // Kernels queued by lenet5_gpu_infer_device on the caller's streams read the weights.
    cudaDeviceSynchronize();
    release(handle);
    delete handle;
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_device_name(const lenet5_gpu* handle, char* name, size_t size) {
    if (handle == nullptr || name == nullptr || size == 0)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "handle or name is NULL, or size is 0");
    std::snprintf(name, size, "%s", handle->name);
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_set_variant(lenet5_gpu* handle, int variant) {
    if (handle == nullptr) return fail(LENET5_ERR_INVALID_ARGUMENT, "handle is NULL");
    if (variant < LENET5_VARIANT_AUTO || variant > LENET5_VARIANT_TENSOR)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "unknown variant %d", variant);
    handle->variant = variant;
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_set_resident(lenet5_gpu* handle, int64_t idle_us) {
    if (handle == nullptr) return fail(LENET5_ERR_INVALID_ARGUMENT, "handle is NULL");
    if (idle_us < 0 || idle_us > kResidentMaxIdleUs)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "idle_us %lld outside 0..%lld", static_cast<long long>(idle_us),
                    static_cast<long long>(kResidentMaxIdleUs));
    DeviceScope scope;
    int status = scope.enter(handle->device);
    if (status) return status;
    if ((status = resident_stop(handle))) return status;  // a new kernel takes the new idle time
    handle->resident_idle_us = idle_us;
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_resident_stats(const lenet5_gpu* handle, int64_t* calls, int64_t* launches, double* gpu_us) {
    if (handle == nullptr || calls == nullptr || launches == nullptr || gpu_us == nullptr)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "handle, calls, launches or gpu_us is NULL");
    *calls = handle->resident_calls;
    *launches = handle->resident_launches;
    *gpu_us = handle->resident_timed ? 1e-3 * double(handle->resident_gpu_ns) / double(handle->resident_timed) : 0.0;
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_infer_host(lenet5_gpu* handle, int mode, const uint8_t* images, int64_t n, int32_t* classes,
                                     void* logits) {
    if (handle == nullptr) return fail(LENET5_ERR_INVALID_ARGUMENT, "handle is NULL");
    int status = check_mode(handle, mode);
    if (status) return status;
    if (n < 0 || (n > 0 && images == nullptr)) return fail(LENET5_ERR_INVALID_ARGUMENT, "n < 0 or images is NULL");
    if (n == 0) return LENET5_OK;
    DeviceScope scope;
    if ((status = scope.enter(handle->device))) return status;
    return infer_host(handle, mode, images, n, classes, logits);
}

LENET5_API int lenet5_gpu_set_host_pipeline(lenet5_gpu* handle, int threads, int64_t chunk) {
    if (handle == nullptr) return fail(LENET5_ERR_INVALID_ARGUMENT, "handle is NULL");
    DeviceScope scope;
    const int status = scope.enter(handle->device);  // the old pipeline's buffers are freed
    if (status) return status;
    return set_host_pipeline(handle, threads, chunk);
}

LENET5_API int lenet5_gpu_host_pipeline(const lenet5_gpu* handle, int* threads, int64_t* chunk) {
    if (handle == nullptr || threads == nullptr || chunk == nullptr)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "handle, threads or chunk is NULL");
    host_pipeline(handle, threads, chunk);
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_alloc_host(lenet5_gpu* handle, size_t bytes, void** ptr) {
    if (handle == nullptr || ptr == nullptr || bytes == 0)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "handle or ptr is NULL, or bytes is 0");
    *ptr = nullptr;
    return alloc_pinned(handle->device, bytes, ptr);
}

LENET5_API int lenet5_gpu_free_host(void* ptr) {
    if (ptr == nullptr) return LENET5_OK;
    return free_pinned(ptr);
}

LENET5_API int lenet5_gpu_host_bytes(int64_t* bytes) {
    if (bytes == nullptr) return fail(LENET5_ERR_INVALID_ARGUMENT, "bytes is NULL");
    *bytes = pinned_bytes();
    return LENET5_OK;
}

LENET5_API int lenet5_gpu_time_copy(lenet5_gpu* handle, const void* host, int64_t bytes, int repeats, double* seconds) {
    if (handle == nullptr || host == nullptr || seconds == nullptr || bytes < 1 || repeats < 1)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "handle, host or seconds is NULL, or bytes or repeats < 1");
    DeviceScope scope;
    int status = scope.enter(handle->device);
    if (status) return status;
    if ((status = resident_stop(handle))) return status;
    return time_copy(host, bytes, repeats, seconds);
}

LENET5_API int lenet5_gpu_infer_device(lenet5_gpu* handle, int mode, const uint8_t* images, int64_t n, int32_t* classes,
                                       void* logits, void* stream) {
    if (handle == nullptr) return fail(LENET5_ERR_INVALID_ARGUMENT, "handle is NULL");
    int status = check_mode(handle, mode);
    if (status) return status;
    if (n < 0 || (n > 0 && images == nullptr)) return fail(LENET5_ERR_INVALID_ARGUMENT, "n < 0 or images is NULL");
    if (n == 0) return LENET5_OK;
    DeviceScope scope;
    if ((status = scope.enter(handle->device))) return status;
    if ((status = resident_stop(handle))) return status;
    const NetIO io{images, n, classes, logits};
    return run(handle, mode, io, stream ? static_cast<cudaStream_t>(stream) : handle->stream);
}

LENET5_API int lenet5_gpu_time_device(lenet5_gpu* handle, int mode, const uint8_t* images, int64_t sets, int64_t batch,
                                      int calls, int warmup, int repeats, float* ms_per_call) {
    if (handle == nullptr || images == nullptr || ms_per_call == nullptr)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "handle, images or ms_per_call is NULL");
    if (sets < 1 || batch < 1 || calls < 1 || warmup < 0 || repeats < 1)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "sets, batch, calls, repeats must be >= 1 and warmup >= 0");
    int status = check_mode(handle, mode);
    if (status) return status;
    DeviceScope scope;
    if ((status = scope.enter(handle->device))) return status;
    if ((status = resident_stop(handle))) return status;
    uint8_t* d_images = nullptr;
    int32_t* d_classes = nullptr;
    void* d_logits = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    auto body = [&]() -> int {
        CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&d_images), size_t(sets) * batch * kImageBytes));
        CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&d_classes), size_t(batch) * sizeof(int32_t)));
        CUDA_TRY(cudaMalloc(&d_logits, size_t(batch) * kNumClasses * logit_bytes(mode)));
        CUDA_TRY(cudaMemcpy(d_images, images, size_t(sets) * batch * kImageBytes, cudaMemcpyHostToDevice));
        CUDA_TRY(cudaEventCreate(&start));
        CUDA_TRY(cudaEventCreate(&stop));
        int64_t k = 0;
        auto one = [&]() -> int {
            const NetIO io{d_images + (k++ % sets) * batch * kImageBytes, batch, d_classes, d_logits};
            return run(handle, mode, io, handle->stream);
        };
        int s = LENET5_OK;
        for (int i = 0; i < warmup; ++i)
            if ((s = one())) return s;
        CUDA_TRY(cudaStreamSynchronize(handle->stream));
        for (int r = 0; r < repeats; ++r) {
            CUDA_TRY(cudaEventRecord(start, handle->stream));
            for (int c = 0; c < calls; ++c)
                if ((s = one())) return s;
            CUDA_TRY(cudaEventRecord(stop, handle->stream));
            CUDA_TRY(cudaEventSynchronize(stop));
            float ms = 0;
            CUDA_TRY(cudaEventElapsedTime(&ms, start, stop));
            ms_per_call[r] = ms / calls;
        }
        return LENET5_OK;
    };
    status = body();
    if (status) cudaStreamSynchronize(handle->stream);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (d_images) cudaFree(d_images);
    if (d_classes) cudaFree(d_classes);
    if (d_logits) cudaFree(d_logits);
    return status;
}

LENET5_API const char* lenet5_gpu_status_string(int status) {
    switch (status) {
        case LENET5_OK: return "ok";
        case LENET5_ERR_INVALID_ARGUMENT: return "invalid argument";
        case LENET5_ERR_NO_DRIVER: return "no NVIDIA driver";
        case LENET5_ERR_NO_DEVICE: return "no CUDA device";
        case LENET5_ERR_CUDA: return "CUDA error";
        case LENET5_ERR_OUT_OF_MEMORY: return "out of memory";
        case LENET5_ERR_UNSUPPORTED: return "unsupported";
        case LENET5_ERR_MODE_NOT_LOADED: return "mode not loaded";
        default: return "unknown status";
    }
}

LENET5_API const char* lenet5_gpu_last_error(void) { return last_message(); }
