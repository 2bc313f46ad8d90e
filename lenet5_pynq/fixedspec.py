"""The one fixed-point spec: a JSON file shipped beside the weights that names, per tensor, the
ap_fixed format with its rounding and saturation modes.  The numpy golden model, the HLS header
generator and the GPU fixed mode all read it through `load()`.

Per layer the datapath is:  accum = sum(input * kernel) + bias   (exact: accum's format holds
every product and sum without rounding), then  output = cast(accum) (the output format's rounding
and saturation), then ReLU and max-pool where the network says so.  The last layer's output
format is the format of the raw int16 logits the hardware returns.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import network, validation, weights
from .fixedpoint import FixedFormat, from_float
from .validation import SpecError

SHIPPED = weights.DATA_DIR / "fixed_spec.json"
FORMAT_VERSION = 1
TENSORS = ("kernel", "bias", "accum", "output")


@dataclass(frozen=True)
class LayerFormats:
    kernel: FixedFormat
    bias: FixedFormat
    accum: FixedFormat
    output: FixedFormat

    @property
    def bias_shift(self) -> int:
        """Left shift that aligns a raw bias with the accumulator's fraction bits."""
        return self.accum.frac_bits - self.bias.frac_bits


@dataclass(frozen=True)
class FixedSpec:
    input: FixedFormat
    layers: dict[str, LayerFormats]
    weights_sha256: str = ""
    meta: dict | None = None

    @property
    def logits(self) -> FixedFormat:
        return self.layers[network.LAYERS[-1].name].output

    def in_format(self, name: str) -> FixedFormat:
        """Format of the activations entering layer `name`."""
        names = [layer.name for layer in network.LAYERS]
        i = names.index(name)
        return self.input if i == 0 else self.layers[names[i - 1]].output

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "weights_sha256": self.weights_sha256,
            "meta": self.meta or {},
            "input": self.input.to_dict(),
            "layers": {name: {t: getattr(f, t).to_dict() for t in TENSORS} for name, f in self.layers.items()},
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "spec") -> FixedSpec:
        """A spec from its JSON document, checked field by field (`validation.check_spec_dict`)."""
        input_format, formats = validation.check_spec_dict(d, source, FORMAT_VERSION)
        layers = {name: LayerFormats(**f) for name, f in formats.items()}
        spec = cls(input_format, layers, d.get("weights_sha256", ""), dict(d.get("meta", {})))
        spec.validate(source)
        return spec

    def validate(self, source: str = "spec") -> None:
        # Types and ranges of every format (a spec built in Python skips from_dict), then the datapath.
        validation.check_format(self.input.to_dict(), f"{source}: input")
        for layer in network.LAYERS:
            if not isinstance(self.layers.get(layer.name), LayerFormats):
                raise SpecError(f"{source}: layers.{layer.name} is missing")
            for tensor in TENSORS:
                validation.check_format(
                    getattr(self.layers[layer.name], tensor).to_dict(), f"{source}: layers.{layer.name}.{tensor}"
                )
        if self.input.frac_bits != network.PIXEL_FRAC_BITS or self.input.width != 8 or self.input.signed:
            raise SpecError(f"{source}: input must be the pixel byte, ap_ufixed<8, {8 - network.PIXEL_FRAC_BITS}>")
        for layer in network.LAYERS:
            f = self.layers[layer.name]
            expected = self.in_format(layer.name).frac_bits + f.kernel.frac_bits
            if f.accum.frac_bits != expected:
                raise SpecError(
                    f"{source}: {layer.name} accum has {f.accum.frac_bits} fraction bits, products have {expected}"
                )
            for tensor in ("kernel", "bias", "output"):
                fmt = getattr(f, tensor)
                if not fmt.signed or fmt.width > 16:  # the fabric, its weight stream and the GPU keep int16 words
                    raise SpecError(
                        f"{source}: {layer.name} {tensor} must be signed and at most 16 bits, not {fmt.ctype()}"
                    )
            if f.bias_shift < 0:
                raise SpecError(f"{source}: {layer.name} bias has more fraction bits than the accumulator")


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(path: str | os.PathLike | None = None, weights_path: str | os.PathLike | None = None) -> FixedSpec:
    """Read a spec; when `weights_path` is given, check that the spec was made for it."""
    path = Path(path) if path is not None else SHIPPED
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SpecError(f"{path}: cannot read fixed-point spec ({e})") from None
    spec = FixedSpec.from_dict(d, str(path))
    if weights_path is not None and spec.weights_sha256:
        actual = file_sha256(weights_path)
        if actual != spec.weights_sha256:
            raise SpecError(f"{path}: made for weights {spec.weights_sha256[:12]}, but {weights_path} is {actual[:12]}")
    return spec


def save(spec: FixedSpec, path: str | os.PathLike) -> None:
    """Write the spec atomically (a temporary file renamed onto `path`, removed on failure)."""
    from .atomic import write_text

    write_text(path, json.dumps(spec.to_dict(), indent=1) + "\n", what="spec")


@dataclass(frozen=True)
class QuantizedLayer:
    """Raw integers of one layer: kernel in Keras layout, bias already aligned to the accumulator."""

    name: str
    kernel: np.ndarray  # int64, weight_shape
    bias: np.ndarray  # int64 raw in the bias format
    formats: LayerFormats
    in_format: FixedFormat

    @property
    def aligned_bias(self) -> np.ndarray:
        return self.bias << self.formats.bias_shift


def quantize_params(params: dict[str, np.ndarray], spec: FixedSpec) -> list[QuantizedLayer]:
    out = []
    for layer in network.LAYERS:
        f = spec.layers[layer.name]
        out.append(
            QuantizedLayer(
                layer.name,
                from_float(params[f"{layer.name}/kernel"], f.kernel),
                from_float(params[f"{layer.name}/bias"], f.bias),
                f,
                spec.in_format(layer.name),
            )
        )
    return out


def load_quantized(weights_path=None, spec_path=None) -> tuple[list[QuantizedLayer], FixedSpec]:
    """The shipped (or given) weights quantized by the shipped (or given) spec."""
    wpath = Path(weights_path) if weights_path is not None else weights.SHIPPED
    params, _ = weights.load(wpath)
    spec = load(spec_path, wpath)
    return quantize_params(params, spec), spec
