"""The notebooks run top to bottom (on the `sim` backend off a board), as nbmake would run them,
and are committed without outputs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
TIMEOUT_S = 300  # per cell


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_is_committed_without_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name}: clear the outputs before committing"
            )


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_executes(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("pynq", reason="the notebooks need pynq (the [board] extra)")
    pytest.importorskip("matplotlib")
    from lenet5_pynq import backends

    try:
        backends.load_backend("sim", verbose=False).close()
    except backends.BackendUnavailable as e:
        pytest.skip(f"sim backend unavailable: {e}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from lenet5_pynq import mnist

    if mnist.default_dir() is not None:  # the kernel runs in notebooks/, where ../shared/mnist is not
        monkeypatch.setenv(mnist.ENV_VAR, str(mnist.default_dir()))
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(
        nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")


def test_get_notebooks_delivers_them(tmp_path):
    from lenet5_pynq import bitstreams

    bitstreams.deliver_notebooks(None, str(bitstreams.HERE), str(tmp_path), "lenet5-pynq")
    delivered = sorted(p.name for p in (tmp_path / "lenet5-pynq").glob("*.ipynb"))
    assert delivered == [p.name for p in PATHS] and len(delivered) == 2
