// Types shared by the kernels, their launchers and the C API: the two arithmetic modes, the
// kernel parameters and the network constants derived from the generated shapes header.
#pragma once

#include <cstdint>

#include "fixed_cast.cuh"
#include "lenet5_gpu.h"
#include "lenet5_shapes.h"

namespace lenet5 {

namespace sh = shapes;
using L0 = sh::Layer0;
using L1 = sh::Layer1;
using L2 = sh::Layer2;
using L3 = sh::Layer3;
using L4 = sh::Layer4;

// The fused kernel chains its stages by hand: it is written for this sequence of layer kinds.
static_assert(sh::kNumLayers == 5, "the fused kernel is written for five layers");
static_assert(L0::is_conv && L1::is_conv && !L2::is_conv && !L3::is_conv && !L4::is_conv,
              "the fused kernel is written for conv, conv, dense, dense, dense");
static_assert(L0::in_h == sh::kInputH && L0::in_w == sh::kInputW && L0::in_c == sh::kInputC, "input shape");
static_assert(L1::in_h == L0::out_h && L1::in_w == L0::out_w && L1::in_c == L0::out_c, "conv1 -> conv2");
static_assert(L2::in == L1::outputs && L3::in == L2::out && L4::in == L3::out, "dense chain");
static_assert(L4::out == sh::kNumClasses && !L4::relu, "the last layer gives the logits");
// Hidden activations are ReLU outputs: non-negative, at most 16 bits in fixed mode.
static_assert(L0::relu && L1::relu && L2::relu && L3::relu, "hidden layers have ReLU");

constexpr int kNumLayers = sh::kNumLayers;
constexpr int kImageBytes = sh::kInputH * sh::kInputW * sh::kInputC;
constexpr int kNumClasses = sh::kNumClasses;

// float32 throughout: the Keras numbers.
struct FloatMode {
    using acc_t = float;    // products and sums
    using act_t = float;    // activations in shared memory
    using logit_t = float;  // logits in global memory
    static constexpr bool kFixed = false;
    static constexpr int kIndex = LENET5_MODE_FLOAT;
};

// Fixed point: raw integers carried in float64, exact (every partial sum < 2**53).
struct FixedMode {
    using acc_t = double;
    using act_t = double;
    using logit_t = int16_t;
    static constexpr bool kFixed = true;
    static constexpr int kIndex = LENET5_MODE_FIXED;
};

// Weights in device memory, Keras layout.  Float mode: conv1's kernel is pre-scaled by
// 2**-kPixelFracBits (exact), so the pixel byte enters as it is.  Fixed mode: raw kernel
// integers and biases already shifted to the accumulator's fraction bits.
// kernel_f/bias_f: the same values as float32 (float mode: the same arrays; fixed mode: the raw
// integers and aligned biases, exact in float32), each padded to a multiple of 4 floats.
template <class M>
struct NetParams {
    const typename M::acc_t* kernel[kNumLayers];
    const typename M::acc_t* bias[kNumLayers];
    const float* kernel_f[kNumLayers];
    const float* bias_f[kNumLayers];
    FixedCast cast[kNumLayers];  // fixed mode only
};

struct NetIO {
    const uint8_t* images;  // uint8[n][kImageBytes]
    int64_t n;
    int32_t* classes;       // int32[n] or null
    void* logits;           // logit_t[n][kNumClasses] or null
};

// The resident kernel's mailbox, in mapped pinned host memory (network_kernel.cuh, resident.cu).  The
// host writes the command word (seq | n << 32 | quit << 48, one 8-byte store, so the kernel reads
// it in one PCIe read); the kernel writes status: 2 * seq when command seq is answered,
// 2 * last + 1 when it ends, and the GPU clock (ns) when it saw the command and when it
// answered.  Host-written and GPU-written words sit in different 128-byte lines.
struct ResidentMailbox {
    unsigned long long command;
    unsigned int pad0[30];
    unsigned int status;
    unsigned int pad1;
    unsigned long long t_seen, t_done;
    unsigned int pad2[26];
};
static_assert(sizeof(ResidentMailbox) == 256, "two 128-byte lines");

// The resident kernel's state in device memory: block 0 forwards each command to the other
// blocks through `go` (launch generation << 40 | n << 32 | seq << 1 | quit); `count` counts
// the blocks done with a command of several images; `completed` is the last command answered.
struct ResidentState {
    unsigned long long go;
    unsigned int count;
    unsigned int completed;
};

struct ResidentIO {
    const uint8_t* images;  // mapped: uint8[blocks][kImageBytes]
    int32_t* classes;       // mapped: int32[blocks]
    void* logits;           // mapped: logit_t[blocks][kNumClasses]
    ResidentMailbox* mailbox;  // mapped
    ResidentState* state;      // device memory
    unsigned int start_seq;    // the sequence number before the first command to take
    unsigned int gen;          // launch generation
    unsigned long long idle_ns;  // end after this long without a command
};

}  // namespace lenet5
