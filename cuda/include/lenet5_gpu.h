/* lenet5_gpu: LeNet-5 inference on an NVIDIA GPU, the whole network fused into one kernel.
 *
 * Three modes on one handle:
 *   LENET5_MODE_FLOAT  float32, the Keras numbers (logits float[n][10]);
 *   LENET5_MODE_FIXED  the fixed-point network, bit-exact with lenet5_pynq.golden
 *                      (logits are the raw int16 words of the last layer's output format);
 *   LENET5_MODE_HALF   the float network on tensor cores: weights and activations rounded to
 *                      float16, float32 sums (logits float[n][10]).  Reduced precision: it
 *                      agrees with LENET5_MODE_FLOAT on most images, not bit for bit.  Loaded
 *                      with the float weights on cards of compute capability 8.0 or later.
 * The fixed mode also runs on int8 tensor cores (LENET5_VARIANT_TENSOR, compute capability 8.0
 * or later), still bit-exact: each 16-bit value is split into two 8-bit limbs.
 *
 * Layouts (all C order):
 *   images   uint8[n][28][28], the pixel byte is the input (float mode scales it by 2**-8);
 *   kernels  Keras layout: conv (kh, kw, cin, cout), dense (in, out); dense inputs are the
 *            channels-last (h, w, c) flattening of the previous layer's output;
 *   classes  int32[n], the index of the first of equal maximal logits;
 *   logits   float[n][10] (float mode) or int16[n][10] (fixed mode).
 * The sizes come from lenet5_gpu_layer_info(); the library checks nothing else about them, so
 * pass exactly kernel_count and bias_count elements per layer.
 *
 * Fixed mode, per layer: accum = sum(input * kernel_raw) + (bias_raw << bias_shift), exactly;
 * out = cast(accum) from accum_frac_bits to the output format (out_width bits, out_frac_bits
 * fraction bits, the given rounding and saturation modes, as Vitis HLS ap_fixed does); ReLU and
 * max-pool where the network has them.  The library computes the sums in float64, which is
 * exact because every partial sum stays below 2**53; lenet5_gpu_create() checks that bound.
 *
 * Every function returns a status (LENET5_OK == 0); lenet5_gpu_last_error() says more about
 * the last failure in the calling thread.  Nothing in the library exits or aborts.  A handle
 * takes one call at a time (its staging buffers and pipeline threads are shared): it is not
 * thread-safe, so use one handle per thread or a lock.  Calls leave the caller's current CUDA
 * device as they found it.
 *
 * The declarations between the CDEF markers are CFFI's cdef too (lenet5_pynq/gpu.py reads them
 * from this file): plain C, no macros.  `python -m lenet5_pynq.gpu check-header` fails when cffi
 * cannot parse them or the built library does not export a function declared here.
 */
#ifndef LENET5_GPU_H
#define LENET5_GPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* BEGIN CDEF */
typedef struct lenet5_gpu lenet5_gpu;

typedef enum {
    LENET5_OK = 0,
    LENET5_ERR_INVALID_ARGUMENT = 1,
    LENET5_ERR_NO_DRIVER = 2,
    LENET5_ERR_NO_DEVICE = 3,
    LENET5_ERR_CUDA = 4,
    LENET5_ERR_OUT_OF_MEMORY = 5,
    LENET5_ERR_UNSUPPORTED = 6,
    LENET5_ERR_MODE_NOT_LOADED = 7
} lenet5_status;

typedef enum { LENET5_MODE_FLOAT = 0, LENET5_MODE_FIXED = 1, LENET5_MODE_HALF = 2 } lenet5_mode;

/* Quantization (rounding) modes of ap_fixed, in the order of lenet5_pynq.fixedpoint. */
typedef enum {
    LENET5_AP_TRN = 0,
    LENET5_AP_TRN_ZERO = 1,
    LENET5_AP_RND = 2,
    LENET5_AP_RND_ZERO = 3,
    LENET5_AP_RND_MIN_INF = 4,
    LENET5_AP_RND_INF = 5,
    LENET5_AP_RND_CONV = 6
} lenet5_rounding;

/* Overflow (saturation) modes of ap_fixed. */
typedef enum { LENET5_AP_WRAP = 0, LENET5_AP_SAT = 1, LENET5_AP_SAT_ZERO = 2, LENET5_AP_SAT_SYM = 3 } lenet5_saturation;

/* Kernel variants: AUTO picks by batch size; the others force one (for tests and timing). */
typedef enum {
    LENET5_VARIANT_AUTO = 0,
    LENET5_VARIANT_WARP = 1,  /* a warp per pair of images: throughput */
    LENET5_VARIANT_BLOCK = 2,      /* a block per image: latency at small batches */
    LENET5_VARIANT_WARP_SMALL = 3, /* WARP with activations stored as float (fixed mode's integers
                                      are exact in float): less shared memory, more warps per SM */
    LENET5_VARIANT_TENSOR = 4      /* fixed mode on int8 tensor cores, 16 images a block (exact);
                                      float mode has no tensor variant and keeps AUTO's choice */
} lenet5_variant;

typedef struct {
    const char *name;      /* the layer's name in lenet5_pynq.network */
    int32_t is_conv;       /* 1: convolution + ReLU + max-pool, 0: dense */
    int32_t relu;
    int32_t fan_in;        /* products summed per output */
    int32_t outputs;       /* values per image after the layer (after pooling) */
    int64_t kernel_count;  /* elements of the kernel, Keras layout */
    int64_t bias_count;
} lenet5_layer_info;

typedef struct {
    int32_t accum_frac_bits;  /* fraction bits of the exact accumulator */
    int32_t bias_shift;       /* left shift aligning bias_raw to the accumulator, >= 0 */
    int32_t out_width;        /* output format: total bits, 1..16 */
    int32_t out_frac_bits;    /* output format: fraction bits */
    int32_t out_signed;       /* must be 1 */
    int32_t rounding;         /* lenet5_rounding */
    int32_t saturation;       /* lenet5_saturation */
} lenet5_fixed_format;

typedef struct {
    const float *kernel;         /* float mode: kernel_count floats; NULL in every layer: no float mode */
    const float *bias;           /* float mode: bias_count floats */
    const int16_t *kernel_raw;   /* fixed mode: raw kernel integers; NULL in every layer: no fixed mode */
    const int16_t *bias_raw;     /* fixed mode: raw bias integers (before the bias shift) */
    lenet5_fixed_format fixed;   /* fixed mode: the layer's formats */
} lenet5_layer_params;

/* The network the library was built for. */
int lenet5_gpu_num_layers(void);
int lenet5_gpu_num_classes(void);
int lenet5_gpu_image_bytes(void);
int lenet5_gpu_layer_info(int index, lenet5_layer_info *info);

/* Number of CUDA devices; LENET5_ERR_NO_DRIVER or LENET5_ERR_NO_DEVICE when there are none. */
int lenet5_gpu_device_count(int *count);

/* Copies the weights to `device`; either mode's pointers may all be NULL (that mode is then
 * refused with LENET5_ERR_MODE_NOT_LOADED).  The float weights load LENET5_MODE_HALF too where
 * the card has the tensor cores for it and the weights fit float16; otherwise that mode is
 * refused with LENET5_ERR_MODE_NOT_LOADED, and the message says which. */
int lenet5_gpu_create(int device, const lenet5_layer_params *layers, int num_layers, lenet5_gpu **handle);
int lenet5_gpu_destroy(lenet5_gpu *handle);

/* The card's name as the driver reports it, NUL-terminated, truncated to `size` bytes. */
int lenet5_gpu_device_name(const lenet5_gpu *handle, char *name, size_t size);
int lenet5_gpu_set_variant(lenet5_gpu *handle, int variant);

/* The resident path of lenet5_gpu_infer_host: batches of 1 to 8 images (variant AUTO) go to a
 * kernel that stays on the GPU between calls, with the weights in shared memory; the images and
 * results pass through mapped pinned memory and a mailbox, with no launch, copy or stream
 * synchronization per call.  The kernel ends after `idle_us` microseconds without a call
 * (default 1000, or $LENET5_GPU_RESIDENT_US); 0 turns the path off (a launch per call).  While
 * it waits it holds 8 multiprocessors, and cudaDeviceSynchronize() or work queued behind it on
 * the handle's stream waits for it to end; every other call on the handle ends it first.  At
 * most 10,000,000. */
int lenet5_gpu_set_resident(lenet5_gpu *handle, int64_t idle_us);

/* Since the handle's creation: calls answered by the resident path, resident kernels launched,
 * and the mean time (GPU clock, microseconds) from the kernel seeing a call's command to its answer. */
int lenet5_gpu_resident_stats(const lenet5_gpu *handle, int64_t *calls, int64_t *launches, double *gpu_us);

/* Host memory in, host memory out; returns when the results are there.  `classes` or
 * `logits` may be NULL.  Any alignment.  Batches of more than 256 images go through the host
 * pipeline (lenet5_gpu_set_host_pipeline); there an array in page-locked memory (from
 * lenet5_gpu_alloc_host, cudaHostAlloc or cudaHostRegister, as one allocation) is read or written
 * in place by the copy engines, other host memory through the pipeline's pinned staging, and
 * device memory is refused with LENET5_ERR_INVALID_ARGUMENT. */
int lenet5_gpu_infer_host(lenet5_gpu *handle, int mode, const uint8_t *images, int64_t n, int32_t *classes,
                          void *logits);

/* The host pipeline: a batch is cut into chunks of at most `chunk` images (at least 4096 where the
 * batch has them; 0: 8192) that `threads` lanes (0: half the cores, at most 8; at most 64), each
 * a CPU thread with its own stream and two chunks of pinned staging and device buffers, copy
 * into staging, transfer, run and copy back, overlapping one another.  The calling thread is
 * lane 0; the others are threads of the handle, started at the first batch that needs them.
 * Buffers are allocated at a lane's first chunk; changing the shape frees them. */
int lenet5_gpu_set_host_pipeline(lenet5_gpu *handle, int threads, int64_t chunk);
/* The pipeline's shape in use (the defaults resolved). */
int lenet5_gpu_host_pipeline(const lenet5_gpu *handle, int *threads, int64_t *chunk);

/* Page-locked host memory of `bytes` bytes (> 0) for lenet5_gpu_infer_host's arrays, portable
 * across devices; free it with lenet5_gpu_free_host (which refuses any other pointer).  It does
 * not depend on the handle staying alive.  Both are thread-safe.  lenet5_gpu_host_bytes: the
 * bytes allocated so and not yet freed, in this process. */
int lenet5_gpu_alloc_host(lenet5_gpu *handle, size_t bytes, void **ptr);
int lenet5_gpu_free_host(void *ptr);
int lenet5_gpu_host_bytes(int64_t *bytes);

/* Device memory in and out, asynchronous on `stream` (a cudaStream_t; NULL: the handle's own
 * stream).  `classes` or `logits` may be NULL. */
int lenet5_gpu_infer_device(lenet5_gpu *handle, int mode, const uint8_t *images, int64_t n, int32_t *classes,
                            void *logits, void *stream);

/* Benchmark helper: copies `sets` batches of `batch` host images to the device, runs `warmup`
 * calls, then `repeats` times `calls` device-to-device calls (rotating over the sets) between
 * two CUDA events; ms_per_call[i] = elapsed / calls of repeat i. */
int lenet5_gpu_time_device(lenet5_gpu *handle, int mode, const uint8_t *images, int64_t sets, int64_t batch, int calls,
                           int warmup, int repeats, float *ms_per_call);

/* Benchmark helper: seconds[i] = host-clock time of the i-th of `repeats` synchronous copies of
 * `bytes` bytes from host memory `host` (pageable or page-locked) to device memory, after one
 * untimed copy: the copy bandwidth the host path is measured against. */
int lenet5_gpu_time_copy(lenet5_gpu *handle, const void *host, int64_t bytes, int repeats, double *seconds);

const char *lenet5_gpu_status_string(int status);
const char *lenet5_gpu_last_error(void);
/* END CDEF */

#ifdef __cplusplus
}
#endif

#endif /* LENET5_GPU_H */
