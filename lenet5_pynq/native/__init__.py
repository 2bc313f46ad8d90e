"""Small C kernels compiled on first use with the system C compiler and loaded with CFFI (ABI
mode, so no Python headers or setuptools are needed at run time; a board's gcc is enough).

Layer sizes reach the C code as -D macros generated from lenet5_pynq.network, so the C sources
never type a size.  The flags that choose instructions depend on the target (`target_flags`):
no fused multiply-add except in the sources of `FUSED_SOURCES` (the float kernel and its peak
loop, whose results are stated as an agreement, not as bits), NEON on 32-bit ARM where the
processor has it; float_net.c says what each target's code is.  Builds are cached by a hash of sources, flags and sizes in
$LENET5_CACHE (default ~/.cache/lenet5_pynq; it must be an absolute, writable directory, else a
per-user directory under the system's temporary directory is used and stderr says so once).

A build is compiled to a temporary name and renamed into place under a lock file, so a killed
build leaves no half-written library and concurrent first uses build once.  A cached library
that is damaged (checked before `dlopen`, which would die of SIGBUS on a truncated file), fails
to load or lacks its symbols is rebuilt once, then reported as a `BuildError`.
`build` and `load` are thread-safe.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .. import network, sharedlib
from ..atomic import file_lock

HERE = Path(__file__).resolve().parent


class BuildError(RuntimeError):
    """No C compiler, or the kernel did not compile; the message carries the compiler's words."""


ENV_CACHE = "LENET5_CACHE"
_warned: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"lenet5_pynq: {message}", file=sys.stderr)


def _cache_problem(path: Path) -> str | None:
    if not path.is_absolute():
        return "is not an absolute path"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot be created ({e.strerror or e})"
    if not os.access(path, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def default_cache_dir() -> Path:
    try:
        return Path.home() / ".cache" / "lenet5_pynq"
    except (RuntimeError, KeyError):  # no home directory
        return fallback_cache_dir()


def fallback_cache_dir() -> Path:
    """A per-user cache under the system's temporary directory (mode 0700, owned by this user)."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"lenet5_pynq-cache-{uid}"


def cache_dir() -> Path:
    """The build cache: $LENET5_CACHE (an empty value means unset), else ~/.cache/lenet5_pynq;
    one that is relative, cannot be created or is not writable is replaced by
    `fallback_cache_dir()` (said once on stderr).

    Raises
    ------
    BuildError
        Not even the fallback is usable."""
    raw = os.environ.get(ENV_CACHE, "")
    chosen = Path(raw) if raw else default_cache_dir()
    problem = _cache_problem(chosen)
    if problem is None:
        return chosen
    fallback = fallback_cache_dir()
    try:
        fallback.mkdir(mode=0o700, exist_ok=True)
        st = fallback.lstat()
        if fallback.is_symlink() or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            raise BuildError(f"build cache {fallback} is not a directory owned by this user")
    except OSError as e:
        raise BuildError(
            f"build cache {chosen} {problem}, and {fallback} cannot be created ({e.strerror or e})"
        ) from None
    if _cache_problem(fallback) is not None:
        raise BuildError(f"build cache {chosen} {problem}, and {fallback} is not writable")
    where = f"${ENV_CACHE}={raw}" if raw else str(chosen)
    _say_once(f"build cache {where} {problem}; using {fallback}")
    return fallback


def network_defines() -> dict[str, str]:
    """The sizes of the C kernels, from the one network description: the layers' parameters and
    the geometry network.layer_shapes() derives (conv and pool outputs, fc1's fan-in)."""
    shapes = network.layer_shapes()
    kinds = [type(s.layer).__name__ for s in shapes]
    if kinds != ["Conv", "Conv", "Dense", "Dense", "Dense"]:
        raise BuildError(f"the C kernel implements conv, conv, dense, dense, dense; the network is {kinds}")
    conv1, conv2, fc1, fc2, fc3 = (s.layer for s in shapes)
    widest_conv = max(s.conv_shape[1] for s in shapes[:2])
    (conv1_oh, conv1_ow, _), (pool1_h, pool1_w, _) = shapes[0].conv_shape, shapes[0].out_shape
    (conv2_oh, conv2_ow, _), (pool2_h, pool2_w, _) = shapes[1].conv_shape, shapes[1].out_shape
    return {
        "IN_H": str(network.INPUT_HEIGHT),
        "IN_W": str(network.INPUT_WIDTH),
        "INPUT_SCALE": f"{2.0 ** -network.PIXEL_FRAC_BITS!r}f",
        "CONV1_F": str(conv1.filters), "CONV1_K": str(conv1.kernel), "CONV1_P": str(conv1.pool),
        "CONV2_F": str(conv2.filters), "CONV2_K": str(conv2.kernel), "CONV2_P": str(conv2.pool),
        "FC1_N": str(fc1.units), "FC2_N": str(fc2.units), "FC3_N": str(fc3.units),
        "CONV1_OH": str(conv1_oh), "CONV1_OW": str(conv1_ow), "POOL1_H": str(pool1_h), "POOL1_W": str(pool1_w),
        "CONV2_OH": str(conv2_oh), "CONV2_OW": str(conv2_ow), "POOL2_H": str(pool2_h), "POOL2_W": str(pool2_w),
        "FLAT": str(shapes[2].fan_in),
        "MAX_POOL": str(max(conv1.pool, conv2.pool)),
        "MAX_ROW": str(widest_conv),
        "MAX_ROW_DENSE": str(max(fc1.units, fc2.units, fc3.units)),
    }  # fmt: skip


def _compiler() -> str:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    raise BuildError("no C compiler found (set $CC or install gcc)")


def target_arch() -> str:
    """What the kernel is compiled for: "x86_64", "aarch64", "armv7" (any 32-bit ARM) or
    `platform.machine()`.  A 32-bit Python on a 64-bit ARM kernel (an armhf user space, whose gcc
    targets 32-bit ARM) is "armv7"."""
    import platform

    machine = platform.machine().lower()
    if machine.startswith(("arm", "aarch64")):
        return "aarch64" if sys.maxsize > 2**32 else "armv7"
    return {"amd64": "x86_64"}.get(machine, machine)


def cpu_has_neon() -> bool:
    """Whether /proc/cpuinfo lists NEON: "neon" from a 32-bit ARM kernel, "asimd" from a 64-bit one."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("Features") and {"neon", "asimd"} & set(line.split()) for line in f)
    except OSError:
        return False


# Sources whose multiplies may be fused with their adds (-ffp-contract=fast): the cpu-float
# kernel, whose agreement with a float64 reference is stated instead of bit identity, and the
# FMA loop that measures the peak it is compared with.  Every other source (the exact kernels)
# is compiled with -ffp-contract=off.
FUSED_SOURCES = frozenset({"float_net.c", "fma_peak.c"})


def target_flags(
    arch: str | None = None, neon: bool | None = None, clang: bool = False, fused: bool = False
) -> list[str]:
    """The flags, besides -O3 and -march=native, that choose the kernel's instructions for `arch`
    (default `target_arch()`), whose processor has NEON or not (default `cpu_has_neon()`), built
    by gcc or by clang, with multiplies fused into their adds (`fused`) or not.

    - every target: -ffp-contract=off, so that no multiply is fused with its add, as x86's FMA,
      AArch64's fmla and clang's default would (GCC's -std=c99 already means it); with `fused`,
      -ffp-contract=fast, so that they are wherever the processor has FMA;
    - 32-bit ARM with NEON: -mfpu=neon, since an armhf gcc's default FPU (vfpv3-d16, or the +fp
      of armv7-a) has none and -march=native does not always add it.  float_net.c then uses NEON
      intrinsics, never -funsafe-math-optimizations;
    - 32-bit ARM with clang: -mfpu=vfpv3-d16, since clang compiles float vectors to NEON, whose
      flushing of subnormals float_net.c could not then avoid.

    AArch64 always has NEON, and GCC vectorises for it at -O3."""
    arch = target_arch() if arch is None else arch
    flags = ["-ffp-contract=fast" if fused else "-ffp-contract=off"]
    if arch == "armv7" and clang:
        flags.append("-mfpu=vfpv3-d16")
    elif arch == "armv7" and (cpu_has_neon() if neon is None else neon):
        flags.append("-mfpu=neon")
    return flags


@functools.cache
def _is_clang(cc: str) -> bool:
    try:
        return "clang" in subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False


def candidate_flags(cc: str, source: str | None = None) -> list[list[str]]:
    """The flag sets `build` tries with compiler `cc` for `source` (a file name in this
    directory; fused multiply-adds if it is one of `FUSED_SOURCES`), best first: a compiler
    without -march=native still gets a working library.  -pthread for the kernels' worker pool
    (work_pool.h); no OpenMP, whose closing barrier stalls a call on a busy machine."""
    arch = target_arch()
    target = target_flags(arch, clang=arch == "armv7" and _is_clang(cc), fused=source in FUSED_SOURCES)
    return [[*target, *extra, "-pthread"] for extra in (["-march=native"], [])]


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


def build(source: str, defines: dict[str, str], force: bool = False) -> Path:
    """Compile HERE/source into a cached shared library and return its path.

    A cached library that `sharedlib.check_elf` finds damaged, or any with `force`, is built
    again.  Compiled under a temporary name, renamed into place, under a lock file."""
    cc = _compiler()
    src = HERE / source
    key = hashlib.sha256()
    # every header here, not only the source's own: the kernels share work_pool.h
    headers = b"".join(h.name.encode() + b"\0" + h.read_bytes() for h in sorted(HERE.glob("*.h")))
    parts = (
        src.read_bytes(),
        headers,
        repr(sorted(defines.items())),
        cc,
        _cpu_signature(),
        repr(candidate_flags(cc, source)),
    )
    for part in (p if isinstance(p, bytes) else p.encode() for p in parts):
        key.update(part)
    out = cache_dir() / f"{src.stem}-{key.hexdigest()[:16]}.so"
    if not force and sharedlib.check_elf(out) is None:
        return out
    try:
        with file_lock(out.parent / f".{out.name}.lock"):
            if not force and sharedlib.check_elf(out) is None:
                return out  # another process built it while this one waited
            return _compile(cc, src, defines, out)
    except OSError as e:
        raise BuildError(f"cannot build {out}: {e.strerror or e}") from None


def _compile(cc: str, src: Path, defines: dict[str, str], out: Path) -> Path:
    flags = [f"-D{k}={v}" for k, v in defines.items()]
    errors = []
    for extra in candidate_flags(cc, src.name):
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".so.tmp")
        os.close(fd)
        try:
            cmd = [cc, "-O3", "-std=c99", "-shared", "-fPIC", *extra, *flags, str(src), "-o", tmp]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode == 0 and sharedlib.check_elf(tmp) is None:
                os.chmod(tmp, 0o755)
                os.replace(tmp, out)
                return out
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        lines = result.stderr.strip().splitlines()
        errors.append(next((line for line in lines if "error" in line), lines[-1] if lines else "?"))
    raise BuildError(f"{cc} could not compile {src.name}: {errors[-1]}")


_LOADED: dict[Path, tuple] = {}
_LOAD_LOCK = threading.Lock()


def load(source: str, defines: dict[str, str]):
    """(ffi, lib) for a kernel whose header holds its cdef.

    A library stays loaded for the life of the process: closing one would unmap the code under
    its worker pool's idle threads (work_pool.h), which would then crash the process.

    Raises
    ------
    BuildError
        No compiler, no usable cache, or a library that is damaged or lacks its symbols even
        after one rebuild."""
    import cffi

    with _LOAD_LOCK:
        path = build(source, defines)
        if path not in _LOADED:
            cdef = sharedlib.header_cdef(HERE / source.replace(".c", ".h"))
            ffi = cffi.FFI()
            ffi.cdef(cdef)
            try:
                lib = sharedlib.open_library(
                    path,
                    ffi,
                    sharedlib.declared_functions(cdef),
                    rebuild=lambda: build(source, defines, force=True),
                    what=f"{source} kernel",
                )
            except sharedlib.LibraryError as e:
                raise BuildError(str(e)) from None
            _LOADED[path] = (ffi, lib)
        return _LOADED[path]


def fma_peak(seconds: float = 0.5, runs: int = 5) -> dict:
    """One core's fp32 multiply-add throughput, measured: fma_peak.c (compiled as float_net.c
    is, with the same vectors and fused multiply-adds) timed in `runs` runs of about
    `seconds / runs` each on the calling thread; the best run, the one least disturbed by
    other work on the machine.  {"gflops", "lanes", "chains", "runs", "measures"}.

    Raises
    ------
    BuildError
        No compiler, or the loop did not compile."""
    import time

    if seconds <= 0 or runs < 1:
        raise ValueError(f"fma_peak needs seconds > 0 and runs >= 1, not {seconds!r} and {runs!r}")
    _, lib = load("fma_peak.c", {})
    lanes, chains = lib.lenet5_fma_peak_lanes(), lib.lenet5_fma_peak_chains()
    rounds = 10_000
    while True:  # calibrate: rounds that take about one run's share of `seconds`
        start = time.perf_counter()
        lib.lenet5_fma_peak_run(rounds)
        took = time.perf_counter() - start
        if took >= 0.01:
            break
        rounds *= 4
    rounds = max(1, int(rounds * seconds / runs / took))
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        lib.lenet5_fma_peak_run(rounds)
        best = min(best, time.perf_counter() - start)
    return {
        "gflops": rounds * chains * lanes * 2 / best / 1e9,
        "lanes": lanes,
        "chains": chains,
        "runs": runs,
        "measures": (
            f"one core's fp32 multiply-add throughput at the clock it ran at: {chains} independent "
            f"chains of {lanes}-float vectors, compiled as float_net.c is, best of {runs} runs"
        ),
    }
