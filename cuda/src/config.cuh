// The launch configuration of one kernel variant (`Config`) and the sizes it derives: shared
// memory regions, weight offsets, scratch.  The variants themselves are named in launch.cu.
#pragma once

#include "device_helpers.cuh"

namespace lenet5 {

// Outputs per dense work item, and the k slices of the split dense stage for `threads` threads
// (at least 4 products per slice).
template <class L, int OGMAX>
__host__ __device__ constexpr int dense_og() {
    return L::out % OGMAX == 0 ? OGMAX : (OGMAX >= 2 && L::out % 2 == 0 ? 2 : 1);
}
template <class L, int OGMAX>
__host__ __device__ constexpr int dense_slices(int threads) {
    const int per = threads / (L::out / dense_og<L, OGMAX>());
    const int most = L::in / 4;
    return per < 1 ? 1 : (per > most ? most : per);
}

// Launch configuration of one kernel variant.
//   BLOCK threads a block; TEAM threads (32 or BLOCK) share IPT images;
//   CG1, CG2: output channels a thread computes per conv1/conv2 work item;
//   R: images a thread computes per dense work item; OGMAX: outputs per dense work item (at most);
//   KSPLIT: independent partial sums per dense output (shorter dependency chains at batch 1);
//   ACT: type of the activations in shared memory (acc_t, or float: exact for fixed mode's
//   16-bit integers, half the shared memory);
//   ALL_SMEM: every weight in shared memory as float (latency), else conv weights as acc_t in
//   shared memory and dense weights read from global memory (throughput);
//   CSPLIT: 0, or (latency, one image per block) conv2 split into CSPLIT groups of input
//   channels and the dense layers split over k, partial sums reduced through shared memory.
template <class M, int BLOCK, int TEAM, int IPT, int CG1, int CG2, int R, int OGMAX, int KSPLIT, int MIN_BLOCKS,
          class ACT, bool ALL_SMEM, int CSPLIT = 0, bool DENSE_SMEM = ALL_SMEM>
struct Config {
    using mode = M;
    using acc_t = typename M::acc_t;
    using act_t = ACT;
    using wt_t = typename std::conditional<ALL_SMEM, float, acc_t>::type;  // weights in shared memory
    static constexpr bool kAllSmem = ALL_SMEM;      // float32 weights (conv at least) in shared memory
    static constexpr bool kDenseSmem = DENSE_SMEM;  // dense weights too (else read from L2)
    static_assert(!DENSE_SMEM || ALL_SMEM, "dense weights in shared memory are float32");
    static constexpr int kBlock = BLOCK, kTeam = TEAM, kImagesPerTeam = IPT;
    static constexpr int kCg1 = CG1, kCg2 = CG2, kR = R, kOgMax = OGMAX, kKSplit = KSPLIT, kMinBlocks = MIN_BLOCKS;
    static constexpr int kTeamsPerBlock = BLOCK / TEAM;
    static_assert(TEAM == 32 || TEAM == BLOCK, "a team is a warp or the whole block");
    static_assert(BLOCK % TEAM == 0, "whole teams per block");

    // Per-image strides (elements) of the activations, multiples of 4 for vector loads.
    static constexpr int kS1 = round_up(L0::outputs, 4);  // conv1 out
    static constexpr int kS2 = round_up(L1::outputs, 4);  // conv2 out = fc1 in
    static constexpr int kS3 = round_up(L2::out, 4);
    static constexpr int kS4 = round_up(L3::out, 4);
    static constexpr int kS5 = round_up(L4::out, 4);  // logits
    static constexpr int kAct = int(sizeof(act_t));
    // The input image in shared memory: bytes (throughput), or converted once to act_t (latency:
    // each pixel is read by many threads).
    using img_t = typename std::conditional<(CSPLIT > 0), act_t, uint8_t>::type;
    static constexpr int kRegionA =
        round_up(cmax(IPT * kImageBytes * int(sizeof(img_t)), cmax(IPT * kS2 * kAct, IPT * kS4 * kAct)), 16);
    static constexpr int kRegionB = round_up(cmax(IPT * kS1 * kAct, cmax(IPT * kS3 * kAct, IPT * kS5 * kAct)), 16);
    static constexpr int kTeamBytes = kRegionA + kRegionB;

    // Weights in shared memory (wt_t elements; each piece a multiple of 4 elements, so 16-byte
    // aligned): conv1, conv2 kernels and biases, and with ALL_SMEM the dense ones too.
    static constexpr int kOffW0 = 0;
    static constexpr int kOffB0 = kOffW0 + round_up(L0::kernel_count, 4);
    static constexpr int kOffW1 = kOffB0 + round_up(L0::bias_count, 4);
    static constexpr int kOffB1 = kOffW1 + round_up(L1::kernel_count, 4);
    static constexpr int kOffW2 = kOffB1 + round_up(L1::bias_count, 4);
    static constexpr int kOffB2 = kOffW2 + round_up(L2::kernel_count, 4);
    static constexpr int kOffW3 = kOffB2 + round_up(L2::bias_count, 4);
    static constexpr int kOffB3 = kOffW3 + round_up(L3::kernel_count, 4);
    static constexpr int kOffW4 = kOffB3 + round_up(L3::bias_count, 4);
    static constexpr int kOffB4 = kOffW4 + round_up(L4::kernel_count, 4);
    static constexpr int kOffEnd = kOffB4 + round_up(L4::bias_count, 4);
    static constexpr int kWeightElems = DENSE_SMEM ? kOffEnd : kOffW2;
    static constexpr int kWeightBytes = round_up(kWeightElems * int(sizeof(wt_t)), 16);

    static constexpr int kCSplit = CSPLIT;
    static_assert(CSPLIT == 0 || (IPT == 1 && TEAM == BLOCK), "split stages: one image per block");
    // Partial sums of the split stages (acc_t elements).
    static constexpr int kScratchElems =
        CSPLIT == 0
            ? 0
            : cmax(CSPLIT * L1::out_c * L1::out_h * L1::out_w * L1::pool * L1::pool,
                   cmax(dense_slices<L2, OGMAX>(BLOCK) * L2::out,
                        cmax(dense_slices<L3, OGMAX>(BLOCK) * L3::out, dense_slices<L4, OGMAX>(BLOCK) * L4::out)));
    static constexpr int kScratchBytes = round_up(kScratchElems * int(sizeof(acc_t)), 16);
    static constexpr int kSmemBytes = kWeightBytes + kTeamsPerBlock * kTeamBytes + kScratchBytes;
};

}  // namespace lenet5
