"""The simulated board's files.

python -m lenet5_pynq.simboard hwh --board BOARD [--out FILE]   # the board's .hwh
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import board_design
from . import hwh


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5_pynq.simboard", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("hwh", help="the .hwh of the simulated board (lenet5_pynq.simboard.hwh)")
    p.add_argument("--board", default=board_design.DEFAULT_BOARD, help=f"one of {', '.join(board_design.BOARDS)}")
    p.add_argument("--out", help="write here instead of stdout")
    args = parser.parse_args(argv)
    try:
        text = hwh.render(args.board)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
