// The resident path's host side (resident_network_kernel in network_kernel.cuh is the other
// side).  A call copies the images into the mapped input buffer, writes n, quit = 0 and then the
// next sequence number into the mailbox, launches the kernel if none is running, and spins on the
// mailbox's status word until the kernel writes 2 * seq.  An odd status means the kernel ended
// (idle): if it ended before taking this command, the call launches a new one, which takes it.
// The spin has a deadline, and asks the stream now and then, so a failed or stuck kernel gives an
// error, never a hang.
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "handle.h"

namespace lenet5::api {

namespace {

// Host batches of 1 .. kResidentBlocks images under AUTO go to the resident kernel, one block per image.
constexpr int kResidentBlocks = 8;
constexpr unsigned int kSeqMask = 0x7fffffffu;
// A resident kernel that does not answer within this many seconds is given up (the call fails
// and the handle goes back to a launch per call).
constexpr double kResidentDeadlineS = 5.0;

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
    const ResidentIO io{h->small_in_dev,     h->small_classes_dev,
                        h->small_logits_dev, h->mailbox_dev,
                        h->resident_state,   start_seq,
                        h->resident_gen,     static_cast<unsigned long long>(h->resident_idle_us) * 1000ull};
    const cudaError_t e = mode == LENET5_MODE_FLOAT
                              ? launch_resident<FloatMode>(h->float_params, io, kResidentBlocks, h->stream)
                              : launch_resident<FixedMode>(h->fixed_params, io, kResidentBlocks, h->stream);
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

}  // namespace

int open_resident(lenet5_gpu* h) {
    CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&h->mailbox), sizeof(ResidentMailbox), cudaHostAllocMapped));
    std::memset(h->mailbox, 0, sizeof(ResidentMailbox));
    CUDA_TRY(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h->mailbox_dev), h->mailbox, 0));
    CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&h->resident_state), sizeof(ResidentState)));
    CUDA_TRY(cudaMemset(h->resident_state, 0, sizeof(ResidentState)));
    // LENET5_GPU_RESIDENT_US: the resident kernel's idle time (0: off), as lenet5_gpu_set_resident.
    if (const char* idle = std::getenv("LENET5_GPU_RESIDENT_US")) {
        char* end = nullptr;
        const long long us = std::strtoll(idle, &end, 10);
        if (end == idle || *end != '\0' || us < 0 || us > kResidentMaxIdleUs)
            return fail(LENET5_ERR_INVALID_ARGUMENT, "LENET5_GPU_RESIDENT_US=%s: expected 0..%lld microseconds", idle,
                        static_cast<long long>(kResidentMaxIdleUs));
        h->resident_idle_us = us;
    }
    return LENET5_OK;
}

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

void release_resident(lenet5_gpu* h) {
    if (h->mailbox) cudaFreeHost(h->mailbox);
    if (h->resident_state) cudaFree(h->resident_state);
    h->mailbox = h->mailbox_dev = nullptr;
    h->resident_state = nullptr;
}

}  // namespace lenet5::api
