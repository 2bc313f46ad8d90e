"""The C-simulation library: the HLS accelerator's own C++ (hls_src/) compiled by g++ into a shared
library and run through its AXI4-Stream contract, so Python exercises exactly the code Vitis HLS
synthesizes.  Two engines run it: the `csim` backend and the simulated board's datapath.

The library is hls_src/build/liblenet5_csim.so, built by `make -C hls_src lib` (run here on first
use; make rebuilds it only when a source changed); from a wheel, the shipped hls_src/ builds into
the user's build cache instead (`source_tree`).  $LENET5_CSIM_LIB names a prebuilt one instead.
The build runs under a lock file (.liblenet5_csim.lock beside the library), so concurrent first uses
build once; make links to a temporary name and renames it.  A library that is damaged (checked
before `dlopen`), fails to load or lacks its symbols is rebuilt once, then reported as
`BackendUnavailable`.  `build` and `library` are thread-safe.
Its weight memories are process-wide, like the accelerator's on a board: `load_weights` rewrites
them through the mode-1 stream, and every user of the top (this backend, the simulated board's
datapath) runs it inside `session`, which loads the user's own weight set first if someone else
changed the memories.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from . import hls_stream, native, sharedlib, source_tree
from .atomic import file_lock
from .backends.base import BackendUnavailable

HLS_SRC = source_tree.root("hls_src")
LIBRARY_NAME = "liblenet5_csim.so"
LIBRARY: Path | None = None  # where the build goes: None for source_tree's choice, looked up on use
ENV_LIB = "LENET5_CSIM_LIB"
CHUNK = 4096  # images per call of the top: bounds the stream buffers

# The library's weight memories are process-wide: whoever runs the top holds `_lock` (through
# `session`, or this backend's own methods) and has its weight set loaded first.
_lock = threading.Lock()
_lib = None  # (ffi, lib) once loaded
_lib_lock = threading.Lock()
_loaded_key: object = "power-on"  # the weight set now in the library's memories (`run_stream` keeps it)


class CsimError(RuntimeError):
    """The simulated accelerator broke the stream contract."""


def build(verbose: bool = False, force: bool = False) -> Path:
    """Build (or bring up to date) the library with make; returns its path.  A library that
    `sharedlib.check_elf` finds damaged (make would take it as current), or any with `force`,
    is removed and built again."""
    if not (HLS_SRC / "Makefile").is_file():
        raise BackendUnavailable(f"no HLS sources at {HLS_SRC} (neither a source checkout nor a complete wheel)")
    if shutil.which("make") is None or shutil.which(os.environ.get("CXX", "g++")) is None:
        raise BackendUnavailable("the csim backend needs make and g++")
    try:
        target = library_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(target.parent / f".{target.stem}.lock"):
            if target.exists() and (force or sharedlib.check_elf(target) is not None):
                target.unlink()
            return _make(target, verbose)
    except (OSError, native.BuildError) as e:
        raise BackendUnavailable(
            f"cannot build the C-simulation library: {getattr(e, 'strerror', None) or e}"
        ) from None


def library_path() -> Path:
    """Where the library is built: `LIBRARY` when set, else in `source_tree.build_dir`."""
    return LIBRARY if LIBRARY is not None else source_tree.build_dir("hls_src") / LIBRARY_NAME


def _make(target: Path, verbose: bool) -> Path:
    cmd = ["make", "-C", str(HLS_SRC), "lib", f"BUILD={target.parent}", f"PYTHON={sys.executable}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BackendUnavailable(f"building {target.name} failed ({' '.join(cmd)}):\n{tail}")
    if verbose:
        print(proc.stdout, file=sys.stderr)
    return target


def library():
    """(ffi, lib) of the C-simulation library, built on first use (thread-safe)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            try:
                import cffi
            except ImportError:  # pragma: no cover - cffi is a dependency
                raise BackendUnavailable("the csim backend needs cffi") from None
            if os.environ.get(ENV_LIB):  # prebuilt: checked, never rebuilt
                path, rebuild = Path(os.environ[ENV_LIB]), None
            else:
                path, rebuild = build(), lambda: build(force=True)
            cdef = sharedlib.header_cdef(HLS_SRC / "csim_api.h")
            ffi = cffi.FFI()
            ffi.cdef(cdef)
            try:
                lib = sharedlib.open_library(
                    path, ffi, sharedlib.declared_functions(cdef), rebuild, what="C-simulation library"
                )
            except sharedlib.LibraryError as e:
                raise BackendUnavailable(str(e)) from None
            _lib = (ffi, lib)
        return _lib


def vlnv() -> str:
    """The VLNV of the IP the library was built from (building and loading it if needed)."""
    ffi, lib = library()
    return ffi.string(lib.lenet5_csim_vlnv()).decode()


@contextlib.contextmanager
def session(weights: np.ndarray):
    """Hold the library, with the weight set of the mode-1 stream `weights` in its memories.

    The memories are process-wide: inside the session no one else runs the top, and the set is
    loaded first if another user (a `CsimBackend`, a simulated board) changed them.

    Yields
    ------
    callable
        `run_stream`, one call of the top.  A mode-1 run the accelerator acknowledges leaves
        its set in the memories, and later sessions of other users reload their own.
    """
    with _lock:
        library()
        _ensure_weights(weights)
        yield run_stream


def run_stream(mode: int, n: int, beats: np.ndarray, out_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """One call of the top: input beats in, (output beats, their TLAST flags) out.  Call it
    inside a `session` (it holds the process-wide library)."""
    global _loaded_key
    ffi, lib = library()
    beats = np.ascontiguousarray(beats, dtype=np.uint64)
    out = np.zeros(max(out_beats, 1), np.uint64)
    last = np.zeros(len(out), np.uint8)
    n_out = ffi.new("size_t *")
    in_left = ffi.new("size_t *")
    status = lib.lenet5_csim_run(
        mode,
        n,
        ffi.cast("const uint64_t *", ffi.from_buffer(beats)),
        len(beats),
        ffi.cast("uint64_t *", ffi.from_buffer(out)),
        ffi.cast("uint8_t *", ffi.from_buffer(last)),
        len(out),
        n_out,
        in_left,
    )
    if status != 0:
        msg = ffi.string(lib.lenet5_csim_status_message(status)).decode()
        raise CsimError(f"lenet5(mode={mode}, n={n}): {msg} ({n_out[0]} beats out, {in_left[0]} input beats unread)")
    if (
        mode == hls_stream.MODE_LOAD_WEIGHTS
        and n_out[0]
        and hls_stream.parse_ack(out[0])["status"] == hls_stream.ACK_OK
    ):
        _loaded_key = beats.tobytes()  # the top wrote this set into the memories
    return out[: n_out[0]], last[: n_out[0]]


def classify_beats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes and raw logits of uint8 images through the simulated top, checking the beat count
    and that TLAST is set on the final beat only."""
    n = len(images)
    expected = n * hls_stream.OUT_BEATS_PER_IMAGE
    out, last = run_stream(hls_stream.MODE_CLASSIFY, n, hls_stream.pack_images(images), expected)
    if len(out) != expected:
        raise CsimError(f"{len(out)} output beats for {n} images, expected {expected}")
    if n and (not last[-1] or last.sum() != 1):
        raise CsimError(f"TLAST on {int(last.sum())} beats, expected on the final beat only")
    return hls_stream.unpack_results(out)


def load_weights(beats: np.ndarray) -> np.void:
    """`load_stream` under the library's lock: what a user of the top outside `session` calls."""
    with _lock:
        return load_stream(beats)


def load_stream(beats: np.ndarray) -> np.void:
    """Send a mode-1 stream; returns the parsed ack, raising if the accelerator rejected it."""
    out, last = run_stream(hls_stream.MODE_LOAD_WEIGHTS, 0, beats, 1)
    if len(out) != 1 or not last[0]:
        raise CsimError(f"weight load answered {len(out)} beats (TLAST {last.tolist()}), expected one ack with TLAST")
    ack = hls_stream.parse_ack(out[0])
    if ack["status"] != hls_stream.ACK_OK:
        raise CsimError(f"weight load rejected: ack status {int(ack['status'])}")
    return ack


def _ensure_weights(stream: np.ndarray) -> None:
    """Make the weight set of this mode-1 `stream` the one in the memories (hold `_lock`)."""
    if _loaded_key != np.ascontiguousarray(stream, dtype=np.uint64).tobytes():
        load_stream(stream)
