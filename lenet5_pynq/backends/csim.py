"""`csim`: the HLS accelerator's C++ run as a backend, through the C-simulation library
(`lenet5_pynq.csim_library`: its build, loading, lock and weight memories), bit-exact with the
golden model."""

from __future__ import annotations

import numpy as np

from .. import fixedspec, hls_stream, network, progress, validation, weights
from ..csim_library import CHUNK, classify_beats, library, load_weights, session
from .base import Backend, Prediction, check_built_formats, check_images, weight_files


class CsimBackend(Backend):
    """The HLS C++ top, run by g++ through the AXI-stream contract."""

    name = "csim"
    exact = True

    def __init__(self, weights_path=None, spec_path=None):
        """The shipped weights, or others (`weight_files`: with the spec beside them unless
        `spec_path` is given), whose spec must have the built formats (SpecError otherwise)."""
        self.weights_path, self.spec_path = weight_files(weights_path, spec_path)
        layers, self.spec = fixedspec.load_quantized(self.weights_path, self.spec_path)
        check_built_formats(self.spec, str(self.spec_path))
        self.logit_scale = self.spec.logits.scale
        self._stream = hls_stream.pack_weight_stream(layers)
        library()  # built and loaded now, so that a missing compiler is BackendUnavailable here

    def load_weights(self, weights_path=None, spec_path=None, params=None, allow_saturation: bool = False) -> np.void:
        """Load a weight set into the simulated fabric through the mode-1 stream (what the board
        driver does over DMA): a float .npz quantized with the spec, or float `params` (a dict of
        Keras-layout arrays) quantized with it.  The spec's formats must match the built ones.

        Raises `weights.WeightsError` for a set that fails the checks of `validation` or (unless
        `allow_saturation`) lies beyond the spec's formats, `fixedspec.SpecError` for a spec
        whose formats differ; nothing is sent then."""
        spec = fixedspec.load(spec_path) if spec_path is not None else self.spec
        check_built_formats(spec, str(spec_path))
        if params is None:
            params, _ = weights.load(weights_path)
            source = str(weights_path if weights_path is not None else weights.SHIPPED)
        else:
            params, source = weights.check(params, "params"), "params"
        clipped = validation.saturated(params, spec.layers)
        if clipped and not allow_saturation:
            raise weights.WeightsError(
                f"{source}: {'; '.join(clipped)} (they would saturate; pass allow_saturation=True to accept)"
            )
        stream = hls_stream.pack_weight_stream(fixedspec.quantize_params(params, spec))
        ack = load_weights(stream)  # run_stream records the set as loaded
        self._stream = stream
        return ack

    def predict(self, images) -> Prediction:
        images = check_images(images)
        classes = np.empty(len(images), np.int64)
        logits = np.empty((len(images), network.NUM_CLASSES), np.int16)
        # A bar (stderr, a terminal) only for runs of several chunks: evaluate's own chunks are smaller.
        with (
            session(self._stream),
            progress.bar(total=len(images), desc="csim", quiet=len(images) <= CHUNK, leave=False) as bar,
        ):
            for start in range(0, len(images), CHUNK):
                c, raw = classify_beats(images[start : start + CHUNK])
                classes[start : start + CHUNK], logits[start : start + CHUNK] = c, raw
                bar.update(len(c))
        return Prediction(classes, logits, self.logit_scale)
