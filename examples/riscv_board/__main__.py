"""`python -m examples.riscv_board [--unicorn-alone]`: boot the board and run the demo."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .machine import BoardBase, GuestFailed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.riscv_board",
                                     description="Run the example RISC-V board's guest program.")
    parser.add_argument("--unicorn-alone", action="store_true",
                        help="run the board on unicorn's own memory map instead of pymem's")
    args = parser.parse_args(argv)
    board: BoardBase
    if args.unicorn_alone:
        from .unicorn_alone import UnicornBoard
        board = UnicornBoard()
    else:
        from .board import PymemBoard
        board = PymemBoard()
    try:
        board.run()
    except GuestFailed as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
    finally:
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
