"""The cycle simulation of the dataflow chain (lenet5_pynq.cyclesim): a hand-checked tiny chain,
a literal cycle-by-cycle stepper as a witness of the engine, and the shipped chain with its
configured, starved and refolded variants."""

import dataclasses
import json

import pytest

from lenet5_pynq import cyclesim, hls_config
from lenet5_pynq.cyclesim import Op, StageSpec


# ------------------------------------------------------------------ the engine by hand
def _two_stages():
    """A: 3 iterations an image, each writes one element (the first also reads the input beat),
    pipeline depth 2.  B: 6 iterations an image, reads at the even ones, writes the output beat
    at the last one, pipeline depth 2."""
    a = StageSpec("a", 3, 2, tuple(Op(i, writes=("f",), beat_in=i == 0) for i in range(3)))
    b = StageSpec("b", 6, 2, tuple(Op(i, reads=("f",)) for i in (0, 2, 4)) + (Op(5, beat_out=True),))
    return [a, b]


def test_two_stages_depth_1_by_hand():
    # Element m of f is written at A(m), readable at A(m) + 2; with depth 1, A(m) >= B reads m-1, + 1.
    #   A writes at 0, 3, 6 | 9, 12, 15        (stalled on full f 2 cycles before each but the first)
    #   B reads at  2, 5, 8 | 11, 14, 17       (stalled on empty f: cycles 0-1, then one before each)
    #   B's last iterations at 9 and 18: the output beats leave at 9 + 2 - 1 and 18 + 2 - 1.
    r = cyclesim.run(_two_stages(), {"f": 1}, images=2)
    assert r.first_in == [0, 9]
    assert r.last_out == [10, 19]
    assert r.latency == 11
    assert r.interval == 9
    a, b = r.stages["a"], r.stages["b"]
    assert (a.first_issue, a.last_issue, a.iterations) == (0, 15, 6)
    assert (b.first_issue, b.last_issue, b.iterations) == (2, 18, 12)
    assert a.stall_full == {"f": 10} and a.stall_empty == {}
    assert b.stall_empty == {"f": 7} and b.stall_full == {}
    assert r.fifos["f"].max_occupancy == 1
    # Steady window [11, 20): B issues at 11, 12, 14, 15, 17, 18 (6 of 9 cycles) and waits on empty
    # f at 13 and 16, while A waits on full f: the FIFO is the bound.
    assert r.window == (11, 20)
    assert r.stages["b"].steady_busy == 6
    assert r.stages["b"].steady_stall_empty == {"f": 2}
    assert (r.bottleneck_stage, r.bottleneck_fifo, r.compute_bound) == ("b", "f", False)


def test_two_stages_depth_2_by_hand():
    # Depth 2: A writes at 0, 1, 3 | 5, 7, 9 (element m waits for B's read of m - 2); B reads at
    # 2, 4, 6 | 8, 10, 12 without a stall after its first: the interval is B's 6 iterations.
    r = cyclesim.run(_two_stages(), {"f": 2}, images=2)
    assert r.first_in == [0, 5]
    assert r.last_out == [8, 14]
    assert (r.latency, r.interval) == (9, 6)
    assert r.stages["b"].stall_empty == {"f": 2}
    assert r.stages["a"].stall_full == {"f": 1 + 1 + 1 + 1}
    assert r.fifos["f"].max_occupancy == 2
    # The steady window is the interval in the middle of the batch: with 3 images [9, 15), where B
    # issues every cycle (image 2: A at 11, 13, 15, B reads at 14, 16, 18, its beat at 19 + 1).
    r = cyclesim.run(_two_stages(), {"f": 2}, images=3)
    assert r.last_out == [8, 14, 20] and r.window == (9, 15)
    assert r.stages["b"].steady_busy == 6
    assert (r.bottleneck_stage, r.bottleneck_fifo, r.compute_bound) == ("b", None, True)


def test_unbounded_fifo_and_errors():
    r = cyclesim.run(_two_stages(), {"f": None}, images=2)
    assert r.stages["a"].stall_full == {}
    assert r.last_out == [8, 14]
    with pytest.raises(ValueError, match="depth 0"):
        cyclesim.run(_two_stages(), {"f": 0}, images=1)
    with pytest.raises(ValueError, match="name no FIFO"):
        cyclesim.run(_two_stages(), {"g": 1}, images=1)


def test_deadlock_is_reported():
    # A writes f twice, then g; B reads g first: with f of depth 1, A waits for room in f that
    # only B's reads of f make, and B waits for g.
    a = StageSpec("a", 3, 1, (Op(0, writes=("f",), beat_in=True), Op(1, writes=("f",)), Op(2, writes=("g",))))
    b = StageSpec("b", 3, 1, (Op(0, reads=("g",)), Op(1, reads=("f",)), Op(2, reads=("f",), beat_out=True)))
    with pytest.raises(cyclesim.Deadlock, match="a at iteration 1"):
        cyclesim.run([a, b], {"f": 1, "g": 2}, images=1)
    assert cyclesim.run([a, b], {"f": 2, "g": 2}, images=1).last_out == [5]


# ------------------------------------------------------------------ a literal witness
def _step(specs, depths, images):
    """Cycle by cycle, every stage decides on the state at the start of the cycle: the model's
    definition, written out without the engine's shortcuts."""
    producer = {f: sp for sp in specs for op in sp.ops for f in op.writes}
    writes = {f: [] for f in producer}
    reads = {f: [] for f in producer}
    ops = [{op.index: op for op in sp.ops} for sp in specs]
    done = [0] * len(specs)
    first_in, last_out = [None] * images, [None] * images
    t = 0
    while any(done[i] < images * sp.iterations for i, sp in enumerate(specs)):
        go = []
        for i, sp in enumerate(specs):
            op = ops[i].get(done[i] % sp.iterations) if done[i] < images * sp.iterations else None
            ok = done[i] < images * sp.iterations
            if op:
                for f in op.reads:
                    k = len(reads[f])
                    ok &= k < len(writes[f]) and writes[f][k] + producer[f].depth <= t
                for f in op.writes:
                    held = len(writes[f]) - sum(x < t for x in reads[f])
                    ok &= depths[f] is None or held < depths[f]
            go.append((ok, op))
        for i, (ok, op) in enumerate(go):
            if ok:
                img = done[i] // specs[i].iterations
                if op:
                    for f in op.reads:
                        reads[f].append(t)
                    for f in op.writes:
                        writes[f].append(t)
                    if op.beat_in and first_in[img] is None:
                        first_in[img] = t
                    if op.beat_out:
                        last_out[img] = t + specs[i].depth - 1
                done[i] += 1
        t += 1
    return first_in, last_out


@pytest.mark.parametrize("change", [{}, {"conv1_out": 1, "fc1_out": 1}, {"pixels": 1, "fc3_out": None}])
def test_engine_equals_cycle_stepping(change):
    specs = cyclesim.stage_specs()
    depths = {**cyclesim.configured_depths(), **change}
    r = cyclesim.run(specs, depths, images=2)
    assert (r.first_in, r.last_out) == _step(specs, depths, 2)


# ------------------------------------------------------------------ the shipped chain
def test_chain_from_the_configs():
    specs = {s.name: s for s in cyclesim.stage_specs()}
    assert list(specs) == list(cyclesim.pipeline_depths())
    # the trip counts of the brief, from the configs
    assert specs["read_pixels"].iterations == 784 and sum(op.beat_in for op in specs["read_pixels"].ops) == 98
    assert specs["conv1_mac"].iterations == 576 * 3 * 1
    assert specs["conv2_mac"].iterations == 64 * 1 * 25
    assert specs["fc1"].iterations == 16 * 8 * 10 + 10
    assert specs["fc2"].iterations == 10 * 6 * 12 + 12
    assert specs["fc3"].iterations == 12 * 1 * 10 + 10
    assert specs["write_results"].iterations == 10 + 3
    assert cyclesim.pipeline_depths()["conv1_mac"] == 3 + 5 + 2


def test_shipped_configs_run_at_the_slowest_stage():
    r = cyclesim.simulate(images=8)
    slowest = max(cyclesim.stage_specs(), key=lambda s: s.iterations)
    assert slowest.name == "conv1_mac"
    assert r.steady
    assert r.interval == slowest.iterations, r.explanation
    assert (r.bottleneck_stage, r.bottleneck_fifo, r.compute_bound) == ("conv1_mac", None, True)
    assert r.latency < 4000
    assert r.latency <= hls_config.CYCLE_LIMITS["latency"] and r.interval <= hls_config.CYCLE_LIMITS["ii"]
    json.dumps(r.to_dict())


def test_suggested_depths_reach_unbounded_fifos():
    unbounded = cyclesim.simulate(images=8, depths={f: None for f in hls_config.streams()})
    assert unbounded.interval == 576 * 3 and unbounded.bottleneck_stage == "conv1_mac"
    depths = cyclesim.suggest_depths(images=4)
    assert set(depths) == set(hls_config.streams()) and None not in depths.values()
    r = cyclesim.simulate(images=8, depths=depths)
    assert r.interval == unbounded.interval
    assert unbounded.latency <= r.latency <= 1.01 * unbounded.latency < 4000
    # conv1's window FIFO must cover the 4 rows and 5 pixels of an image that conv1_windows reads
    # before its first window, while conv1_mac (3 cycles a window) works from the FIFO.
    assert depths["conv1_windows"] >= (4 * 28 + 4) // 3
    for f, d in depths.items():
        assert r.fifos[f].max_occupancy <= d


@pytest.mark.parametrize("fifo", ["conv1_out", "conv2_out"])
def test_starved_fifo_is_seen(monkeypatch, fifo):
    base = cyclesim.simulate(images=8)
    monkeypatch.setitem(hls_config.FIFO_DEPTH, fifo, 1)
    r = cyclesim.simulate(images=8)
    assert r.fifos[fifo].depth == 1 and r.fifos[fifo].max_occupancy == 1
    assert r.interval > base.interval or r.latency > base.latency
    producer = r.fifos[fifo].producer
    assert r.stages[producer].stall_full.get(fifo, 0) > base.stages[producer].stall_full.get(fifo, 0)
    if r.interval > base.interval and fifo == "conv1_out":
        assert r.bottleneck_fifo == fifo, r.explanation
        assert f"full {fifo}" in r.explanation


def test_starved_conv1_out_bounds_the_interval():
    r = cyclesim.simulate(images=8, depths={"conv1_out": 1})
    assert r.interval > 576 * 3
    assert (r.bottleneck_stage, r.bottleneck_fifo, r.compute_bound) == ("conv1_mac", "conv1_out", False)
    assert r.stages["conv1_mac"].steady_stall_full["conv1_out"] > 0


def test_refolded_conv2_moves_the_bottleneck(monkeypatch):
    monkeypatch.setitem(hls_config.PARALLELISM, "conv2", dataclasses.replace(hls_config.PARALLELISM["conv2"], simd=3))
    r = cyclesim.simulate(images=8)
    conv2 = r.stages["conv2_mac"]
    assert conv2.iterations_per_image == 64 * 1 * 50
    assert conv2.depth == 3 + 2 + 2
    assert r.interval == conv2.iterations_per_image
    assert (r.bottleneck_stage, r.bottleneck_fifo) == ("conv2_mac", None)


def test_cli(capsys):
    assert cyclesim.main(["--images", "3", "--depth", "conv1_out=1", "--depth", "fc3_out=inf", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["fifos"]["conv1_out"]["depth"] == 1 and d["fifos"]["fc3_out"]["depth"] is None
    assert d["bottleneck_fifo"] == "conv1_out" and len(d["last_out"]) == 3
    assert cyclesim.main(["--images", "2"]) == 0
    assert "interval" in capsys.readouterr().out
    assert cyclesim.main(["--depth", "nowhere=4"]) == 2
    assert "nowhere" in capsys.readouterr().err
