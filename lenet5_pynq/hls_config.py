"""The accelerator's knobs, in one place: per-layer parallelism, the IP's VLNV and the register
map that Vitis HLS will assign.  `python -m lenet5_pynq.export hls` writes them into
hls_src/generated/lenet5_types.h and `python -m lenet5_pynq.budget` computes the cycle and resource
budget from them, so neither language types them twice.

Folding (as in FINN's matrix-vector unit): a layer multiplies `pe * simd` pairs per cycle.

* convolutions: `pe` output channels in parallel, each summing `simd` taps of the (kh, kw, cin)
  window in parallel; a window takes (filters / pe) * (taps / simd) cycles.
* dense layers (input-major, they accumulate while their inputs stream in): `simd` inputs times
  `pe` outputs per cycle; an input vector of `in_vec` values takes (in_vec / simd) * (units / pe)
  cycles, and the outputs leave `pe` at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import network

TOP = "lenet5"  # the HLS top function and the IP's name
VENDOR = "lenet5-pynq"
LIBRARY = "hls"
VERSION = "1.0"
VLNV = f"{VENDOR}:{LIBRARY}:{TOP}:{VERSION}"

# Targets of hls_src/build_prj.tcl (part, clock period in ns).  The budget is checked against
# the first one.
PARTS = {
    "pynq-z2": "xc7z020clg400-1",
    "zcu104": "xczu7ev-ffvc1156-2-e",
    "kv260": "xck26-sfvc784-2LV-c",
    "kcu-compare": "xcku095-ffvb2104-1-c",  # synthesis only: the original Kintex result
}
CLOCK_MHZ = 100
BUDGET_PART = "xc7z020clg400-1"
PART_LIMITS = {"xc7z020clg400-1": {"dsp": 220, "bram36": 140}}
CYCLE_LIMITS = {"ii": 2000, "latency": 2000}

# Pixels per element of the stream that feeds conv1 (a 64-bit beat carries 8): the line buffer
# fills 4 pixels a cycle, so conv1's window sweep, not its input, sets its pace.
INPUT_PIXELS_PER_ELEMENT = 4


@dataclass(frozen=True)
class Parallelism:
    pe: int  # output channels (conv) / output units (dense) computed in parallel
    simd: int  # taps (conv) / inputs (dense) multiplied in parallel for each of them
    fabric: bool  # True: multipliers in LUTs (BIND_OP impl=fabric); False: DSP48 slices


PARALLELISM: dict[str, Parallelism] = {
    # 8-bit unsigned pixels times 16-bit weights: cheap LUT multipliers, one full window a cycle.
    "conv1": Parallelism(pe=6, simd=25, fabric=True),
    # The big one: 153,600 MACs at 160 a cycle, 15 cycles a window.
    "conv2": Parallelism(pe=16, simd=10, fabric=False),
    # Keeps pace with conv2's pooled pixels (40 cycles for each 16-channel pixel).
    "fc1": Parallelism(pe=12, simd=4, fabric=False),
    # Serial after fc1: LUT multipliers keep the DSPs for conv2 and fc1.
    "fc2": Parallelism(pe=7, simd=4, fabric=True),
    "fc3": Parallelism(pe=2, simd=7, fabric=True),
}

# Depth of the FIFO between two stages (elements); deep enough for fc1 to absorb conv2's burst of
# pooled pixels along an odd conv row.
FIFO_DEPTH = {"default": 2, "conv2_out": 8}


def in_vec(name: str) -> int:
    """Values in one element of the stream that enters layer `name`."""
    shapes = {s.layer.name: s for s in network.layer_shapes()}
    names = [layer.name for layer in network.LAYERS]
    i = names.index(name)
    if i == 0:
        return INPUT_PIXELS_PER_ELEMENT * network.INPUT_CHANNELS
    prev = shapes[names[i - 1]]
    if isinstance(prev.layer, network.Conv):
        return prev.layer.filters  # one pooled pixel, all channels
    return PARALLELISM[prev.layer.name].pe  # a dense layer's outputs leave pe at a time


def check() -> None:
    """Every fold divides evenly, so trip counts are whole and no lane idles."""
    for s in network.layer_shapes():
        p = PARALLELISM[s.layer.name]
        outs = s.weight_shape[-1]
        if outs % p.pe:
            raise ValueError(f"{s.layer.name}: pe {p.pe} does not divide {outs} outputs")
        if isinstance(s.layer, network.Conv):
            if s.fan_in % p.simd:
                raise ValueError(f"{s.layer.name}: simd {p.simd} does not divide {s.fan_in} taps")
        else:
            v = in_vec(s.layer.name)
            if v % p.simd or s.fan_in % v:
                raise ValueError(f"{s.layer.name}: simd {p.simd} must divide the input vector of {v}, which divides {s.fan_in}")
    first = network.layer_shapes()[0]
    if network.INPUT_WIDTH % INPUT_PIXELS_PER_ELEMENT or 8 % INPUT_PIXELS_PER_ELEMENT:
        raise ValueError("INPUT_PIXELS_PER_ELEMENT must divide the row width and the 8 pixels of a beat")
    if not isinstance(first.layer, network.Conv):
        raise ValueError("the accelerator starts with a convolution")
