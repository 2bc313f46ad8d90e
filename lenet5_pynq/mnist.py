"""Reader for the MNIST IDX files, in a directory laid out as Keras and torchvision cache them.

Never downloads: the caller names the directory (tests use ../shared/mnist).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
SPLITS = {"train": ("train-images", "train-labels"), "test": ("t10k-images", "t10k-labels")}
ENV_VAR = "LENET5_MNIST"


class MnistFormatError(ValueError):
    """An IDX file is missing, truncated or not what its name says."""


def default_dir() -> Path | None:
    """$LENET5_MNIST, or ../shared/mnist beside a source checkout, or None."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[2] / "shared" / "mnist"
    return beside if beside.is_dir() else None


def _find(directory: Path, stem: str, kind: str) -> Path:
    for name in (f"{stem}-{kind}", f"{stem}.{kind}"):
        for suffix in ("", ".gz"):
            path = directory / (name + suffix)
            if path.is_file():
                return path
    raise MnistFormatError(f"{directory}: no {stem}-{kind}[.gz] file")


def _read_idx(path: Path, magic: int, dims: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # gzip raises both on a damaged stream
        raise MnistFormatError(f"{path}: cannot read ({e})") from None
    header = 4 + 4 * dims
    if len(data) < header:
        raise MnistFormatError(f"{path}: {len(data)} bytes, shorter than the {header}-byte header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise MnistFormatError(f"{path}: magic number 0x{found:08x}, expected 0x{magic:08x}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise MnistFormatError(f"{path}: {len(data)} bytes, header {shape} needs {expected}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def load(directory: str | os.PathLike | None = None, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Images uint8[N, 28, 28] and labels uint8[N] of one split ("train" or "test")."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    if directory is None:
        directory = default_dir()
        if directory is None:
            raise MnistFormatError(f"no MNIST directory given and ${ENV_VAR} is not set")
    directory = Path(directory)
    if not directory.is_dir():
        raise MnistFormatError(f"{directory}: not a directory")
    image_stem, label_stem = SPLITS[split]
    images = _read_idx(_find(directory, image_stem, "idx3-ubyte"), IMAGES_MAGIC, 3)
    labels = _read_idx(_find(directory, label_stem, "idx1-ubyte"), LABELS_MAGIC, 1)
    if images.shape[1:] != (28, 28):
        raise MnistFormatError(f"{directory}: {split} images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise MnistFormatError(f"{directory}: {len(images)} {split} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise MnistFormatError(f"{directory}: {split} label {labels.max()} out of range 0..9")
    return images, labels
