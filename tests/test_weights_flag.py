"""The train-to-deploy loop: `evaluate`, `classify` and `bench` run other weights (--weights, with
the spec beside them or --spec) on every backend, bit-exact with the golden model on the same
weights; csim, sim and the board take only specs in their built formats (`quantize
--accelerator-formats`), and every refusal is one line naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from simboard_fixtures import sample_images

from lenet5_pynq import backends, bench, classify, evaluate, fixedspec, golden, mnist, quantize, weights
from lenet5_pynq.backends import BackendUnavailable

IMAGES = 120  # per split of the small MNIST below: a few seconds on csim and sim


def _perturbed(params: dict, seed: int = 5) -> dict:
    """A retrained-like weight set: every weight scaled by a seeded factor in [0.7, 1], so its
    magnitudes (and worst-case sums) stay within the shipped formats."""
    rng = np.random.default_rng(seed)
    return {k: (v * rng.uniform(0.7, 1.0, v.shape)).astype(np.float32) for k, v in params.items()}


def _write_idx(directory, stem_images, stem_labels, images, labels):
    for name, magic, array in ((stem_images, mnist.IMAGES_MAGIC, images), (stem_labels, mnist.LABELS_MAGIC, labels)):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
        (directory / name).write_bytes(header + array.tobytes())


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory):
    """Both splits of an MNIST-like set of stroke images, so that quantize (train split) and
    evaluate (test split) run where the real MNIST is not."""
    directory = tmp_path_factory.mktemp("mnist")
    images = sample_images(IMAGES, seed=3)
    labels = (np.arange(IMAGES) % 10).astype(np.uint8)
    _write_idx(directory, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", images, labels)
    _write_idx(directory, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", images, labels)
    return directory


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, small_mnist):
    """Two copies of one retrained-like archive: `fabric/` with the spec `quantize --accelerator-formats`
    writes beside it, `own/` with the one plain `quantize` writes (formats of its own)."""
    params = _perturbed(weights.load()[0])
    root = tmp_path_factory.mktemp("retrained")
    images, _ = mnist.load(small_mnist, "train")
    out = {"params": params}
    for kind in ("fabric", "own"):
        (root / kind).mkdir()
        path = root / kind / "weights.npz"
        weights.save(path, params, {"test": "perturbed shipped weights"})
        sha = fixedspec.file_sha256(path)
        if kind == "fabric":
            spec = quantize.accelerator_formats_spec(params, images, sha)[0]
        else:
            spec = quantize.choose_spec(params, images, sha)
        fixedspec.save(spec, path.with_name("fixed_spec.json"))
        out[kind] = path
    return out


def _available(name, **kwargs):
    try:
        return backends.load_backend(name, verbose=False, **kwargs)
    except BackendUnavailable as e:
        pytest.skip(f"{name} unavailable: {e}")


def _golden_on(path):
    """The golden model's answer on the weights at `path` with the spec beside them."""
    layers, _ = fixedspec.load_quantized(path, path.with_name("fixed_spec.json"))
    return lambda images: golden.predict_raw(images, layers)


@pytest.mark.parametrize("name", ["cpu", "csim", "sim"])
def test_evaluate_weights_bit_exact_with_the_golden_model(name, retrained, small_mnist, capsys):
    _available(name).close()
    argv = ["--backend", name, "--weights", str(retrained["fabric"]), "--mnist", str(small_mnist), "--json", "--quiet"]
    assert evaluate.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"] == str(retrained["fabric"])
    assert report["spec"] == str(retrained["fabric"].with_name("fixed_spec.json"))  # the spec beside them
    if name == "cpu":
        assert "golden" in report
    else:
        assert report["bit_exact_with_golden"] == report["images"] == IMAGES


@pytest.mark.parametrize("name", ["cpu", "csim", "sim"])
def test_backends_run_the_given_weights_not_the_shipped_ones(name, retrained):
    images = sample_images(64, seed=9)
    with _available(name, weights_path=retrained["fabric"]) as backend:
        pred = backend.predict(images)
    classes, logits = _golden_on(retrained["fabric"])(images)
    assert np.array_equal(pred.logits, logits) and np.array_equal(pred.classes, classes)
    shipped = backends.load_backend("cpu", verbose=False).predict(images)
    assert not np.array_equal(pred.logits, shipped.logits)


def test_float_backend_runs_the_given_weights(retrained):
    from lenet5_pynq.backends.cpu import FloatBackend

    images = sample_images(32, seed=9)
    got = backends.load_backend(
        "cpu-float",
        verbose=False,
        weights_path=retrained["own"],
        spec_path=retrained["own"].with_name("fixed_spec.json"),
    ).predict(images)
    np.testing.assert_array_equal(got.logits, FloatBackend(params=retrained["params"]).predict(images).logits)
    assert not np.array_equal(got.logits, FloatBackend().predict(images).logits)


def test_own_formats_run_on_the_golden_model_and_are_refused_by_the_fabric(retrained, small_mnist, capsys):
    base = ["--weights", str(retrained["own"]), "--mnist", str(small_mnist), "--quiet"]
    assert evaluate.main(["--backend", "cpu", *base]) == 0
    capsys.readouterr()
    for name in ("csim", "sim"):
        _available(name).close()
        assert evaluate.main(["--backend", name, *base]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert err.startswith(f"error: {retrained['own'].with_name('fixed_spec.json')}: layers.")
        assert "was built with" in err and "--accelerator-formats" in err


def test_missing_spec_beside_the_weights_is_one_line_naming_it(retrained, small_mnist, tmp_path, capsys):
    lone = tmp_path / "lone.npz"
    lone.write_bytes(retrained["fabric"].read_bytes())
    missing = str(tmp_path / "fixed_spec.json")
    assert evaluate.main(["--backend", "cpu", "--weights", str(lone), "--mnist", str(small_mnist)]) == 2
    assert classify.main(["--samples", "--backend", "cpu", "--weights", str(lone)]) == 2
    assert bench.main(["--backends", "cpu", "--batches", "1", "--weights", str(lone)]) == 2
    for err in capsys.readouterr().err.strip().split("\n"):
        assert err.startswith(f"error: {lone}: no fixed-point spec beside it ({missing} does not exist)"), err
    with pytest.raises(fixedspec.SpecError, match="no fixed-point spec beside it"):
        backends.load_backend("csim", weights_path=lone)


def test_a_spec_made_for_other_weights_is_refused(retrained, small_mnist, capsys):
    argv = [
        "--backend",
        "cpu",
        "--weights",
        str(retrained["fabric"]),
        "--spec",
        str(fixedspec.SHIPPED),
        "--mnist",
        str(small_mnist),
    ]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "made for weights" in err and str(fixedspec.SHIPPED) in err


def test_a_backend_that_takes_no_weights_says_so(retrained):
    backends.register("test-fixed", "lenet5_pynq.backends.base", "Backend")  # a factory without weights_path
    try:
        with pytest.raises(BackendUnavailable, match=r"^backend test-fixed runs only its own weights, not .*\.npz$"):
            backends.load_backend("test-fixed", weights_path=retrained["fabric"])
        assert isinstance(backends.load_backend("test-fixed"), backends.Backend)  # the shipped pair: no complaint
    finally:
        backends._REGISTRY.pop("test-fixed")


def test_classify_runs_the_given_weights(retrained, capsys):
    assert classify.main(["--samples", "--backend", "cpu", "--json", "--weights", str(retrained["fabric"])]) == 0
    given = json.loads(capsys.readouterr().out)
    assert classify.main(["--samples", "--backend", "cpu", "--json"]) == 0
    shipped = json.loads(capsys.readouterr().out)
    assert len(given) == len(shipped) == 10
    assert [r["confidence"] for r in given] != [r["confidence"] for r in shipped]


def test_bench_runs_the_given_weights_and_skips_what_cannot(retrained, capsys):
    _available("csim").close()
    kwargs = backends.weight_arguments(retrained["own"])
    logged = []
    rows = bench.run(["cpu", "csim"], [4], min_seconds=0.0, log=logged.append, quiet=True, backend_kwargs=kwargs)
    assert [r["backend"] for r in rows] == ["cpu"]
    assert any(line.startswith("skipped csim: ") and "was built with" in line for line in logged)


# ------------------------------------------------------------------ quantize --accelerator-formats
def test_quantize_accelerator_formats_keeps_the_built_formats(retrained, small_mnist, tmp_path, capsys):
    out = tmp_path / "spec.json"
    assert (
        quantize.main(
            [
                "--weights",
                str(retrained["own"]),
                "--mnist",
                str(small_mnist),
                "--accelerator-formats",
                "--calibration",
                str(IMAGES),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    spec, shipped = fixedspec.load(out, retrained["own"]), fixedspec.load()
    assert spec.layers == shipped.layers and spec.input == shipped.input
    assert f"wrote {out}" in capsys.readouterr().out


def test_quantize_accelerator_formats_refuses_what_does_not_fit(small_mnist, tmp_path, capsys):
    params = weights.load()[0]
    images, _ = mnist.load(small_mnist, "train")
    big = {**params, "fc1/kernel": params["fc1/kernel"] * 4}  # beyond the kernel's format
    path = tmp_path / "big.npz"
    weights.save(path, big)
    assert (
        quantize.main(
            ["--weights", str(path), "--mnist", str(small_mnist), "--accelerator-formats", "--calibration", str(IMAGES)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {path}: does not fit the accelerator's formats")
    assert "fc1/kernel beyond ap_fixed<16, 2" in err and not (tmp_path / "fixed_spec.json").exists()
    # In range one by one, but their sum is beyond the accumulator (which would wrap in the fabric).
    kernel_max = fixedspec.load().layers["conv1"].kernel.max_raw * fixedspec.load().layers["conv1"].kernel.scale
    dense = {**params, "conv1/kernel": np.full_like(params["conv1/kernel"], kernel_max)}
    with pytest.raises(ValueError, match=r"conv1's sums can reach .* beyond ap_fixed<27, 4"):
        quantize.accelerator_formats_spec(dense, images)
