"""Backends by name.  Each module is imported only when asked for, so a board never imports
tensorflow and a workstation never imports pynq unless it uses them."""

from __future__ import annotations

import importlib
import inspect
import sys

from .base import Backend, BackendUnavailable, Prediction, check_images, weight_files

# name -> (module, factory, keyword arguments)
_REGISTRY = {
    "cpu": ("lenet5_pynq.backends.cpu", "GoldenBackend", {}),
    "cpu-numpy": ("lenet5_pynq.backends.cpu", "GoldenBackend", {"engine": "numpy"}),  # cpu's reference, as a peer
    "cpu-float": ("lenet5_pynq.backends.cpu", "FloatBackend", {}),
    "csim": ("lenet5_pynq.backends.csim", "CsimBackend", {}),
    "gpu": ("lenet5_pynq.backends.gpu", "GpuBackend", {}),
    "gpu-float": ("lenet5_pynq.backends.gpu", "GpuFloatBackend", {}),
    "gpu-fp16": ("lenet5_pynq.backends.gpu", "GpuHalfBackend", {}),
    "torch": ("lenet5_pynq.backends.torch_ref", "TorchBackend", {}),
    "torch-fp16": ("lenet5_pynq.backends.torch_ref", "TorchBackend", {"dtype": "float16", "channels_last": True}),
    "torch-compile": (
        "lenet5_pynq.backends.torch_ref",
        "TorchBackend",
        {"dtype": "float16", "channels_last": True, "compile": True},
    ),
    "onnxruntime": ("lenet5_pynq.backends.onnx_ref", "OnnxRuntimeBackend", {}),
    "keras": ("lenet5_pynq.backends.keras_ref", "KerasBackend", {}),
    "keras-direct": ("lenet5_pynq.backends.keras_ref", "KerasBackend", {"direct": True}),
    "hls4ml-csim": ("lenet5_pynq.backends.hls4ml_ref", "Hls4mlBackend", {}),
    "fpga": ("lenet5_pynq.backends.fpga", "FpgaBackend", {}),
    "sim": ("lenet5_pynq.backends.fpga", "SimBackend", {}),
}
# Best first; names not registered yet (added by later work) are skipped.
AUTO_ORDER = ("fpga", "gpu", "cpu")
# name -> (module, function): whether its engine could exist on this machine at all; `auto`
# names the ones it skipped only then (no GPU advice on a board, no board advice elsewhere).
_COULD_RUN = {
    "fpga": ("lenet5_pynq.backends.fpga", "on_board"),
    "gpu": ("lenet5_pynq.backends.gpu", "could_run_here"),
}


def names() -> list[str]:
    return ["auto", *_REGISTRY]


def register(name: str, module: str, factory: str, **kwargs) -> None:
    _REGISTRY[name] = (module, factory, kwargs)


def _could_run(name: str) -> bool:
    if name not in _COULD_RUN:
        return True
    module, function = _COULD_RUN[name]
    return bool(getattr(importlib.import_module(module), function)())


def weight_arguments(weights=None, spec=None) -> dict:
    """`load_backend`'s keyword arguments for the commands' --weights and --spec: none for the
    shipped pair; otherwise the files of `weight_files` (the spec beside the weights by
    default), read and checked now, so that a bad one is one line before any work
    (WeightsError, SpecError)."""
    if weights is None and spec is None:
        return {}
    from .. import fixedspec

    weights_path, spec_path = weight_files(weights, spec)
    fixedspec.load_quantized(weights_path, spec_path)
    return {"weights_path": weights_path, "spec_path": spec_path}


def _fit_arguments(name: str, factory, kwargs: dict) -> dict:
    """`kwargs` for `factory`: a float network takes no fixed-point spec (dropped); a backend that
    takes no weights cannot run other weights than its own (BackendUnavailable, never the
    shipped ones in their place)."""
    parameters = inspect.signature(factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return kwargs
    kwargs = dict(kwargs)
    if "spec_path" not in parameters:
        kwargs.pop("spec_path", None)
    if "weights_path" not in parameters:
        other = kwargs.pop("weights_path", None)
        if other is not None:
            raise BackendUnavailable(f"backend {name} runs only its own weights, not {other}")
    return kwargs


def load_backend(name: str = "auto", verbose: bool = True, **kwargs) -> Backend:
    """The backend called `name`; "auto" picks the best available and says which on stderr.

    `weights_path=` and `spec_path=` (see `weight_arguments`) run other weights than the shipped
    ones on any backend that takes them; a float backend ignores the spec."""
    if name == "auto":
        reasons = []
        for candidate in AUTO_ORDER:
            if candidate not in _REGISTRY:
                continue
            try:
                backend = load_backend(candidate, verbose=False, **kwargs)
            except BackendUnavailable as e:
                if _could_run(candidate):
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
    make = getattr(importlib.import_module(module), factory)
    return make(**{**defaults, **_fit_arguments(name, make, kwargs)})


def takes_argument(name: str, argument: str) -> bool:
    """Whether backend `name`'s factory takes keyword `argument` (for example `bench --threads`,
    which goes only to the backends that have a thread count), without importing more than its
    module."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(names())}")
    module, factory, _ = _REGISTRY[name]
    try:
        make = getattr(importlib.import_module(module), factory)
    except ImportError:
        return False
    return argument in inspect.signature(make).parameters


__all__ = [
    "Backend",
    "BackendUnavailable",
    "Prediction",
    "check_images",
    "load_backend",
    "names",
    "register",
    "takes_argument",
    "weight_arguments",
    "weight_files",
]
