"""hls4ml's C simulation of the same Keras network, a peer for the golden model's speed.

hls4ml converts the Keras model to its own HLS C++ (ap_fixed<16,6> everywhere, its default) and
compiles it with g++; `predict` runs that C simulation.  Needs tensorflow and hls4ml.
"""

from __future__ import annotations

import tempfile

import numpy as np

from .. import network, weights
from .base import Backend, BackendUnavailable, Prediction, check_images

PRECISION = "ap_fixed<16,6>"


class Hls4mlBackend(Backend):
    name = "hls4ml-csim"

    def __init__(self, weights_path=None):
        try:
            import hls4ml
            import keras
        except ImportError as e:
            raise BackendUnavailable(f"needs tensorflow and hls4ml ({e})") from None
        from ..keras_model import build_model, set_model_weights

        params, _ = weights.load(weights_path)
        model = build_model(keras, rescale=False)  # hls4ml knows no Rescaling layer
        set_model_weights(model, params)
        config = hls4ml.utils.config_from_keras_model(model, granularity="model", default_precision=PRECISION)
        self._workdir = tempfile.TemporaryDirectory(prefix="lenet5-hls4ml-")
        self._model = hls4ml.converters.convert_from_keras_model(
            model, hls_config=config, output_dir=self._workdir.name, backend="Vitis", io_type="io_stream"
        )
        self._model.compile()

    def predict(self, images) -> Prediction:
        x = check_images(images)[..., None].astype(np.float32) * np.float32(2.0**-network.PIXEL_FRAC_BITS)
        logits = np.asarray(self._model.predict(x), np.float32).reshape(len(x), network.NUM_CLASSES)
        return Prediction(logits.argmax(axis=1), logits, 1.0)

    def close(self) -> None:
        self._workdir.cleanup()
