// The weights' upload (lenet5_gpu_create): float mode's kernels and biases as float32, fixed
// mode's raw integers as float64 (exact) and float32 (exact, for the latency variant), checked for
// formats the kernels implement and for sums that stay exact; then each kernel's launch table.
#include <cmath>
#include <cstring>
#include <vector>

#include "handle.h"

namespace lenet5::api {

namespace {

template <class L>
LayerDesc describe() {
    return {L::name, L::is_conv ? 1 : 0, L::relu ? 1 : 0, L::fan_in, L::outputs, L::kernel_count, L::bias_count};
}

}  // namespace

const LayerDesc kLayers[kNumLayers] = {describe<L0>(), describe<L1>(), describe<L2>(), describe<L3>(), describe<L4>()};

int to_device(std::vector<unsigned char>& blob, void** dev) {
    blob.resize(blob.size() + 16, 0);  // 16-byte prefetches may read past a piece's last element
    CUDA_TRY(cudaMalloc(dev, blob.size()));
    CUDA_TRY(cudaMemcpy(*dev, blob.data(), blob.size(), cudaMemcpyHostToDevice));
    return LENET5_OK;
}

namespace {

// Copies `count` values of `src` (converted to T, scaled by `scale`) into the blob at `offset`
// (256-byte aligned), returning the offset of the next piece.
template <class T, class S>
size_t append(std::vector<unsigned char>& blob, size_t offset, const S* src, int64_t count, double scale = 1.0) {
    offset = (offset + 255) / 256 * 256;
    blob.resize(offset + count * sizeof(T));
    T* dst = reinterpret_cast<T*>(blob.data() + offset);
    for (int64_t i = 0; i < count; ++i) dst[i] = T(double(src[i]) * scale);
    return offset + count * sizeof(T);
}

// blob: the weights as acc_t; blob_f: as float (null: blob is float already).
template <class M>
int upload(lenet5_gpu* h, std::vector<unsigned char>& blob, const size_t (&offsets)[kNumLayers][2],
           std::vector<unsigned char>* blob_f, const size_t (&offsets_f)[kNumLayers][2], NetParams<M>& params) {
    int status = to_device(blob, &h->weights[M::kIndex]);
    if (status) return status;
    unsigned char* dev = static_cast<unsigned char*>(h->weights[M::kIndex]);
    unsigned char* dev_f = dev;
    if (blob_f != nullptr) {
        if ((status = to_device(*blob_f, &h->weights_f))) return status;
        dev_f = static_cast<unsigned char*>(h->weights_f);
    }
    for (int i = 0; i < kNumLayers; ++i) {
        params.kernel[i] = reinterpret_cast<const typename M::acc_t*>(dev + offsets[i][0]);
        params.bias[i] = reinterpret_cast<const typename M::acc_t*>(dev + offsets[i][1]);
        params.kernel_f[i] = reinterpret_cast<const float*>(dev_f + offsets_f[i][0]);
        params.bias_f[i] = reinterpret_cast<const float*>(dev_f + offsets_f[i][1]);
    }
    for (int v = 0; v < kNumVariants; ++v) {
        LaunchInfo& info = h->launch_info[M::kIndex][v];
        CUDA_TRY(prepare<M>(Variant(v), &info));
        if (info.max_blocks_per_sm < 1)
            return fail(LENET5_ERR_UNSUPPORTED, "kernel variant %d needs %d bytes of shared memory: too many for %s", v,
                        info.smem_bytes, h->name);
    }
    LaunchInfo info;
    CUDA_TRY(prepare_resident<M>(&info));
    if (info.max_blocks_per_sm < 1) h->resident_broken = true;  // cannot run here: launch per call
    h->loaded[M::kIndex] = true;
    return LENET5_OK;
}

}  // namespace

int load_float(lenet5_gpu* h, const lenet5_layer_params* layers) {
    std::vector<unsigned char> blob;
    size_t offsets[kNumLayers][2];
    size_t at = 0;
    for (int i = 0; i < kNumLayers; ++i) {
        // The pixel byte enters unscaled: conv1's kernel carries the 2**-frac input scale (exact).
        const double scale = i == 0 ? std::ldexp(1.0, -sh::kPixelFracBits) : 1.0;
        offsets[i][0] = (at + 255) / 256 * 256;
        at = append<float>(blob, at, layers[i].kernel, kLayers[i].kernel_count, scale);
        offsets[i][1] = (at + 255) / 256 * 256;
        at = append<float>(blob, at, layers[i].bias, kLayers[i].bias_count);
    }
    for (size_t i = 0; i < blob.size() / sizeof(float); ++i) {
        float v;
        std::memcpy(&v, blob.data() + i * sizeof(float), sizeof v);
        if (!std::isfinite(v)) return fail(LENET5_ERR_INVALID_ARGUMENT, "float weights hold NaN or infinity");
    }
    return upload<FloatMode>(h, blob, offsets, nullptr, offsets, h->float_params);
}

int load_fixed(lenet5_gpu* h, const lenet5_layer_params* layers) {
    std::vector<unsigned char> blob, blob_f;
    size_t offsets[kNumLayers][2], offsets_f[kNumLayers][2];
    size_t at = 0, at_f = 0;
    double max_in = 255.0;  // the pixel byte
    for (int i = 0; i < kNumLayers; ++i) {
        const lenet5_layer_params& L = layers[i];
        const lenet5_fixed_format& f = L.fixed;
        const char* name = kLayers[i].name;
        if (f.out_signed != 1)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: unsigned output formats are not supported", name);
        if (f.out_width < 1 || f.out_width > 16)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: output width %d outside 1..16", name, f.out_width);
        if (f.rounding < 0 || f.rounding >= kNumRounding)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: rounding mode %d not implemented", name, f.rounding);
        if (f.saturation < 0 || f.saturation >= kNumSaturation)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: saturation mode %d not implemented", name, f.saturation);
        if (f.bias_shift < 0 || f.bias_shift > 52)
            return fail(LENET5_ERR_INVALID_ARGUMENT, "%s: bias shift %d outside 0..52", name, f.bias_shift);
        const int shift = f.accum_frac_bits - f.out_frac_bits;
        if (shift > 62 || shift < -8)
            return fail(LENET5_ERR_UNSUPPORTED, "%s: cast shift %d outside -8..62", name, shift);
        // Exactness: |sum| <= fan_in * max|in| * max|kernel| + max|bias| must stay below 2**53.
        double max_k = 0, max_b = 0;
        for (int64_t j = 0; j < kLayers[i].kernel_count; ++j)
            max_k = std::fmax(max_k, std::fabs(double(L.kernel_raw[j])));
        for (int64_t j = 0; j < kLayers[i].bias_count; ++j) max_b = std::fmax(max_b, std::fabs(double(L.bias_raw[j])));
        const double bound = kLayers[i].fan_in * max_in * max_k + std::ldexp(max_b, f.bias_shift);
        if (!(bound < std::ldexp(1.0, 53)))
            return fail(LENET5_ERR_UNSUPPORTED, "%s: accumulator may reach 2**%.1f: not exact in float64", name,
                        std::log2(bound));
        FixedCast& c = h->fixed_params.cast[i];
        c.shift = shift;
        c.width = f.out_width;
        c.rounding = f.rounding;
        c.saturation = f.saturation;
        c.min_raw = -(int64_t(1) << (f.out_width - 1));
        c.max_raw = (int64_t(1) << (f.out_width - 1)) - 1;
        max_in = std::ldexp(1.0, f.out_width - 1);
        offsets[i][0] = (at + 255) / 256 * 256;
        at = append<double>(blob, at, L.kernel_raw, kLayers[i].kernel_count);
        offsets[i][1] = (at + 255) / 256 * 256;
        at = append<double>(blob, at, L.bias_raw, kLayers[i].bias_count, std::ldexp(1.0, f.bias_shift));
        // float32 copy: 16-bit integers times a power of two are exact in float32
        offsets_f[i][0] = (at_f + 255) / 256 * 256;
        at_f = append<float>(blob_f, at_f, L.kernel_raw, kLayers[i].kernel_count);
        offsets_f[i][1] = (at_f + 255) / 256 * 256;
        at_f = append<float>(blob_f, at_f, L.bias_raw, kLayers[i].bias_count, std::ldexp(1.0, f.bias_shift));
    }
    return upload<FixedMode>(h, blob, offsets, &blob_f, offsets_f, h->fixed_params);
}

void release_weights(lenet5_gpu* h) {
    for (void*& w : h->weights) {
        if (w) cudaFree(w);
        w = nullptr;
    }
    if (h->weights_f) cudaFree(h->weights_f);
    h->weights_f = nullptr;
}

}  // namespace lenet5::api
