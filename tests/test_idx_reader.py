"""The IDX reader under hostile files (issue 11, part 5): the header is checked against the
file's real size before anything is allocated, decompression stops past the size the header
implies, dimensions whose product overflows are refused, and 0 images is an error that the
commands report (not "0/0 = 0.00%", not a ZeroDivisionError)."""

from __future__ import annotations

import gzip
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lenet5_pynq import bench, evaluate, mnist


def _idx(magic, shape, payload=b"") -> bytes:
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in shape) + payload


def _write(directory: Path, images: bytes, labels: bytes | None = None, gz=False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if labels is None:
        labels = _idx(mnist.LABELS_MAGIC, (3,), bytes(3))
    for name, data in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (directory / name).write_bytes(data)
    return directory


def test_gzip_bomb_stops_at_the_size_the_header_implies(tmp_path):
    # 3 images in the header, then 64 MB of zeros: compressed to a few hundred KB.
    d = tmp_path / "bomb"
    d.mkdir()
    with gzip.open(d / "t10k-images-idx3-ubyte.gz", "wb", compresslevel=9) as f:
        f.write(_idx(mnist.IMAGES_MAGIC, (3, 28, 28)))
        zeros = bytes(1 << 20)
        for _ in range(64):
            f.write(zeros)
    (d / "t10k-labels-idx1-ubyte").write_bytes(_idx(mnist.LABELS_MAGIC, (3,), bytes(3)))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(mnist.MnistFormatError, match=r"longer than the 2368 bytes its header \(3, 28, 28\)"):
            mnist.load(d, "test")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak / 1e6:.0f} MB allocated"
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("gz", [False, True])
def test_header_bigger_than_the_file_is_refused_before_allocating(tmp_path, gz):
    d = _write(tmp_path / "big", _idx(mnist.IMAGES_MAGIC, (4_000_000, 28, 28), bytes(784)), gz=gz)
    tracemalloc.start()
    try:
        with pytest.raises(mnist.MnistFormatError, match="header .4000000, 28, 28. needs 3136000016"):
            mnist.load(d, "test")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


@pytest.mark.parametrize("gz", [False, True])
def test_dimensions_that_overflow_int64_are_refused(tmp_path, gz):
    huge = 2**32 - 1
    d = _write(
        tmp_path / "ovf",
        _idx(mnist.IMAGES_MAGIC, (huge, 28, 28), bytes(784)),
        labels=_idx(mnist.LABELS_MAGIC, (3,), bytes(3)),
        gz=gz,
    )
    with pytest.raises(mnist.MnistFormatError, match=str(huge)):
        mnist.load(d, "test")
    d = _write(tmp_path / "ovf2", _idx(mnist.IMAGES_MAGIC, (3, huge, huge), bytes(784)), gz=gz)
    with pytest.raises(mnist.MnistFormatError, match=r"items are \(4294967295, 4294967295\), expected \(28, 28\)"):
        mnist.load(d, "test")


@pytest.mark.parametrize("gz", [False, True])
def test_labels_header_is_checked_too(tmp_path, gz):
    d = _write(
        tmp_path / "lab",
        _idx(mnist.IMAGES_MAGIC, (3, 28, 28), bytes(3 * 784)),
        labels=_idx(mnist.LABELS_MAGIC, (2**32 - 1,), bytes(3)),
        gz=gz,
    )
    with pytest.raises(mnist.MnistFormatError, match="t10k-labels"):
        mnist.load(d, "test")


def test_trailing_bytes_after_the_payload_are_refused(tmp_path):
    d = _write(tmp_path / "long", _idx(mnist.IMAGES_MAGIC, (3, 28, 28), bytes(3 * 784 + 1)), gz=True)
    with pytest.raises(mnist.MnistFormatError, match="longer than"):
        mnist.load(d, "test")


def test_short_gzip_payload_names_the_bytes(tmp_path):
    d = _write(tmp_path / "short", _idx(mnist.IMAGES_MAGIC, (3, 28, 28), bytes(3 * 784 - 5)), gz=True)
    with pytest.raises(mnist.MnistFormatError, match=r"2363 bytes, header \(3, 28, 28\) needs 2368"):
        mnist.load(d, "test")


@pytest.mark.parametrize("gz", [False, True])
def test_zero_images_is_an_error(tmp_path, gz):
    d = _write(tmp_path / "empty", _idx(mnist.IMAGES_MAGIC, (0, 28, 28)), labels=_idx(mnist.LABELS_MAGIC, (0,)), gz=gz)
    with pytest.raises(mnist.MnistFormatError, match="0 items"):
        mnist.load(d, "test")


@pytest.fixture
def empty_mnist(tmp_path):
    return _write(tmp_path / "empty", _idx(mnist.IMAGES_MAGIC, (0, 28, 28)), labels=_idx(mnist.LABELS_MAGIC, (0,)))


def test_evaluate_on_zero_images_fails_with_one_line(empty_mnist, capsys):
    assert evaluate.main(["--backend", "cpu", "--mnist", str(empty_mnist)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "0 items" in err


def test_bench_on_zero_images_or_a_missing_directory_fails_with_one_line(empty_mnist, tmp_path, capsys):
    for directory in (empty_mnist, tmp_path / "missing"):
        assert bench.main(["--backends", "cpu", "--batches", "1", "--min-seconds", "0", "--mnist", str(directory)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1 and str(directory) in err


def test_real_gzip_and_raw_mnist_still_load(tiny_mnist, tmp_path):
    images, labels = mnist.load(tiny_mnist, "test")
    gz = tmp_path / "gz"
    gz.mkdir()
    for p in tiny_mnist.iterdir():
        if p.is_file():
            (gz / (p.name + ".gz")).write_bytes(gzip.compress(p.read_bytes()))
    images2, labels2 = mnist.load(gz, "test")
    assert np.array_equal(images, images2) and np.array_equal(labels, labels2)
