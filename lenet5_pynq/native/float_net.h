/* C entry point of the cpu-float kernel; also read by the CFFI cdef in __init__.py. */
int lenet5_float_forward(const float *const *params, const uint8_t *images, int64_t n, float *logits);
