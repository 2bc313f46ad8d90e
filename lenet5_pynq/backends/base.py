"""What every backend returns and accepts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import network

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
