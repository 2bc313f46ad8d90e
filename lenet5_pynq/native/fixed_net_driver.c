/* The fixed-point kernel as a program, for runs without Python: lenet5_pynq.native.cross builds it
 * for the boards' ARM cores and runs it under qemu-user; it runs as well on a board.
 *
 *     fixed_net_driver PARAMS IMAGES LOGITS
 *
 * PARAMS holds the ten arrays as backends/cpu.py packs them (_pack_fixed_for_c: int32 kernel
 * words, int64 biases), back to back; IMAGES holds uint8 images of IN_H x IN_W pixels, back to
 * back; LOGITS is written with FC3_N int16 raw logits an image.  Compiled with the -D macros of
 * backends/cpu.py fixed_defines.  Exit status 0, else 1 with the reason on stderr.
 */
#define _POSIX_C_SOURCE 200809L /* before any system header, for the kernel's work_pool.h */
#include <stdio.h>
#include <stdlib.h>

#include "driver_io.h"

#include "fixed_net.c"

/* Bytes of each packed array, a layer's kernel words then its biases. */
#define PARAM_BYTES                               \
    {CONV1_F * CONV1_K * CONV1_KXP * 4,           \
     CONV1_F * 8,                                 \
     CONV2_K * CONV2_K * CONV1_CP * CONV2_FP * 4, \
     CONV2_F * 8,                                 \
     FC1_NP * FC1_MP * 4,                         \
     FC1_N * 8,                                   \
     FC2_NP * FC2_MP * 4,                         \
     FC2_N * 8,                                   \
     FC3_NP * FC3_MP * 4,                         \
     FC3_N * 8}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s PARAMS IMAGES LOGITS\n", argv[0]);
        return 1;
    }
    static const long bytes[N_PARAMS] = PARAM_BYTES;
    long expected = 0, params_size, images_size;
    for (int k = 0; k < N_PARAMS; ++k) expected += bytes[k];
    char *packed = read_file(argv[1], &params_size);
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
    const void *params[N_PARAMS];
    long at = 0;
    for (int k = 0; k < N_PARAMS; at += bytes[k++]) { /* each array on its own, aligned for its words */
        void *copy = malloc((size_t)bytes[k]);
        if (!copy) {
            perror("malloc");
            return 1;
        }
        memcpy(copy, packed + at, (size_t)bytes[k]);
        params[k] = copy;
    }
    const int64_t n = images_size / (IN_H * IN_W);
    int16_t *logits = malloc((size_t)(n ? n : 1) * FC3_N * sizeof(int16_t));
    int64_t *classes = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    FILE *out = fopen(argv[3], "wb");
    if (!logits || !classes || !out) {
        perror(argv[3]);
        return 1;
    }
    const int status = lenet5_fixed_forward(params, images, n, 1, logits, classes);
    if (status) {
        fprintf(stderr, "lenet5_fixed_forward failed with status %d\n", status);
        return 1;
    }
    if (fwrite(logits, sizeof(int16_t) * FC3_N, (size_t)n, out) != (size_t)n || fclose(out)) {
        perror(argv[3]);
        return 1;
    }
    return 0;
}
