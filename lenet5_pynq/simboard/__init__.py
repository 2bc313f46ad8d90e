"""A simulated PYNQ board carrying the LeNet-5 overlay, so that the overlay driver runs its real
code paths (pynq.Overlay, pynq.allocate, the DMA and accelerator registers) off the board.

    from lenet5_pynq.simboard import SimBoard
    from lenet5_pynq.overlay import LeNet5Overlay
    board = SimBoard("pynq-z2")
    ol = LeNet5Overlay(board.bitfile, device=board)
    board.faults.stall = True        # the next run hangs: ol.classify raises DmaTimeout, then works again

Modules: `device` (the `pynq.Device`), `models` (the register models of the DMA and the
accelerator, and the streams between them), `registers` (PG021's and UG1399's register tables,
the models' own data), `hwh` (the board's .hwh), `datapath` (the accelerator's datapath: the HLS
C-simulation library as the csim backend loads it, hls_src/build/liblenet5_csim.so, built with
make on first use; $LENET5_CSIM_LIB names another copy).
"""

from .device import ENV_BOARD, SimBoard
from .models import Faults, SimBusError

__all__ = ["ENV_BOARD", "Faults", "SimBoard", "SimBusError"]
