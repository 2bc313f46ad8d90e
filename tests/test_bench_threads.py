"""bench --threads and the measured fp32 peak (issue 14): the thread count reaches the backends
that have one and is recorded in every row; cpu-float rows carry their share of the peak."""

from __future__ import annotations

import json

import pytest

from lenet5_pynq import backends, bench, network


def test_threads_recorded_and_peak_share(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--backends", "cpu,cpu-float", "--batches", "1,8", "--min-seconds", "0.02", "--peer", "cpu"]
    assert bench.main(args + ["--threads", "2", "--json", str(out), "--quiet"]) == 0
    rows = json.loads(out.read_text())
    floats = [r for r in rows if r["backend"] == "cpu-float"]
    assert floats and all(r["threads"] == 2 for r in floats)
    for r in rows:  # only to the backends that have a thread count
        assert r["threads"] == (2 if backends.takes_argument(r["backend"], "threads") else None)
    flop = 2 * sum(s.macs for s in network.layer_shapes())
    for r in floats:
        assert r["flop_per_image"] == flop and r["peak_cores"] == 2
        assert r["percent_of_fp32_peak"] == pytest.approx(
            100 * r["images_per_second"] * flop / (2 * r["fp32_peak_gflops_one_core"] * 1e9)
        )


def test_onnxruntime_peer_gets_the_threads(tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    out = tmp_path / "bench.json"
    args = ["--backends", "cpu-float,onnxruntime", "--batches", "4", "--min-seconds", "0.02", "--peer", "onnxruntime"]
    assert bench.main(args + ["--threads", "1", "--json", str(out), "--quiet"]) == 0
    rows = {r["backend"]: r for r in json.loads(out.read_text())}
    assert rows["onnxruntime"]["threads"] == 1 and rows["onnxruntime"]["version"].startswith("onnxruntime ")
    assert rows["cpu-float"]["vs"]["onnxruntime"] == pytest.approx(
        rows["cpu-float"]["images_per_second"] / rows["onnxruntime"]["images_per_second"]
    )


@pytest.mark.parametrize("value, message", [("0", "must be at least 1"), ("two", "must be a whole number")])
def test_bad_threads(value, message, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--threads", value])
    assert e.value.code == 2 and message in capsys.readouterr().err
