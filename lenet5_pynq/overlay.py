"""The PYNQ driver of the LeNet-5 overlay: an AXI DMA in simple mode feeding the HLS accelerator.

    from lenet5_pynq.overlay import LeNet5Overlay
    ol = LeNet5Overlay()                 # lenet5_pynq/overlays/<board>/lenet5.bit, or a path
    pred = ol.classify(images)           # uint8 [N, 28, 28] -> Prediction (classes, raw int16 logits)
    ol.last_timing                       # fabric time vs Python and DMA overhead of that call
    ol.load_weights("retrained.npz")     # new weights through the accelerator's weight-load mode

Pieces (the block design is `lenet5_pynq.board_design`):

* `LeNet5Core`, the `DefaultIP` driver of the accelerator (bound by its VLNV): its `ap_ctrl_hs`
  control register and the `n` and `mode` arguments.
* `AxiDma` / `DmaChannel`: the AXI DMA's two channels driven through their registers with a
  deadline on every wait and a soft reset through DMACR (PG021).  pynq's own `pynq.lib.dma.DMA`
  spins without a timeout in `wait()`, `start()` and `stop()` and has no reset call, so a stalled
  stream hangs the Python process; this driver never waits without a deadline.
* `StreamRunner`: buffers allocated once, batches split into DMA-sized chunks, the next chunk's
  send overlapped with the current receive, caches flushed and invalidated, each call timed.
* `LeNet5Overlay`, the `pynq.Overlay` subclass that wires them together.

Only APIs that pynq 3.0 already has are used (`Overlay`, `DefaultIP`, `MMIO.array`,
`allocate(..., target=)`, `PynqBuffer.flush/invalidate/physical_address/freebuffer`).

The accelerator's reset: the block design ANDs the fabric reset with the DMA's
`s2mm_prmry_reset_out_n`, so a DMA soft reset also resets the accelerator (which has no software
reset of its own in `ap_ctrl_hs`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pynq import MMIO, DefaultIP, Overlay, allocate

from . import board_design, fixedspec, hls_config, hls_stream, network, weights
from .backends.base import Prediction, check_images

# ------------------------------------------------------------------------ AXI DMA (PG021 v7.1)
# "Register Space", Direct Register Mode (simple DMA) register address map.
MM2S_DMACR = 0x00  # MM2S DMA control register
MM2S_DMASR = 0x04  # MM2S DMA status register
MM2S_SA = 0x18  # MM2S source address, lower 32 bits
MM2S_SA_MSB = 0x1C  # MM2S source address, upper 32 bits (c_addr_width > 32)
MM2S_LENGTH = 0x28  # MM2S transfer length in bytes; writing it starts the transfer
S2MM_DMACR = 0x30  # S2MM DMA control register
S2MM_DMASR = 0x34  # S2MM DMA status register
S2MM_DA = 0x48  # S2MM destination address, lower 32 bits
S2MM_DA_MSB = 0x4C  # S2MM destination address, upper 32 bits
S2MM_LENGTH = 0x58  # S2MM buffer length; on completion it holds the bytes actually received

# DMACR fields (MM2S_DMACR and S2MM_DMACR share the layout).
DMACR_RS = 1 << 0  # run/stop
DMACR_RESET = 1 << 2  # soft reset of the whole AXI DMA; reads 1 until the reset completes
DMACR_IOC_IRQEN = 1 << 12
DMACR_DLY_IRQEN = 1 << 13
DMACR_ERR_IRQEN = 1 << 14
DMACR_RESET_VALUE = 0x0001_0000  # IRQThreshold = 1

# DMASR fields.
DMASR_HALTED = 1 << 0  # the channel is stopped (RS = 0, or after an error)
DMASR_IDLE = 1 << 1  # simple mode: the programmed transfer has completed
DMASR_SGINCLD = 1 << 3
DMASR_DMAINTERR = 1 << 4  # internal error: length 0, or (S2MM) a packet longer than the length
DMASR_DMASLVERR = 1 << 5  # slave error on the memory-mapped side
DMASR_DMADECERR = 1 << 6  # decode error: the address decodes to nothing
DMASR_IOC_IRQ = 1 << 12  # completion interrupt (write 1 to clear)
DMASR_DLY_IRQ = 1 << 13
DMASR_ERR_IRQ = 1 << 14
DMASR_ERRORS = DMASR_DMAINTERR | DMASR_DMASLVERR | DMASR_DMADECERR
DMASR_BITS = {
    DMASR_HALTED: "Halted", DMASR_IDLE: "Idle", DMASR_SGINCLD: "SGIncld", DMASR_DMAINTERR: "DMAIntErr",
    DMASR_DMASLVERR: "DMASlvErr", DMASR_DMADECERR: "DMADecErr", DMASR_IOC_IRQ: "IOC_Irq",
    DMASR_DLY_IRQ: "Dly_Irq", DMASR_ERR_IRQ: "Err_Irq",
}

# ----------------------------------------------------- the accelerator (Vitis HLS ap_ctrl_hs)
# UG1399, "S_AXILITE control register map": CTRL bits.
AP_START = 1 << 0  # set by software; cleared by the core when it asserts ap_ready
AP_DONE = 1 << 1  # clear on read
AP_IDLE = 1 << 2
AP_READY = 1 << 3  # clear on read
AP_AUTO_RESTART = 1 << 7
REG_CTRL = hls_stream.REGISTERS["CTRL"]
REG_N = hls_stream.REGISTERS["N"]
REG_MODE = hls_stream.REGISTERS["MODE"]

RESULT_BYTES = hls_stream.RESULT_DTYPE.itemsize
IMAGE_BYTES = hls_stream.IN_BEATS_PER_IMAGE * hls_stream.BEAT_BYTES
# The pad word of a result is always zero from the fabric: the driver writes this marker into it
# before a transfer, so after a timeout it can count how many results reached memory.
_PAD_MARKER = 0xFFFF

DEFAULT_TIMEOUT_S = 1.0  # per transfer, plus DEFAULT_TIMEOUT_PER_IMAGE_S for each image
DEFAULT_TIMEOUT_PER_IMAGE_S = 1e-3  # the fabric needs ~20 us an image at 100 MHz
DEFAULT_CHUNK_IMAGES = 2048  # images per DMA transfer: 1.6 MB in, 48 KB out, two of each
OVERLAYS_DIR = Path(__file__).resolve().parent / "overlays"


def describe_status(status: int) -> str:
    """DMASR bits by their PG021 names, e.g. ``0x00004011 (Halted|DMAIntErr|Err_Irq)``."""
    names = [name for bit, name in DMASR_BITS.items() if status & bit]
    return f"0x{status:08x} ({'|'.join(names) or 'running, busy'})"


# --------------------------------------------------------------------------------- errors
class AcceleratorError(RuntimeError):
    """A transfer or a run of the accelerator failed.  The driver has reset the DMA and the
    accelerator before raising, so the next call works (unless `recovered` is False)."""

    def __init__(self, message, channel=None, status=None, bytes_moved=None, bytes_expected=None):
        super().__init__(message)
        self.channel = channel
        self.status = status
        self.bytes_moved = bytes_moved
        self.bytes_expected = bytes_expected
        self.recovered = False


class DmaTimeout(AcceleratorError, TimeoutError):
    """A channel did not complete within the deadline (a stalled stream or accelerator)."""


class DmaError(AcceleratorError):
    """A channel stopped with an error bit set in its DMASR."""


class ShortTransfer(AcceleratorError):
    """The accelerator ended its output stream (TLAST) before the expected number of bytes."""


class WeightLoadError(AcceleratorError):
    """The accelerator rejected a weight set or acknowledged it with the wrong count or checksum."""


class WeightFormatError(ValueError):
    """A weight set does not fit the shapes or the fixed-point formats built into the fabric."""


class OverlayNotFound(FileNotFoundError):
    """No bitstream for this board in the package (it is built with overlay/, see its README)."""


# ------------------------------------------------------------------------------ the DMA
class DmaChannel:
    """One channel (MM2S or S2MM) of an AXI DMA in simple mode, through its registers.

    Parameters
    ----------
    regs : array-like
        The DMA's register window as 32-bit words (`pynq.MMIO.array`).
    name : str
        ``"MM2S"`` or ``"S2MM"``, used in error messages.
    max_bytes : int
        The largest transfer, ``2**c_sg_length_width - 1`` (PG021, MM2S_LENGTH / S2MM_LENGTH).
    wide_address : bool
        True when ``c_addr_width > 32``: the upper address word is written too.
    """

    def __init__(self, regs, name: str, max_bytes: int, wide_address: bool):
        self.name = name
        self._regs = regs
        first = MM2S_DMACR if name == "MM2S" else S2MM_DMACR
        addr = MM2S_SA if name == "MM2S" else S2MM_DA
        length = MM2S_LENGTH if name == "MM2S" else S2MM_LENGTH
        # Word indices, computed once: the per-call path does no look-ups.
        self._cr = first >> 2
        self._sr = (first + 4) >> 2
        self._addr = addr >> 2
        self._addr_msb = (addr + 4) >> 2 if wide_address else None
        self._length = length >> 2
        self.max_bytes = max_bytes
        self.bytes_expected = 0

    @property
    def status(self) -> int:
        """DMASR (PG021, MM2S_DMASR at 04h / S2MM_DMASR at 34h)."""
        return int(self._regs[self._sr])

    @property
    def control(self) -> int:
        """DMACR (PG021, MM2S_DMACR at 00h / S2MM_DMACR at 30h)."""
        return int(self._regs[self._cr])

    def run(self) -> None:
        """Set DMACR.RS; `AxiDma.start` waits for DMASR.Halted to clear."""
        self._regs[self._cr] = DMACR_RESET_VALUE | DMACR_RS

    def transfer(self, address: int, nbytes: int) -> None:
        """Program one transfer: the address registers, then LENGTH, which starts it (PG021,
        "Direct Register Mode": the length is written last)."""
        if not 0 < nbytes <= self.max_bytes:
            raise ValueError(f"{self.name}: a transfer of {nbytes} bytes is outside 1..{self.max_bytes} (c_sg_length_width)")
        regs = self._regs
        regs[self._addr] = address & 0xFFFF_FFFF
        if self._addr_msb is not None:
            regs[self._addr_msb] = address >> 32
        self.bytes_expected = nbytes
        regs[self._length] = nbytes

    def received(self) -> int:
        """S2MM: the bytes the completed transfer wrote (S2MM_LENGTH after completion)."""
        return int(self._regs[self._length])


class AxiDma:
    """The AXI DMA of the overlay: its two channels, their reset, and the checks that the
    configuration in the overlay's metadata is the one this driver needs.

    Parameters
    ----------
    description : dict
        The DMA's entry in the overlay's `ip_dict` (with ``device`` and ``parameters``).
    """

    def __init__(self, description: dict):
        params = {k.lower(): v for k, v in description.get("parameters", {}).items()}
        where = description.get("fullpath", board_design.DMA_NAME)
        if not params:
            raise RuntimeError(f"{where}: the overlay metadata carries no DMA parameters; a .hwh beside the .bit is needed")

        def param(name, default=None):
            if name not in params:
                if default is None:
                    raise RuntimeError(f"{where}: parameter {name} missing from the overlay metadata")
                return default
            return int(str(params[name]), 0)

        if param("c_include_sg", 0):
            raise RuntimeError(f"{where}: scatter-gather is enabled; this driver needs the DMA in simple mode (c_include_sg 0)")
        if param("c_micro_dma", 0):
            raise RuntimeError(f"{where}: micro DMA mode is not supported")
        for ch in ("mm2s", "s2mm"):
            if not param(f"c_include_{ch}", 1):
                raise RuntimeError(f"{where}: the {ch.upper()} channel is not included")
        beat_bits = hls_stream.BEAT_BYTES * 8
        for p in ("c_m_axis_mm2s_tdata_width", "c_s_axis_s2mm_tdata_width"):
            width = param(p, beat_bits)
            if width != beat_bits:
                raise RuntimeError(f"{where}: {p} is {width} bits; the accelerator's streams are {beat_bits}-bit")
        self.length_width = param("c_sg_length_width", 14)
        self.max_bytes = (1 << self.length_width) - 1
        self.address_width = param("c_addr_width", 32)
        self.data_bytes = param("c_m_axi_mm2s_data_width", beat_bits) // 8
        self.mmio = MMIO(description["phys_addr"], description["addr_range"], device=description.get("device"))
        self._regs = self.mmio.array
        wide = self.address_width > 32
        self.mm2s = DmaChannel(self._regs, "MM2S", self.max_bytes, wide)
        self.s2mm = DmaChannel(self._regs, "S2MM", self.max_bytes, wide)

    def reset(self, deadline: float) -> None:
        """Soft reset through MM2S_DMACR.Reset (it resets the whole DMA, and through
        s2mm_prmry_reset_out_n the accelerator), wait for it to finish, then start both channels.

        Raises
        ------
        DmaTimeout
            If the reset bit or DMASR.Halted does not clear by `deadline` (time.monotonic()).
        """
        regs = self._regs
        regs[MM2S_DMACR >> 2] = DMACR_RESET
        while int(regs[MM2S_DMACR >> 2]) & DMACR_RESET or int(regs[S2MM_DMACR >> 2]) & DMACR_RESET:
            if time.monotonic() > deadline:
                raise DmaTimeout("AXI DMA soft reset did not complete (MM2S_DMACR.Reset still 1); reload the overlay",
                                 channel="MM2S", status=self.mm2s.status)
        self.start(deadline)

    def start(self, deadline: float) -> None:
        """Set DMACR.RS on both channels and wait for DMASR.Halted to clear."""
        for ch in (self.mm2s, self.s2mm):
            ch.run()
        for ch in (self.mm2s, self.s2mm):
            while ch.status & DMASR_HALTED:
                if time.monotonic() > deadline:
                    raise DmaTimeout(f"{ch.name} stays halted after DMACR.RS was set: DMASR {describe_status(ch.status)}",
                                     channel=ch.name, status=ch.status)


# ------------------------------------------------------------------------ the accelerator
class LeNet5Core(DefaultIP):
    """Driver of the LeNet-5 HLS accelerator (`ap_ctrl_hs` control, arguments `n` and `mode`).

    The register offsets are `hls_stream.REGISTERS`; the constructor checks them against the
    register map in the overlay's metadata, so a bitstream built from other sources is refused
    instead of misdriven.  The last written `n` and `mode` are remembered so that a call writes
    only what changed; `forget()` drops them after a reset (which zeroes the registers).
    """

    bindto = [hls_config.VLNV]

    def __init__(self, description):
        super().__init__(description=description)
        registers = description.get("registers") or {}
        for key, offset in hls_stream.REGISTERS.items():
            name = board_design.ACCEL_REGISTER_NAMES[key]
            for candidate in (name, f"{name}_V"):
                if candidate in registers and registers[candidate]["address_offset"] != offset:
                    raise RuntimeError(
                        f"{description.get('fullpath', 'accelerator')}: register {candidate} is at "
                        f"0x{registers[candidate]['address_offset']:x} in the overlay, the driver expects 0x{offset:x}; "
                        "the bitstream was built from other HLS sources")
        self._regs = self.mmio.array
        self._ctrl = REG_CTRL >> 2
        self._n_idx = REG_N >> 2
        self._mode_idx = REG_MODE >> 2
        self._n = None
        self._mode = None

    @property
    def control(self) -> int:
        """CTRL (offset 0x00).  Reading it clears ap_done and ap_ready (UG1399)."""
        return int(self._regs[self._ctrl])

    @property
    def idle(self) -> bool:
        """ap_idle: the core is not running and can be started."""
        return bool(int(self._regs[self._ctrl]) & AP_IDLE)

    def configure(self, n: int, mode: int) -> None:
        """Write the `n` and `mode` arguments (only those that changed since the last write)."""
        if n != self._n:
            self._regs[self._n_idx] = n
            self._n = n
        if mode != self._mode:
            self._regs[self._mode_idx] = mode
            self._mode = mode

    def start(self) -> None:
        """Set ap_start (no auto-restart)."""
        self._regs[self._ctrl] = AP_START

    def forget(self) -> None:
        """The registers were reset: write `n` and `mode` again on the next call."""
        self._n = None
        self._mode = None


# --------------------------------------------------------------------------------- timing
@dataclass
class CallTiming:
    """Where the time of one call went.

    `fabric_s` is measured from the register write that starts a chunk to the poll that sees
    its last result in memory (DMA and accelerator working); `overhead_s` is everything else
    (argument checks, copies in and out, cache maintenance, register writes, Python)."""

    images: int = 0
    chunks: int = 0
    total_s: float = 0.0
    fabric_s: float = 0.0
    copy_in_s: float = 0.0
    copy_out_s: float = 0.0

    @property
    def overhead_s(self) -> float:
        return self.total_s - self.fabric_s

    def as_dict(self) -> dict:
        return {"images": self.images, "chunks": self.chunks, "total_s": self.total_s, "fabric_s": self.fabric_s,
                "overhead_s": self.overhead_s, "copy_in_s": self.copy_in_s, "copy_out_s": self.copy_out_s}


@dataclass
class WeightSet:
    """A weight set ready for the fabric: its raw layers and where it came from."""

    layers: list
    source: str
    beats: np.ndarray = field(repr=False, default=None)


# ------------------------------------------------------------------------------ streaming
class StreamRunner:
    """Moves batches through DMA and accelerator.  Buffers are allocated once: two input and two
    output buffers of `chunk_images` images each, so the next chunk's images are copied in and
    sent while the accelerator works on the current chunk and the result of the previous one is
    unpacked.

    Every wait has a deadline of ``timeout_s + timeout_per_image_s * images``; on expiry, an
    error bit or a short transfer the DMA and accelerator are reset and an `AcceleratorError`
    names the channel, its status and the bytes moved.
    """

    def __init__(self, dma: AxiDma, core: LeNet5Core, device, chunk_images=DEFAULT_CHUNK_IMAGES,
                 timeout_s=DEFAULT_TIMEOUT_S, timeout_per_image_s=DEFAULT_TIMEOUT_PER_IMAGE_S):
        if chunk_images < 1:
            raise ValueError("chunk_images must be at least 1")
        by_length = dma.max_bytes // IMAGE_BYTES
        if by_length < 1:
            raise RuntimeError(f"the DMA's {dma.length_width}-bit length register cannot carry one {IMAGE_BYTES}-byte image")
        self.chunk_images = min(chunk_images, by_length)
        self.dma = dma
        self.core = core
        self._device = device
        self.timeout_s = timeout_s
        self.timeout_per_image_s = timeout_per_image_s
        self.last_timing = CallTiming()
        c = self.chunk_images
        self._in = [allocate((c, IMAGE_BYTES), np.uint8, target=device) for _ in range(2)]
        self._out = [allocate((c * RESULT_BYTES // 8,), np.uint64, target=device) for _ in range(2)]
        self._in_addr = [b.physical_address for b in self._in]
        self._out_addr = [b.physical_address for b in self._out]
        self._out_rec = [b.view(hls_stream.RESULT_DTYPE) for b in self._out]
        # The batch-1 path: views made once.
        self._in1 = self._in[0][:1]
        self._out1 = self._out[0][: RESULT_BYTES // 8]
        self._out1_rec = self._out_rec[0][:1]
        self._in_addr_word = [None, None]
        self.reset()

    # -------------------------------------------------------------------- control
    def _deadline(self, images: int) -> float:
        return time.monotonic() + self.timeout_s + self.timeout_per_image_s * images

    def reset(self) -> None:
        """Reset the DMA (and with it the accelerator), start both channels, check the core is idle."""
        deadline = time.monotonic() + max(self.timeout_s, 0.1)
        self.core.forget()
        self.dma.reset(deadline)
        while not self.core.idle:
            if time.monotonic() > deadline:
                raise DmaTimeout("the accelerator did not return to idle after the DMA reset "
                                 f"(CTRL 0x{self.core.control:02x}); its ap_rst_n should follow the DMA's "
                                 "s2mm_prmry_reset_out_n: reload the overlay", channel="accelerator")

    def _fail(self, error: AcceleratorError):
        """Reset after a failure; mark the error recovered (or chain the reset's own failure)."""
        try:
            self.reset()
            error.recovered = True
        except AcceleratorError as reset_error:
            error.recovered = False
            raise error from reset_error
        raise error

    def _landed(self, b: int, count: int) -> int:
        """Results of buffer `b` that reached memory (their pad word lost the marker)."""
        out = self._out[b]
        out.invalidate()
        return int((self._out_rec[b]["pad"][:count] != _PAD_MARKER).sum())

    def _mark(self, b: int, count: int) -> None:
        self._out_rec[b]["pad"][:count] = _PAD_MARKER
        self._out[b][: count * RESULT_BYTES // 8].flush()

    def _launch(self, b: int, count: int, mode: int, send: bool = True) -> float:
        """Start one chunk: wait for the core to be idle, arm S2MM, (send MM2S), write n and
        mode, set ap_start.  Returns the start time."""
        core = self.core
        if not core.idle:
            deadline = self._deadline(0)
            while not core.idle:
                if time.monotonic() > deadline:
                    raise DmaTimeout(f"the accelerator is still busy (CTRL 0x{core.control:02x}) before a new start",
                                     channel="accelerator")
        nbytes = count * RESULT_BYTES if mode == hls_stream.MODE_CLASSIFY else hls_stream.WEIGHT_ACK_DTYPE.itemsize
        self.dma.s2mm.transfer(self._out_addr[b], nbytes)
        if send:
            self.dma.mm2s.transfer(self._in_addr[b], count * IMAGE_BYTES)
        core.configure(count, mode)
        t = time.perf_counter()
        core.start()
        return t

    def _wait_mm2s(self, deadline: float) -> None:
        mm2s = self.dma.mm2s
        while True:
            sr = mm2s.status
            if sr & DMASR_ERRORS:
                raise DmaError(f"MM2S stopped with an error: DMASR {describe_status(sr)}; 0 of {mm2s.bytes_expected} bytes confirmed sent",
                               channel="MM2S", status=sr, bytes_moved=0, bytes_expected=mm2s.bytes_expected)
            if sr & DMASR_IDLE:
                return
            if time.monotonic() > deadline:
                raise DmaTimeout(
                    f"MM2S did not complete: DMASR {describe_status(sr)}; the accelerator has not read all "
                    f"{mm2s.bytes_expected} bytes of its input (stalled stream or accelerator)",
                    channel="MM2S", status=sr, bytes_moved=None, bytes_expected=mm2s.bytes_expected)

    def _wait_s2mm(self, b: int, count: int, deadline: float) -> None:
        """Wait for the results of buffer `b`; check the bytes received."""
        s2mm, mm2s = self.dma.s2mm, self.dma.mm2s
        polls = 0
        while True:
            sr = s2mm.status
            if sr & DMASR_IDLE and not sr & DMASR_ERRORS:
                break
            if sr & DMASR_ERRORS or sr & DMASR_HALTED:
                moved = self._landed(b, count) * RESULT_BYTES
                raise DmaError(f"S2MM stopped: DMASR {describe_status(sr)}; {moved} of {s2mm.bytes_expected} bytes reached memory",
                               channel="S2MM", status=sr, bytes_moved=moved, bytes_expected=s2mm.bytes_expected)
            polls += 1
            if not polls & 63:
                msr = mm2s.status
                if msr & DMASR_ERRORS:
                    raise DmaError(f"MM2S stopped with an error: DMASR {describe_status(msr)} (the accelerator's input is cut off)",
                                   channel="MM2S", status=msr, bytes_moved=0, bytes_expected=mm2s.bytes_expected)
            if time.monotonic() > deadline:
                moved = self._landed(b, count) * RESULT_BYTES
                msr = mm2s.status
                sent = "MM2S completed" if msr & DMASR_IDLE else f"MM2S incomplete (DMASR {describe_status(msr)})"
                raise DmaTimeout(
                    f"S2MM did not complete within {self.timeout_s + self.timeout_per_image_s * count:.3g} s: "
                    f"DMASR {describe_status(sr)}; {moved} of {s2mm.bytes_expected} bytes reached memory; {sent}; "
                    f"accelerator CTRL 0x{self.core.control:02x} (stalled accelerator?)",
                    channel="S2MM", status=sr, bytes_moved=moved, bytes_expected=s2mm.bytes_expected)
        got = s2mm.received()
        if got != s2mm.bytes_expected:
            raise ShortTransfer(f"S2MM received {got} of {s2mm.bytes_expected} bytes: the accelerator ended its stream "
                                f"(TLAST) after {got // RESULT_BYTES} of {count} results",
                                channel="S2MM", status=sr, bytes_moved=got, bytes_expected=s2mm.bytes_expected)

    # -------------------------------------------------------------------- classify
    def classify(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Classes int64[N] and raw logits int16[N, 10] of uint8 images [N, 28, 28]."""
        n = len(images)
        if n == 1:
            return self._classify_one(images)
        timing = CallTiming(images=n)
        t_start = time.perf_counter()
        classes = np.empty(n, np.int64)
        logits = np.empty((n, network.NUM_CLASSES), np.int16)
        if n == 0:
            self.last_timing = timing
            return classes, logits
        flat = images.reshape(n, IMAGE_BYTES)
        c = self.chunk_images
        chunks = [(s, min(s + c, n)) for s in range(0, n, c)]
        timing.chunks = len(chunks)
        try:
            t = time.perf_counter()
            self._stage(0, flat[chunks[0][0]: chunks[0][1]])
            timing.copy_in_s += time.perf_counter() - t
            self._mark(0, chunks[0][1] - chunks[0][0])
            started = self._launch(0, chunks[0][1] - chunks[0][0], hls_stream.MODE_CLASSIFY)
            for k, (s, e) in enumerate(chunks):
                b = k & 1
                count = e - s
                deadline = self._deadline(count)
                nxt = chunks[k + 1] if k + 1 < len(chunks) else None
                if nxt is not None:
                    # While the fabric works on chunk k: copy chunk k+1 in, and once the
                    # accelerator has read all of chunk k, queue chunk k+1 behind it in the stream.
                    t = time.perf_counter()
                    self._stage(1 - b, flat[nxt[0]: nxt[1]])
                    self._mark(1 - b, nxt[1] - nxt[0])
                    timing.copy_in_s += time.perf_counter() - t
                    self._wait_mm2s(deadline)
                    self.dma.mm2s.transfer(self._in_addr[1 - b], (nxt[1] - nxt[0]) * IMAGE_BYTES)
                self._wait_s2mm(b, count, deadline)
                timing.fabric_s += time.perf_counter() - started
                if nxt is not None:
                    started = self._launch(1 - b, nxt[1] - nxt[0], hls_stream.MODE_CLASSIFY, send=False)
                t = time.perf_counter()
                out = self._out[b][: count * RESULT_BYTES // 8]
                out.invalidate()
                rec = self._out_rec[b][:count]
                classes[s:e] = rec["cls"]
                logits[s:e] = rec["logits"]
                timing.copy_out_s += time.perf_counter() - t
        except AcceleratorError as e:
            self._fail(e)
        timing.total_s = time.perf_counter() - t_start
        self.last_timing = timing
        return classes, logits

    def _stage(self, b: int, flat: np.ndarray) -> None:
        buf = self._in[b][: len(flat)]
        buf[:] = flat
        buf.flush()

    def _classify_one(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batch 1: fixed views, registers written directly, no allocation, no look-up."""
        t_start = time.perf_counter()
        self._in1[0] = images.reshape(IMAGE_BYTES)
        self._in1.flush()
        self._out1_rec["pad"] = _PAD_MARKER
        self._out1.flush()
        try:
            started = self._launch(0, 1, hls_stream.MODE_CLASSIFY)
            self._wait_s2mm(0, 1, self._deadline(1))
            done = time.perf_counter()
        except AcceleratorError as e:
            self._fail(e)
        self._out1.invalidate()
        rec = self._out1_rec
        classes = np.array(rec["cls"], dtype=np.int64)  # plain ndarrays, not views of the DMA buffer
        logits = np.array(rec["logits"], dtype=np.int16)
        end = time.perf_counter()
        self.last_timing = CallTiming(images=1, chunks=1, total_s=end - t_start, fabric_s=done - started)
        return classes, logits

    # -------------------------------------------------------------------- weights
    def send_weights(self, beats: np.ndarray, expected_words: int, expected_checksum: int) -> np.void:
        """Stream a weight-load (mode 1) transfer and check the acknowledgement.

        The stream goes out in as many MM2S transfers as the length register needs (the
        accelerator reads a fixed number of beats, whatever TLAST says); it is staged in the
        first input buffer, or in a buffer allocated for it when that is too small."""
        nbytes = beats.nbytes
        own = nbytes <= self._in[0].nbytes
        buf = self._in[0].reshape(-1)[:nbytes] if own else allocate((nbytes,), np.uint8, target=self._device)
        try:
            buf[:] = beats.view(np.uint8)
            buf.flush()
            ack_words = hls_stream.WEIGHT_ACK_DTYPE.itemsize // 8
            self._out[0][:ack_words] = 0
            self._out[0][:ack_words].flush()
            piece = self.dma.max_bytes // 8 * 8
            try:
                self.dma.s2mm.transfer(self._out_addr[0], hls_stream.WEIGHT_ACK_DTYPE.itemsize)
                self.core.configure(0, hls_stream.MODE_LOAD_WEIGHTS)
                self.core.start()
                deadline = self._deadline(0)
                for offset in range(0, nbytes, piece):
                    self.dma.mm2s.transfer(buf.physical_address + offset, min(piece, nbytes - offset))
                    self._wait_mm2s(deadline)
                self._wait_weights_ack(deadline)
            except AcceleratorError as e:
                self._fail(e)
        finally:
            if not own:
                getattr(buf, "freebuffer", lambda: None)()
        out = self._out[0][:ack_words]
        out.invalidate()
        try:
            ack = hls_stream.parse_ack(int(out[0]))
        except hls_stream.StreamFormatError as e:
            self._fail(WeightLoadError(f"weight load: {e}", channel="S2MM"))
        if int(ack["status"]) != hls_stream.ACK_OK:
            self._fail(WeightLoadError(f"the accelerator rejected the weight stream header (ack status {int(ack['status'])}); "
                                       "its weights are unchanged", channel="S2MM"))
        if int(ack["words"]) != expected_words & 0xFFFF or int(ack["checksum"]) != expected_checksum:
            self._fail(WeightLoadError(
                f"weight load acknowledged {int(ack['words'])} words, checksum 0x{int(ack['checksum']):04x}; "
                f"sent {expected_words & 0xFFFF} words (low 16 bits), checksum 0x{expected_checksum:04x}", channel="S2MM"))
        return ack

    def _wait_weights_ack(self, deadline: float) -> None:
        s2mm = self.dma.s2mm
        while True:
            sr = s2mm.status
            if sr & DMASR_IDLE and not sr & DMASR_ERRORS:
                break
            if sr & (DMASR_ERRORS | DMASR_HALTED):
                raise DmaError(f"S2MM stopped during the weight load: DMASR {describe_status(sr)}", channel="S2MM", status=sr)
            if time.monotonic() > deadline:
                raise DmaTimeout(f"S2MM did not receive the weight-load acknowledgement: DMASR {describe_status(sr)}; "
                                 f"accelerator CTRL 0x{self.core.control:02x}", channel="S2MM", status=sr,
                                 bytes_moved=0, bytes_expected=s2mm.bytes_expected)
        got = s2mm.received()
        if got != s2mm.bytes_expected:
            raise ShortTransfer(f"S2MM received {got} of {s2mm.bytes_expected} acknowledgement bytes", channel="S2MM",
                                status=sr, bytes_moved=got, bytes_expected=s2mm.bytes_expected)

    def close(self) -> None:
        for buf in self._in + self._out:
            getattr(buf, "freebuffer", lambda: None)()  # pynq >= 2.7; older ones free on collection


# ------------------------------------------------------------------------------ weights
def fabric_spec() -> fixedspec.FixedSpec:
    """The fixed-point formats built into the fabric: the shipped spec the HLS export used."""
    return fixedspec.load(fixedspec.SHIPPED)


def _check_formats(spec: fixedspec.FixedSpec, fabric: fixedspec.FixedSpec, source: str) -> None:
    diffs = []
    if spec.input != fabric.input:
        diffs.append(f"input {spec.input.ctype()} (fabric {fabric.input.ctype()})")
    for layer in network.LAYERS:
        for tensor in fixedspec.TENSORS:
            a, b = getattr(spec.layers[layer.name], tensor), getattr(fabric.layers[layer.name], tensor)
            if a != b:
                diffs.append(f"{layer.name} {tensor} {a.ctype()} (fabric {b.ctype()})")
    if diffs:
        raise WeightFormatError(f"{source}: formats differ from those built into the fabric: {'; '.join(diffs)}. "
                                "Requantize with the shipped spec, or build a new bitstream")


def _saturated(params: dict, fabric: fixedspec.FixedSpec) -> list[str]:
    out = []
    for layer in network.LAYERS:
        f = fabric.layers[layer.name]
        for tensor, fmt in (("kernel", f.kernel), ("bias", f.bias)):
            scaled = np.ldexp(np.asarray(params[f"{layer.name}/{tensor}"], np.float64), fmt.frac_bits)
            n = int(((scaled > fmt.max_raw + 0.5) | (scaled < fmt.min_raw - 0.5)).sum())
            if n:
                out.append(f"{n} of {scaled.size} values of {layer.name}/{tensor} beyond {fmt.ctype()}")
    return out


def prepare_weights(source, spec=None, allow_saturation: bool = False) -> WeightSet:
    """Check a weight set against the network's shapes and the fabric's fixed-point formats and
    quantize it.

    Parameters
    ----------
    source : str, Path, dict or list
        A float weight archive (.npz, `lenet5_pynq.weights`), a weight-load stream file (.bin of
        little-endian uint64 beats from ``python -m lenet5_pynq.export weight-stream``), a dict
        of float arrays keyed ``"layer/kernel"``, ``"layer/bias"``, or a list of
        `fixedspec.QuantizedLayer`.
    spec : str, Path or FixedSpec, optional
        The spec the weights were quantized for; its formats must equal the fabric's.
    allow_saturation : bool
        Accept float weights beyond the range of their format (they saturate); refused by default.

    Raises
    ------
    WeightFormatError
        Wrong shapes, other formats than the fabric's, values out of range, a malformed stream.
    """
    fabric = fabric_spec()
    if spec is not None:
        spec_obj = spec if isinstance(spec, fixedspec.FixedSpec) else fixedspec.load(spec)
        _check_formats(spec_obj, fabric, "spec")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix == ".bin":
            beats = np.fromfile(path, dtype="<u8")
            expected = hls_stream.weight_stream_beats()
            if len(beats) != expected:
                raise WeightFormatError(f"{path}: {len(beats)} beats, a weight-load stream has {expected}")
            header = beats[:1].view(hls_stream.WEIGHT_HEADER_DTYPE)[0]
            words = int(header["words_lo"]) | int(header["words_hi"]) << 16
            if (int(header["magic"]), int(header["format"]), words) != (
                    hls_stream.WEIGHT_MAGIC, hls_stream.WEIGHT_FORMAT, hls_stream.weight_word_count()):
                raise WeightFormatError(f"{path}: header (magic 0x{int(header['magic']):04x}, format {int(header['format'])}, "
                                        f"{words} words) is not a format-{hls_stream.WEIGHT_FORMAT} stream of "
                                        f"{hls_stream.weight_word_count()} words")
            return WeightSet(layers=None, source=str(path), beats=beats.astype(np.uint64))
        try:
            params, _ = weights.load(path)
        except weights.WeightsError as e:
            raise WeightFormatError(str(e)) from None
        name = str(path)
    elif isinstance(source, dict):
        params = {k: np.asarray(v, np.float32) for k, v in source.items()}
        try:
            weights.check(params, "weights")
        except weights.WeightsError as e:
            raise WeightFormatError(str(e)) from None
        name = "arrays"
    elif isinstance(source, (list, tuple)) and source and isinstance(source[0], fixedspec.QuantizedLayer):
        for q, s in zip(source, network.layer_shapes()):
            f = fabric.layers[s.layer.name]
            if q.name != s.layer.name or q.kernel.shape != s.weight_shape or q.bias.shape != s.bias_shape:
                raise WeightFormatError(f"layer {q.name} {q.kernel.shape}/{q.bias.shape} does not match "
                                        f"{s.layer.name} {s.weight_shape}/{s.bias_shape}")
            if q.formats != f:
                raise WeightFormatError(f"{q.name}: formats differ from those built into the fabric")
            for raw, fmt, what in ((q.kernel, f.kernel, "kernel"), (q.bias, f.bias, "bias")):
                if raw.min() < fmt.min_raw or raw.max() > fmt.max_raw:
                    raise WeightFormatError(f"{q.name}/{what}: raw values outside {fmt.ctype()}")
        if len(source) != len(network.LAYERS):
            raise WeightFormatError(f"{len(source)} layers, the network has {len(network.LAYERS)}")
        layers = list(source)
        return WeightSet(layers, "quantized layers", hls_stream.pack_weight_stream(layers))
    else:
        raise TypeError("weights must be a path (.npz or .bin), a dict of arrays or a list of QuantizedLayer")
    clipped = _saturated(params, fabric)
    if clipped and not allow_saturation:
        raise WeightFormatError(f"{name}: {'; '.join(clipped)} (they would saturate; pass allow_saturation=True to accept)")
    layers = fixedspec.quantize_params(params, fabric)
    return WeightSet(layers, name, hls_stream.pack_weight_stream(layers))


# ------------------------------------------------------------------------------ the overlay
def board_name() -> str | None:
    """This board's directory name under lenet5_pynq/overlays, from the PYNQ image ($BOARD or the
    device tree), or None off a board."""
    candidates = [os.environ.get("BOARD", "")]
    try:
        candidates.append(Path("/proc/device-tree/chosen/pynq_board").read_text().strip("\x00\n "))
    except OSError:
        pass
    for c in candidates:
        if c:
            try:
                return board_design.board(c).name
            except ValueError:
                continue
    return None


def default_bitfile(board: str | None = None) -> Path:
    """lenet5_pynq/overlays/<board>/lenet5.bit (with lenet5.hwh beside it)."""
    name = board_design.board(board).name if board else board_name()
    if name is None:
        raise OverlayNotFound("not on a PYNQ board ($BOARD and /proc/device-tree/chosen/pynq_board say nothing); "
                              "pass the board name or a bitstream path")
    bit = OVERLAYS_DIR / name / f"{board_design.OVERLAY_NAME}.bit"
    missing = [p.name for p in (bit, bit.with_suffix(".hwh")) if not p.is_file()]
    if missing:
        raise OverlayNotFound(f"{', '.join(missing)} missing in {bit.parent}: build the overlay for {name} "
                              "with overlay/ (see overlay/README.md) or install a package that ships it")
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
        Every wait ends after ``timeout_s + timeout_per_image_s * images`` seconds.
    download, device, **kwargs
        As for `pynq.Overlay`.
    """

    def __init__(self, bitfile=None, board=None, download=True, device=None, chunk_images=DEFAULT_CHUNK_IMAGES,
                 timeout_s=DEFAULT_TIMEOUT_S, timeout_per_image_s=DEFAULT_TIMEOUT_PER_IMAGE_S, **kwargs):
        bitfile = Path(bitfile) if bitfile is not None else default_bitfile(board)
        super().__init__(str(bitfile), download=download, device=device, **kwargs)
        for inst, vlnv in ((board_design.DMA_NAME, board_design.VLNV["axi_dma"]),
                           (board_design.ACCEL_NAME, board_design.VLNV["accel"])):
            found = self.ip_dict.get(inst, {}).get("type")
            if found != vlnv:
                raise RuntimeError(f"{bitfile}: expected IP {inst} of type {vlnv}, found {found or 'none'}; "
                                   "is this the lenet5 overlay?")
        self.lenet5_core = getattr(self, board_design.ACCEL_NAME)
        self.dma = AxiDma(self.ip_dict[board_design.DMA_NAME])
        self.spec = fabric_spec()
        self.logit_scale = self.spec.logits.scale
        self.weights_source = "power-on (shipped)"
        self.runner = StreamRunner(self.dma, self.lenet5_core, self.device, chunk_images, timeout_s, timeout_per_image_s)

    def download(self, dtbo=None):
        """Program the bitstream (a power-on: shipped weights, registers reset) and restart the
        DMA channels."""
        super().download(dtbo)
        runner = self.__dict__.get("runner")
        if runner is not None:
            runner.reset()
            self.weights_source = "power-on (shipped)"

    # ---------------------------------------------------------------- configuration
    @property
    def timeout_s(self) -> float:
        return self.runner.timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        self.runner.timeout_s = float(value)

    @property
    def timeout_per_image_s(self) -> float:
        return self.runner.timeout_per_image_s

    @timeout_per_image_s.setter
    def timeout_per_image_s(self, value: float) -> None:
        self.runner.timeout_per_image_s = float(value)

    @property
    def last_timing(self) -> CallTiming:
        """Timing of the last `classify` call (`CallTiming`)."""
        return self.runner.last_timing

    @property
    def fabric_clock_mhz(self) -> float:
        return float(self.ip_dict[board_design.ACCEL_NAME]["parameters"].get("CLOCK_MHZ", board_design.FABRIC_CLOCK_MHZ))

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
        ws = prepare_weights(source, spec, allow_saturation)
        beats = ws.beats
        words = beats[1:].view("<i2")[: hls_stream.weight_word_count()]
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
        """Free the DMA buffers."""
        self.runner.close()
