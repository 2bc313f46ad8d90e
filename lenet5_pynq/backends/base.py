"""What every backend returns and accepts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import fixedspec, network, weights

IMAGE_SHAPE = (network.INPUT_HEIGHT, network.INPUT_WIDTH)


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (no board, no GPU, library not built); the message says why."""


@dataclass
class Prediction:
    """Classes int64[N] and logits [N, 10].

    Fixed-point backends return the raw int16 words the hardware produces (real value =
    logits * logit_scale); float backends return float32 logits with logit_scale 1.0.
    """

    classes: np.ndarray
    logits: np.ndarray
    logit_scale: float = 1.0

    def __post_init__(self):
        # One dtype on every backend and platform (argmax gives int32 on 32-bit ARM).
        self.classes = np.asarray(self.classes).astype(np.int64, copy=False)

    def real_logits(self) -> np.ndarray:
        return self.logits.astype(np.float64) * self.logit_scale

    def probabilities(self) -> np.ndarray:
        z = self.real_logits()
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


def check_images(images) -> np.ndarray:
    """uint8[N, 28, 28] (a single 28x28 image becomes a batch of one), C-contiguous."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 pixel bytes, not {images.dtype}")
    if images.shape == IMAGE_SHAPE:
        images = images[None]
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images must have shape (N, 28, 28), not {images.shape}")
    return np.ascontiguousarray(images)


def weight_files(weights_path=None, spec_path=None) -> tuple[Path, Path]:
    """The float weights and the fixed-point spec a backend runs: the shipped pair by default; for
    other weights, `spec_path` or else the spec `quantize` writes beside them (fixed_spec.json in
    their directory).  A missing spec beside them is a SpecError naming it."""
    weights_path = Path(weights_path) if weights_path is not None else weights.SHIPPED
    if spec_path is not None:
        return weights_path, Path(spec_path)
    beside = weights_path.with_name(fixedspec.SHIPPED.name)
    if not beside.exists() and weights_path.is_file():
        raise fixedspec.SpecError(
            f"{weights_path}: no fixed-point spec beside it ({beside} does not exist): "
            f"python -m lenet5_pynq.quantize --weights {weights_path} writes it, or pass --spec"
        )
    return weights_path, beside


def check_built_formats(spec: fixedspec.FixedSpec, source: str, what: str = "the accelerator") -> None:
    """SpecError unless `spec` has the formats built into the accelerator (the shipped spec's,
    from which hls_src/generated/ is exported): csim, sim and the board run no others."""
    built = fixedspec.load(fixedspec.SHIPPED)
    diffs = [("input", spec.input, built.input)]
    for layer in network.LAYERS:
        diffs += [
            (
                f"layers.{layer.name}.{tensor}",
                getattr(spec.layers[layer.name], tensor),
                getattr(built.layers[layer.name], tensor),
            )
            for tensor in fixedspec.TENSORS
        ]
    diffs = [(field, a, b) for field, a, b in diffs if a != b]
    if diffs:
        field, a, b = diffs[0]
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        raise fixedspec.SpecError(
            f"{source}: {field} is {a.ctype()}, {what} was built with {b.ctype()}{more}: "
            "quantize the weights with --accelerator-formats, or build the accelerator for this spec"
        )


class Backend:
    """Base class: `predict(images)` -> Prediction."""

    name = "?"
    exact = False  # True: bit-exact with the golden fixed-point model
    device: str | None = None  # what it runs on, where that is not this machine's CPU

    def predict(self, images) -> Prediction:
        raise NotImplementedError

    def close(self) -> None:
        """Release hardware or library resources (a no-op by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"
