// The C API of lenet5_gpu.h: handle, weights upload, host and device inference, timing.
// Every CUDA call is checked; failures return a status and leave a message for
// lenet5_gpu_last_error().  Nothing here exits or aborts.
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <vector>

#include <cuda_runtime.h>

#include "launch.h"
#include "lenet5_gpu.h"

#define LENET5_API extern "C" __attribute__((visibility("default")))

using lenet5::FixedMode;
using lenet5::FloatMode;
using lenet5::kImageBytes;
using lenet5::kNumClasses;
using lenet5::kNumLayers;

namespace {

thread_local char g_message[1024] = "";

int fail(int status, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(g_message, sizeof g_message, fmt, args);
    va_end(args);
    return status;
}

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

#define CUDA_TRY(call)                                          \
    do {                                                        \
        const cudaError_t err_ = (call);                        \
        if (err_ != cudaSuccess) return cuda_fail(err_, #call); \
    } while (0)

struct LayerDesc {
    const char* name;
    int is_conv, relu, fan_in, outputs;
    int64_t kernel_count, bias_count;
};

template <class L>
LayerDesc describe() {
    return {L::name, L::is_conv ? 1 : 0, L::relu ? 1 : 0, L::fan_in, L::outputs, L::kernel_count, L::bias_count};
}

const LayerDesc kLayers[kNumLayers] = {describe<lenet5::L0>(), describe<lenet5::L1>(), describe<lenet5::L2>(),
                                       describe<lenet5::L3>(), describe<lenet5::L4>()};

// Images up to which the host path reads and writes mapped pinned memory directly (one launch,
// no copies); larger batches go through double-buffered pinned staging and async copies.
constexpr int64_t kSmallBatch = 256;
constexpr int64_t kChunk = 32768;
// Below this many images, AUTO uses the block-per-image variant (crossovers measured on an H100).
constexpr int64_t kBlockVariantBelow[2] = {512, 1024};  // float, fixed
// AUTO's variant for fixed mode at larger batches.
constexpr lenet5::Variant kFixedThroughputVariant = lenet5::kVariantWarpSmall;
// Resident path (lenet5_gpu_set_resident): host batches of 1 .. kResidentBlocks images under
// AUTO go to a kernel that stays on the GPU between calls, one block per image.
constexpr int kResidentBlocks = 8;
constexpr int64_t kResidentDefaultIdleUs = 1000;
constexpr int64_t kResidentMaxIdleUs = 10000000;
constexpr unsigned int kSeqMask = 0x7fffffffu;
// A resident kernel that does not answer within this many seconds is given up (the call fails
// and the handle goes back to a launch per call).
constexpr double kResidentDeadlineS = 5.0;

struct Slot {
    uint8_t* h_in = nullptr;
    int32_t* h_classes = nullptr;
    unsigned char* h_logits = nullptr;
    uint8_t* d_in = nullptr;
    int32_t* d_classes = nullptr;
    unsigned char* d_logits = nullptr;
    cudaEvent_t done = nullptr;
    int64_t offset = 0, count = 0;  // images in flight (count 0: none)
};

}  // namespace

struct lenet5_gpu {
    int device = 0;
    char name[256] = "";
    int sms = 0;
    cudaStream_t stream = nullptr;
    bool loaded[2] = {false, false};
    void* weights[2] = {nullptr, nullptr};
    lenet5::NetParams<FloatMode> float_params{};
    lenet5::NetParams<FixedMode> fixed_params{};
    void* weights_f = nullptr;  // fixed mode's weights as float32 (the latency variant's copy)
    lenet5::LaunchInfo launch_info[2][lenet5::kNumVariants]{};
    int variant = LENET5_VARIANT_AUTO;
    // small batches: mapped pinned buffers the kernel reads and writes directly
    uint8_t* small_in = nullptr;
    int32_t* small_classes = nullptr;
    unsigned char* small_logits = nullptr;
    uint8_t* small_in_dev = nullptr;
    int32_t* small_classes_dev = nullptr;
    unsigned char* small_logits_dev = nullptr;
    // large batches
    bool slots_ready = false;
    Slot slots[2];
    // resident path (see infer_resident): the mailbox (mapped) and the kernel's device state
    int64_t resident_idle_us = kResidentDefaultIdleUs;  // 0: off
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

namespace {

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

size_t logit_bytes(int mode) { return mode == LENET5_MODE_FLOAT ? sizeof(float) : sizeof(int16_t); }

// Copies `count` values of `src` (converted to T, scaled by `scale`) into the blob at `offset`
// (256-byte aligned), returning the offset of the next piece.
template <class T, class S>
size_t append(std::vector<unsigned char>& blob, size_t offset, const S* src, int64_t count, double scale = 1.0) {
    offset = (offset + 255) / 256 * 256;
    blob.resize(offset + count * sizeof(T));
    T* dst = reinterpret_cast<T*>(blob.data() + offset);
    for (int64_t i = 0; i < count; ++i) dst[i] = T(double(src[i]) * scale);
    return offset + count * sizeof(T);
}

// Copies a blob of weights to the device; returns the device pointer through `dev`.
int to_device(std::vector<unsigned char>& blob, void** dev) {
    blob.resize(blob.size() + 16, 0);  // 16-byte prefetches may read past a piece's last element
    CUDA_TRY(cudaMalloc(dev, blob.size()));
    CUDA_TRY(cudaMemcpy(*dev, blob.data(), blob.size(), cudaMemcpyHostToDevice));
    return LENET5_OK;
}

// blob: the weights as acc_t; blob_f: as float (null: blob is float already).
template <class M>
int upload(lenet5_gpu* h, std::vector<unsigned char>& blob, const size_t (&offsets)[kNumLayers][2],
           std::vector<unsigned char>* blob_f, const size_t (&offsets_f)[kNumLayers][2], lenet5::NetParams<M>& params) {
    int status = to_device(blob, &h->weights[M::kIndex]);
    if (status) return status;
    unsigned char* dev = static_cast<unsigned char*>(h->weights[M::kIndex]);
    unsigned char* dev_f = dev;
    if (blob_f != nullptr) {
        if ((status = to_device(*blob_f, &h->weights_f))) return status;
        dev_f = static_cast<unsigned char*>(h->weights_f);
    }
    for (int i = 0; i < kNumLayers; ++i) {
        params.kernel[i] = reinterpret_cast<const typename M::acc_t*>(dev + offsets[i][0]);
        params.bias[i] = reinterpret_cast<const typename M::acc_t*>(dev + offsets[i][1]);
        params.kernel_f[i] = reinterpret_cast<const float*>(dev_f + offsets_f[i][0]);
        params.bias_f[i] = reinterpret_cast<const float*>(dev_f + offsets_f[i][1]);
    }
    for (int v = 0; v < lenet5::kNumVariants; ++v) {
        lenet5::LaunchInfo& info = h->launch_info[M::kIndex][v];
        CUDA_TRY(lenet5::prepare<M>(lenet5::Variant(v), &info));
        if (info.max_blocks_per_sm < 1)
            return fail(LENET5_ERR_UNSUPPORTED, "kernel variant %d needs %d bytes of shared memory: too many for %s", v,
                        info.smem_bytes, h->name);
    }
    lenet5::LaunchInfo info;
    CUDA_TRY(lenet5::prepare_resident<M>(&info));
    if (info.max_blocks_per_sm < 1) h->resident_broken = true;  // cannot run here: launch per call
    h->loaded[M::kIndex] = true;
    return LENET5_OK;
}

int load_float(lenet5_gpu* h, const lenet5_layer_params* layers) {
    std::vector<unsigned char> blob;
    size_t offsets[kNumLayers][2];
    size_t at = 0;
    for (int i = 0; i < kNumLayers; ++i) {
        // The pixel byte enters unscaled: conv1's kernel carries the 2**-frac input scale (exact).
        const double scale = i == 0 ? std::ldexp(1.0, -lenet5::sh::kPixelFracBits) : 1.0;
        offsets[i][0] = (at + 255) / 256 * 256;
        at = append<float>(blob, at, layers[i].kernel, kLayers[i].kernel_count, scale);
        offsets[i][1] = (at + 255) / 256 * 256;
        at = append<float>(blob, at, layers[i].bias, kLayers[i].bias_count);
    }
    for (size_t i = 0; i < blob.size() / sizeof(float); ++i) {
        float v;
        std::memcpy(&v, blob.data() + i * sizeof(float), sizeof v);
        if (!std::isfinite(v)) return fail(LENET5_ERR_INVALID_ARGUMENT, "float weights hold NaN or infinity");
    }
    return upload<FloatMode>(h, blob, offsets, nullptr, offsets, h->float_params);
}

int load_fixed(lenet5_gpu* h, const lenet5_layer_params* layers) {
    std::vector<unsigned char> blob, blob_f;
    size_t offsets[kNumLayers][2], offsets_f[kNumLayers][2];
    size_t at = 0, at_f = 0;
    double max_in = 255.0;  // the pixel byte
    for (int i = 0; i < kNumLayers; ++i) {
        const lenet5_layer_params& L = layers[i];
        const lenet5_fixed_format& f = L.fixed;
        const char* name = kLayers[i].name;
        if (f.out_signed != 1)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: unsigned output formats are not supported", name);
        if (f.out_width < 1 || f.out_width > 16)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: output width %d outside 1..16", name, f.out_width);
        if (f.rounding < 0 || f.rounding >= lenet5::kNumRounding)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: rounding mode %d not implemented", name, f.rounding);
        if (f.saturation < 0 || f.saturation >= lenet5::kNumSaturation)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: saturation mode %d not implemented", name, f.saturation);
        if (f.bias_shift < 0 || f.bias_shift > 52)
            return fail(LENET5_ERR_INVALID_ARGUMENT, "%s: bias shift %d outside 0..52", name, f.bias_shift);
        const int shift = f.accum_frac_bits - f.out_frac_bits;
        if (shift > 62 || shift < -8)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: cast shift %d outside -8..62", name, shift);
        // Exactness: |sum| <= fan_in * max|in| * max|kernel| + max|bias| must stay below 2**53.
        double max_k = 0, max_b = 0;
        for (int64_t j = 0; j < kLayers[i].kernel_count; ++j)
            max_k = std::fmax(max_k, std::fabs(double(L.kernel_raw[j])));
        for (int64_t j = 0; j < kLayers[i].bias_count; ++j) max_b = std::fmax(max_b, std::fabs(double(L.bias_raw[j])));
        const double bound = kLayers[i].fan_in * max_in * max_k + std::ldexp(max_b, f.bias_shift);
        if (!(bound < std::ldexp(1.0, 53)))
            return fail(LENET5_ERR_UNSUPPORTED, "%s: accumulator may reach 2**%.1f: not exact in float64", name,
                        std::log2(bound));
        lenet5::FixedCast& c = h->fixed_params.cast[i];
        c.shift = shift;
        c.width = f.out_width;
        c.rounding = f.rounding;
        c.saturation = f.saturation;
        c.min_raw = -(int64_t(1) << (f.out_width - 1));
        c.max_raw = (int64_t(1) << (f.out_width - 1)) - 1;
        max_in = std::ldexp(1.0, f.out_width - 1);
        offsets[i][0] = (at + 255) / 256 * 256;
        at = append<double>(blob, at, L.kernel_raw, kLayers[i].kernel_count);
        offsets[i][1] = (at + 255) / 256 * 256;
        at = append<double>(blob, at, L.bias_raw, kLayers[i].bias_count, std::ldexp(1.0, f.bias_shift));
        // float32 copy: 16-bit integers times a power of two are exact in float32
        offsets_f[i][0] = (at_f + 255) / 256 * 256;
        at_f = append<float>(blob_f, at_f, L.kernel_raw, kLayers[i].kernel_count);
        offsets_f[i][1] = (at_f + 255) / 256 * 256;
        at_f = append<float>(blob_f, at_f, L.bias_raw, kLayers[i].bias_count, std::ldexp(1.0, f.bias_shift));
    }
    return upload<FixedMode>(h, blob, offsets, &blob_f, offsets_f, h->fixed_params);
}

void release(lenet5_gpu* h) {
    // Best effort: errors while tearing down are ignored (the handle is going away).
    if (h->stream) cudaStreamSynchronize(h->stream);
    for (void*& w : h->weights) {
        if (w) cudaFree(w);
        w = nullptr;
    }
    if (h->weights_f) cudaFree(h->weights_f);
    h->weights_f = nullptr;
    if (h->small_in) cudaFreeHost(h->small_in);
    if (h->small_classes) cudaFreeHost(h->small_classes);
    if (h->small_logits) cudaFreeHost(h->small_logits);
    if (h->mailbox) cudaFreeHost(h->mailbox);
    if (h->resident_state) cudaFree(h->resident_state);
    h->mailbox = h->mailbox_dev = nullptr;
    h->resident_state = nullptr;
    for (Slot& s : h->slots) {
        if (s.h_in) cudaFreeHost(s.h_in);
        if (s.h_classes) cudaFreeHost(s.h_classes);
        if (s.h_logits) cudaFreeHost(s.h_logits);
        if (s.d_in) cudaFree(s.d_in);
        if (s.d_classes) cudaFree(s.d_classes);
        if (s.d_logits) cudaFree(s.d_logits);
        if (s.done) cudaEventDestroy(s.done);
        s = Slot{};
    }
    if (h->stream) cudaStreamDestroy(h->stream);
    h->stream = nullptr;
}

int check_mode(const lenet5_gpu* h, int mode) {
    if (mode != LENET5_MODE_FLOAT && mode != LENET5_MODE_FIXED)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "mode %d is neither LENET5_MODE_FLOAT nor LENET5_MODE_FIXED", mode);
    if (!h->loaded[mode])
        return fail(LENET5_ERR_MODE_NOT_LOADED, "the handle was created without %s weights",
                    mode == LENET5_MODE_FLOAT ? "float" : "fixed-point");
    return LENET5_OK;
}

// One launch over n images (device or mapped pointers), asynchronous on `stream`.
int run(lenet5_gpu* h, int mode, const lenet5::NetIO& io, cudaStream_t stream) {
    if (io.n <= 0) return LENET5_OK;
    lenet5::Variant v;
    if (h->variant != LENET5_VARIANT_AUTO) v = lenet5::Variant(h->variant - 1);
    else if (io.n < kBlockVariantBelow[mode]) v = lenet5::kVariantBlock;
    else v = mode == LENET5_MODE_FIXED ? kFixedThroughputVariant : lenet5::kVariantWarp;
    const lenet5::LaunchInfo& info = h->launch_info[mode][v];
    const int64_t blocks_needed = (io.n + info.images_per_block - 1) / info.images_per_block;
    const int64_t resident = int64_t(info.max_blocks_per_sm) * h->sms;
    const int grid = int(blocks_needed < resident ? blocks_needed : resident);
    const cudaError_t e = mode == LENET5_MODE_FLOAT ? lenet5::launch<FloatMode>(v, h->float_params, io, grid, stream)
                                                    : lenet5::launch<FixedMode>(v, h->fixed_params, io, grid, stream);
    if (e != cudaSuccess) return cuda_fail(e, "fused network kernel launch");
    return LENET5_OK;
}

int ensure_slots(lenet5_gpu* h) {
    if (h->slots_ready) return LENET5_OK;
    const size_t logits = kChunk * kNumClasses * sizeof(float);
    for (Slot& s : h->slots) {
        CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&s.h_in), kChunk * kImageBytes, cudaHostAllocDefault));
        CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&s.h_classes), kChunk * sizeof(int32_t), cudaHostAllocDefault));
        CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&s.h_logits), logits, cudaHostAllocDefault));
        CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&s.d_in), kChunk * kImageBytes));
        CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&s.d_classes), kChunk * sizeof(int32_t)));
        CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&s.d_logits), logits));
        CUDA_TRY(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    }
    h->slots_ready = true;
    return LENET5_OK;
}

// Waits for a slot's chunk and copies its results to the caller.
int drain(Slot& s, int mode, int32_t* classes, void* logits) {
    if (s.count == 0) return LENET5_OK;
    const int64_t off = s.offset, n = s.count;
    s.count = 0;
    CUDA_TRY(cudaEventSynchronize(s.done));
    if (classes) std::memcpy(classes + off, s.h_classes, n * sizeof(int32_t));
    if (logits) {
        const size_t row = kNumClasses * logit_bytes(mode);
        std::memcpy(static_cast<unsigned char*>(logits) + off * row, s.h_logits, n * row);
    }
    return LENET5_OK;
}

int infer_chunked(lenet5_gpu* h, int mode, const uint8_t* images, int64_t n, int32_t* classes, void* logits) {
    int status = ensure_slots(h);
    if (status) return status;
    const size_t row = kNumClasses * logit_bytes(mode);
    int64_t i = 0;
    for (int64_t off = 0; off < n; off += kChunk, ++i) {
        Slot& s = h->slots[i & 1];
        if ((status = drain(s, mode, classes, logits))) break;
        const int64_t cnt = n - off < kChunk ? n - off : kChunk;
        std::memcpy(s.h_in, images + off * kImageBytes, cnt * kImageBytes);
        cudaError_t e = cudaMemcpyAsync(s.d_in, s.h_in, cnt * kImageBytes, cudaMemcpyHostToDevice, h->stream);
        if (e != cudaSuccess) {
            status = cuda_fail(e, "copy of images to the device");
            break;
        }
        const lenet5::NetIO io{s.d_in, cnt, classes ? s.d_classes : nullptr, logits ? s.d_logits : nullptr};
        if ((status = run(h, mode, io, h->stream))) break;
        if (classes)
            e = cudaMemcpyAsync(s.h_classes, s.d_classes, cnt * sizeof(int32_t), cudaMemcpyDeviceToHost, h->stream);
        if (e == cudaSuccess && logits)
            e = cudaMemcpyAsync(s.h_logits, s.d_logits, cnt * row, cudaMemcpyDeviceToHost, h->stream);
        if (e == cudaSuccess) e = cudaEventRecord(s.done, h->stream);
        if (e != cudaSuccess) {
            status = cuda_fail(e, "copy of results to the host");
            break;
        }
        s.offset = off;
        s.count = cnt;
    }
    // Drain in order (the older chunk first); after a failure, only wait.
    for (int64_t k = 0; k < 2; ++k) {
        Slot& s = h->slots[(i + k) & 1];
        if (status == LENET5_OK) {
            status = drain(s, mode, classes, logits);
        } else {
            s.count = 0;
        }
    }
    if (status) cudaStreamSynchronize(h->stream);
    return status;
}

// ---------------------------------------------------------------------------- resident path
//
// Host side of resident_network_kernel (network_kernel.cuh).  A call copies the images into the
// mapped input buffer, writes n, quit = 0 and then the next sequence number into the mailbox,
// launches the kernel if none is running, and spins on the mailbox's status word until the kernel
// writes 2 * seq.  An odd status means the kernel ended (idle): if it ended before taking this
// command, the call launches a new one, which takes it.  The spin has a deadline, and asks the
// stream now and then, so a failed or stuck kernel gives an error, never a hang.

double monotonic_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

inline unsigned int read_status(const lenet5_gpu* h) { return __atomic_load_n(&h->mailbox->status, __ATOMIC_ACQUIRE); }

inline unsigned long long command_word(unsigned int seq, unsigned int n, unsigned int quit) {
    return uint64_t(seq) | (uint64_t(n & 0xffffu) << 32) | (uint64_t(quit & 1u) << 48);
}

// The images (if any) are in place: the command, in one 8-byte store after them.
inline unsigned int post(lenet5_gpu* h, unsigned int n, unsigned int quit) {
    const unsigned int seq = (h->resident_seq + 1) & kSeqMask;
    h->resident_seq = seq;
    __atomic_store_n(&h->mailbox->command, command_word(seq, n, quit), __ATOMIC_RELEASE);
    return seq;
}

int resident_launch(lenet5_gpu* h, int mode, unsigned int start_seq) {
    // No kernel is running: nothing else writes the status now.
    __atomic_store_n(&h->mailbox->status, (start_seq << 1), __ATOMIC_RELEASE);
    ++h->resident_gen;
    const lenet5::ResidentIO io{h->small_in_dev,     h->small_classes_dev,
                                h->small_logits_dev, h->mailbox_dev,
                                h->resident_state,   start_seq,
                                h->resident_gen,     static_cast<unsigned long long>(h->resident_idle_us) * 1000ull};
    const cudaError_t e = mode == LENET5_MODE_FLOAT
                              ? lenet5::launch_resident<FloatMode>(h->float_params, io, kResidentBlocks, h->stream)
                              : lenet5::launch_resident<FixedMode>(h->fixed_params, io, kResidentBlocks, h->stream);
    if (e != cudaSuccess) {
        h->resident_broken = true;
        return cuda_fail(e, "resident kernel launch");
    }
    h->resident_running = true;
    h->resident_mode = mode;
    ++h->resident_launches;
    return LENET5_OK;
}

// Now and then during a spin: the stream's state (an error ends the wait) and the deadline.
// Returns LENET5_OK to keep spinning; sets *ended when the stream has nothing left to run.
int resident_check(lenet5_gpu* h, double start, const char* what, bool* ended) {
    const cudaError_t e = cudaStreamQuery(h->stream);
    if (e == cudaSuccess) {
        *ended = true;
        return LENET5_OK;
    }
    if (e != cudaErrorNotReady) {
        h->resident_broken = true;
        h->resident_running = false;
        return cuda_fail(e, what);
    }
    if (monotonic_s() - start > kResidentDeadlineS) {
        h->resident_broken = true;
        post(h, 0, 1);  // best effort: ask it to end
        return fail(LENET5_ERR_CUDA, "%s: no answer from the resident kernel within %.0f s", what, kResidentDeadlineS);
    }
    return LENET5_OK;
}

// Ends the resident kernel, if one runs, and waits for it (the handle's stream is then free).
int resident_stop(lenet5_gpu* h) {
    if (!h->resident_running) return LENET5_OK;
    post(h, 0, 1);
    const double start = monotonic_s();
    for (unsigned int spins = 1; (read_status(h) & 1u) == 0; ++spins) {
        if (spins % 4096 == 0) {
            bool ended = false;
            const int s = resident_check(h, start, "ending the resident kernel", &ended);
            if (s) return s;
            if (ended) {
                if (read_status(h) & 1u) break;
                h->resident_broken = true;
                h->resident_running = false;
                return fail(LENET5_ERR_CUDA, "the resident kernel ended without a signal");
            }
        }
        spin_pause();
    }
    h->resident_running = false;
    CUDA_TRY(cudaStreamSynchronize(h->stream));
    return LENET5_OK;
}

bool resident_usable(const lenet5_gpu* h, int64_t n) {
    return n <= kResidentBlocks && h->resident_idle_us > 0 && !h->resident_broken && h->variant == LENET5_VARIANT_AUTO;
}

int infer_resident(lenet5_gpu* h, int mode, const uint8_t* images, int64_t n, int32_t* classes, void* logits) {
    int status;
    if (h->resident_running && h->resident_mode != mode && (status = resident_stop(h))) return status;
    std::memcpy(h->small_in, images, n * kImageBytes);
    const unsigned int seq = post(h, unsigned(n), 0);
    if (!h->resident_running && (status = resident_launch(h, mode, (seq - 1) & kSeqMask))) return status;
    const unsigned int done = seq << 1;
    double start = 0;
    for (unsigned int spins = 1;; ++spins) {
        const unsigned int st = read_status(h);
        if (st == done) break;
        if (st & 1u) {  // the kernel ended
            h->resident_running = false;
            if ((st >> 1) == seq) break;  // after answering this command
            if ((status = resident_launch(h, mode, (seq - 1) & kSeqMask))) return status;
            continue;
        }
        if (spins % 4096 == 0) {
            if (start == 0) start = monotonic_s();
            bool ended = false;
            if ((status = resident_check(h, start, "resident kernel", &ended))) return status;
            if (ended) {
                const unsigned int again = read_status(h);
                if (again == done || (again & 1u)) continue;  // its last word came meanwhile
                h->resident_broken = true;
                h->resident_running = false;
                return fail(LENET5_ERR_CUDA, "the resident kernel ended without answering");
            }
        }
        spin_pause();
    }
    ++h->resident_calls;
    const unsigned long long t_seen = h->mailbox->t_seen, t_done = h->mailbox->t_done;
    if (t_done > t_seen && t_done - t_seen < 1000000000ull) {
        h->resident_gpu_ns += t_done - t_seen;
        ++h->resident_timed;
    }
    if (classes) std::memcpy(classes, h->small_classes, n * sizeof(int32_t));
    if (logits) std::memcpy(logits, h->small_logits, n * kNumClasses * logit_bytes(mode));
    return LENET5_OK;
}

}  // namespace

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
        CUDA_TRY(cudaStreamCreateWithFlags(&h->stream, cudaStreamNonBlocking));
        CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&h->small_in), kSmallBatch * kImageBytes, cudaHostAllocMapped));
        CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&h->small_classes), kSmallBatch * sizeof(int32_t),
                               cudaHostAllocMapped));
        CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&h->small_logits), kSmallBatch * kNumClasses * sizeof(float),
                               cudaHostAllocMapped));
        CUDA_TRY(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h->small_in_dev), h->small_in, 0));
        CUDA_TRY(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h->small_classes_dev), h->small_classes, 0));
        CUDA_TRY(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h->small_logits_dev), h->small_logits, 0));
        CUDA_TRY(
            cudaHostAlloc(reinterpret_cast<void**>(&h->mailbox), sizeof(lenet5::ResidentMailbox), cudaHostAllocMapped));
        std::memset(h->mailbox, 0, sizeof(lenet5::ResidentMailbox));
        CUDA_TRY(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h->mailbox_dev), h->mailbox, 0));
        CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&h->resident_state), sizeof(lenet5::ResidentState)));
        CUDA_TRY(cudaMemset(h->resident_state, 0, sizeof(lenet5::ResidentState)));
        // LENET5_GPU_RESIDENT_US: the resident kernel's idle time (0: off), as lenet5_gpu_set_resident.
        if (const char* idle = std::getenv("LENET5_GPU_RESIDENT_US")) {
            char* end = nullptr;
            const long long us = std::strtoll(idle, &end, 10);
            if (end == idle || *end != '\0' || us < 0 || us > kResidentMaxIdleUs)
                return fail(LENET5_ERR_INVALID_ARGUMENT, "LENET5_GPU_RESIDENT_US=%s: expected 0..%lld microseconds",
                            idle, static_cast<long long>(kResidentMaxIdleUs));
            h->resident_idle_us = us;
        }
        if (float_set && (s = load_float(h, layers))) return s;
        if (fixed_set && (s = load_fixed(h, layers))) return s;
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
    if (variant < LENET5_VARIANT_AUTO || variant > LENET5_VARIANT_WARP_SMALL)
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
    if (resident_usable(handle, n)) return infer_resident(handle, mode, images, n, classes, logits);
    if ((status = resident_stop(handle))) return status;
    if (n > kSmallBatch) return infer_chunked(handle, mode, images, n, classes, logits);

    // Small batch: the kernel reads the images from and writes its results to mapped pinned
    // memory; the host synchronizes the stream.
    std::memcpy(handle->small_in, images, n * kImageBytes);
    const lenet5::NetIO io{handle->small_in_dev, n, classes ? handle->small_classes_dev : nullptr,
                           logits ? handle->small_logits_dev : nullptr};
    if ((status = run(handle, mode, io, handle->stream))) return status;
    CUDA_TRY(cudaStreamSynchronize(handle->stream));
    if (classes) std::memcpy(classes, handle->small_classes, n * sizeof(int32_t));
    if (logits) std::memcpy(logits, handle->small_logits, n * kNumClasses * logit_bytes(mode));
    return LENET5_OK;
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
    const lenet5::NetIO io{images, n, classes, logits};
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
            const lenet5::NetIO io{d_images + (k++ % sets) * batch * kImageBytes, batch, d_classes, d_logits};
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

LENET5_API const char* lenet5_gpu_last_error(void) { return g_message; }
