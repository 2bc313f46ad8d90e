/* The float32 LeNet-5 forward pass for the cpu-float backend.
 *
 * Layer sizes are not typed here: lenet5_pynq/native/__init__.py passes them as -D macros
 * generated from lenet5_pynq/network.py, so every trip count is a compile-time constant and
 * the inner loops over a row of outputs vectorize.  Weights arrive packed by the Python side:
 * conv kernels as [filter][channel][ky][kx], dense kernels as [input][output] with fc inputs in
 * the channel-major order this file stores activations in.
 *
 * Every target computes the same bits: each output is accumulated in the same order, every
 * multiply is rounded before its add (never fused: -ffp-contract=off, since AArch64's fmla and
 * x86's vfmadd are fused), rounding to nearest, no subnormal flushed.  What the multiply-adds
 * compile to, chosen by the compiler's own macros:
 *  - x86-64: GCC vector extensions of eight floats, vmulps and vaddps on one AVX register with
 *    -march=native (two SSE registers without AVX).
 *  - AArch64 (Cortex-A53): the same code with four floats, fmul and fadd on NEON .4s registers;
 *    NEON there is IEEE (Linux leaves FPCR.FZ clear).
 *  - ARMv7 with NEON (Cortex-A9, -mfpu=neon): NEON intrinsics, vmla.f32 on q registers, which
 *    rounds the product before the add.  ARMv7 NEON flushes subnormal operands and results to
 *    zero, which IEEE does not, so GCC itself keeps float code, vector extensions and loops
 *    alike, on scalar VFP unless told -funsafe-math-optimizations (which would also let it
 *    reorder the sums); here a layer runs on NEON only when its operands prove that no subnormal
 *    can arise (`layer_is_normal`), else on scalar VFP, which is IEEE.  clang would put the
 *    vector-extension code on NEON all the same, so it builds for ARMv7 without NEON.
 *  - ARMv7 without NEON: the vector code as scalar VFP instructions.
 */
#include <stdint.h>
#include <string.h>

#include "float_net.h"

#define CONV1_OH (IN_H - CONV1_K + 1)
#define CONV1_OW (IN_W - CONV1_K + 1)
#define POOL1_H (CONV1_OH / CONV1_P)
#define POOL1_W (CONV1_OW / CONV1_P)
#define CONV2_OH (POOL1_H - CONV2_K + 1)
#define CONV2_OW (POOL1_W - CONV2_K + 1)
#define POOL2_H (CONV2_OH / CONV2_P)
#define POOL2_W (CONV2_OW / CONV2_P)
#define FLAT (CONV2_F * POOL2_H * POOL2_W)

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
#define LANES 4
#define MAX_ACC 8
#elif defined(__aarch64__)
#define NEON_FLUSHES_SUBNORMALS 0
typedef float vf __attribute__((vector_size(16))); /* one q register */
#define LANES 4
#define MAX_ACC 8
#else
#define NEON_FLUSHES_SUBNORMALS 0
typedef float vf __attribute__((vector_size(32))); /* one AVX register, two SSE ones */
#define LANES 8
#define MAX_ACC 12
#endif
/* LANES floats a vector; MAX_ACC accumulator vectors in flight (filters in a group x vectors in
 * a row).  On both ARM targets 8 accumulators gave the fewest instructions an image under qemu of
 * 4 to 24, with GCC 11 and 12. */
#define MAX_VECS ((MAX_ROW + LANES - 1) / LANES)

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

/* A row of accumulators to memory: one vector at a time on ARM (a tenth to a quarter fewer
 * instructions an image under qemu than one memcpy), one memcpy elsewhere. */
static inline void store_row(float *p, const vf *acc, int vecs) {
#if NEON_FLUSHES_SUBNORMALS
    for (int v = 0; v < vecs; ++v) vst1q_f32(p + v * LANES, acc[v]);
#elif defined(__aarch64__)
    for (int v = 0; v < vecs; ++v) memcpy(p + v * LANES, &acc[v], sizeof(vf));
#else
    memcpy(p, acc, vecs * sizeof(vf));
#endif
}

/* acc + *w * x, the product rounded before the add; `on_neon` is a constant at each call. */
static inline vf madd(vf acc, const float *w, vf x, int on_neon) {
#if NEON_FLUSHES_SUBNORMALS
    if (on_neon) return vmlaq_f32(acc, x, vld1q_dup_f32(w));
#endif
    (void)on_neon;
    return acc + *w * x;
}

/* Filters per group: shares every input load among them while the group's accumulators
 * (group x vectors per row) still fit in registers. */
static inline int filter_group(int F, int vecs) {
    for (int g = MAX_ACC / vecs; g > 1; --g)
        if (F % g == 0) return g;
    return 1;
}

/* Valid convolution, ReLU and max-pool of one image; `in` is [C][H][W] with at least LANES-1
 * readable floats past its end, `out` is [F][OH/P][OW/P].  Pooling the raw sums and adding the
 * bias after is exact: the bias is constant per filter and ReLU is monotone. */
static inline void conv_relu_pool_on(const float *restrict in, int C, int H, int W, const float *restrict w,
                                     const float *restrict b, int F, int K, int P, int on_neon, float *restrict out) {
    const int OH = H - K + 1, OW = W - K + 1, VECS = (OW + LANES - 1) / LANES;
    const int G = filter_group(F, VECS);
    float rows[MAX_ACC][MAX_POOL][MAX_VECS * LANES];
    for (int f0 = 0; f0 < F; f0 += G) {
        for (int oy = 0; oy < OH; oy += P) {
            for (int p = 0; p < P; ++p) {
                vf acc[MAX_ACC][MAX_VECS] = {{{0}}};
                for (int c = 0; c < C; ++c)
                    for (int ky = 0; ky < K; ++ky) {
                        const float *src = in + (c * H + oy + p + ky) * W;
                        for (int kx = 0; kx < K; ++kx) {
                            vf x[MAX_VECS];
                            for (int v = 0; v < VECS; ++v) x[v] = loadv(src + kx + v * LANES);
                            for (int g = 0; g < G; ++g) {
                                const float *wv = &w[(((f0 + g) * C + c) * K + ky) * K + kx];
                                for (int v = 0; v < VECS; ++v) acc[g][v] = madd(acc[g][v], wv, x[v], on_neon);
                            }
                        }
                    }
                for (int g = 0; g < G; ++g) store_row(rows[g][p], acc[g], VECS);
            }
            for (int g = 0; g < G; ++g) {
                float *dst = out + ((f0 + g) * (OH / P) + oy / P) * (OW / P);
                for (int px = 0; px < OW / P; ++px) {
                    float m = rows[g][0][px * P];
                    for (int p = 0; p < P; ++p)
                        for (int q = 0; q < P; ++q) {
                            const float v = rows[g][p][px * P + q];
                            m = v > m ? v : m;
                        }
                    m += b[f0 + g];
                    dst[px] = m > 0.0f ? m : 0.0f;
                }
            }
        }
    }
}

static inline void dense_on(const float *restrict in, int N, const float *restrict w, const float *restrict b, int M,
                            int relu, int on_neon, float *restrict out) {
    float acc[MAX_ROW_DENSE];
    for (int j = 0; j < M; ++j) acc[j] = b[j];
    for (int i = 0; i < N; ++i) {
        const float xi = in[i];
        if (xi == 0.0f) continue; /* ReLU leaves about half the inputs at zero */
        const float *wi = w + i * M;
        const int head = on_neon && NEON_FLUSHES_SUBNORMALS ? M - M % LANES : 0;
#if NEON_FLUSHES_SUBNORMALS
        for (int j = 0; j < head; j += LANES)
            vst1q_f32(acc + j, vmlaq_n_f32(vld1q_f32(acc + j), vld1q_f32(wi + j), xi));
#endif
        for (int j = head; j < M; ++j) acc[j] += xi * wi[j]; /* -O3 vectorises this on x86-64 and AArch64 */
    }
    for (int j = 0; j < M; ++j) out[j] = relu && acc[j] < 0.0f ? 0.0f : acc[j];
}

/* The layers with on_neon decided at run time: two copies, each with one kind of loop (one where
 * on_neon is the constant 0). */
static inline void conv_relu_pool(const float *restrict in, int C, int H, int W, const float *restrict w,
                                  const float *restrict b, int F, int K, int P, int on_neon, float *restrict out) {
    if (on_neon) conv_relu_pool_on(in, C, H, W, w, b, F, K, P, 1, out);
    else conv_relu_pool_on(in, C, H, W, w, b, F, K, P, 0, out);
}

static inline void dense(const float *restrict in, int N, const float *restrict w, const float *restrict b, int M,
                         int relu, int on_neon, float *restrict out) {
    if (on_neon) dense_on(in, N, w, b, M, relu, 1, out);
    else dense_on(in, N, w, b, M, relu, 0, out);
}

/* Floats in each of the ten parameter arrays, a layer's kernel then its bias. */
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
#define ON_NEON(in, n, layer, bias_exp) layer_is_normal(in, n, exps[2 * (layer)], bias_exp)
#else
#define ON_NEON(in, n, layer, bias_exp) 0
#endif

/* `exps`: min_exponent of each parameter array, where NEON flushes subnormals. */
static void forward_one(const float *const *p, const int *exps, const uint8_t *image, float *logits) {
    /* LANES of slack after each input: a row's last vector reads past the row's end (values that
     * only reach outputs beyond OW, which are never used). */
    float x[IN_H * IN_W + LANES];
    float a1[CONV1_F * POOL1_H * POOL1_W + LANES];
    float a2[FLAT];
    float h1[FC1_N], h2[FC2_N];
    for (int i = 0; i < IN_H * IN_W; ++i) x[i] = (float)image[i] * INPUT_SCALE;
    for (int i = 0; i < LANES; ++i) x[IN_H * IN_W + i] = a1[CONV1_F * POOL1_H * POOL1_W + i] = 0.0f;
    (void)exps;
    /* A conv layer's bias is added on scalar VFP: 255 stands for "none on NEON". */
    conv_relu_pool(x, 1, IN_H, IN_W, p[0], p[1], CONV1_F, CONV1_K, CONV1_P, ON_NEON(x, IN_H * IN_W, 0, 255), a1);
    conv_relu_pool(a1, CONV1_F, POOL1_H, POOL1_W, p[2], p[3], CONV2_F, CONV2_K, CONV2_P,
                   ON_NEON(a1, CONV1_F * POOL1_H * POOL1_W, 1, 255), a2);
    dense(a2, FLAT, p[4], p[5], FC1_N, 1, ON_NEON(a2, FLAT, 2, exps[5]), h1);
    dense(h1, FC1_N, p[6], p[7], FC2_N, 1, ON_NEON(h1, FC1_N, 3, exps[7]), h2);
    dense(h2, FC2_N, p[8], p[9], FC3_N, 0, ON_NEON(h2, FC2_N, 4, exps[9]), logits);
}

int lenet5_float_forward(const float *const *params, const uint8_t *images, int64_t n, float *logits) {
    if (n < 0) return 1;
    int exps[N_PARAMS] = {0};
#if NEON_FLUSHES_SUBNORMALS
    static const int sizes[N_PARAMS] = PARAM_SIZES;
    for (int k = 0; k < N_PARAMS && n > 0; ++k) exps[k] = min_exponent(params[k], sizes[k]);
#endif
#pragma omp parallel for schedule(static) if (n >= 32)
    for (int64_t i = 0; i < n; ++i) forward_one(params, exps, images + i * IN_H * IN_W, logits + i * FC3_N);
    return 0;
}
