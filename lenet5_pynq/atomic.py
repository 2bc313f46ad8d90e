"""Output files that are never half-written, checked before the work (contract layer).

* `check_writable(path)`: the file can be created or replaced here (its directory exists and
  is writable, it is not a directory); call it before a long job, so a bad path fails at once.
* `atomic_write(path)`: a context manager giving a temporary file beside `path`, renamed onto
  `path` when the block ends without an error and removed when it fails (a full disk, an
  exception, Ctrl-C), so readers see the old file or the whole new one, never a part.
* `write_bytes`, `write_text`: the one-call forms.
* `check_outside_package(path)`: commands never write inside the installed package (its
  shipped weights and spec are what every engine and the bitstream were built from).
* `file_lock(path)`: an exclusive advisory lock (fcntl) across processes, for builds that
  several processes may start at once; on systems without fcntl it only serialises threads.

All functions are thread-safe (each call works on its own temporary file).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

__all__ = [
    "PACKAGE_DIR",
    "OutputError",
    "atomic_write",
    "check_outside_package",
    "check_writable",
    "file_lock",
    "write_bytes",
    "write_text",
]

PACKAGE_DIR = Path(__file__).resolve().parent  # lenet5_pynq/


class OutputError(OSError):
    """An output file cannot be written; the message names it."""


def check_writable(path, what: str = "output") -> Path:
    """`path` as a Path, once it is known that a file can be created or replaced there.

    Raises
    ------
    OutputError
        Its directory is missing or not writable, or `path` is a directory or a read-only file.
    """
    path = Path(path)
    if str(path) == "":
        raise OutputError(f"{what}: empty file name")
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory, not a file")
    if not parent.is_dir():
        raise OutputError(f"{what} {path}: its directory does not exist ({parent})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{what} {path} exists and is not writable")
    return path


def check_outside_package(path, what: str = "output") -> Path:
    """`path` as a Path, once it is known not to lie inside the installed package.

    Raises
    ------
    OutputError
        It resolves to a file inside lenet5_pynq/ (a shipped file, or beside one)."""
    path = Path(path)
    resolved = path.resolve()
    if resolved == PACKAGE_DIR or PACKAGE_DIR in resolved.parents:
        raise OutputError(
            f"{what} {path}: refusing to write inside the installed package ({PACKAGE_DIR}); choose another path"
        )
    return path


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", mode_bits: int = 0o644, what: str = "output"):
    """Yield an open temporary file beside `path`; on success it is flushed, synced and renamed
    onto `path`, on any failure removed (and `path` left as it was).

    `mode` is "wb" or "w" (text, UTF-8); `mode_bits` the permissions of the result (mkstemp
    makes files private)."""
    path = check_writable(path, what)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot create a temporary file in {parent}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode_bits)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise OutputError(f"{what} {path}: {e.strerror or e} (nothing written)") from e
        raise


def write_bytes(path, data: bytes, what: str = "output") -> Path:
    """Write `data` to `path` atomically; returns the path written."""
    with atomic_write(path, "wb", what=what) as f:
        f.write(data)
    return Path(path)


def write_text(path, text: str, what: str = "output") -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path written."""
    with atomic_write(path, "w", what=what) as f:
        f.write(text)
    return Path(path)


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextlib.contextmanager
def file_lock(path):
    """Hold an exclusive lock on the file `path` (created if missing) across processes and
    threads of this process."""
    path = Path(path)
    with _thread_locks_guard:
        tlock = _thread_locks.setdefault(str(path.resolve()), threading.Lock())
    with tlock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
