"""The package's layers, as the README's layout section draws them, held against the imports
that the code really makes (every `import` and `from ... import`, at any depth of the module:
a lazy import is still a dependency)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lenet5_pynq"
ROOT = "lenet5_pynq"


def picture() -> list[tuple[str, list[list[str]]]]:
    """The README's picture, top layer first: (layer name, groups of module names)."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Layout\n.*?```text\n(.*?)```", readme, re.S).group(1)
    layers = []
    for line in block.strip().splitlines():
        name, _, rest = re.match(r"(\S+(?: \S+)*?)\s{2,}(.*)", line).group(1, 0, 2)
        groups = [group.split() for group in rest.split("|")]
        layers.append((name, groups))
    return layers


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path) -> set[str]:
    """The package's modules that `name` imports (full dotted names)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    known = modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != ROOT:
                continue
            for alias in node.names:  # `from . import golden` imports the module golden ...
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)  # ... `from .x import f`, x
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == ROOT)
    return {m for m in found if m in known and m != name}


def place(name: str, layers) -> tuple[int, int]:
    """(layer index from the top, group index) of the most specific entry naming `name`."""
    best = None
    for index, (_, groups) in enumerate(layers):
        for group_index, group in enumerate(groups):
            for entry in group:
                full = ROOT if entry == ROOT else f"{ROOT}.{entry}"
                names_it = name == full or (full != ROOT and name.startswith(full + "."))
                if names_it and (best is None or len(full) > best[0]):
                    best = (len(full), index, group_index)
    if best is None:
        raise LookupError(name)
    return best[1], best[2]


def test_every_module_is_in_the_picture_once():
    layers = picture()
    entries = [entry for _, groups in layers for group in groups for entry in group]
    assert len(entries) == len(set(entries)), "a name appears twice in the picture"
    missing = []
    for name in modules():
        try:
            place(name, layers)
        except LookupError:
            missing.append(name)
    assert not missing, f"modules not in the README's layer picture: {missing}"
    for entry in entries:
        full = ROOT if entry == ROOT else f"{ROOT}.{entry}"
        assert full in modules(), f"the picture names {entry}, which is not a module of the package"


def test_imports_point_down_and_engines_stay_apart():
    layers = picture()
    engines = next(i for i, (name, _) in enumerate(layers) if name == "engines")
    commands = next(i for i, (name, _) in enumerate(layers) if name == "commands")
    wrong = []
    for name, path in modules().items():
        layer, group = place(name, layers)
        for target in sorted(imports_of(name, path)):
            target_layer, target_group = place(target, layers)
            if target_layer < layer:
                wrong.append(f"{name} ({layers[layer][0]}) imports {target} ({layers[target_layer][0]}), a layer above")
            elif target_layer == layer == engines and target_group != group:
                wrong.append(f"engine {name} imports engine {target}")
            elif target_layer == layer == commands and target.split(".")[1] != name.split(".")[1]:
                wrong.append(f"command {name} imports command {target}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("backend", ["cpu", "cpu-float", "csim", "sim"])
def test_inference_imports_no_tensorflow_or_torch(backend):
    script = (
        "import sys\n"
        "from lenet5_pynq import backends, sample_digits, preprocess\n"
        "import numpy as np\n"
        f"b = backends.load_backend({backend!r}, verbose=False)\n"
        "b.predict(np.stack([preprocess.load_image(p) for p in sample_digits.paths()]))\n"
        "b.close()\n"
        "print(sorted(m for m in ('tensorflow', 'torch', 'keras', 'hls4ml') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=REPO)
    if run.returncode and "BackendUnavailable" in run.stderr:
        pytest.skip(run.stderr.strip().splitlines()[-1])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"
