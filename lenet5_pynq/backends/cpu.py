"""CPU backends: `cpu`, the bit-exact golden model, and `cpu-float`, the float32 network as Keras
computes it, in numpy."""

from __future__ import annotations

import numpy as np

from .. import fixedspec, golden, network, weights
from .base import Backend, BackendUnavailable, Prediction, check_images, weight_files


class GoldenBackend(Backend):
    """The fixed-point network in integer arithmetic: raw int16 logits, as the fabric returns.
    Other weights run with their spec (`weight_files`: by default the one beside them)."""

    name = "cpu"
    exact = True

    def __init__(self, weights_path=None, spec_path=None):
        self.layers, self.spec = fixedspec.load_quantized(*weight_files(weights_path, spec_path))
        self.logit_scale = self.spec.logits.scale

    def predict(self, images) -> Prediction:
        classes, logits = golden.predict_raw(check_images(images), self.layers)
        return Prediction(classes, logits, self.logit_scale)


class NumpyFloatModel:
    """The float32 network in numpy (im2col matrix products); also measures activations."""

    def __init__(self, params: dict[str, np.ndarray]):
        self._layers = []
        for shape in network.layer_shapes():
            layer = shape.layer
            kernel = params[f"{layer.name}/kernel"]
            if isinstance(layer, network.Conv):
                kernel = golden.conv_matrix(kernel)
            self._layers.append((layer, np.ascontiguousarray(kernel), params[f"{layer.name}/bias"]))
        self._input_scale = np.float32(2.0**-network.PIXEL_FRAC_BITS)

    def logits(self, images: np.ndarray, observe=None) -> np.ndarray:
        """Float logits; `observe(layer_name, output)` sees each layer's output if given."""
        x = images[..., None].astype(np.float32) * self._input_scale
        for layer, kernel, bias in self._layers:
            if isinstance(layer, network.Conv):
                # Pool before bias and ReLU: both are monotone and the bias is per channel.
                x = np.maximum(golden.max_pool(golden.conv(x, kernel, layer.kernel), layer.pool) + bias, 0)
            else:
                x = x.reshape(len(x), -1) @ kernel + bias
                if layer.relu:
                    np.maximum(x, 0, out=x)
            if observe is not None:
                observe(layer.name, x)
        return x


def _pack_for_c(params: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Weights in the C kernel's layout: conv [f][c][ky][kx]; dense [in][out], with the first
    dense layer's inputs reordered from Keras's channels-last flattening to channel-major."""
    packed = []
    previous = None
    for shape in network.layer_shapes():
        layer = shape.layer
        kernel = params[f"{layer.name}/kernel"]
        if isinstance(layer, network.Conv):
            kernel = kernel.transpose(3, 2, 0, 1)
        elif isinstance(previous, network.Conv):
            h, w, c = shape.in_shape
            kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
        packed += [
            np.ascontiguousarray(kernel, np.float32),
            np.ascontiguousarray(params[f"{layer.name}/bias"], np.float32),
        ]
        previous = layer
    return packed


class FloatBackend(Backend):
    """The float32 network: a C kernel (compiled on first use), numpy where no compiler is."""

    name = "cpu-float"

    def __init__(self, weights_path=None, params=None, engine: str = "auto"):
        # `params=` goes through the same checks as an archive (shapes, finite, representable)
        params = weights.load(weights_path)[0] if params is None else weights.check(params, "params")
        self._numpy = NumpyFloatModel(params)
        self._lib = None
        if engine not in ("auto", "c", "numpy"):
            raise ValueError(f"engine must be auto, c or numpy, not {engine!r}")
        if engine != "numpy":
            from .. import native

            try:
                self._ffi, self._lib = native.load("float_net.c", native.network_defines())
            except native.BuildError as e:
                if engine == "c":
                    raise BackendUnavailable(str(e)) from None
                native._say_once(f"cpu-float runs on numpy (slower): {e}")
        self.engine = "c" if self._lib is not None else "numpy"
        # What `bench` and the reports call it: the numpy fallback is not the C kernel.
        self.label = self.name if self.engine == "c" else f"{self.name} (numpy)"
        if self._lib is not None:
            self._packed = _pack_for_c(params)
            self._param_ptrs = self._ffi.new("float *[]", [self._ffi.from_buffer("float[]", a) for a in self._packed])

    def logits(self, images: np.ndarray) -> np.ndarray:
        if self._lib is None:
            return self._numpy.logits(images)
        out = np.empty((len(images), network.NUM_CLASSES), np.float32)
        status = self._lib.lenet5_float_forward(
            self._param_ptrs,
            self._ffi.from_buffer("uint8_t[]", images),
            len(images),
            self._ffi.from_buffer("float[]", out),
        )
        if status:
            raise RuntimeError(f"lenet5_float_forward failed with status {status}")
        return out

    def predict(self, images) -> Prediction:
        logits = self.logits(check_images(images))
        return Prediction(logits.argmax(axis=1), logits, 1.0)
