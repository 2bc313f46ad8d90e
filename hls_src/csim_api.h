/* C entry points of the C-simulation library (build/liblenet5_csim.so): the HLS top compiled by
 * g++, driven through its AXI4-Stream format.  Read by csim_api.cpp and, between the CDEF
 * markers, by CFFI (lenet5_pynq/backends/csim.py, through sharedlib.header_cdef). */
#ifndef LENET5_CSIM_API_H
#define LENET5_CSIM_API_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/* BEGIN CDEF */
/* Status codes of lenet5_csim_run. */
enum { LENET5_CSIM_OK = 0, LENET5_CSIM_OUT_FULL = 1, LENET5_CSIM_IN_LEFT = 2 };

/* Push n_in input beats (TLAST on the last), run lenet5(in, out, n, mode) once, pop every output
 * beat: up to out_cap into out_beats and last_flags (TLAST of each beat), the total into *n_out;
 * *in_left = input beats the top did not read.  Returns a status code. */
int lenet5_csim_run(uint32_t mode, uint32_t n, const uint64_t *in_beats, size_t n_in, uint64_t *out_beats,
                    uint8_t *last_flags, size_t out_cap, size_t *n_out, size_t *in_left);

/* The IP's VLNV, as the export wrote it into the generated header. */
const char *lenet5_csim_vlnv(void);

/* What a status code means. */
const char *lenet5_csim_status_message(int status);
/* END CDEF */

#ifdef __cplusplus
}
#endif
#endif
