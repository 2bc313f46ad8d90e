"""The `DefaultIP` driver of the LeNet-5 HLS accelerator (its register map: `lenet5_pynq.regmap`)."""

from __future__ import annotations

from pynq import DefaultIP

from .. import board_design, hls_config
from ..regmap import AP_AUTO_RESTART, AP_DONE, AP_IDLE, AP_READY, AP_START, REGISTERS  # noqa: F401 - re-exported

REG_CTRL = REGISTERS["CTRL"]
REG_N = REGISTERS["N"]
REG_MODE = REGISTERS["MODE"]


class LeNet5Core(DefaultIP):
    """Driver of the LeNet-5 HLS accelerator (`ap_ctrl_hs` control, arguments `n` and `mode`).

    The register offsets are `REGISTERS`; the constructor checks them against the
    register map in the overlay's metadata, so a bitstream built from other sources is refused
    instead of misdriven.  The last written `n` and `mode` are remembered so that a call writes
    only what changed; `forget()` drops them after a reset (which zeroes the registers).
    """

    bindto = [hls_config.VLNV]  # noqa: RUF012 - pynq reads the class attribute of every DefaultIP driver

    def __init__(self, description):
        super().__init__(description=description)
        registers = description.get("registers") or {}
        for key, offset in REGISTERS.items():
            name = board_design.ACCEL_REGISTER_NAMES[key]
            for candidate in (name, f"{name}_V"):
                if candidate in registers and registers[candidate]["address_offset"] != offset:
                    raise RuntimeError(
                        f"{description.get('fullpath', 'accelerator')}: register {candidate} is at "
                        f"0x{registers[candidate]['address_offset']:x} in the overlay, the driver expects 0x{offset:x}; "
                        "the bitstream was built from other HLS sources"
                    )
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
