// Where everything of the tensor kernel lives, for one arithmetic (tensor_arith.cuh): each
// layer as a matrix product (rows, k chunks, n tiles), the activations' layouts in shared memory,
// and the packed weight fragments.  Host and device: the weight packer (tensor_weights.cu) and the
// kernel (tensor_kernel.cuh) read the same numbers.
//
// Every layer is D[m][n] = sum_k A[m][k] B[k][n] in tiles of 16 rows x 8 columns, k in chunks of
// 32 bytes (16 fp16 or 32 int8 elements).  A fragments come from shared memory by ldmatrix, whose
// lanes each name one 16-byte row piece ("slot"): so the rows of A can be anything, and k can
// jump between slots.  That carries the convolutions without an im2col copy:
// * conv1 is a Toeplitz product per kernel row ky: A's rows are conv rows (image row oy + ky), k
//   the pixels of that row, B_ky[x][(c, ox)] = w[ky][x - ox][c].  Rows g and g + 8 of a tile are
//   conv rows 2 py and 2 py + 1 of one (image, pooled row) pair, and the n order (c, ox) puts
//   columns ox, ox + 1 in one lane: a lane holds whole 2x2 pooling windows.  The image sits in
//   two planes of even and odd rows, so the 8 rows of one ldmatrix matrix are consecutive plane
//   rows, on different banks.
// * conv2 is an implicit GEMM: k = 25 slots (ky, kx), each the input channels of one position;
//   rows g, g + 8 of a pair of tiles are the four positions of one pooling window.
// * the dense layers: rows are images, k the features (channels-last), as Keras flattens them.
// B fragments are packed on the host in lane order (tensor_ops.cuh): a lane reads its 8 bytes.
#pragma once

#include "network_types.cuh"

namespace lenet5 {

namespace tensor_detail {
__host__ __device__ constexpr int up(int x, int to) { return (x + to - 1) / to * to; }
__host__ __device__ constexpr int max2(int a, int b) { return a > b ? a : b; }
// The smallest p >= at_least with p % mod == rem.
__host__ __device__ constexpr int at_least_mod(int at_least, int rem, int mod) {
    return at_least + ((rem - at_least % mod) % mod + mod) % mod;
}
// Padded row of a dense layer's input, one plane: an odd number of 16-byte slots, so 8 images'
// rows hit 8 different bank groups.
__host__ __device__ constexpr int dense_row_bytes(int elems, int elem_bytes) { return up(elems * elem_bytes, 32) + 16; }
}  // namespace tensor_detail

template <class A>
struct TensorLayout {
    static constexpr int kEB = A::kElemBytes;
    static constexpr int kSlotElems = 16 / kEB;   // elements of one 16-byte slot
    static constexpr int kChunkElems = 32 / kEB;  // elements of one k chunk (two slots)
    static constexpr int kFragPlaneBytes = 256;   // one B fragment, one plane: 32 lanes x 8 bytes
    static constexpr int kFragBytes = kFragPlaneBytes * A::kWeightPlanes;
    static constexpr int kImages = 16;            // images a block takes per pass
    static constexpr int kMTiles = kImages / 16;  // dense layers' row tiles

    // ---- conv1 (Toeplitz)
    static_assert(L0::in_c == 1 && L0::pool == 2 && L0::conv_w % 8 == 0 && L0::in_h % 2 == 0 && L0::conv_h % 2 == 0,
                  "conv1 as a Toeplitz product: one input channel, 2x2 pooling, conv rows in tiles of 8");
    static constexpr int kC1RowElems = tensor_detail::up(L0::in_w, kChunkElems);
    static constexpr int kC1Chunks = kC1RowElems / kChunkElems;
    static constexpr int kC1RowBytes = kC1RowElems * kEB + 16;  // an odd number of slots
    static constexpr int kC1PlaneRows = L0::in_h / 2;
    // The next image's plane continues the bank pattern of (image, pooled row) pairs that cross images.
    static constexpr int kC1PlaneBytes =
        tensor_detail::at_least_mod(kC1PlaneRows * kC1RowBytes, (L0::out_h / 2 * kC1RowBytes) % 64, 64);
    static constexpr int kImageBytesSmem = 2 * kC1PlaneBytes;  // per image, both row parities
    static constexpr int kC1TilesPerChannel = L0::conv_w / 8;
    static constexpr int kC1NTiles = L0::out_c * kC1TilesPerChannel;
    static constexpr int kC1MTiles = kImages * L0::out_h / 8;
    static_assert(kImages * L0::out_h % 8 == 0, "(image, pooled row) pairs fill row tiles");
    static constexpr int kC1Frags = L0::kernel * kC1NTiles * kC1Chunks;  // [ky][tile][chunk]
    __host__ __device__ static constexpr int c1_frag(int ky, int tile, int chunk) {
        return (ky * kC1NTiles + tile) * kC1Chunks + chunk;
    }
    // Tile `tile`'s columns are conv columns ox0 .. ox0 + 7 of channel tile / kC1TilesPerChannel;
    // chunk `chunk` holds pixels x0 .. x0 + kChunkElems - 1.  Live: some weight is not zero.
    __host__ __device__ static constexpr bool c1_live(int tile, int chunk) {
        const int ox0 = tile % kC1TilesPerChannel * 8, x0 = chunk * kChunkElems;
        return x0 <= ox0 + 7 + L0::kernel - 1 && x0 + kChunkElems - 1 >= ox0;
    }

    // ---- conv1's output = conv2's input: [plane][image][row][column slot]; one slot a position
    static_assert(L0::out_c <= kSlotElems, "conv1's channels fit one slot");
    static_assert(L1::in_c == L0::out_c && L1::pool == 2 && L1::out_c % 8 == 0, "conv2: 2x2 pooling, whole n tiles");
    static constexpr int kA1RowSlots = L0::out_w + 1;  // odd: a pooling tile's rows on different banks
    static constexpr int kA1ImageBytes = L0::out_h * kA1RowSlots * 16;
    static constexpr int kA1PlaneBytes = kImages * kA1ImageBytes;

    // ---- conv2 (implicit GEMM)
    static constexpr int kC2Positions = L1::kernel * L1::kernel;      // slots of real k
    static constexpr int kC2Chunks = (kC2Positions + 1) / 2;          // the odd slot repeats the last (zero weights)
    static constexpr int kC2NTiles = L1::out_c / 8;
    static constexpr int kC2Frags = kC2Chunks * kC2NTiles;  // [chunk][tile]
    static constexpr int kC2Pairs = kImages * L1::out_h * L1::out_w / 8;  // pairs of row tiles
    static_assert(L1::out_w == 4 && L1::out_h % 2 == 0, "a pair of conv2 tiles: 2 pooled rows of 4 positions");
    // Byte offset, in conv1's output, of slot `s` of conv2's k.
    __host__ __device__ static constexpr int c2_slot_offset(int s) {
        const int p = s < kC2Positions ? s : kC2Positions - 1;
        return (p / L1::kernel * kA1RowSlots + p % L1::kernel) * 16;
    }

    // ---- the dense layers: [plane][image][padded row]
    template <class L>
    struct Dense {
        static constexpr int k = tensor_detail::up(L::in, kChunkElems);  // padded fan-in
        static constexpr int n = L::relu ? tensor_detail::up(L::out, 32) : tensor_detail::up(L::out, 8);
        static constexpr int chunks = k / kChunkElems;
        static constexpr int tiles = n / 8;
        static constexpr int frags = chunks * tiles;  // [tile][chunk]
        static constexpr int in_row = tensor_detail::dense_row_bytes(k, kEB);
        static constexpr int in_plane = kImages * in_row;
    };
    using D2 = Dense<L2>;
    using D3 = Dense<L3>;
    using D4 = Dense<L4>;
    static_assert(D2::k == L2::in && D3::k <= D2::n && D4::k <= D3::n,
                  "each dense layer's padded inputs are the previous layer's (zero) padded outputs");
    static constexpr int kLogitStride = D4::n;  // logits in shared memory: float[kImages][kLogitStride]

    // ---- shared memory: the conv weights, two regions the layers alternate between (A: image,
    // conv2 out, fc2 out; B: conv1 out, fc1 out), the next images' bytes, the logits.  Padding
    // is zeroed once; later layers may leave their values there, which meet only zero weights.
    static constexpr int kConvWeightBytes = (kC1Frags + kC2Frags) * kFragBytes;
    static constexpr int kRegionA = tensor_detail::up(
        tensor_detail::max2(kImages * kImageBytesSmem, A::kPlanes* tensor_detail::max2(D2::in_plane, D4::in_plane)),
        128);
    static constexpr int kRegionB =
        tensor_detail::up(tensor_detail::max2(A::kPlanes * kA1PlaneBytes, A::kPlanes* D3::in_plane), 128);
    static constexpr int kStagingBytes = tensor_detail::up(kImages * sh::kInputH * sh::kInputW, 128);
    // The logits (float32) have their own place: over an fp16 region, their bytes could read as
    // NaN in padding that the next images multiply by zero weights.
    static constexpr int kLogitBytes = kImages * kLogitStride * 4;
    static constexpr int kOffRegionA = kConvWeightBytes;
    static constexpr int kOffRegionB = kOffRegionA + kRegionA;
    static constexpr int kOffStaging = kOffRegionB + kRegionB;
    static constexpr int kOffLogits = kOffStaging + kStagingBytes;
    static constexpr int kSmemBytes = kOffLogits + kLogitBytes;
    static_assert(kConvWeightBytes % 128 == 0, "regions 128-byte aligned");

    // ---- the packed weights in device memory: conv fragments (copied to shared memory), dense
    // fragments (read through L1), then the biases (bias_t, zero beyond a layer's outputs)
    static constexpr int kOffDense2 = kConvWeightBytes;
    static constexpr int kOffDense3 = kOffDense2 + D2::frags * kFragBytes;
    static constexpr int kOffDense4 = kOffDense3 + D3::frags * kFragBytes;
    static constexpr int kOffBias = kOffDense4 + D4::frags * kFragBytes;
    static constexpr int kBiasStride = tensor_detail::max2(tensor_detail::max2(D2::n, D3::n), 32);  // per layer
    static constexpr int kPackedBytes = kOffBias + kNumLayers * kBiasStride * int(sizeof(typename A::bias_t));
};

// What the tensor kernel gets: the packed weights and each layer's epilogue.
template <class A>
struct TensorParams {
    const unsigned char* packed;  // TensorLayout<A>'s packed weights in device memory
    typename A::Epilogue epilogue[kNumLayers];
};

}  // namespace lenet5
