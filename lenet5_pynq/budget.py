"""The accelerator's cycle and resource budget, computed from the same values the HLS code is
generated from (`network.layer_shapes()` and `hls_config.PARALLELISM`), never typed.

    python -m lenet5_pynq.budget          # the table, and PASS/FAIL against the xc7z020 limits

What is computed, stage by stage (the stages of hls_src/lenet5.cpp, every loop at II=1):
* trip counts and cycles per image, from the loop nests of hls_src/lenet5_layers.h;
* multipliers: pe * simd per MAC stage, on DSP48 slices or in LUTs as hls_config says;
* memories: a weight memory is pe * simd banks of 16-bit words (one read each per cycle); a bank
  deeper than `DISTRIBUTED_MAX_DEPTH` words takes ceil(depth / 1024) BRAM18 (1K x 18 mode),
  shallower ones go to LUTRAM or registers, as do the line buffers, pool rows and FIFOs.
The initiation interval between images is the slowest stage's cycles per image.  The latency of
one image (first input beat to last result beat, pipeline empty) comes from `latency_model`, a
cycle-level walk of every stage's loop schedule in which a loop iteration waits for the element
it reads; each stage adds a pipeline depth (`DEPTH`, an estimate: Vitis HLS reports the real
ones).  FIFOs are taken as deep enough not to stall a producer that is ahead of its consumer.
A csynth report from Vitis HLS is the measurement; these are the design's targets.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from . import hls_config, hls_stream, network

DISTRIBUTED_MAX_DEPTH = 64
BRAM18_WORDS = 1024  # 16-bit words per BRAM18 in 1K x 18 mode
DEPTH = {"read": 2, "windows": 3, "mac": 5, "dense": 5, "write": 4}  # pipeline depth estimates, cycles


@dataclass
class Stage:
    name: str
    trips: str
    cycles: int  # per image, at II = 1
    ii: int = 1
    dsp: int = 0
    lut_mults: int = 0
    bram18: int = 0
    memory: str = ""
    mult_kind: str = ""


@dataclass
class Budget:
    stages: list[Stage]
    latency: int
    latency_trace: dict[str, int] = field(default_factory=dict)
    part: str = hls_config.BUDGET_PART

    @property
    def ii(self) -> int:
        return max(s.cycles for s in self.stages)

    @property
    def bottleneck(self) -> str:
        return max(self.stages, key=lambda s: s.cycles).name

    @property
    def dsp(self) -> int:
        return sum(s.dsp for s in self.stages)

    @property
    def lut_mults(self) -> int:
        return sum(s.lut_mults for s in self.stages)

    @property
    def bram18(self) -> int:
        return sum(s.bram18 for s in self.stages)

    @property
    def bram36(self) -> int:
        return math.ceil(self.bram18 / 2)

    def checks(self) -> dict[str, tuple[int, int, bool]]:
        lim = hls_config.PART_LIMITS[self.part]
        cyc = hls_config.CYCLE_LIMITS
        return {
            "II (cycles)": (self.ii, cyc["ii"], self.ii <= cyc["ii"]),
            "latency (cycles)": (self.latency, cyc["latency"], self.latency <= cyc["latency"]),
            "DSP48E1": (self.dsp, lim["dsp"], self.dsp <= lim["dsp"]),
            "BRAM36": (self.bram36, lim["bram36"], self.bram36 <= lim["bram36"]),
        }

    @property
    def passed(self) -> bool:
        return all(ok for _, _, ok in self.checks().values())


def _weight_banks(pe: int, simd: int, depth: int) -> tuple[int, str]:
    banks = pe * simd
    if depth <= DISTRIBUTED_MAX_DEPTH:
        return 0, f"{banks} x {depth} words LUTRAM/regs"
    per_bank = math.ceil(depth / BRAM18_WORDS)
    return banks * per_bank, f"{banks} x {depth} words BRAM"


def stages() -> list[Stage]:
    hls_config.check()
    shapes = network.layer_shapes()
    first = shapes[0]
    per_beat = hls_stream.PIXELS_PER_BEAT // hls_config.INPUT_PIXELS_PER_ELEMENT
    out: list[Stage] = [
        Stage("read_pixels", f"{hls_stream.IN_BEATS_PER_IMAGE} beats x {per_beat} elements", hls_stream.IN_BEATS_PER_IMAGE * per_beat)
    ]
    for s in shapes:
        layer, p = s.layer, hls_config.PARALLELISM[s.layer.name]
        mults = p.pe * p.simd
        kind = "LUT" if p.fabric else "DSP"
        if isinstance(layer, network.Conv):
            h, w, c = s.in_shape
            k = layer.kernel
            in_par = hls_config.in_vec(layer.name) // c
            ch, cw = s.conv_shape[:2]
            fill = k * (w // in_par)
            out.append(Stage(f"{layer.name}_windows", f"{ch} rows x {w} steps + {fill} fill", ch * w + fill, memory=f"{k + 1} line slots"))
            nf, sf = layer.filters // p.pe, s.fan_in // p.simd
            bram, mem = _weight_banks(p.pe, p.simd, nf * sf)
            out.append(
                Stage(
                    f"{layer.name}_mac",
                    f"{ch * cw} windows x {nf}x{sf} folds",
                    ch * cw * nf * sf,
                    dsp=0 if p.fabric else mults,
                    lut_mults=mults if p.fabric else 0,
                    bram18=bram,
                    memory=mem,
                    mult_kind=kind,
                )
            )
        else:
            nf, sf = layer.units // p.pe, s.fan_in // p.simd
            bram, mem = _weight_banks(p.pe, p.simd, nf * sf)
            out.append(
                Stage(
                    layer.name,
                    f"{sf} x {nf} folds + {nf} emit",
                    sf * nf + nf,
                    dsp=0 if p.fabric else mults,
                    lut_mults=mults if p.fabric else 0,
                    bram18=bram,
                    memory=mem,
                    mult_kind=kind,
                )
            )
    last = hls_config.PARALLELISM[shapes[-1].layer.name]
    reads = network.NUM_CLASSES // last.pe
    out.append(Stage("write_results", f"{reads} reads + {hls_stream.OUT_BEATS_PER_IMAGE} beats", reads + hls_stream.OUT_BEATS_PER_IMAGE))
    return out


# ----------------------------------------------------------------------------- latency model
def _conv_windows(arrivals: list[int], s: network.LayerShape) -> list[int]:
    """Times at which conv_windows emits each window (the schedule of lenet5_layers.h)."""
    h, w, c = s.in_shape
    k = s.layer.kernel
    in_par = hls_config.in_vec(s.layer.name) // c
    row_words = w // in_par
    t, nxt, emitted = -1, 0, []

    def rows_in():
        return nxt // row_words

    for r in range(s.conv_shape[0]):
        while rows_in() < r + k:  # fill_loop: blocking reads
            t = max(t + 1, arrivals[nxt])
            nxt += 1
        for step in range(w):  # sweep_loop: non-blocking reads of row r + k
            t += 1
            if rows_in() == r + k and rows_in() < h and nxt < len(arrivals) and arrivals[nxt] <= t:
                nxt += 1
            if step >= k - 1:
                emitted.append(t + DEPTH["windows"])
    return emitted


def _conv_mac(arrivals: list[int], s: network.LayerShape) -> list[int]:
    p = hls_config.PARALLELISM[s.layer.name]
    fold = (s.layer.filters // p.pe) * (s.fan_in // p.simd)
    ch, cw = s.conv_shape[:2]
    pool = s.layer.pool
    t, out = -1, []
    for i, a in enumerate(arrivals):
        r, x = divmod(i, cw)
        t = max(t + 1, a) + fold - 1
        if r % pool == pool - 1 and x % pool == pool - 1:
            out.append(t + DEPTH["mac"])
    return out


def _dense(arrivals: list[int], s: network.LayerShape) -> list[int]:
    p = hls_config.PARALLELISM[s.layer.name]
    groups = hls_config.in_vec(s.layer.name) // p.simd
    nf = s.layer.units // p.pe
    t = -1
    for a in arrivals:
        t = max(t + 1, a) + groups * nf - 1
    t += DEPTH["dense"]
    return [t + 1 + i for i in range(nf)]


def latency_model() -> tuple[int, dict[str, int]]:
    """Cycles from the first input beat to the last result beat of one image, and the time at
    which each stage emits its last element (the trace shown under the table)."""
    shapes = network.layer_shapes()
    per_beat = hls_stream.PIXELS_PER_BEAT // hls_config.INPUT_PIXELS_PER_ELEMENT
    # The DMA delivers one beat a cycle; read_pixels emits one element a cycle.
    t = [i + DEPTH["read"] for i in range(hls_stream.IN_BEATS_PER_IMAGE * per_beat)]
    trace = {"read_pixels": t[-1]}
    for s in shapes:
        if isinstance(s.layer, network.Conv):
            t = _conv_windows(t, s)
            trace[f"{s.layer.name}_windows"] = t[-1]
            t = _conv_mac(t, s)
            trace[f"{s.layer.name}_mac"] = t[-1]
        else:
            t = _dense(t, s)
            trace[s.layer.name] = t[-1]
    end = t[-1] + DEPTH["write"] + hls_stream.OUT_BEATS_PER_IMAGE
    trace["write_results"] = end
    return end + 1, trace


def compute() -> Budget:
    latency, trace = latency_model()
    return Budget(stages(), latency, trace)


def table(b: Budget | None = None) -> str:
    b = b or compute()
    lines = [
        f"LeNet-5 accelerator budget: {b.part} at {hls_config.CLOCK_MHZ} MHz "
        f"(computed from lenet5_pynq.network and lenet5_pynq.hls_config)",
        "",
        f"| {'stage':<14} | {'trip counts':<32} | II | {'cycles/image':>12} | {'multipliers':>11} | {'BRAM18':>6} | memories |",
        f"|{'-' * 16}|{'-' * 34}|----|{'-' * 14}|{'-' * 13}|{'-' * 8}|----------|",
    ]
    for s in b.stages:
        mult = f"{s.dsp or s.lut_mults} {s.mult_kind}" if s.mult_kind else "-"
        lines.append(f"| {s.name:<14} | {s.trips:<32} | {s.ii:>2} | {s.cycles:>12,} | {mult:>11} | {s.bram18:>6} | {s.memory} |")
    lines += [
        f"| {'total':<14} | {'II = slowest stage: ' + b.bottleneck:<32} |    | {b.ii:>12,} | {str(b.dsp) + ' DSP':>11} | {b.bram18:>6} | = {b.bram36} BRAM36 |",
        f"| {'':<14} | {'':<32} |    | {'':>12} | {str(b.lut_mults) + ' LUT':>11} | {'':>6} |  |",
        "",
        f"Latency of one image (model, first input beat to last result beat): {b.latency:,} cycles = "
        f"{b.latency / hls_config.CLOCK_MHZ:.2f} us at {hls_config.CLOCK_MHZ} MHz",
        "  last element out of each stage at cycle: " + ", ".join(f"{k} {v}" for k, v in b.latency_trace.items()),
        f"Throughput at II {b.ii}: {hls_config.CLOCK_MHZ * 1e6 / b.ii:,.0f} images/s",
        "",
    ]
    for what, (value, limit, ok) in b.checks().items():
        lines.append(f"  {what:<17} {value:>6,} <= {limit:>6,}  {'ok' if ok else 'OVER'}")
    lines.append(f"{'PASS' if b.passed else 'FAIL'}: {b.part} limits and the {hls_config.CYCLE_LIMITS['ii']:,}-cycle targets")
    return "\n".join(lines)


def main(argv=None) -> int:
    b = compute()
    print(table(b))
    return 0 if b.passed else 1


if __name__ == "__main__":
    sys.exit(main())
