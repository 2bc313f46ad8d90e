"""The float weight archive: an .npz of float32 arrays keyed "layer/kernel", "layer/bias" in
Keras layout, plus a JSON string under "meta".  Loaded with allow_pickle=False."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import network

DATA_DIR = Path(__file__).resolve().parent / "data"
SHIPPED = DATA_DIR / "weights.npz"


class WeightsError(ValueError):
    """A weight archive is missing a tensor or has one of the wrong shape."""


def check(params: dict[str, np.ndarray], source: str = "weights") -> None:
    for shape in network.layer_shapes():
        for part, expected in (("kernel", shape.weight_shape), ("bias", shape.bias_shape)):
            key = f"{shape.layer.name}/{part}"
            if key not in params:
                raise WeightsError(f"{source}: missing {key}")
            if tuple(params[key].shape) != expected:
                raise WeightsError(f"{source}: {key} has shape {tuple(params[key].shape)}, expected {expected}")
            if not np.all(np.isfinite(params[key])):
                raise WeightsError(f"{source}: {key} holds NaN or infinity")


def load(path: str | os.PathLike | None = None) -> tuple[dict[str, np.ndarray], dict]:
    path = Path(path) if path is not None else SHIPPED
    try:
        with np.load(path, allow_pickle=False) as archive:
            params = {k: archive[k].astype(np.float32) for k in network.parameter_names() if k in archive}
            meta = json.loads(str(archive["meta"])) if "meta" in archive else {}
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable weight archive ({e})") from None
    check(params, str(path))
    return params, meta


def save(path: str | os.PathLike, params: dict[str, np.ndarray], meta: dict | None = None) -> None:
    """Write atomically, so a failed run leaves no half-written archive."""
    check(params)
    path = Path(path)
    arrays = {k: np.asarray(params[k], np.float32) for k in network.parameter_names()}
    arrays["meta"] = np.array(json.dumps(meta or {}, sort_keys=True))
    from .atomic import atomic_write

    with atomic_write(path, "wb", what="weights") as f:  # a temporary file renamed, removed on failure
        np.savez(f, **arrays)
