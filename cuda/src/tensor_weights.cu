// The tensor kernel's weights (lenet5_gpu_create): every layer's B matrix cut into fragments in
// lane order as tensor_layout.cuh lays them out, fp16 from the float weights (half mode) or two
// 8-bit limbs from the raw integers (fixed mode), then the biases; uploaded once.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "handle.h"

namespace lenet5::api {

namespace {

constexpr int kHalfIndex = 0, kLimbIndex = 1;  // h->tensor_weights, tensor_info, tensor_missing

template <class A>
class Packer {
   public:
    using T = TensorLayout<A>;
    std::vector<unsigned char> blob = std::vector<unsigned char>(T::kPackedBytes, 0);

    // weight(i, j): layer i's kernel element j (Keras layout); bias(i, j) likewise.
    template <class W>
    void layers(W weight) {
        conv1([&](int64_t j) { return weight(0, j); });
        conv2([&](int64_t j) { return weight(1, j); });
        dense<L2>(T::kOffDense2, [&](int64_t j) { return weight(2, j); });
        dense<L3>(T::kOffDense3, [&](int64_t j) { return weight(3, j); });
        dense<L4>(T::kOffDense4, [&](int64_t j) { return weight(4, j); });
    }
    void bias(int layer, int j, typename A::bias_t value) {
        std::memcpy(blob.data() + T::kOffBias + (size_t(layer) * T::kBiasStride + j) * sizeof value, &value,
                    sizeof value);
    }

   private:
    // One fragment at byte `at`: element e (of the chunk's k) of column n (of the tile) is value(e, n).
    template <class V>
    void fragment(size_t at, V value) {
        constexpr int per_register = 4 / T::kEB;
        for (int lane = 0; lane < 32; ++lane)
            for (int r = 0; r < 2; ++r)
                for (int j = 0; j < per_register; ++j) {
                    const int e = r * T::kSlotElems + lane % 4 * per_register + j;
                    A::put_weight(blob.data() + at + lane * 8 + r * 4, T::kFragPlaneBytes, j, value(e, lane / 4));
                }
    }
    // B_ky[x][(c, ox)] = w[ky][x - ox][0][c].
    template <class W>
    void conv1(W w) {
        for (int ky = 0; ky < L0::kernel; ++ky)
            for (int tile = 0; tile < T::kC1NTiles; ++tile)
                for (int kc = 0; kc < T::kC1Chunks; ++kc) {
                    const int c = tile / T::kC1TilesPerChannel, ox0 = tile % T::kC1TilesPerChannel * 8;
                    fragment(size_t(T::c1_frag(ky, tile, kc)) * T::kFragBytes, [&](int e, int n) {
                        const int x = kc * T::kChunkElems + e, kx = x - (ox0 + n);
                        if (kx < 0 || kx >= L0::kernel || x >= L0::in_w) return 0.0;
                        return w((int64_t(ky) * L0::kernel + kx) * L0::out_c + c);
                    });
                }
    }
    // k = slots (ky, kx) of the input channels.
    template <class W>
    void conv2(W w) {
        for (int kc = 0; kc < T::kC2Chunks; ++kc)
            for (int tile = 0; tile < T::kC2NTiles; ++tile)
                fragment(size_t(T::kC1Frags + kc * T::kC2NTiles + tile) * T::kFragBytes, [&](int e, int n) {
                    const int s = 2 * kc + e / T::kSlotElems, ci = e % T::kSlotElems;
                    if (s >= T::kC2Positions || ci >= L1::in_c) return 0.0;
                    return w((int64_t(s) * L1::in_c + ci) * L1::out_c + tile * 8 + n);
                });
    }
    template <class L, class W>
    void dense(size_t offset, W w) {
        using D = typename T::template Dense<L>;
        for (int tile = 0; tile < D::tiles; ++tile)
            for (int kc = 0; kc < D::chunks; ++kc)
                fragment(offset + size_t(tile * D::chunks + kc) * T::kFragBytes, [&](int e, int n) {
                    const int k = kc * T::kChunkElems + e, o = tile * 8 + n;
                    return k < L::in && o < L::out ? w(int64_t(k) * L::out + o) : 0.0;
                });
    }
};

// The card can run the tensor kernel; otherwise the reason goes to h->tensor_missing[index].
bool tensor_capable(lenet5_gpu* h, int index) {
    if (h->cc_major >= 8) return true;
    std::snprintf(h->tensor_missing[index], sizeof h->tensor_missing[index],
                  "needs tensor cores of compute capability 8.0 or later; %s is %d.%d", h->name, h->cc_major,
                  h->cc_minor);
    return false;
}

template <class A>
int upload(lenet5_gpu* h, int index, Packer<A>& packer, TensorParams<A>& params, bool* loaded) {
    if (const int status = to_device(packer.blob, &h->tensor_weights[index])) return status;
    params.packed = static_cast<const unsigned char*>(h->tensor_weights[index]);
    LaunchInfo& info = h->tensor_info[index];
    CUDA_TRY(prepare_tensor<A>(&info));
    if (info.max_blocks_per_sm < 1) {
        std::snprintf(h->tensor_missing[index], sizeof h->tensor_missing[index],
                      "the tensor kernel needs %d bytes of shared memory a block: too many for %s", info.smem_bytes,
                      h->name);
        return LENET5_OK;
    }
    *loaded = true;
    return LENET5_OK;
}

}  // namespace

int load_half(lenet5_gpu* h, const lenet5_layer_params* layers) {
    if (!tensor_capable(h, kHalfIndex)) return LENET5_OK;
    bool fits = true;
    Packer<HalfArith> packer;
    packer.layers([&](int i, int64_t j) {
        const double w = layers[i].kernel[j];
        fits = fits && std::fabs(w) <= 65504.0;  // float16's largest finite value
        return w;
    });
    if (!fits) {
        std::snprintf(h->tensor_missing[kHalfIndex], sizeof h->tensor_missing[kHalfIndex],
                      "a float weight is outside float16's range");
        return LENET5_OK;
    }
    for (int i = 0; i < kNumLayers; ++i) {
        for (int64_t j = 0; j < kLayers[i].bias_count; ++j) packer.bias(i, int(j), layers[i].bias[j]);
        // The pixel byte enters unscaled (exact in fp16); its 2**-frac scale is applied to the sum.
        h->half_params.epilogue[i].scale = i == 0 ? std::ldexp(1.0f, -sh::kPixelFracBits) : 1.0f;
    }
    return upload(h, kHalfIndex, packer, h->half_params, &h->loaded[LENET5_MODE_HALF]);
}

int load_limbs(lenet5_gpu* h, const lenet5_layer_params* layers) {
    // load_fixed has checked the formats (16-bit outputs: activations below 2**15) and that every
    // sum stays below 2**53.
    if (!tensor_capable(h, kLimbIndex)) return LENET5_OK;
    static_assert(L1::fan_in <= LimbArith::kMaxFanIn && L2::fan_in <= LimbArith::kMaxFanIn, "limb sums fit int32");
    Packer<LimbArith> packer;
    packer.layers([&](int i, int64_t j) { return double(layers[i].kernel_raw[j]); });
    for (int i = 0; i < kNumLayers; ++i) {
        for (int64_t j = 0; j < kLayers[i].bias_count; ++j)
            packer.bias(i, int(j), (long long)layers[i].bias_raw[j] * (1ll << layers[i].fixed.bias_shift));
        h->limb_params.epilogue[i] = make_flat_cast(h->fixed_params.cast[i]);
    }
    return upload(h, kLimbIndex, packer, h->limb_params, &h->limb_loaded);
}

void release_tensor_weights(lenet5_gpu* h) {
    for (void*& w : h->tensor_weights) {
        if (w) cudaFree(w);
        w = nullptr;
    }
}

}  // namespace lenet5::api
