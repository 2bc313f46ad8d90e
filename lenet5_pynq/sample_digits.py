"""The ten sample digits shipped with the package (lenet5_pynq/data/samples/digit_0.png ...
digit_9.png, with their README), so that classifying needs no data set.  `samples` is the
command that makes them."""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "samples"
DIGITS = range(10)


def paths() -> list[Path]:
    """The shipped sample files, ``digit_0.png`` ... ``digit_9.png``, in digit order."""
    return sorted(SAMPLES_DIR.glob("digit_*.png"))
