"""GPU backends through the CUDA library (cuda/, loaded with CFFI):

* `gpu`: the fixed-point network, bit-exact with the golden model (raw int16 logits);
* `gpu-float`: the float32 network (Keras numbers);
* `gpu-fp16`: the float network on tensor cores, float16 weights and activations with float32
  sums (reduced precision: agrees with `gpu-float` on most images, not bit for bit).

Each raises BackendUnavailable, saying why, when the library is not built, or there is no NVIDIA
driver or GPU (`gpu-fp16` also on a card without the tensor cores or the shared memory for it).
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from .. import fixedspec, weights
from .base import Backend, BackendUnavailable, Prediction, check_images, weight_files

NVIDIA_DRIVER = "/proc/driver/nvidia/version"  # the kernel driver's (also inside GPU containers)


def could_run_here() -> bool:
    """An NVIDIA driver or the CUDA compiler is on this machine: the GPU backends could run here
    (`auto` mentions them only then, not on a board or a laptop without either)."""
    from .. import gpu

    return os.path.exists(NVIDIA_DRIVER) or shutil.which("nvidia-smi") is not None or gpu.nvcc_path() is not None


def open_network(mode: str, weights_path=None, spec_path=None, device: int = 0, params=None, quantized=None):
    """A `lenet5_pynq.gpu.GpuNetwork` holding the weights for `mode` ("fixed", "float", "half" or
    "both"; the float weights serve "float" and "half")."""
    from .. import gpu

    try:
        gpu.device_count()
    except gpu.GpuLibraryMissing as e:
        raise BackendUnavailable(str(e)) from None
    except gpu.GpuError as e:
        raise BackendUnavailable(f"no usable GPU: {e}") from None
    floats = mode in ("float", "half", "both")
    if floats:
        params = weights.load(weights_path)[0] if params is None else weights.check(params, "params")
    if mode in ("fixed", "both") and quantized is None:
        quantized, _ = fixedspec.load_quantized(weights_path, spec_path)
    return gpu.GpuNetwork(params if floats else None, quantized if mode in ("fixed", "both") else None, device)


class GpuBackend(Backend):
    """The fixed-point network on the GPU: raw int16 logits, bit-exact with `cpu`."""

    name = "gpu"
    exact = True
    mode = "fixed"

    def __init__(self, weights_path=None, spec_path=None, device: int = 0, variant: str = "auto"):
        weights_path, spec_path = weight_files(weights_path, spec_path)  # by default the spec beside the weights
        self.spec = fixedspec.load(spec_path, weights_path)
        self.net = open_network(self.mode, weights_path, spec_path, device)
        self.net.set_variant(variant)
        self.device_name = self.net.device_name
        self.logit_scale = self.spec.logits.scale

    def predict(self, images) -> Prediction:
        images = check_images(images)
        classes, logits = self.net.infer(images, self.mode)
        return Prediction(classes.astype(np.int64), logits, self.logit_scale)

    def close(self) -> None:
        self.net.close()


class GpuFloatBackend(GpuBackend):
    """The float32 network on the GPU."""

    name = "gpu-float"
    exact = False
    mode = "float"

    def __init__(self, weights_path=None, device: int = 0, variant: str = "auto"):
        self.net = open_network(self.mode, weights_path, None, device)
        self.net.set_variant(variant)
        self.device_name = self.net.device_name
        self.logit_scale = 1.0


class GpuHalfBackend(GpuFloatBackend):
    """The float network on tensor cores: float16 weights and activations, float32 sums."""

    name = "gpu-fp16"
    mode = "half"

    def __init__(self, weights_path=None, device: int = 0):
        super().__init__(weights_path, device)
        from .. import gpu

        try:
            self.net.infer(np.zeros((0, 28, 28), np.uint8), self.mode)  # a card without the mode says so here
        except gpu.GpuError as e:
            self.net.close()
            raise BackendUnavailable(str(e)) from None
