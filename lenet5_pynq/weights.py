"""The float weight archive: an .npz of float32 arrays keyed "layer/kernel", "layer/bias" in
Keras layout, plus a JSON string under "meta".  Loaded with allow_pickle=False."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from . import network, validation
from .validation import WeightsError

DATA_DIR = Path(__file__).resolve().parent / "data"
SHIPPED = DATA_DIR / "weights.npz"


def check(params, source: str = "weights") -> dict[str, np.ndarray]:
    """The weight set as float32 arrays, checked by `validation.check_params` (a mapping with
    every tensor, real numbers of the right shapes, finite and representable); WeightsError,
    naming the tensor, otherwise.  Every `params=` of the package goes through here."""
    return validation.check_params(params, source)


def load(path: str | os.PathLike | None = None) -> tuple[dict[str, np.ndarray], dict]:
    path = Path(path) if path is not None else SHIPPED
    if path.is_dir():
        raise WeightsError(f"{path}: is a directory, not a weight archive")
    try:
        if os.path.getsize(path) == 0:  # numpy < 1.22 reports an empty file as pickled data
            raise EOFError
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with archive:
            params = {k: archive[k] for k in network.parameter_names() if k in archive}
            meta = json.loads(str(archive["meta"])) if "meta" in archive else {}
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weight archive") from None
    except EOFError:
        raise WeightsError(f"{path}: empty file, not a weight archive") from None
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise WeightsError(f"{path}: not a readable weight archive ({e})") from None
    if not isinstance(meta, dict):
        meta = {"meta": meta}
    return check(params, str(path)), meta


def save(path: str | os.PathLike, params: dict[str, np.ndarray], meta: dict | None = None) -> None:
    """Write atomically, so a failed run leaves no half-written archive."""
    arrays = check(params)
    path = Path(path)
    arrays["meta"] = np.array(json.dumps(meta or {}, sort_keys=True))
    from .atomic import atomic_write

    with atomic_write(path, "wb", what="weights") as f:  # a temporary file renamed, removed on failure
        np.savez(f, **arrays)
