"""The CUDA library's command line.

    python -m lenet5_pynq.gpu header [--check]   # write (or check) cuda/generated/lenet5_shapes.h
    python -m lenet5_pynq.gpu build [--arch sm_90 ...] [--out DIR]   # nvcc; default: sm_75..sm_90 + PTX
    python -m lenet5_pynq.gpu check-header        # the cdef below matches cuda/include/lenet5_gpu.h
    python -m lenet5_pynq.gpu info                # the library, the driver and the card

The library is found at $LENET5_GPU_LIB, else cuda/build/liblenet5_gpu.so of this checkout.
Network sizes reach the CUDA code only through the generated header, written from
`network.layer_shapes()`; tests/test_gpu.py fails when it is stale.
"""

from __future__ import annotations

import argparse
import sys

from .. import cli_types, source_tree
from .library import HEADER, GpuError, GpuLibraryMissing, check_header, device_count, library_path
from .nvcc import ARCHS, SHAPES_HEADER, build, write_shapes_header


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lenet5_pynq.gpu", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("header", help="write cuda/generated/lenet5_shapes.h from network.py")
    h.add_argument("--check", action="store_true", help="only check that it is up to date")
    b = sub.add_parser("build", help="compile cuda/ with nvcc")
    b.add_argument(
        "--arch",
        action="append",
        type=cli_types.matching(r"(sm|compute)_\d{2,3}[a-z]?", "an sm_XY architecture"),
        help=f"sm_XY (repeatable); default {' '.join(ARCHS)}",
    )
    b.add_argument(
        "--out", type=cli_types.directory, default=None, help="default: cuda/build, or the build cache from a wheel"
    )
    sub.add_parser("check-header", help="check that the CFFI declarations match the C header")
    sub.add_parser("info", help="library, driver and card")
    args = ap.parse_args(argv)
    if args.cmd == "header":
        if args.check:
            ok = write_shapes_header(check=True)
            print(f"{SHAPES_HEADER}: {'up to date' if ok else 'STALE: run python -m lenet5_pynq.gpu header'}")
            return 0 if ok else 1
        if not source_tree.in_checkout():
            print(
                f"error: {SHAPES_HEADER} belongs to the installed package; regenerate it in a source checkout",
                file=sys.stderr,
            )
            return 2
        write_shapes_header()
        print(SHAPES_HEADER)
        return 0
    if args.cmd == "build":
        try:
            print(build(args.out, tuple(args.arch) if args.arch else ARCHS))
        except (OSError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.cmd == "check-header":
        problems = check_header()
        if not write_shapes_header(check=True):
            problems.append(f"{SHAPES_HEADER} is stale: run python -m lenet5_pynq.gpu header")
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        if not problems:
            library = library_path()
            exports = (
                "the library exports them"
                if library.is_file()
                else f"the library's exports not checked ({library} is not built)"
            )
            print(f"{HEADER.name}: CFFI reads its declarations, {exports}; {SHAPES_HEADER.name} up to date")
        return 1 if problems else 0
    if args.cmd == "info":
        try:
            print(f"library: {library_path()}")
            print(f"devices: {device_count()}")
        except (GpuLibraryMissing, GpuError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
