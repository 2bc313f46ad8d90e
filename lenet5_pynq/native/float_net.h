/* C entry point of the cpu-float kernel.  Read by float_net.c and, between the CDEF markers,
 * by CFFI (lenet5_pynq/native/__init__.py, through sharedlib.header_cdef). */
#ifndef LENET5_FLOAT_NET_H
#define LENET5_FLOAT_NET_H
#include <stdint.h>

/* BEGIN CDEF */
int lenet5_float_forward(const float *const *params, const uint8_t *images, int64_t n, float *logits);
/* END CDEF */

#endif
