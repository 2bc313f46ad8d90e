"""Imported first by the developer scripts in tools/, which use lenet5_pynq as installed
(`pip install -e .`, CONTRIBUTING.md): without it they stop with one line saying so."""

import importlib.util
import sys

if importlib.util.find_spec("lenet5_pynq") is None:
    sys.exit(f"{sys.argv[0]}: lenet5_pynq is not importable; run `pip install -e .` in the repository root")
