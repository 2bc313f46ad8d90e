// The handle behind the C API's lenet5_gpu* and what the C API's files share: status messages,
// the device scope, one launch of the fused kernel, and each part's functions.  Internal: only
// api.cu exports anything (the library is built with -fvisibility=hidden).
//
//   handle.cu     status messages, the launch (variant by batch size), the handle's teardown
//   weights.cu    weights upload (float and fixed mode) and the kernels' launch tables
//   tensor_weights.cu  the tensor kernel's packed weights (half mode; fixed mode's limbs)
//   host_path.cu  host memory in and out: mapped buffers for small batches, the pipeline for
//                 large ones, page-locked allocations
//   resident.cu   the resident kernel's host side (mailbox, spin, deadline)
//   api.cu        the exported entry points: argument checks, then one of the above
#pragma once

#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "launch.h"
#include "lenet5_gpu.h"
#include "tensor_arith.cuh"
#include "tensor_layout.cuh"

namespace lenet5::api {

// Images up to which the host path reads and writes mapped pinned memory directly (one launch,
// no copies); the resident path uses the same buffers.
constexpr int64_t kSmallBatch = 256;
// Resident path (lenet5_gpu_set_resident): the idle time before the kernel ends, by default and at most.
constexpr int64_t kResidentDefaultIdleUs = 1000;
constexpr int64_t kResidentMaxIdleUs = 10000000;

struct HostPipeline;  // host_path.cu: the large batches' threads, streams and staging

}  // namespace lenet5::api

struct lenet5_gpu {
    int device = 0;
    char name[256] = "";
    int sms = 0;
    int cc_major = 0, cc_minor = 0;  // compute capability
    cudaStream_t stream = nullptr;
    // weights.cu
    bool loaded[3] = {false, false, false};  // by mode
    void* weights[2] = {nullptr, nullptr};
    lenet5::NetParams<lenet5::FloatMode> float_params{};
    lenet5::NetParams<lenet5::FixedMode> fixed_params{};
    void* weights_f = nullptr;  // fixed mode's weights as float32 (the latency variant's copy)
    lenet5::LaunchInfo launch_info[2][lenet5::kNumVariants]{};
    int variant = LENET5_VARIANT_AUTO;
    // tensor_weights.cu: the tensor kernel's weights, half mode and fixed mode (limbs)
    void* tensor_weights[2] = {nullptr, nullptr};
    lenet5::TensorParams<lenet5::HalfArith> half_params{};
    lenet5::TensorParams<lenet5::LimbArith> limb_params{};
    lenet5::LaunchInfo tensor_info[2]{};
    bool limb_loaded = false;
    char tensor_missing[2][200] = {"", ""};  // why a tensor kernel is not loaded (half, limbs)
    // host_path.cu: small batches, mapped pinned buffers the kernel reads and writes directly
    // (the resident path's too)
    uint8_t* small_in = nullptr;
    int32_t* small_classes = nullptr;
    unsigned char* small_logits = nullptr;
    uint8_t* small_in_dev = nullptr;
    int32_t* small_classes_dev = nullptr;
    unsigned char* small_logits_dev = nullptr;
    // host_path.cu: large batches (lenet5_gpu_set_host_pipeline; 0: the defaults)
    int host_threads = 0;
    int64_t host_chunk = 0;
    lenet5::api::HostPipeline* pipeline = nullptr;  // made at the first large batch
    // resident.cu: the mailbox (mapped) and the kernel's device state
    int64_t resident_idle_us = lenet5::api::kResidentDefaultIdleUs;  // 0: off
    bool resident_running = false;  // launched, and not seen ending
    bool resident_broken = false;   // gave up on it after a failure: launch per call
    int resident_mode = 0;
    unsigned int resident_seq = 0;  // the last sequence number posted
    unsigned int resident_gen = 0;  // launches so far (mod 2**24 in the kernel)
    int64_t resident_calls = 0, resident_launches = 0;
    int64_t resident_timed = 0;
    unsigned long long resident_gpu_ns = 0;  // GPU clock from seeing a command to answering it
    lenet5::ResidentMailbox* mailbox = nullptr;
    lenet5::ResidentMailbox* mailbox_dev = nullptr;
    lenet5::ResidentState* resident_state = nullptr;
};

namespace lenet5::api {

// ---------------------------------------------------------------- handle.cu

// Leaves a message for lenet5_gpu_last_error() (per thread) and returns `status`.
int fail(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// The message fail() left last in the calling thread.
const char* last_message();
int cuda_status(cudaError_t e);
int cuda_fail(cudaError_t e, const char* what);

#define CUDA_TRY(call)                                                         \
    do {                                                                       \
        const cudaError_t err_ = (call);                                       \
        if (err_ != cudaSuccess) return ::lenet5::api::cuda_fail(err_, #call); \
    } while (0)

// Makes the handle's device current for one API call and restores the caller's on return.
class DeviceScope {
   public:
    int enter(int device) {
        CUDA_TRY(cudaGetDevice(&previous_));
        if (previous_ != device) {
            CUDA_TRY(cudaSetDevice(device));
            restore_ = true;
        }
        return LENET5_OK;
    }
    ~DeviceScope() {
        if (restore_) cudaSetDevice(previous_);
    }

   private:
    int previous_ = -1;
    bool restore_ = false;
};

inline size_t logit_bytes(int mode) { return mode == LENET5_MODE_FIXED ? sizeof(int16_t) : sizeof(float); }

int check_mode(const lenet5_gpu* h, int mode);
// One launch over n images (device or mapped pointers), asynchronous on `stream`.
int run(lenet5_gpu* h, int mode, const NetIO& io, cudaStream_t stream);
// Frees what every part allocated (best effort: the handle is going away).
void release(lenet5_gpu* h);

// ---------------------------------------------------------------- weights.cu

// A layer's sizes as the weights' upload needs them (lenet5_gpu_layer_info reports them).
struct LayerDesc {
    const char* name;
    int is_conv, relu, fan_in, outputs;
    int64_t kernel_count, bias_count;
};
extern const LayerDesc kLayers[kNumLayers];

// Copies a blob of weights to new device memory (`*dev`); the blob grows by 16 zero bytes, which
// 16-byte prefetches of a piece's last elements may read.
int to_device(std::vector<unsigned char>& blob, void** dev);

int load_float(lenet5_gpu* h, const lenet5_layer_params* layers);
int load_fixed(lenet5_gpu* h, const lenet5_layer_params* layers);
void release_weights(lenet5_gpu* h);

// ---------------------------------------------------------------- tensor_weights.cu

// The tensor kernel's weights from the float weights (half mode) or the raw integers (limbs,
// after load_fixed).  A card or weights the kernel cannot serve leave the mode unloaded, with the
// reason in h->tensor_missing; only CUDA errors fail.
int load_half(lenet5_gpu* h, const lenet5_layer_params* layers);
int load_limbs(lenet5_gpu* h, const lenet5_layer_params* layers);
void release_tensor_weights(lenet5_gpu* h);

// ---------------------------------------------------------------- host_path.cu

int open_host_path(lenet5_gpu* h);  // the stream and the mapped buffers, at creation
// Host memory in and out: the resident path, the mapped buffers or the pipeline by batch size.
int infer_host(lenet5_gpu* h, int mode, const uint8_t* images, int64_t n, int32_t* classes, void* logits);
// lenet5_gpu_set_host_pipeline / lenet5_gpu_host_pipeline (0: the default).
int set_host_pipeline(lenet5_gpu* h, int threads, int64_t chunk);
void host_pipeline(const lenet5_gpu* h, int* threads, int64_t* chunk);
// Page-locked host memory (lenet5_gpu_alloc_host, lenet5_gpu_free_host, lenet5_gpu_host_bytes).
int alloc_pinned(int device, size_t bytes, void** ptr);
int free_pinned(void* ptr);
int64_t pinned_bytes();
// Seconds of each of `repeats` synchronous copies of `bytes` from `host` to device memory.
int time_copy(const void* host, int64_t bytes, int repeats, double* seconds);
void release_host_path(lenet5_gpu* h);

// ---------------------------------------------------------------- resident.cu

int open_resident(lenet5_gpu* h);  // the mailbox and the kernel's state, at creation
bool resident_usable(const lenet5_gpu* h, int64_t n);
int infer_resident(lenet5_gpu* h, int mode, const uint8_t* images, int64_t n, int32_t* classes, void* logits);
// Ends the resident kernel, if one runs, and waits for it (the handle's stream is then free).
int resident_stop(lenet5_gpu* h);
void release_resident(lenet5_gpu* h);

}  // namespace lenet5::api
