"""The CUDA library's binding: where its sources and its build are, the C API's declarations
(read from the CDEF section of cuda/include/lenet5_gpu.h, the header the C compiler reads too),
and the loaded library with its status codes.

The library is found at $LENET5_GPU_LIB, else cuda/build/liblenet5_gpu.so of a checkout (from a
wheel: the build cache, `source_tree`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .. import sharedlib, source_tree

GPU_DIR = source_tree.root("cuda")  # the checkout's cuda/, or the wheel's copy
HEADER = GPU_DIR / "include" / "lenet5_gpu.h"
LIB_NAME = "liblenet5_gpu.so"
ENV_LIB = "LENET5_GPU_LIB"


class GpuLibraryMissing(RuntimeError):
    """The shared library is not built (or cannot be loaded)."""


class GpuError(RuntimeError):
    """A library call returned a non-zero status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _tokens(text: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.findall(r"[A-Za-z_]\w*|\d+|\S", text)


def header_cdef(path: Path = HEADER) -> str:
    """The C API's declarations: the header's CDEF section (`sharedlib.header_cdef`)."""
    return sharedlib.header_cdef(path)


def header_enum(prefix: str, path: Path = HEADER) -> dict[str, int]:
    """The C API's enum constants ``LENET5_<prefix>_<NAME> = <value>``, as {"name": value} with
    the name in lower case and "-" for "_" (``LENET5_VARIANT_WARP_SMALL`` is "warp-small"), read
    from the header so that the Python side never types them again."""
    text = re.sub(r"/\*.*?\*/", " ", header_cdef(path), flags=re.S)
    found = re.findall(rf"\bLENET5_{prefix}_(\w+)\s*=\s*(\d+)", text)
    if not found:
        raise ValueError(f"{path}: no LENET5_{prefix}_* constants")
    return {name.lower().replace("_", "-"): int(value) for name, value in found}


def declared_functions(cdef: str) -> list[str]:
    """Names of the C API's functions that a cdef declares."""
    return [name for name in sharedlib.declared_functions(cdef) if name.startswith("lenet5_gpu_")]


def check_header(path: Path = HEADER, library: Path | None = None) -> list[str]:
    """Problems with the header as CFFI's declarations (empty when there are none): the CDEF
    section must be plain C that cffi parses, and every function it declares must be exported by
    the built library (`library`, default: the one `library_path()` names, when it exists)."""
    try:
        body = header_cdef(path)
    except (OSError, ValueError) as e:
        return [str(e)]
    problems = []
    try:
        import cffi

        cffi.FFI().cdef(body)
    except Exception as e:
        problems.append(f"cffi cannot parse {path.name}: {type(e).__name__}: {e}")
    library = library if library is not None else library_path()
    if library.is_file():
        import ctypes

        exported = ctypes.CDLL(str(library))
        missing = [name for name in declared_functions(body) if not hasattr(exported, name)]
        if missing:
            problems.append(f"{path.name} declares {', '.join(missing)}, which {library.name} does not export")
    return problems


def build_dir() -> Path:
    """Where the library is built by default: cuda/build in a checkout, else the build cache."""
    return source_tree.build_dir("cuda")


_LIB = None


def library_path() -> Path:
    env = os.environ.get(ENV_LIB)
    return Path(env) if env else build_dir() / LIB_NAME


def load_library():
    """(ffi, lib), loaded once; GpuLibraryMissing says how to build it."""
    global _LIB
    if _LIB is None:
        path = library_path()
        if not path.is_file():
            raise GpuLibraryMissing(
                f"CUDA library {path} is not built: run `python -m lenet5_pynq.gpu build` (needs nvcc) "
                f"or set ${ENV_LIB}"
            )
        import cffi

        ffi = cffi.FFI()
        try:
            cdef = header_cdef()
            ffi.cdef(cdef)
        except (OSError, ValueError) as e:
            raise GpuLibraryMissing(f"the C API's declarations are unreadable: {e}") from None
        try:
            lib = sharedlib.open_library(path, ffi, declared_functions(cdef), what="CUDA library")
        except sharedlib.LibraryError as e:
            raise GpuLibraryMissing(f"{e}: rebuild it with `python -m lenet5_pynq.gpu build`") from None
        _LIB = (ffi, lib)
    return _LIB


def _check(lib, ffi, status: int, what: str) -> None:
    if status != 0:
        detail = ffi.string(lib.lenet5_gpu_last_error()).decode(errors="replace")
        kind = ffi.string(lib.lenet5_gpu_status_string(status)).decode()
        raise GpuError(status, f"{what}: {kind}: {detail}")


def device_count() -> int:
    """CUDA devices the library sees; raises GpuError (status NO_DRIVER / NO_DEVICE) when none."""
    ffi, lib = load_library()
    count = ffi.new("int *")
    _check(lib, ffi, lib.lenet5_gpu_device_count(count), "device count")
    return count[0]
