"""The accelerator's budget: cycles from a cycle simulation, area from synthesis of its arithmetic
plus named estimates, against every target part.  Everything is derived from the values the HLS
code is generated from (`network.layer_shapes()`, `hls_config`, the fixed-point spec).

    python -m lenet5_pynq.budget            # the tables, and PASS/FAIL for every part
    python -m lenet5_pynq.budget --json     # the same as JSON

What each figure is:
* cycles (`lenet5_pynq.cyclesim`): a cycle-by-cycle simulation of the dataflow chain of
  hls_src/lenet5.cpp for a batch of images: every stage's pipelined loop at II = 1 with its
  per-iteration reads and writes, blocking on empty and full FIFOs of the configured depths, and
  an estimated pipeline depth per stage.  A model: Vitis HLS's schedule can differ in pipeline
  depths and in the few cycles around loop entry.
* arithmetic (`lenet5_pynq.area`): the multipliers, adder trees, accumulators, casts and
  pooling comparators of every MAC stage, written as Verilog from the configs and synthesised
  with yosys `synth_xilinx` (cached per config).  Measured, by yosys rather than Vivado.
* memories, registers, FIFOs, multiplexers: estimated here from each array's shape and the
  device primitives (UG474: SRLC32E, RAM32M/RAM64M; UG473: BRAM18 aspect ratios).
* control and the platform (DMA, interconnect, reset, AXI-Lite adapter): named estimates from
  `lenet5_pynq.area` with their sources.
Neither Vitis HLS nor Vivado has produced any of these numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field

from . import area, cli_types, cyclesim, fixedspec, hls_config, hls_stream, network

WORD_BITS = 16  # weight, bias and activation words (the spec's formats are at most this wide)
SIM_IMAGES = 8  # images in the simulated batch: enough for the interval to settle
BRAM18_MODES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))  # depth x width, UG473


@dataclass
class Row:
    """One named piece of the design and what it costs."""

    stage: str
    item: str
    source: str  # "yosys", "estimate" or a named estimate's source
    lut: int = 0
    ff: int = 0
    dsp: int = 0
    bram18: int = 0
    detail: str = ""


# ------------------------------------------------------------------------- storage estimates
def _mux_luts_per_bit(inputs: int) -> int:
    """LUT6s per bit of an inputs:1 multiplexer (a LUT6 is a 4:1 mux; a tree of them)."""
    luts, n = 0, inputs
    while n > 1:
        n = math.ceil(n / 4)
        luts += n
    return luts


def storage(stage: str, item: str, width: int, depth: int, banks: int = 1) -> Row:
    """An array of `banks` memories of depth x width bits, one read (and one write) a cycle."""
    if depth <= 4:
        lut = banks * width * _mux_luts_per_bit(depth)
        return Row(
            stage,
            item,
            "estimate",
            lut=lut,
            ff=banks * width * depth,
            detail=f"{banks} x {depth} x {width} b registers",
        )
    if depth <= 64:
        per_lutram = 6 if depth <= 32 else 3  # RAM32M: 32 x 6 b, RAM64M: 64 x 3 b simple dual port, 4 LUTs each
        lut = banks * 4 * math.ceil(width / per_lutram)
        return Row(stage, item, "estimate", lut=lut, ff=banks * width, detail=f"{banks} x {depth} x {width} b LUTRAM")
    bram = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM18_MODES)
    return Row(
        stage, item, "estimate", bram18=banks * bram, ff=banks * width, detail=f"{banks} x {depth} x {width} b BRAM18"
    )


def fifo(stream: str, width: int, depth: int) -> Row:
    """A stream FIFO: shift registers (SRLC32E) up to 32 deep, then a memory."""
    control = 12  # read/write pointers or the SRL address and the full/empty flags
    if depth <= 32:
        return Row(
            "fifo",
            stream,
            "estimate",
            lut=width * math.ceil(depth / 32) + control,
            ff=width + control,
            detail=f"{depth} x {width} b SRL",
        )
    mem = storage("fifo", stream, width, depth)
    return Row(
        "fifo",
        stream,
        "estimate",
        lut=mem.lut + 2 * control,
        ff=mem.ff + 2 * control,
        bram18=mem.bram18,
        detail=mem.detail,
    )


def register(stage: str, item: str, bits: int) -> Row:
    return Row(stage, item, "estimate", ff=bits, detail=f"{bits} b")


# --------------------------------------------------------------------------------- the stages
@dataclass
class Stage:
    name: str
    trips: str
    iterations: int  # per image, one a cycle at II = 1
    multipliers: int = 0
    mult_kind: str = ""
    rows: list[Row] = field(default_factory=list)


def _stream_widths(spec: fixedspec.FixedSpec) -> dict[str, int]:
    """Bits of one element of every stream of the chain."""
    widths = {"pixels": spec.input.width * network.INPUT_CHANNELS}
    for s in network.layer_shapes():
        name, w_in = s.layer.name, spec.in_format(s.layer.name).width
        out_w = spec.layers[name].output.width
        if isinstance(s.layer, network.Conv):
            widths[f"{name}_windows"] = s.fan_in * w_in
            widths[f"{name}_out"] = s.layer.filters * out_w
        else:
            widths[f"{name}_out"] = hls_config.PARALLELISM[name].pe * out_w
    return widths


def stages(spec: fixedspec.FixedSpec | None = None) -> list[Stage]:
    hls_config.check()
    spec = spec or fixedspec.load()
    shapes = network.layer_shapes()
    per_beat = hls_stream.PIXELS_PER_BEAT // hls_config.INPUT_PIXELS_PER_ELEMENT
    out = [
        Stage(
            "read_pixels",
            f"{hls_stream.IN_BEATS_PER_IMAGE} beats x {per_beat} pixels",
            hls_stream.IN_BEATS_PER_IMAGE * per_beat,
            rows=[
                Row(
                    "read_pixels",
                    "beat register and byte select",
                    "estimate",
                    lut=spec.input.width * _mux_luts_per_bit(per_beat),
                    ff=64,
                )
            ],
        )
    ]
    for s in shapes:
        layer, p, f = s.layer, hls_config.PARALLELISM[s.layer.name], spec.layers[s.layer.name]
        w_in = spec.in_format(layer.name).width
        mults, kind = p.pe * p.simd, "LUT" if p.lut_multipliers else "DSP"
        if isinstance(layer, network.Conv):
            h, w, c = s.in_shape
            k, ch, cw = layer.kernel, s.conv_shape[0], s.conv_shape[1]
            name = f"{layer.name}_windows"
            out.append(
                Stage(
                    name,
                    f"{h} rows x {w} pixels",
                    h * w,
                    rows=[
                        storage(name, "line memories", c * w_in, w, banks=k - 1),
                        register(name, "window registers", k * k * c * w_in),
                    ],
                )
            )
            nf, sf = layer.filters // p.pe, s.fan_in // p.simd
            name = f"{layer.name}_mac"
            rows = [
                storage(name, "kernel banks", WORD_BITS, nf * sf, banks=mults),
                storage(name, "bias banks", WORD_BITS, nf, banks=p.pe),
                storage(name, "pool row", f.output.width, (cw // layer.pool) * nf, banks=p.pe),
                register(
                    name,
                    "window, accumulators, column maxima, pooled pixel",
                    s.fan_in * w_in
                    + p.pe * f.accum.width
                    + nf * p.pe * f.output.width
                    + layer.filters * f.output.width,
                ),
            ]
            if sf > 1:
                rows.append(
                    Row(name, f"window slice select ({sf}:1)", "estimate", lut=p.simd * w_in * _mux_luts_per_bit(sf))
                )
            out.append(Stage(name, f"{ch * cw} windows x {nf} x {sf} folds", ch * cw * nf * sf, mults, kind, rows))
        else:
            nf, sf = layer.units // p.pe, s.fan_in // p.simd
            groups = hls_config.in_vec(layer.name) // p.simd
            rows = [
                storage(layer.name, "kernel banks", WORD_BITS, sf * nf, banks=mults),
                storage(layer.name, "bias banks", WORD_BITS, nf, banks=p.pe),
                register(
                    layer.name,
                    "input element, rotating accumulators",
                    hls_config.in_vec(layer.name) * w_in + nf * p.pe * f.accum.width,
                ),
            ]
            if groups > 1:
                rows.append(
                    Row(
                        layer.name,
                        f"input slice select ({groups}:1)",
                        "estimate",
                        lut=p.simd * w_in * _mux_luts_per_bit(groups),
                    )
                )
            out.append(Stage(layer.name, f"{sf} slices x {nf} folds + {nf} emit", sf * nf + nf, mults, kind, rows))
    last = hls_config.PARALLELISM[shapes[-1].layer.name]
    reads = network.NUM_CLASSES // last.pe
    logit_bits = network.NUM_CLASSES * spec.logits.width
    out.append(
        Stage(
            "write_results",
            f"{reads} reads + {hls_stream.OUT_BEATS_PER_IMAGE} beats",
            reads + hls_stream.OUT_BEATS_PER_IMAGE,
            rows=[
                register("write_results", "logits and packed words", logit_bits + hls_stream.OUT_BEATS_PER_IMAGE * 64),
                Row(
                    "write_results",
                    "argmax comparators",
                    "estimate",
                    lut=(network.NUM_CLASSES - 1) * (spec.logits.width + 4),
                ),
            ],
        )
    )
    for st in out:
        st.rows.append(Row(st.name, "control", area.CONTROL_SOURCE, lut=area.CONTROL_LUT, ff=area.CONTROL_FF))
    return out


def fifo_rows(spec: fixedspec.FixedSpec) -> list[Row]:
    widths = _stream_widths(spec)
    return [fifo(name, widths[name], hls_config.fifo_depth(name)) for name in hls_config.streams()]


def arithmetic_rows(family: str) -> list[Row]:
    rows = []
    for s in network.layer_shapes():
        a = area.stage_area(s.layer.name, family)
        stage = f"{s.layer.name}_mac" if isinstance(s.layer, network.Conv) else s.layer.name
        rows.append(
            Row(
                stage,
                "arithmetic",
                "yosys",
                lut=a["lut"],
                ff=a["ff"],
                dsp=a["dsp"],
                detail=f"yosys {a.get('yosys', '')} synth_xilinx -family {family}".strip(),
            )
        )
    return rows


def platform_rows(family: str) -> list[Row]:
    return [
        Row(
            "platform",
            e["name"],
            e["source"],
            lut=e["lut"],
            ff=e["ff"],
            dsp=e.get("dsp", 0),
            bram18=2 * e.get("bram36", 0),
        )
        for e in area.platform_estimates(family)
    ]


# --------------------------------------------------------------------------------- the budget
@dataclass
class PartBudget:
    board: str
    part: str
    dsp: int
    dsp_available: int
    lut: int
    lut_available: int
    ff: int
    ff_available: int
    bram36: int
    bram36_available: int
    ii_cycles: int
    latency_cycles: int
    checks: dict[str, dict] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return all(c["ok"] for c in self.checks.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fits"] = self.fits
        return d


@dataclass
class Budget:
    stages: list[Stage]
    fifos: list[Row]
    cycles: cyclesim.SimResult
    parts: list[PartBudget]
    rows: dict[str, list[Row]]  # by yosys family

    @property
    def ii(self) -> int:
        return self.cycles.interval

    @property
    def latency(self) -> int:
        return self.cycles.latency

    @property
    def passed(self) -> bool:
        return all(p.fits for p in self.parts)

    def part(self, part: str) -> PartBudget:
        return next(p for p in self.parts if p.part == part or p.board == part)


def _part_budget(board: str, target: hls_config.Part, rows: list[Row], cycles) -> PartBudget:
    lut, ff, dsp = (sum(getattr(r, k) for r in rows) for k in ("lut", "ff", "dsp"))
    bram36 = math.ceil(sum(r.bram18 for r in rows) / 2)
    pb = PartBudget(
        board,
        target.part,
        dsp,
        target.dsp,
        lut,
        target.lut,
        ff,
        target.ff,
        bram36,
        target.bram36,
        cycles.interval,
        cycles.latency,
    )
    m, c = hls_config.MARGINS, hls_config.CYCLE_LIMITS
    for what, value, limit in (
        ("dsp", dsp, math.floor(target.dsp * m["dsp"])),
        ("lut", lut, math.floor(target.lut * m["lut"])),
        ("bram36", bram36, math.floor(target.bram36 * m["bram36"])),
        ("ii_cycles", cycles.interval, c["ii"]),
        ("latency_cycles", cycles.latency, c["latency"]),
    ):
        pb.checks[what] = {"value": value, "limit": limit, "ok": value <= limit}
    return pb


def compute(images: int = SIM_IMAGES) -> Budget:
    spec = fixedspec.load()
    st = stages(spec)
    fifos = fifo_rows(spec)
    cycles = cyclesim.simulate(images=images)
    by_family: dict[str, list[Row]] = {}
    parts = []
    for board, target in hls_config.PARTS.items():
        if target.family not in by_family:
            by_family[target.family] = (
                [r for s in st for r in s.rows] + fifos + arithmetic_rows(target.family) + platform_rows(target.family)
            )
        parts.append(_part_budget(board, target, by_family[target.family], cycles))
    return Budget(st, fifos, cycles, parts, by_family)


# --------------------------------------------------------------------------------- reporting
def _stage_rows(b: Budget, family: str) -> list[dict]:
    rows = b.rows[family]
    out = []
    for s in b.stages:
        mine = [r for r in rows if r.stage == s.name]
        out.append(
            {
                "stage": s.name,
                "trips": s.trips,
                "ii": 1,
                "iterations_per_image": s.iterations,
                "multipliers": s.multipliers,
                "multiplier_kind": s.mult_kind,
                "lut": sum(r.lut for r in mine),
                "ff": sum(r.ff for r in mine),
                "dsp": sum(r.dsp for r in mine),
                "bram18": sum(r.bram18 for r in mine),
                "stall_cycles": b.cycles.stage_stalls(s.name),
            }
        )
    return out


def to_dict(b: Budget) -> dict:
    first = hls_config.PARTS[hls_config.DEFAULT_BOARD].family
    return {
        "clock_mhz": hls_config.CLOCK_MHZ,
        "margins": hls_config.MARGINS,
        "cycle_limits": hls_config.CYCLE_LIMITS,
        "parts": [p.to_dict() for p in b.parts],
        "cycles": b.cycles.to_dict(),
        "stages": _stage_rows(b, first),
        "rows": {fam: [asdict(r) for r in rows] for fam, rows in b.rows.items()},
    }


def table(b: Budget | None = None) -> str:
    b = b or compute()
    family = hls_config.PARTS[hls_config.DEFAULT_BOARD].family
    c = b.cycles
    lines = [
        f"LeNet-5 accelerator budget at {hls_config.CLOCK_MHZ} MHz (from lenet5_pynq.network, hls_config and the fixed-point spec)",
        "",
        f"Cycles (cycle simulation of {c.images} images, bounded FIFOs, estimated pipeline depths):",
        f"  interval between images {c.interval:,} cycles ({hls_config.CLOCK_MHZ * 1e6 / c.interval:,.0f} images/s), "
        f"bound by {c.bottleneck_stage}" + (f" (FIFO {c.bottleneck_fifo})" if c.bottleneck_fifo else ""),
        f"  latency of the first image {c.latency:,} cycles = {c.latency / hls_config.CLOCK_MHZ:.2f} us (first input beat to last result beat)",
        "",
        f"| {'stage':<14} | {'trip counts':<30} | {'cycles/image':>12} | {'multipliers':>11} | {'LUT':>6} | {'FF':>6} | {'DSP':>4} | {'BRAM18':>6} |",
        f"|{'-' * 16}|{'-' * 32}|{'-' * 14}|{'-' * 13}|{'-' * 8}|{'-' * 8}|{'-' * 6}|{'-' * 8}|",
    ]
    for r in _stage_rows(b, family):
        mult = f"{r['multipliers']} {r['multiplier_kind']}" if r["multiplier_kind"] else "-"
        lines.append(
            f"| {r['stage']:<14} | {r['trips']:<30} | {r['iterations_per_image']:>12,} | {mult:>11} | {r['lut']:>6,} | {r['ff']:>6,} | {r['dsp']:>4} | {r['bram18']:>6} |"
        )
    rows = b.rows[family]
    for label, picked in (
        ("FIFOs", [r for r in rows if r.stage == "fifo"]),
        ("platform", [r for r in rows if r.stage == "platform"]),
    ):
        lines.append(
            f"| {label:<14} | {'(estimates)':<30} | {'':>12} | {'':>11} | {sum(r.lut for r in picked):>6,} | {sum(r.ff for r in picked):>6,} | {sum(r.dsp for r in picked):>4} | {sum(r.bram18 for r in picked):>6} |"
        )
    lines += ["", "Per part (limits: the margins of hls_config.MARGINS and the cycle targets):"]
    for p in b.parts:
        checks = ", ".join(
            f"{k} {v['value']:,} <= {v['limit']:,}{'' if v['ok'] else ' OVER'}" for k, v in p.checks.items()
        )
        lines.append(f"  {'PASS' if p.fits else 'FAIL'} {p.board:<12} {p.part:<22} {checks}")
    lines.append(f"{'PASS' if b.passed else 'FAIL'}: every part")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.budget", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the budget as JSON")
    parser.add_argument(
        "--images",
        type=cli_types.int_at_least(2),
        default=SIM_IMAGES,
        help=f"images in the simulated batch, at least 2 for an interval (default {SIM_IMAGES})",
    )
    args = parser.parse_args(argv)
    try:
        b = compute(args.images)
    except area.AreaUnavailable as e:
        print(f"budget: {e}", file=sys.stderr)
        return 2
    print(json.dumps(to_dict(b), indent=1) if args.json else table(b))
    return 0 if b.passed else 1


if __name__ == "__main__":
    sys.exit(main())
