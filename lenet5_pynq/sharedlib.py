"""Loading compiled libraries without trusting the file (contract layer, used by the native
kernels and the csim backend).

`check_elf(path)` reads the ELF header and the program and section header tables and says what
is wrong with the file (empty, not ELF, not a shared object, truncated) before `dlopen` maps
it: a truncated library is mapped past its end and the process dies of SIGBUS on first touch.
`open_library` loads with CFFI, checks the expected symbols, and on any failure rebuilds once
through the caller's `rebuild` before raising `LibraryError` with the path and the reason.

Thread safety: `check_elf` is; `open_library` must be serialised by the caller around the
`rebuild` it is given (both callers hold their build lock).
"""

from __future__ import annotations

import contextlib
import re
import struct
from pathlib import Path

__all__ = ["LibraryError", "check_elf", "declared_functions", "header_cdef", "open_library"]

ELF_MAGIC = b"\x7fELF"
ET_DYN = 3


class LibraryError(RuntimeError):
    """A compiled library is damaged, foreign or lacks its symbols, even after a rebuild."""


def header_cdef(path) -> str:
    """The C declarations that CFFI reads from a library's own header: the text between
    ``/* BEGIN CDEF */`` and ``/* END CDEF */``, plain C without preprocessor lines.  The C
    compiler reads the same header, so the two can never disagree (one convention for the
    cpu-float kernel, the C simulation and the CUDA library)."""
    path = Path(path)
    text = path.read_text()
    m = re.search(r"/\* BEGIN CDEF \*/(.*?)/\* END CDEF \*/", text, flags=re.S)
    if not m:
        raise ValueError(f"{path}: no /* BEGIN CDEF */ ... /* END CDEF */ section")
    body = m.group(1)
    if re.search(r"^\s*#", body, flags=re.M):
        raise ValueError(f"{path}: preprocessor lines inside the CDEF section")
    return body


def declared_functions(cdef: str) -> list[str]:
    """The function names a C declaration text declares (``type name(...);``), comments aside."""
    return re.findall(r"\b([A-Za-z_]\w*)\s*\([^;{]*\)\s*;", re.sub(r"/\*.*?\*/", " ", cdef, flags=re.S))


def check_elf(path) -> str | None:
    """None when `path` looks like a whole ELF shared object, else the reason it is not."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
            if size == 0:
                return "empty file (0 bytes)"
            if head[:4] != ELF_MAGIC:
                return "not an ELF file"
            cls, data = head[4], head[5]
            if cls not in (1, 2) or data not in (1, 2):
                return f"bad ELF identification (class {cls}, data {data})"
            end = "<" if data == 1 else ">"
            if cls == 2:
                if len(head) < 64:
                    return f"truncated ELF header ({size} bytes)"
                (e_type,) = struct.unpack_from(end + "H", head, 16)
                phoff, shoff = struct.unpack_from(end + "QQ", head, 32)
                phentsize, phnum, shentsize, shnum = struct.unpack_from(end + "HHHH", head, 54)
                ph_fmt, ph_off_at, ph_size_at = end + "Q", 8, 32
            else:
                if len(head) < 52:
                    return f"truncated ELF header ({size} bytes)"
                (e_type,) = struct.unpack_from(end + "H", head, 16)
                phoff, shoff = struct.unpack_from(end + "II", head, 28)
                phentsize, phnum, shentsize, shnum = struct.unpack_from(end + "HHHH", head, 42)
                ph_fmt, ph_off_at, ph_size_at = end + "I", 4, 16
            if e_type != ET_DYN:
                return f"not a shared object (ELF type {e_type})"
            need = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
            if need > size:
                return f"truncated: {size} bytes, its headers need {need}"
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for k in range(phnum):
                entry = table[k * phentsize : (k + 1) * phentsize]
                (offset,) = struct.unpack_from(ph_fmt, entry, ph_off_at)
                (filesz,) = struct.unpack_from(ph_fmt, entry, ph_size_at)
                if offset + filesz > size:
                    return f"truncated: {size} bytes, segment {k} ends at {offset + filesz}"
    except FileNotFoundError:
        return "missing"
    except (OSError, struct.error) as e:
        return f"unreadable: {e}"
    return None


def _pin(ffi, path: Path) -> None:
    """Keep the loaded library mapped for the life of the process (RTLD_NODELETE on the handle
    already open).  cffi closes a library when its lib object is collected, at the latest when
    the interpreter shuts down; a kernel's code would then be unmapped under its idle worker
    threads (native/work_pool.h, as libgomp's were), a segfault at exit (seen with cffi 1.15 on
    Python 3.10)."""
    noload, nodelete = getattr(ffi, "RTLD_NOLOAD", 0), getattr(ffi, "RTLD_NODELETE", 0)
    if not (noload and nodelete):
        return  # not POSIX with glibc-like flags: nothing to pin with
    _PINNED.append(ffi.dlopen(str(path), ffi.RTLD_NOW | noload | nodelete))


_PINNED: list = []  # the pinning handles: closing them is harmless, but keep them anyway


def open_library(path, ffi, symbols, rebuild=None, what: str = "library"):
    """`ffi.dlopen(path)` once the file is checked and its `symbols` resolve.

    On a damaged file, a failed load or a missing symbol, `rebuild()` (when given) is called
    once: it must remove or replace the file and return the path of a fresh build.  A second
    failure raises `LibraryError` naming the path and what is wrong."""
    path = Path(path)
    problems = []
    for attempt in range(2 if rebuild is not None else 1):
        if attempt:
            path = Path(rebuild())
        problem = check_elf(path)
        if problem is None:
            try:
                lib = ffi.dlopen(str(path))
            except OSError as e:
                problem = f"cannot load: {str(e).splitlines()[0] if str(e) else e}"
            else:
                missing = []
                for name in symbols:
                    try:
                        getattr(lib, name)
                    except (AttributeError, NotImplementedError):
                        missing.append(name)
                if not missing:
                    _pin(ffi, path)
                    return lib
                # Unload it (nothing of it ran), or dlopen would hand back this handle for the
                # same path after the rebuild.
                with contextlib.suppress(Exception):
                    ffi.dlclose(lib)
                problem = f"lacks the symbol{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        problems.append(problem)
    again = " (also after a rebuild)" if len(problems) > 1 else ""
    raise LibraryError(f"{what} {path}: {problems[-1]}{again}")
