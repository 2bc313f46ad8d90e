"""Backends by name.  Each module is imported only when asked for, so a board never imports
tensorflow and a workstation never imports pynq unless it uses them."""

from __future__ import annotations

import importlib
import sys

from .base import Backend, BackendUnavailable, Prediction, check_images

# name -> (module, factory, keyword arguments)
_REGISTRY = {
    "cpu": ("lenet5_pynq.backends.cpu", "GoldenBackend", {}),
    "cpu-float": ("lenet5_pynq.backends.cpu", "FloatBackend", {}),
    "csim": ("lenet5_pynq.backends.csim", "CsimBackend", {}),
    "gpu": ("lenet5_pynq.backends.gpu", "GpuBackend", {}),
    "gpu-float": ("lenet5_pynq.backends.gpu", "GpuFloatBackend", {}),
    "torch": ("lenet5_pynq.backends.torch_ref", "TorchBackend", {}),
    "torch-fp16": ("lenet5_pynq.backends.torch_ref", "TorchBackend", {"dtype": "float16", "channels_last": True}),
    "torch-compile": ("lenet5_pynq.backends.torch_ref", "TorchBackend", {"dtype": "float16", "channels_last": True, "compile": True}),
    "keras": ("lenet5_pynq.backends.keras_ref", "KerasBackend", {}),
    "keras-direct": ("lenet5_pynq.backends.keras_ref", "KerasBackend", {"direct": True}),
    "hls4ml-csim": ("lenet5_pynq.backends.hls4ml_ref", "Hls4mlBackend", {}),
    "fpga": ("lenet5_pynq.backends.fpga", "FpgaBackend", {}),
    "sim": ("lenet5_pynq.backends.fpga", "SimBackend", {}),
}
# Best first; names not registered yet (added by later work) are skipped.
AUTO_ORDER = ("fpga", "gpu", "cpu")


def names() -> list[str]:
    return ["auto", *_REGISTRY]


def register(name: str, module: str, factory: str, **kwargs) -> None:
    _REGISTRY[name] = (module, factory, kwargs)


def load_backend(name: str = "auto", verbose: bool = True, **kwargs) -> Backend:
    """The backend called `name`; "auto" picks the best available and says which on stderr."""
    if name == "auto":
        reasons = []
        for candidate in AUTO_ORDER:
            if candidate not in _REGISTRY:
                continue
            try:
                backend = load_backend(candidate, verbose=False, **kwargs)
            except BackendUnavailable as e:
                reasons.append(f"{candidate}: {e}")
                continue
            if verbose:
                skipped = f" (skipped {'; '.join(reasons)})" if reasons else ""
                print(f"auto: using backend {candidate}{skipped}", file=sys.stderr)
            return backend
        raise BackendUnavailable("no backend available: " + "; ".join(reasons))
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(names())}")
    module, factory, defaults = _REGISTRY[name]
    return getattr(importlib.import_module(module), factory)(**{**defaults, **kwargs})


__all__ = ["Backend", "BackendUnavailable", "Prediction", "check_images", "load_backend", "names", "register"]
