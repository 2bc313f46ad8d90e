"""Shared helpers of the overlay and simulated-board tests (imported by tests/test_sim*.py and
tests/test_overlay*.py)."""

from __future__ import annotations

import numpy as np
import pytest

pynq = pytest.importorskip("pynq", reason="pynq is not installed (the [board] extra)")

from lenet5_pynq import fixedspec, golden  # noqa: E402
from lenet5_pynq.backends.base import BackendUnavailable  # noqa: E402


def make_board(name="pynq-z2", **kwargs):
    from lenet5_pynq.simboard import SimBoard

    try:
        return SimBoard(name, **kwargs)
    except BackendUnavailable as e:
        pytest.skip(f"simulated board unavailable: {e}")


def make_overlay(board, **kwargs):
    from lenet5_pynq.overlay import LeNet5Overlay

    return LeNet5Overlay(board.bitfile, device=board, **kwargs)


_shipped = None


def shipped_layers():
    global _shipped
    if _shipped is None:
        _shipped = fixedspec.load_quantized()[0]
    return _shipped


def assert_exact(prediction, images, layers=None):
    classes, logits = golden.predict_raw(images, layers or shipped_layers())
    same = np.all(prediction.logits == logits, axis=1) & (prediction.classes == classes)
    assert int(same.sum()) == len(images), (
        f"{len(images) - int(same.sum())} of {len(images)} differ from the golden model"
    )


def sample_images(n, seed=0):
    """MNIST-like bytes without needing the MNIST files: random strokes on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for img in images:
        for _ in range(3):
            r, c = rng.integers(4, 24, 2)
            img[r - 3 : r + 3, c - 1 : c + 2] = rng.integers(128, 256)
    return images
