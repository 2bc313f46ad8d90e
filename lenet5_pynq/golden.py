"""The golden model: the fixed-point network in integer arithmetic, vectorized with numpy.

Every engine (HLS C simulation, the FPGA, the GPU fixed mode) must match its raw logits bit for
bit.  Sums are computed with float64 matrix products: all operands are integers and every
partial sum stays far below 2**53 (checked against the accumulator formats in `_check_exact`),
so BLAS computes them exactly, in any order.  numpy's integer matmul has no BLAS.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import network
from .fixedpoint import cast
from .fixedspec import QuantizedLayer

EXACT_FLOAT64_BITS = 53
CHUNK = 32  # images per pass: keeps the im2col buffers (3.7 MB for conv1) near the caches


def _check_exact(layers: list[QuantizedLayer]) -> None:
    for q in layers:
        if q.formats.accum.width > EXACT_FLOAT64_BITS:
            raise ValueError(f"{q.name}: accumulator {q.formats.accum.ctype()} is wider than float64 holds exactly")


def conv_matrix(kernel: np.ndarray) -> np.ndarray:
    """A Keras conv kernel (kh, kw, cin, cout) as the matrix `conv` multiplies: rows (cin, kh, kw)."""
    return kernel.transpose(2, 0, 1, 3).reshape(-1, kernel.shape[-1])


def conv(x: np.ndarray, matrix: np.ndarray, k: int) -> np.ndarray:
    """Valid k x k convolution of channels-last x (n, h, w, cin) as one im2col matrix product."""
    windows = sliding_window_view(x, (k, k), axis=(1, 2))  # n, oh, ow, cin, kh, kw
    n, oh, ow = windows.shape[:3]
    return (windows.reshape(n * oh * ow, -1) @ matrix).reshape(n, oh, ow, matrix.shape[1])


def max_pool(x: np.ndarray, p: int) -> np.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h // p, p, w // p, p, c).max(axis=(2, 4))


def _finish(acc: np.ndarray, q: QuantizedLayer, relu: bool) -> np.ndarray:
    """Accumulator (exact integers in float64) -> raw output integers, ReLU applied."""
    raw = cast(acc.astype(np.int64), q.formats.accum.frac_bits, q.formats.output)
    return np.maximum(raw, 0) if relu else raw


def _forward(images: np.ndarray, layers: list[QuantizedLayer]) -> np.ndarray:
    x = images.astype(np.float64)[..., None]  # raw input = pixel byte, channels last
    for spec, q in zip(network.layer_shapes(), layers):
        layer = spec.layer
        kernel = q.kernel.astype(np.float64)
        bias = q.aligned_bias.astype(np.float64)
        if isinstance(layer, network.Conv):
            acc = conv(x, conv_matrix(kernel), layer.kernel) + bias
            x = max_pool(_finish(acc, q, layer.relu), layer.pool).astype(np.float64)
        else:
            x = x.reshape(len(x), -1)  # channels-last flattening, as Keras does
            out = _finish(x @ kernel + bias, q, layer.relu)
            x = out.astype(np.float64)
    return out


def predict_raw(images: np.ndarray, layers: list[QuantizedLayer]) -> tuple[np.ndarray, np.ndarray]:
    """Classes int64[N] and raw logits int16[N, 10] for uint8 images [N, 28, 28]."""
    _check_exact(layers)
    logits = np.empty((len(images), network.NUM_CLASSES), np.int16)
    for start in range(0, len(images), CHUNK):
        logits[start : start + CHUNK] = _forward(images[start : start + CHUNK], layers)
    # argmax takes the first of equal maxima; the hardware's comparator must do the same.
    return logits.argmax(axis=1), logits
