/* C entry points of the `cpu` backend's bit-exact fixed-point kernel.  Read by fixed_net.c and,
 * between the CDEF markers, by CFFI (lenet5_pynq/native/__init__.py, through
 * sharedlib.header_cdef). */
#ifndef LENET5_FIXED_NET_H
#define LENET5_FIXED_NET_H
#include <stdint.h>

/* BEGIN CDEF */
/* Raw int16 logits [n][FC3_N] and first-maximum classes [n] of n uint8 images; `params` holds
 * the ten arrays backends/cpu.py packs (_pack_fixed_for_c); on the calling thread and up to
 * threads - 1 workers of work_pool.h (0 and 1: the calling thread alone).  Returns 0, or 1 for
 * a negative n or threads.  Safe to call from several threads at once. */
int lenet5_fixed_forward(const void *const *params, const uint8_t *images, int64_t n, int threads, int16_t *logits,
                         int64_t *classes);
/* The instructions the multiply-adds compiled to, e.g. "avx512-vnni"; and int32 lanes a vector. */
const char *lenet5_fixed_isa(void);
int lenet5_fixed_lanes(void);
/* END CDEF */

#endif
