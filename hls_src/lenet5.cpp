// LeNet-5 top: AXI adapters around a DATAFLOW chain of named stages (classify) and the weight
// loader (mode 1).  The weight memories are the globals of lenet5_weights.h, so their power-on
// contents are the shipped weights; mode 1 rewrites them in place.
//
// Cycle and resource budget (python -m lenet5_pynq.budget computes it from the same configs;
// README.md has the table): per image, with the parallelism of lenet5_pynq/hls_config.py,
//   stage          trip counts                        target II   cycles/image   multipliers
//   read_pixels    98 beats x 2 elements                   1          196          -
//   conv1_windows  24 rows x 28 sweep steps (+35 fill)     1          707          -
//   conv1_mac      576 windows x 1 fold                    1          576      150 LUT (8b x 16b)
//   conv2_windows  8 rows x 12 steps (+60 fill)            1          156          -
//   conv2_mac      64 windows x 15 folds                   1          960      160 DSP
//   fc1            256 inputs / 4 x 10 folds (+10 emit)    1          650       48 DSP
//   fc2            120 inputs / 4 x 12 folds (+12 emit)    1          372       28 LUT
//   fc3            84 inputs / 7 x 5 folds (+5 emit)       1           65       14 LUT
//   write_results  5 reads + 3 beats                       1            8          -
// Initiation interval between images = the slowest stage (conv2_mac, 960 cycles); latency of one
// image ~1,800 cycles (pipeline fill, computed in lenet5_pynq/budget.py).
#include "lenet5.h"

#include "lenet5_layers.h"
#include "lenet5_weights.h"

namespace lenet {

static void classify(hls::stream<axis_word> &in, hls::stream<axis_word> &out, ap_uint<32> n) {
#pragma HLS DATAFLOW
    hls::stream<conv_dims<conv1_config>::in_elem> pixels("pixels");
    hls::stream<conv_dims<conv1_config>::window> conv1_windows("conv1_windows");
    hls::stream<conv_dims<conv1_config>::out_elem> conv1_out("conv1_out");
    hls::stream<conv_dims<conv2_config>::window> conv2_windows("conv2_windows");
    hls::stream<conv_dims<conv2_config>::out_elem> conv2_out("conv2_out");
    hls::stream<dense_dims<fc1_config>::out_elem> fc1_out("fc1_out");
    hls::stream<dense_dims<fc2_config>::out_elem> fc2_out("fc2_out");
    hls::stream<dense_dims<fc3_config>::out_elem> fc3_out("fc3_out");
#pragma HLS STREAM variable = pixels depth = kFifoDepth_default
#pragma HLS STREAM variable = conv1_windows depth = kFifoDepth_default
#pragma HLS STREAM variable = conv1_out depth = kFifoDepth_default
#pragma HLS STREAM variable = conv2_windows depth = kFifoDepth_default
#pragma HLS STREAM variable = conv2_out depth = kFifoDepth_conv2_out
#pragma HLS STREAM variable = fc1_out depth = kFifoDepth_default
#pragma HLS STREAM variable = fc2_out depth = kFifoDepth_default
#pragma HLS STREAM variable = fc3_out depth = kFifoDepth_default

    read_pixels<conv1_config>(in, pixels, n);
    conv_windows<conv1_config>(pixels, conv1_windows, n);
    conv_mac<conv1_config>(conv1_windows, conv1_out, conv1_kernel, conv1_bias, n);
    conv_windows<conv2_config>(conv1_out, conv2_windows, n);
    conv_mac<conv2_config>(conv2_windows, conv2_out, conv2_kernel, conv2_bias, n);
    dense<fc1_config>(conv2_out, fc1_out, fc1_kernel, fc1_bias, n);
    dense<fc2_config>(fc1_out, fc2_out, fc2_kernel, fc2_bias, n);
    dense<fc3_config>(fc2_out, fc3_out, fc3_kernel, fc3_bias, n);
    write_results<fc3_config>(fc3_out, out, n);
}

// Mode 1: header beat, then kWeightWords words into the memories, then one ack beat with TLAST.
// A bad header still consumes the whole fixed-length stream (so the DMA completes) but writes nothing.
static void load_weights(hls::stream<axis_word> &in, hls::stream<axis_word> &out) {
    ap_uint<64> header = in.read().data;
    const unsigned count = header.range(63, 32);
    const bool ok = header.range(15, 0) == kWeightMagic && header.range(31, 16) == kWeightFormat && count == kWeightWords;
    word_reader rd = {0, 0, 0};
    load_conv<conv1_config>(in, rd, conv1_kernel, conv1_bias, ok);
    load_conv<conv2_config>(in, rd, conv2_kernel, conv2_bias, ok);
    load_dense<fc1_config>(in, rd, fc1_kernel, fc1_bias, ok);
    load_dense<fc2_config>(in, rd, fc2_kernel, fc2_bias, ok);
    load_dense<fc3_config>(in, rd, fc3_kernel, fc3_bias, ok);
    axis_word ack;
    ack.data = (ap_uint<64>(rd.checksum) << 48) | (ap_uint<64>(kWeightWords & 0xFFFF) << 32) |
               (ap_uint<64>(ok ? kAckOk : kAckBadHeader) << 16) | ap_uint<64>(kWeightMagic);
    ack.keep = -1;
    ack.strb = -1;
    ack.last = 1;
    out.write(ack);
}

}  // namespace lenet

void lenet5(hls::stream<axis_word> &in, hls::stream<axis_word> &out, ap_uint<32> n, ap_uint<32> mode) {
#pragma HLS INTERFACE axis port = in
#pragma HLS INTERFACE axis port = out
#pragma HLS INTERFACE s_axilite port = n bundle = control
#pragma HLS INTERFACE s_axilite port = mode bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
    // Weight memories: pe x simd banks read in parallel each cycle.
#pragma HLS ARRAY_PARTITION variable = lenet::conv1_kernel complete dim = 3
#pragma HLS ARRAY_PARTITION variable = lenet::conv1_kernel complete dim = 4
#pragma HLS ARRAY_PARTITION variable = lenet::conv1_bias complete dim = 2
#pragma HLS ARRAY_PARTITION variable = lenet::conv2_kernel complete dim = 3
#pragma HLS ARRAY_PARTITION variable = lenet::conv2_kernel complete dim = 4
#pragma HLS ARRAY_PARTITION variable = lenet::conv2_bias complete dim = 2
#pragma HLS ARRAY_PARTITION variable = lenet::fc1_kernel complete dim = 3
#pragma HLS ARRAY_PARTITION variable = lenet::fc1_kernel complete dim = 4
#pragma HLS ARRAY_PARTITION variable = lenet::fc1_bias complete dim = 2
#pragma HLS ARRAY_PARTITION variable = lenet::fc2_kernel complete dim = 3
#pragma HLS ARRAY_PARTITION variable = lenet::fc2_kernel complete dim = 4
#pragma HLS ARRAY_PARTITION variable = lenet::fc2_bias complete dim = 2
#pragma HLS ARRAY_PARTITION variable = lenet::fc3_kernel complete dim = 3
#pragma HLS ARRAY_PARTITION variable = lenet::fc3_kernel complete dim = 4
#pragma HLS ARRAY_PARTITION variable = lenet::fc3_bias complete dim = 2
    if (mode == lenet::kModeLoadWeights)
        lenet::load_weights(in, out);
    else if (n != 0)
        lenet::classify(in, out, n);
}
