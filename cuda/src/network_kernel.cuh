// The whole network in one kernel.  Device code only; the launchers are in launch.cu.
//
// A "team" of threads (a warp, or a whole block) takes IPT images at a time through every layer:
//   global uint8 images -> region A (bytes) -> conv1 -> region B -> conv2 -> A -> fc1 -> B
//   -> fc2 -> A -> fc3 -> B (logits) -> global logits and classes.
// Intermediates never leave shared memory; the input is read once.  Two weight placements:
// * throughput variants: the convolution kernels and biases in shared memory as acc_t (read as
//   warp-wide broadcasts), the dense kernels in global memory (through L1/L2, each weight reused
//   for R images);
// * latency variant (a block per image): every weight in shared memory as float32 (exact also
//   for the fixed mode's 16-bit integers), prefetched with cp.async while conv1 runs, so no
//   stage waits on L2 for each weight.
// The grid is persistent: teams loop over groups of images.
#pragma once

#include "stages.cuh"

namespace lenet5 {

template <class C>
__global__ void __launch_bounds__(C::kBlock, C::kMinBlocks)
    fused_network_kernel(const NetParams<typename C::mode> p, const NetIO io) {
    using M = typename C::mode;
    constexpr int TEAM = C::kTeam, IPT = C::kImagesPerTeam;
    extern __shared__ __align__(16) unsigned char smem[];

    const int team = threadIdx.x / TEAM, rank = threadIdx.x % TEAM;
    const BlockSmem<C> s(smem, p, team);
    stage_weights<C>(s.ws, p);

    const bool vec16 = (reinterpret_cast<uintptr_t>(io.images) & 15) == 0;
    const int64_t groups = (io.n + IPT - 1) / IPT;
    const int64_t stride = int64_t(gridDim.x) * C::kTeamsPerBlock;
    for (int64_t grp = int64_t(blockIdx.x) * C::kTeamsPerBlock + team; grp < groups; grp += stride) {
        const int64_t base = grp * IPT;
        const int valid = int(io.n - base < IPT ? io.n - base : IPT);
        load_images<IPT, TEAM, typename C::img_t>(s.img, io.images + base * kImageBytes, valid, vec16, rank);
        forward_team<C>(p, s, rank);
        write_outputs<IPT, TEAM, C::kS5, M>(s.logits, io, base, valid, rank);
        // The next group writes region A first (read last by fc3, before the sync above) and
        // region B only after the next sync, so no barrier is needed here.
    }
    if constexpr (C::kAllSmem) async_wait<0>();  // a block with no images still drains its copies
}

// ---------------------------------------------------------------------------- resident kernel
//
// The latency path for a few images in host memory (resident.cu, "resident path"): a kernel of
// kResidentBlocks blocks stays on the GPU between calls with the weights in shared memory.  The
// host writes the images into mapped pinned memory and then a sequence number into the mailbox;
// block 0 polls the mailbox over PCIe and forwards each command to the other blocks through a
// word in device memory; block b takes image b; each image's logits and class go straight to
// mapped pinned memory, and the last block to finish writes `2 * seq` to the mailbox's status.
// (Block 0 forwards only commands of several images, and the end.)
// After `idle_ns` without a command (or on a quit command) the kernel ends and writes
// `2 * last + 1` (last: the last sequence number it took).  No launch, no copy, no stream
// synchronization on the way of an image.

template <class C>
__global__ void __launch_bounds__(C::kBlock, 1)
    resident_network_kernel(const NetParams<typename C::mode> p, const ResidentIO io) {
    using M = typename C::mode;
    using img_t = typename C::img_t;
    using logit_t = typename M::logit_t;
    static_assert(C::kTeam == C::kBlock && C::kImagesPerTeam == 1, "one image per block");
    static_assert(kImageBytes % 16 == 0, "images are read in 16-byte pieces");
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ unsigned int command[3];  // seq, n, quit

    const int rank = threadIdx.x;
    const BlockSmem<C> s(smem, p, 0);
    stage_weights<C>(s.ws, p);
    if constexpr (C::kAllSmem) async_wait<0>();
    __syncthreads();

    const uint64_t gen = uint64_t(io.gen & 0xffffffu) << 40;
    unsigned int last = io.start_seq;                   // block 0: the last command taken
    unsigned long long last_word = uint64_t(io.start_seq) << 1;  // others: the last forwarded word
    unsigned long long idle_since = global_ns();
    for (;;) {
        if (rank == 0) {
            unsigned int seq = 0, n = 0, quit = 0;
            if (blockIdx.x == 0) {
                for (unsigned int polls = 0;; ++polls) {
                    const unsigned long long word = ld_acquire_sys(&io.mailbox->command);
                    seq = unsigned(word & 0xffffffffull);
                    if (seq != last) {
                        n = unsigned(word >> 32) & 0xffffu;
                        quit = unsigned(word >> 48) & 1u;
                        st_relaxed_sys(&io.mailbox->t_seen, global_ns());
                        break;
                    }
                    // Idle: stop once nothing came for idle_ns and the last command is complete.
                    if ((polls & 7) == 7 && global_ns() - idle_since > io.idle_ns &&
                        (last == io.start_seq || ld_acquire_gpu(&io.state->completed) == last)) {
                        seq = last;
                        quit = 1;
                        break;
                    }
                }
                if (quit) seq = last;
                // The other blocks need only commands of several images, and the end.
                if (gridDim.x > 1 && (n > 1 || quit))
                    st_release_gpu(&io.state->go, gen | (uint64_t(n & 0xffu) << 32) | (uint64_t(seq) << 1) | quit);
            } else {
                unsigned long long word;
                for (;;) {
                    word = ld_acquire_gpu(&io.state->go);
                    if ((word & (0xffffffull << 40)) == gen && (word & 0xffffffffull) != (last_word & 0xffffffffull))
                        break;
                }
                last_word = word;
                seq = unsigned(word & 0xffffffffull) >> 1;
                n = unsigned(word >> 32) & 0xffu;
                quit = unsigned(word & 1u);
            }
            command[0] = seq;
            command[1] = n;
            command[2] = quit;
        }
        __syncthreads();
        const unsigned int seq = command[0], n = command[1], quit = command[2];
        __syncthreads();  // command[] is rewritten by the next poll
        if (quit) break;
        last = seq;
        const unsigned int b = blockIdx.x;
        if (b < n) {
            const unsigned char* src = io.images + size_t(b) * kImageBytes;
            if (rank < kImageBytes / 16) {
                const uint4 v = ld_volatile16(src + rank * 16);
                const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int j = 0; j < 16; ++j) s.img[rank * 16 + j] = img_t((words[j / 4] >> (8 * (j % 4))) & 0xffu);
            }
            forward_team<C>(p, s, rank);
            if (rank == 0) {
                // The logits and the class (first of equal maxima), then the signal.
                logit_t* lg = static_cast<logit_t*>(io.logits) + size_t(b) * kNumClasses;
                int best = 0;
                auto top = s.logits[0];
                lg[0] = logit_t(top);
#pragma unroll
                for (int c = 1; c < kNumClasses; ++c) {
                    const auto v = s.logits[c];
                    lg[c] = logit_t(v);
                    if (v > top) {
                        top = v;
                        best = c;
                    }
                }
                io.classes[b] = best;
                if (n == 1) {
                    st_relaxed_gpu(&io.state->completed, seq);
                    st_relaxed_sys(&io.mailbox->t_done, global_ns());
                    st_release_sys(&io.mailbox->status, seq << 1);
                } else {
                    __threadfence_system();
                    if (atomicAdd(&io.state->count, 1u) == n - 1) {
                        io.state->count = 0;
                        __threadfence();
                        st_relaxed_gpu(&io.state->completed, seq);
                        st_relaxed_sys(&io.mailbox->t_done, global_ns());
                        __threadfence_system();
                        st_release_sys(&io.mailbox->status, seq << 1);
                    }
                }
            }
        }
        if (blockIdx.x == 0) idle_since = global_ns();
    }
    if (blockIdx.x == 0 && rank == 0) st_release_sys(&io.mailbox->status, (last << 1) | 1u);
}

}  // namespace lenet5
