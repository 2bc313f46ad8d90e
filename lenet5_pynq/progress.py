"""The package's one progress bar: tqdm on stderr, for the runs of many images (evaluate, bench,
the csim and simulated-board chunks).

A bar is drawn only when stderr is a terminal, so logs, pipes and tests see nothing; `--quiet`
(the `quiet` argument, or a `with progress.quiet():` block around the work) turns it off there too.
"""

from __future__ import annotations

import contextlib
import sys

_silenced = 0  # depth of the `quiet()` blocks now open


def _stream():
    """Where bars go: stderr as it is now (looked up per bar, so redirections are followed)."""
    return sys.stderr


@contextlib.contextmanager
def quiet(on: bool = True):
    """No bars inside the block (when `on`): what a command's --quiet wraps its work in."""
    global _silenced
    _silenced += bool(on)
    try:
        yield
    finally:
        _silenced -= bool(on)


def enabled(quiet: bool = False, file=None) -> bool:
    """Whether a bar would be drawn: not quiet, and `file` (stderr) is a terminal."""
    if quiet or _silenced:
        return False
    file = _stream() if file is None else file
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def message(text: str) -> None:
    """Print one line on stderr without breaking a bar that is being drawn there."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        print(text, file=_stream())
        return
    tqdm.write(text, file=_stream())


class _NoBar:
    """What `bar` returns where tqdm is missing: the same calls, doing nothing."""

    def __init__(self, iterable=None):
        self._iterable = iterable

    def __iter__(self):
        return iter(self._iterable or ())

    def update(self, n=1):
        pass

    def set_postfix_str(self, s="", refresh=True):
        pass

    def set_description(self, desc=None, refresh=True):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bar(
    iterable=None,
    total=None,
    desc: str | None = None,
    unit: str = "image",
    quiet: bool = False,
    leave: bool = True,
    **kwargs,
):
    """A tqdm bar on stderr, disabled unless `enabled(quiet)`.  Use it as tqdm: iterate over it,
    or `with bar(total=n) as b: ... b.update(k)`."""
    file = _stream()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return _NoBar(iterable)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=file,
        disable=not enabled(quiet, file),
        leave=leave,
        dynamic_ncols=True,
        **kwargs,
    )
