"""The onnxruntime peer (issue 14): the float32 network as an ONNX graph built from the same
weights, run by onnxruntime's CPU provider.  Skips without the `onnx` extra."""

from __future__ import annotations

import numpy as np
import pytest
from float_reference import float64_logits, outside_tolerance, worst_relative_error

from lenet5_pynq import backends, weights
from lenet5_pynq.backends.cpu import FloatBackend

pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'lenet5-pynq[onnx]')")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'lenet5-pynq[onnx]')")


@pytest.fixture(scope="module")
def peer():
    return backends.load_backend("onnxruntime", threads=1)


def test_agrees_with_float64_and_cpu_float_on_all_test_images(peer, mnist_test):
    params = weights.load()[0]
    images = mnist_test[0]
    logits = peer.predict(images).logits
    reference = float64_logits(params, images)
    assert outside_tolerance(logits, reference) == 0, worst_relative_error(logits, reference)
    assert np.array_equal(peer.predict(images).classes, FloatBackend(params=params).predict(images).classes)


def test_runs_other_weights(mnist_test):
    """The same archive's arrays, scaled: the peer builds its graph from what it is given."""
    params = {
        k: v * np.float32(0.5) if k.endswith("kernel") and "fc3" in k else v for k, v in weights.load()[0].items()
    }
    peer = backends.load_backend("onnxruntime", params=params)
    images = mnist_test[0][:100]
    reference = float64_logits(params, images)
    assert outside_tolerance(peer.predict(images).logits, reference) == 0


def test_batches_of_every_size_and_a_single_image(peer):
    images = np.random.default_rng(3).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    assert peer.predict(images[0]).logits.shape == (1, 10)
    assert peer.predict(images[:0]).logits.shape == (0, 10)
    assert peer.predict(images).classes.dtype == np.int64


def test_bad_threads_and_images(peer):
    with pytest.raises(ValueError, match="threads must be a whole number"):
        backends.load_backend("onnxruntime", threads=0)
    with pytest.raises(TypeError, match="uint8"):
        peer.predict(np.zeros((1, 28, 28), np.float32))


def test_unavailable_without_onnxruntime(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(backends.BackendUnavailable, match="onnxruntime is not installed"):
        backends.load_backend("onnxruntime")
