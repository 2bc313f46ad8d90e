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


@dataclass(frozen=True)
class Part:
    """A target device and the resources the budget checks (the vendor's product tables:
    DS190 for Zynq-7000, DS891 for Zynq UltraScale+ and the K26 SOM's DS987, DS890 for Kintex
    UltraScale)."""

    part: str
    family: str  # yosys synth_xilinx -family
    dsp: int
    lut: int
    ff: int
    bram36: int
    build: str = "ip"  # "ip": csim, csynth, cosim, export; "synth": synthesis only


# Targets of hls_src/build_prj.tcl by board name; `python -m lenet5_pynq.export hls` writes
# this table into hls_src/generated/ for the tcl.  The budget is checked against every part.
PARTS: dict[str, Part] = {
    "pynq-z2": Part("xc7z020clg400-1", "xc7", dsp=220, lut=53_200, ff=106_400, bram36=140),
    "zcu104": Part("xczu7ev-ffvc1156-2-e", "xcup", dsp=1_728, lut=230_400, ff=460_800, bram36=312),
    "kv260": Part("xck26-sfvc784-2LV-c", "xcup", dsp=1_248, lut=117_120, ff=234_240, bram36=144),
    # synthesis only: the part of the original Kintex result
    "kcu-compare": Part("xcku095-ffvb2104-1-c", "xcu", dsp=768, lut=537_600, ff=1_075_200, bram36=1_680, build="synth"),
}
DEFAULT_BOARD = "pynq-z2"
CLOCK_MHZ = 100
# Fractions of a part the design may use: the last steps (Vivado's placement and routing at
# CLOCK_MHZ) are unseen here, so the margins stay wide.
MARGINS = {"dsp": 0.90, "lut": 0.65, "bram36": 0.80}
CYCLE_LIMITS = {"ii": 2000, "latency": 4000}

# Pixels per element of the stream that feeds conv1: the line buffer takes one pixel a cycle,
# 784 cycles an image, well inside conv1's 1,728.
INPUT_PIXELS_PER_ELEMENT = 1


@dataclass(frozen=True)
class Parallelism:
    pe: int  # output channels (conv) / output units (dense) computed in parallel
    simd: int  # taps (conv) / inputs (dense) multiplied in parallel for each of them
    lut_multipliers: bool  # True: multipliers in LUTs (BIND_OP impl=fabric); False: DSP48 slices


PARALLELISM: dict[str, Parallelism] = {
    # Every product on a DSP48 slice (191 of the xc7z020's 220).  conv1 sets the interval:
    # 576 windows x 3 neuron folds = 1,728 cycles an image.
    "conv1": Parallelism(pe=2, simd=25, lut_multipliers=False),
    # 64 windows x 25 synapse folds = 1,600 cycles: keeps up with conv1 over a whole image.
    "conv2": Parallelism(pe=16, simd=6, lut_multipliers=False),
    # 256 inputs / 2 x 10 neuron folds = 1,280 cycles, overlapping conv2's output.
    "fc1": Parallelism(pe=12, simd=2, lut_multipliers=False),
    # 120 / 2 x 12 = 720 and 84 / 7 x 10 = 120 cycles: serial after fc1, on the latency path.
    "fc2": Parallelism(pe=7, simd=2, lut_multipliers=False),
    "fc3": Parallelism(pe=1, simd=7, lut_multipliers=False),
}

# Depth of each FIFO between two stages (elements), by stream name in hls_src/lenet5.cpp, chosen
# with the cycle simulation (python -m lenet5_pynq.cyclesim --suggest): conv1_windows covers the
# 116 pixels conv1_windows reads before an image's first window (conv1_mac keeps working on the
# windows queued from the image before); conv1_out holds the pooled pixels that conv2 (1,600
# cycles over 8 of conv1's 12 pooled rows) falls behind by; fc1_out lets fc1 emit while fc2 is
# still on the image before.
FIFO_DEPTH = {"default": 2, "pixels": 4, "conv1_windows": 64, "conv1_out": 64, "conv2_out": 4, "fc1_out": 8}


def streams() -> list[str]:
    """The FIFOs of the dataflow chain in hls_src/lenet5.cpp, in pipeline order."""
    names = ["pixels"]
    for layer in network.LAYERS:
        if isinstance(layer, network.Conv):
            names.append(f"{layer.name}_windows")
        names.append(f"{layer.name}_out")
    return names


def fifo_depth(stream: str) -> int:
    if stream not in streams():
        raise KeyError(f"no stream {stream!r}: {streams()}")
    return FIFO_DEPTH.get(stream, FIFO_DEPTH["default"])


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
                raise ValueError(
                    f"{s.layer.name}: simd {p.simd} must divide the input vector of {v}, which divides {s.fan_in}"
                )
    first = network.layer_shapes()[0]
    if INPUT_PIXELS_PER_ELEMENT != 1:
        raise ValueError("INPUT_PIXELS_PER_ELEMENT must be 1: the line buffer takes one pixel a cycle")
    unknown = set(FIFO_DEPTH) - set(streams()) - {"default"}
    if unknown:
        raise ValueError(f"FIFO_DEPTH names no stream of the chain: {sorted(unknown)}")
    if not isinstance(first.layer, network.Conv):
        raise ValueError("the accelerator starts with a convolution")
