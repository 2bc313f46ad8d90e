"""The AXI DMA in simple mode (PG021 v7.1), driven through its registers with a deadline on every
wait and a soft reset through DMACR.

pynq's own `pynq.lib.dma.DMA` spins without a timeout in `wait()`, `start()` and `stop()` and has
no reset call, so a stalled stream hangs the Python process; this driver never waits without a
deadline.
"""

from __future__ import annotations

import time

from pynq import MMIO

from .. import board_design, hls_stream
from .errors import DmaTimeout

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
    DMASR_HALTED: "Halted",
    DMASR_IDLE: "Idle",
    DMASR_SGINCLD: "SGIncld",
    DMASR_DMAINTERR: "DMAIntErr",
    DMASR_DMASLVERR: "DMASlvErr",
    DMASR_DMADECERR: "DMADecErr",
    DMASR_IOC_IRQ: "IOC_Irq",
    DMASR_DLY_IRQ: "Dly_Irq",
    DMASR_ERR_IRQ: "Err_Irq",
}


def describe_status(status: int) -> str:
    """DMASR bits by their PG021 names, e.g. ``0x00004011 (Halted|DMAIntErr|Err_Irq)``."""
    names = [name for bit, name in DMASR_BITS.items() if status & bit]
    return f"0x{status:08x} ({'|'.join(names) or 'running, busy'})"


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
            raise ValueError(
                f"{self.name}: a transfer of {nbytes} bytes is outside 1..{self.max_bytes} (c_sg_length_width)"
            )
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
            raise RuntimeError(
                f"{where}: the overlay metadata carries no DMA parameters; a .hwh beside the .bit is needed"
            )

        def param(name, default=None):
            if name not in params:
                if default is None:
                    raise RuntimeError(f"{where}: parameter {name} missing from the overlay metadata")
                return default
            return int(str(params[name]), 0)

        if param("c_include_sg", 0):
            raise RuntimeError(
                f"{where}: scatter-gather is enabled; this driver needs the DMA in simple mode (c_include_sg 0)"
            )
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
                raise DmaTimeout(
                    "AXI DMA soft reset did not complete (MM2S_DMACR.Reset still 1); reload the overlay",
                    channel="MM2S",
                    status=self.mm2s.status,
                )
        self.start(deadline)

    def start(self, deadline: float) -> None:
        """Set DMACR.RS on both channels and wait for DMASR.Halted to clear."""
        for ch in (self.mm2s, self.s2mm):
            ch.run()
        for ch in (self.mm2s, self.s2mm):
            while ch.status & DMASR_HALTED:
                if time.monotonic() > deadline:
                    raise DmaTimeout(
                        f"{ch.name} stays halted after DMACR.RS was set: DMASR {describe_status(ch.status)}",
                        channel=ch.name,
                        status=ch.status,
                    )
