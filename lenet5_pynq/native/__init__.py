"""Small C kernels compiled on first use with the system C compiler and loaded with CFFI (ABI
mode, so no Python headers or setuptools are needed at run time; a board's gcc is enough).

Layer sizes reach the C code as -D macros generated from lenet5_pynq.network, so the C sources
never type a size.  Builds are cached by a hash of sources, flags and sizes in
$LENET5_CACHE (default ~/.cache/lenet5_pynq).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import network

HERE = Path(__file__).resolve().parent


class BuildError(RuntimeError):
    """No C compiler, or the kernel did not compile; the message carries the compiler's words."""


def cache_dir() -> Path:
    return Path(os.environ.get("LENET5_CACHE", Path.home() / ".cache" / "lenet5_pynq"))


def network_defines() -> dict[str, str]:
    """The sizes of the float kernel, from the one network description."""
    shapes = network.layer_shapes()
    kinds = [type(s.layer).__name__ for s in shapes]
    if kinds != ["Conv", "Conv", "Dense", "Dense", "Dense"]:
        raise BuildError(f"the C kernel implements conv, conv, dense, dense, dense; the network is {kinds}")
    conv1, conv2, fc1, fc2, fc3 = (s.layer for s in shapes)
    widest_conv = max(s.conv_shape[1] for s in shapes[:2])
    return {
        "IN_H": str(network.INPUT_HEIGHT),
        "IN_W": str(network.INPUT_WIDTH),
        "INPUT_SCALE": f"{2.0 ** -network.PIXEL_FRAC_BITS!r}f",
        "CONV1_F": str(conv1.filters), "CONV1_K": str(conv1.kernel), "CONV1_P": str(conv1.pool),
        "CONV2_F": str(conv2.filters), "CONV2_K": str(conv2.kernel), "CONV2_P": str(conv2.pool),
        "FC1_N": str(fc1.units), "FC2_N": str(fc2.units), "FC3_N": str(fc3.units),
        "MAX_POOL": str(max(conv1.pool, conv2.pool)),
        "MAX_ROW": str(widest_conv),
        "MAX_ROW_DENSE": str(max(fc1.units, fc2.units, fc3.units)),
    }  # fmt: skip


def _compiler() -> str:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    raise BuildError("no C compiler found (set $CC or install gcc)")


def _cpu_signature() -> str:
    """The processor the -march=native build is for: a cache shared between machines (an NFS
    home) must not hand one machine's instructions to another."""
    import platform

    signature = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    signature += line
    except OSError:
        pass
    return signature


def build(source: str, defines: dict[str, str]) -> Path:
    """Compile HERE/source into a cached shared library and return its path."""
    cc = _compiler()
    src = HERE / source
    key = hashlib.sha256()
    header = (HERE / source.replace(".c", ".h")).read_bytes()
    for part in (src.read_bytes(), header, repr(sorted(defines.items())).encode(), cc.encode(), _cpu_signature().encode()):
        key.update(part)
    out = cache_dir() / f"{src.stem}-{key.hexdigest()[:16]}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = [f"-D{k}={v}" for k, v in defines.items()]
    errors = []
    # Best first; a compiler without OpenMP or -march=native still gets a working library.
    for extra in (["-march=native", "-fopenmp"], ["-fopenmp"], ["-march=native"], []):
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so")
        os.close(fd)
        cmd = [cc, "-O3", "-std=c99", "-shared", "-fPIC", *extra, *flags, str(src), "-o", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode == 0:
            os.replace(tmp, out)
            return out
        os.unlink(tmp)
        errors.append(result.stderr.strip().splitlines()[-1:] or ["?"])
    raise BuildError(f"{cc} could not compile {src.name}: {errors[-1][0]}")


_LOADED: dict[Path, tuple] = {}


def load(source: str, defines: dict[str, str]):
    """(ffi, lib) for a kernel whose header holds its cdef.

    A library stays loaded for the life of the process: closing one that pulled in libgomp
    unloads libgomp under its idle worker threads, which then crash the process."""
    import cffi

    path = build(source, defines)
    if path not in _LOADED:
        ffi = cffi.FFI()
        ffi.cdef((HERE / source.replace(".c", ".h")).read_text())
        _LOADED[path] = (ffi, ffi.dlopen(str(path)))
    return _LOADED[path]
