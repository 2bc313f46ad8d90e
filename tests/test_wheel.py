"""The wheel is complete: the HLS and CUDA sources and the notebooks ship inside the package, and
from an installed wheel the C-simulation library is built into the build cache from them, never
inside the package (lenet5_pynq/source_tree.py).  .ci/run does the same in a fresh environment
with the PYNQ image's versions (.ci/wheel_check.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lenet5_pynq import source_tree

REPO = Path(__file__).resolve().parents[1]


def _can_build_wheels_here() -> bool:
    """setuptools >= 64 with a bdist_wheel command (built in from 70.1, else the wheel package)."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (64, 0) and ((major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Without build isolation where this environment can build wheels itself (no network
    # needed); else pip fetches the build requirements pyproject.toml names.
    isolation = [] if _can_build_wheels_here() else ["--use-pep517"]
    no_isolation = ["--no-build-isolation"] if not isolation else []
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *no_isolation, *isolation, "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (built,) = out.glob("lenet5_pynq-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel unpacked as pip installs it (no dependencies: this environment has them)."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def test_wheel_carries_the_sources_and_the_notebooks(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "hls_src/Makefile",
        "hls_src/lenet5.cpp",
        "hls_src/lenet5_layers.h",
        "hls_src/csim_api.h",
        "hls_src/csim_api.cpp",
        "hls_src/generated/lenet5_types.h",
        "hls_src/generated/lenet5_weights.h",
        "hls_src/tb/lenet5_tb.cpp",
        "cuda/include/lenet5_gpu.h",
        "cuda/src/api.cu",
        "cuda/src/launch.cu",
        "cuda/generated/lenet5_shapes.h",
    ):
        assert f"lenet5_pynq/_src/{path}" in names, path
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert f"lenet5_pynq/bitstreams/notebooks/{notebook.name}" in names
    assert {"lenet5_pynq/data/weights.npz", "lenet5_pynq/data/fixed_spec.json"} <= names
    assert not [n for n in names if "/build/" in n or "/results/" in n or n.endswith((".o", ".so"))]


def test_wheel_holds_exactly_the_package_s_modules(wheel):
    # No module of an earlier build left behind in build/lib (a moved module shipped twice).
    names = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("lenet5_pynq/") and n.endswith(".py")}
    here = {str(p.relative_to(REPO)) for p in (REPO / "lenet5_pynq").rglob("*.py")}
    assert names == here


def test_shipped_sources_are_the_checkout_s(wheel):
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("lenet5_pynq/_src/"):
                original = REPO / name.removeprefix("lenet5_pynq/_src/")
                assert archive.read(name) == original.read_bytes(), name


def test_from_the_wheel_sim_builds_into_the_cache_and_is_bit_exact(installed, tmp_path, mnist_dir):
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(installed), "LENET5_CACHE": str(cache), "LENET5_MNIST": str(mnist_dir)}
    package = installed / "lenet5_pynq"
    before = sorted(p for p in package.rglob("*") if "__pycache__" not in p.parts)
    proc = subprocess.run(
        [sys.executable, "-m", "lenet5_pynq.evaluate", "--backend", "sim", "--limit", "40", "--json", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["images"] == 40 and report["bit_exact_with_golden"] == 40
    assert (cache / "hls_src" / "liblenet5_csim.so").is_file()
    assert sorted(p for p in package.rglob("*") if "__pycache__" not in p.parts) == before


def test_source_tree_prefers_the_checkout():
    assert source_tree.in_checkout()
    assert source_tree.root("hls_src") == REPO / "hls_src"
    assert source_tree.build_dir("cuda") == REPO / "cuda" / "build"


def test_source_tree_without_a_checkout_uses_the_shipped_copy_and_the_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(source_tree, "CHECKOUT", tmp_path / "site-packages")
    monkeypatch.setenv("LENET5_CACHE", str(tmp_path / "cache"))
    assert not source_tree.in_checkout()
    assert source_tree.root("hls_src") == source_tree.SHIPPED / "hls_src"
    assert source_tree.build_dir("hls_src") == tmp_path / "cache" / "hls_src"
    with pytest.raises(ValueError, match="unknown source tree"):
        source_tree.root("nope")


def test_gpu_build_without_sources_names_them(monkeypatch, tmp_path):
    from lenet5_pynq.gpu import nvcc

    monkeypatch.setattr(nvcc, "GPU_DIR", tmp_path / "cuda")
    monkeypatch.setattr(nvcc, "HEADER", tmp_path / "cuda" / "include" / "lenet5_gpu.h")
    with pytest.raises(FileNotFoundError, match="the CUDA sources are missing"):
        nvcc.build(tmp_path / "out", regenerate=False)
    assert not (tmp_path / "out").exists()  # nvcc was never run on missing files
