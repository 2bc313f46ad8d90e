"""A cycle simulation of the accelerator's dataflow chain, from the configs the HLS code is
generated from (`network.layer_shapes()`, `hls_config`, `hls_stream`).

    python -m lenet5_pynq.cyclesim                      # 8 images, the configured FIFO depths
    python -m lenet5_pynq.cyclesim --depth conv1_out=1  # a FIFO depth changed (or =inf)
    python -m lenet5_pynq.cyclesim --suggest --json     # and the smallest sufficient depths

The chain of hls_src/lenet5.cpp, one pipelined loop at II = 1 per stage, flattened over all the
images of a batch (no drain between images):

    AXI in -> read_pixels -> pixels -> conv1_windows -> conv1_windows -> conv1_mac -> conv1_out
           -> conv2_windows -> conv2_windows -> conv2_mac -> conv2_out -> fc1 -> fc1_out -> fc2
           -> fc2_out -> fc3 -> fc3_out -> write_results -> AXI out

The model:
* A stage issues its next loop iteration at cycle t only if every element the iteration reads is
  readable at t and every FIFO it writes has room at t (Vitis HLS stalls the whole pipeline on a
  blocking read or write); otherwise it stalls, and the cycle is counted against the FIFO.
* An element written by an iteration issued at t occupies its FIFO from t and is readable from
  t + depth(stage), the stage's pipeline depth.  Space freed by a read at t is usable from t + 1.
  Reserving the space at issue is conservative: a FIFO must also cover its producer's pipeline
  depth (depth(stage) + 1 elements) to carry one element a cycle, where Vitis HLS, which checks
  `full` at the pipeline stage of the write, needs fewer.
* The DMA delivers an input beat whenever asked and takes an output beat whenever offered.  An
  input beat is read at the issue cycle of the iteration that reads it; an output beat is
  written at issue + depth(write_results) - 1.
* Pipeline depths are estimates (`pipeline_depths()`); Vitis HLS's csynth report has the real
  ones, and its schedule can differ in the few cycles around loop entry.

Every stage issues at most one iteration a cycle, so the ASAP schedule is the least solution of
max-plus constraints with positive weights; the engine solves it element by element (only the
iterations that read or write are visited), which is the same schedule as stepping cycle by
cycle.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import hls_config, hls_stream, network

# ------------------------------------------------------------------ pipeline depth estimates
# Cycles from an iteration's issue to its result being readable downstream.  Estimates: Vitis
# HLS reports the real depths of each loop in its csynth report.
READ_DEPTH = 2  # AXI-stream read, unpack one pixel, FIFO write
WINDOWS_DEPTH = 3  # line-memory read, window shift, FIFO write
MULT_DEPTH = 3  # DSP48 multiplier with its input and output registers
ACCUMULATE_DEPTH = 2  # accumulate, then bias/cast/ReLU/pool (conv) or cast (dense)
WRITE_DEPTH = 2  # pack the result word, AXI-stream write


def mac_depth(simd: int) -> int:
    """A MAC stage: multiplier, an adder tree of ceil(log2(simd)) levels, accumulate and cast."""
    return MULT_DEPTH + (simd - 1).bit_length() + ACCUMULATE_DEPTH


def pipeline_depths() -> dict[str, int]:
    """Estimated pipeline depth of every stage, by stage name, from `hls_config.PARALLELISM`."""
    depths = {"read_pixels": READ_DEPTH}
    for layer in network.LAYERS:
        simd = hls_config.PARALLELISM[layer.name].simd
        if isinstance(layer, network.Conv):
            depths[f"{layer.name}_windows"] = WINDOWS_DEPTH
            depths[f"{layer.name}_mac"] = mac_depth(simd)
        else:
            depths[layer.name] = mac_depth(simd)
    depths["write_results"] = WRITE_DEPTH
    return depths


# ------------------------------------------------------------------ the engine's input
@dataclass(frozen=True)
class Op:
    """An iteration of one image's loop that reads or writes: `index` within the image, the
    FIFOs it reads one element from and writes one element to, and whether it reads an input
    beat from the DMA or writes an output beat to it."""

    index: int
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    beat_in: bool = False
    beat_out: bool = False


@dataclass(frozen=True)
class StageSpec:
    """One stage: a pipelined loop of `iterations` an image at II = 1, its pipeline depth, and
    the iterations that read or write (in order; all the others only compute)."""

    name: str
    iterations: int
    depth: int
    ops: tuple[Op, ...]
    trips: str = ""

    def __post_init__(self):
        if self.iterations < 1 or self.depth < 1:
            raise ValueError(f"{self.name}: needs at least one iteration and a depth of at least 1")
        idx = [op.index for op in self.ops]
        if idx != sorted(set(idx)) or (idx and not 0 <= idx[0] <= idx[-1] < self.iterations):
            raise ValueError(f"{self.name}: op indices must be distinct, ascending, within 0..{self.iterations - 1}")


def _conv_window_ops(s: network.LayerShape, src: str, dst: str) -> StageSpec:
    h, w, c = s.in_shape
    k = s.layer.kernel
    if hls_config.in_vec(s.layer.name) != c:
        raise ValueError(f"{s.layer.name}_windows: the model takes one whole pixel ({c} channels) an element")
    ops = tuple(
        Op(i, reads=(src,), writes=(dst,) if (i // w >= k - 1 and i % w >= k - 1) else ()) for i in range(h * w)
    )
    return StageSpec(f"{s.layer.name}_windows", h * w, WINDOWS_DEPTH, ops, f"{h} x {w} pixels")


def _conv_mac_ops(s: network.LayerShape, src: str, dst: str) -> StageSpec:
    layer, p = s.layer, hls_config.PARALLELISM[s.layer.name]
    ch, cw, _ = s.conv_shape
    nf, sf = layer.filters // p.pe, s.fan_in // p.simd
    per_window = nf * sf
    ops = []
    for win in range(ch * cw):
        r, c = divmod(win, cw)
        pooled = r % layer.pool == layer.pool - 1 and c % layer.pool == layer.pool - 1
        first, last = win * per_window, win * per_window + per_window - 1
        if first == last:
            ops.append(Op(first, reads=(src,), writes=(dst,) if pooled else ()))
        else:
            ops.append(Op(first, reads=(src,)))
            if pooled:
                ops.append(Op(last, writes=(dst,)))
    return StageSpec(
        f"{layer.name}_mac", ch * cw * per_window, mac_depth(p.simd), tuple(ops), f"{ch * cw} windows x {nf} x {sf}"
    )


def _dense_ops(s: network.LayerShape, src: str, dst: str) -> StageSpec:
    layer, p = s.layer, hls_config.PARALLELISM[s.layer.name]
    v = hls_config.in_vec(layer.name)
    vectors, groups, nf = s.fan_in // v, v // p.simd, layer.units // p.pe
    per_vector = groups * nf
    ops = [Op(i * per_vector, reads=(src,)) for i in range(vectors)]
    acc = vectors * per_vector
    ops += [Op(acc + j, writes=(dst,)) for j in range(nf)]
    return StageSpec(layer.name, acc + nf, mac_depth(p.simd), tuple(ops), f"{vectors} x {groups} x {nf} + {nf} emit")


def stage_specs() -> list[StageSpec]:
    """The chain of hls_src/lenet5.cpp as the engine's input, derived from the configs (read at
    call time, so a changed `hls_config.PARALLELISM` or `FIFO_DEPTH` is seen)."""
    hls_config.check()
    shapes = network.layer_shapes()
    ppe = hls_config.INPUT_PIXELS_PER_ELEMENT
    if hls_stream.PIXELS_PER_BEAT % ppe:
        raise ValueError(f"{ppe} pixels an element do not divide {hls_stream.PIXELS_PER_BEAT} pixels a beat")
    pixels = network.INPUT_HEIGHT * network.INPUT_WIDTH // ppe
    per_beat = hls_stream.PIXELS_PER_BEAT // ppe
    specs = [
        StageSpec(
            "read_pixels",
            pixels,
            READ_DEPTH,
            tuple(Op(i, writes=("pixels",), beat_in=i % per_beat == 0) for i in range(pixels)),
            f"{pixels} elements, a beat every {per_beat}",
        )
    ]
    src = "pixels"
    for s in shapes:
        if isinstance(s.layer, network.Conv):
            win = f"{s.layer.name}_windows"
            specs.append(_conv_window_ops(s, src, win))
            specs.append(_conv_mac_ops(s, win, f"{s.layer.name}_out"))
        else:
            specs.append(_dense_ops(s, src, f"{s.layer.name}_out"))
        src = f"{s.layer.name}_out"
    last = shapes[-1].layer
    collect = last.units // hls_config.PARALLELISM[last.name].pe
    beats = hls_stream.OUT_BEATS_PER_IMAGE
    ops = tuple(Op(i, reads=(src,)) for i in range(collect)) + tuple(
        Op(collect + j, beat_out=True) for j in range(beats)
    )
    specs.append(StageSpec("write_results", collect + beats, WRITE_DEPTH, ops, f"{collect} reads + {beats} beats"))
    beats_in = sum(op.beat_in for op in specs[0].ops)
    if beats_in != hls_stream.IN_BEATS_PER_IMAGE:
        raise ValueError(
            f"read_pixels reads {beats_in} beats an image, the stream format has {hls_stream.IN_BEATS_PER_IMAGE}"
        )
    fifos = [f for sp in specs for f in dict.fromkeys(w for op in sp.ops for w in op.writes)]
    if fifos != hls_config.streams():
        raise ValueError(f"the modelled chain's FIFOs {fifos} are not hls_config.streams() {hls_config.streams()}")
    if [sp.name for sp in specs] != [*pipeline_depths()]:
        raise ValueError("stage names differ from pipeline_depths()")
    return specs


def configured_depths() -> dict[str, int]:
    return {name: hls_config.fifo_depth(name) for name in hls_config.streams()}


# ------------------------------------------------------------------ results
@dataclass
class StageStats:
    name: str
    trips: str
    depth: int  # pipeline depth (estimate)
    iterations_per_image: int
    iterations: int  # the whole batch; every one is a busy cycle
    first_issue: int
    last_issue: int
    stall_empty: dict[str, int]  # cycles waiting for an element of this input FIFO, whole batch
    stall_full: dict[str, int]  # cycles waiting for room in this output FIFO, whole batch
    steady_busy: int  # in the steady window
    steady_stall_empty: dict[str, int]
    steady_stall_full: dict[str, int]

    @property
    def stalls(self) -> int:
        return sum(self.stall_empty.values()) + sum(self.stall_full.values())


@dataclass
class FifoStats:
    name: str
    depth: int | None  # None: unbounded
    producer: str
    consumer: str
    elements_per_image: int
    max_occupancy: int  # elements, counting those still in the producer's pipeline
    steady_stalls: int  # stage-cycles its full or empty state stalled in the steady window


@dataclass
class SimResult:
    images: int
    first_in: list[int]  # per image: cycle of its first input beat read
    last_out: list[int]  # per image: cycle of its last output beat written
    latency: int  # first image: last_out[0] - first_in[0] + 1
    interval: int  # last_out[-1] - last_out[-2] (0 for one image)
    intervals: list[int]  # every difference of consecutive last_out
    steady: bool  # the last differences (up to three) are equal
    window: tuple[int, int]  # steady window [start, end): one interval in the middle of the batch
    bottleneck_stage: str  # the busiest stage in the steady window
    bottleneck_fifo: str | None  # the FIFO that keeps it from being busy every cycle, if any
    compute_bound: bool  # the bottleneck stage is busy >= 99% of the steady window
    explanation: str
    stages: dict[str, StageStats] = field(default_factory=dict)
    fifos: dict[str, FifoStats] = field(default_factory=dict)

    @property
    def cycles(self) -> int:
        """Cycles from the first input beat of the batch to its last output beat, inclusive."""
        return self.last_out[-1] - self.first_in[0] + 1

    def stage_stalls(self, name: str) -> dict[str, dict[str, int]]:
        s = self.stages[name]
        return {"empty": dict(s.stall_empty), "full": dict(s.stall_full)}

    def max_occupancy(self) -> dict[str, int]:
        return {n: f.max_occupancy for n, f in self.fifos.items()}

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "latency": self.latency,
            "interval": self.interval,
            "intervals": self.intervals,
            "steady": self.steady,
            "cycles": self.cycles,
            "first_in": self.first_in,
            "last_out": self.last_out,
            "window": list(self.window),
            "bottleneck_stage": self.bottleneck_stage,
            "bottleneck_fifo": self.bottleneck_fifo,
            "compute_bound": self.compute_bound,
            "explanation": self.explanation,
            "stages": {
                n: {
                    "trips": s.trips,
                    "depth": s.depth,
                    "iterations_per_image": s.iterations_per_image,
                    "iterations": s.iterations,
                    "first_issue": s.first_issue,
                    "last_issue": s.last_issue,
                    "stall_empty": s.stall_empty,
                    "stall_full": s.stall_full,
                    "steady_busy": s.steady_busy,
                    "steady_stall_empty": s.steady_stall_empty,
                    "steady_stall_full": s.steady_stall_full,
                }
                for n, s in self.stages.items()
            },
            "fifos": {
                n: {
                    "depth": f.depth,
                    "producer": f.producer,
                    "consumer": f.consumer,
                    "elements_per_image": f.elements_per_image,
                    "max_occupancy": f.max_occupancy,
                    "steady_stalls": f.steady_stalls,
                }
                for n, f in self.fifos.items()
            },
        }


class Deadlock(RuntimeError):
    """No stage can issue its next iteration: a FIFO of depth 0, or programs that disagree."""


# ------------------------------------------------------------------ the engine
def run(specs: Sequence[StageSpec], depths: Mapping[str, int | None], images: int) -> SimResult:
    """Simulate `images` images through the stages `specs`, each FIFO bounded by `depths`
    (None: unbounded).  Every stage starts at cycle 0; every FIFO has one producer and one
    consumer stage."""
    if images < 1:
        raise ValueError("simulate at least one image")
    producer: dict[str, int] = {}
    consumer: dict[str, int] = {}
    for si, sp in enumerate(specs):
        for op in sp.ops:
            for f in op.writes:
                if producer.setdefault(f, si) != si:
                    raise ValueError(f"FIFO {f} has two producers")
            for f in op.reads:
                if consumer.setdefault(f, si) != si:
                    raise ValueError(f"FIFO {f} has two consumers")
    names = list(dict.fromkeys([*producer, *consumer]))
    for f in names:
        if f not in producer or f not in consumer:
            raise ValueError(f"FIFO {f} needs a producer and a consumer")
        n_w = sum(f in op.writes for op in specs[producer[f]].ops)
        n_r = sum(f in op.reads for op in specs[consumer[f]].ops)
        if n_w != n_r:
            raise ValueError(
                f"FIFO {f}: {specs[producer[f]].name} writes {n_w} elements an image, {specs[consumer[f]].name} reads {n_r}"
            )
    unknown = set(depths) - set(names)
    if unknown:
        raise ValueError(f"depths name no FIFO of the chain: {sorted(unknown)}")
    fid = {f: i for i, f in enumerate(names)}
    cap = []
    for f in names:
        d = depths.get(f)
        if d is not None and d < 1:
            raise ValueError(f"FIFO {f}: depth {d} (at least 1)")
        cap.append(d)
    lag = [specs[producer[f]].depth for f in names]  # issue of the write to readable
    wtime: list[list[int]] = [[] for _ in names]  # issue cycle of each element's write
    rtime: list[list[int]] = [[] for _ in names]  # issue cycle of each element's read

    # Per stage: its op iterations over the whole batch, as (global index, image, reads, writes, in, out).
    nodes = []
    for sp in specs:
        per = [
            (op.index, tuple(fid[f] for f in op.reads), tuple(fid[f] for f in op.writes), op.beat_in, op.beat_out)
            for op in sp.ops
        ]
        nodes.append([(img * sp.iterations + i, img, r, w, bi, bo) for img in range(images) for i, r, w, bi, bo in per])
    n_st = len(specs)
    ptr = [0] * n_st
    prev_t = [-1] * n_st
    prev_i = [-1] * n_st
    stalls: list[list[tuple[int, int, int, int]]] = [[] for _ in specs]  # (start, end, 0 empty / 1 full, fifo)
    first_in = [None] * images
    last_out = [None] * images
    first_issue = [0] * n_st  # a stage whose first iteration only computes issues it at 0

    remaining = sum(len(n) for n in nodes)
    while remaining:
        moved = 0
        for si in range(n_st):
            mine, p = nodes[si], ptr[si]
            pt, pi = prev_t[si], prev_i[si]
            depth = specs[si].depth
            while p < len(mine):
                gi, img, reads, writes, bi, bo = mine[p]
                earliest = pt + (gi - pi)
                r, rf = earliest, -1
                blocked = False
                for f in reads:
                    k = len(rtime[f])
                    if k >= len(wtime[f]):
                        blocked = True
                        break
                    t = wtime[f][k] + lag[f]
                    if t > r:
                        r, rf = t, f
                if blocked:
                    break
                x, wf = r, -1
                for f in writes:
                    d = cap[f]
                    if d is None:
                        continue
                    j = len(wtime[f]) - d
                    if j >= 0:
                        if j >= len(rtime[f]):
                            blocked = True
                            break
                        t = rtime[f][j] + 1
                        if t > x:
                            x, wf = t, f
                if blocked:
                    break
                if r > earliest:
                    stalls[si].append((earliest, r, 0, rf))
                if x > r:
                    stalls[si].append((r, x, 1, wf))
                for f in reads:
                    rtime[f].append(x)
                for f in writes:
                    wtime[f].append(x)
                if bi and first_in[img] is None:
                    first_in[img] = x
                if bo:
                    last_out[img] = x + depth - 1
                if gi == 0:
                    first_issue[si] = x
                pt, pi = x, gi
                p += 1
            moved += p - ptr[si]
            ptr[si], prev_t[si], prev_i[si] = p, pt, pi
        if not moved:
            waiting = [
                f"{specs[si].name} at iteration {nodes[si][ptr[si]][0]}"
                for si in range(n_st)
                if ptr[si] < len(nodes[si])
            ]
            raise Deadlock("no stage can issue: " + ", ".join(waiting))
        remaining -= moved
    if None in first_in or None in last_out:
        raise ValueError("the chain must read an input beat and write an output beat for every image")

    # Issue cycle of each stage's last iteration (trailing compute-only iterations run on).
    last_issue = [prev_t[si] + (images * sp.iterations - 1 - prev_i[si]) for si, sp in enumerate(specs)]

    intervals = [b - a for a, b in itertools.pairwise(last_out)]
    tail = intervals[-3:]
    steady = len(tail) > 0 and len(set(tail)) == 1
    if images >= 2:
        k = max(1, images // 2)
        window = (last_out[k - 1] + 1, last_out[k] + 1)
    else:
        window = (0, last_out[0] + 1)
    w0, w1 = window

    def overlap(a: int, b: int) -> int:
        return max(0, min(b, w1) - max(a, w0))

    stats: dict[str, StageStats] = {}
    steady_total = [0] * n_st
    fifo_steady = [0] * len(names)
    for si, sp in enumerate(specs):
        se: dict[str, int] = {}
        sf: dict[str, int] = {}
        we: dict[str, int] = {}
        wf_: dict[str, int] = {}
        for a, b, kind, f in stalls[si]:
            tot, win = (se, we) if kind == 0 else (sf, wf_)
            tot[names[f]] = tot.get(names[f], 0) + b - a
            o = overlap(a, b)
            if o:
                win[names[f]] = win.get(names[f], 0) + o
                fifo_steady[f] += o
        stalled_in_window = sum(we.values()) + sum(wf_.values())
        steady_total[si] = stalled_in_window
        busy = overlap(0, last_issue[si] + 1) - stalled_in_window
        stats[sp.name] = StageStats(
            sp.name,
            sp.trips,
            sp.depth,
            sp.iterations,
            images * sp.iterations,
            first_issue[si],
            last_issue[si],
            se,
            sf,
            busy,
            we,
            wf_,
        )

    fifos: dict[str, FifoStats] = {}
    for f, name in enumerate(names):
        fifos[name] = FifoStats(
            name,
            cap[f],
            specs[producer[name]].name,
            specs[consumer[name]].name,
            len(wtime[f]) // images,
            _max_occupancy(wtime[f], rtime[f]),
            fifo_steady[f],
        )

    bstage, bfifo, bound, why = _bottleneck(specs, stats, fifos, window)
    return SimResult(
        images,
        first_in,
        last_out,
        last_out[0] - first_in[0] + 1,
        intervals[-1] if intervals else 0,
        intervals,
        steady,
        window,
        bstage,
        bfifo,
        bound,
        why,
        stats,
        fifos,
    )


def _max_occupancy(writes: list[int], reads: list[int]) -> int:
    """Most elements held at the start of any cycle (a write at t counts from t + 1, a read at t
    frees from t + 1)."""
    best = occ = 0
    i = j = 0
    while i < len(writes):
        t = writes[i]
        while i < len(writes) and writes[i] == t:
            occ += 1
            i += 1
        while j < len(reads) and reads[j] <= t:
            occ -= 1
            j += 1
        best = max(best, occ)
    return best


def _dominant(s: StageStats) -> tuple[str, str, int] | None:
    cands = [("empty", f, n) for f, n in s.steady_stall_empty.items()] + [
        ("full", f, n) for f, n in s.steady_stall_full.items()
    ]
    return max(cands, key=lambda c: c[2]) if cands else None


def _bottleneck(specs, stats, fifos, window) -> tuple[str, str | None, bool, str]:
    """The busiest stage of the steady window; if it is not busy every cycle, follow its stalls
    along the chain (full: to the FIFO's consumer, empty: to its producer) until a stage waits on
    the same FIFO from the other side: that FIFO is the one to deepen."""
    length = window[1] - window[0]
    order = [sp.name for sp in specs]
    best = max(order, key=lambda n: (stats[n].steady_busy, -order.index(n)))
    s = stats[best]
    notes = [f"{best} busy {s.steady_busy:,} of {length:,} cycles"]
    if s.steady_busy >= 0.99 * length:
        return best, None, True, notes[0]
    seen = set()
    here = best
    last = None
    while here not in seen:
        seen.add(here)
        dom = _dominant(stats[here])
        if dom is None or dom[2] < 0.01 * length:
            break
        kind, f, n = dom
        if here != best:
            notes.append(f"{here} waits {n:,} cycles on {kind} {f}")
        else:
            notes[0] += f", waits {n:,} on {kind} {f}"
        if f == last:
            break
        last = f
        here = fifos[f].consumer if kind == "full" else fifos[f].producer
    return best, last, False, "; ".join(notes)


# ------------------------------------------------------------------ front ends
def simulate(images: int = 8, depths: Mapping[str, int | None] | None = None) -> SimResult:
    """Simulate the configured chain for `images` images.  `depths` overrides FIFO depths of
    `hls_config.FIFO_DEPTH` by stream name (None: unbounded)."""
    d: dict[str, int | None] = configured_depths()
    for name, v in (depths or {}).items():
        if name not in d:
            raise KeyError(f"no stream {name!r}: {hls_config.streams()}")
        d[name] = v
    return run(stage_specs(), d, images)


DEPTH_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _figures(r: SimResult) -> tuple[int, int]:
    half = r.intervals[len(r.intervals) // 2 :] or [0]
    return max(half), r.latency


def element_values() -> dict[str, int]:
    """Values in one element of each FIFO (its width in words), from the configs."""
    out = {"pixels": hls_config.in_vec(network.LAYERS[0].name)}
    for s in network.layer_shapes():
        layer = s.layer
        if isinstance(layer, network.Conv):
            out[f"{layer.name}_windows"] = s.fan_in
            out[f"{layer.name}_out"] = layer.filters
        else:
            out[f"{layer.name}_out"] = hls_config.PARALLELISM[layer.name].pe
    return out


def suggest_depths(
    images: int = 8,
    tolerance: float = 0.01,
    candidates: Sequence[int] = DEPTH_CANDIDATES,
    others: str = "joint",
) -> dict[str, int | None]:
    """For each FIFO, the smallest of `candidates` that keeps the interval (the largest interval
    of the second half of the batch) and the first image's latency within `tolerance` of what an
    unbounded FIFO gives.  None: no candidate does.

    others="joint": the target is every FIFO unbounded; the FIFOs are lowered one at a time, the
    widest elements first (so that buffering moves into the narrow FIFOs), each with the ones
    already lowered at their choice and the rest unbounded.  The depths returned meet the target
    together: the set to write into `hls_config.FIFO_DEPTH`.
    others="configured": each FIFO on its own, every other one at its configured depth, against
    the same configuration with this one FIFO unbounded: what this FIFO needs in the current
    configuration (small where another FIFO limits the chain anyway).
    """
    if others not in ("configured", "joint"):
        raise ValueError("others is 'configured' or 'joint'")
    specs = stage_specs()
    streams = hls_config.streams()

    def within(depths, target) -> bool:
        interval, latency = _figures(run(specs, depths, images))
        return interval <= target[0] * (1 + tolerance) and latency <= target[1] * (1 + tolerance)

    def smallest(base, f, target) -> int | None:
        for c in sorted(candidates):
            if within({**base, f: c}, target):
                return c
        return None

    out: dict[str, int | None] = {}
    if others == "configured":
        base = configured_depths()
        for f in streams:
            out[f] = smallest(base, f, _figures(run(specs, {**base, f: None}, images)))
        return out
    base = {f: None for f in streams}
    target = _figures(run(specs, base, images))
    width = element_values()
    for f in sorted(streams, key=lambda f: (-width[f], streams.index(f))):
        out[f] = base[f] = smallest(base, f, target)  # None: stays unbounded
    return {f: out[f] for f in streams}


def table(r: SimResult) -> str:
    lines = [
        f"Cycle simulation of {r.images} images (II = 1 per stage, estimated pipeline depths, blocking FIFOs)",
        f"  latency of image 0: {r.latency:,} cycles (first input beat {r.first_in[0]} to last output beat {r.last_out[0]})",
        f"  interval: {r.interval:,} cycles{'' if r.steady else ' (NOT steady: ' + ', '.join(map(str, r.intervals)) + ')'}",
        f"  bound by {r.bottleneck_stage}"
        + (f", FIFO {r.bottleneck_fifo}" if r.bottleneck_fifo else " (compute)")
        + f": {r.explanation}",
        "",
        f"| {'stage':<14} | {'trips':<28} | depth | iter/image | busy/window | stalls in the steady window {r.window[0]}..{r.window[1]} |",
    ]
    for s in r.stages.values():
        st = [f"empty {f} {n}" for f, n in s.steady_stall_empty.items()] + [
            f"full {f} {n}" for f, n in s.steady_stall_full.items()
        ]
        lines.append(
            f"| {s.name:<14} | {s.trips:<28} | {s.depth:>5} | {s.iterations_per_image:>10,} | {s.steady_busy:>11,} | {', '.join(st) or '-'} |"
        )
    lines += ["", f"| {'FIFO':<14} | depth | max occupancy | elements/image | stage-cycles stalled in the window |"]
    for f in r.fifos.values():
        d = "inf" if f.depth is None else str(f.depth)
        lines.append(
            f"| {f.name:<14} | {d:>5} | {f.max_occupancy:>13} | {f.elements_per_image:>14} | {f.steady_stalls:>34,} |"
        )
    return "\n".join(lines)


def _depth_arg(text: str) -> tuple[str, int | None]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIFO=DEPTH")
    if value in ("inf", "none", "None"):
        return name, None
    try:
        return name, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: depth is an integer or inf") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.cyclesim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8, help="images in the batch (default 8)")
    parser.add_argument(
        "--depth",
        type=_depth_arg,
        action="append",
        default=[],
        metavar="FIFO=N",
        help="override a FIFO depth (N or inf); repeatable",
    )
    parser.add_argument(
        "--suggest",
        action="store_true",
        help="also the smallest sufficient depth of every FIFO (suggest_depths, from the configured depths)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.images < 2:
        parser.error("--images must be at least 2 (the interval needs two images)")
    overrides = dict(args.depth)
    try:
        r = simulate(args.images, overrides)
    except (KeyError, ValueError, Deadlock) as e:
        print(f"cyclesim: {e}", file=sys.stderr)
        return 2
    out = r.to_dict()
    if args.suggest:
        out["suggested_depths"] = suggest_depths(args.images)
        out["suggested_depths_configured"] = suggest_depths(args.images, others="configured")
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(table(r))
        if args.suggest:
            joint, alone = out["suggested_depths"], out["suggested_depths_configured"]
            print(
                "\nSmallest depths within 1% of unbounded FIFOs: chosen jointly (for FIFO_DEPTH) / each alone, the others as configured:"
            )
            for f in hls_config.streams():
                print(f"  {f:<14} {joint[f]!s:>5} / {alone[f]!s:>5}   (configured {hls_config.fifo_depth(f)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
