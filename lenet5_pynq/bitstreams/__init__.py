"""Where the LeNet-5 bitstreams live, one directory per board, `.bit` and `.hwh` side by side with
the same stem, as PYNQ expects:

    lenet5_pynq/bitstreams/pynq-z2/lenet5.bit   lenet5_pynq/bitstreams/pynq-z2/lenet5.hwh
    lenet5_pynq/bitstreams/zcu104/...           lenet5_pynq/bitstreams/kv260/...

They are built by vivado/ (`make BOARD=pynq-z2`, see vivado/README.md) and copied here; none
are committed.  This package is the target of two PYNQ entry points:

* ``pynq.overlays``: `pynq.Overlay("lenet5.bit")` searches this directory (and its
  subdirectories named like the bitstream) for overlays;
* ``pynq.notebooks``: ``pynq get-notebooks lenet5-pynq`` calls `deliver_notebooks` below, which
  copies the package's notebooks into the Jupyter home.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Where a PYNQ image names its board (the device tree's chosen node); absent off a board.
PYNQ_BOARD_FILE = Path("/proc/device-tree/chosen/pynq_board")


def notebook_dir() -> Path | None:
    """The notebooks: shipped inside the package (a wheel), or the checkout's notebooks/
    (an editable install)."""
    for candidate in (HERE / "notebooks", HERE.parents[1] / "notebooks"):
        if candidate.is_dir() and any(candidate.glob("*.ipynb")):
            return candidate
    return None


def deliver_notebooks(device, src_path, dst_path, name, folder=False, overlays_res_lookup=True):
    """Called by ``pynq get-notebooks`` (pynqutils' plug-in hook, same interface as
    `pynqutils.setup_utils.deliver_notebooks`): copy the notebooks to `dst_path`/`name`.

    The overlay itself is found by the notebooks at run time (this board's directory under
    lenet5_pynq/bitstreams), so nothing else is copied."""
    source = notebook_dir()
    if source is None:
        raise FileNotFoundError("no LeNet-5 notebooks found in the installed package or its checkout")
    target = Path(dst_path) / name
    target.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(source.glob("*.ipynb")):
        shutil.copy2(notebook, target / notebook.name)
    samples = HERE.parent / "data" / "samples"
    if samples.is_dir():
        shutil.copytree(samples, target / "samples", dirs_exist_ok=True)


def available() -> dict[str, Path]:
    """Board name -> bitstream path, for the boards whose overlay is installed."""
    out = {}
    for bit in sorted(HERE.glob("*/lenet5.bit")):
        if bit.with_suffix(".hwh").is_file():
            out[bit.parent.name] = bit
    return out
