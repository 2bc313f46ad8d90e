// The two arithmetics of the tensor kernel (tensor_kernel.cuh), as policies:
//
// * HalfArith (LENET5_MODE_HALF): weights and activations rounded to fp16, fp32 sums.  Reduced
//   precision: agrees with the float network on most images, not bit for bit.
// * LimbArith (the fixed mode's tensor variant): exact.  Every 16-bit activation and weight is
//   split into 8-bit limbs, a = a_hi * 256 + a_lo (a_lo, a_hi unsigned: activations are ReLU
//   outputs or pixel bytes) and w = w_hi * 256 + w_lo (w_lo unsigned, w_hi signed), and
//   a * w = (a_lo w_lo) + 256 (a_lo w_hi + a_hi w_lo) + 65536 (a_hi w_hi); each of the three sums
//   goes through int8 mma into its own int32 accumulator (no overflow: see kMaxFanIn) and they
//   are combined in int64 before the cast of fixed_cast.cuh, in its branch-free form.
//
// Each policy says how many byte planes an activation or a weight takes, how a fragment's
// products accumulate (`mma`), what a sum is (`sum`), how a neuron finishes (`finish`), and how
// one value is written into its planes, on the device (`store`) and, for weights, on the host
// (`put_weight`).
#pragma once

#include <cstdint>
#include <cstring>

#include <cuda_fp16.h>

#include "device_helpers.cuh"
#include "tensor_ops.cuh"

namespace lenet5 {

struct HalfArith {
    static constexpr int kMode = LENET5_MODE_HALF;
    static constexpr int kElemBytes = 2;
    static constexpr int kPlanes = 1;        // activations: fp16
    static constexpr int kWeightPlanes = 1;  // weights: fp16
    using bias_t = float;
    using logit_t = float;
    using value_t = float;
    struct Epilogue {
        float scale;  // conv1: 2**-kPixelFracBits (the pixel byte enters unscaled), else 1
    };
    struct Acc {
        float v[4];
    };

    template <int IN_PLANES>
    __device__ __forceinline__ static void mma(Acc& acc, const FragA (&a)[IN_PLANES], const FragB (&b)[1]) {
        static_assert(IN_PLANES == 1, "fp16 activations have one plane");
        mma_f16(acc.v, a[0], b[0]);
    }
    __device__ __forceinline__ static float sum(const Acc& acc, int i) { return acc.v[i]; }

    // One output from N sums (N = 4: a max-pool window; both the scale and the bias are the
    // same for the window, so pooling first is exact).
    template <bool RELU, int N>
    __device__ __forceinline__ static float finish(const float (&v)[N], float bias, const Epilogue& e) {
        float x = v[0];
#pragma unroll
        for (int i = 1; i < N; ++i) x = fmaxf(x, v[i]);
        x = fmaf(x, e.scale, bias);
        return RELU ? fmaxf(x, 0.0f) : x;
    }
    // Element `elem` of an activation buffer whose planes are `plane_bytes` apart.
    __device__ __forceinline__ static void store(unsigned char* base, int plane_bytes, int elem, float x) {
        static_cast<void>(plane_bytes);
        reinterpret_cast<__half*>(base)[elem] = __float2half_rn(x);
    }
    // Host: weight `w` as element `elem` of a fragment whose planes are `plane_bytes` apart.
    static void put_weight(unsigned char* base, int plane_bytes, int elem, double w) {
        static_cast<void>(plane_bytes);
        const __half h = __float2half_rn(float(w));
        std::memcpy(base + elem * kElemBytes, &h, sizeof h);
    }
};

struct LimbArith {
    static constexpr int kMode = LENET5_MODE_FIXED;
    static constexpr int kElemBytes = 1;
    static constexpr int kPlanes = 2;        // activations: low byte, high byte (both unsigned)
    static constexpr int kWeightPlanes = 2;  // weights: low byte (unsigned), high byte (signed)
    using bias_t = long long;  // raw bias << bias_shift
    using logit_t = int16_t;
    using value_t = long long;  // the exact sum
    using Epilogue = FlatCast;
    // The int32 limb sums cannot overflow: |a_lo w_hi + a_hi w_lo| <= 2 * 255 * 255 per product.
    static constexpr int kMaxFanIn = 16384;
    static_assert(int64_t(kMaxFanIn) * 2 * 255 * 255 < (int64_t(1) << 31), "limb sums fit int32");
    struct Acc {
        int32_t lo[4];   // a_lo * w_lo
        int32_t mid[4];  // a_lo * w_hi + a_hi * w_lo
        int32_t hi[4];   // a_hi * w_hi
    };

    // IN_PLANES = 1: the pixel bytes (no high limb).
    template <int IN_PLANES>
    __device__ __forceinline__ static void mma(Acc& acc, const FragA (&a)[IN_PLANES], const FragB (&b)[2]) {
        mma_u8<false>(acc.lo, a[0], b[0]);
        mma_u8<true>(acc.mid, a[0], b[1]);
        if constexpr (IN_PLANES == 2) {
            mma_u8<false>(acc.mid, a[1], b[0]);
            mma_u8<true>(acc.hi, a[1], b[1]);
        }
    }
    __device__ __forceinline__ static long long sum(const Acc& acc, int i) {
        return (long long)acc.lo[i] + (long long)acc.mid[i] * 256 + (long long)acc.hi[i] * 65536;
    }

    // The fixed mode's neuron (sum + bias, cast, ReLU), then the pool's maximum, as the golden
    // model orders them.  A cast that never decreases (AP_SAT, AP_SAT_SYM; ReLU too) gives the
    // same maximum when the window is pooled first, with one cast instead of N.
    template <bool RELU, int N>
    __device__ __forceinline__ static long long finish(const long long (&v)[N], long long bias, const Epilogue& e) {
        auto neuron = [&](long long x) {
            const long long r = flat_cast(x + bias, e);
            return RELU && r < 0 ? 0ll : r;
        };
        if (N == 1 || e.monotone) {
            long long m = v[0];
#pragma unroll
            for (int i = 1; i < N; ++i) m = v[i] > m ? v[i] : m;
            return neuron(m);
        }
        long long best = neuron(v[0]);
#pragma unroll
        for (int i = 1; i < N; ++i) {
            const long long r = neuron(v[i]);
            best = r > best ? r : best;
        }
        return best;
    }
    // x: a hidden layer's output, 0 <= x < 2**15 (ReLU, at most 16 signed bits).
    __device__ __forceinline__ static void store(unsigned char* base, int plane_bytes, int elem, long long x) {
        const unsigned v = unsigned(int(x));
        base[elem] = static_cast<unsigned char>(v & 0xffu);
        base[plane_bytes + elem] = static_cast<unsigned char>(v >> 8);
    }
    static void put_weight(unsigned char* base, int plane_bytes, int elem, double w) {
        const int v = int(w);  // a raw int16
        base[elem] = static_cast<unsigned char>(v & 0xff);
        base[plane_bytes + elem] = static_cast<unsigned char>((v >> 8) & 0xff);
    }
};

}  // namespace lenet5
