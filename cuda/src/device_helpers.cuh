// Device helpers of the fused kernel: constexpr arithmetic, vector loads, FMA, cp.async, team
// barriers, the fixed-mode neuron, and the PTX memory-order loads and stores of the resident path.
#pragma once

#include <cstdint>
#include <type_traits>

#include "network_types.cuh"

namespace lenet5 {

__host__ __device__ constexpr int round_up(int x, int to) { return (x + to - 1) / to * to; }
__host__ __device__ constexpr int cmax(int a, int b) { return a > b ? a : b; }

// Widest vector (at most 16 bytes) whose width divides both the count and the stride, so every
// access is aligned when the base is 16-byte aligned.
template <class T>
__host__ __device__ constexpr int pick_vec(int count, int stride) {
    for (int v = 16 / int(sizeof(T)); v > 1; v /= 2)
        if (count % v == 0 && stride % v == 0) return v;
    return 1;
}

// clang-format off: one line per vector type
template <class T, int V> struct VecT;
template <> struct VecT<float, 1> { using type = float; };
template <> struct VecT<float, 2> { using type = float2; };
template <> struct VecT<float, 4> { using type = float4; };
template <> struct VecT<double, 1> { using type = double; };
template <> struct VecT<double, 2> { using type = double2; };

__device__ __forceinline__ void unpack(float v, float* d) { d[0] = v; }
__device__ __forceinline__ void unpack(float2 v, float* d) { d[0] = v.x; d[1] = v.y; }
__device__ __forceinline__ void unpack(float4 v, float* d) { d[0] = v.x; d[1] = v.y; d[2] = v.z; d[3] = v.w; }
__device__ __forceinline__ void unpack(double v, double* d) { d[0] = v; }
__device__ __forceinline__ void unpack(double2 v, double* d) { d[0] = v.x; d[1] = v.y; }
// clang-format on

// N values from shared memory in vectors of V.
template <int N, int V, class T>
__device__ __forceinline__ void load_shared(T (&dst)[N], const T* src) {
    static_assert(N % V == 0, "vector width must divide the count");
    using Vt = typename VecT<T, V>::type;
#pragma unroll
    for (int i = 0; i < N / V; ++i) unpack(reinterpret_cast<const Vt*>(src)[i], &dst[i * V]);
}

// N values from global memory (read-only path) in vectors of V.
template <int N, int V, class T>
__device__ __forceinline__ void load_global(T (&dst)[N], const T* __restrict__ src) {
    static_assert(N % V == 0, "vector width must divide the count");
    using Vt = typename VecT<T, V>::type;
#pragma unroll
    for (int i = 0; i < N / V; ++i) unpack(__ldg(reinterpret_cast<const Vt*>(src) + i), &dst[i * V]);
}

__device__ __forceinline__ float fma_acc(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double fma_acc(double a, double b, double c) { return __fma_rn(a, b, c); }

// 16-byte global -> shared copies that complete in the background (cp.async, sm_80+).
__device__ __forceinline__ void copy16_async(void* smem_dst, const void* gmem_src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src) : "memory");
#else
    *reinterpret_cast<uint4*>(smem_dst) = __ldg(reinterpret_cast<const uint4*>(gmem_src));
#endif
}
__device__ __forceinline__ void async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

template <int TEAM>
__device__ __forceinline__ void team_sync() {
    if constexpr (TEAM == 32) {
        __syncwarp();
    } else {
        __syncthreads();
    }
}

// The output of one neuron in fixed mode: exact sum + aligned bias, cast, ReLU.
template <bool RELU>
__device__ __forceinline__ int64_t fixed_neuron(double acc, double bias, const FixedCast& fc) {
    int64_t r = fixed_cast(__double2ll_rn(acc + bias), fc);
    return RELU ? (r > 0 ? r : 0) : r;
}

// ---- memory order across the host and the GPU (the resident kernel's mailbox)

__device__ __forceinline__ unsigned int ld_acquire_sys(const unsigned int* p) {
    unsigned int v;
    asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ unsigned long long ld_acquire_sys(const unsigned long long* p) {
    unsigned long long v;
    asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_relaxed_sys(unsigned long long* p, unsigned long long v) {
    asm volatile("st.relaxed.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ void st_release_sys(unsigned int* p, unsigned int v) {
    asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ unsigned long long ld_acquire_gpu(const unsigned long long* p) {
    unsigned long long v;
    asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ unsigned int ld_acquire_gpu(const unsigned int* p) {
    unsigned int v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_release_gpu(unsigned long long* p, unsigned long long v) {
    asm volatile("st.release.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ void st_relaxed_gpu(unsigned int* p, unsigned int v) {
    asm volatile("st.relaxed.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ unsigned long long global_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
// 16 bytes of host memory, read past every cache (the host rewrites the buffer between calls).
__device__ __forceinline__ uint4 ld_volatile16(const void* p) {
    uint4 v;
    asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p)
                 : "memory");
    return v;
}

}  // namespace lenet5
