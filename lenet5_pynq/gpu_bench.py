"""The GPU benchmark's command (the measurement is `gpu_timing`):

    python -m lenet5_pynq.gpu_bench --backends gpu,gpu-float,gpu-fp16,torch,torch-fp16,torch-compile \
        [--batches 1,100,10000,100000,1000000] [--repeats 7] [--where device,host,pinned,copy] [--json FILE]

The rows are described in `gpu_timing`'s docstring.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .atomic import OutputError, check_writable, write_text
from .gpu_timing import DEFAULT_BATCHES, WHERES, run, table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lenet5_pynq.gpu_bench",
        description="The CUDA library and its PyTorch peers, measured on one card.",
    )
    from . import backends, cli_types

    gpu_names = [n for n in backends.names() if n.startswith(("gpu", "torch"))]
    ap.add_argument(
        "--backends",
        default="gpu,gpu-float,gpu-fp16,torch,torch-fp16,torch-compile",
        type=cli_types.backend_list(gpu_names),
        help="comma-separated, of " + ", ".join(gpu_names),
    )
    ap.add_argument(
        "--batches",
        default=DEFAULT_BATCHES,
        type=cli_types.positive_int_list(what="batch sizes"),
        help="comma-separated (default: " + ",".join(str(b) for b in DEFAULT_BATCHES) + ")",
    )
    ap.add_argument("--repeats", type=cli_types.positive_int, default=7)
    ap.add_argument(
        "--where",
        default=WHERES,
        type=cli_types.choice_list(WHERES, "place"),
        help="comma-separated, of " + ", ".join(WHERES),
    )
    ap.add_argument("--json", help="write the rows (and the environment) to this file")
    args = ap.parse_args(argv)
    if args.json:
        try:
            check_writable(args.json, "--json")
        except OutputError as e:
            ap.error(str(e))
    names, batches, wheres = args.backends, list(args.batches), tuple(args.where)
    env = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        import torch

        env["torch"] = torch.__version__
        env["cudnn"] = torch.backends.cudnn.version()
    except ImportError:
        pass

    def save(rows):
        if args.json:
            write_text(args.json, json.dumps({"environment": env, "rows": rows}, indent=1), what="--json")

    rows = run(names, batches, args.repeats, wheres, on_backend_done=save)
    print(table(rows))
    save(rows)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
