"""Pick the 16-bit fixed-point formats of every tensor and write the spec beside the weights.

    python -m lenet5_pynq.quantize [--weights FILE] [--mnist DIR] [--out FILE|DIR] [--accelerator-formats]

The spec goes beside the given weights, or to --out (a directory gets fixed_spec.json); the
command never writes inside the installed package, so the shipped weights (the default) need
--out.  With --accelerator-formats the formats are not chosen but those built into the accelerator
(the shipped spec's), so that csim, sim and the board run the new weights without a new build;
weights or sums that do not fit them are refused.

Weights and biases get the fewest integer bits that hold their largest magnitude; activations
(each layer's output) get the integer bits of the largest value measured on training images, plus
headroom; accumulators are exact (the product's fraction bits, and integer bits for the worst
case the quantized weights allow), so no engine rounds inside a sum and the sum order is free.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import cli_types, fixedspec, mnist, network, validation, weights
from .atomic import OutputError, check_outside_package, check_writable
from .fixedpoint import FixedFormat, bits_for, from_float
from .fixedspec import FixedSpec, LayerFormats

WORD = 16
WEIGHT_MODES = dict(rounding="AP_RND_CONV", saturation="AP_SAT")  # offline: the best rounding is free
ACTIVATION_MODES = dict(rounding="AP_RND", saturation="AP_SAT")  # in the fabric: add half, truncate
ACCUM_MODES = dict(rounding="AP_TRN", saturation="AP_WRAP")  # never used: the accumulator is exact
HEADROOM_BITS = 1  # for inputs unlike the calibration images
CALIBRATION_IMAGES = 10000
INPUT_FORMAT = FixedFormat(8, 8 - network.PIXEL_FRAC_BITS, signed=False)


def measure_activations(params: dict[str, np.ndarray], images: np.ndarray) -> dict[str, float]:
    """Largest magnitude of each layer's output (after ReLU) of the float network."""
    from .backends.cpu import NumpyFloatModel

    peaks: dict[str, float] = {}
    NumpyFloatModel(params).logits(images, observe=lambda name, x: peaks.__setitem__(name, float(np.abs(x).max())))
    return peaks


def worst_case_sum(
    kernel: np.ndarray, bias: np.ndarray, kernel_format: FixedFormat, bias_format: FixedFormat, in_format: FixedFormat
) -> int:
    """The largest raw magnitude a layer's accumulator can reach (in the products' fraction
    bits), over output channels: every input at its largest magnitude with the sign that adds
    to |kernel|, plus the bias."""
    accum_frac = in_format.frac_bits + kernel_format.frac_bits
    q_kernel = np.abs(from_float(kernel, kernel_format)).reshape(-1, kernel.shape[-1])
    q_bias = np.abs(from_float(bias, bias_format)) << (accum_frac - bias_format.frac_bits)
    in_peak = max(-in_format.min_raw, in_format.max_raw)
    return int((q_kernel.sum(axis=0) * in_peak + q_bias).max())


def choose_spec(params: dict[str, np.ndarray], images: np.ndarray, weights_sha256: str = "") -> FixedSpec:
    peaks = measure_activations(params, images)
    layers: dict[str, LayerFormats] = {}
    in_format = INPUT_FORMAT
    for layer in network.LAYERS:
        kernel, bias = params[f"{layer.name}/kernel"], params[f"{layer.name}/bias"]
        kernel_format = FixedFormat(WORD, bits_for(np.abs(kernel).max()), **WEIGHT_MODES)
        accum_frac = in_format.frac_bits + kernel_format.frac_bits
        bias_frac = min(WORD - bits_for(np.abs(bias).max()), accum_frac)
        bias_format = FixedFormat(WORD, WORD - bias_frac, **WEIGHT_MODES)
        bound = worst_case_sum(kernel, bias, kernel_format, bias_format, in_format)
        accum_int = bits_for(bound * 2.0**-accum_frac)
        accum_format = FixedFormat(accum_int + accum_frac, accum_int, **ACCUM_MODES)
        out_format = FixedFormat(WORD, bits_for(peaks[layer.name]) + HEADROOM_BITS, **ACTIVATION_MODES)
        layers[layer.name] = LayerFormats(kernel_format, bias_format, accum_format, out_format)
        in_format = out_format
    meta = {"calibration_images": len(images), "activation_peaks": peaks, "headroom_bits": HEADROOM_BITS}
    spec = FixedSpec(INPUT_FORMAT, layers, weights_sha256, meta)
    spec.validate()
    return spec


def accelerator_formats_spec(
    params: dict[str, np.ndarray], images: np.ndarray, weights_sha256: str = "", built: FixedSpec | None = None
) -> tuple[FixedSpec, list[str]]:
    """The spec of `params` in the formats built into the accelerator (`built`, default the
    shipped spec's), and a note per layer whose measured activations those formats saturate.
    ValueError when kernels or biases lie beyond their formats, or a worst-case sum beyond its
    accumulator (the fabric's accumulators wrap; the golden model's sums never do)."""
    built = built or fixedspec.load(fixedspec.SHIPPED)
    problems = validation.saturated(params, built.layers)
    notes = []
    peaks = measure_activations(params, images)
    for layer in network.LAYERS:
        f = built.layers[layer.name]
        bound = worst_case_sum(
            params[f"{layer.name}/kernel"], params[f"{layer.name}/bias"], f.kernel, f.bias, built.in_format(layer.name)
        )
        if bound > f.accum.max_raw:
            problems.append(
                f"{layer.name}'s sums can reach {bound * 2.0**-f.accum.frac_bits:.4g}, beyond {f.accum.ctype()}"
            )
        if peaks[layer.name] > f.output.max_raw * f.output.scale:
            notes.append(
                f"{layer.name} outputs reach {peaks[layer.name]:.4g} on the calibration images; "
                f"{f.output.ctype()} saturates them"
            )
    if problems:
        raise ValueError("; ".join(problems))
    meta = {"calibration_images": len(images), "activation_peaks": peaks, "formats": "fabric (the shipped spec's)"}
    spec = FixedSpec(built.input, dict(built.layers), weights_sha256, meta)
    spec.validate()
    return spec, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.quantize", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(weights.SHIPPED), help="float weights .npz (default: shipped)")
    parser.add_argument("--mnist", help="MNIST directory (default: $LENET5_MNIST or ../shared/mnist)")
    parser.add_argument(
        "--calibration", type=cli_types.positive_int, default=CALIBRATION_IMAGES, help="training images measured"
    )
    parser.add_argument("--out", help="spec file, or a directory for fixed_spec.json (default: beside the weights)")
    parser.add_argument(
        "--accelerator-formats",
        action="store_true",
        help="keep the formats built into the accelerator (csim, sim, the board) instead of choosing them",
    )
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.weights).with_name("fixed_spec.json")
    if out.is_dir():
        out = out / "fixed_spec.json"
    try:
        check_outside_package(out, "spec")
        check_writable(out, "spec")
    except OutputError as e:
        hint = "" if args.out else " (pass --out FILE)"
        parser.error(f"{e}{hint}")
    try:
        params, _ = weights.load(args.weights)
        images, _ = mnist.load(args.mnist, "train")
    except (weights.WeightsError, mnist.MnistFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not 1 <= args.calibration <= len(images):
        parser.error(f"--calibration must be 1..{len(images)}")
    notes = []
    try:
        if args.accelerator_formats:
            spec, notes = accelerator_formats_spec(
                params, images[: args.calibration], fixedspec.file_sha256(args.weights)
            )
        else:
            spec = choose_spec(params, images[: args.calibration], fixedspec.file_sha256(args.weights))
    except ValueError as e:  # SpecError, or a FixedFormat too wide: activations beyond any format
        what = (
            "does not fit the accelerator's formats (quantize without --accelerator-formats, and build an "
            "accelerator for that spec)"
            if args.accelerator_formats
            else "no fixed-point formats hold this network"
        )
        print(f"error: {args.weights}: {what}: {e}", file=sys.stderr)
        return 2
    try:
        fixedspec.save(spec, out)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, f in spec.layers.items():
        print(f"{name:6s} kernel {f.kernel.ctype()}  bias {f.bias.ctype()}")
        print(f"{'':6s} accum  {f.accum.ctype()}  output {f.output.ctype()}")
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
