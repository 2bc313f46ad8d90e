"""The PYNQ driver of the LeNet-5 overlay: an AXI DMA in simple mode feeding the HLS accelerator.

    from lenet5_pynq.overlay import LeNet5Overlay
    ol = LeNet5Overlay()                 # lenet5_pynq/bitstreams/<board>/lenet5.bit, or a path
    pred = ol.classify(images)           # uint8 [N, 28, 28] -> Prediction (classes, raw int16 logits)
    ol.last_timing                       # fabric time vs Python and DMA overhead of that call
    ol.load_weights("retrained.npz")     # new weights through the accelerator's weight-load mode

Pieces (the block design is `lenet5_pynq.board_design`); every public name of the submodules is
re-exported here:

* `core`: `LeNet5Core`, the `DefaultIP` driver of the accelerator (bound by its VLNV): its
  `ap_ctrl_hs` control register and the `n` and `mode` arguments.
* `dma`: `AxiDma` / `DmaChannel`: the AXI DMA's two channels driven through their registers with a
  deadline on every wait and a soft reset through DMACR (PG021).  pynq's own `pynq.lib.dma.DMA`
  spins without a timeout in `wait()`, `start()` and `stop()` and has no reset call, so a stalled
  stream hangs the Python process; this driver never waits without a deadline.
* `runner`: `StreamRunner`: buffers allocated once, batches split into DMA-sized chunks, the next
  chunk's send overlapped with the current receive, caches flushed and invalidated, each call timed.
* `weights`: `prepare_weights`, the checks and quantization of a weight set for the fabric.
* `errors`: the exceptions.
* `LeNet5Overlay` (this module), the `pynq.Overlay` subclass that wires them together.

Only APIs that pynq 3.0 already has are used (`Overlay`, `DefaultIP`, `MMIO.array`,
`allocate(..., target=)`, `PynqBuffer.flush/invalidate/physical_address/freebuffer`).

The accelerator's reset: the block design ANDs the fabric reset with the DMA's
`s2mm_prmry_reset_out_n`, so a DMA soft reset also resets the accelerator (which has no software
reset of its own in `ap_ctrl_hs`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
from pynq import Overlay

from .. import bitstreams, board_design, hls_stream, network
from ..backends.base import Prediction, check_images
from .core import AP_AUTO_RESTART, AP_DONE, AP_IDLE, AP_READY, AP_START, REG_CTRL, REG_MODE, REG_N, LeNet5Core
from .dma import (
    DMACR_DLY_IRQEN,
    DMACR_ERR_IRQEN,
    DMACR_IOC_IRQEN,
    DMACR_RESET,
    DMACR_RESET_VALUE,
    DMACR_RS,
    DMASR_BITS,
    DMASR_DLY_IRQ,
    DMASR_DMADECERR,
    DMASR_DMAINTERR,
    DMASR_DMASLVERR,
    DMASR_ERR_IRQ,
    DMASR_ERRORS,
    DMASR_HALTED,
    DMASR_IDLE,
    DMASR_IOC_IRQ,
    DMASR_SGINCLD,
    MM2S_DMACR,
    MM2S_DMASR,
    MM2S_LENGTH,
    MM2S_SA,
    MM2S_SA_MSB,
    S2MM_DA,
    S2MM_DA_MSB,
    S2MM_DMACR,
    S2MM_DMASR,
    S2MM_LENGTH,
    AxiDma,
    DmaChannel,
    describe_status,
)
from .errors import (
    AcceleratorError,
    DmaError,
    DmaTimeout,
    OverlayClosed,
    OverlayNotFound,
    ShortTransfer,
    WeightFormatError,
    WeightLoadError,
)
from .runner import (
    DEFAULT_CHUNK_IMAGES,
    DEFAULT_TIMEOUT_PER_IMAGE_S,
    DEFAULT_TIMEOUT_S,
    IMAGE_BYTES,
    RESULT_BYTES,
    CallTiming,
    StreamRunner,
    check_timeout,
)
from .weights import WeightSet, accelerator_spec, prepare_weights

__all__ = [
    # core
    "AP_AUTO_RESTART",
    "AP_DONE",
    "AP_IDLE",
    "AP_READY",
    "AP_START",
    "REG_CTRL",
    "REG_MODE",
    "REG_N",
    "LeNet5Core",
    # dma
    "DMACR_DLY_IRQEN",
    "DMACR_ERR_IRQEN",
    "DMACR_IOC_IRQEN",
    "DMACR_RESET",
    "DMACR_RESET_VALUE",
    "DMACR_RS",
    "DMASR_BITS",
    "DMASR_DLY_IRQ",
    "DMASR_DMADECERR",
    "DMASR_DMAINTERR",
    "DMASR_DMASLVERR",
    "DMASR_ERR_IRQ",
    "DMASR_ERRORS",
    "DMASR_HALTED",
    "DMASR_IDLE",
    "DMASR_IOC_IRQ",
    "DMASR_SGINCLD",
    "MM2S_DMACR",
    "MM2S_DMASR",
    "MM2S_LENGTH",
    "MM2S_SA",
    "MM2S_SA_MSB",
    "S2MM_DA",
    "S2MM_DA_MSB",
    "S2MM_DMACR",
    "S2MM_DMASR",
    "S2MM_LENGTH",
    "AxiDma",
    "DmaChannel",
    "describe_status",
    # errors
    "AcceleratorError",
    "DmaError",
    "DmaTimeout",
    "OverlayClosed",
    "OverlayNotFound",
    "ShortTransfer",
    "WeightFormatError",
    "WeightLoadError",
    # runner
    "DEFAULT_CHUNK_IMAGES",
    "DEFAULT_TIMEOUT_PER_IMAGE_S",
    "DEFAULT_TIMEOUT_S",
    "IMAGE_BYTES",
    "RESULT_BYTES",
    "CallTiming",
    "StreamRunner",
    "check_timeout",
    # weights
    "WeightSet",
    "accelerator_spec",
    "prepare_weights",
    # this module
    "BITSTREAMS_DIR",
    "LeNet5Overlay",
    "board_name",
    "default_bitfile",
]

BITSTREAMS_DIR = Path(__file__).resolve().parent.parent / "bitstreams"  # lenet5_pynq/bitstreams


def board_name() -> str | None:
    """This board's directory name under lenet5_pynq/bitstreams, from the PYNQ image ($BOARD or the
    device tree), or None off a board."""
    candidates = [os.environ.get("BOARD", "")]
    with contextlib.suppress(OSError):
        candidates.append(bitstreams.PYNQ_BOARD_FILE.read_text().strip("\x00\n "))
    for c in candidates:
        if c:
            try:
                return board_design.board(c).name
            except ValueError:
                continue
    return None


def default_bitfile(board: str | None = None) -> Path:
    """lenet5_pynq/bitstreams/<board>/lenet5.bit (with lenet5.hwh beside it)."""
    name = board_design.board(board).name if board else board_name()
    if name is None:
        raise OverlayNotFound(
            f"not on a PYNQ board ($BOARD and {bitstreams.PYNQ_BOARD_FILE} say nothing); "
            "pass the board name or a bitstream path"
        )
    bit = BITSTREAMS_DIR / name / f"{board_design.OVERLAY_NAME}.bit"
    missing = [p.name for p in (bit, bit.with_suffix(".hwh")) if not p.is_file()]
    if missing:
        raise OverlayNotFound(
            f"{', '.join(missing)} missing in {bit.parent}: build the overlay for {name} "
            "with overlay/ (see vivado/README.md) or install a package that ships it"
        )
    return bit


class LeNet5Overlay(Overlay):
    """The LeNet-5 overlay: AXI DMA plus the accelerator, wired to a `StreamRunner`.

    Parameters
    ----------
    bitfile : str or Path, optional
        The .bit (a .hwh with the same stem beside it); default: this board's packaged overlay.
    board : str, optional
        Board name used to find the packaged overlay when `bitfile` is not given.
    chunk_images : int
        Images per DMA transfer (also limited by the DMA's length register).
    timeout_s, timeout_per_image_s : float
        Every wait ends after ``timeout_s + timeout_per_image_s * images`` seconds; both finite,
        `timeout_s` more than zero, `timeout_per_image_s` zero or more (ValueError otherwise).
    download, device, **kwargs
        As for `pynq.Overlay`.

    Notes
    -----
    Thread safety: one overlay may be shared between threads.  `classify`, `load_weights`,
    `reset`, `download` and `close` each hold the runner's lock (`runner.lock`) around their
    transfers and register sequences, so concurrent calls run one after the other and each gets
    its own, bit-exact result.  After `close()` every call raises `OverlayClosed`.
    """

    def __init__(
        self,
        bitfile=None,
        board=None,
        download=True,
        device=None,
        chunk_images=DEFAULT_CHUNK_IMAGES,
        timeout_s=DEFAULT_TIMEOUT_S,
        timeout_per_image_s=DEFAULT_TIMEOUT_PER_IMAGE_S,
        **kwargs,
    ):
        check_timeout("timeout_s", timeout_s)
        check_timeout("timeout_per_image_s", timeout_per_image_s, allow_zero=True)
        bitfile = Path(bitfile) if bitfile is not None else default_bitfile(board)
        super().__init__(str(bitfile), download=download, device=device, **kwargs)
        for inst, vlnv in (
            (board_design.DMA_NAME, board_design.VLNV["axi_dma"]),
            (board_design.ACCEL_NAME, board_design.VLNV["accel"]),
        ):
            found = self.ip_dict.get(inst, {}).get("type")
            if found != vlnv:
                raise RuntimeError(
                    f"{bitfile}: expected IP {inst} of type {vlnv}, found {found or 'none'}; "
                    "is this the lenet5 overlay?"
                )
        self.lenet5_core = getattr(self, board_design.ACCEL_NAME)
        self.dma = AxiDma(self.ip_dict[board_design.DMA_NAME])
        self.spec = accelerator_spec()
        self.logit_scale = self.spec.logits.scale
        self.weights_source = "power-on (shipped)"
        self.runner = StreamRunner(
            self.dma, self.lenet5_core, self.device, chunk_images, timeout_s, timeout_per_image_s
        )

    def download(self, dtbo=None):
        """Program the bitstream (a power-on: shipped weights, registers reset) and restart the
        DMA channels."""
        runner = self.__dict__.get("runner")
        if runner is None:
            super().download(dtbo)
            return
        with runner.lock:
            runner._check_open()
            super().download(dtbo)
            runner.reset()
            self.weights_source = "power-on (shipped)"

    # ---------------------------------------------------------------- configuration
    @property
    def timeout_s(self) -> float:
        return self.runner.timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        self.runner.timeout_s = value  # checked: finite, > 0

    @property
    def timeout_per_image_s(self) -> float:
        return self.runner.timeout_per_image_s

    @timeout_per_image_s.setter
    def timeout_per_image_s(self, value: float) -> None:
        self.runner.timeout_per_image_s = value  # checked: finite, >= 0

    @property
    def last_timing(self) -> CallTiming:
        """Timing of the last `classify` call (`CallTiming`)."""
        return self.runner.last_timing

    @property
    def fabric_clock_mhz(self) -> float:
        return float(
            self.ip_dict[board_design.ACCEL_NAME]["parameters"].get("CLOCK_MHZ", board_design.FABRIC_CLOCK_MHZ)
        )

    # ---------------------------------------------------------------- operations
    def classify(self, images) -> Prediction:
        """Classify uint8 images [N, 28, 28] (or one 28x28 image).

        Returns
        -------
        Prediction
            ``classes`` int64[N], ``logits`` the raw int16 words the fabric returns [N, 10]
            (real value = raw * ``logit_scale``).

        Raises
        ------
        AcceleratorError
            `DmaTimeout`, `DmaError` or `ShortTransfer`; the DMA and the accelerator have been
            reset, so the next call works.
        OverlayClosed
            After `close()`.
        """
        classes, logits = self.runner.classify(check_images(images))
        return Prediction(classes, logits, self.logit_scale)

    def reset(self) -> None:
        """Soft-reset the DMA and, through it, the accelerator (the weights stay loaded)."""
        self.runner.reset()

    def load_weights(self, source, spec=None, allow_saturation: bool = False) -> None:
        """Load a weight set through the accelerator's weight-load mode (mode 1).

        The set is checked against the network's shapes and the fixed-point formats built into
        the fabric first (`prepare_weights`); the accelerator acknowledges the word count and a
        checksum, which are compared with what was sent.

        Raises
        ------
        WeightFormatError
            The set does not fit the fabric (nothing was sent).
        WeightLoadError, AcceleratorError
            The transfer failed or the acknowledgement does not match (the DMA was reset).
        """
        self.runner._check_open()
        ws = prepare_weights(source, spec, allow_saturation)
        beats = ws.beats
        words = beats[1:].view("<i2")[: hls_stream.weight_word_count()]
        with self.runner.lock:
            self.runner.send_weights(beats, hls_stream.weight_word_count(), hls_stream.weight_checksum(words))
            self.weights_source = ws.source

    def throughput_test(self, batch_size: int = 10000, repeats: int = 3, images=None) -> dict:
        """Time `classify` on one batch, in the spirit of finn-examples' driver.

        Returns
        -------
        dict
            Median over `repeats` calls: total and fabric time, images/s end to end and in the
            fabric, DMA bandwidth in and out, copy times, the fabric clock.
        """
        if images is None:
            shape = (batch_size, network.INPUT_HEIGHT, network.INPUT_WIDTH)
            images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        images = check_images(images)
        n = len(images)
        self.classify(images)  # warm-up
        runs = []
        for _ in range(max(1, repeats)):
            self.classify(images)
            runs.append(self.last_timing)
        runs.sort(key=lambda t: t.total_s)
        t = runs[len(runs) // 2]
        return {
            "batch_size": n,
            "chunks": t.chunks,
            "runtime_ms": t.total_s * 1e3,
            "fabric_ms": t.fabric_s * 1e3,
            "overhead_ms": t.overhead_s * 1e3,
            "copy_input_ms": t.copy_in_s * 1e3,
            "copy_output_ms": t.copy_out_s * 1e3,
            "throughput_images_per_s": n / t.total_s,
            "fabric_images_per_s": n / t.fabric_s if t.fabric_s else float("inf"),
            "dram_in_mb_per_s": n * IMAGE_BYTES / t.fabric_s / 1e6 if t.fabric_s else float("inf"),
            "dram_out_mb_per_s": n * RESULT_BYTES / t.fabric_s / 1e6 if t.fabric_s else float("inf"),
            "fclk_mhz": self.fabric_clock_mhz,
        }

    def close(self) -> None:
        """Free the DMA buffers (after a call in progress ends); later calls raise `OverlayClosed`."""
        self.runner.close()

    @property
    def closed(self) -> bool:
        return self.runner.closed
