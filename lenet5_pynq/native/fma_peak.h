/* C entry points of the FMA-throughput loop that `bench` measures the fp32 peak with.  Read by
 * fma_peak.c and, between the CDEF markers, by CFFI (lenet5_pynq/native/__init__.py). */
#ifndef LENET5_FMA_PEAK_H
#define LENET5_FMA_PEAK_H
#include <stdint.h>

/* BEGIN CDEF */
/* Floats in one vector and independent multiply-add chains of this build. */
int lenet5_fma_peak_lanes(void);
int lenet5_fma_peak_chains(void);
/* `rounds` rounds of one multiply-add on each chain; returns a sum of the results, so that the
 * compiler cannot drop the work. */
float lenet5_fma_peak_run(int64_t rounds);
/* END CDEF */

#endif
