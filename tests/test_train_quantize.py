"""Training (a smoke run on a slice of MNIST) and the choice of fixed-point formats."""

import json

import numpy as np
import pytest

from lenet5_pynq import fixedspec, mnist, network, quantize, weights


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory):
    pytest.importorskip("tensorflow")
    from lenet5_pynq import train

    out = tmp_path_factory.mktemp("train") / "w.npz"
    assert train.main(["--mnist", str(mnist_dir), "--epochs", "3", "--limit", "3000", "--seed", "7", "--out", str(out)]) == 0
    return out


def test_training_smoke_run_learns(trained, mnist_test):
    from lenet5_pynq.backends.cpu import FloatBackend

    params, meta = weights.load(trained)
    assert meta["seed"] == 7 and meta["train_images"] == 3000
    images, labels = mnist_test
    accuracy = (FloatBackend(params=params).predict(images[:2000]).classes == labels[:2000]).mean()
    assert accuracy > 0.8  # three epochs on 3,000 images: far above chance, far below the shipped net


def test_training_is_reproducible(trained, mnist_dir, tmp_path):
    from lenet5_pynq import train

    again = tmp_path / "again.npz"
    assert train.main(["--mnist", str(mnist_dir), "--epochs", "3", "--limit", "3000", "--seed", "7", "--out", str(again)]) == 0
    first, _ = weights.load(trained)
    second, _ = weights.load(again)
    for key in network.parameter_names():
        assert np.array_equal(first[key], second[key]), key


def test_train_bad_mnist_dir(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from lenet5_pynq import train

    assert train.main(["--mnist", str(tmp_path / "missing"), "--epochs", "1", "--out", str(tmp_path / "w.npz")]) == 2
    assert "missing: not a directory" in capsys.readouterr().err
    assert not (tmp_path / "w.npz").exists()


def test_quantize_reproduces_shipped_spec(mnist_dir, tmp_path):
    out = tmp_path / "spec.json"
    assert quantize.main(["--mnist", str(mnist_dir), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(fixedspec.SHIPPED.read_text())


def test_formats_follow_the_data():
    params, _ = weights.load()
    images, _ = mnist.load(None, "train") if mnist.default_dir() else (None, None)
    if images is None:
        pytest.skip("no MNIST")
    doubled = {k: v * 4 for k, v in params.items()}
    base = quantize.choose_spec(params, images[:500])
    scaled = quantize.choose_spec(doubled, images[:500])
    for name in base.layers:
        assert scaled.layers[name].kernel.int_bits == base.layers[name].kernel.int_bits + 2
    for f in base.layers.values():
        assert (f.kernel.width, f.bias.width, f.output.width) == (16, 16, 16)
