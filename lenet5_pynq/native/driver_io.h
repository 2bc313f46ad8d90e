/* File input for the kernels' qemu drivers (float_net_driver.c, fixed_net_driver.c). */
#ifndef LENET5_DRIVER_IO_H
#define LENET5_DRIVER_IO_H
#include <stdio.h>
#include <stdlib.h>

/* The whole of `path` in a new buffer, its size in *size; NULL (said on stderr) on failure. */
static void *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    void *data = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0 && (*size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (data = malloc(*size ? (size_t)*size : 1)) && fread(data, 1, (size_t)*size, f) != (size_t)*size) {
        free(data);
        data = NULL;
    }
    if (!data) perror(path);
    if (f) fclose(f);
    return data;
}

#endif
