"""`SimBoard`, a `pynq.Device` whose programmable logic is simulated: the real `pynq.Overlay`,
`pynq.allocate`, `pynq.MMIO` and `pynq.lib.dma.DMA` run against it unchanged.

* Registers: the device declares the REGISTER_RW capability, so every `MMIO` access arrives at
  `read_registers` / `write_registers` and is decoded with the block design's address map
  (`lenet5_pynq.board_design`) to the register models of `models`, whose registers are the
  product guides' tables in `registers`.
* Memory: `allocate` returns `pynq.PynqBuffer`s at simulated physical addresses.  A cacheable
  buffer has a separate "DDR" copy that only `flush` updates and only `invalidate` reads back,
  so a driver that forgets cache maintenance sees stale data here as it might on the board.
* Bitstream: the board writes its own `lenet5.bit` (a marker file) and `lenet5.hwh` (`hwh`)
  into a private temporary directory; `download` of that file "configures" the programmable
  logic: registers in their reset state, the power-on (shipped) weights.
"""

from __future__ import annotations

import atexit
import bisect
import os
import shutil
import struct
import tempfile
import weakref
from pathlib import Path

import numpy as np
from pynq.buffer import PynqBuffer
from pynq.pl_server.device import Device

from .. import board_design
from . import datapath, hwh
from .models import Faults, ProgrammableLogic

ENV_BOARD = "LENET5_PYNQ_SIMBOARD"  # set to a board name to make pynq probe a SimBoard
BIT_MAGIC = b"lenet5-pynq simulated bitstream\n"
PAGE = 4096


class _Region:
    __slots__ = ("address", "ddr", "host", "nbytes")

    def __init__(self, address, nbytes, host, ddr):
        self.address, self.nbytes, self.host, self.ddr = address, nbytes, host, ddr


class SimMemory:
    """Physically contiguous buffers at simulated addresses, with a model of the CPU cache."""

    def __init__(self, base: int):
        self._next = base
        self._regions: dict[int, _Region] = {}
        self._starts: list[int] = []
        self._by_start: dict[int, int] = {}
        self._bo = 0

    def allocate(self, device, shape, dtype, cacheable=True) -> PynqBuffer:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = max(nbytes, 1)
        address = self._next
        self._next += -(-size // PAGE) * PAGE
        host = np.zeros(size, np.uint8)
        ddr = np.zeros(size, np.uint8) if cacheable else host
        self._bo += 1
        bo = self._bo
        self._regions[bo] = _Region(address, size, host, ddr)
        bisect.insort(self._starts, address)
        self._by_start[address] = bo
        buf = PynqBuffer(
            shape, dtype, buffer=host, device=device, device_address=address, bo=bo, coherent=not cacheable
        )
        weakref.finalize(buf, self._free, bo)
        return buf

    def _free(self, bo: int) -> None:
        region = self._regions.pop(bo, None)
        if region is not None:
            self._starts.remove(region.address)
            del self._by_start[region.address]

    def _find(self, address: int, nbytes: int):
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        region = self._regions[self._by_start[self._starts[i]]]
        if address + nbytes > region.address + region.nbytes:
            return None
        return region

    def decodes(self, address: int, nbytes: int) -> bool:
        return self._find(address, nbytes) is not None

    def read(self, address: int, nbytes: int) -> np.ndarray:
        region = self._find(address, nbytes)
        off = address - region.address
        return region.ddr[off : off + nbytes].copy()

    def write(self, address: int, data: np.ndarray) -> None:
        region = self._find(address, len(data))
        off = address - region.address
        region.ddr[off : off + len(data)] = data

    def flush(self, bo, offset, nbytes) -> None:
        r = self._regions[bo]
        if r.ddr is not r.host:
            r.ddr[offset : offset + nbytes] = r.host[offset : offset + nbytes]

    def invalidate(self, bo, offset, nbytes) -> None:
        r = self._regions[bo]
        if r.ddr is not r.host:
            r.host[offset : offset + nbytes] = r.ddr[offset : offset + nbytes]


class SimBoard(Device):
    """A simulated PYNQ board carrying the LeNet-5 overlay.

    Parameters
    ----------
    board : str
        One of `lenet5_pynq.board_design.BOARDS` (address map, PS type, DMA configuration).
    memory_base : int, optional
        Physical address of the first buffer; Zynq UltraScale+ boards default to one above
        4 GB so that the DMA's upper address registers are exercised.

    Attributes
    ----------
    faults : models.Faults
        Faults to inject into the next run or transfer.
    bitfile : Path
        The board's own ``lenet5.bit`` (with ``lenet5.hwh`` beside it) for `pynq.Overlay`.
    """

    _probe_priority_ = 700

    @classmethod
    def _probe_(cls):
        name = os.environ.get(ENV_BOARD)
        return [cls(name)] if name else []

    def __init__(self, board: str = board_design.DEFAULT_BOARD, memory_base: int | None = None):
        self.board = board_design.board(board)
        super().__init__(f"lenet5_simboard_{self.board.name}")
        self.name = f"simulated {self.board.name} ({board_design.OVERLAY_NAME})"
        self.capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False, "CALLABLE": False}
        if memory_base is None:
            memory_base = 0x8_0000_0000 if self.board.dma_address_width > 32 else 0x1800_0000
        self.memory = SimMemory(memory_base)
        self.faults = Faults()
        self.timestamp = None
        self.bitfile_name = None
        self.weight_stream = None  # the last weight set loaded through mode 1 (None: power-on)
        self.pl = None  # the ProgrammableLogic while a bitstream is loaded
        self._dir = Path(tempfile.mkdtemp(prefix=f"lenet5-simboard-{self.board.name}-"))
        atexit.register(shutil.rmtree, self._dir, True)
        self.bitfile = self._dir / f"{board_design.OVERLAY_NAME}.bit"
        self.bitfile.write_bytes(BIT_MAGIC + self.board.name.encode() + b"\n")
        self.bitfile.with_suffix(".hwh").write_text(hwh.render(self.board.name))
        datapath.check_library()  # raises BackendUnavailable without the csim library

    def __repr__(self):
        return f"<SimBoard {self.board.name}>"

    # ----------------------------------------------------------- bitstreams
    def get_bitfile_metadata(self, bitfile_name, partial=False):
        return hwh.parse(Path(bitfile_name).with_suffix(".hwh"))

    def download(self, bitstream, parser=None):
        data = Path(bitstream.bitfile_name).read_bytes()
        if not data.startswith(BIT_MAGIC):
            raise RuntimeError(f"{bitstream.bitfile_name} is not a simulated-board bitstream")
        name = data[len(BIT_MAGIC) :].decode().strip()
        if name != self.board.name:
            raise RuntimeError(f"{bitstream.bitfile_name} was made for {name}, this board is {self.board.name}")
        dma = parser.ip_dict[board_design.DMA_NAME]["parameters"]
        self.weight_stream = None
        self.pl = ProgrammableLogic(self.board, self.memory, self.faults, dma, self._run_top)
        self.post_download(bitstream, parser, self.name)

    def gen_cache(self, bitstream, parser=None):
        pass

    def _run_top(self, mode, n, beats, cap):
        out, last, self.weight_stream = datapath.run(self.weight_stream, mode, n, beats, cap)
        return out, last

    # ----------------------------------------------------------- registers
    def _pl(self) -> ProgrammableLogic:
        if self.pl is None:
            raise RuntimeError(f"{self}: no bitstream downloaded; the programmable logic is empty")
        return self.pl

    def read_registers(self, address, length):
        pl = self._pl()
        words = [pl.read(address + i) for i in range(0, length, 4)]
        return struct.pack(f"<{len(words)}I", *(w & 0xFFFF_FFFF for w in words))[:length]

    def write_registers(self, address, data):
        pl = self._pl()
        data = bytes(data)
        if len(data) % 4:
            data += b"\x00" * (4 - len(data) % 4)
        for i, (word,) in enumerate(struct.iter_unpack("<I", data)):
            pl.write(address + 4 * i, word)

    # ----------------------------------------------------------- memory
    def allocate(self, shape, dtype, cacheable=True, **kwargs):
        """A `PynqBuffer` at a simulated physical address (cacheable by default, as on Zynq)."""
        return self.memory.allocate(self, shape, dtype, cacheable=bool(cacheable))

    @property
    def default_memory(self):
        return self

    def flush(self, bo, offset, ptr, size):
        self.memory.flush(bo, offset, size)

    def invalidate(self, bo, offset, ptr, size):
        self.memory.invalidate(bo, offset, size)

    def activate(self) -> SimBoard:
        """Make this board pynq's active device (for code that calls `pynq.allocate()` or
        `pynq.Overlay()` without a device)."""
        Device.active_device = self
        return self
