// LeNet-5 accelerator: the top function and its AXI4-Stream word.
//
// Interfaces (see README.md and lenet5_pynq/hls_stream.py for the stream formats):
//   in, out : AXI4-Stream, 64-bit beats (TLAST on the last output beat of a transfer)
//   n       : s_axilite, images in the batch (mode 0); ignored in mode 1
//   mode    : s_axilite, 0 classify, 1 load weights
//   return  : s_axilite, ap_ctrl_hs block control
// AXI4-Lite map of bundle `control` as Vitis HLS assigns it (the driver reads the .hwh):
//   0x00 CTRL (ap_start, ap_done, ap_idle, ap_ready)   0x04 GIE   0x08 IER   0x0C ISR
//   0x10 n                                             0x18 mode
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include "lenet5_types.h"

#ifndef LENET5_MINIMAL_AXIS
#include <ap_axi_sdata.h>
typedef ap_axiu<64, 0, 0, 0> axis_word;
#else
// g++ with the ap_types of the hls4ml wheel, which has no ap_axi_sdata.h: the fields of
// ap_axiu<64, 0, 0, 0> that the design uses.
struct axis_word {
    ap_uint<64> data;
    ap_uint<8> keep;
    ap_uint<8> strb;
    ap_uint<1> last;
};
#endif

void lenet5(hls::stream<axis_word> &in, hls::stream<axis_word> &out, ap_uint<32> n, ap_uint<32> mode);
