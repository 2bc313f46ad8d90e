"""Ten sample digits shipped with the package, so that classifying needs no data set.

Each sample is one MNIST test digit redrawn the way a user would photograph a handwritten one:
dark ink on light paper, four times larger, off-centre, with uneven light.  Classifying them
therefore goes through the whole of `preprocess`.  Run ``python -m lenet5_pynq.samples`` to
regenerate them (and their README) from the MNIST test set with the cpu backend.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from . import mnist, preprocess
from .backends import load_backend
from .sample_digits import DIGITS, SAMPLES_DIR

UPSCALE = 4  # 28 -> 112 pixels
CANVAS = 144  # paper around the upscaled digit, so that it can sit off-centre
PAPER_TOP = np.array([246, 242, 232], np.float32)  # cream, lit from above ...
PAPER_BOTTOM = np.array([222, 218, 206], np.float32)  # ... and a little darker below
INK = np.array([30, 34, 70], np.float32)  # blue-black ballpoint
# A sample is kept only if the network is this sure of it, both as MNIST has it and after
# the round trip through a photograph-like file, so that it survives retraining.
MIN_CONFIDENCE = 0.99
BATCH = 500
_RESAMPLING = getattr(Image, "Resampling", Image)  # Pillow 9.0 has only Image.BICUBIC and the like


def render(image: np.ndarray, digit: int) -> Image.Image:
    """An MNIST image (light ink on black) as a picture of ink on paper.

    Parameters
    ----------
    image
        uint8[28, 28] from MNIST.
    digit
        Its label; it only chooses where on the paper the digit sits, so each sample differs.

    Returns
    -------
    PIL.Image.Image
        RGB, CANVAS x CANVAS pixels.
    """
    size = image.shape[1] * UPSCALE, image.shape[0] * UPSCALE
    big = Image.fromarray(image).resize(size, _RESAMPLING.BICUBIC)
    ink = np.zeros((CANVAS, CANVAS), np.float32)
    spare = CANVAS - size[0]
    # Deterministic, different offsets per digit, never centred.
    top = (3 + 7 * digit) % spare
    left = (spare - 5 - 11 * digit) % spare
    ink[top : top + size[1], left : left + size[0]] = np.asarray(big, np.float32) / 255
    light = np.linspace(0, 1, CANVAS, dtype=np.float32)[:, None, None]
    paper = PAPER_TOP * (1 - light) + PAPER_BOTTOM * light
    pixels = paper * (1 - ink[..., None]) + INK * ink[..., None]
    return Image.fromarray(np.round(pixels).astype(np.uint8))


def choose(images: np.ndarray, labels: np.ndarray, backend) -> dict[int, int]:
    """For each digit, the first test index that is classified right and confidently.

    The test is applied to the MNIST image and to its rendered sample read back through
    `preprocess.to_mnist`.
    """
    chosen: dict[int, int] = {}
    for start in range(0, len(images), BATCH):
        batch = slice(start, start + BATCH)
        first = backend.predict(images[batch])
        confidence = first.probabilities().max(axis=1)
        for offset in np.flatnonzero((first.classes == labels[batch]) & (confidence >= MIN_CONFIDENCE)):
            index = start + int(offset)
            digit = int(labels[index])
            if digit in chosen:
                continue
            again = backend.predict(preprocess.to_mnist(render(images[index], digit)))
            if again.classes[0] == digit and again.probabilities()[0, digit] >= MIN_CONFIDENCE:
                chosen[digit] = index
        if len(chosen) == len(DIGITS):
            return chosen
    missing = sorted(set(DIGITS) - set(chosen))
    raise RuntimeError(f"no confidently classified test image for digit(s) {missing}")


def readme(chosen: dict[int, int]) -> str:
    """The samples' README: where they come from and under which license."""
    indices = ", ".join(f"{digit}: {chosen[digit]}" for digit in DIGITS)
    return (
        "# Sample digits\n\n"
        "`digit_0.png` ... `digit_9.png` are images from the MNIST test set (t10k), by Yann LeCun "
        "and Corinna Cortes, licensed under CC BY-SA 3.0 "
        "(https://creativecommons.org/licenses/by-sa/3.0/); these derived images are shared under "
        f"the same license.  Test-set index of each digit: {indices}.  They were redrawn as dark "
        "ink on light paper, four times larger and off-centre, by `python -m lenet5_pynq.samples`.\n"
    )


def main(argv=None) -> int:
    """Choose, render and write the ten samples and their README; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.samples", description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", type=Path, default=mnist.default_dir(), help="MNIST directory")
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR, help="where to write the samples")
    parser.add_argument("--backend", default="cpu", help="backend that judges the candidates")
    args = parser.parse_args(argv)
    try:
        images, labels = mnist.load(args.mnist, "test")
        with load_backend(args.backend) as backend:
            chosen = choose(images, labels, backend)
    # MnistFormatError is a ValueError; BackendUnavailable and "no candidate" are RuntimeErrors.
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for digit in DIGITS:
        path = args.out / f"digit_{digit}.png"
        render(images[chosen[digit]], digit).save(path, optimize=True)
        print(f"{path}: test image {chosen[digit]}, {path.stat().st_size} bytes")
    (args.out / "README.md").write_text(readme(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
