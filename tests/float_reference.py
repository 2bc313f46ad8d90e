"""The float64 reference that the float engines' agreement is stated against (cpu-float in C,
its ARM builds under qemu, onnxruntime): the numpy float model on float64 weights.

RTOL: a logit may differ from the reference by at most RTOL x the largest |logit| of its image.
float32 sums of up to 256 products, fused or not and in any order, stay within a few units in
the last place of that magnitude (about 1e-6 measured for cpu-float and numpy on the 10,000
MNIST test images); 4e-6 leaves room for other summation orders, not for a wrong term (a weight
or a pixel off by one part in 1,000 moves logits by far more)."""

from __future__ import annotations

import numpy as np

from lenet5_pynq.backends.cpu import NumpyFloatModel

RTOL = 4e-6


def float64_logits(params: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    return NumpyFloatModel({k: np.asarray(v, np.float64) for k, v in params.items()}).logits(images)


def worst_relative_error(logits: np.ndarray, reference: np.ndarray) -> float:
    """max over images of max |logit - reference| / max |reference| (the quantity RTOL bounds)."""
    scale = np.abs(reference).max(axis=1)
    return float((np.abs(np.asarray(logits, np.float64) - reference).max(axis=1) / scale).max())


def outside_tolerance(logits: np.ndarray, reference: np.ndarray) -> int:
    """How many images have a logit further than RTOL x their largest |logit| from the reference."""
    scale = np.abs(reference).max(axis=1, keepdims=True)
    return int((np.abs(np.asarray(logits, np.float64) - reference) > RTOL * scale).any(axis=1).sum())
