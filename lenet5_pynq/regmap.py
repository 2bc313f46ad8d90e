"""The accelerator's AXI4-Lite register map, as Vitis HLS assigns it (UG1399, "S_AXILITE control
register map") for lenet5(in, out, n, mode) with ap_ctrl_hs: the block-level control register
and its bits, then the scalar arguments from 0x10 on.  The driver writes through these and checks
them against the map in the overlay's metadata (the .hwh), so a bitstream built from other sources
is refused instead of misdriven.  The simulated board keeps its own copy of UG1399's table
(`simboard.registers`), an independent witness; tests/test_register_tables.py compares the two.
"""

from __future__ import annotations

# CTRL bits.
AP_START = 1 << 0  # set by software; cleared by the core when it asserts ap_ready
AP_DONE = 1 << 1  # clear on read
AP_IDLE = 1 << 2
AP_READY = 1 << 3  # clear on read
AP_AUTO_RESTART = 1 << 7

REGISTERS = {
    "CTRL": 0x00,  # AP_START, AP_DONE, AP_IDLE, AP_READY, AP_AUTO_RESTART
    "GIE": 0x04,
    "IER": 0x08,
    "ISR": 0x0C,
    "N": 0x10,  # number of images in the batch (mode 0)
    "MODE": 0x18,  # 0 classify, 1 load weights (hls_stream.MODE_*)
}
