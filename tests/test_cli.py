"""evaluate and bench from the command line, and backend selection."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lenet5_pynq import backends, bench, evaluate, load_backend
from lenet5_pynq.backends.cpu import FloatBackend


def test_evaluate_cpu_float_json(mnist_dir, capsys):
    assert evaluate.main(["--backend", "cpu-float", "--mnist", str(mnist_dir), "--limit", "500", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "cpu-float" and report["images"] == 500
    assert report["correct"] >= 495 and report["same_class_as_golden"] >= 498
    assert "bit_exact_with_golden" not in report  # a float backend has no raw words to compare


def test_evaluate_golden_text(mnist_dir, capsys):
    assert evaluate.main(["--backend", "cpu", "--mnist", str(mnist_dir), "--limit", "100"]) == 0
    out = capsys.readouterr().out
    assert "backend cpu: " in out and "/100 correct" in out and "is the golden model" in out


def test_evaluate_counts_bit_differences(mnist_test):
    """An exact backend that is off by one bit in one logit of one image is caught."""
    golden = load_backend("cpu")

    class OffByOne(backends.Backend):
        name, exact = "off-by-one", True

        def predict(self, images):
            p = golden.predict(images)
            p.logits[3, 4] += 1
            return p

    images, labels = mnist_test
    report = evaluate.evaluate(OffByOne(), images[:50], labels[:50], golden)
    assert report["bit_exact_with_golden"] == 49 and report["same_class_as_golden"] == 50


@pytest.mark.parametrize(
    "args, message",
    [
        # an unknown --backend is a usage error now (tests/test_arguments.py)
        (["--mnist", "/nonexistent/mnist"], "/nonexistent/mnist: not a directory"),
    ],
)
def test_evaluate_bad_arguments(args, message, capsys, tiny_mnist):
    if "--mnist" not in args:  # evaluate reads MNIST first: give it some, wherever the real one is
        args = [*args, "--mnist", str(tiny_mnist)]
    assert evaluate.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_evaluate_bad_limit_exits_2():
    run = subprocess.run([sys.executable, "-m", "lenet5_pynq.evaluate", "--limit", "0"], capture_output=True, text=True)
    assert run.returncode == 2 and "argument --limit: must be at least 1" in run.stderr


def test_auto_says_what_it_picked(capsys):
    backend = load_backend("auto")
    assert backend.name in {"cpu", "gpu", "fpga"}
    assert f"auto: using backend {backend.name}" in capsys.readouterr().err


def test_float_engines_agree(mnist_test):
    images = mnist_test[0][:200]
    c, numpy_model = FloatBackend(engine="c"), FloatBackend(engine="numpy")
    assert c.engine == "c"
    got, want = c.predict(images).logits, numpy_model.predict(images).logits
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_bench_table_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = ["--backends", "cpu,cpu-float", "--batches", "1,64", "--min-seconds", "0.05", "--peer", "cpu"]
    assert bench.main(args + ["--json", str(out), "--plot", str(png)]) == 0
    rows = json.loads(out.read_text())
    assert {(r["backend"], r["batch"]) for r in rows} == {(b, n) for b in ("cpu", "cpu-float") for n in (1, 64)}
    for r in rows:
        assert r["images_per_second"] == pytest.approx(r["batch"] / r["seconds_per_call"])
        assert r["calls"] >= 3
    assert all(r["vs"]["cpu"] == 1.0 for r in rows if r["backend"] == "cpu")
    assert all(
        r["vs"]["cpu"]
        == pytest.approx(
            r["images_per_second"]
            / next(c["images_per_second"] for c in rows if c["backend"] == "cpu" and c["batch"] == r["batch"])
        )
        for r in rows
    )
    assert png.stat().st_size > 10000
    assert "cpu-float" in capsys.readouterr().out


def test_bench_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--batches", "0,10"])
    assert e.value.code == 2 and "batch sizes must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench.main(["--json", "/nonexistent/dir/out.json"])
    assert (
        e.value.code == 2
        and "--json /nonexistent/dir/out.json: its directory does not exist" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as e:
        bench.main(["--backends", "nope"])
    assert e.value.code == 2 and "unknown backend 'nope'" in capsys.readouterr().err


def test_float_backends_come_and_go_without_crashing():
    """Closing the C kernel's library used to unload libgomp under its idle threads (a segfault
    some time later); the library now stays loaded for the life of the process."""
    script = (
        "import gc, numpy as np\n"
        "from lenet5_pynq.backends.cpu import FloatBackend\n"
        "x = np.random.default_rng(0).integers(0, 256, (256, 28, 28), dtype=np.uint8)\n"
        "for _ in range(30):\n"
        "    b = FloatBackend(); b.predict(x); del b; gc.collect()\n"
        "import time; time.sleep(0.3)\n"
        "print(FloatBackend().predict(x).classes[:3])\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.slow  # hls4ml writes and compiles its C simulation with g++
def test_hls4ml_peer_classifies_like_the_float_network(mnist_test):
    pytest.importorskip("hls4ml")
    pytest.importorskip("tensorflow")
    images = mnist_test[0][:100]
    with load_backend("hls4ml-csim") as peer:
        same = (peer.predict(images).classes == load_backend("cpu-float").predict(images).classes).mean()
    assert same >= 0.95  # its ap_fixed<16,6> everywhere costs about a point of accuracy


def test_float_backend_without_a_compiler(monkeypatch, mnist_test):
    from lenet5_pynq import native

    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    fallback = FloatBackend()
    assert fallback.engine == "numpy"
    images = mnist_test[0][:50]
    assert np.array_equal(fallback.predict(images).classes, FloatBackend(engine="numpy").predict(images).classes)
    with pytest.raises(backends.BackendUnavailable, match="no C compiler found"):
        FloatBackend(engine="c")


@pytest.mark.parametrize("name", ["cpu", "cpu-float", "csim", "sim"])
def test_classes_are_int64_on_every_backend(name):
    from simboard_fixtures import sample_images

    try:
        backend = load_backend(name, verbose=False)
    except backends.BackendUnavailable as e:
        pytest.skip(f"{name} unavailable: {e}")
    with backend:
        assert backend.predict(sample_images(5)).classes.dtype == np.int64


def test_prediction_makes_classes_int64():
    """One place for the dtype: argmax gives int32 on 32-bit ARM (the PYNQ-Z2's armhf)."""
    p = backends.Prediction(np.array([3, 1], np.int32), np.zeros((2, 10), np.int16))
    assert p.classes.dtype == np.int64 and p.classes.tolist() == [3, 1]


def test_auto_names_only_engines_that_could_run_here(monkeypatch, capsys):
    from lenet5_pynq.backends import fpga, gpu

    if fpga.on_board():
        pytest.skip("on a PYNQ board")
    monkeypatch.setattr(gpu, "could_run_here", lambda: False)  # no NVIDIA driver, no nvcc
    monkeypatch.setenv("LENET5_GPU_LIB", "/nonexistent/liblenet5_gpu.so")
    monkeypatch.setattr("lenet5_pynq.gpu.library._LIB", None)
    assert load_backend("auto").name == "cpu"
    assert capsys.readouterr().err.strip() == "auto: using backend cpu"  # no board advice, no nvcc advice
    monkeypatch.setattr(gpu, "could_run_here", lambda: True)  # a driver or nvcc, but no library built
    load_backend("auto")
    err = capsys.readouterr().err
    assert "(skipped gpu: CUDA library /nonexistent/liblenet5_gpu.so is not built" in err and "fpga" not in err


def test_bench_plot_needs_matplotlib_before_measuring(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("measured before checking for matplotlib"))
    with pytest.raises(SystemExit) as e:
        bench.main(["--backends", "cpu", "--batches", "1", "--plot", str(tmp_path / "plot.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and err[-1].endswith("--plot needs matplotlib: pip install 'lenet5-pynq[bench]'")
