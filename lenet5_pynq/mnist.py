"""Reader for the MNIST IDX files, in a directory laid out as Keras and torchvision cache them.

Never downloads: the caller names the directory, else $LENET5_MNIST, else ../shared/mnist relative
to the working directory (where the tests find it, run from the repository's root).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
SPLITS = {"train": ("train-images", "train-labels"), "test": ("t10k-images", "t10k-labels")}
ENV_VAR = "LENET5_MNIST"
DEFAULT_DIR = Path("..", "shared", "mnist")  # relative to the working directory, not to the package


class MnistFormatError(ValueError):
    """An IDX file is missing, truncated or not what its name says."""


def default_dir() -> Path | None:
    """$LENET5_MNIST, or ../shared/mnist of the working directory (as an absolute path), or None.
    Never beside the package: installed, that is site-packages."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    here = DEFAULT_DIR.resolve()
    return here if here.is_dir() else None


def _find(directory: Path, stem: str, kind: str) -> Path:
    for name in (f"{stem}-{kind}", f"{stem}.{kind}"):
        for suffix in ("", ".gz"):
            path = directory / (name + suffix)
            if path.is_file():
                return path
    raise MnistFormatError(f"{directory}: no {stem}-{kind}[.gz] file")


# Deflate cannot expand data more than about 1032:1, so a .gz file of S bytes holds at most
# this many times S: a header that needs more is a lie, refused before anything is allocated.
DEFLATE_MAX_RATIO = 1032
_READ_CHUNK = 1 << 22


def _read_idx(path: Path, magic: int, dims: int, item_shape: tuple | None = None) -> np.ndarray:
    """The array of one IDX file.  The header is checked before the payload is allocated: its
    dimensions (as exact integers, so no product overflows) against the file's real size (for
    .gz, against what the compressed size can hold), the item shape, and at least one item;
    decompression stops one byte past the size the header implies."""
    gz = path.suffix == ".gz"
    header_len = 4 + 4 * dims
    try:
        size = path.stat().st_size
        with (gzip.open if gz else open)(path, "rb") as f:
            head = f.read(header_len)
            if len(head) < header_len:
                raise MnistFormatError(f"{path}: {len(head)} bytes, shorter than the {header_len}-byte header")
            found = int.from_bytes(head[:4], "big")
            if found != magic:
                raise MnistFormatError(f"{path}: magic number 0x{found:08x}, expected 0x{magic:08x}")
            shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
            if item_shape is not None and shape[1:] != tuple(item_shape):
                raise MnistFormatError(f"{path}: items are {shape[1:]}, expected {tuple(item_shape)}")
            if shape[0] == 0:
                raise MnistFormatError(f"{path}: the header says 0 items; an empty data set cannot be used")
            payload = 1
            for d in shape:
                payload *= d  # Python ints: exact, whatever the header says
            expected = header_len + payload
            if not gz and size != expected:
                raise MnistFormatError(f"{path}: {size} bytes, header {shape} needs {expected}")
            if gz and payload > DEFLATE_MAX_RATIO * size:
                raise MnistFormatError(
                    f"{path}: header {shape} needs {expected} bytes, more than a {size}-byte gzip file can hold"
                )
            data = np.empty(payload, np.uint8)
            view = memoryview(data)
            got = 0
            while got < payload:
                n = f.readinto(view[got : got + _READ_CHUNK])
                if not n:
                    break
                got += n
            if got != payload:
                raise MnistFormatError(f"{path}: {header_len + got} bytes, header {shape} needs {expected}")
            if f.read(1):
                raise MnistFormatError(f"{path}: longer than the {expected} bytes its header {shape} implies")
    except MnistFormatError:
        raise
    except (OSError, EOFError, zlib.error) as e:  # gzip raises all of these on a damaged stream
        raise MnistFormatError(f"{path}: cannot read ({e})") from None
    return data.reshape(shape)


def load(directory: str | os.PathLike | None = None, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Images uint8[N, 28, 28] and labels uint8[N] of one split ("train" or "test")."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    if directory is None:
        directory = default_dir()
        if directory is None:
            raise MnistFormatError(
                f"no MNIST directory given, ${ENV_VAR} is not set and there is no {DEFAULT_DIR} in {Path.cwd()}"
            )
    directory = Path(directory)
    if not directory.is_dir():
        raise MnistFormatError(f"{directory}: not a directory")
    image_stem, label_stem = SPLITS[split]
    images = _read_idx(_find(directory, image_stem, "idx3-ubyte"), IMAGES_MAGIC, 3, item_shape=(28, 28))
    labels = _read_idx(_find(directory, label_stem, "idx1-ubyte"), LABELS_MAGIC, 1)
    if images.shape[1:] != (28, 28):
        raise MnistFormatError(f"{directory}: {split} images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise MnistFormatError(f"{directory}: {len(images)} {split} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise MnistFormatError(f"{directory}: {split} label {labels.max()} out of range 0..9")
    return images, labels
