// The stages of the fused kernel, one per layer kind (convolution, split convolution, dense,
// split dense), the image load, the output write, and a team's pass through the whole network.
#pragma once

#include "config.cuh"

namespace lenet5 {

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

}  // namespace lenet5
