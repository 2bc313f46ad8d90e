"""Arguments are checked up front by argparse types (lenet5_pynq.cli_types): a bad one is a
usage error, exit 2, whose error line names the option, before any work or any output file."""

import argparse
import importlib

import numpy as np
import pytest

from lenet5_pynq import backends, cli_types
from lenet5_pynq.gpu import __main__ as gpu_command

NOT_A_DIR = "/nonexistent/mnist"  # commands must fail on the argument before they read MNIST


@pytest.mark.parametrize(
    "module, argv, message",
    [
        ("evaluate", ["--limit", "0"], "argument --limit: must be at least 1, not 0"),
        ("evaluate", ["--limit", "-3"], "argument --limit: must be at least 1, not -3"),
        ("evaluate", ["--limit", "ten"], "argument --limit: not an integer: 'ten'"),
        ("evaluate", ["--limit", "1.5"], "argument --limit: not an integer: '1.5'"),
        ("evaluate", ["--backend", "tpu"], "argument --backend: unknown backend 'tpu'; choose from auto, cpu"),
        ("evaluate", ["--backend", ""], "argument --backend: unknown backend ''"),
        ("bench", ["--batches", "0,10"], "argument --batches: batch sizes must be positive"),
        ("bench", ["--batches", "1,x"], "argument --batches: not a comma-separated list of integers"),
        ("bench", ["--batches", ","], "argument --batches: empty list"),
        ("bench", ["--batches", "2000000"], "argument --batches: batch sizes: 2,000,000 is more than 1,000,000"),
        ("bench", ["--backends", "cpu,nope"], "argument --backends: unknown backend 'nope'"),
        ("bench", ["--backends", ","], "argument --backends: no backend given"),
        ("bench", ["--peer", "tpu"], "argument --peer: unknown backend 'tpu'"),
        ("bench", ["--min-seconds", "-1"], "argument --min-seconds: must be a finite number of at least 0, not -1"),
        ("bench", ["--min-seconds", "nan"], "argument --min-seconds: must be a finite number of at least 0, not nan"),
        ("bench", ["--min-seconds", "inf"], "argument --min-seconds: must be a finite number of at least 0"),
        ("bench", ["--min-seconds", "soon"], "argument --min-seconds: not a number: 'soon'"),
        ("train", ["--mnist", NOT_A_DIR, "--epochs", "0"], "argument --epochs: must be at least 1, not 0"),
        ("train", ["--mnist", NOT_A_DIR, "--batch-size", "-1"], "argument --batch-size: must be at least 1, not -1"),
        ("train", ["--mnist", NOT_A_DIR, "--limit", "0"], "argument --limit: must be at least 1, not 0"),
        ("train", ["--mnist", NOT_A_DIR, "--seed", "-1"], "argument --seed: must be at least 0, not -1"),
        ("train", ["--mnist", NOT_A_DIR, "--epochs", "3.0"], "argument --epochs: not an integer: '3.0'"),
        ("quantize", ["--mnist", NOT_A_DIR, "--calibration", "0"], "argument --calibration: must be at least 1, not 0"),
        ("quantize", ["--mnist", NOT_A_DIR, "--calibration", "all"], "argument --calibration: not an integer"),
        (
            "export",
            ["golden", "--out", "/tmp/never-written", "--count", "0"],
            "argument --count: must be at least 1, not 0",
        ),
        ("export", ["golden", "--out", "/tmp/never-written", "--count", "x"], "argument --count: not an integer"),
        ("gpu.__main__", ["build", "--arch", "sm90"], "argument --arch: not an sm_XY architecture: 'sm90'"),
        ("gpu.__main__", ["build", "--arch", "sm_9"], "argument --arch: not an sm_XY architecture"),
        (
            "gpu_bench",
            ["--backends", "cpu"],
            "argument --backends: unknown backend 'cpu'; choose from gpu, gpu-float, gpu-fp16",
        ),
        ("gpu_bench", ["--batches", "0"], "argument --batches: batch sizes must be positive"),
        ("gpu_bench", ["--repeats", "0"], "argument --repeats: must be at least 1, not 0"),
        ("gpu_bench", ["--where", "moon"], "argument --where: unknown place 'moon'; choose from device, host"),
    ],
)
def test_bad_argument_is_a_usage_error(module, argv, message, capsys):
    main = importlib.import_module(f"lenet5_pynq.{module}").main
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert (
        lines[-1].startswith(f"python -m lenet5_pynq.{module.removesuffix('.__main__')}") and ": error: " in lines[-1]
    )
    assert message in lines[-1], lines[-1]
    assert all(line.startswith(("usage:", " ")) for line in lines[:-1])  # the usage, then one error line
    assert captured.out == ""


def test_gpu_build_out_that_is_a_file(tmp_path, capsys):

    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(SystemExit) as e:
        gpu_command.main(["build", "--out", str(f)])
    assert e.value.code == 2 and "argument --out: " in capsys.readouterr().err


def test_unknown_backend_exits_2_from_the_shell():
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "lenet5_pynq.evaluate", "--backend", "tpu"], capture_output=True, text=True
    )
    assert run.returncode == 2 and "unknown backend 'tpu'" in run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.stderr


def test_load_backend_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        backends.load_backend("tpu")


def test_valid_arguments_parse():
    assert cli_types.positive_int("12") == 12
    assert cli_types.nonnegative_int("0") == 0
    assert cli_types.int_at_least(2)("2") == 2
    assert cli_types.positive_float("0.25") == 0.25
    assert cli_types.nonnegative_float("0") == 0.0
    assert cli_types.positive_int_list()("1, 10,100") == [1, 10, 100]
    assert cli_types.backend_list()("cpu,cpu-float") == ["cpu", "cpu-float"]
    assert cli_types.backend_name()("auto") == "auto"
    assert cli_types.choice_list(("a", "b"))("b,a") == ["b", "a"]
    for bad in ("inf", "-0.0", "1e400"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_types.positive_float(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 0, not -1"):
        cli_types.nonnegative_int("-1")


def test_registered_backends_are_known_to_the_types():
    backends.register("test-only", "lenet5_pynq.backends.cpu", "GoldenBackend")
    try:
        assert cli_types.backend_name()("test-only") == "test-only"
        assert cli_types.backend_list()("cpu,test-only") == ["cpu", "test-only"]
    finally:
        backends._REGISTRY.pop("test-only")


# ------------------------------------------------------------------------- no images
@pytest.mark.parametrize("name", ["cpu", "cpu-float", "csim", "keras", "keras-direct"])
def test_zero_images_give_an_empty_prediction(name):
    if name.startswith("keras"):
        pytest.importorskip("tensorflow")
    try:
        backend = backends.load_backend(name, verbose=False)
    except backends.BackendUnavailable as e:
        pytest.skip(str(e))
    with backend:
        p = backend.predict(np.zeros((0, 28, 28), np.uint8))
    assert p.classes.shape == (0,) and p.classes.dtype == np.int64
    assert p.logits.shape == (0, 10)
    assert p.probabilities().shape == (0, 10)


def test_evaluate_on_zero_images(tiny_mnist):
    from lenet5_pynq import evaluate

    report = evaluate.evaluate(
        backends.load_backend("cpu-float"), np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
    )
    assert report["images"] == 0 and report["correct"] == 0 and report["same_class_as_golden"] == 0
