// LeNet-5 top: AXI adapters around a DATAFLOW chain of named stages (classify) and the weight
// loader (mode 1).  The weight memories are the globals of lenet5_weights.h, so their power-on
// contents are the shipped weights; mode 1 rewrites them in place.
//
// The cycles, memories and area of every stage are simulated and synthesised from the same
// configs by `python -m lenet5_pynq.budget` (hls_src/README.md says how each figure is obtained).
#include "lenet5.h"

#include "lenet5_layers.h"
#include "lenet5_weights.h"

namespace lenet {

static void classify(hls::stream<axis_word> &in, hls::stream<axis_word> &out, ap_uint<32> n) {
#pragma HLS DATAFLOW
    hls::stream<conv_dims<conv1_config>::pixel> pixels("pixels");
    hls::stream<conv_dims<conv1_config>::window> conv1_windows("conv1_windows");
    hls::stream<conv_dims<conv1_config>::out_elem> conv1_out("conv1_out");
    hls::stream<conv_dims<conv2_config>::window> conv2_windows("conv2_windows");
    hls::stream<conv_dims<conv2_config>::out_elem> conv2_out("conv2_out");
    hls::stream<dense_dims<fc1_config>::out_elem> fc1_out("fc1_out");
    hls::stream<dense_dims<fc2_config>::out_elem> fc2_out("fc2_out");
    hls::stream<dense_dims<fc3_config>::out_elem> fc3_out("fc3_out");
#pragma HLS STREAM variable = pixels depth = kFifoDepth_pixels
#pragma HLS STREAM variable = conv1_windows depth = kFifoDepth_conv1_windows
#pragma HLS STREAM variable = conv1_out depth = kFifoDepth_conv1_out
#pragma HLS STREAM variable = conv2_windows depth = kFifoDepth_conv2_windows
#pragma HLS STREAM variable = conv2_out depth = kFifoDepth_conv2_out
#pragma HLS STREAM variable = fc1_out depth = kFifoDepth_fc1_out
#pragma HLS STREAM variable = fc2_out depth = kFifoDepth_fc2_out
#pragma HLS STREAM variable = fc3_out depth = kFifoDepth_fc3_out

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
    const unsigned count = header.range(63, kHeaderWordsLsb);  // the count's two words
    const bool ok = header.range(kHeaderMagicLsb + kWordBits - 1, kHeaderMagicLsb) == kWeightMagic &&
                    header.range(kHeaderFormatLsb + kWordBits - 1, kHeaderFormatLsb) == kWeightFormat &&
                    count == kWeightWords;
    word_reader rd = {0, 0, 0};
    load_conv<conv1_config>(in, rd, conv1_kernel, conv1_bias, ok);
    load_conv<conv2_config>(in, rd, conv2_kernel, conv2_bias, ok);
    load_dense<fc1_config>(in, rd, fc1_kernel, fc1_bias, ok);
    load_dense<fc2_config>(in, rd, fc2_kernel, fc2_bias, ok);
    load_dense<fc3_config>(in, rd, fc3_kernel, fc3_bias, ok);
    axis_word ack;
    ack.data = 0;
    ack.data.range(kAckMagicLsb + kWordBits - 1, kAckMagicLsb) = kWeightMagic;
    ack.data.range(kAckStatusLsb + kWordBits - 1, kAckStatusLsb) = ok ? kAckOk : kAckBadHeader;
    ack.data.range(kAckWordsLsb + kWordBits - 1, kAckWordsLsb) = kWeightWords;  // its low word
    ack.data.range(kAckChecksumLsb + kWordBits - 1, kAckChecksumLsb) = rd.checksum;
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
    if (mode == lenet::kModeLoadWeights) lenet::load_weights(in, out);
    else if (n != 0) lenet::classify(in, out, n);
}
