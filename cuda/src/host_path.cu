// The host path (lenet5_gpu_infer_host): host memory in, host memory out.
//
// * 1 to 8 images go to the resident kernel when it is on (resident.cu).
// * Up to kSmallBatch images: one launch reads and writes mapped pinned memory.
// * Larger batches: the pipeline.  The batch is cut into chunks; each of `threads` lanes (the
//   calling thread and threads of the handle's pool) has its own stream and two stages of pinned
//   staging and device buffers.  A lane takes the next chunk, copies its images into a stage
//   (skipped when the caller's images are page-locked: the copy engine reads them in place),
//   queues the transfer, the kernel and the copy back on its stream, and takes another chunk
//   while the GPU works; before reusing a stage it waits for the stage's chunk and copies its
//   results out (skipped for page-locked outputs, which the copy back writes directly).  The
//   lanes' host copies, transfers and kernels overlap, so pageable input moves at the rate of
//   several CPU threads' memcpy into pinned memory, not of the driver's one staging thread.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "handle.h"

namespace lenet5::api {

namespace {

// Chunks hold at most this many images by default (lenet5_gpu_set_host_pipeline changes it): the
// best of 8192, 16384 and 32768 from pageable memory on an H200 host with 8 lanes, and as good as
// the others from page-locked memory (tools/sweep.py --host) ...
constexpr int64_t kDefaultChunk = 8192;
constexpr int64_t kMaxChunk = int64_t(1) << 20;
// ... and at least this many unless the cap is lower: smaller chunks would cost kernel efficiency
// (the variants' crossovers are at 512 and 1024 images) and per-chunk overhead.
constexpr int64_t kMinSplit = 4096;
// Default lanes: half the cores (the other half for the caller and the driver), at most this many.
constexpr int kDefaultMaxThreads = 8;
constexpr int kMaxThreads = 64;

int default_threads() {
    const int cores = int(std::thread::hardware_concurrency());
    return std::max(1, std::min(kDefaultMaxThreads, cores / 2));
}

// One chunk's buffers: pinned staging for the images and results, device buffers, the event
// recorded after its copy back.
struct Stage {
    uint8_t* h_in = nullptr;
    int32_t* h_classes = nullptr;
    unsigned char* h_logits = nullptr;
    uint8_t* d_in = nullptr;
    int32_t* d_classes = nullptr;
    unsigned char* d_logits = nullptr;
    cudaEvent_t done = nullptr;
    int64_t offset = 0, count = 0;  // images in flight (count 0: none)
};

struct Lane {
    cudaStream_t stream = nullptr;
    Stage stages[2];
    bool ready = false;  // buffers allocated (at the lane's first chunk)
};

// Where a caller's array lives: page-locked host memory (the copy engines read and write it in
// place), device memory (refused: that is lenet5_gpu_infer_device's), or other host memory.
enum class Memory { kPageable, kPinned, kDevice };

Memory memory_of(const void* p) {
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError();  // older runtimes report plain host memory as an error: not sticky
        return Memory::kPageable;
    }
    if (a.type == cudaMemoryTypeDevice) return Memory::kDevice;
    return a.type == cudaMemoryTypeHost ? Memory::kPinned : Memory::kPageable;
}

// One large batch: what every lane reads, the next chunk to take, the first failure.
struct Batch {
    int mode;
    const uint8_t* images;
    int64_t n, chunk;
    int32_t* classes;
    void* logits;
    bool images_pinned, classes_pinned, logits_pinned;
    std::atomic<int64_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mutex;
    int status = LENET5_OK;
    char message[1024] = "";

    // Keeps the first failure and its message (fail() wrote it in the failing lane's thread).
    void record(int s) {
        std::lock_guard<std::mutex> lock(mutex);
        if (status == LENET5_OK) {
            status = s;
            std::snprintf(message, sizeof message, "%s", last_message());
        }
        failed = true;
    }
};

}  // namespace

// The pipeline's lanes and the threads that run lanes 1.. (lane 0 is the calling thread).  The
// threads start at the first batch that needs them and wait on a condition variable between
// batches; the handle takes one call at a time, so one batch runs at a time.
struct HostPipeline {
    int device = 0;
    int threads = 1;
    int64_t chunk_cap = kDefaultChunk;
    std::vector<Lane> lanes;

    std::mutex mutex;
    std::condition_variable start, finished;
    std::vector<std::thread> pool;
    const std::function<void(int)>* job = nullptr;
    int job_lanes = 0;
    unsigned generation = 0;
    int pending = 0;
    bool quit = false;

    ~HostPipeline() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            quit = true;
        }
        start.notify_all();
        for (std::thread& t : pool) t.join();
        for (Lane& lane : lanes) {
            if (lane.stream) cudaStreamSynchronize(lane.stream);
            for (Stage& s : lane.stages) {
                if (s.h_in) cudaFreeHost(s.h_in);
                if (s.h_classes) cudaFreeHost(s.h_classes);
                if (s.h_logits) cudaFreeHost(s.h_logits);
                if (s.d_in) cudaFree(s.d_in);
                if (s.d_classes) cudaFree(s.d_classes);
                if (s.d_logits) cudaFree(s.d_logits);
                if (s.done) cudaEventDestroy(s.done);
            }
            if (lane.stream) cudaStreamDestroy(lane.stream);
        }
    }

    void worker(int lane) {
        cudaSetDevice(device);  // per thread; a failure shows at the lane's first CUDA call
        unsigned seen = 0;
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
            start.wait(lock, [&] { return quit || generation != seen; });
            if (quit) return;
            seen = generation;
            if (lane >= job_lanes) continue;
            const std::function<void(int)>* f = job;
            lock.unlock();
            (*f)(lane);
            lock.lock();
            if (--pending == 0) finished.notify_one();
        }
    }

    // Starts the threads for lanes 1..count-1 that are not running yet.
    int grow(int count) {
        try {
            while (int(pool.size()) < count - 1) {
                const int lane = int(pool.size()) + 1;
                pool.emplace_back([this, lane] { worker(lane); });
            }
        } catch (const std::system_error& e) {
            return fail(LENET5_ERR_OUT_OF_MEMORY, "starting a host pipeline thread: %s", e.what());
        }
        return LENET5_OK;
    }

    // Runs f(lane) for lane = 0 .. count-1 at once and returns when every lane has returned.
    void run_lanes(int count, const std::function<void(int)>& f) {
        if (count > 1) {
            std::lock_guard<std::mutex> lock(mutex);
            job = &f;
            job_lanes = count;
            pending = count - 1;
            ++generation;
        }
        if (count > 1) start.notify_all();
        f(0);
        if (count > 1) {
            std::unique_lock<std::mutex> lock(mutex);
            finished.wait(lock, [&] { return pending == 0; });
        }
    }
};

namespace {

int open_lane(Lane& lane, int64_t chunk) {
    if (lane.ready) return LENET5_OK;
    CUDA_TRY(cudaStreamCreateWithFlags(&lane.stream, cudaStreamNonBlocking));
    const size_t logits = chunk * kNumClasses * sizeof(float);
    for (Stage& s : lane.stages) {
        CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&s.h_in), chunk * kImageBytes, cudaHostAllocDefault));
        CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&s.h_classes), chunk * sizeof(int32_t), cudaHostAllocDefault));
        CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&s.h_logits), logits, cudaHostAllocDefault));
        CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&s.d_in), chunk * kImageBytes));
        CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&s.d_classes), chunk * sizeof(int32_t)));
        CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&s.d_logits), logits));
        CUDA_TRY(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    }
    lane.ready = true;
    return LENET5_OK;
}

// Waits for a stage's chunk and copies its results to the caller (unless they went there directly).
int drain(Stage& s, Batch& b) {
    if (s.count == 0) return LENET5_OK;
    const int64_t off = s.offset, n = s.count;
    s.count = 0;
    CUDA_TRY(cudaEventSynchronize(s.done));
    if (b.classes && !b.classes_pinned) std::memcpy(b.classes + off, s.h_classes, n * sizeof(int32_t));
    if (b.logits && !b.logits_pinned) {
        const size_t row = kNumClasses * logit_bytes(b.mode);
        std::memcpy(static_cast<unsigned char*>(b.logits) + off * row, s.h_logits, n * row);
    }
    return LENET5_OK;
}

// Queues one chunk on the lane's stream: transfer, kernel, copy back, event.
int issue(lenet5_gpu* h, Lane& lane, Stage& s, Batch& b, int64_t off, int64_t count) {
    const uint8_t* src = b.images + off * kImageBytes;
    if (!b.images_pinned) {
        std::memcpy(s.h_in, src, count * kImageBytes);
        src = s.h_in;
    }
    CUDA_TRY(cudaMemcpyAsync(s.d_in, src, count * kImageBytes, cudaMemcpyHostToDevice, lane.stream));
    const NetIO io{s.d_in, count, b.classes ? s.d_classes : nullptr, b.logits ? s.d_logits : nullptr};
    int status = run(h, b.mode, io, lane.stream);
    if (status) return status;
    if (b.classes) {
        int32_t* dst = b.classes_pinned ? b.classes + off : s.h_classes;
        CUDA_TRY(cudaMemcpyAsync(dst, s.d_classes, count * sizeof(int32_t), cudaMemcpyDeviceToHost, lane.stream));
    }
    if (b.logits) {
        const size_t row = kNumClasses * logit_bytes(b.mode);
        void* dst = b.logits_pinned ? static_cast<unsigned char*>(b.logits) + off * row : s.h_logits;
        CUDA_TRY(cudaMemcpyAsync(dst, s.d_logits, count * row, cudaMemcpyDeviceToHost, lane.stream));
    }
    CUDA_TRY(cudaEventRecord(s.done, lane.stream));
    s.offset = off;
    s.count = count;
    return LENET5_OK;
}

// One lane's share of a batch: chunks taken in turn from b.next, alternating its two stages.
int run_lane(lenet5_gpu* h, Lane& lane, Batch& b, int64_t capacity) {
    int status = open_lane(lane, capacity);
    if (status) return status;
    int64_t k = 0;
    while (!b.failed) {
        const int64_t off = b.next.fetch_add(1) * b.chunk;
        if (off >= b.n) break;
        Stage& s = lane.stages[k++ & 1];
        if ((status = drain(s, b))) break;
        if ((status = issue(h, lane, s, b, off, std::min(b.chunk, b.n - off)))) break;
    }
    // The older stage first; after a failure (here or in another lane), only wait.
    for (int64_t j = 0; j < 2; ++j) {
        Stage& s = lane.stages[(k + j) & 1];
        if (status == LENET5_OK && !b.failed) {
            status = drain(s, b);
        } else {
            s.count = 0;
        }
    }
    if (status || b.failed) cudaStreamSynchronize(lane.stream);
    return status;
}

int open_pipeline(lenet5_gpu* h, HostPipeline** out) {
    if (h->pipeline == nullptr) {
        HostPipeline* p = new (std::nothrow) HostPipeline;
        if (p == nullptr) return fail(LENET5_ERR_OUT_OF_MEMORY, "host allocation of the pipeline failed");
        p->device = h->device;
        p->threads = h->host_threads ? h->host_threads : default_threads();
        p->chunk_cap = h->host_chunk ? h->host_chunk : kDefaultChunk;
        try {
            p->lanes.resize(p->threads);
        } catch (const std::bad_alloc&) {
            delete p;
            return fail(LENET5_ERR_OUT_OF_MEMORY, "host allocation of the pipeline failed");
        }
        h->pipeline = p;
    }
    *out = h->pipeline;
    return LENET5_OK;
}

int refuse_device_memory(const void* p, const char* what) {
    return fail(LENET5_ERR_INVALID_ARGUMENT, "%s (%p) is device memory: lenet5_gpu_infer_host takes host memory (%s)",
                what, p, "lenet5_gpu_infer_device takes device memory");
}

int infer_pipelined(lenet5_gpu* h, int mode, const uint8_t* images, int64_t n, int32_t* classes, void* logits) {
    const Memory in = memory_of(images);
    const Memory out_classes = classes ? memory_of(classes) : Memory::kPageable;
    const Memory out_logits = logits ? memory_of(logits) : Memory::kPageable;
    if (in == Memory::kDevice) return refuse_device_memory(images, "images");
    if (out_classes == Memory::kDevice) return refuse_device_memory(classes, "classes");
    if (out_logits == Memory::kDevice) return refuse_device_memory(logits, "logits");
    HostPipeline* p = nullptr;
    int status = open_pipeline(h, &p);
    if (status) return status;
    // At least two chunks per lane when the batch allows (a lane copies one while the GPU works
    // on the other), at least kMinSplit images each, at most the cap.
    const int64_t per_lane = (n + 2 * p->threads - 1) / (2 * p->threads);
    const int64_t chunk = std::min(p->chunk_cap, std::max(kMinSplit, per_lane));
    const int64_t chunks = (n + chunk - 1) / chunk;
    const int lanes = int(std::min<int64_t>(p->threads, chunks));
    if ((status = p->grow(lanes))) return status;
    Batch b;
    b.mode = mode;
    b.images = images;
    b.n = n;
    b.chunk = chunk;
    b.classes = classes;
    b.logits = logits;
    b.images_pinned = in == Memory::kPinned;
    b.classes_pinned = out_classes == Memory::kPinned;
    b.logits_pinned = out_logits == Memory::kPinned;
    const std::function<void(int)> lane_job = [&](int lane) {
        const int s = run_lane(h, p->lanes[lane], b, p->chunk_cap);
        if (s) b.record(s);
    };
    p->run_lanes(lanes, lane_job);
    if (b.status) return fail(b.status, "%s", b.message);
    return LENET5_OK;
}

// Small batch: the kernel reads the images from and writes its results to mapped pinned memory;
// the host synchronizes the stream.
int infer_small(lenet5_gpu* h, int mode, const uint8_t* images, int64_t n, int32_t* classes, void* logits) {
    std::memcpy(h->small_in, images, n * kImageBytes);
    const NetIO io{h->small_in_dev, n, classes ? h->small_classes_dev : nullptr,
                   logits ? h->small_logits_dev : nullptr};
    int status = run(h, mode, io, h->stream);
    if (status) return status;
    CUDA_TRY(cudaStreamSynchronize(h->stream));
    if (classes) std::memcpy(classes, h->small_classes, n * sizeof(int32_t));
    if (logits) std::memcpy(logits, h->small_logits, n * kNumClasses * logit_bytes(mode));
    return LENET5_OK;
}

// lenet5_gpu_alloc_host's allocations and their sizes (for lenet5_gpu_free_host's check and
// lenet5_gpu_host_bytes).  Never destroyed: arrays may be freed while the process exits.
struct PinnedRegistry {
    std::mutex mutex;
    std::unordered_map<void*, size_t> sizes;
    int64_t bytes = 0;
};

PinnedRegistry& pinned_registry() {
    static PinnedRegistry* registry = new PinnedRegistry;
    return *registry;
}

}  // namespace

int open_host_path(lenet5_gpu* h) {
    CUDA_TRY(cudaStreamCreateWithFlags(&h->stream, cudaStreamNonBlocking));
    CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&h->small_in), kSmallBatch * kImageBytes, cudaHostAllocMapped));
    CUDA_TRY(
        cudaHostAlloc(reinterpret_cast<void**>(&h->small_classes), kSmallBatch * sizeof(int32_t), cudaHostAllocMapped));
    CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&h->small_logits), kSmallBatch * kNumClasses * sizeof(float),
                           cudaHostAllocMapped));
    CUDA_TRY(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h->small_in_dev), h->small_in, 0));
    CUDA_TRY(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h->small_classes_dev), h->small_classes, 0));
    CUDA_TRY(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h->small_logits_dev), h->small_logits, 0));
    return LENET5_OK;
}

int infer_host(lenet5_gpu* h, int mode, const uint8_t* images, int64_t n, int32_t* classes, void* logits) {
    if (mode != LENET5_MODE_HALF && resident_usable(h, n)) return infer_resident(h, mode, images, n, classes, logits);
    int status = resident_stop(h);
    if (status) return status;
    if (n > kSmallBatch) return infer_pipelined(h, mode, images, n, classes, logits);
    return infer_small(h, mode, images, n, classes, logits);
}

int set_host_pipeline(lenet5_gpu* h, int threads, int64_t chunk) {
    if (threads < 0 || threads > kMaxThreads)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "threads %d outside 0..%d", threads, kMaxThreads);
    if (chunk < 0 || chunk > kMaxChunk)
        return fail(LENET5_ERR_INVALID_ARGUMENT, "chunk %lld outside 0..%lld", static_cast<long long>(chunk),
                    static_cast<long long>(kMaxChunk));
    delete h->pipeline;  // the next large batch makes one with the new shape
    h->pipeline = nullptr;
    h->host_threads = threads;
    h->host_chunk = chunk;
    return LENET5_OK;
}

void host_pipeline(const lenet5_gpu* h, int* threads, int64_t* chunk) {
    *threads = h->host_threads ? h->host_threads : default_threads();
    *chunk = h->host_chunk ? h->host_chunk : kDefaultChunk;
}

int alloc_pinned(int device, size_t bytes, void** ptr) {
    DeviceScope scope;
    int status = scope.enter(device);
    if (status) return status;
    // Portable: page-locked for every device's context, not only this one's.
    CUDA_TRY(cudaHostAlloc(ptr, bytes, cudaHostAllocPortable));
    PinnedRegistry& r = pinned_registry();
    try {
        std::lock_guard<std::mutex> lock(r.mutex);
        r.sizes[*ptr] = bytes;
        r.bytes += int64_t(bytes);
    } catch (const std::bad_alloc&) {
        cudaFreeHost(*ptr);
        *ptr = nullptr;
        return fail(LENET5_ERR_OUT_OF_MEMORY, "host allocation failed");
    }
    return LENET5_OK;
}

int free_pinned(void* ptr) {
    PinnedRegistry& r = pinned_registry();
    {
        std::lock_guard<std::mutex> lock(r.mutex);
        const auto it = r.sizes.find(ptr);
        if (it == r.sizes.end())
            return fail(LENET5_ERR_INVALID_ARGUMENT, "%p was not allocated by lenet5_gpu_alloc_host (or is freed)",
                        ptr);
        r.bytes -= int64_t(it->second);
        r.sizes.erase(it);
    }
    CUDA_TRY(cudaFreeHost(ptr));
    return LENET5_OK;
}

int64_t pinned_bytes() {
    PinnedRegistry& r = pinned_registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    return r.bytes;
}

int time_copy(const void* host, int64_t bytes, int repeats, double* seconds) {
    void* dev = nullptr;
    auto body = [&]() -> int {
        CUDA_TRY(cudaMalloc(&dev, bytes));
        CUDA_TRY(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));  // warm-up (driver staging)
        for (int r = 0; r < repeats; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            CUDA_TRY(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
            seconds[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        return LENET5_OK;
    };
    const int status = body();
    if (dev) cudaFree(dev);
    return status;
}

void release_host_path(lenet5_gpu* h) {
    delete h->pipeline;
    h->pipeline = nullptr;
    if (h->small_in) cudaFreeHost(h->small_in);
    if (h->small_classes) cudaFreeHost(h->small_classes);
    if (h->small_logits) cudaFreeHost(h->small_logits);
    h->small_in = nullptr;
    h->small_classes = nullptr;
    h->small_logits = nullptr;
    if (h->stream) cudaStreamDestroy(h->stream);
    h->stream = nullptr;
}

}  // namespace lenet5::api
