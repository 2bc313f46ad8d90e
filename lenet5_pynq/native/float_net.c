/* The float32 LeNet-5 forward pass for the cpu-float backend.
 *
 * Layer sizes are not typed here: lenet5_pynq/native/__init__.py passes them as -D macros
 * generated from lenet5_pynq/network.py, so every trip count is a compile-time constant and
 * the inner loops over a row of outputs vectorize.  Weights arrive packed by the Python side:
 * conv kernels as [filter][channel][ky][kx], dense kernels as [input][output] with fc inputs in
 * the channel-major order this file stores activations in.
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

/* Eight floats: one AVX register, two NEON registers; GCC and clang vector extension. */
typedef float v8f __attribute__((vector_size(32)));
#define LANES 8
#define MAX_VECS ((MAX_ROW + LANES - 1) / LANES)
#define MAX_ACC 12 /* accumulator registers in flight: filters in a group x vectors in a row */

static inline v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v); /* unaligned load */
    return v;
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
static inline void conv_relu_pool(const float *restrict in, int C, int H, int W, const float *restrict w,
                                  const float *restrict b, int F, int K, int P, float *restrict out) {
    const int OH = H - K + 1, OW = W - K + 1, VECS = (OW + LANES - 1) / LANES;
    const int G = filter_group(F, VECS);
    float rows[MAX_ACC][MAX_POOL][MAX_VECS * LANES];
    for (int f0 = 0; f0 < F; f0 += G) {
        for (int oy = 0; oy < OH; oy += P) {
            for (int p = 0; p < P; ++p) {
                v8f acc[MAX_ACC][MAX_VECS] = {{{0}}};
                for (int c = 0; c < C; ++c)
                    for (int ky = 0; ky < K; ++ky) {
                        const float *src = in + (c * H + oy + p + ky) * W;
                        for (int kx = 0; kx < K; ++kx) {
                            v8f x[MAX_VECS];
                            for (int v = 0; v < VECS; ++v) x[v] = load8(src + kx + v * LANES);
                            for (int g = 0; g < G; ++g) {
                                const float wv = w[(((f0 + g) * C + c) * K + ky) * K + kx];
                                for (int v = 0; v < VECS; ++v) acc[g][v] += wv * x[v];
                            }
                        }
                    }
                for (int g = 0; g < G; ++g) memcpy(rows[g][p], acc[g], VECS * sizeof(v8f));
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

static inline void dense(const float *restrict in, int N, const float *restrict w, const float *restrict b, int M,
                         int relu, float *restrict out) {
    float acc[MAX_ROW_DENSE];
    for (int j = 0; j < M; ++j) acc[j] = b[j];
    for (int i = 0; i < N; ++i) {
        const float xi = in[i];
        if (xi == 0.0f) continue; /* ReLU leaves about half the inputs at zero */
        const float *wi = w + i * M;
        for (int j = 0; j < M; ++j) acc[j] += xi * wi[j];
    }
    for (int j = 0; j < M; ++j) out[j] = relu && acc[j] < 0.0f ? 0.0f : acc[j];
}

static void forward_one(const float *const *p, const uint8_t *image, float *logits) {
    /* LANES of slack after each input: a row's last vector reads past the row's end (values that
     * only reach outputs beyond OW, which are never used). */
    float x[IN_H * IN_W + LANES];
    float a1[CONV1_F * POOL1_H * POOL1_W + LANES];
    float a2[FLAT];
    float h1[FC1_N], h2[FC2_N];
    for (int i = 0; i < IN_H * IN_W; ++i) x[i] = (float)image[i] * INPUT_SCALE;
    for (int i = 0; i < LANES; ++i) x[IN_H * IN_W + i] = a1[CONV1_F * POOL1_H * POOL1_W + i] = 0.0f;
    conv_relu_pool(x, 1, IN_H, IN_W, p[0], p[1], CONV1_F, CONV1_K, CONV1_P, a1);
    conv_relu_pool(a1, CONV1_F, POOL1_H, POOL1_W, p[2], p[3], CONV2_F, CONV2_K, CONV2_P, a2);
    dense(a2, FLAT, p[4], p[5], FC1_N, 1, h1);
    dense(h1, FC1_N, p[6], p[7], FC2_N, 1, h2);
    dense(h2, FC2_N, p[8], p[9], FC3_N, 0, logits);
}

int lenet5_float_forward(const float *const *params, const uint8_t *images, int64_t n, float *logits) {
    if (n < 0) return 1;
#pragma omp parallel for schedule(static) if (n >= 32)
    for (int64_t i = 0; i < n; ++i) forward_one(params, images + i * IN_H * IN_W, logits + i * FC3_N);
    return 0;
}
