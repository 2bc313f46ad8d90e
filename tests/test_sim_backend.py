"""The `sim` and `fpga` backends: `evaluate --backend sim` is bit-exact with the golden model on
all 10,000 test images, also after loading a second weight set; `fpga` steps aside quickly off a
board so `auto` falls through; `bench` measures the sim backend."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from simboard_fixtures import assert_exact, sample_images

from lenet5_pynq import backends, bench, evaluate, export, golden, weights
from lenet5_pynq.backends.fpga import on_board


def _sim():
    try:
        return backends.load_backend("sim", verbose=False)
    except backends.BackendUnavailable as e:
        pytest.skip(f"sim backend unavailable: {e}")


@pytest.mark.slow
def test_evaluate_sim_all_test_images_bit_exact(mnist_dir, capsys):
    _sim().close()
    start = time.perf_counter()
    assert evaluate.main(["--backend", "sim", "--mnist", str(mnist_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    seconds = time.perf_counter() - start
    assert report["images"] == 10000
    assert report["bit_exact_with_golden"] == 10000, report
    assert report["same_class_as_golden"] == 10000
    print(
        f"sim: 10,000 images in {report['seconds']:.1f} s ({10000 / report['seconds']:.0f} images/s), "
        f"evaluate total {seconds:.1f} s"
    )


@pytest.mark.slow
def test_sim_after_second_weight_set_all_test_images(mnist_test):
    images, _ = mnist_test
    params, _ = weights.load()
    alt_layers, _ = export.load_set(alternate=True)
    with _sim() as sim:
        sim.load_weights(export.alternate_params(params))
        pred = sim.predict(images)
    classes, logits = golden.predict_raw(images, alt_layers)
    same = np.all(pred.logits == logits, axis=1) & (pred.classes == classes)
    assert int(same.sum()) == len(images) == 10000


def test_sim_backend_predict_and_logit_scale():
    with _sim() as sim:
        assert sim.name == "sim" and sim.exact
        images = sample_images(12)
        pred = sim.predict(images)
        assert_exact(pred, images)
        cpu = backends.load_backend("cpu", verbose=False)
        assert pred.logit_scale == cpu.predict(images).logit_scale
        assert sim.last_timing.images == 12


def test_fpga_backend_is_unavailable_quickly_off_board():
    if on_board():
        pytest.skip("on a PYNQ board")
    start = time.perf_counter()
    with pytest.raises(backends.BackendUnavailable, match="not a PYNQ board"):
        backends.load_backend("fpga", verbose=False)
    assert time.perf_counter() - start < 0.5


def test_auto_skips_fpga_off_board(capsys):
    if on_board():
        pytest.skip("on a PYNQ board")
    backend = backends.load_backend("auto")
    assert backend.name != "fpga"
    assert "fpga" not in capsys.readouterr().err  # off a board, no word about one


def test_bench_measures_sim():
    _sim().close()
    rows = bench.run(["sim", "cpu"], [1, 8], min_seconds=0.05, log=lambda *a: None)
    names = {(r["backend"], r["batch"]) for r in rows}
    assert {("sim", 1), ("sim", 8), ("cpu", 1), ("cpu", 8)} <= names
