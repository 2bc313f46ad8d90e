"""Weight sets for the fabric: the fixed-point formats built into it (`accelerator_spec`) and the
checks and quantization of a weight set before it is loaded (`prepare_weights`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import fixedspec, hls_stream, network, validation, weights
from .errors import WeightFormatError


@dataclass
class WeightSet:
    """A weight set ready for the fabric: its raw layers and where it came from."""

    layers: list
    source: str
    beats: np.ndarray = field(repr=False, default=None)


def accelerator_spec() -> fixedspec.FixedSpec:
    """The fixed-point formats built into the fabric: the shipped spec the HLS export used."""
    return fixedspec.load(fixedspec.SHIPPED)


def _check_formats(spec: fixedspec.FixedSpec, built: fixedspec.FixedSpec, source: str) -> None:
    diffs = []
    if spec.input != built.input:
        diffs.append(f"input {spec.input.ctype()} (built {built.input.ctype()})")
    for layer in network.LAYERS:
        for tensor in fixedspec.TENSORS:
            a, b = getattr(spec.layers[layer.name], tensor), getattr(built.layers[layer.name], tensor)
            if a != b:
                diffs.append(f"{layer.name} {tensor} {a.ctype()} (built {b.ctype()})")
    if diffs:
        raise WeightFormatError(
            f"{source}: formats differ from those built into the fabric: {'; '.join(diffs)}. "
            "Requantize with the shipped spec, or build a new bitstream"
        )


def _saturated(params: dict, built: fixedspec.FixedSpec) -> list[str]:
    return validation.saturated(params, built.layers)


def prepare_weights(source, spec=None, allow_saturation: bool = False) -> WeightSet:
    """Check a weight set against the network's shapes and the fabric's fixed-point formats and
    quantize it.

    Parameters
    ----------
    source : str, Path, dict or list
        A float weight archive (.npz, `lenet5_pynq.weights`), a weight-load stream file (.bin of
        little-endian uint64 beats from ``python -m lenet5_pynq.export weight-stream``), a dict
        of float arrays keyed ``"layer/kernel"``, ``"layer/bias"``, or a list of
        `fixedspec.QuantizedLayer`.
    spec : str, Path or FixedSpec, optional
        The spec the weights were quantized for; its formats must equal the fabric's.
    allow_saturation : bool
        Accept float weights beyond the range of their format (they saturate); refused by default.

    Raises
    ------
    WeightFormatError
        Wrong shapes, other formats than the fabric's, values out of range, a malformed stream.
    """
    built = accelerator_spec()
    if spec is not None:
        try:
            spec_obj = spec if isinstance(spec, fixedspec.FixedSpec) else fixedspec.load(spec)
        except fixedspec.SpecError as e:
            raise WeightFormatError(str(e)) from None
        _check_formats(spec_obj, built, "spec")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix == ".bin":
            try:
                size = path.stat().st_size
                if not path.is_file() or size % 8:
                    raise WeightFormatError(
                        f"{path}: {'not a file' if not path.is_file() else f'{size} bytes'}, "
                        "a weight-load stream is whole 8-byte beats"
                    )
                beats = np.fromfile(path, dtype="<u8")
            except OSError as e:
                raise WeightFormatError(f"{path}: cannot read the weight-load stream ({e.strerror or e})") from None
            expected = hls_stream.weight_stream_beats()
            if len(beats) != expected:
                raise WeightFormatError(f"{path}: {len(beats)} beats, a weight-load stream has {expected}")
            header = beats[:1].view(hls_stream.WEIGHT_HEADER_DTYPE)[0]
            words = int(header["words_lo"]) | int(header["words_hi"]) << 16
            if (int(header["magic"]), int(header["format"]), words) != (
                hls_stream.WEIGHT_MAGIC,
                hls_stream.WEIGHT_FORMAT,
                hls_stream.weight_word_count(),
            ):
                raise WeightFormatError(
                    f"{path}: header (magic 0x{int(header['magic']):04x}, format {int(header['format'])}, "
                    f"{words} words) is not a format-{hls_stream.WEIGHT_FORMAT} stream of "
                    f"{hls_stream.weight_word_count()} words"
                )
            return WeightSet(layers=None, source=str(path), beats=beats.astype(np.uint64))
        try:
            params, _ = weights.load(path)
        except weights.WeightsError as e:
            raise WeightFormatError(str(e)) from None
        name = str(path)
    elif isinstance(source, dict):
        try:
            params = weights.check(source, "weights")
        except weights.WeightsError as e:
            raise WeightFormatError(str(e)) from None
        name = "arrays"
    elif isinstance(source, (list, tuple)) and source and isinstance(source[0], fixedspec.QuantizedLayer):
        for q, s in zip(source, network.layer_shapes()):
            f = built.layers[s.layer.name]
            if q.name != s.layer.name or q.kernel.shape != s.weight_shape or q.bias.shape != s.bias_shape:
                raise WeightFormatError(
                    f"layer {q.name} {q.kernel.shape}/{q.bias.shape} does not match "
                    f"{s.layer.name} {s.weight_shape}/{s.bias_shape}"
                )
            if q.formats != f:
                raise WeightFormatError(f"{q.name}: formats differ from those built into the fabric")
            for raw, fmt, what in ((q.kernel, f.kernel, "kernel"), (q.bias, f.bias, "bias")):
                if raw.min() < fmt.min_raw or raw.max() > fmt.max_raw:
                    raise WeightFormatError(f"{q.name}/{what}: raw values outside {fmt.ctype()}")
        if len(source) != len(network.LAYERS):
            raise WeightFormatError(f"{len(source)} layers, the network has {len(network.LAYERS)}")
        layers = list(source)
        return WeightSet(layers, "quantized layers", hls_stream.pack_weight_stream(layers))
    else:
        raise TypeError("weights must be a path (.npz or .bin), a dict of arrays or a list of QuantizedLayer")
    clipped = _saturated(params, built)
    if clipped and not allow_saturation:
        raise WeightFormatError(
            f"{name}: {'; '.join(clipped)} (they would saturate; pass allow_saturation=True to accept)"
        )
    layers = fixedspec.quantize_params(params, built)
    return WeightSet(layers, name, hls_stream.pack_weight_stream(layers))
