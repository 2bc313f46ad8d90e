/* The float kernel as a program, for runs without Python: lenet5_pynq.native.cross builds it for
 * the boards' ARM cores and runs it under qemu-user; it runs as well on a board.
 *
 *     float_net_driver PARAMS IMAGES LOGITS
 *
 * PARAMS holds the ten float32 arrays in Keras's layouts (backends/cpu.py's _pack_for_c), back to
 * back, which lenet5_float_pack lays out for the kernel;
 * IMAGES holds uint8 images of IN_H x IN_W pixels, back to back; LOGITS is written with
 * FC3_N float32 logits an image.  Compiled with the -D sizes of native.network_defines().
 * Exit status 0, else 1 with the reason on stderr.
 */
#define _POSIX_C_SOURCE 200809L /* before any system header, for the kernel's work_pool.h */
#include <stdio.h>
#include <stdlib.h>

#include "driver_io.h"

#include "float_net.c"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s PARAMS IMAGES LOGITS\n", argv[0]);
        return 1;
    }
    static const int sizes[N_PARAMS] = PARAM_SIZES;
    long expected = 0, params_size, images_size;
    for (int k = 0; k < N_PARAMS; ++k) expected += sizes[k] * (long)sizeof(float);
    float *packed = read_file(argv[1], &params_size);
    uint8_t *images = read_file(argv[2], &images_size);
    if (!packed || !images) return 1;
    if (params_size != expected) {
        fprintf(stderr, "%s: %ld bytes, the ten parameter arrays take %ld\n", argv[1], params_size, expected);
        return 1;
    }
    if (images_size % (IN_H * IN_W)) {
        fprintf(stderr, "%s: %ld bytes, not a whole number of %dx%d images\n", argv[2], images_size, IN_H, IN_W);
        return 1;
    }
    const float *params[N_PARAMS];
    for (int k = 0, at = 0; k < N_PARAMS; at += sizes[k++]) params[k] = packed + at;
    float *kernel_params = malloc(PACKED_SIZE * sizeof(float));
    if (!kernel_params || lenet5_float_pack(params, kernel_params, PACKED_SIZE)) {
        fprintf(stderr, "cannot pack the parameters\n");
        return 1;
    }
    const int64_t n = images_size / (IN_H * IN_W);
    float *logits = malloc((size_t)(n ? n : 1) * FC3_N * sizeof(float));
    FILE *out = fopen(argv[3], "wb");
    if (!logits || !out) {
        perror(argv[3]);
        return 1;
    }
    int status = lenet5_float_forward(kernel_params, images, n, logits, 1);
    if (status) {
        fprintf(stderr, "lenet5_float_forward failed with status %d\n", status);
        return 1;
    }
    if (fwrite(logits, sizeof(float) * FC3_N, (size_t)n, out) != (size_t)n || fclose(out)) {
        perror(argv[3]);
        return 1;
    }
    return 0;
}
