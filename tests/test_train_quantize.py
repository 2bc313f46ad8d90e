"""Training (a smoke run on a slice of MNIST) and the choice of fixed-point formats.

The float statistics behind the formats (each layer's largest activation) are float32 sums
through numpy's BLAS, whose kernel, and so whose last bit, depends on the processor (OpenBLAS
picks Haswell, SkylakeX, Zen ... at run time).  The formats and every integer field are compared
exactly, the measured peaks to PEAK_RTOL.
"""

import json

import numpy as np
import pytest

from lenet5_pynq import fixedpoint, fixedspec, mnist, network, quantize, weights

# Peaks of 10,000 images through five float32 layers differ by a few ulps (1e-7) between BLAS
# kernels; a hundred times that still catches a changed network or calibration set.
PEAK_RTOL = 1e-5


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory):
    pytest.importorskip("tensorflow")
    from lenet5_pynq import train

    out = tmp_path_factory.mktemp("train") / "w.npz"
    assert (
        train.main(["--mnist", str(mnist_dir), "--epochs", "3", "--limit", "3000", "--seed", "7", "--out", str(out)])
        == 0
    )
    return out


@pytest.mark.slow
def test_training_smoke_run_learns(trained, mnist_test):
    from lenet5_pynq.backends.cpu import FloatBackend

    params, meta = weights.load(trained)
    assert meta["seed"] == 7 and meta["train_images"] == 3000
    images, labels = mnist_test
    accuracy = (FloatBackend(params=params).predict(images[:2000]).classes == labels[:2000]).mean()
    assert accuracy > 0.8  # three epochs on 3,000 images: far above chance, far below the shipped net


@pytest.mark.slow
def test_training_is_reproducible(trained, mnist_dir, tmp_path):
    from lenet5_pynq import train

    again = tmp_path / "again.npz"
    assert (
        train.main(["--mnist", str(mnist_dir), "--epochs", "3", "--limit", "3000", "--seed", "7", "--out", str(again)])
        == 0
    )
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
    """Every format and integer field exactly; the measured peaks to PEAK_RTOL (BLAS-dependent)."""
    out = tmp_path / "spec.json"
    assert quantize.main(["--mnist", str(mnist_dir), "--out", str(out)]) == 0
    got, shipped = json.loads(out.read_text()), json.loads(fixedspec.SHIPPED.read_text())
    got_peaks, shipped_peaks = got["meta"].pop("activation_peaks"), shipped["meta"].pop("activation_peaks")
    assert got == shipped
    assert got_peaks == pytest.approx(shipped_peaks, rel=PEAK_RTOL, abs=0)


def test_shipped_formats_do_not_hang_on_the_last_bit():
    """Each output format follows from its peak's power of two; no shipped peak lies within
    PEAK_RTOL of one, so a processor whose BLAS rounds differently still picks the same formats."""
    spec = fixedspec.load()
    for name, peak in spec.meta["activation_peaks"].items():
        below = 2.0 ** np.floor(np.log2(peak))
        assert min(peak / below - 1, 2 * below / peak - 1) > PEAK_RTOL, f"{name}: peak {peak} is next to {below}"
        assert spec.layers[name].output.int_bits == fixedpoint.bits_for(peak) + spec.meta["headroom_bits"]


def test_formats_follow_the_data(mnist_dir):
    params, _ = weights.load()
    images, _ = mnist.load(mnist_dir, "train")
    doubled = {k: v * 4 for k, v in params.items()}
    base = quantize.choose_spec(params, images[:500])
    scaled = quantize.choose_spec(doubled, images[:500])
    for name in base.layers:
        assert scaled.layers[name].kernel.int_bits == base.layers[name].kernel.int_bits + 2
    for f in base.layers.values():
        assert (f.kernel.width, f.bias.width, f.output.width) == (16, 16, 16)
