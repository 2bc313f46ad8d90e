// The whole network in one kernel.  Device code only; the launchers are in launch.cu.
//
// A "team" of threads (a warp, or a whole block) takes IPT images at a time through every layer:
//   global uint8 images -> region A (bytes) -> conv1 -> region B -> conv2 -> A -> fc1 -> B
//   -> fc2 -> A -> fc3 -> B (logits) -> global logits and classes.
// Intermediates never leave shared memory; the input is read once.  Two weight placements:
// * throughput variants: the convolution kernels and biases in shared memory as acc_t (read as
//   warp-wide broadcasts), the dense kernels in global memory (through L1/L2, each weight reused
//   for R images);
// * latency variant (a block per image): every weight in shared memory as float32 (exact also
//   for the fixed mode's 16-bit integers), prefetched with cp.async while conv1 runs, so no
//   stage waits on L2 for each weight.
// The grid is persistent: teams loop over groups of images.
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

// Outputs per dense work item, and the k slices of the split dense stage for `threads` threads
// (at least 4 products per slice).
template <class L, int OGMAX>
__host__ __device__ constexpr int dense_og() {
    return L::out % OGMAX == 0 ? OGMAX : (OGMAX >= 2 && L::out % 2 == 0 ? 2 : 1);
}
template <class L, int OGMAX>
__host__ __device__ constexpr int dense_slices(int threads) {
    const int per = threads / (L::out / dense_og<L, OGMAX>());
    const int most = L::in / 4;
    return per < 1 ? 1 : (per > most ? most : per);
}

// Launch configuration of one kernel variant.
//   BLOCK threads a block; TEAM threads (32 or BLOCK) share IPT images;
//   CG1, CG2: output channels a thread computes per conv1/conv2 work item;
//   R: images a thread computes per dense work item; OGMAX: outputs per dense work item (at most);
//   KSPLIT: independent partial sums per dense output (shorter dependency chains at batch 1);
//   ACT: type of the activations in shared memory (acc_t, or float: exact for fixed mode's
//   16-bit integers, half the shared memory);
//   ALL_SMEM: every weight in shared memory as float (latency), else conv weights as acc_t in
//   shared memory and dense weights read from global memory (throughput);
//   CSPLIT: 0, or (latency, one image per block) conv2 split into CSPLIT groups of input
//   channels and the dense layers split over k, partial sums reduced through shared memory.
template <class M, int BLOCK, int TEAM, int IPT, int CG1, int CG2, int R, int OGMAX, int KSPLIT, int MIN_BLOCKS,
          class ACT, bool ALL_SMEM, int CSPLIT = 0, bool DENSE_SMEM = ALL_SMEM>
struct Config {
    using mode = M;
    using acc_t = typename M::acc_t;
    using act_t = ACT;
    using wt_t = typename std::conditional<ALL_SMEM, float, acc_t>::type;  // weights in shared memory
    static constexpr bool kAllSmem = ALL_SMEM;      // float32 weights (conv at least) in shared memory
    static constexpr bool kDenseSmem = DENSE_SMEM;  // dense weights too (else read from L2)
    static_assert(!DENSE_SMEM || ALL_SMEM, "dense weights in shared memory are float32");
    static constexpr int kBlock = BLOCK, kTeam = TEAM, kImagesPerTeam = IPT;
    static constexpr int kCg1 = CG1, kCg2 = CG2, kR = R, kOgMax = OGMAX, kKSplit = KSPLIT, kMinBlocks = MIN_BLOCKS;
    static constexpr int kTeamsPerBlock = BLOCK / TEAM;
    static_assert(TEAM == 32 || TEAM == BLOCK, "a team is a warp or the whole block");
    static_assert(BLOCK % TEAM == 0, "whole teams per block");

    // Per-image strides (elements) of the activations, multiples of 4 for vector loads.
    static constexpr int kS1 = round_up(L0::outputs, 4);  // conv1 out
    static constexpr int kS2 = round_up(L1::outputs, 4);  // conv2 out = fc1 in
    static constexpr int kS3 = round_up(L2::out, 4);
    static constexpr int kS4 = round_up(L3::out, 4);
    static constexpr int kS5 = round_up(L4::out, 4);  // logits
    static constexpr int kAct = int(sizeof(act_t));
    // The input image in shared memory: bytes (throughput), or converted once to act_t (latency:
    // each pixel is read by many threads).
    using img_t = typename std::conditional<(CSPLIT > 0), act_t, uint8_t>::type;
    static constexpr int kRegionA =
        round_up(cmax(IPT * kImageBytes * int(sizeof(img_t)), cmax(IPT * kS2 * kAct, IPT * kS4 * kAct)), 16);
    static constexpr int kRegionB = round_up(cmax(IPT * kS1 * kAct, cmax(IPT * kS3 * kAct, IPT * kS5 * kAct)), 16);
    static constexpr int kTeamBytes = kRegionA + kRegionB;

    // Weights in shared memory (wt_t elements; each piece a multiple of 4 elements, so 16-byte
    // aligned): conv1, conv2 kernels and biases, and with ALL_SMEM the dense ones too.
    static constexpr int kOffW0 = 0;
    static constexpr int kOffB0 = kOffW0 + round_up(L0::kernel_count, 4);
    static constexpr int kOffW1 = kOffB0 + round_up(L0::bias_count, 4);
    static constexpr int kOffB1 = kOffW1 + round_up(L1::kernel_count, 4);
    static constexpr int kOffW2 = kOffB1 + round_up(L1::bias_count, 4);
    static constexpr int kOffB2 = kOffW2 + round_up(L2::kernel_count, 4);
    static constexpr int kOffW3 = kOffB2 + round_up(L2::bias_count, 4);
    static constexpr int kOffB3 = kOffW3 + round_up(L3::kernel_count, 4);
    static constexpr int kOffW4 = kOffB3 + round_up(L3::bias_count, 4);
    static constexpr int kOffB4 = kOffW4 + round_up(L4::kernel_count, 4);
    static constexpr int kOffEnd = kOffB4 + round_up(L4::bias_count, 4);
    static constexpr int kWeightElems = DENSE_SMEM ? kOffEnd : kOffW2;
    static constexpr int kWeightBytes = round_up(kWeightElems * int(sizeof(wt_t)), 16);

    static constexpr int kCSplit = CSPLIT;
    static_assert(CSPLIT == 0 || (IPT == 1 && TEAM == BLOCK), "split stages: one image per block");
    // Partial sums of the split stages (acc_t elements).
    static constexpr int kScratchElems =
        CSPLIT == 0
            ? 0
            : cmax(CSPLIT * L1::out_c * L1::out_h * L1::out_w * L1::pool * L1::pool,
                   cmax(dense_slices<L2, OGMAX>(BLOCK) * L2::out,
                        cmax(dense_slices<L3, OGMAX>(BLOCK) * L3::out, dense_slices<L4, OGMAX>(BLOCK) * L4::out)));
    static constexpr int kScratchBytes = round_up(kScratchElems * int(sizeof(acc_t)), 16);
    static constexpr int kSmemBytes = kWeightBytes + kTeamsPerBlock * kTeamBytes + kScratchBytes;
};

// One pooled output from its pool*pool conv sums: fixed mode casts each, applies ReLU, then
// pools (the cast need not be monotone: AP_WRAP); float mode pools, then adds the bias and
// applies ReLU (both monotone, the bias per channel: exact).
template <class M, bool RELU, int N, class ActT>
__device__ __forceinline__ ActT finish_pooled(const typename M::acc_t (&v)[N], typename M::acc_t bias,
                                              const FixedCast& fc) {
    if constexpr (M::kFixed) {
        int64_t best = fixed_neuron<RELU>(v[0], bias, fc);
#pragma unroll
        for (int i = 1; i < N; ++i) {
            const int64_t r = fixed_neuron<RELU>(v[i], bias, fc);
            best = r > best ? r : best;
        }
        return ActT(best);
    } else {
        float x = v[0];
#pragma unroll
        for (int i = 1; i < N; ++i) x = fmaxf(x, v[i]);
        x += bias;
        return RELU ? fmaxf(x, 0.0f) : x;
    }
}

// One dense output from its sum.
template <class M, bool RELU, class ActT>
__device__ __forceinline__ ActT finish_dense(typename M::acc_t sum, typename M::acc_t bias, const FixedCast& fc) {
    if constexpr (M::kFixed) {
        return ActT(fixed_neuron<RELU>(sum, bias, fc));
    } else {
        const float x = sum + bias;
        return RELU ? fmaxf(x, 0.0f) : x;
    }
}

// The team's images into shared memory (as bytes, or converted to ImgT); missing images (a short
// last group) are zeros.
template <int IPT, int TEAM, class ImgT>
__device__ __forceinline__ void load_images(ImgT* dst, const uint8_t* src, int valid, bool vec16, int rank) {
    constexpr int kTotal = IPT * kImageBytes;
    if (kImageBytes % 16 == 0 && vec16) {
        constexpr int kVecs = kTotal / 16;
        const int nv = valid * (kImageBytes / 16);
        const uint4* s = reinterpret_cast<const uint4*>(src);
        for (int i = rank; i < kVecs; i += TEAM) {
            const uint4 v = i < nv ? __ldcs(s + i) : make_uint4(0, 0, 0, 0);
            if constexpr (sizeof(ImgT) == 1) {
                reinterpret_cast<uint4*>(dst)[i] = v;
            } else {
                const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int j = 0; j < 16; ++j) dst[i * 16 + j] = ImgT((words[j / 4] >> (8 * (j % 4))) & 0xffu);
            }
        }
    } else {
        const int nb = valid * kImageBytes;
        for (int i = rank; i < kTotal; i += TEAM) dst[i] = ImgT(i < nb ? src[i] : 0);
    }
}

// Input channel `ci`'s share of a pool x pool block of conv outputs for CG output channels: each
// kernel row's input span is read once and reused across the kernel columns and the block.
template <class L, int CG, int WV, class InT, class WT, class AccT>
__device__ __forceinline__ void accumulate_channel(AccT (&acc)[L::pool * L::pool][CG], const InT* __restrict__ src,
                                                   const WT* __restrict__ wg, int ci) {
    constexpr int K = L::kernel, P = L::pool, CI = L::in_c, CO = L::out_c, W = L::in_w, XW = P + K - 1;
#pragma unroll
    for (int kh = 0; kh < K; ++kh) {
        AccT x[P][XW];
#pragma unroll
        for (int dy = 0; dy < P; ++dy)
#pragma unroll
            for (int c = 0; c < XW; ++c) x[dy][c] = AccT(src[((kh + dy) * W + c) * CI + ci]);
#pragma unroll
        for (int kw = 0; kw < K; ++kw) {
            WT wv[CG];
            load_shared<CG, WV>(wv, wg + ((kh * K + kw) * CI + ci) * CO);
#pragma unroll
            for (int dy = 0; dy < P; ++dy)
#pragma unroll
                for (int dx = 0; dx < P; ++dx)
#pragma unroll
                    for (int c = 0; c < CG; ++c)
                        acc[dy * P + dx][c] = fma_acc(x[dy][dx + kw], AccT(wv[c]), acc[dy * P + dx][c]);
        }
    }
}

// Convolution + bias + ReLU + max-pool.  Work item = (image, pooled position, channel group of
// CG); images vary fastest, so a warp's lanes share the channel group and its kernel loads are
// broadcasts.  A thread keeps the pool*pool conv outputs of its CG channels in registers.
template <class L, int CG, int IPT, int TEAM, int IN_STRIDE, int OUT_STRIDE, class M, class InT, class ActT, class WT>
__device__ __forceinline__ void conv_stage(const InT* __restrict__ in, ActT* __restrict__ out, const WT* __restrict__ w,
                                           const WT* __restrict__ b, const FixedCast& fc, int rank) {
    using acc_t = typename M::acc_t;
    using act_t = ActT;
    constexpr int P = L::pool, PH = L::out_h, PW = L::out_w;
    constexpr int CI = L::in_c, CO = L::out_c, W = L::in_w;
    static_assert(CO % CG == 0, "channel group must divide the channels");
    constexpr int G = CO / CG, kItems = IPT * PH * PW * G;
    constexpr int WV = pick_vec<WT>(CG, CO);

    for (int item = rank; item < kItems; item += TEAM) {
        const int m = item % IPT;
        int t = item / IPT;
        const int px = t % PW;
        t /= PW;
        const int py = t % PH;
        const int g = t / PH;

        acc_t acc[P * P][CG];
#pragma unroll
        for (int i = 0; i < P * P; ++i)
#pragma unroll
            for (int c = 0; c < CG; ++c) acc[i][c] = acc_t(0);

        const InT* src = in + m * IN_STRIDE + (py * P * W + px * P) * CI;
        const WT* wg = w + g * CG;
#pragma unroll 1
        for (int ci = 0; ci < CI; ++ci) {
            accumulate_channel<L, CG, WV>(acc, src, wg, ci);
        }

        act_t* dst = out + m * OUT_STRIDE + (py * PW + px) * CO + g * CG;
#pragma unroll
        for (int c = 0; c < CG; ++c) {
            acc_t v[P * P];
#pragma unroll
            for (int i = 0; i < P * P; ++i) v[i] = acc[i][c];
            dst[c] = finish_pooled<M, L::relu, P * P, act_t>(v, acc_t(b[g * CG + c]), fc);
        }
    }
}

// Convolution for one image over a whole block (latency): work item = (pooled position, channel
// group of CG, group of CI/CSPLIT input channels); the partial sums of each conv output meet in
// `scratch`, and a second pass sums them (in input-channel order), pools and finishes.
template <class L, int CG, int CSPLIT, int TEAM, int OUT_STRIDE, class M, class InT, class ActT, class WT>
__device__ __forceinline__ void conv_split_stage(const InT* __restrict__ in, ActT* __restrict__ out,
                                                 const WT* __restrict__ w, const WT* __restrict__ b,
                                                 typename M::acc_t* __restrict__ scratch, const FixedCast& fc,
                                                 int rank) {
    using acc_t = typename M::acc_t;
    constexpr int P = L::pool, PH = L::out_h, PW = L::out_w, NPOS = PH * PW;
    constexpr int CI = L::in_c, CO = L::out_c, W = L::in_w;
    static_assert(CO % CG == 0 && CI % CSPLIT == 0, "groups must divide the channels");
    constexpr int G = CO / CG, CPS = CI / CSPLIT, kItems = NPOS * G * CSPLIT;
    constexpr int WV = pick_vec<WT>(CG, CO);

    for (int item = rank; item < kItems; item += TEAM) {
        const int pos = item % NPOS;
        const int t = item / NPOS;
        const int g = t % G, cs = t / G;
        const int py = pos / PW, px = pos % PW;
        acc_t acc[P * P][CG];
#pragma unroll
        for (int i = 0; i < P * P; ++i)
#pragma unroll
            for (int c = 0; c < CG; ++c) acc[i][c] = acc_t(0);
        const InT* src = in + (py * P * W + px * P) * CI;
#pragma unroll 1
        for (int cj = 0; cj < CPS; ++cj) {
            const int ci = cs * CPS + cj;
            accumulate_channel<L, CG, WV>(acc, src, w + g * CG, ci);
        }
#pragma unroll
        for (int c = 0; c < CG; ++c)
#pragma unroll
            for (int i = 0; i < P * P; ++i) scratch[((cs * CO + g * CG + c) * NPOS + pos) * (P * P) + i] = acc[i][c];
    }
    team_sync<TEAM>();
    for (int item = rank; item < NPOS * CO; item += TEAM) {
        const int co = item % CO, pos = item / CO;
        acc_t v[P * P];
#pragma unroll
        for (int i = 0; i < P * P; ++i) {
            v[i] = scratch[(co * NPOS + pos) * (P * P) + i];
#pragma unroll
            for (int cs = 1; cs < CSPLIT; ++cs) v[i] += scratch[((cs * CO + co) * NPOS + pos) * (P * P) + i];
        }
        out[pos * CO + co] = finish_pooled<M, L::relu, P * P, ActT>(v, acc_t(b[co]), fc);
    }
    static_cast<void>(OUT_STRIDE);
}

// Dense layer for one image over a whole block (latency): work item = (OG outputs, slice of k);
// partial sums meet in `scratch` and are added in slice order.  Weights in shared memory.
template <class L, int OGMAX, int TEAM, bool W_SMEM, class M, class ActT, class WT>
__device__ __forceinline__ void dense_split_stage(const ActT* __restrict__ in, ActT* __restrict__ out,
                                                  const WT* __restrict__ w, const WT* __restrict__ b,
                                                  typename M::acc_t* __restrict__ scratch, const FixedCast& fc,
                                                  int rank) {
    using acc_t = typename M::acc_t;
    constexpr int IN = L::in, OUT = L::out, OG = dense_og<L, OGMAX>(), NOG = OUT / OG;
    constexpr int KSL = dense_slices<L, OGMAX>(TEAM), KPER = (IN + KSL - 1) / KSL;
    constexpr int WV = pick_vec<WT>(OG, OUT);
    for (int task = rank; task < NOG * KSL; task += TEAM) {
        const int og = task % NOG, sl = task / NOG;
        const int k0 = sl * KPER, k1 = k0 + KPER < IN ? k0 + KPER : IN;
        acc_t acc[OG];
#pragma unroll
        for (int o = 0; o < OG; ++o) acc[o] = acc_t(0);
#pragma unroll 4
        for (int k = k0; k < k1; ++k) {
            const acc_t a = acc_t(in[k]);
            WT wv[OG];
            if constexpr (W_SMEM) {
                load_shared<OG, WV>(wv, w + k * OUT + og * OG);
            } else {
                load_global<OG, WV>(wv, w + k * OUT + og * OG);
            }
#pragma unroll
            for (int o = 0; o < OG; ++o) acc[o] = fma_acc(a, acc_t(wv[o]), acc[o]);
        }
#pragma unroll
        for (int o = 0; o < OG; ++o) scratch[sl * OUT + og * OG + o] = acc[o];
    }
    team_sync<TEAM>();
    for (int o = rank; o < OUT; o += TEAM) {
        acc_t sum = scratch[o];
        for (int sl = 1; sl < KSL; ++sl) sum += scratch[sl * OUT + o];
        out[o] = finish_dense<M, L::relu, ActT>(sum, acc_t(W_SMEM ? b[o] : __ldg(b + o)), fc);
    }
}

// Dense layer.  Work item = (R images, OG consecutive outputs); outputs vary fastest, so a
// warp's lanes read consecutive kernel columns (coalesced) and the same activations (broadcast).
// The weights come from shared memory (W_SMEM) or global memory.
template <class L, int R, int IPT, int TEAM, int OGMAX, int KS, int IN_STRIDE, int OUT_STRIDE, bool W_SMEM, class M,
          class ActT, class WT>
__device__ __forceinline__ void dense_stage(const ActT* __restrict__ in, ActT* __restrict__ out,
                                            const WT* __restrict__ w, const WT* __restrict__ b, const FixedCast& fc,
                                            int rank) {
    using acc_t = typename M::acc_t;
    using act_t = ActT;
    constexpr int IN = L::in, OUT = L::out;
    constexpr int OG = dense_og<L, OGMAX>();
    constexpr int NOG = OUT / OG, NIG = IPT / R, kItems = NIG * NOG;
    static_assert(IPT % R == 0, "R must divide the images per team");
    constexpr int KV = pick_vec<act_t>(IN, IN_STRIDE);
    constexpr int WV = pick_vec<WT>(OG, OUT);
    static_assert(KV % KS == 0, "partial sums must divide the k step");

    for (int item = rank; item < kItems; item += TEAM) {
        const int og = item % NOG;
        const int ig = item / NOG;
        acc_t acc[KS][R][OG];
#pragma unroll
        for (int s = 0; s < KS; ++s)
#pragma unroll
            for (int r = 0; r < R; ++r)
#pragma unroll
                for (int o = 0; o < OG; ++o) acc[s][r][o] = acc_t(0);

        const act_t* a0 = in + ig * R * IN_STRIDE;
        const WT* w0 = w + og * OG;
#pragma unroll 2
        for (int k = 0; k < IN; k += KV) {
            act_t a[R][KV];
#pragma unroll
            for (int r = 0; r < R; ++r) load_shared<KV, KV>(a[r], a0 + r * IN_STRIDE + k);
#pragma unroll
            for (int kk = 0; kk < KV; ++kk) {
                WT wv[OG];
                if constexpr (W_SMEM) {
                    load_shared<OG, WV>(wv, w0 + (k + kk) * OUT);
                } else {
                    load_global<OG, WV>(wv, w0 + (k + kk) * OUT);
                }
#pragma unroll
                for (int r = 0; r < R; ++r)
#pragma unroll
                    for (int o = 0; o < OG; ++o)
                        acc[kk % KS][r][o] = fma_acc(acc_t(a[r][kk]), acc_t(wv[o]), acc[kk % KS][r][o]);
            }
        }

#pragma unroll
        for (int o = 0; o < OG; ++o) {
            const acc_t bias = acc_t(W_SMEM ? b[og * OG + o] : __ldg(b + og * OG + o));
#pragma unroll
            for (int r = 0; r < R; ++r) {
                acc_t sum = acc[0][r][o];
#pragma unroll
                for (int s = 1; s < KS; ++s) sum += acc[s][r][o];
                out[(ig * R + r) * OUT_STRIDE + og * OG + o] = finish_dense<M, L::relu, act_t>(sum, bias, fc);
            }
        }
    }
}

// Logits to global memory, and the class: the first of equal maxima, as numpy's argmax.
template <int IPT, int TEAM, int LS, class M, class ActT>
__device__ __forceinline__ void write_outputs(const ActT* __restrict__ lg, const NetIO& io, int64_t base, int valid,
                                              int rank) {
    using logit_t = typename M::logit_t;
    if (io.logits != nullptr) {
        logit_t* dst = static_cast<logit_t*>(io.logits) + base * kNumClasses;
        for (int i = rank; i < valid * kNumClasses; i += TEAM) {
            const int m = i / kNumClasses, c = i - m * kNumClasses;
            dst[i] = logit_t(lg[m * LS + c]);
        }
    }
    if (io.classes != nullptr) {
        for (int m = rank; m < valid; m += TEAM) {
            int best = 0;
            auto top = lg[m * LS];
#pragma unroll
            for (int c = 1; c < kNumClasses; ++c) {
                if (lg[m * LS + c] > top) {
                    top = lg[m * LS + c];
                    best = c;
                }
            }
            io.classes[base + m] = best;
        }
    }
}

// Starts the copy of `count` (rounded up to 4) floats; the source is padded to match.
template <int BLOCK>
__device__ __forceinline__ void prefetch_floats(float* dst, const float* src, int count) {
    for (int i = threadIdx.x * 4; i < count; i += BLOCK * 4) copy16_async(dst + i, src + i);
}

// Shared-memory layout of a block: the weights, then per team regions A and B, then the split
// stages' partial sums; dense weights in shared or global memory (see Config).
template <class C>
struct BlockSmem {
    using wt_t = typename C::wt_t;
    using act_t = typename C::act_t;
    using acc_t = typename C::acc_t;
    using img_t = typename C::img_t;
    wt_t* ws;
    const wt_t *w2, *b2, *w3, *b3, *w4, *b4;
    img_t* img;
    act_t *act1, *act2, *act3, *act4, *logits;
    acc_t* scratch;

    __device__ __forceinline__ BlockSmem(unsigned char* smem, const NetParams<typename C::mode>& p, int team) {
        ws = reinterpret_cast<wt_t*>(smem);
        const wt_t* wd[3];
        const wt_t* bd[3];
#pragma unroll
        for (int i = 0; i < 3; ++i) {
            constexpr int kOff[6] = {C::kOffW2, C::kOffB2, C::kOffW3, C::kOffB3, C::kOffW4, C::kOffB4};
            if constexpr (C::kDenseSmem) {
                wd[i] = ws + kOff[2 * i];
                bd[i] = ws + kOff[2 * i + 1];
            } else if constexpr (C::kAllSmem) {
                wd[i] = p.kernel_f[2 + i];
                bd[i] = p.bias_f[2 + i];
            } else {
                wd[i] = p.kernel[2 + i];
                bd[i] = p.bias[2 + i];
            }
        }
        w2 = wd[0], b2 = bd[0], w3 = wd[1], b3 = bd[1], w4 = wd[2], b4 = bd[2];
        unsigned char* region_a = smem + C::kWeightBytes + team * C::kTeamBytes;
        unsigned char* region_b = region_a + C::kRegionA;
        img = reinterpret_cast<img_t*>(region_a);
        act1 = reinterpret_cast<act_t*>(region_b);
        act2 = reinterpret_cast<act_t*>(region_a);
        act3 = reinterpret_cast<act_t*>(region_b);
        act4 = reinterpret_cast<act_t*>(region_a);
        logits = reinterpret_cast<act_t*>(region_b);
        scratch = reinterpret_cast<acc_t*>(smem + C::kWeightBytes + C::kTeamsPerBlock * C::kTeamBytes);
    }
};

// Starts (kAllSmem: asynchronous, two groups: conv, then dense) or does the copy of the weights
// into shared memory.
template <class C>
__device__ __forceinline__ void stage_weights(typename C::wt_t* ws, const NetParams<typename C::mode>& p) {
    constexpr int BLOCK = C::kBlock;
    if constexpr (C::kAllSmem) {
        // Two groups of asynchronous copies: the conv weights (awaited before conv1), the dense
        // ones (awaited before fc1, so they arrive while the convolutions run).
        prefetch_floats<BLOCK>(ws + C::kOffW0, p.kernel_f[0], L0::kernel_count);
        prefetch_floats<BLOCK>(ws + C::kOffB0, p.bias_f[0], L0::bias_count);
        prefetch_floats<BLOCK>(ws + C::kOffW1, p.kernel_f[1], L1::kernel_count);
        prefetch_floats<BLOCK>(ws + C::kOffB1, p.bias_f[1], L1::bias_count);
        async_commit();
        if constexpr (C::kDenseSmem) {
            prefetch_floats<BLOCK>(ws + C::kOffW2, p.kernel_f[2], L2::kernel_count);
            prefetch_floats<BLOCK>(ws + C::kOffB2, p.bias_f[2], L2::bias_count);
            prefetch_floats<BLOCK>(ws + C::kOffW3, p.kernel_f[3], L3::kernel_count);
            prefetch_floats<BLOCK>(ws + C::kOffB3, p.bias_f[3], L3::bias_count);
            prefetch_floats<BLOCK>(ws + C::kOffW4, p.kernel_f[4], L4::kernel_count);
            prefetch_floats<BLOCK>(ws + C::kOffB4, p.bias_f[4], L4::bias_count);
        }
        async_commit();
    } else {
        for (int i = threadIdx.x; i < L0::kernel_count; i += BLOCK) ws[C::kOffW0 + i] = __ldg(p.kernel[0] + i);
        for (int i = threadIdx.x; i < L0::bias_count; i += BLOCK) ws[C::kOffB0 + i] = __ldg(p.bias[0] + i);
        for (int i = threadIdx.x; i < L1::kernel_count; i += BLOCK) ws[C::kOffW1 + i] = __ldg(p.kernel[1] + i);
        for (int i = threadIdx.x; i < L1::bias_count; i += BLOCK) ws[C::kOffB1 + i] = __ldg(p.bias[1] + i);
        __syncthreads();
    }
}

// conv1 ... fc3 for the team's images, already in s.img; the logits end in s.logits, followed
// by a team barrier.
template <class C>
__device__ __forceinline__ void forward_team(const NetParams<typename C::mode>& p, const BlockSmem<C>& s, int rank) {
    using M = typename C::mode;
    constexpr int TEAM = C::kTeam, IPT = C::kImagesPerTeam;
    if constexpr (C::kAllSmem) async_wait<1>();  // conv weights (a no-op after the first image)
    team_sync<TEAM>();
    conv_stage<L0, C::kCg1, IPT, TEAM, kImageBytes, C::kS1, M>(s.img, s.act1, s.ws + C::kOffW0, s.ws + C::kOffB0,
                                                               p.cast[0], rank);
    team_sync<TEAM>();
    if constexpr (C::kCSplit > 0) {
        conv_split_stage<L1, C::kCg2, C::kCSplit, TEAM, C::kS2, M>(s.act1, s.act2, s.ws + C::kOffW1, s.ws + C::kOffB1,
                                                                   s.scratch, p.cast[1], rank);
    } else {
        conv_stage<L1, C::kCg2, IPT, TEAM, C::kS1, C::kS2, M>(s.act1, s.act2, s.ws + C::kOffW1, s.ws + C::kOffB1,
                                                              p.cast[1], rank);
    }
    if constexpr (C::kDenseSmem) async_wait<0>();  // dense weights
    team_sync<TEAM>();
    if constexpr (C::kCSplit > 0) {
        dense_split_stage<L2, C::kOgMax, TEAM, C::kDenseSmem, M>(s.act2, s.act3, s.w2, s.b2, s.scratch, p.cast[2],
                                                                 rank);
        team_sync<TEAM>();
        dense_split_stage<L3, C::kOgMax, TEAM, C::kDenseSmem, M>(s.act3, s.act4, s.w3, s.b3, s.scratch, p.cast[3],
                                                                 rank);
        team_sync<TEAM>();
        dense_split_stage<L4, C::kOgMax, TEAM, C::kDenseSmem, M>(s.act4, s.logits, s.w4, s.b4, s.scratch, p.cast[4],
                                                                 rank);
    } else {
        dense_stage<L2, C::kR, IPT, TEAM, C::kOgMax, C::kKSplit, C::kS2, C::kS3, C::kDenseSmem, M>(
            s.act2, s.act3, s.w2, s.b2, p.cast[2], rank);
        team_sync<TEAM>();
        dense_stage<L3, C::kR, IPT, TEAM, C::kOgMax, C::kKSplit, C::kS3, C::kS4, C::kDenseSmem, M>(
            s.act3, s.act4, s.w3, s.b3, p.cast[3], rank);
        team_sync<TEAM>();
        dense_stage<L4, C::kR, IPT, TEAM, C::kOgMax, C::kKSplit, C::kS4, C::kS5, C::kDenseSmem, M>(
            s.act4, s.logits, s.w4, s.b4, p.cast[4], rank);
    }
    team_sync<TEAM>();
}

template <class C>
__global__ void __launch_bounds__(C::kBlock, C::kMinBlocks)
    fused_network_kernel(const NetParams<typename C::mode> p, const NetIO io) {
    using M = typename C::mode;
    constexpr int TEAM = C::kTeam, IPT = C::kImagesPerTeam;
    extern __shared__ __align__(16) unsigned char smem[];

    const int team = threadIdx.x / TEAM, rank = threadIdx.x % TEAM;
    const BlockSmem<C> s(smem, p, team);
    stage_weights<C>(s.ws, p);

    const bool vec16 = (reinterpret_cast<uintptr_t>(io.images) & 15) == 0;
    const int64_t groups = (io.n + IPT - 1) / IPT;
    const int64_t stride = int64_t(gridDim.x) * C::kTeamsPerBlock;
    for (int64_t grp = int64_t(blockIdx.x) * C::kTeamsPerBlock + team; grp < groups; grp += stride) {
        const int64_t base = grp * IPT;
        const int valid = int(io.n - base < IPT ? io.n - base : IPT);
        load_images<IPT, TEAM, typename C::img_t>(s.img, io.images + base * kImageBytes, valid, vec16, rank);
        forward_team<C>(p, s, rank);
        write_outputs<IPT, TEAM, C::kS5, M>(s.logits, io, base, valid, rank);
        // The next group writes region A first (read last by fc3, before the sync above) and
        // region B only after the next sync, so no barrier is needed here.
    }
    if constexpr (C::kAllSmem) async_wait<0>();  // a block with no images still drains its copies
}

// ---------------------------------------------------------------------------- resident kernel
//
// The latency path for a few images in host memory (api.cu, "resident path"): a kernel of
// kResidentBlocks blocks stays on the GPU between calls with the weights in shared memory.  The
// host writes the images into mapped pinned memory and then a sequence number into the mailbox;
// block 0 polls the mailbox over PCIe and forwards each command to the other blocks through a
// word in device memory; block b takes image b; each image's logits and class go straight to
// mapped pinned memory, and the last block to finish writes `2 * seq` to the mailbox's status.
// (Block 0 forwards only commands of several images, and the end.)
// After `idle_ns` without a command (or on a quit command) the kernel ends and writes
// `2 * last + 1` (last: the last sequence number it took).  No launch, no copy, no stream
// synchronization on the way of an image.

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

template <class C>
__global__ void __launch_bounds__(C::kBlock, 1)
    resident_network_kernel(const NetParams<typename C::mode> p, const ResidentIO io) {
    using M = typename C::mode;
    using img_t = typename C::img_t;
    using logit_t = typename M::logit_t;
    static_assert(C::kTeam == C::kBlock && C::kImagesPerTeam == 1, "one image per block");
    static_assert(kImageBytes % 16 == 0, "images are read in 16-byte pieces");
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ unsigned int command[3];  // seq, n, quit

    const int rank = threadIdx.x;
    const BlockSmem<C> s(smem, p, 0);
    stage_weights<C>(s.ws, p);
    if constexpr (C::kAllSmem) async_wait<0>();
    __syncthreads();

    const uint64_t gen = uint64_t(io.gen & 0xffffffu) << 40;
    unsigned int last = io.start_seq;                   // block 0: the last command taken
    unsigned long long last_word = uint64_t(io.start_seq) << 1;  // others: the last forwarded word
    unsigned long long idle_since = global_ns();
    for (;;) {
        if (rank == 0) {
            unsigned int seq = 0, n = 0, quit = 0;
            if (blockIdx.x == 0) {
                for (unsigned int polls = 0;; ++polls) {
                    const unsigned long long word = ld_acquire_sys(&io.mailbox->command);
                    seq = unsigned(word & 0xffffffffull);
                    if (seq != last) {
                        n = unsigned(word >> 32) & 0xffffu;
                        quit = unsigned(word >> 48) & 1u;
                        st_relaxed_sys(&io.mailbox->t_seen, global_ns());
                        break;
                    }
                    // Idle: stop once nothing came for idle_ns and the last command is complete.
                    if ((polls & 7) == 7 && global_ns() - idle_since > io.idle_ns &&
                        (last == io.start_seq || ld_acquire_gpu(&io.state->completed) == last)) {
                        seq = last;
                        quit = 1;
                        break;
                    }
                }
                if (quit) seq = last;
                // The other blocks need only commands of several images, and the end.
                if (gridDim.x > 1 && (n > 1 || quit))
                    st_release_gpu(&io.state->go, gen | (uint64_t(n & 0xffu) << 32) | (uint64_t(seq) << 1) | quit);
            } else {
                unsigned long long word;
                for (;;) {
                    word = ld_acquire_gpu(&io.state->go);
                    if ((word & (0xffffffull << 40)) == gen && (word & 0xffffffffull) != (last_word & 0xffffffffull))
                        break;
                }
                last_word = word;
                seq = unsigned(word & 0xffffffffull) >> 1;
                n = unsigned(word >> 32) & 0xffu;
                quit = unsigned(word & 1u);
            }
            command[0] = seq;
            command[1] = n;
            command[2] = quit;
        }
        __syncthreads();
        const unsigned int seq = command[0], n = command[1], quit = command[2];
        __syncthreads();  // command[] is rewritten by the next poll
        if (quit) break;
        last = seq;
        const unsigned int b = blockIdx.x;
        if (b < n) {
            const unsigned char* src = io.images + size_t(b) * kImageBytes;
            if (rank < kImageBytes / 16) {
                const uint4 v = ld_volatile16(src + rank * 16);
                const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int j = 0; j < 16; ++j) s.img[rank * 16 + j] = img_t((words[j / 4] >> (8 * (j % 4))) & 0xffu);
            }
            forward_team<C>(p, s, rank);
            if (rank == 0) {
                // The logits and the class (first of equal maxima), then the signal.
                logit_t* lg = static_cast<logit_t*>(io.logits) + size_t(b) * kNumClasses;
                int best = 0;
                auto top = s.logits[0];
                lg[0] = logit_t(top);
#pragma unroll
                for (int c = 1; c < kNumClasses; ++c) {
                    const auto v = s.logits[c];
                    lg[c] = logit_t(v);
                    if (v > top) {
                        top = v;
                        best = c;
                    }
                }
                io.classes[b] = best;
                if (n == 1) {
                    st_relaxed_gpu(&io.state->completed, seq);
                    st_relaxed_sys(&io.mailbox->t_done, global_ns());
                    st_release_sys(&io.mailbox->status, seq << 1);
                } else {
                    __threadfence_system();
                    if (atomicAdd(&io.state->count, 1u) == n - 1) {
                        io.state->count = 0;
                        __threadfence();
                        st_relaxed_gpu(&io.state->completed, seq);
                        st_relaxed_sys(&io.mailbox->t_done, global_ns());
                        __threadfence_system();
                        st_release_sys(&io.mailbox->status, seq << 1);
                    }
                }
            }
        }
        if (blockIdx.x == 0) idle_since = global_ns();
    }
    if (blockIdx.x == 0 && rank == 0) st_release_sys(&io.mailbox->status, (last << 1) | 1u);
}

}  // namespace lenet5
