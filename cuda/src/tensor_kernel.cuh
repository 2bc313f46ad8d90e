// The whole network on tensor cores, one kernel for both arithmetics (tensor_arith.cuh), the
// layers laid out as matrix products as tensor_layout.cuh says.  Device code only; the launcher is
// tensor_launch.cu.
//
// A block takes 16 images a pass through every layer, its warps sharing each layer's tiles;
// intermediates stay in shared memory.  The conv weights sit in shared memory as packed B
// fragments, the dense ones are read through L1.  While a pass runs, cp.async brings the next
// pass's image bytes into a staging buffer.  The grid is persistent.
#pragma once

#include "tensor_arith.cuh"
#include "tensor_layout.cuh"

namespace lenet5 {

template <class A>
struct TensorSmem {
    using T = TensorLayout<A>;
    unsigned char* conv_w;
    unsigned char* img;   // [image][row parity][row / 2][kC1RowBytes]
    unsigned char* act1;  // [plane][image][row][slot]
    unsigned char* act2;  // [plane][image][D2::in_row]
    unsigned char* act3;
    unsigned char* act4;
    unsigned char* staging;
    float* logits;  // [image][kLogitStride]
    __device__ explicit TensorSmem(unsigned char* smem)
        : conv_w(smem),
          img(smem + T::kOffRegionA),
          act1(smem + T::kOffRegionB),
          act2(smem + T::kOffRegionA),
          act3(smem + T::kOffRegionB),
          act4(smem + T::kOffRegionA),
          staging(smem + T::kOffStaging),
          logits(reinterpret_cast<float*>(smem + T::kOffLogits)) {}
};

template <class A>
__device__ __forceinline__ const typename A::bias_t* tensor_bias(const TensorParams<A>& p, int layer) {
    using T = TensorLayout<A>;
    return reinterpret_cast<const typename A::bias_t*>(p.packed + T::kOffBias) + layer * T::kBiasStride;
}

template <int PLANES>
__device__ __forceinline__ void load_a(FragA (&a)[PLANES], const unsigned char* slot, int plane_bytes) {
#pragma unroll
    for (int q = 0; q < PLANES; ++q) a[q] = ldmatrix_x4(slot + q * plane_bytes);
}

// A packed B fragment (all planes) from shared or global memory.
template <int PLANES, bool GLOBAL>
__device__ __forceinline__ void load_b(FragB (&b)[PLANES], const unsigned char* frag, int lane) {
#pragma unroll
    for (int q = 0; q < PLANES; ++q) {
        const uint2* src = reinterpret_cast<const uint2*>(frag + q * 256) + lane;
        const uint2 v = GLOBAL ? __ldg(src) : *src;
        b[q].r[0] = v.x;
        b[q].r[1] = v.y;
    }
}

// ------------------------------------------------------------------------------------ images

// The next pass's image bytes into staging (16-byte cp.async; the images are 16-byte aligned).
template <class A>
__device__ __forceinline__ void prefetch_images(const TensorSmem<A>& s, const uint8_t* src, int valid, int tid,
                                                int threads) {
    static_assert(kImageBytes % 16 == 0, "images are copied in 16-byte pieces");
    for (int i = tid; i < valid * kImageBytes / 16; i += threads) copy16_async(s.staging + i * 16, src + i * 16);
    async_commit();
}

// Image bytes (from staging, or straight from global memory when they are not 16-byte aligned)
// into the conv1 layout: fp16 pixels (HalfArith) or the bytes themselves (LimbArith).
template <class A, bool FROM_STAGING>
__device__ __forceinline__ void stage_images(const TensorSmem<A>& s, const uint8_t* src, int valid, int tid,
                                             int threads) {
    using T = TensorLayout<A>;
    static_assert(sh::kInputW % 4 == 0, "rows hold whole 4-pixel words");
    constexpr int kWordsPerImage = kImageBytes / 4, kWordsPerRow = sh::kInputW / 4;
    for (int w = tid; w < valid * kWordsPerImage; w += threads) {
        const int image = w / kWordsPerImage, in_image = w % kWordsPerImage;
        const int y = in_image / kWordsPerRow, x = in_image % kWordsPerRow * 4;
        uint32_t v;
        if constexpr (FROM_STAGING) {
            v = reinterpret_cast<const uint32_t*>(s.staging)[w];
        } else {
            const uint8_t* b = src + size_t(w) * 4;
            v = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
        }
        unsigned char* dst =
            s.img + image * T::kImageBytesSmem + (y & 1) * T::kC1PlaneBytes + (y >> 1) * T::kC1RowBytes + x * T::kEB;
        if constexpr (T::kEB == 2) {
            uint32_t h[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) h[j] = __half_as_ushort(__uint2half_rn((v >> (8 * j)) & 0xffu));
            *reinterpret_cast<uint2*>(dst) = make_uint2(h[0] | h[1] << 16, h[2] | h[3] << 16);
        } else {
            *reinterpret_cast<uint32_t*>(dst) = v;
        }
    }
}

// ------------------------------------------------------------------------------------- conv1

// One row tile of conv1 (8 (image, pooled row) pairs) for n tiles GRP * TPG .. + TPG - 1.
template <class A, int GRP, int TPG>
__device__ __forceinline__ void conv1_tiles(const TensorSmem<A>& s, const TensorParams<A>& p, int mt, int lane) {
    using T = TensorLayout<A>;
    using Acc = typename A::Acc;
    // This lane's ldmatrix row: conv row 2 py + (r >= 8) of pair r % 8.
    const int r = lane & 15;
    const int pair_r = mt * 8 + (r & 7);
    const int oy = 2 * (pair_r % L0::out_h) + (r >> 3);
    const unsigned char* src = s.img + pair_r / L0::out_h * T::kImageBytesSmem + (lane >> 4) * 16;
    Acc acc[TPG] = {};
#pragma unroll
    for (int ky = 0; ky < L0::kernel; ++ky) {
        const int y = oy + ky;
        const unsigned char* row = src + (y & 1) * T::kC1PlaneBytes + (y >> 1) * T::kC1RowBytes;
#pragma unroll
        for (int kc = 0; kc < T::kC1Chunks; ++kc) {
            FragA a[1];
            a[0] = ldmatrix_x4(row + kc * 32);
#pragma unroll
            for (int jj = 0; jj < TPG; ++jj) {
                if (!T::c1_live(GRP * TPG + jj, kc)) continue;  // a band of zeros: folded at compile time
                FragB b[A::kWeightPlanes];
                load_b<A::kWeightPlanes, false>(b, s.conv_w + T::c1_frag(ky, GRP * TPG + jj, kc) * T::kFragBytes, lane);
                A::template mma<1>(acc[jj], a, b);
            }
        }
    }
    // This lane's pooling windows: pair g, columns 2 t, 2 t + 1 of each tile.
    const int g = lane >> 2, t = lane & 3;
    const int pair = mt * 8 + g, image = pair / L0::out_h, py = pair % L0::out_h;
    const typename A::bias_t* bias = tensor_bias(p, 0);
    unsigned char* dst = s.act1 + image * T::kA1ImageBytes + py * T::kA1RowSlots * 16;
#pragma unroll
    for (int jj = 0; jj < TPG; ++jj) {
        const int j = GRP * TPG + jj, c = j / T::kC1TilesPerChannel, px = j % T::kC1TilesPerChannel * 4 + t;
        const typename A::value_t v[4] = {A::sum(acc[jj], 0), A::sum(acc[jj], 1), A::sum(acc[jj], 2),
                                          A::sum(acc[jj], 3)};
        A::store(dst + px * 16, T::kA1PlaneBytes, c,
                 A::template finish<L0::relu, 4>(v, __ldg(bias + c), p.epilogue[0]));
    }
}

// Tiles per work item: as many as keep the accumulators within 72 registers.
template <class A>
__host__ __device__ constexpr int conv1_tiles_per_item() {
    constexpr int regs = int(sizeof(typename A::Acc)) / 4;
    int tpg = TensorLayout<A>::kC1NTiles;
    while (tpg > 1 && (tpg * regs > 72 || TensorLayout<A>::kC1NTiles % tpg != 0)) --tpg;
    return tpg;
}

template <class A, int TPG, int GRP = 0>
__device__ __forceinline__ void conv1_group(const TensorSmem<A>& s, const TensorParams<A>& p, int mt, int grp,
                                            int lane) {
    if constexpr (GRP < TensorLayout<A>::kC1NTiles / TPG) {
        if (grp == GRP) conv1_tiles<A, GRP, TPG>(s, p, mt, lane);
        else conv1_group<A, TPG, GRP + 1>(s, p, mt, grp, lane);
    }
}

template <class A, int WARPS>
__device__ __forceinline__ void conv1_stage(const TensorSmem<A>& s, const TensorParams<A>& p, int warp, int lane) {
    using T = TensorLayout<A>;
    constexpr int TPG = conv1_tiles_per_item<A>(), NG = T::kC1NTiles / TPG;
    for (int item = warp; item < T::kC1MTiles * NG; item += WARPS)
        conv1_group<A, TPG>(s, p, item / NG, item % NG, lane);
}

// ------------------------------------------------------------------------------------- conv2

// Work item: a pair of row tiles = 8 pooled positions of one image; row g of tile T is conv
// position (2 py, 2 px + ((g & 1) ^ T)), row g + 8 the one below, so a lane holds whole windows
// (the alternation spreads a matrix's rows over the banks).
template <class A, int WARPS>
__device__ __forceinline__ void conv2_stage(const TensorSmem<A>& s, const TensorParams<A>& p, int warp, int lane) {
    using T = TensorLayout<A>;
    using Acc = typename A::Acc;
    using D = typename T::D2;
    constexpr int NT = T::kC2NTiles, P = A::kPlanes, WP = A::kWeightPlanes;
    constexpr int kPairsPerImage = L1::out_h * L1::out_w / 8;
    const int r = lane & 15, rg = r & 7, second_slot = lane >> 4;
    const int g = lane >> 2, t = lane & 3;
    const typename A::bias_t* bias = tensor_bias(p, 1);
    const unsigned char* w = s.conv_w + T::kC1Frags * T::kFragBytes;
    for (int q = warp; q < T::kC2Pairs; q += WARPS) {
        const int image = q / kPairsPerImage, half = q % kPairsPerImage;
        const int py = 2 * half + (rg >> 2), px = rg & 3, oy = 2 * py + (r >> 3);
        const unsigned char* base = s.act1 + image * T::kA1ImageBytes + oy * T::kA1RowSlots * 16;
        const unsigned char* rows[2] = {base + (2 * px + (rg & 1)) * 16, base + (2 * px + 1 - (rg & 1)) * 16};
        Acc acc[2][NT] = {};
#pragma unroll
        for (int kc = 0; kc < T::kC2Chunks; ++kc) {
            const int off = second_slot ? T::c2_slot_offset(2 * kc + 1) : T::c2_slot_offset(2 * kc);
            FragA a[2][P];
#pragma unroll
            for (int tile = 0; tile < 2; ++tile) load_a(a[tile], rows[tile] + off, T::kA1PlaneBytes);
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
                FragB b[WP];
                load_b<WP, false>(b, w + (kc * NT + nt) * T::kFragBytes, lane);
#pragma unroll
                for (int tile = 0; tile < 2; ++tile) A::template mma<P>(acc[tile][nt], a[tile], b);
            }
        }
        const int opy = 2 * half + (g >> 2), opx = g & 3;
        unsigned char* dst = s.act2 + image * D::in_row;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int co = nt * 8 + 2 * t + e;
                const typename A::value_t v[4] = {A::sum(acc[0][nt], e), A::sum(acc[0][nt], 2 + e),
                                                  A::sum(acc[1][nt], e), A::sum(acc[1][nt], 2 + e)};
                A::store(dst, D::in_plane, (opy * L1::out_w + opx) * L1::out_c + co,
                         A::template finish<L1::relu, 4>(v, __ldg(bias + co), p.epilogue[1]));
            }
        }
    }
}

// ------------------------------------------------------------------------------------- dense

// Rows = the pass's images, each warp a set of n tiles (its chains run side by side).  OUT_ROW /
// OUT_PLANE: the next layer's input layout; 0: the logits.
template <class A, int WARPS, class L, class D, int OUT_ROW, int OUT_PLANE>
__device__ __forceinline__ void dense_stage(const unsigned char* in, unsigned char* out, float* logits,
                                            const unsigned char* frags, const typename A::bias_t* bias,
                                            const typename A::Epilogue& ep, int warp, int lane) {
    using T = TensorLayout<A>;
    using Acc = typename A::Acc;
    constexpr int P = A::kPlanes, WP = A::kWeightPlanes, IPW = (D::tiles + WARPS - 1) / WARPS;
    if (warp >= D::tiles) return;
    const int g = lane >> 2, t = lane & 3;
#pragma unroll 1
    for (int mt = 0; mt < T::kMTiles; ++mt) {
        Acc acc[IPW] = {};
        const unsigned char* row = in + (mt * 16 + (lane & 15)) * D::in_row + (lane >> 4) * 16;
#pragma unroll
        for (int kc = 0; kc < D::chunks; ++kc) {
            FragA a[P];
            load_a(a, row + kc * 32, D::in_plane);
#pragma unroll
            for (int i = 0; i < IPW; ++i) {
                const int nt = warp + i * WARPS;
                if (nt < D::tiles) {
                    FragB b[WP];
                    load_b<WP, true>(b, frags + (nt * D::chunks + kc) * T::kFragBytes, lane);
                    A::template mma<P>(acc[i], a, b);
                }
            }
        }
#pragma unroll
        for (int i = 0; i < IPW; ++i) {
            const int nt = warp + i * WARPS;
            if (nt >= D::tiles) continue;
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const int image = mt * 16 + g + 8 * (k >> 1), n = nt * 8 + 2 * t + (k & 1);
                const typename A::value_t v[1] = {A::sum(acc[i], k)};
                const auto x = A::template finish<L::relu, 1>(v, __ldg(bias + n), ep);
                if constexpr (OUT_ROW == 0) logits[image * T::kLogitStride + n] = float(x);
                else A::store(out + image * OUT_ROW, OUT_PLANE, n, x);
            }
        }
    }
}

// ------------------------------------------------------------------------------------ output

template <class A>
__device__ __forceinline__ void write_tensor_outputs(const float* logits, const NetIO& io, int64_t base, int valid,
                                                     int tid, int threads) {
    using T = TensorLayout<A>;
    using logit_t = typename A::logit_t;
    if (io.logits) {
        logit_t* dst = static_cast<logit_t*>(io.logits) + base * kNumClasses;
        for (int i = tid; i < valid * kNumClasses; i += threads)
            dst[i] = logit_t(logits[i / kNumClasses * T::kLogitStride + i % kNumClasses]);
    }
    if (io.classes) {
        for (int i = tid; i < valid; i += threads) {
            const float* v = logits + i * T::kLogitStride;
            int best = 0;
#pragma unroll
            for (int c = 1; c < kNumClasses; ++c) best = v[c] > v[best] ? c : best;  // the first of equal maxima
            io.classes[base + i] = best;
        }
    }
}

// ------------------------------------------------------------------------------------ kernel

template <class A, int WARPS>
__global__ void __launch_bounds__(WARPS * 32, 1) tensor_network_kernel(const TensorParams<A> p, const NetIO io) {
    using T = TensorLayout<A>;
    constexpr int kThreads = WARPS * 32, G = T::kImages;
    extern __shared__ __align__(128) unsigned char smem[];
    const TensorSmem<A> s(smem);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int64_t groups = (io.n + G - 1) / G;
    if (blockIdx.x >= groups) return;

    for (int i = tid; i < T::kConvWeightBytes / 16; i += kThreads) copy16_async(s.conv_w + i * 16, p.packed + i * 16);
    for (int i = tid; i < (T::kRegionA + T::kRegionB) / 16; i += kThreads)
        reinterpret_cast<uint4*>(smem + T::kOffRegionA)[i] = make_uint4(0, 0, 0, 0);
    const bool async_in = (reinterpret_cast<uintptr_t>(io.images) & 15) == 0;
    auto valid_of = [&](int64_t grp) { return int(io.n - grp * G < G ? io.n - grp * G : G); };
    if (async_in)
        prefetch_images(s, io.images + blockIdx.x * int64_t(G) * kImageBytes, valid_of(blockIdx.x), tid, kThreads);
    else async_commit();

    for (int64_t grp = blockIdx.x; grp < groups; grp += gridDim.x) {
        const int64_t base = grp * G;
        const int valid = valid_of(grp);
        async_wait<0>();
        __syncthreads();
        if (async_in) stage_images<A, true>(s, nullptr, valid, tid, kThreads);
        else stage_images<A, false>(s, io.images + base * kImageBytes, valid, tid, kThreads);
        __syncthreads();
        const int64_t next = grp + gridDim.x;
        if (async_in && next < groups)
            prefetch_images(s, io.images + next * G * kImageBytes, valid_of(next), tid, kThreads);

        conv1_stage<A, WARPS>(s, p, warp, lane);
        __syncthreads();
        conv2_stage<A, WARPS>(s, p, warp, lane);
        __syncthreads();
        using D2 = typename T::D2;
        using D3 = typename T::D3;
        using D4 = typename T::D4;
        dense_stage<A, WARPS, L2, D2, D3::in_row, D3::in_plane>(s.act2, s.act3, nullptr, p.packed + T::kOffDense2,
                                                                tensor_bias(p, 2), p.epilogue[2], warp, lane);
        __syncthreads();
        dense_stage<A, WARPS, L3, D3, D4::in_row, D4::in_plane>(s.act3, s.act4, nullptr, p.packed + T::kOffDense3,
                                                                tensor_bias(p, 3), p.epilogue[3], warp, lane);
        __syncthreads();
        dense_stage<A, WARPS, L4, D4, 0, 0>(s.act4, nullptr, s.logits, p.packed + T::kOffDense4, tensor_bias(p, 4),
                                            p.epilogue[4], warp, lane);
        __syncthreads();
        write_tensor_outputs<A>(s.logits, io, base, valid, tid, kThreads);
        // The next pass writes region A (last read by fc3, before the barrier above) and the
        // logits only after two more barriers.
    }
    async_wait<0>();
}

}  // namespace lenet5
