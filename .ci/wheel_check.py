"""CI: the installed wheel works outside the checkout.  Run from a directory outside it, with
the wheel (and its dependencies) installed in a fresh virtual environment:

    python wheel_check.py            # exit 0 when every check passed

Checks: `evaluate --backend sim --limit 200` is bit-exact with the golden model (the csim library
built from the wheel's own hls_src/ copy into the build cache); both notebooks, delivered as
`pynq get-notebooks` delivers them, run top to bottom on the simulated board; and nothing was
written inside the installed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LIMIT = 200
CELL_TIMEOUT_S = 300


def files_under(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    import lenet5_pynq
    from lenet5_pynq import bitstreams, source_tree

    package = Path(lenet5_pynq.__file__).resolve().parent
    if source_tree.in_checkout():
        print(f"error: {package} is a source checkout, not an installed wheel", file=sys.stderr)
        return 1
    before = files_under(package)

    run = subprocess.run(
        [sys.executable, "-m", "lenet5_pynq.evaluate", "--backend", "sim", "--limit", str(LIMIT), "--json", "--quiet"],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        print(f"error: evaluate --backend sim failed:\n{run.stderr}", file=sys.stderr)
        return 1
    report = json.loads(run.stdout)
    print(f"evaluate --backend sim --limit {LIMIT}: {report}")
    if report.get("images") != LIMIT or report.get("bit_exact_with_golden") != LIMIT:
        print("error: the simulated board is not bit-exact with the golden model", file=sys.stderr)
        return 1

    import nbclient
    import nbformat

    os.environ.setdefault("MPLBACKEND", "Agg")
    with tempfile.TemporaryDirectory() as home:
        bitstreams.deliver_notebooks(None, str(bitstreams.HERE), home, "lenet5-pynq")
        delivered = sorted((Path(home) / "lenet5-pynq").glob("*.ipynb"))
        if len(delivered) != 2:
            print(f"error: expected 2 notebooks in the wheel, found {[p.name for p in delivered]}", file=sys.stderr)
            return 1
        for path in delivered:
            notebook = nbformat.read(path, as_version=4)
            nbclient.NotebookClient(
                notebook,
                timeout=CELL_TIMEOUT_S,
                kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
            ).execute()
            print(f"{path.name}: ran top to bottom")

    after = files_under(package)
    if after != before:
        changed = sorted(set(after.items()) ^ set(before.items()))
        print(f"error: files changed inside the installed package: {changed[:10]}", file=sys.stderr)
        return 1
    print(f"nothing written inside {package}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
