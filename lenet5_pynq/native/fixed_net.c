/* The fixed-point LeNet-5 for the `cpu` backend: lenet5_pynq/golden.py in C, bit for bit.
 *
 * Per layer, as fixedspec.py defines the datapath:  acc = sum(x * w) + bias  over raw integers,
 * then  out = cast(acc)  to the output format (its rounding, then its saturation, the code of
 * fixedpoint.cast), ReLU, and max-pool after the conv layers.  golden.py sums in float64, which
 * is exact for integers below 2^53; here the sums are integers too, so both give the same words.
 *
 * Why no sum overflows, for every spec fixedspec.load accepts (the Python side, in
 * backends/cpu.py `fixed_kernel_problem`, checks the two conditions that depend on the spec and
 * runs numpy otherwise):
 *  - every activation x is non-negative and below 2^15: a layer's input is the pixel byte
 *    (0..255) or the ReLU of a signed output of at most 16 bits (fixedspec.validate); every
 *    kernel word w is signed and at most 16 bits, |w| <= 2^15.
 *  - x = 256 * hi + lo with 0 <= lo <= 255 and 0 <= hi <= 127, and sum(lo * w) and sum(hi * w)
 *    are summed apart in int32: any partial sum of at most MAX_TERMS = 256 terms is at most
 *    256 * 255 * 2^15 = 2,139,095,040 < 2^31 in magnitude, whatever order the vector code adds in
 *    (the #if below checks every fan-in; pixels need no hi part).
 *  - then  sum = lo_sum + 256 * hi_sum + bias  in int64: |lo_sum + 256 * hi_sum| < 2^39, and
 *    the Python side runs this kernel only if every |bias| < 2^53 - 2^39, so the sum is below
 *    2^53: no int64 overflow here, and golden.py's float64 sums are exact.
 *  - the cast's shift (accumulator fraction bits less output fraction bits) is within
 *    -MAX_SHIFT..MAX_SHIFT (checked by Python and below), where C shifts of int64 are defined.
 *
 * The sizes (-D, native.network_defines) and the output formats (-D CONV1_SHIFT, CONV1_ROUND,
 * ..., from the loaded spec: backends/cpu.py `fixed_defines`) are compile-time constants, so
 * every trip count is known and each cast compiles to its few instructions.
 *
 * The multiply-adds are products of int16 pairs summed into int32 lanes (x86's pmaddwd, which the
 * weight and activation layouts below are made for):
 *  - x86-64: vpdpwssd on AVX-512 registers with VNNI, else vpmaddwd on AVX-512, AVX2 or SSE2;
 *  - AArch64: smull/smull2 and addp on NEON registers; ARMv7 with NEON: vmull.s16 and vpadd;
 *  - elsewhere, and with -DFIXED_VECTOR_BITS=0: GCC vector extensions (scalar where no vectors).
 * All are exact integer arithmetic, so every path gives the same bits; FIXED_VECTOR_BITS=256 or
 * 128 selects the narrower x86 paths, so tests check them all on one machine.
 */
#define _POSIX_C_SOURCE 200809L /* pthreads and clock_gettime under -std=c99 (work_pool.h) */
#include <stdint.h>
#include <string.h>

#include "fixed_net.h"
#include "work_pool.h"

/* ap_fixed's names for the modes; the -D CONV1_ROUND=AP_RND ... values are these names. */
#define AP_TRN 0
#define AP_TRN_ZERO 1
#define AP_RND 2
#define AP_RND_ZERO 3
#define AP_RND_MIN_INF 4
#define AP_RND_INF 5
#define AP_RND_CONV 6
#define AP_WRAP 0
#define AP_SAT 1
#define AP_SAT_ZERO 2
#define AP_SAT_SYM 3

#define MAX_SHIFT 62
#define MAX_TERMS 256
#define LO_BITS 8 /* x = hi << LO_BITS | lo */
#define LO_MAX ((1 << LO_BITS) - 1)
#define HI_MAX (32767 >> LO_BITS)
#define W_MAX 32768

#define ROUND_UP(n, m) (((n) + (m) - 1) / (m) * (m))
#define PAIRS(n) (((n) + 1) / 2)

/* conv1 runs over output positions: whole input rows of IN_W positions (the last K-1 of each
 * are computed and never used), pairs of kernel columns in one multiply-add. */
#define CONV1_KXP PAIRS(CONV1_K)                   /* column pairs a kernel row: odd K pads a zero */
#define CONV1_POS ROUND_UP((CONV1_OH) * (IN_W), FIXED_PAD) /* positions computed */
#define CONV1_PAIR_WORDS (CONV1_POS + (CONV1_K - 1) * IN_W + 2 * (CONV1_KXP - 1))
/* The later layers run over output channels, pairs of input channels (units) in one multiply-add. */
#define CONV1_CP PAIRS(CONV1_F) /* conv2's input channel pairs */
#define CONV2_FP ROUND_UP(CONV2_F, FIXED_PAD)
#define FC1_NP PAIRS(FLAT)
#define FC1_MP ROUND_UP(FC1_N, FIXED_PAD)
#define FC2_NP PAIRS(FC1_N)
#define FC2_MP ROUND_UP(FC2_N, FIXED_PAD)
#define FC3_NP PAIRS(FC2_N)
#define FC3_MP ROUND_UP(FC3_N, FIXED_PAD)
#define MAX_MP ROUND_UP(MAX_ROW_DENSE, FIXED_PAD)

#if CONV1_K * CONV1_K * LO_MAX * W_MAX > INT32_MAX
#error "conv1's fan-in is too large for int32 sums of pixels"
#endif
#if CONV2_K * CONV2_K * CONV1_F > MAX_TERMS || FLAT > MAX_TERMS || FC1_N > MAX_TERMS || FC2_N > MAX_TERMS
#error "a fan-in exceeds MAX_TERMS, beyond which int32 sums of lo * w could overflow"
#endif
#if MAX_TERMS * LO_MAX * W_MAX > INT32_MAX || MAX_TERMS * HI_MAX * W_MAX > INT32_MAX
#error "MAX_TERMS is too large for int32 sums"
#endif
#if CONV1_SHIFT > MAX_SHIFT || CONV1_SHIFT < -MAX_SHIFT || CONV2_SHIFT > MAX_SHIFT || CONV2_SHIFT < -MAX_SHIFT || \
    FC1_SHIFT > MAX_SHIFT || FC1_SHIFT < -MAX_SHIFT || FC2_SHIFT > MAX_SHIFT || FC2_SHIFT < -MAX_SHIFT ||         \
    FC3_SHIFT > MAX_SHIFT || FC3_SHIFT < -MAX_SHIFT
#error "a cast shift is outside -MAX_SHIFT..MAX_SHIFT"
#endif
#if !(CONV1_RELU && CONV2_RELU && FC1_RELU && FC2_RELU)
#error "the split x = 256 hi + lo needs non-negative activations: ReLU on every layer but the last"
#endif

#ifndef FIXED_VECTOR_BITS
#define FIXED_VECTOR_BITS 512
#endif

/* vi: LANES int32 lanes; madd(acc, a, b): each lane of acc plus the products of the two int16
 * halves of a and b, low with low and high with high (pmaddwd).  MAX_GROUP: output positions
 * conv_channel_pairs keeps in registers (two accumulators each). */
#if FIXED_VECTOR_BITS >= 512 && defined(__AVX512BW__)
#include <immintrin.h>
#define INTRINSICS 1
#define LANES 16
#define MAX_GROUP 8
typedef int32_t vi __attribute__((vector_size(64)));
#ifdef __AVX512VNNI__
#define ISA "avx512-vnni"
static inline vi madd(vi acc, vi a, vi b) { return (vi)_mm512_dpwssd_epi32((__m512i)acc, (__m512i)a, (__m512i)b); }
#else
#define ISA "avx512"
static inline vi madd(vi acc, vi a, vi b) { return acc + (vi)_mm512_madd_epi16((__m512i)a, (__m512i)b); }
#endif
#elif FIXED_VECTOR_BITS >= 256 && defined(__AVX2__)
#include <immintrin.h>
#define INTRINSICS 1
#define LANES 8
#define MAX_GROUP 4
#define ISA "avx2"
typedef int32_t vi __attribute__((vector_size(32)));
static inline vi madd(vi acc, vi a, vi b) { return acc + (vi)_mm256_madd_epi16((__m256i)a, (__m256i)b); }
#elif FIXED_VECTOR_BITS >= 128 && defined(__SSE2__)
#include <emmintrin.h>
#define INTRINSICS 1
#define LANES 4
#define MAX_GROUP 4
#define ISA "sse2"
typedef int32_t vi __attribute__((vector_size(16)));
static inline vi madd(vi acc, vi a, vi b) { return acc + (vi)_mm_madd_epi16((__m128i)a, (__m128i)b); }
#elif FIXED_VECTOR_BITS >= 128 && defined(__ARM_NEON)
#include <arm_neon.h>
#define INTRINSICS 1
#define LANES 4
#define MAX_GROUP 4
typedef int32_t vi __attribute__((vector_size(16)));
static inline vi madd(vi acc, vi a, vi b) {
    const int16x8_t a16 = vreinterpretq_s16_s32((int32x4_t)a), b16 = vreinterpretq_s16_s32((int32x4_t)b);
    const int32x4_t lo = vmull_s16(vget_low_s16(a16), vget_low_s16(b16));
#ifdef __aarch64__
#define ISA "neon-a64"
    return acc + (vi)vpaddq_s32(lo, vmull_high_s16(a16, b16));
#else
#define ISA "neon"
    const int32x4_t hi = vmull_s16(vget_high_s16(a16), vget_high_s16(b16));
    return acc + (vi)vcombine_s32(vpadd_s32(vget_low_s32(lo), vget_high_s32(lo)),
                                  vpadd_s32(vget_low_s32(hi), vget_high_s32(hi)));
#endif
}
#else
#define INTRINSICS 0
#define LANES 4
#define MAX_GROUP 4
#define ISA "portable"
typedef int32_t vi __attribute__((vector_size(16)));
typedef uint32_t vu __attribute__((vector_size(16)));
static inline vi madd(vi acc, vi a, vi b) {
    const vi a_lo = (vi)((vu)a << 16) >> 16, b_lo = (vi)((vu)b << 16) >> 16; /* >> of a signed vector is arithmetic */
    return acc + a_lo * b_lo + (a >> 16) * (b >> 16);
}
#endif
typedef int64_t vl __attribute__((vector_size(2 * sizeof(vi))));

#if FIXED_PAD % LANES
#error "FIXED_PAD must be a multiple of the vector lanes"
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__ && INTRINSICS
#error "the intrinsic paths read int32 pairs as int16 halves, low half first: little-endian only"
#endif

static inline vi loadv(const int32_t *p) {
    vi v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline vi bcast(int32_t s) { return (vi){0} + s; }

/* Pair words: the low half is the first term, the high half the second (the weights are packed
 * the same way by backends/cpu.py). */
static inline int32_t pair(int32_t first, int32_t second) {
    return (int32_t)(((uint32_t)first & 0xffffu) | ((uint32_t)second << 16));
}

/* ----------------------------------------------------------------------- the cast (fixedpoint.cast) */
struct finish {
    int shift, rounding, saturation, relu, width;
    int64_t min_raw, max_raw;
};
#define FINISH_OF(L) {L##_SHIFT, L##_ROUND, L##_SAT, L##_RELU, L##_OUT_WIDTH, L##_OUT_MIN, L##_OUT_MAX}

/* v * 2^-shift rounded to an integer by `mode` (fixedpoint._shift_round), 1 <= shift <= MAX_SHIFT. */
static inline __attribute__((always_inline)) int64_t shift_round(int64_t v, int shift, int mode) {
    const int64_t floor = v >> shift; /* arithmetic shift: GCC's and clang's >> of a negative */
    const int64_t rem = v & ((INT64_C(1) << shift) - 1), half = INT64_C(1) << (shift - 1);
    const int above = rem > half, tie = rem == half;
    switch (mode) {
        case AP_TRN: return floor;
        case AP_TRN_ZERO: return floor + (rem != 0 && v < 0);
        case AP_RND: return floor + (rem >= half);
        case AP_RND_ZERO: return floor + (above || (tie && v < 0));
        case AP_RND_MIN_INF: return floor + above;
        case AP_RND_INF: return floor + (above || (tie && v >= 0));
        default: return floor + (above || (tie && (floor & 1))); /* AP_RND_CONV */
    }
}

/* An accumulator to its output word (fixedpoint.cast), then ReLU where the layer has it. */
static inline __attribute__((always_inline)) int32_t finish(int64_t acc, const struct finish f) {
    int64_t v = acc;
    if (f.shift > 0) v = shift_round(v, f.shift, f.rounding);
    else if (f.shift < 0) v = (int64_t)((uint64_t)v << -f.shift); /* wraps as numpy's int64 << does */
    switch (f.saturation) {
        case AP_WRAP: {
            const int64_t low = v & ((INT64_C(1) << f.width) - 1); /* output formats are signed */
            v = low > f.max_raw ? low - (INT64_C(1) << f.width) : low;
            break;
        }
        case AP_SAT: v = v < f.min_raw ? f.min_raw : v > f.max_raw ? f.max_raw : v; break;
        case AP_SAT_ZERO: v = v < f.min_raw || v > f.max_raw ? 0 : v; break;
        default: v = v < -f.max_raw ? -f.max_raw : v > f.max_raw ? f.max_raw : v; /* AP_SAT_SYM */
    }
    return (int32_t)(f.relu && v < 0 ? 0 : v);
}

/* Whether max-pooling the accumulators before the cast gives the same words as after it: when
 * the cast is monotone non-decreasing.  Every rounding mode is; clamping is (AP_SAT, AP_SAT_SYM),
 * wrapping and AP_SAT_ZERO are not, nor is a left shift that could wrap; ReLU is. */
static inline int pools_first(const struct finish f) {
    return f.shift >= 0 && (f.saturation == AP_SAT || f.saturation == AP_SAT_SYM);
}

/* ------------------------------------------------------------------------------------- layers */
/* One P x P window of accumulators a[dy * ystride + dx * xstride], max-pooled, biased and cast. */
static inline __attribute__((always_inline)) int32_t pool_window(const int64_t *a, int ystride, int xstride, int P,
                                                                 int64_t bias, const struct finish fin) {
    if (pools_first(fin)) {
        int64_t best = a[0];
        for (int dy = 0; dy < P; ++dy)
            for (int dx = 0; dx < P; ++dx) {
                const int64_t v = a[dy * ystride + dx * xstride];
                best = v > best ? v : best;
            }
        return finish(best + bias, fin);
    }
    int32_t best = finish(a[0] + bias, fin);
    for (int dy = 0; dy < P; ++dy)
        for (int dx = 0; dx < P; ++dx) {
            const int32_t v = finish(a[dy * ystride + dx * xstride] + bias, fin);
            best = v > best ? v : best;
        }
    return best;
}

/* Max-pool, bias and cast of one conv layer: acc[f * fstride + y * ystride + x * xstride]
 * (accumulators without bias) to out[(py * PW + px) * cstride + f], channels last.  The loops run
 * along the accumulators' rows (so that they vectorise) unless channels are adjacent. */
static inline __attribute__((always_inline)) void pool_finish(const int64_t *restrict acc, int F, int fstride,
                                                              int ystride, int xstride, int PH, int PW, int P,
                                                              const int64_t *restrict bias, const struct finish fin,
                                                              int cstride, int16_t *restrict out) {
    if (fstride == 1) {
        for (int py = 0; py < PH; ++py)
            for (int px = 0; px < PW; ++px)
                for (int f = 0; f < F; ++f)
                    out[(py * PW + px) * cstride + f] = (int16_t)pool_window(
                        acc + f + py * P * ystride + px * P * xstride, ystride, xstride, P, bias[f], fin);
        return;
    }
    int16_t pooled[PH * PW]; /* one channel's, row by row */
    for (int f = 0; f < F; ++f) {
        for (int py = 0; py < PH; ++py)
            for (int px = 0; px < PW; ++px)
                pooled[py * PW + px] = (int16_t)pool_window(acc + f * fstride + py * P * ystride + px * P * xstride,
                                                            ystride, xstride, P, bias[f], fin);
        for (int i = 0; i < PH * PW; ++i) out[i * cstride + f] = pooled[i];
    }
}

/* conv1 from the pixel bytes: out is [POOL1_H][POOL1_W][2 * CONV1_CP], channels last, a zero
 * channel after an odd count.  w: [CONV1_F][CONV1_K][CONV1_KXP] pairs of kernel columns. */
static void conv1_layer(const uint8_t *restrict image, const int32_t *restrict w, const int64_t *restrict bias,
                        int16_t *restrict out) {
    static const struct finish fin = FINISH_OF(CONV1);
    uint8_t pixels[CONV1_PAIR_WORDS + 1];
    int32_t pairs[CONV1_PAIR_WORDS]; /* pairs[i] = pixels i and i + 1 */
    int64_t acc[CONV1_F * CONV1_POS];
    memcpy(pixels, image, IN_H * IN_W);
    memset(pixels + IN_H * IN_W, 0, sizeof pixels - IN_H * IN_W);
    for (int i = 0; i < CONV1_PAIR_WORDS; ++i) pairs[i] = pair(pixels[i], pixels[i + 1]);
    for (int pos = 0; pos < CONV1_POS; pos += LANES) {
        vi sums[CONV1_F] = {{0}};
        for (int ky = 0; ky < CONV1_K; ++ky)
            for (int kp = 0; kp < CONV1_KXP; ++kp) {
                const vi x = loadv(pairs + pos + ky * IN_W + 2 * kp);
                for (int f = 0; f < CONV1_F; ++f)
                    sums[f] = madd(sums[f], x, bcast(w[(f * CONV1_K + ky) * CONV1_KXP + kp]));
            }
        for (int f = 0; f < CONV1_F; ++f) {
            const vl wide = __builtin_convertvector(sums[f], vl);
            memcpy(acc + f * CONV1_POS + pos, &wide, sizeof wide);
        }
    }
    pool_finish(acc, CONV1_F, CONV1_POS, IN_W, 1, POOL1_H, POOL1_W, CONV1_P, bias, fin, 2 * CONV1_CP, out);
    if (CONV1_F % 2)
        for (int i = 0; i < POOL1_H * POOL1_W; ++i) out[i * 2 * CONV1_CP + CONV1_F] = 0;
}

/* The lo and hi pair words of `count` pairs of non-negative activations x[2i], x[2i + 1]. */
static inline void split_pairs(const int16_t *restrict x, int count, int32_t *restrict lo, int32_t *restrict hi) {
    for (int i = 0; i < count; ++i) {
        lo[i] = pair(x[2 * i] & LO_MAX, x[2 * i + 1] & LO_MAX);
        hi[i] = pair(x[2 * i] >> LO_BITS, x[2 * i + 1] >> LO_BITS);
    }
}

/* Output positions computed together: the largest divisor of OW up to MAX_GROUP. */
static inline int position_group(int OW) {
    for (int g = MAX_GROUP; g > 1; --g)
        if (OW % g == 0) return g;
    return 1;
}

/* Valid convolution of channel-pair activations lo, hi [H][W][CP] with w [K][K][CP][FP] (pairs
 * of input channels, FP output channels): out [OH][OW][FP], without bias. */
static inline __attribute__((always_inline)) void conv_channel_pairs(const int32_t *restrict lo,
                                                                     const int32_t *restrict hi, int H, int W, int CP,
                                                                     const int32_t *restrict w, int FP, int K,
                                                                     int64_t *restrict out) {
    const int OH = H - K + 1, OW = W - K + 1, G = position_group(OW);
    for (int fv = 0; fv < FP; fv += LANES)
        for (int oy = 0; oy < OH; ++oy)
            for (int ox = 0; ox < OW; ox += G) {
                vi lo_sums[MAX_GROUP] = {{0}}, hi_sums[MAX_GROUP] = {{0}};
                for (int ky = 0; ky < K; ++ky)
                    for (int kx = 0; kx < K; ++kx)
                        for (int cp = 0; cp < CP; ++cp) {
                            const vi wv = loadv(w + ((ky * K + kx) * CP + cp) * FP + fv);
                            const int at = ((oy + ky) * W + ox + kx) * CP + cp;
                            for (int g = 0; g < G; ++g) {
                                lo_sums[g] = madd(lo_sums[g], wv, bcast(lo[at + g * CP]));
                                hi_sums[g] = madd(hi_sums[g], wv, bcast(hi[at + g * CP]));
                            }
                        }
                for (int g = 0; g < G; ++g) {
                    const vl sum = __builtin_convertvector(lo_sums[g], vl) +
                                   __builtin_convertvector(hi_sums[g], vl) * (1 << LO_BITS);
                    memcpy(out + (oy * OW + ox + g) * FP + fv, &sum, sizeof sum);
                }
            }
}

/* A dense layer on NP input pairs lo, hi with w [NP][MP] (pairs of inputs, MP padded units):
 * out[0..M) cast, zeros to the next even count. */
static inline __attribute__((always_inline)) void dense_pairs(const int32_t *restrict lo, const int32_t *restrict hi,
                                                              int NP, const int32_t *restrict w, int MP,
                                                              const int64_t *restrict bias, int M,
                                                              const struct finish fin, int16_t *restrict out) {
    vi lo_sums[MAX_MP / LANES] = {{0}}, hi_sums[MAX_MP / LANES] = {{0}};
    for (int i = 0; i < NP; ++i) {
        const int32_t xl = lo[i], xh = hi[i];
        const int32_t *wi = w + i * MP;
        if (xh) {
            for (int v = 0; v < MP / LANES; ++v) {
                const vi wv = loadv(wi + v * LANES);
                lo_sums[v] = madd(lo_sums[v], wv, bcast(xl));
                hi_sums[v] = madd(hi_sums[v], wv, bcast(xh));
            }
        } else if (xl) { /* ReLU leaves many inputs at zero, and many below 256 */
            for (int v = 0; v < MP / LANES; ++v) lo_sums[v] = madd(lo_sums[v], loadv(wi + v * LANES), bcast(xl));
        }
    }
    int32_t lo_words[MAX_MP], hi_words[MAX_MP];
    memcpy(lo_words, lo_sums, MP * sizeof(int32_t));
    memcpy(hi_words, hi_sums, MP * sizeof(int32_t));
    for (int j = 0; j < M; ++j)
        out[j] = (int16_t)finish(lo_words[j] + (int64_t)hi_words[j] * (1 << LO_BITS) + bias[j], fin);
    if (M % 2) out[M] = 0;
}

/* ------------------------------------------------------------------------------------ network */
#define N_PARAMS 10

static void forward_one(const void *const *p, const uint8_t *image, int16_t *logits, int64_t *cls) {
    static const struct finish conv2 = FINISH_OF(CONV2), fc1 = FINISH_OF(FC1), fc2 = FINISH_OF(FC2),
                               fc3 = FINISH_OF(FC3);
    int16_t a1[POOL1_H * POOL1_W * 2 * CONV1_CP];
    int32_t a1_lo[POOL1_H * POOL1_W * CONV1_CP], a1_hi[POOL1_H * POOL1_W * CONV1_CP];
    int64_t acc2[CONV2_OH * CONV2_OW * CONV2_FP];
    int16_t a2[2 * FC1_NP], h1[2 * FC2_NP], h2[2 * FC3_NP], out[2 * PAIRS(FC3_N)];
    int32_t lo[FC1_NP], hi[FC1_NP];

    conv1_layer(image, p[0], p[1], a1);
    split_pairs(a1, POOL1_H * POOL1_W * CONV1_CP, a1_lo, a1_hi);
    conv_channel_pairs(a1_lo, a1_hi, POOL1_H, POOL1_W, CONV1_CP, p[2], CONV2_FP, CONV2_K, acc2);
    /* channels last, as Keras flattens */
    pool_finish(acc2, CONV2_F, 1, CONV2_OW * CONV2_FP, CONV2_FP, POOL2_H, POOL2_W, CONV2_P, p[3], conv2, CONV2_F, a2);
    if (FLAT % 2) a2[FLAT] = 0;
    split_pairs(a2, FC1_NP, lo, hi);
    dense_pairs(lo, hi, FC1_NP, p[4], FC1_MP, p[5], FC1_N, fc1, h1);
    split_pairs(h1, FC2_NP, lo, hi);
    dense_pairs(lo, hi, FC2_NP, p[6], FC2_MP, p[7], FC2_N, fc2, h2);
    split_pairs(h2, FC3_NP, lo, hi);
    dense_pairs(lo, hi, FC3_NP, p[8], FC3_MP, p[9], FC3_N, fc3, out);
    int best = 0; /* the first of equal maxima, as numpy's argmax */
    for (int j = 0; j < FC3_N; ++j) {
        logits[j] = out[j];
        best = out[j] > out[best] ? j : best;
    }
    *cls = best;
}

/* Images a block of the pool: blocks are claimed first come, first served (a busy core takes
 * fewer), and the caller never waits for a worker that has not claimed one (work_pool.h). */
#ifndef IMAGES_PER_BLOCK
#define IMAGES_PER_BLOCK 2
#endif
#ifndef PARALLEL_IMAGES
#define PARALLEL_IMAGES 3 /* calls of fewer images run on the calling thread alone (measured) */
#endif

struct job { /* one call's work, on the caller's stack */
    const void *const *params;
    const uint8_t *images;
    int64_t n;
    int16_t *logits;
    int64_t *classes;
};

static void run_block(void *context, int64_t block) {
    const struct job *job = context;
    const int64_t first = block * IMAGES_PER_BLOCK;
    const int64_t end = job->n - first < IMAGES_PER_BLOCK ? job->n : first + IMAGES_PER_BLOCK;
    for (int64_t i = first; i < end; ++i)
        forward_one(job->params, job->images + i * IN_H * IN_W, job->logits + i * FC3_N, job->classes + i);
}

int lenet5_fixed_forward(const void *const *params, const uint8_t *images, int64_t n, int threads, int16_t *logits,
                         int64_t *classes) {
    if (n < 0 || threads < 0) return 1;
    struct job job = {params, images, n, logits, classes};
    pool_run(run_block, &job, (n + IMAGES_PER_BLOCK - 1) / IMAGES_PER_BLOCK, n < PARALLEL_IMAGES ? 1 : threads);
    return 0;
}

const char *lenet5_fixed_isa(void) { return ISA; }
int lenet5_fixed_lanes(void) { return LANES; }
