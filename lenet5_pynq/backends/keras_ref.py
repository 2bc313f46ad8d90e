"""Keras peers for the benchmark and the float-accuracy check (tensorflow needed: `train` extra).

`keras` is what a Keras user writes, `model.predict(x)`; `keras-direct` calls the model on the
batch (`model(x, training=False)`), which skips predict's per-call set-up.
"""

from __future__ import annotations

import numpy as np

from .. import network, weights
from .base import Backend, BackendUnavailable, Prediction, check_images


def _keras():
    try:
        import keras
        import tensorflow  # noqa: F401
    except ImportError:
        raise BackendUnavailable("tensorflow is not installed (pip install -e '.[train]')") from None
    return keras


class KerasBackend(Backend):
    name = "keras"

    def __init__(self, weights_path=None, direct: bool = False):
        keras = _keras()
        from ..keras_model import build_model, set_model_weights

        params, _ = weights.load(weights_path)
        self.model = build_model(keras)
        set_model_weights(self.model, params)
        self.direct = direct
        if direct:
            self.name = "keras-direct"

    def predict(self, images) -> Prediction:
        x = check_images(images)[..., None].astype(np.float32)
        if len(x) == 0:  # predict() cannot make a batch of nothing; the answer is known
            return Prediction(np.empty(0, np.int64), np.empty((0, network.NUM_CLASSES), np.float32), 1.0)
        if self.direct:
            logits = np.asarray(self.model(x, training=False))
        else:
            logits = self.model.predict(x, batch_size=min(len(x), 10000), verbose=0)
        logits = np.asarray(logits, np.float32)
        return Prediction(logits.argmax(axis=1).astype(np.int64), logits, 1.0)
