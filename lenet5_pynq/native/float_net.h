/* C entry points of the cpu-float kernel.  Read by float_net.c and, between the CDEF markers,
 * by CFFI (lenet5_pynq/native/__init__.py, through sharedlib.header_cdef). */
#ifndef LENET5_FLOAT_NET_H
#define LENET5_FLOAT_NET_H
#include <stdint.h>

/* BEGIN CDEF */
/* Floats in the packed parameter buffer that lenet5_float_pack fills. */
int64_t lenet5_float_packed_size(void);
/* Floats in one vector of this build (16 AVX-512, 8 AVX, 4 SSE or NEON). */
int lenet5_float_lanes(void);
/* The ten parameter arrays in Keras's layouts (conv kernels (ky, kx, c, f), dense (in, out),
 * each followed by its bias, in network order) into `packed`, which holds `size` floats;
 * 1 if size is not lenet5_float_packed_size(). */
int lenet5_float_pack(const float *const *keras, float *packed, int64_t size);
/* Logits [n][10] of n uint8 images [n][28][28] on the calling thread and up to threads - 1
 * helper threads (0 and 1: the calling thread alone); 1 if n < 0, 2 if threads < 0, 3 if out of
 * memory.  Safe to call from several threads at once. */
int lenet5_float_forward(const float *packed, const uint8_t *images, int64_t n, float *logits, int threads);
/* END CDEF */

#endif
