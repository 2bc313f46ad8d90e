"""The golden model against an independent integer implementation, and the shipped accuracy."""

import json

import numpy as np
import pytest

from lenet5_pynq import fixedspec, golden, load_backend, network, weights
from lenet5_pynq.fixedpoint import cast


def naive_forward(image: np.ndarray, layers) -> np.ndarray:
    """Loops over output positions in int64, pooling after the cast: no BLAS, no float."""
    x = image.astype(np.int64)[:, :, None]
    for shape, q in zip(network.layer_shapes(), layers):
        layer = shape.layer
        if isinstance(layer, network.Conv):
            k, p = layer.kernel, layer.pool
            oh, ow, _ = shape.conv_shape
            acc = np.empty((oh, ow, layer.filters), np.int64)
            for y in range(oh):
                for x0 in range(ow):
                    patch = x[y : y + k, x0 : x0 + k, :]
                    acc[y, x0] = np.tensordot(patch, q.kernel, axes=3) + q.aligned_bias
            out = np.maximum(cast(acc, q.formats.accum.frac_bits, q.formats.output), 0)
            x = out.reshape(oh // p, p, ow // p, p, layer.filters).max(axis=(1, 3))
        else:
            acc = x.reshape(-1) @ q.kernel + q.aligned_bias
            x = cast(acc, q.formats.accum.frac_bits, q.formats.output)
            if layer.relu:
                x = np.maximum(x, 0)
    return x


@pytest.fixture(scope="module")
def quantized():
    return fixedspec.load_quantized()


def test_golden_matches_naive_integer_model(quantized, mnist_test):
    layers, _ = quantized
    images = mnist_test[0][:40]
    rng = np.random.default_rng(1)
    # Saturating inputs too: all-white and noise images push the accumulators to their extremes.
    extremes = np.stack([np.full((28, 28), 255, np.uint8), rng.integers(0, 256, (28, 28), dtype=np.uint8)])
    images = np.concatenate([images, extremes])
    classes, logits = golden.predict_raw(images, layers)
    for i, image in enumerate(images):
        expected = naive_forward(image, layers)
        assert np.array_equal(logits[i], expected), f"image {i}"
        assert classes[i] == int(np.argmax(expected))


def test_accumulators_hold_every_sum(quantized):
    """The spec's accumulator widths bound the worst case, and float64 holds them exactly."""
    layers, _ = quantized
    for q in layers:
        assert q.formats.accum.width <= golden.EXACT_FLOAT64_BITS
        worst = np.abs(q.kernel).reshape(-1, q.kernel.shape[-1]).sum(axis=0) * max(
            -q.in_format.min_raw, q.in_format.max_raw
        )
        worst = worst + np.abs(q.aligned_bias)
        assert worst.max() <= q.formats.accum.max_raw


def test_chunking_does_not_change_results(quantized, mnist_test, monkeypatch):
    layers, _ = quantized
    images = mnist_test[0][:300]
    _, whole = golden.predict_raw(images, layers)
    monkeypatch.setattr(golden, "CHUNK", 7)
    _, chunked = golden.predict_raw(images, layers)
    assert np.array_equal(whole, chunked)


def test_shipped_accuracy(mnist_test):
    """The acceptance figures: fixed >= 99.05 %, float >= 99.1 %, fixed within 0.05 points."""
    images, labels = mnist_test
    fixed = (load_backend("cpu").predict(images).classes == labels).mean()
    floating = (load_backend("cpu-float").predict(images).classes == labels).mean()
    assert floating >= 0.991
    assert fixed >= 0.9905
    assert abs(fixed - floating) <= 0.0005


def test_float_backend_matches_keras():
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    from lenet5_pynq.keras_model import build_model, set_model_weights

    params, _ = weights.load()
    model = build_model(keras)
    set_model_weights(model, params)
    images = np.random.default_rng(3).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    expected = np.asarray(model(images[..., None].astype(np.float32), training=False))
    got = load_backend("cpu-float").predict(images).logits
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_spec_belongs_to_shipped_weights():
    spec = fixedspec.load(weights_path=weights.SHIPPED)
    assert spec.weights_sha256 == fixedspec.file_sha256(weights.SHIPPED)


def test_spec_errors(tmp_path):
    d = json.loads(fixedspec.SHIPPED.read_text())
    d["layers"]["conv2"]["accum"]["int_bits"] += 1
    d["layers"]["conv2"]["accum"]["width"] += 2
    bad = tmp_path / "spec.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(fixedspec.SpecError, match="conv2 accum has"):
        fixedspec.load(bad)
    wide = json.loads(fixedspec.SHIPPED.read_text())
    wide["layers"]["fc2"]["kernel"]["width"] += 2  # same fraction bits, so only the width is wrong
    wide["layers"]["fc2"]["kernel"]["int_bits"] += 2
    bad.write_text(json.dumps(wide))
    with pytest.raises(fixedspec.SpecError, match="fc2 kernel must be signed and at most 16 bits"):
        fixedspec.load(bad)
    del d["layers"]["fc1"]
    bad.write_text(json.dumps(d))
    with pytest.raises(fixedspec.SpecError, match="malformed"):
        fixedspec.load(bad)
    other = tmp_path / "w.npz"
    params, _ = weights.load()
    weights.save(other, {k: v * 2 for k, v in params.items()})
    with pytest.raises(fixedspec.SpecError, match="made for weights"):
        fixedspec.load(weights_path=other)


def test_images_are_checked():
    backend = load_backend("cpu")
    with pytest.raises(TypeError, match="uint8"):
        backend.predict(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        backend.predict(np.zeros((1, 32, 32), np.uint8))
    assert backend.predict(np.zeros((28, 28), np.uint8)).logits.shape == (1, 10)
    assert backend.predict(np.zeros((0, 28, 28), np.uint8)).logits.shape == (0, 10)
