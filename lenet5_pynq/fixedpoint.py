"""Exact numpy emulation of Vitis HLS `ap_fixed` / `ap_ufixed` quantization and overflow modes.

Values are carried as raw integers (int64): the real value of raw r in a format with F fraction
bits is r * 2**-F.  The two operations a fixed-point datapath performs are emulated bit for bit:

* `from_float`: constructing an ap_fixed from a double (quantize, then handle overflow);
* `cast`: assigning an ap_fixed with F fraction bits (any width) to a narrower format.

tests/test_fixedpoint.py checks both against ap_fixed itself, compiled by g++ with the ap_types
headers from the hls4ml wheel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

ROUNDING_MODES = ("AP_TRN", "AP_TRN_ZERO", "AP_RND", "AP_RND_ZERO", "AP_RND_MIN_INF", "AP_RND_INF", "AP_RND_CONV")
SATURATION_MODES = ("AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM")
MAX_WIDTH = 62  # raw values and their intermediate sums stay inside int64


@dataclass(frozen=True)
class FixedFormat:
    """ap_fixed<width, int_bits, rounding, saturation> (ap_ufixed when signed is False)."""

    width: int
    int_bits: int
    signed: bool = True
    rounding: str = "AP_TRN"
    saturation: str = "AP_WRAP"

    def __post_init__(self):
        if not 1 <= self.width <= MAX_WIDTH:
            raise ValueError(f"width {self.width} outside 1..{MAX_WIDTH}")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"unknown rounding mode {self.rounding!r}; one of {ROUNDING_MODES}")
        if self.saturation not in SATURATION_MODES:
            raise ValueError(f"unknown saturation mode {self.saturation!r}; one of {SATURATION_MODES}")

    @property
    def frac_bits(self) -> int:
        return self.width - self.int_bits

    @property
    def min_raw(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_raw(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def scale(self) -> float:
        """Real value of one raw step."""
        return 2.0**-self.frac_bits

    def ctype(self) -> str:
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{kind}<{self.width}, {self.int_bits}, {self.rounding}, {self.saturation}>"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FixedFormat:
        return cls(**d)


def _shift_round(raw: np.ndarray, shift: int, mode: str) -> np.ndarray:
    """raw * 2**-shift rounded to an integer by `mode` (shift >= 1)."""
    floor = raw >> shift
    rem = raw - (floor << shift)  # 0 <= rem < 2**shift
    half = 1 << (shift - 1)
    if mode == "AP_TRN":
        return floor
    if mode == "AP_TRN_ZERO":
        return floor + ((rem != 0) & (raw < 0))
    above, tie = rem > half, rem == half
    if mode == "AP_RND":
        up = rem >= half
    elif mode == "AP_RND_ZERO":
        up = above | (tie & (raw < 0))
    elif mode == "AP_RND_MIN_INF":
        up = above
    elif mode == "AP_RND_INF":
        up = above | (tie & (raw >= 0))
    elif mode == "AP_RND_CONV":
        up = above | (tie & ((floor & 1) == 1))
    else:
        raise ValueError(f"unknown rounding mode {mode!r}")
    return floor + up


def _overflow(raw: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    lo, hi = fmt.min_raw, fmt.max_raw
    mode = fmt.saturation
    if mode == "AP_WRAP":
        wrapped = raw & ((1 << fmt.width) - 1)
        if fmt.signed:
            wrapped = np.where(wrapped > hi, wrapped - (1 << fmt.width), wrapped)
        return wrapped
    if mode == "AP_SAT":
        return np.clip(raw, lo, hi)
    if mode == "AP_SAT_ZERO":
        return np.where((raw < lo) | (raw > hi), 0, raw)
    if mode == "AP_SAT_SYM":
        return np.clip(raw, -hi if fmt.signed else lo, hi)
    raise ValueError(f"unknown saturation mode {mode!r}")


def cast(raw, frac_bits: int, fmt: FixedFormat) -> np.ndarray:
    """Assign fixed-point values (raw integers with `frac_bits` fraction bits) to `fmt`."""
    raw = np.asarray(raw, dtype=np.int64)
    shift = frac_bits - fmt.frac_bits
    if shift > 0:
        raw = _shift_round(raw, shift, fmt.rounding)
    elif shift < 0:
        raw = raw << -shift
    return _overflow(raw, fmt)


def from_float(values, fmt: FixedFormat) -> np.ndarray:
    """Raw integers of `fmt` for float values, as ap_fixed's constructor from double gives them."""
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize NaN or infinity")
    # Scaling by a power of two is exact; split into integer and fraction parts exactly.
    scaled = np.ldexp(x, fmt.frac_bits)
    floor = np.floor(scaled)
    frac = scaled - floor  # exact, in [0, 1)
    mode = fmt.rounding
    if mode == "AP_TRN":
        up = np.zeros_like(frac, dtype=bool)
    elif mode == "AP_TRN_ZERO":
        up = (frac != 0) & (scaled < 0)
    else:
        above, tie = frac > 0.5, frac == 0.5
        up = {
            "AP_RND": frac >= 0.5,
            "AP_RND_ZERO": above | (tie & (scaled < 0)),
            "AP_RND_MIN_INF": above,
            "AP_RND_INF": above | (tie & (scaled >= 0)),
            "AP_RND_CONV": above | (tie & (np.fmod(floor, 2) != 0)),
        }[mode]
    rounded = floor + up
    # Wrapping needs the exact integer; values far outside int64 only matter for saturation.
    limit = float(1 << MAX_WIDTH)
    if fmt.saturation == "AP_WRAP" and np.any(np.abs(rounded) >= limit):
        raise ValueError(f"value too large to wrap into {fmt.ctype()}")
    rounded = np.clip(rounded, -limit, limit)
    return _overflow(rounded.astype(np.int64), fmt)


def bits_for(max_abs: float, signed: bool = True) -> int:
    """Integer bits (sign included when signed) that hold magnitudes up to max_abs."""
    if max_abs <= 0:
        return 1 if signed else 0
    whole = int(np.floor(np.log2(max_abs))) + 1  # 2**(whole-1) <= max_abs < 2**whole
    return whole + (1 if signed else 0)
