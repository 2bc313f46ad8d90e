"""Register models of the overlay's IP, and the streams between them.

Both register models decode their registers from the product guides' tables in `registers`
(PG021, UG1399), the board's own data: nothing here reads the overlay driver's constants.

* `AxiDmaModel`: the AXI DMA in simple mode as PG021 describes it: per channel DMACR (RS, Reset),
  DMASR (Halted, Idle, DMAIntErr, DMASlvErr, DMADecErr, IOC_Irq, Err_Irq), the address registers
  and LENGTH, whose write starts the transfer; S2MM's LENGTH holds the bytes received once the
  packet's TLAST arrives; an S2MM packet longer than the buffer is a DMAIntErr; errors halt the
  channel until a soft reset.  Registers written while halted are ignored, as in hardware.
* `Lenet5Model`: the accelerator's `ap_ctrl_hs` block-level control (ap_start held until
  ap_ready, ap_done and ap_ready clear on read, ap_idle) and its `n` and `mode` arguments; its
  datapath is the C-simulation library (`datapath`).  `mode` decodes as the HLS top
  (hls_src/lenet5.cpp) does: 1 loads weights, any other value classifies `n` images (nothing
  at all when `n` is 0).
* `ProgrammableLogic`: MM2S -> input stream (a FIFO of `IN_FIFO_BEATS`) -> accelerator ->
  output stream -> S2MM, advanced lazily on every register access.  An MM2S transfer completes
  only when the accelerator (or the FIFO) has taken its last beat, so a driver that waits for
  MM2S before starting the accelerator deadlocks here as it would on the board.

Reset wiring as in the block design: a DMA soft reset also resets the accelerator (its ap_rst_n
is the fabric reset AND the DMA's s2mm_prmry_reset_out_n); the weights stay in their memories.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import board_design, hls_stream
from . import registers as reg

IN_FIFO_BEATS = 64  # beats the DMA's MM2S buffer and the accelerator's input FIFO hold together
RESET_READS = 2  # DMACR.Reset reads 1 this many times before the reset completes

# ------------------------------------------------------------------ PG021, from `registers`
# offset -> (channel, register) for every register of the Direct Register Mode map
_DMA_DECODE = {offset: (name[:4], name[5:]) for name, offset in reg.PG021_DIRECT_REGISTER_MODE_MAP.items()}
_DMACR_RS = reg.DMACR.mask("RS")
_DMACR_RESET = reg.DMACR.mask("Reset")
_DMACR_WRITABLE = reg.DMACR.writable() & ~_DMACR_RESET  # Reset acts; it is not stored
_DMACR_FIXED = reg.DMACR.reset & ~reg.DMACR.writable()  # read-only bits (Reserved reads 1)
_DMASR_HALTED = reg.DMASR.mask("Halted")
_DMASR_IDLE = reg.DMASR.mask("Idle")
_DMASR_ERRORS = reg.DMASR.mask(*reg.PG021_DMASR_ERRORS)
_DMASR_INTERR = reg.DMASR.mask("DMAIntErr")
_DMASR_DECERR = reg.DMASR.mask("DMADecErr")
_DMASR_IOC_IRQ = reg.DMASR.mask("IOC_Irq")
_DMASR_ERR_IRQ = reg.DMASR.mask("Err_Irq")
_DMASR_W1C = sum(f.mask for f in reg.DMASR.fields if f.access == "R/WC")

# ------------------------------------------------------------------ UG1399, from `registers`
_CTRL = reg.CTRL
_AP_START, _AP_DONE, _AP_IDLE, _AP_READY, _AUTO_RESTART = (
    _CTRL.mask(n) for n in ("AP_START", "AP_DONE", "AP_IDLE", "AP_READY", "AUTO_RESTART")
)
_ISR = reg.IP_ISR
_REG_N = reg.lenet5_register("n").offset
_REG_MODE = reg.lenet5_register("mode").offset


class SimBusError(RuntimeError):
    """An access to an address no IP of the simulated block design decodes."""


@dataclass
class Faults:
    """Faults for the simulated board to inject, each consumed by the next run or transfer.

    stall : the accelerator's next run takes its input and never produces output; only a
        reset brings it back (a hung state machine).
    dma_error : {"MM2S"|"S2MM": DMASR bit}: the next transfer on that channel stops with that
        error bit, given as its mask or its PG021 name (e.g. ``"DMASlvErr"``).
    short_output : the next classify run ends its stream (TLAST) this many results early.
    """

    stall: bool = False
    dma_error: dict = field(default_factory=dict)
    short_output: int = 0

    def clear(self) -> None:
        self.stall = False
        self.dma_error.clear()
        self.short_output = 0


class _Channel:
    def __init__(self, name: str):
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.cr = reg.DMACR.reset
        self.sr = reg.DMASR.reset
        self.addr = 0
        self.addr_msb = 0
        self.length = 0
        self.active = False
        self.beats = None  # MM2S: the beats to send
        self.pos = 0  # MM2S beats sent / S2MM beats received
        self.address = 0


class AxiDmaModel:
    """The AXI DMA's registers (simple mode) and its two transfer engines."""

    def __init__(self, logic: ProgrammableLogic, params: dict):
        self.logic = logic
        p = {
            k.lower(): int(str(v), 0)
            for k, v in params.items()
            if str(v).lstrip("-").isdigit() or str(v).startswith("0x")
        }
        self.length_mask = (1 << p.get("c_sg_length_width", reg.PG021_DEFAULT_LENGTH_WIDTH)) - 1
        self.wide = p.get("c_addr_width", 32) > 32
        self.mm2s = _Channel("MM2S")
        self.s2mm = _Channel("S2MM")
        self.resetting = 0

    def _decode(self, offset: int):
        """(channel, PG021 register name without the channel) of an offset; reserved -> (None, None)."""
        name, register = _DMA_DECODE.get(offset, (None, None))
        return {"MM2S": self.mm2s, "S2MM": self.s2mm}.get(name), register

    # --------------------------------------------------------------- register access
    def read(self, offset: int) -> int:
        ch, register = self._decode(offset)
        if register == "DMACR":
            if self.resetting:
                self.resetting -= 1
                return ch.cr | _DMACR_RESET
            return ch.cr
        if register == "DMASR":
            return ch.sr
        if register in ("SA", "DA"):
            return ch.addr
        if register in ("SA_MSB", "DA_MSB"):
            return ch.addr_msb if self.wide else 0
        if register == "LENGTH":
            return ch.length
        return 0  # reserved

    def write(self, offset: int, value: int) -> None:
        ch, register = self._decode(offset)
        if register == "DMACR":
            if value & _DMACR_RESET:
                self.soft_reset()
                return
            if self.resetting:
                return
            ch.cr = (value & _DMACR_WRITABLE) | _DMACR_FIXED
            if value & _DMACR_RS:
                if not ch.sr & _DMASR_ERRORS:
                    ch.sr &= ~_DMASR_HALTED
            elif not ch.active:
                ch.sr |= _DMASR_HALTED
        elif register == "DMASR":
            ch.sr &= ~(value & _DMASR_W1C)
        elif register in ("SA", "DA"):
            ch.addr = value & 0xFFFF_FFFF
        elif register in ("SA_MSB", "DA_MSB"):
            if self.wide:
                ch.addr_msb = value & 0xFFFF_FFFF
        elif register == "LENGTH":
            self._start(ch, value & self.length_mask)

    # --------------------------------------------------------------- transfers
    def soft_reset(self) -> None:
        """DMACR.Reset: both channels to their reset state, in-flight data dropped, and the
        accelerator reset through s2mm_prmry_reset_out_n."""
        self.mm2s.reset()
        self.s2mm.reset()
        self.resetting = RESET_READS
        self.logic.on_dma_reset()

    def _error(self, ch: _Channel, bit: int) -> None:
        ch.active = False
        ch.sr |= bit | _DMASR_ERR_IRQ | _DMASR_HALTED
        ch.cr &= ~_DMACR_RS

    def complete(self, ch: _Channel) -> None:
        ch.active = False
        ch.sr |= _DMASR_IDLE | _DMASR_IOC_IRQ
        if not ch.cr & _DMACR_RS:
            ch.sr |= _DMASR_HALTED

    def _start(self, ch: _Channel, nbytes: int) -> None:
        if self.resetting or ch.sr & _DMASR_HALTED or ch.active:
            return  # PG021: LENGTH is only acted on by a running, idle channel
        ch.length = nbytes
        ch.sr &= ~_DMASR_IDLE
        if nbytes == 0:
            self._error(ch, _DMASR_INTERR)
            return
        bit = self.logic.faults.dma_error.pop(ch.name, None)
        if bit:
            self._error(ch, reg.DMASR.mask(bit) if isinstance(bit, str) else bit)
            return
        address = ch.addr | (ch.addr_msb << 32 if self.wide else 0)
        memory = self.logic.memory
        if not memory.decodes(address, nbytes):
            self._error(ch, _DMASR_DECERR)
            return
        ch.address = address
        ch.pos = 0
        ch.active = True
        if ch is self.mm2s:
            data = memory.read(address, nbytes)
            padded = np.zeros(-(-nbytes // 8) * 8, np.uint8)
            padded[:nbytes] = data
            ch.beats = padded.view("<u8")
        self.logic.advance()


class Lenet5Model:
    """The accelerator: ap_ctrl_hs control and a datapath that is the C-simulation library."""

    def __init__(self, logic: ProgrammableLogic):
        self.logic = logic
        self.reset()

    def reset(self) -> None:
        self.start = False  # int_ap_start
        self.auto_restart = False
        self.done = False
        self.ready = False
        self.regs = {r.offset: r.reset for r in reg.LENET5_REGISTERS if r is not _CTRL}
        self.state = "idle"  # idle | reading | draining | hung
        self.need = 0
        self.got = []
        self.out = None
        self.last = None
        self.out_pos = 0
        self.mode = 0
        self.n = 0
        self.runs = 0

    @property
    def idle(self) -> bool:
        return self.state == "idle"

    @property
    def _loading(self) -> bool:
        # hls_src/lenet5.cpp: `if (mode == kModeLoadWeights) load_weights(...); else if (n != 0)
        # classify(...);` -- every mode but 1 classifies, over the register's 32 bits.
        return self.mode == hls_stream.MODE_LOAD_WEIGHTS

    def read(self, offset: int) -> int:
        if offset == _CTRL.offset:
            value = (
                _AP_START * self.start
                | _AP_DONE * self.done
                | _AP_IDLE * self.idle
                | _AP_READY * self.ready
                | _AUTO_RESTART * self.auto_restart
            )
            self.done = self.ready = False  # clear on read
            return value
        return self.regs.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if offset == _CTRL.offset:
            if value & _AP_START:
                self.start = True
            self.auto_restart = bool(value & _AUTO_RESTART)
        elif offset == _ISR.offset:
            self.regs[offset] ^= value & _ISR.mask("CHAN0_INT_ST", "CHAN1_INT_ST")  # toggle on write
        elif offset in self.regs:
            self.regs[offset] = value & 0xFFFF_FFFF

    def step(self) -> bool:
        """One step of progress; True if anything changed."""
        f = self.logic
        if self.state == "idle":
            if not self.start:
                return False
            self.n = self.regs[_REG_N]
            self.mode = self.regs[_REG_MODE]
            if self._loading:
                self.need = hls_stream.weight_stream_beats()
            else:
                self.need = self.n * hls_stream.IN_BEATS_PER_IMAGE
            self.got = []
            self.state = "hung" if f.faults.stall else "reading"
            f.faults.stall = False
            self.runs += 1
            return True
        if self.state in ("reading", "hung") and self.need:
            taken = f.take_input(self.need)
            if taken is None:
                return False
            self.got.append(taken)
            self.need -= len(taken)
            return True
        if self.state == "reading":
            self._compute()
            return True
        if self.state == "draining" and self.out_pos >= len(self.out):
            self.state = "idle"
            self.done = self.ready = True
            if not self.auto_restart:
                self.start = False
            return True
        return False

    def _compute(self) -> None:
        f = self.logic
        beats = np.concatenate(self.got) if self.got else np.zeros(0, np.uint64)
        self.got = []
        cap = 1 if self._loading else self.n * hls_stream.OUT_BEATS_PER_IMAGE
        if cap or len(beats):
            out, last = f.run_top(self.mode, self.n, beats, cap)
        else:
            out, last = np.zeros(0, np.uint64), np.zeros(0, bool)
        if not self._loading and f.faults.short_output and len(out):
            drop = min(f.faults.short_output, self.n) * hls_stream.OUT_BEATS_PER_IMAGE
            f.faults.short_output = 0
            out, last = out[: len(out) - drop], last[: len(out) - drop].copy()
            if len(last):
                last[-1] = True
        self.out, self.last, self.out_pos = out, last, 0
        self.state = "draining"


class ProgrammableLogic:
    """The programmable logic of the simulated board: the DMA, the accelerator and the streams."""

    def __init__(self, board, memory, faults: Faults, dma_params: dict, runner):
        self.board = board
        self.memory = memory
        self.faults = faults
        self._runner = runner  # (mode, n, beats, cap) -> (out beats, TLAST flags) on the csim library
        self.dma = AxiDmaModel(self, dma_params)
        self.accel = Lenet5Model(self)
        self.in_fifo: list[np.ndarray] = []
        self.in_level = 0
        dma_base, dma_size = board.addresses[board_design.DMA_NAME]
        acc_base, acc_size = board.addresses[board_design.ACCEL_NAME]
        self._windows = [(dma_base, dma_size, self.dma), (acc_base, acc_size, self.accel)]

    # ----------------------------------------------------------------- bus
    def decode(self, address: int):
        for base, size, model in self._windows:
            if base <= address < base + size:
                return model, address - base
        raise SimBusError(f"no IP at address 0x{address:08x} in the simulated {self.board.name} block design")

    def read(self, address: int) -> int:
        model, offset = self.decode(address)
        self.advance()
        return model.read(offset)

    def write(self, address: int, value: int) -> None:
        model, offset = self.decode(address)
        model.write(offset, value)
        self.advance()

    # ----------------------------------------------------------------- streams
    def on_dma_reset(self) -> None:
        self.in_fifo.clear()
        self.in_level = 0
        self.accel.reset()

    def take_input(self, need: int):
        """Up to `need` beats from the input stream, or None when it is empty."""
        if not self.in_level:
            return None
        parts, got = [], 0
        while self.in_fifo and got < need:
            seg = self.in_fifo[0]
            k = min(len(seg), need - got)
            parts.append(seg[:k])
            got += k
            if k == len(seg):
                self.in_fifo.pop(0)
            else:
                self.in_fifo[0] = seg[k:]
        self.in_level -= got
        return np.concatenate(parts)

    def run_top(self, mode, n, beats, cap):
        return self._runner(mode, n, beats, cap)

    def _mm2s_step(self) -> bool:
        ch = self.dma.mm2s
        if not ch.active:
            return False
        room = IN_FIFO_BEATS - self.in_level
        if room <= 0:
            return False
        k = min(room, len(ch.beats) - ch.pos)
        if k:
            self.in_fifo.append(ch.beats[ch.pos : ch.pos + k])
            self.in_level += k
            ch.pos += k
        if ch.pos >= len(ch.beats):
            self.dma.complete(ch)
        return True

    def _s2mm_step(self) -> bool:
        ch, acc = self.dma.s2mm, self.accel
        if not ch.active or acc.state != "draining" or acc.out_pos >= len(acc.out):
            return False
        capacity = ch.length // 8 - ch.pos
        pending = acc.out[acc.out_pos :]
        lasts = np.flatnonzero(acc.last[acc.out_pos :])
        packet = int(lasts[0]) + 1 if len(lasts) else len(pending)
        k = min(capacity, packet)
        if k:
            self.memory.write(ch.address + ch.pos * 8, pending[:k].view(np.uint8))
            ch.pos += k
            acc.out_pos += k
        if k == packet and len(lasts):
            ch.length = ch.pos * 8  # S2MM_LENGTH: the bytes actually received
            self.dma.complete(ch)
        elif ch.pos * 8 + 8 > ch.length:
            self.dma._error(ch, _DMASR_INTERR)  # the packet is longer than the buffer
        return True

    def advance(self) -> None:
        """Move data and run the accelerator until nothing changes."""
        for _ in range(1_000_000):
            progressed = self._mm2s_step()
            progressed |= self.accel.step()
            progressed |= self._s2mm_step()
            if not progressed:
                return
        raise RuntimeError("the simulated programmable logic did not settle")
