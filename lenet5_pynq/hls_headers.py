"""Where the `ap_fixed`/`ap_int`/`hls_stream` headers live: the hls4ml wheel carries Xilinx's
open-source ap_types; they are found in the installed package, never vendored.  The wheel is
pure Python, so `pip install --no-deps hls4ml==1.3.0` brings the headers to a board too (its
dependencies have no armv7l wheels and are not needed); elsewhere the `hls` extra installs it.
It is located with `find_spec`, never imported (without its dependencies it cannot be).

    python -m lenet5_pynq.hls_headers      # prints the include directory (used by the Makefiles)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


class HeadersMissing(RuntimeError):
    """The hls4ml wheel is not installed."""


def include_dir() -> Path:
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise HeadersMissing("the ap_types headers come from the hls4ml wheel: pip install --no-deps hls4ml==1.3.0")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "templates" / "vivado" / "ap_types"
        if (candidate / "ap_fixed.h").is_file():
            return candidate
    raise HeadersMissing("hls4ml is installed but carries no templates/vivado/ap_types/ap_fixed.h")


def main() -> int:
    try:
        print(include_dir())
    except HeadersMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
