/* The float32 LeNet-5 forward pass for the cpu-float backend, register-blocked for the vector
 * unit it is compiled for.
 *
 * Layer sizes are not typed here: lenet5_pynq/native/__init__.py passes them as -D macros
 * generated from lenet5_pynq/network.py, so every trip count and block is a compile-time constant
 * and the blocked loops unroll into straight runs of multiply-adds on accumulators that live in
 * registers.  The weights arrive in Keras's layouts (the archive's own arrays) and
 * `lenet5_float_pack` lays them out for this file; the layout is this file's business alone.
 *
 * The work, per image (B images at a time for the dense layers):
 *  - conv1 (1 channel): lanes over pooled output positions.  The image is split into its P x P
 *    "parity planes" (plane (a, b) holds the pixels (P*r + a, P*c + b)), so the conv outputs under
 *    each corner of every pool window are one contiguous vector load from a plane; the P*P corners
 *    of a group of filters are accumulated together (filters x corners accumulators), pooled with
 *    a max of registers, then bias and ReLU.  Pooling before the bias is exact (the bias is
 *    constant per filter and ReLU is monotone).
 *  - conv2: lanes over output channels (16 filters: one AVX-512 register), a block of output
 *    positions x filter vectors accumulators, each activation a broadcast operand of its
 *    multiply-adds (vfmadd231ps with {1toN} on AVX-512).  Its pooled output is the dense input in
 *    Keras's channels-last order.
 *  - dense layers: lanes over output units, B images x unit vectors accumulators, so each weight
 *    vector loaded is used B times (fc1's 123 KB of weights are read once per B images).
 *
 * The multiply-adds are fused where the processor has FMA (x86-64 with -march=native on an FMA
 * machine, AArch64's fmla): this file is compiled with -ffp-contract=fast, so results differ from
 * an unfused build in the last bits and between targets; tests/test_cpu_float.py and
 * tests/test_native_arm.py state the agreement with a float64 reference instead of bit identity.
 * What the vectors are, chosen by the compiler's own macros:
 *  - x86-64 with AVX-512F: 16 floats, 24 accumulators (of 32 zmm registers);
 *  - x86-64 with AVX/AVX2: 8 floats, 12 accumulators (of 16 ymm); SSE only: 4 floats, 12;
 *  - AArch64 (Cortex-A53): 4 floats, 24 accumulators (of 32 q registers), fmla; NEON there is
 *    IEEE (Linux leaves FPCR.FZ clear);
 *  - ARMv7 with NEON (Cortex-A9, -mfpu=neon): NEON intrinsics, vmla.f32 on q registers, which
 *    rounds the product before the add (the A9 has no fused multiply-add).  ARMv7 NEON flushes
 *    subnormal operands and results to zero, which IEEE does not, so GCC keeps all other float
 *    vector code on scalar VFP unless told -funsafe-math-optimizations; here a layer runs its
 *    multiply-adds on NEON only when its operands prove that no subnormal can arise
 *    (`layer_is_normal`), else on scalar VFP, which is IEEE.  clang would put the vector code on
 *    NEON all the same, so it builds for ARMv7 without NEON.
 *  - ARM without NEON: the vector code as scalar VFP instructions, 6 accumulators.
 *
 * `lenet5_float_forward` runs blocks of B images on the calling thread and up to threads - 1
 * workers of work_pool.h (persistent threads, created on first use; the caller always works and
 * never waits for a worker that has not claimed a block, so a busy machine costs at most the
 * parallelism, never a time slice as an OpenMP team's closing barrier did: 15 ms for a call of
 * 8 images on a 2-core machine under load).  Calls of fewer than PARALLEL_IMAGES images stay on
 * the calling thread.  Everything a call writes is on its stack or in `logits`, and the pool
 * runs one call at a time (another runs alone): concurrent calls are safe.
 */
#define _POSIX_C_SOURCE 200809L /* pthreads and clock_gettime under -std=c99 (work_pool.h) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "float_net.h"
#include "work_pool.h"

#ifndef PARALLEL_IMAGES
#define PARALLEL_IMAGES 5 /* calls of fewer images run on the calling thread alone (measured) */
#endif

#if IN_H % CONV1_P || IN_W % CONV1_P
#error "the parity planes of conv1 need the image's sides to be multiples of its pool"
#endif

#if defined(__ARM_NEON) && !defined(__aarch64__) && defined(__clang__)
#error "clang compiles float vectors to ARMv7 NEON, which flushes subnormals: build without NEON (-mfpu=vfpv3-d16)"
#endif
#if defined(__ARM_NEON) && !defined(__aarch64__) && !defined(__clang__)
#include <arm_neon.h>
#define NEON_FLUSHES_SUBNORMALS 1
/* Test builds set 0 to show what the check in layer_is_normal guards against. */
#ifndef NEON_SUBNORMAL_CHECK
#define NEON_SUBNORMAL_CHECK 1
#endif
typedef float32x4_t vf; /* one q register; its + and * compile to scalar VFP, madd to vmla.f32 */
typedef int32x4_t vi;
#define LANES 4
#define MAX_ACC 8 /* of 16 q registers; 8 gave the fewest instructions under qemu (issue 12) */
#else
#define NEON_FLUSHES_SUBNORMALS 0
#if defined(__AVX512F__)
#define LANES 16
#define MAX_ACC 24 /* of 32 zmm registers: the rest hold the loaded operands */
#elif defined(__AVX__)
#define LANES 8
#define MAX_ACC 12 /* of 16 ymm registers */
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define LANES 4
#define MAX_ACC 24 /* of 32 q registers */
#elif defined(__arm__) || defined(__aarch64__)
#define LANES 4
#define MAX_ACC 6 /* scalar VFP: 32 single registers hold 6 vectors and their operands */
#else
#define LANES 4
#define MAX_ACC 12 /* SSE: 16 xmm registers */
#endif
typedef float vf __attribute__((vector_size(LANES * 4)));
typedef int32_t vi __attribute__((vector_size(LANES * 4)));
#endif

/* The largest divisor of n that is at most lim (lim <= 24), as a constant expression. */
#define DIVIDES_(n, d) ((d) >= 1 && (n) % ((d) >= 1 ? (d) : 1) == 0)
#define DIV_AT_MOST_(n, l)              \
    (DIVIDES_(n, l)          ? (l)      \
     : DIVIDES_(n, (l) - 1)  ? (l) - 1  \
     : DIVIDES_(n, (l) - 2)  ? (l) - 2  \
     : DIVIDES_(n, (l) - 3)  ? (l) - 3  \
     : DIVIDES_(n, (l) - 4)  ? (l) - 4  \
     : DIVIDES_(n, (l) - 5)  ? (l) - 5  \
     : DIVIDES_(n, (l) - 6)  ? (l) - 6  \
     : DIVIDES_(n, (l) - 7)  ? (l) - 7  \
     : DIVIDES_(n, (l) - 8)  ? (l) - 8  \
     : DIVIDES_(n, (l) - 9)  ? (l) - 9  \
     : DIVIDES_(n, (l) - 10) ? (l) - 10 \
     : DIVIDES_(n, (l) - 11) ? (l) - 11 \
     : DIVIDES_(n, (l) - 12) ? (l) - 12 \
     : DIVIDES_(n, (l) - 13) ? (l) - 13 \
     : DIVIDES_(n, (l) - 14) ? (l) - 14 \
     : DIVIDES_(n, (l) - 15) ? (l) - 15 \
     : DIVIDES_(n, (l) - 16) ? (l) - 16 \
     : DIVIDES_(n, (l) - 17) ? (l) - 17 \
     : DIVIDES_(n, (l) - 18) ? (l) - 18 \
     : DIVIDES_(n, (l) - 19) ? (l) - 19 \
     : DIVIDES_(n, (l) - 20) ? (l) - 20 \
     : DIVIDES_(n, (l) - 21) ? (l) - 21 \
     : DIVIDES_(n, (l) - 22) ? (l) - 22 \
     : DIVIDES_(n, (l) - 23) ? (l) - 23 \
                             : 1)
#define MIN_(a, b) ((a) < (b) ? (a) : (b))
#define DIV_AT_MOST(n, lim) DIV_AT_MOST_((n), MIN_((n), (lim)))
#define ROUND_UP(n, m) (((n) + (m) - 1) / (m) * (m))

/* ---- conv1: parity planes, lanes over pooled positions ---------------------------------------- */
#define P1 CONV1_P
#define PLANE_W (IN_W / P1)
#define PLANE_H (IN_H / P1)
#define SPAN1 (P1 + CONV1_K - 1) /* input rows (and columns) under one pool window */
#define REACH1 ((SPAN1 - 1) / P1) /* how far a window reaches into the next plane row and column */
/* Pooled outputs sit in the plane's grid (row stride PLANE_W); the vectors cover them all. */
#define A1_USED ((POOL1_H - 1) * PLANE_W + POOL1_W)
#define A1_STRIDE ROUND_UP(A1_USED, LANES)
#define PLANE_STRIDE MAX_(PLANE_H *PLANE_W, A1_STRIDE + REACH1 * PLANE_W + REACH1)
#define MAX_(a, b) ((a) > (b) ? (a) : (b))
#define G1 DIV_AT_MOST(CONV1_F, MAX_ACC / (P1 * P1)) /* filters accumulated together */

/* ---- conv2: lanes over filters, blocks of output positions ---------------------------------- */
#define F2_PAD ROUND_UP(CONV2_F, LANES)
#define FV2 (F2_PAD / LANES)
#define POS2_LIMIT MAX_(MAX_ACC / FV2, 1)
/* A block is whole output rows when one row fits, else part of a row: its positions' offsets
 * from the block's first are then constants. */
#define BLOCK2_COLS (CONV2_OW <= POS2_LIMIT ? CONV2_OW : DIV_AT_MOST(CONV2_OW, POS2_LIMIT))
#define BLOCK2_ROWS (CONV2_OW <= POS2_LIMIT ? DIV_AT_MOST(CONV2_OH, POS2_LIMIT / CONV2_OW) : 1)
#define BLOCK2 (BLOCK2_ROWS * BLOCK2_COLS)

/* ---- dense layers: lanes over units, blocks of images ---------------------------------------- */
#define DENSE_IMAGES 4 /* B: images whose dense layers run together */
#define FC1_IN (POOL2_H * POOL2_W * F2_PAD)
#define FC1_PAD ROUND_UP(FC1_N, LANES)
#define FC2_PAD ROUND_UP(FC2_N, LANES)
#define FC3_PAD ROUND_UP(FC3_N, LANES)

/* The packed parameters, in order, and where each begins in the buffer `lenet5_float_pack` fills. */
#define W1_SIZE (CONV1_F * CONV1_K * CONV1_K)
#define B1_SIZE CONV1_F
#define W2_SIZE (CONV1_F * CONV2_K * CONV2_K * F2_PAD)
#define B2_SIZE F2_PAD
#define W3_SIZE (FC1_IN * FC1_PAD)
#define B3_SIZE FC1_PAD
#define W4_SIZE (FC1_PAD * FC2_PAD)
#define B4_SIZE FC2_PAD
#define W5_SIZE (FC2_PAD * FC3_PAD)
#define B5_SIZE FC3_PAD
#define AT_B1 W1_SIZE
#define AT_W2 (AT_B1 + B1_SIZE)
#define AT_B2 (AT_W2 + W2_SIZE)
#define AT_W3 (AT_B2 + B2_SIZE)
#define AT_B3 (AT_W3 + W3_SIZE)
#define AT_W4 (AT_B3 + B3_SIZE)
#define AT_B4 (AT_W4 + W4_SIZE)
#define AT_W5 (AT_B4 + B4_SIZE)
#define AT_B5 (AT_W5 + W5_SIZE)
#define PACKED_SIZE (AT_B5 + B5_SIZE)

/* Floats in each of the ten arrays `lenet5_float_pack` reads (Keras's), a layer's kernel then its bias. */
#define N_PARAMS 10
#define PARAM_SIZES                         \
    {CONV1_F * CONV1_K * CONV1_K,           \
     CONV1_F,                               \
     CONV2_F * CONV1_F * CONV2_K * CONV2_K, \
     CONV2_F,                               \
     FLAT * FC1_N,                          \
     FC1_N,                                 \
     FC1_N * FC2_N,                         \
     FC2_N,                                 \
     FC2_N * FC3_N,                         \
     FC3_N}

/* Unaligned loads and stores: vld1 and vst1 on ARMv7, where GCC 11 copies a memcpy'd q register
 * through core registers. */
static inline vf loadv(const float *p) {
#if NEON_FLUSHES_SUBNORMALS
    return vld1q_f32(p);
#else
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
#endif
}

static inline void storev(float *p, vf v) {
#if NEON_FLUSHES_SUBNORMALS
    vst1q_f32(p, v);
#else
    memcpy(p, &v, sizeof v);
#endif
}

/* acc + *s * x, one (fused where there is FMA) multiply-add; `on_neon` is a constant at each call. */
static inline vf madd(vf acc, const float *s, vf x, int on_neon) {
#if NEON_FLUSHES_SUBNORMALS
    if (on_neon) return vmlaq_f32(acc, x, vld1q_dup_f32(s));
#endif
    (void)on_neon;
    return acc + *s * x;
}

/* acc + w * x for vectors. */
static inline vf maddv(vf acc, vf w, vf x, int on_neon) {
#if NEON_FLUSHES_SUBNORMALS
    if (on_neon) return vmlaq_f32(acc, w, x);
#endif
    (void)on_neon;
    return acc + w * x;
}

/* The larger of a and b lane by lane (a compare and a select: no NaN reaches here, the weights
 * are checked finite). */
static inline vf maxv(vf a, vf b) {
    vi take_a = (vi)(a > b);
    return (vf)(((vi)a & take_a) | ((vi)b & ~take_a));
}

static inline vf zerov(void) {
    vf z;
    memset(&z, 0, sizeof z);
    return z;
}

/* The image as P1 x P1 parity planes of floats, [plane a*P1+b][PLANE_STRIDE]; the padding after
 * each plane (read by the last vectors) is zeroed once per buffer by the caller. */
static inline void to_planes(const uint8_t *restrict image, float *restrict planes) {
    for (int r = 0; r < IN_H; ++r)
        for (int b = 0; b < P1; ++b) {
            float *dst = planes + ((r % P1) * P1 + b) * PLANE_STRIDE + (r / P1) * PLANE_W;
            const uint8_t *src = image + r * IN_W + b;
            for (int c = 0; c < PLANE_W; ++c) dst[c] = (float)src[c * P1] * INPUT_SCALE;
        }
}

/* conv1, ReLU and pool: planes -> a1 [CONV1_F][A1_STRIDE] (pooled (py, px) at py*PLANE_W + px;
 * the columns past POOL1_W hold values never read). */
static inline void conv1_on(const float *restrict planes, const float *restrict w, const float *restrict bias,
                            int on_neon, float *restrict a1) {
    for (int q0 = 0; q0 < A1_STRIDE; q0 += LANES)
        for (int f0 = 0; f0 < CONV1_F; f0 += G1) {
            vf acc[G1][P1 * P1];
#pragma GCC unroll 32
            for (int g = 0; g < G1; ++g)
#pragma GCC unroll 16
                for (int s = 0; s < P1 * P1; ++s) acc[g][s] = zerov();
#pragma GCC unroll 16
            for (int u = 0; u < SPAN1; ++u)
#pragma GCC unroll 16
                for (int v = 0; v < SPAN1; ++v) {
                    const vf x =
                        loadv(planes + ((u % P1) * P1 + v % P1) * PLANE_STRIDE + q0 + (u / P1) * PLANE_W + v / P1);
#pragma GCC unroll 8
                    for (int dy = 0; dy < P1; ++dy)
#pragma GCC unroll 8
                        for (int dx = 0; dx < P1; ++dx) {
                            const int ky = u - dy, kx = v - dx;
                            if (ky < 0 || ky >= CONV1_K || kx < 0 || kx >= CONV1_K) continue;
#pragma GCC unroll 32
                            for (int g = 0; g < G1; ++g)
                                acc[g][dy * P1 + dx] = madd(acc[g][dy * P1 + dx],
                                                            &w[((f0 + g) * CONV1_K + ky) * CONV1_K + kx], x, on_neon);
                        }
                }
#pragma GCC unroll 32
            for (int g = 0; g < G1; ++g) {
                vf m = acc[g][0];
#pragma GCC unroll 16
                for (int s = 1; s < P1 * P1; ++s) m = maxv(m, acc[g][s]);
                storev(a1 + (f0 + g) * A1_STRIDE + q0, maxv(m + bias[f0 + g], zerov()));
            }
        }
}

/* conv2, ReLU and pool: a1 -> features [POOL2_H * POOL2_W][F2_PAD], channels last. */
static inline void conv2_on(const float *restrict a1, const float *restrict w, const float *restrict bias, int on_neon,
                            float *restrict features) {
    float raw[CONV2_OH * CONV2_OW * F2_PAD]; /* the sums before pooling, [position][filter] */
    for (int r0 = 0; r0 < CONV2_OH; r0 += BLOCK2_ROWS)
        for (int c0 = 0; c0 < CONV2_OW; c0 += BLOCK2_COLS) {
            vf acc[BLOCK2][FV2];
#pragma GCC unroll 32
            for (int j = 0; j < BLOCK2; ++j)
#pragma GCC unroll 8
                for (int k = 0; k < FV2; ++k) acc[j][k] = zerov();
            for (int c = 0; c < CONV1_F; ++c)
                for (int ky = 0; ky < CONV2_K; ++ky)
#pragma GCC unroll 8
                    for (int kx = 0; kx < CONV2_K; ++kx) {
                        const float *wk = w + ((c * CONV2_K + ky) * CONV2_K + kx) * F2_PAD;
                        const float *src = a1 + c * A1_STRIDE + (r0 + ky) * PLANE_W + c0 + kx;
                        vf wv[FV2];
#pragma GCC unroll 8
                        for (int k = 0; k < FV2; ++k) wv[k] = loadv(wk + k * LANES);
#pragma GCC unroll 32
                        for (int j = 0; j < BLOCK2; ++j)
#pragma GCC unroll 8
                            for (int k = 0; k < FV2; ++k)
                                acc[j][k] = madd(acc[j][k], src + (j / BLOCK2_COLS) * PLANE_W + j % BLOCK2_COLS, wv[k],
                                                 on_neon);
                    }
#pragma GCC unroll 32
            for (int j = 0; j < BLOCK2; ++j)
#pragma GCC unroll 8
                for (int k = 0; k < FV2; ++k)
                    storev(raw + ((r0 + j / BLOCK2_COLS) * CONV2_OW + c0 + j % BLOCK2_COLS) * F2_PAD + k * LANES,
                           acc[j][k]);
        }
    for (int py = 0; py < POOL2_H; ++py)
        for (int px = 0; px < POOL2_W; ++px)
            for (int k = 0; k < FV2; ++k) {
                const float *at = raw + ((py * CONV2_P) * CONV2_OW + px * CONV2_P) * F2_PAD + k * LANES;
                vf m = loadv(at);
                for (int dy = 0; dy < CONV2_P; ++dy)
                    for (int dx = 0; dx < CONV2_P; ++dx) m = maxv(m, loadv(at + (dy * CONV2_OW + dx) * F2_PAD));
                storev(features + (py * POOL2_W + px) * F2_PAD + k * LANES, maxv(m + loadv(bias + k * LANES), zerov()));
            }
}

/* A dense layer for `nb` images: in [nb][IN] -> out [nb][OUT_PAD] (padding units come out 0).
 * Unit vectors in chunks of at most MAX_ACC / nb, balanced, so each weight vector loaded serves
 * nb images from registers. */
static inline void dense_on(const float *restrict in, int n_in, const float *restrict w, const float *restrict bias,
                            int out_pad, int relu, int nb, int on_neon, float *restrict out) {
    const int vecs = out_pad / LANES;
    const int limit = MAX_ACC / nb > 0 ? MAX_ACC / nb : 1;
    const int chunks = (vecs + limit - 1) / limit;
    const int per_chunk = (vecs + chunks - 1) / chunks;
#pragma GCC unroll 16
    for (int v0 = 0; v0 < vecs; v0 += per_chunk) {
        const int n = vecs - v0 < per_chunk ? vecs - v0 : per_chunk;
        vf acc[DENSE_IMAGES][MAX_ACC];
#pragma GCC unroll 8
        for (int b = 0; b < nb; ++b)
#pragma GCC unroll 32
            for (int k = 0; k < n; ++k) acc[b][k] = loadv(bias + (v0 + k) * LANES);
#pragma GCC unroll 2
        for (int i = 0; i < n_in; ++i) {
            vf wv[MAX_ACC];
#pragma GCC unroll 32
            for (int k = 0; k < n; ++k) wv[k] = loadv(w + i * out_pad + (v0 + k) * LANES);
#pragma GCC unroll 8
            for (int b = 0; b < nb; ++b)
#pragma GCC unroll 32
                for (int k = 0; k < n; ++k) acc[b][k] = madd(acc[b][k], in + b * n_in + i, wv[k], on_neon);
        }
#pragma GCC unroll 8
        for (int b = 0; b < nb; ++b)
#pragma GCC unroll 32
            for (int k = 0; k < n; ++k)
                storev(out + b * out_pad + (v0 + k) * LANES, relu ? maxv(acc[b][k], zerov()) : acc[b][k]);
    }
}

/* The layers with on_neon decided at run time: two copies, each with one kind of loop (one where
 * on_neon is the constant 0). */
static inline void conv1(const float *planes, const float *w, const float *b, int on_neon, float *a1) {
    if (on_neon) conv1_on(planes, w, b, 1, a1);
    else conv1_on(planes, w, b, 0, a1);
}

static inline void conv2(const float *a1, const float *w, const float *b, int on_neon, float *features) {
    if (on_neon) conv2_on(a1, w, b, 1, features);
    else conv2_on(a1, w, b, 0, features);
}

static inline void dense(const float *in, int n_in, const float *w, const float *b, int out_pad, int relu, int nb,
                         int on_neon, float *out) {
    if (on_neon) dense_on(in, n_in, w, b, out_pad, relu, nb, 1, out);
    else dense_on(in, n_in, w, b, out_pad, relu, nb, 0, out);
}

#if NEON_FLUSHES_SUBNORMALS
/* Biased exponent (1..254) of the smallest nonzero magnitude in a[0..n): 0 if that one is
 * subnormal, 255 if every value is zero.  Integer code, so GCC vectorises it on ARMv7 too. */
static int min_exponent(const float *a, int n) {
    uint32_t least = UINT32_MAX;
    for (int i = 0; i < n; ++i) {
        uint32_t u;
        memcpy(&u, a + i, sizeof u);
        u = (u & 0x7fffffffu) - 1u; /* the magnitude less one: a zero wraps round to the largest */
        least = u < least ? u : least;
    }
    return least == UINT32_MAX ? 255 : (int)((least + 1u) >> 23);
}

/* Whether NEON computes a layer as IEEE does, from the least exponents of its inputs, its weights
 * and (for the dense layers, whose sums start from it) its bias.  A product of a nonzero input and
 * weight is at least 2^(Ex + Ew); at 2^-103 or more it is normal and a multiple of 2^-126, and so
 * is a bias of at least 2^-103.  Sums of multiples of 2^-126 round to multiples of 2^-126, so every
 * partial sum is zero or at least 2^-126 = FLT_MIN: nothing is subnormal, nothing is flushed. */
static int layer_is_normal(const float *in, int n, int kernel_exp, int bias_exp) {
    const int bias = 127, least = -103, in_exp = min_exponent(in, n);
    return !NEON_SUBNORMAL_CHECK ||
           (in_exp >= 1 && kernel_exp >= 1 && in_exp + kernel_exp >= 2 * bias + least && bias_exp >= bias + least);
}
#define ON_NEON(in, n, kernel, bias_exp) layer_is_normal(in, n, exps[kernel], bias_exp)
#else
#define ON_NEON(in, n, kernel, bias_exp) 0
#endif

/* `exps`: min_exponent of each packed kernel and bias, [w1 b1 w2 b2 ... w5 b5], where NEON
 * flushes subnormals.  A conv layer's bias is added on scalar VFP: 255 stands for "none on NEON". */
static inline void forward_block(const float *p, const int *exps, const uint8_t *images, int nb, float *logits) {
    float planes[P1 * P1 * PLANE_STRIDE];
    float a1[CONV1_F * A1_STRIDE];
    float features[DENSE_IMAGES][FC1_IN];
    float h1[DENSE_IMAGES][FC1_PAD], h2[DENSE_IMAGES][FC2_PAD], out[DENSE_IMAGES][FC3_PAD];
    (void)exps;
    memset(planes, 0, sizeof planes); /* the padding; the planes themselves are overwritten */
    for (int b = 0; b < nb; ++b) {
        to_planes(images + b * IN_H * IN_W, planes);
        conv1(planes, p, p + AT_B1, ON_NEON(planes, (int)(sizeof planes / sizeof *planes), 0, 255), a1);
        conv2(a1, p + AT_W2, p + AT_B2, ON_NEON(a1, CONV1_F * A1_STRIDE, 2, 255), features[b]);
    }
    const int n1 = nb * FC1_IN, n2 = nb * FC1_PAD, n3 = nb * FC2_PAD;
    (void)n1, (void)n2, (void)n3;
    if (nb == DENSE_IMAGES) { /* constant nb: the blocks unroll */
        dense(features[0], FC1_IN, p + AT_W3, p + AT_B3, FC1_PAD, 1, DENSE_IMAGES, ON_NEON(features[0], n1, 4, exps[5]),
              h1[0]);
        dense(h1[0], FC1_PAD, p + AT_W4, p + AT_B4, FC2_PAD, 1, DENSE_IMAGES, ON_NEON(h1[0], n2, 6, exps[7]), h2[0]);
        dense(h2[0], FC2_PAD, p + AT_W5, p + AT_B5, FC3_PAD, 0, DENSE_IMAGES, ON_NEON(h2[0], n3, 8, exps[9]), out[0]);
    } else {
        for (int b = 0; b < nb; ++b) {
            dense(features[b], FC1_IN, p + AT_W3, p + AT_B3, FC1_PAD, 1, 1, ON_NEON(features[b], FC1_IN, 4, exps[5]),
                  h1[b]);
            dense(h1[b], FC1_PAD, p + AT_W4, p + AT_B4, FC2_PAD, 1, 1, ON_NEON(h1[b], FC1_PAD, 6, exps[7]), h2[b]);
            dense(h2[b], FC2_PAD, p + AT_W5, p + AT_B5, FC3_PAD, 0, 1, ON_NEON(h2[b], FC2_PAD, 8, exps[9]), out[b]);
        }
    }
    for (int b = 0; b < nb; ++b) memcpy(logits + b * FC3_N, out[b], FC3_N * sizeof(float));
}

int64_t lenet5_float_packed_size(void) { return PACKED_SIZE; }

int lenet5_float_lanes(void) { return LANES; }

int lenet5_float_pack(const float *const *keras, float *packed, int64_t size) {
    if (size != PACKED_SIZE) return 1;
    memset(packed, 0, PACKED_SIZE * sizeof(float)); /* every padding lane and row is zero */
    const float *k1 = keras[0], *k2 = keras[2];
    /* conv kernels in Keras are (ky, kx, c, f) */
    for (int f = 0; f < CONV1_F; ++f)
        for (int ky = 0; ky < CONV1_K; ++ky)
            for (int kx = 0; kx < CONV1_K; ++kx)
                packed[(f * CONV1_K + ky) * CONV1_K + kx] = k1[(ky * CONV1_K + kx) * CONV1_F + f];
    memcpy(packed + AT_B1, keras[1], CONV1_F * sizeof(float));
    for (int c = 0; c < CONV1_F; ++c)
        for (int ky = 0; ky < CONV2_K; ++ky)
            for (int kx = 0; kx < CONV2_K; ++kx)
                for (int f = 0; f < CONV2_F; ++f)
                    packed[AT_W2 + ((c * CONV2_K + ky) * CONV2_K + kx) * F2_PAD + f] =
                        k2[((ky * CONV2_K + kx) * CONV1_F + c) * CONV2_F + f];
    memcpy(packed + AT_B2, keras[3], CONV2_F * sizeof(float));
    /* fc1's inputs are Keras's channels-last flattening, (position, filter): the features' order,
     * with each position's filters padded to F2_PAD. */
    for (int pos = 0; pos < POOL2_H * POOL2_W; ++pos)
        for (int f = 0; f < CONV2_F; ++f)
            memcpy(packed + AT_W3 + (pos * F2_PAD + f) * FC1_PAD, keras[4] + (pos * CONV2_F + f) * FC1_N,
                   FC1_N * sizeof(float));
    memcpy(packed + AT_B3, keras[5], FC1_N * sizeof(float));
    for (int i = 0; i < FC1_N; ++i) memcpy(packed + AT_W4 + i * FC2_PAD, keras[6] + i * FC2_N, FC2_N * sizeof(float));
    memcpy(packed + AT_B4, keras[7], FC2_N * sizeof(float));
    for (int i = 0; i < FC2_N; ++i) memcpy(packed + AT_W5 + i * FC3_PAD, keras[8] + i * FC3_N, FC3_N * sizeof(float));
    memcpy(packed + AT_B5, keras[9], FC3_N * sizeof(float));
    return 0;
}

/* One call's work, on the caller's stack: the pool's workers read it only while the call runs. */
struct job {
    const float *packed;
    int exps[N_PARAMS];
    const uint8_t *images;
    int64_t n;
    float *logits;
};

static void run_block(void *context, int64_t block) {
    const struct job *job = context;
    const int64_t first = block * DENSE_IMAGES;
    const int nb = job->n - first < DENSE_IMAGES ? (int)(job->n - first) : DENSE_IMAGES;
    forward_block(job->packed, job->exps, job->images + first * IN_H * IN_W, nb, job->logits + first * FC3_N);
}

int lenet5_float_forward(const float *packed, const uint8_t *images, int64_t n, float *logits, int threads) {
    if (n < 0) return 1;
    if (threads < 0) return 2;
    struct job job = {packed, {0}, images, n, logits};
#if NEON_FLUSHES_SUBNORMALS
    static const int64_t at[N_PARAMS + 1] = {0,     AT_B1, AT_W2, AT_B2, AT_W3,      AT_B3,
                                             AT_W4, AT_B4, AT_W5, AT_B5, PACKED_SIZE};
    for (int k = 0; k < N_PARAMS && n > 0; ++k) job.exps[k] = min_exponent(packed + at[k], (int)(at[k + 1] - at[k]));
#endif
    const int64_t blocks = (n + DENSE_IMAGES - 1) / DENSE_IMAGES;
    pool_run(run_block, &job, blocks, n < PARALLEL_IMAGES ? 1 : threads);
    return 0;
}
