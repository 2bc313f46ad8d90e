/* One core's fp32 multiply-add throughput, the physical limit that `bench` compares cpu-float
 * with.  Compiled exactly as float_net.c is (native.build, the same -march=native and
 * -ffp-contract=fast), with the same vectors: CHAINS independent accumulators of LANES floats,
 * each updated acc = acc * m + a every round, so that the multiply-adds (fused where the
 * processor has FMA) never wait on one another's results and the loop runs at the FMA units'
 * issue rate at whatever clock the core ran.  acc converges to a / (1 - m): no overflow, no
 * subnormal.  A round is CHAINS * LANES multiply-adds, 2 floating-point operations each.
 */
#include <stdint.h>
#include <string.h>

#include "fma_peak.h"

#if defined(__AVX512F__)
#define LANES 16
#define CHAINS 24 /* of 32 zmm registers; 2 FMA pipes x 4 cycles of latency need at least 8 */
#elif defined(__AVX__)
#define LANES 8
#define CHAINS 12
#else
#define LANES 4
#define CHAINS 8
#endif
typedef float vf __attribute__((vector_size(LANES * 4)));

int lenet5_fma_peak_lanes(void) { return LANES; }

int lenet5_fma_peak_chains(void) { return CHAINS; }

float lenet5_fma_peak_run(int64_t rounds) {
    vf acc[CHAINS], m, a;
    for (int j = 0; j < LANES; ++j) {
        m[j] = 0.999f;
        a[j] = 0.001f;
    }
#pragma GCC unroll 32
    for (int c = 0; c < CHAINS; ++c) acc[c] = m * (float)c;
    for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 32
        for (int c = 0; c < CHAINS; ++c) acc[c] = acc[c] * m + a; /* not reassociated: no -ffast-math */
    }
    float sum = 0.0f;
    for (int c = 0; c < CHAINS; ++c)
        for (int j = 0; j < LANES; ++j) sum += acc[c][j];
    return sum;
}
