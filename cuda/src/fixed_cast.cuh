// The output cast of a fixed-point layer: an exact accumulator (raw integer with
// accum_frac_bits fraction bits) assigned to the output ap_fixed format, with its quantization
// (rounding) and overflow (saturation) modes.  Mirrors lenet5_pynq/fixedpoint.py `cast`.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define LENET5_HD __host__ __device__ __forceinline__
#else
#define LENET5_HD inline
#endif

namespace lenet5 {

// Values of lenet5_rounding / lenet5_saturation in lenet5_gpu.h.
enum Rounding : int32_t { kTrn = 0, kTrnZero, kRnd, kRndZero, kRndMinInf, kRndInf, kRndConv, kNumRounding };
enum Saturation : int32_t { kWrap = 0, kSat, kSatZero, kSatSym, kNumSaturation };

// One layer's output cast, prepared on the host (lenet5_gpu_create checks the ranges).
struct FixedCast {
    int32_t shift;       // accum_frac_bits - out_frac_bits: > 0 rounds, < 0 shifts left
    int32_t width;       // output bits, 1..16, signed
    int32_t rounding;    // Rounding
    int32_t saturation;  // Saturation
    int64_t min_raw;     // -2**(width-1)
    int64_t max_raw;     //  2**(width-1) - 1
};

LENET5_HD int64_t fixed_cast(int64_t raw, const FixedCast& c) {
    int64_t q;
    if (c.shift > 0) {
        const int s = c.shift;
        const int64_t floor = raw >> s;  // arithmetic shift: rounds toward minus infinity
        const int64_t rem = raw - floor * (int64_t(1) << s);  // 0 <= rem < 2**s
        const int64_t half = int64_t(1) << (s - 1);
        const bool above = rem > half, tie = rem == half, neg = raw < 0;
        bool up;
        switch (c.rounding) {
            case kTrn: up = false; break;
            case kTrnZero: up = rem != 0 && neg; break;
            case kRnd: up = rem >= half; break;
            case kRndZero: up = above || (tie && neg); break;
            case kRndMinInf: up = above; break;
            case kRndInf: up = above || (tie && !neg); break;
            default: up = above || (tie && (floor & 1)); break;  // kRndConv
        }
        q = floor + (up ? 1 : 0);
    } else {
        q = raw * (int64_t(1) << -c.shift);
    }
    switch (c.saturation) {
        case kWrap: {
            const uint64_t mask = (uint64_t(1) << c.width) - 1;
            int64_t w = int64_t(uint64_t(q) & mask);
            if (w > c.max_raw) w -= int64_t(1) << c.width;
            return w;
        }
        case kSat: return q < c.min_raw ? c.min_raw : (q > c.max_raw ? c.max_raw : q);
        case kSatZero: return (q < c.min_raw || q > c.max_raw) ? 0 : q;
        default: return q < -c.max_raw ? -c.max_raw : (q > c.max_raw ? c.max_raw : q);  // kSatSym
    }
}

// The same cast without branches on the modes (the tensor kernel's epilogue: thousands a pass),
// its constants prepared once by make_flat_cast.  Rounding as an addend before the arithmetic
// right shift: by sign, plus the floor's lowest bit for AP_RND_CONV (ties to even); saturation
// as a clamp, a zero outside the range (AP_SAT_ZERO) or a sign extension (AP_WRAP).
struct FlatCast {
    int32_t shift;          // as FixedCast
    int32_t wrap_bits;      // AP_WRAP: 64 - width, else 0
    int64_t add_neg, add_pos;
    int64_t odd_up;         // AP_RND_CONV: 1, else 0
    int64_t lo, hi;         // the range (AP_SAT_SYM: -max .. max)
    int32_t zero_outside;   // AP_SAT_ZERO
    int32_t monotone;       // never decreasing (AP_SAT, AP_SAT_SYM): max-pooling may come first
};

inline FlatCast make_flat_cast(const FixedCast& c) {
    FlatCast f{};
    f.shift = c.shift;
    if (c.shift > 0) {
        const int64_t half = int64_t(1) << (c.shift - 1), all = (int64_t(1) << c.shift) - 1;
        switch (c.rounding) {
            case kTrn: f.add_neg = f.add_pos = 0; break;
            case kTrnZero:
                f.add_neg = all;
                f.add_pos = 0;
                break;
            case kRnd: f.add_neg = f.add_pos = half; break;
            case kRndZero:
                f.add_neg = half;
                f.add_pos = half - 1;
                break;
            case kRndMinInf: f.add_neg = f.add_pos = half - 1; break;
            case kRndInf:
                f.add_neg = half - 1;
                f.add_pos = half;
                break;
            default:  // kRndConv
                f.add_neg = f.add_pos = half - 1;
                f.odd_up = 1;
                break;
        }
    }
    f.wrap_bits = c.saturation == kWrap ? 64 - c.width : 0;
    f.lo = c.saturation == kSatSym ? -c.max_raw : c.min_raw;
    f.hi = c.max_raw;
    f.zero_outside = c.saturation == kSatZero;
    f.monotone = c.saturation == kSat || c.saturation == kSatSym;
    return f;
}

LENET5_HD int64_t flat_cast(int64_t raw, const FlatCast& f) {
    int64_t q;
    if (f.shift > 0) {
        const int64_t add = (raw < 0 ? f.add_neg : f.add_pos) + (f.odd_up & (raw >> f.shift));
        q = (raw + add) >> f.shift;
    } else {
        q = raw * (int64_t(1) << -f.shift);
    }
    if (f.wrap_bits) return int64_t(uint64_t(q) << f.wrap_bits) >> f.wrap_bits;
    const int64_t clamped = q < f.lo ? f.lo : (q > f.hi ? f.hi : q);
    return f.zero_outside && clamped != q ? 0 : clamped;
}

}  // namespace lenet5
