"""The accelerator's budget: cycles simulated, arithmetic synthesised (cached), the rest estimated,
against every target part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lenet5_pynq import budget, hls_config, network

REPO = Path(__file__).resolve().parents[1]


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)


def test_shipped_design_fits_the_pynq_z2_with_margin():
    b = budget.compute()
    z2 = b.part("xc7z020clg400-1")
    assert z2.fits, budget.table(b)
    assert z2.ii_cycles <= 2000 and z2.latency_cycles <= 4000
    assert z2.dsp <= 198 and z2.lut <= 34_580 and z2.bram36 <= 112
    assert z2.dsp_available == 220 and z2.lut_available == 53_200 and z2.bram36_available == 140
    assert b.passed, budget.table(b)
    # Every multiplier of the network is counted once: 281,640 MACs an image at the folds' rates.
    assert sum(s.macs for s in network.layer_shapes()) == 281_640
    mults = sum(p.pe * p.simd for p in hls_config.PARALLELISM.values())
    assert sum(s.multipliers for s in b.stages) == mults


@pytest.mark.slow  # synthesises conv2 at the new config (about a minute)
def test_interval_is_the_slowest_stage_and_the_budget_follows_the_configs(monkeypatch, tmp_path):
    from lenet5_pynq import area

    cache = tmp_path / "area_cache.json"  # the shipped cache stays as committed
    cache.write_bytes(area.cache_path().read_bytes())
    monkeypatch.setenv(area.CACHE_ENV, str(cache))
    before = budget.compute()
    slowest = max(before.stages, key=lambda s: s.iterations)
    assert before.ii == slowest.iterations  # no FIFO stall adds to the slowest stage's own loop
    assert before.cycles.bottleneck_stage == slowest.name
    starved = dict(hls_config.PARALLELISM)
    starved["conv2"] = hls_config.Parallelism(pe=16, simd=3, lut_multipliers=False)
    monkeypatch.setattr(hls_config, "PARALLELISM", starved)
    try:
        after = budget.compute()
    except area.AreaUnavailable as e:  # a config the synthesis cache does not hold and no yosys to fill it
        pytest.skip(str(e))
    conv2 = {s.name: s for s in after.stages}["conv2_mac"]
    assert conv2.iterations == 2 * {s.name: s for s in before.stages}["conv2_mac"].iterations
    assert after.ii == conv2.iterations and after.cycles.bottleneck_stage == "conv2_mac"
    z2_before, z2_after = before.part("pynq-z2"), after.part("pynq-z2")
    assert z2_after.dsp == z2_before.dsp - 48
    assert not z2_after.fits and not z2_after.checks["ii_cycles"]["ok"]


def test_storage_estimates_follow_the_primitives():
    assert budget.storage("s", "x", 16, 1280).bram18 == 2  # 1K x 18 twice
    assert budget.storage("s", "x", 16, 720).bram18 == 1
    assert budget.storage("s", "x", 72, 512).bram18 == 2  # 512 x 36 twice
    small = budget.storage("s", "x", 16, 25, banks=96)
    assert small.bram18 == 0 and small.lut == 96 * 4 * 3  # RAM32M: 6 bits in 4 LUTs
    regs = budget.storage("s", "x", 16, 3, banks=50)
    assert regs.bram18 == 0 and regs.ff == 50 * 48
    assert budget.fifo("f", 96, 64).bram18 == 0 and budget.fifo("f", 2400, 2).lut >= 2400


def test_budget_cli_json_has_every_part():
    proc = _run(sys.executable, "-m", "lenet5_pynq.budget", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    d = json.loads(proc.stdout)
    keys = {
        "part",
        "ii_cycles",
        "latency_cycles",
        "dsp",
        "dsp_available",
        "lut",
        "lut_available",
        "bram36",
        "bram36_available",
        "fits",
    }
    assert [p["part"] for p in d["parts"]] == [t.part for t in hls_config.PARTS.values()]
    for p in d["parts"]:
        assert keys <= set(p), p
        assert p["fits"] is True, p
    assert next(s["stage"] for s in d["stages"]) == "read_pixels" and len(d["stages"]) == 2 + 2 * 2 + 3


def test_budget_cli_table_and_bad_arguments():
    proc = _run(sys.executable, "-m", "lenet5_pynq.budget")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "conv1_mac" in proc.stdout and "PASS" in proc.stdout and "yosys" in budget.__doc__
    bad = _run(sys.executable, "-m", "lenet5_pynq.budget", "--images", "1")
    assert bad.returncode == 2 and "--images" in bad.stderr


def test_the_readme_states_the_current_budget():
    """The README's headline figures are those the budget computes now."""
    b = budget.compute()
    z2 = b.part("pynq-z2")
    readme = (REPO / "README.md").read_text()
    for figure in (
        f"{z2.ii_cycles:,} cycles",
        f"{z2.latency_cycles:,} cycles",
        f"{z2.dsp} of {z2.dsp_available} DSP48E1",
        f"{z2.bram36} of {z2.bram36_available} BRAM36",
    ):
        assert figure in readme, figure
