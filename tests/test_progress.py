"""Progress bars (lenet5_pynq.progress, tqdm): on stderr when it is a terminal, never on stdout,
off in logs and pipes and with --quiet."""

import io
import re

import numpy as np
import pytest

from lenet5_pynq import bench, evaluate, progress, train, weights


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def tty_stderr(monkeypatch):
    """A terminal where the bars go (pytest's capture resets sys.stderr itself at each phase)."""
    term = Terminal()
    monkeypatch.setattr(progress, "_stream", lambda: term)
    return term


def drew_bar(text: str, desc: str) -> bool:
    return re.search(rf"{re.escape(desc)}: +\d+%\|", text) is not None


def test_enabled_only_on_a_terminal(tty_stderr):
    assert progress.enabled()
    assert not progress.enabled(quiet=True)
    assert not progress.enabled(file=io.StringIO())
    with progress.quiet():
        assert not progress.enabled()
        with progress.quiet(False):
            assert not progress.enabled()
    assert progress.enabled()


def test_bar_draws_on_stderr(tty_stderr, capsys):
    with progress.bar(total=10, desc="work") as bar:
        bar.update(10)
    assert drew_bar(tty_stderr.getvalue(), "work") and "10/10" in tty_stderr.getvalue()
    with progress.bar(total=10, desc="hushed", quiet=True) as bar:
        bar.update(10)
    assert "hushed" not in tty_stderr.getvalue()
    assert capsys.readouterr().out == ""


def test_evaluate_bar_and_quiet(tiny_mnist, tty_stderr, capsys):
    assert evaluate.main(["--backend", "cpu-float", "--mnist", str(tiny_mnist), "--json"]) == 0
    assert drew_bar(tty_stderr.getvalue(), "cpu-float") and drew_bar(tty_stderr.getvalue(), "golden model")
    out = capsys.readouterr().out
    assert out.startswith("{") and "%|" not in out  # stdout stays one JSON object
    tty_stderr.seek(0)
    tty_stderr.truncate()
    assert evaluate.main(["--backend", "cpu-float", "--mnist", str(tiny_mnist), "--quiet"]) == 0
    assert "%|" not in tty_stderr.getvalue()


def test_evaluate_no_bar_when_stderr_is_not_a_terminal(tiny_mnist, capsys):
    assert evaluate.main(["--backend", "cpu", "--mnist", str(tiny_mnist)]) == 0
    captured = capsys.readouterr()
    assert "%|" not in captured.err and "%|" not in captured.out


def test_evaluate_chunks_agree_with_one_call(mnist_test, monkeypatch):
    from lenet5_pynq import backends

    images, labels = mnist_test[0][:250], mnist_test[1][:250]
    monkeypatch.setattr(evaluate, "CHUNK", 64)
    chunked = evaluate.evaluate(backends.load_backend("cpu"), images, labels)
    monkeypatch.setattr(evaluate, "CHUNK", 10_000)
    whole = evaluate.evaluate(backends.load_backend("cpu"), images, labels)
    assert chunked["correct"] == whole["correct"]


def test_bench_bar_and_quiet(tty_stderr, capsys, tiny_mnist):
    args = [
        "--backends",
        "cpu",
        "--batches",
        "1,2",
        "--min-seconds",
        "0.01",
        "--peer",
        "cpu",
        "--mnist",
        str(tiny_mnist),
    ]
    assert bench.main(args) == 0
    assert drew_bar(tty_stderr.getvalue(), "bench")
    assert "%|" not in capsys.readouterr().out
    tty_stderr.seek(0)
    tty_stderr.truncate()
    assert bench.main(args + ["--quiet"]) == 0
    assert "%|" not in tty_stderr.getvalue()


def test_train_quiet_sets_keras_verbose_0(monkeypatch, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    seen = {}

    def fake_train(*args, verbose=1):
        seen["verbose"] = verbose
        return weights.load()[0], {"keras_test_accuracy": 0.99}

    monkeypatch.setattr(train, "train", fake_train)
    out = tmp_path / "w.npz"
    assert train.main(["--mnist", str(tmp_path), "--out", str(out), "--quiet"]) == 0
    assert seen["verbose"] == 0
    assert train.main(["--mnist", str(tmp_path), "--out", str(out)]) == 0
    assert seen["verbose"] == 2  # stdout is not a terminal here: one line per epoch
    assert train.keras_verbosity(False) in (1, 2) and train.keras_verbosity(True) == 0


def test_csim_bar_over_its_chunks(monkeypatch, tty_stderr):
    from lenet5_pynq.backends import BackendUnavailable, csim

    try:
        backend = csim.CsimBackend()
    except BackendUnavailable as e:
        pytest.skip(str(e))
    images = np.random.default_rng(1).integers(0, 256, (12, 28, 28), dtype=np.uint8)
    backend.predict(images)
    assert "csim" not in tty_stderr.getvalue()  # one chunk: no bar
    monkeypatch.setattr(csim, "CHUNK", 5)
    backend.predict(images)
    assert drew_bar(tty_stderr.getvalue(), "csim")
    tty_stderr.seek(0)
    tty_stderr.truncate()
    with progress.quiet():
        backend.predict(images)
    assert "csim" not in tty_stderr.getvalue()


def test_sim_board_bar_over_its_chunks(tty_stderr):
    from simboard_fixtures import make_board, make_overlay

    overlay = make_overlay(make_board(), chunk_images=4)
    try:
        images = np.random.default_rng(2).integers(0, 256, (10, 28, 28), dtype=np.uint8)
        overlay.classify(images[:3])
        assert "fabric" not in tty_stderr.getvalue()
        overlay.classify(images)
        assert drew_bar(tty_stderr.getvalue(), "fabric")
    finally:
        overlay.close()


def test_tqdm_is_a_dependency():
    from importlib import metadata

    requires = [r for r in metadata.requires("lenet5-pynq") or [] if "extra ==" not in r]
    assert any(re.match(r"tqdm\b", r) for r in requires), requires


def test_classify_bar_over_many_files_and_quiet(tty_stderr, capsys, tmp_path):
    from PIL import Image

    from lenet5_pynq import classify

    paths = []
    for index in range(classify.PROGRESS_FROM):
        pixels = np.full((60, 60), 240, np.uint8)
        pixels[10:50, 28:33] = 20
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(pixels).save(paths[-1])
    bad = tmp_path / "blank.png"
    Image.fromarray(np.full((60, 60), 240, np.uint8)).save(bad)
    assert classify.main([*map(str, paths), str(bad), "--backend", "cpu"]) == classify.EXIT_BAD_FILE
    assert drew_bar(tty_stderr.getvalue(), "reading")
    assert f"error: {bad}: no ink found" in tty_stderr.getvalue()  # written above the bar
    assert "%|" not in capsys.readouterr().out
    tty_stderr.seek(0)
    tty_stderr.truncate()
    assert classify.main([*map(str, paths[:3]), "--backend", "cpu"]) == 0
    assert "%|" not in tty_stderr.getvalue()  # a few files: no bar
    assert classify.main([*map(str, paths), "--backend", "cpu", "--quiet"]) == 0
    assert "%|" not in tty_stderr.getvalue()
