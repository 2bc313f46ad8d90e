"""The one build step that needs code: the wheel carries, inside the package, what a source
checkout has beside it, so that every backend and both notebooks work from `pip install`:

* notebooks/*.ipynb -> lenet5_pynq/bitstreams/notebooks/ (`pynq get-notebooks lenet5-pynq`);
* hls_src/ and cuda/ (the files SHIPPED_SOURCES names) -> lenet5_pynq/_src/,
  which the csim library and the CUDA library are built from (into the user's build cache).

Everything else (metadata, dependencies, extras, entry points) is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


# What of hls_src/ and cuda/ the wheel carries: what the csim and CUDA libraries are built
# from (lenet5_pynq/source_tree.py finds them there).
SHIPPED_SOURCES = {
    "hls_src": ("Makefile", "*.cpp", "*.h", "*.tcl", "generated/*", "tb/*"),
    "cuda": ("include/*.h", "src/*.cu", "src/*.cuh", "src/*.h", "generated/*.h"),
}


class BuildWithSources(build_py):
    def run(self):
        package = Path(self.build_lib) / "lenet5_pynq"
        # build/lib may hold an earlier build (modules since moved or deleted): ship exactly
        # today's files.
        shutil.rmtree(package, ignore_errors=True)
        super().run()
        _copy(HERE / "notebooks", ("*.ipynb",), package / "bitstreams" / "notebooks")
        for tree, patterns in SHIPPED_SOURCES.items():
            _copy(HERE / tree, patterns, package / "_src" / tree)


def _copy(source: Path, patterns, target: Path) -> None:
    for pattern in patterns:
        for path in sorted(source.glob(pattern)):
            if path.is_file():
                destination = target / path.relative_to(source)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)


setup(cmdclass={"build_py": BuildWithSources})
