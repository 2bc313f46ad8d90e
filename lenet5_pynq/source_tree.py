"""Where the sources that the package compiles live, and where their builds go.

Two sources trees are compiled at run time: ``hls_src/`` (the accelerator's HLS C++, built by
g++ into the `csim` library that the `csim` and `sim` backends run) and ``cuda/`` (the CUDA
library, built by nvcc).  From a source checkout (an editable install, the tests) they are the
checkout's own folders and build into their ``build/`` folders, as make and the README say.
From a wheel they are the copies shipped inside the package (``lenet5_pynq/_src/``, copied there
by setup.py's build step) and build into the user's build cache (`native.cache_dir`): nothing is
ever written inside an installed package.
"""

from __future__ import annotations

from pathlib import Path

from . import native

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parent
SHIPPED = PACKAGE_DIR / "_src"  # the wheel's copies (setup.py, BuildWithSources)
# The file that tells a tree is there.
MARKERS = {"hls_src": "Makefile", "cuda": "include/lenet5_gpu.h"}


def in_checkout() -> bool:
    """Whether the package runs from a source checkout (its pyproject.toml beside it)."""
    return (CHECKOUT / "pyproject.toml").is_file() and all(
        (CHECKOUT / tree / marker).is_file() for tree, marker in MARKERS.items()
    )


def root(tree: str) -> Path:
    """The folder of `tree` ("hls_src" or "cuda"): the checkout's, else the shipped copy.
    It may be missing (a wheel built without it); callers check `exists(tree)`."""
    _check(tree)
    return CHECKOUT / tree if in_checkout() else SHIPPED / tree


def exists(tree: str) -> bool:
    return (root(tree) / MARKERS[tree]).is_file()


def build_dir(tree: str) -> Path:
    """Where `tree` builds: its own build/ in a checkout, else `native.cache_dir()/<tree>`."""
    _check(tree)
    return CHECKOUT / tree / "build" if in_checkout() else native.cache_dir() / tree


def _check(tree: str) -> None:
    if tree not in MARKERS:
        raise ValueError(f"unknown source tree {tree!r}; known: {', '.join(MARKERS)}")
