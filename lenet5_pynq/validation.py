"""The one validation layer for what users hand the package: fixed-point specs (the JSON of
`fixedspec`) and float weight sets (the arrays of `weights`).

Every entry point goes through it: `fixedspec.load` / `FixedSpec.from_dict`, `weights.load`,
`weights.check` (the `params=` of the backends, `CsimBackend.load_weights`, the overlay's
`prepare_weights`), so each error is the project's own (`SpecError`, `WeightsError`, both
ValueErrors) and its one line names the file and the field:

    spec.json: layers.conv1.kernel.width must be an integer, not 36.0
    w.npz: fc1/kernel holds 3 values beyond +-32768 (largest 1e+30)

Checked for a spec: a JSON object with the version, the input and every layer's four formats;
per format the types (integers that are not booleans or floats, a boolean `signed`, known mode
names) and ranges (`width` 1..MAX_WIDTH, fraction bits -MAX_WIDTH..MAX_WIDTH).  For weights: a mapping
holding every tensor, real numbers of the network's shape, finite, and below `MAX_ABS_WEIGHT`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from . import network
from .fixedpoint import MAX_WIDTH, ROUNDING_MODES, SATURATION_MODES, FixedFormat

WORD = 16  # the fabric's weight words, the GPU's and the load stream's
# The largest magnitude a signed 16-bit word with no fraction bits holds: beyond it no spec can
# represent the weight.  It also keeps the float32 logits finite for any input (max_float_logit).
MAX_ABS_WEIGHT = float(1 << (WORD - 1))
FORMAT_FIELDS = ("width", "int_bits", "signed", "rounding", "saturation")
TENSORS = ("kernel", "bias", "accum", "output")


class SpecError(ValueError):
    """The spec file is missing, malformed, or does not belong to the weights."""


class WeightsError(ValueError):
    """A weight set is missing a tensor, or has one of the wrong type, shape or range."""


# ----------------------------------------------------------------------------------- specs
def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _kind(value) -> str:
    return (
        "null"
        if value is None
        else f"{value!r}"
        if isinstance(value, (int, float, str, bool))
        else f"a {type(value).__name__}"
    )


def check_format(d, where: str) -> FixedFormat:
    """One format's dict (`where` names it, e.g. ``spec.json: layers.conv1.kernel``)."""
    if not isinstance(d, Mapping):
        raise SpecError(f"{where} must be an object with {', '.join(FORMAT_FIELDS)}, not {_kind(d)}")
    unknown = sorted(set(d) - set(FORMAT_FIELDS))
    if unknown:
        raise SpecError(f"{where}.{unknown[0]} is not a field of a format ({', '.join(FORMAT_FIELDS)})")
    for name in ("width", "int_bits"):
        if name not in d:
            raise SpecError(f"{where}.{name} is missing (malformed fixed-point spec)")
        if not _integer(d[name]):
            raise SpecError(f"{where}.{name} must be an integer, not {_kind(d[name])}")
    width, int_bits = int(d["width"]), int(d["int_bits"])
    if not 1 <= width <= MAX_WIDTH:
        raise SpecError(f"{where}.width {width} is outside 1..{MAX_WIDTH}")
    if not -MAX_WIDTH <= width - int_bits <= MAX_WIDTH:  # ap_fixed allows I > W and I < 0
        raise SpecError(
            f"{where}.int_bits {int_bits} gives {width - int_bits} fraction bits, outside -{MAX_WIDTH}..{MAX_WIDTH}"
        )
    signed = d.get("signed", True)
    if not isinstance(signed, bool):
        raise SpecError(f"{where}.signed must be true or false, not {_kind(signed)}")
    for name, modes, default in (("rounding", ROUNDING_MODES, "AP_TRN"), ("saturation", SATURATION_MODES, "AP_WRAP")):
        mode = d.get(name, default)
        if mode not in modes:
            raise SpecError(f"{where}.{name} must be one of {', '.join(modes)}, not {_kind(mode)}")
    return FixedFormat(width, int_bits, signed, d.get("rounding", "AP_TRN"), d.get("saturation", "AP_WRAP"))


def check_spec_dict(d, source: str, version: int) -> tuple[FixedFormat, dict[str, dict[str, FixedFormat]]]:
    """The input format and every layer's formats of a spec's JSON document, checked."""
    if not isinstance(d, Mapping):
        raise SpecError(f"{source}: a fixed-point spec is a JSON object, not {_kind(d)}")
    if d.get("format_version") != version or isinstance(d.get("format_version"), bool):
        raise SpecError(f"{source}: format_version {d.get('format_version')!r}, expected {version}")
    if not isinstance(d.get("weights_sha256", ""), str):
        raise SpecError(f"{source}: weights_sha256 must be a string, not {_kind(d['weights_sha256'])}")
    if not isinstance(d.get("meta", {}), Mapping):
        raise SpecError(f"{source}: meta must be an object, not {_kind(d['meta'])}")
    if "input" not in d:
        raise SpecError(f"{source}: input is missing (malformed fixed-point spec)")
    input_format = check_format(d["input"], f"{source}: input")
    layers = d.get("layers")
    if not isinstance(layers, Mapping):
        raise SpecError(f"{source}: layers must be an object keyed by layer name, not {_kind(layers)}")
    out = {}
    for layer in network.LAYERS:
        entry = layers.get(layer.name)
        where = f"{source}: layers.{layer.name}"
        if not isinstance(entry, Mapping):
            raise SpecError(
                f"{where} is missing (malformed fixed-point spec)"
                if entry is None
                else f"{where} must be an object, not {_kind(entry)}"
            )
        for tensor in TENSORS:
            if tensor not in entry:
                raise SpecError(f"{where}.{tensor} is missing (malformed fixed-point spec)")
        out[layer.name] = {t: check_format(entry[t], f"{where}.{t}") for t in TENSORS}
    extra = sorted(set(layers) - {layer.name for layer in network.LAYERS})
    if extra:
        raise SpecError(f"{source}: layers.{extra[0]} is not a layer of the network")
    return input_format, out


# --------------------------------------------------------------------------------- weights
def check_params(params, source: str = "weights") -> dict[str, np.ndarray]:
    """The float32 arrays of a weight set, checked: every tensor present, real numbers, the
    network's shapes, finite and below MAX_ABS_WEIGHT in magnitude."""
    if not isinstance(params, Mapping):
        raise WeightsError(
            f"{source}: weights must be a mapping of 'layer/kernel', 'layer/bias' arrays, not {type(params).__name__}"
        )
    out = {}
    for shape in network.layer_shapes():
        for part, expected in (("kernel", shape.weight_shape), ("bias", shape.bias_shape)):
            key = f"{shape.layer.name}/{part}"
            if key not in params:
                raise WeightsError(f"{source}: missing {key}")
            value = params[key]
            try:
                array = np.asarray(value)
            except Exception:
                array = np.asarray(None, dtype=object)
            if array.dtype.kind not in "biuf":
                raise WeightsError(
                    f"{source}: {key} must hold real numbers, not {array.dtype} ({type(value).__name__})"
                )
            if tuple(array.shape) != expected:
                raise WeightsError(f"{source}: {key} has shape {tuple(array.shape)}, expected {expected}")
            array = array.astype(np.float64)
            if not np.all(np.isfinite(array)):
                raise WeightsError(f"{source}: {key} holds NaN or infinity")
            big = np.abs(array) >= MAX_ABS_WEIGHT
            if big.any():
                raise WeightsError(
                    f"{source}: {key} holds {int(big.sum())} values beyond +-{MAX_ABS_WEIGHT:g} "
                    f"(largest {np.abs(array).max():.3g}); no 16-bit format holds them"
                )
            out[key] = array.astype(np.float32)
    return out


def max_float_logit() -> float:
    """Bound on any float logit of weights below MAX_ABS_WEIGHT (pixels are at most 1): each layer
    adds at most fan_in * |w| * |x| + |b|; ReLU and pooling never grow a magnitude."""
    x = 1.0
    for s in network.layer_shapes():
        x = s.fan_in * MAX_ABS_WEIGHT * x + MAX_ABS_WEIGHT
    return x


def saturated(params: Mapping, layer_formats: Mapping, source: str = "weights") -> list[str]:
    """What of `params` lies beyond the kernel and bias formats (`{layer: LayerFormats}`): one
    phrase per tensor, empty when every value fits."""
    out = []
    for layer in network.LAYERS:
        f = layer_formats[layer.name]
        for tensor, fmt in (("kernel", f.kernel), ("bias", f.bias)):
            scaled = np.ldexp(np.asarray(params[f"{layer.name}/{tensor}"], np.float64), fmt.frac_bits)
            n = int(((scaled > fmt.max_raw + 0.5) | (scaled < fmt.min_raw - 0.5)).sum())
            if n:
                out.append(f"{n} of {scaled.size} values of {layer.name}/{tensor} beyond {fmt.ctype()}")
    return out
