"""Outputs that are atomic and checked before the work (issue 11, part 6, with the argument
checks of part 8 that sit beside them): JSON, PNG, spec, weights, headers and weight streams
are written to a temporary file and renamed (removed on failure); unwritable paths fail before
the benchmark or the training; messages name the file really written."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest

from lenet5_pynq import atomic, bench, export, hls_stream, train, weights


def _no_temps(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []


def _disk_full(monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)


# ----------------------------------------------------------------------- the helper
def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_write(target, "w") as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and _no_temps(tmp_path)


def test_atomic_write_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    _disk_full(monkeypatch)
    with pytest.raises(atomic.OutputError, match=r"out.bin: No space left on device \(nothing written\)"):
        atomic.write_bytes(tmp_path / "out.bin", b"x" * 100)
    assert not (tmp_path / "out.bin").exists() and _no_temps(tmp_path)


@pytest.mark.parametrize("case", ["missing-dir", "is-dir", "empty"])
def test_check_writable_refuses(tmp_path, case):
    path = {"missing-dir": tmp_path / "nope" / "f", "is-dir": tmp_path, "empty": ""}[case]
    with pytest.raises(atomic.OutputError):
        atomic.check_writable(path)


def test_weights_save_is_atomic(tmp_path, monkeypatch):
    params, _ = weights.load()
    out = tmp_path / "w.npz"
    weights.save(out, params)
    assert weights.load(out)[0].keys() == params.keys() and _no_temps(tmp_path)
    before = out.read_bytes()
    _disk_full(monkeypatch)
    with pytest.raises(OSError):
        weights.save(out, params)
    assert out.read_bytes() == before and _no_temps(tmp_path)


# ------------------------------------------------------------------------------ bench
def _bench(mnist_dir, *extra):
    return bench.main(
        [
            "--backends",
            "cpu",
            "--batches",
            "1",
            "--min-seconds",
            "0",
            "--peer",
            "cpu",
            "--mnist",
            str(mnist_dir),
            *extra,
        ]
    )


def test_bench_json_on_a_full_disk_leaves_no_truncated_json(tiny_mnist, tmp_path, monkeypatch, capsys):
    out = tmp_path / "rows.json"
    out.write_text("[]\n")
    _disk_full(monkeypatch)
    assert _bench(tiny_mnist, "--json", str(out)) == 1
    assert out.read_text() == "[]\n" and _no_temps(tmp_path)
    assert "rows.json" in capsys.readouterr().err


def test_bench_json_written_whole(tiny_mnist, tmp_path):
    out = tmp_path / "rows.json"
    assert _bench(tiny_mnist, "--json", str(out)) == 0
    assert json.loads(out.read_text())[0]["backend"] == "cpu"


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_bench_unwritable_output_fails_before_the_benchmark(tiny_mnist, tmp_path, monkeypatch, capsys, option):
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("benchmarked before checking the output"))
    for bad in (tmp_path / "missing" / "x", tmp_path):
        with pytest.raises(SystemExit) as info:
            _bench(tiny_mnist, option, str(bad))
        assert info.value.code == 2
        assert str(bad) in capsys.readouterr().err


def test_bench_plot_says_the_file_it_wrote(tiny_mnist, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    name = tmp_path / "figure"
    assert _bench(tiny_mnist, "--plot", str(name)) == 0
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {tmp_path / 'figure.png'}" in capsys.readouterr().out
    assert _no_temps(tmp_path)


# ------------------------------------------------------------------------------ train
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--out", "/nonexistent-dir/w.npz"], "does not exist"),
        (["--limit", "0"], "--limit"),
        (["--limit", "-5"], "--limit"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_train_refuses_bad_arguments_before_training(tiny_mnist, monkeypatch, capsys, extra, message):
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("trained before checking the arguments"))
    with pytest.raises(SystemExit) as info:
        train.main(["--mnist", str(tiny_mnist), *extra])
    assert info.value.code == 2 and message in capsys.readouterr().err


# ----------------------------------------------------------------------------- export
def test_export_weight_stream_is_atomic_and_checked(tmp_path, capsys):
    out = tmp_path / "w.bin"
    assert export.main(["weight-stream", "--out", str(out)]) == 0
    assert len(np.fromfile(out, "<u8")) == hls_stream.weight_stream_beats() and _no_temps(tmp_path)
    for bad in (tmp_path / "missing" / "w.bin", tmp_path):
        with pytest.raises(SystemExit) as info:
            export.main(["weight-stream", "--out", str(bad)])
        assert info.value.code == 2 and str(bad) in capsys.readouterr().err


def test_export_golden_checks_count_and_out(tiny_mnist, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        export.main(["golden", "--mnist", str(tiny_mnist), "--count", "-1", "--out", str(tmp_path / "g")])
    assert info.value.code == 2 and "--count" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as info:
        export.main(["golden", "--mnist", str(tiny_mnist), "--out", str(blocker)])
    assert info.value.code == 2 and "is a file" in capsys.readouterr().err
    assert export.main(["golden", "--mnist", str(tiny_mnist), "--count", "3", "--out", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g" / "images.bin").stat().st_size == 3 * 784 and _no_temps(tmp_path / "g")


def test_export_hls_headers_are_written_atomically(tmp_path):
    out = tmp_path / "generated"
    assert export.main(["hls", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(export.render_headers())
    assert export.main(["hls", "--out", str(out), "--check"]) == 0


# ------------------------------------------------------------- bench arguments (part 8)
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backends", "gpufoo"], "unknown backend 'gpufoo'"),
        (["--backends", "torchy"], "unknown backend"),
        (["--batches", "100000000"], "more than 1,000,000"),
        (["--batches", "x"], "not a comma-separated"),
    ],
)
def test_bench_bad_arguments_are_usage_errors(capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        bench.main(extra)
    assert info.value.code == 2 and message in capsys.readouterr().err
