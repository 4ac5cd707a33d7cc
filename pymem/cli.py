"""The `pymem` command: `bench`, `qemu-dispatch`, and the other subcommands.

Each subcommand is a function taking parsed arguments and returning an exit
status; errors in user input print one line naming the problem and exit 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .errors import PymemError

Command = Callable[[argparse.Namespace], int]
_COMMANDS: Dict[str, Command] = {}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise PymemError(f"cannot read {path}: {exc.strerror}") from exc


def _cmd_qemu_dispatch(args: argparse.Namespace) -> int:
    from .qemu import dispatch_from_flat

    sys.stdout.write(dispatch_from_flat(_read(args.flatdump), args.page_bits))
    return 0


def _cmd_mtree(args: argparse.Namespace) -> int:
    from .qemu import format_mtree, load_mtree

    system = load_mtree(_read(args.dump), args.hints)
    sys.stdout.write(format_mtree(system, flat=args.f or args.d, dispatch=args.d,
                                  disabled=args.D))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pymem", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("qemu-dispatch",
                       help="print `info mtree -f -d` for the FlatViews of an `info mtree -f` dump")
    p.add_argument("flatdump", help="a file holding QEMU's `info mtree -f` output")
    p.add_argument("--page-bits", type=int, default=12, help="target page bits (10..16)")
    _COMMANDS["qemu-dispatch"] = _cmd_qemu_dispatch

    p = sub.add_parser("mtree",
                       help="load an `info mtree -D` dump and print it as `info mtree` would")
    p.add_argument("dump", help="a file holding QEMU's `info mtree -D` output")
    p.add_argument("--hints", help="the hints.json that goes with the dump")
    p.add_argument("-f", action="store_true", help="print the FlatViews (`info mtree -f`)")
    p.add_argument("-d", action="store_true", help="with the dispatch tables (`-f -d`)")
    p.add_argument("-D", action="store_true", help="show disabled regions in the tree")
    _COMMANDS["mtree"] = _cmd_mtree

    p = sub.add_parser("bench", help="benchmark pymem against its peers on a machine map")
    p.add_argument("--machine", default="q35", help="bundled machine name (default q35)")
    p.add_argument("--mtree", help="an `info mtree -D` dump to benchmark instead")
    p.add_argument("--hints", help="the hints.json that goes with --mtree")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    _COMMANDS["bench"] = _cmd_bench
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (PymemError, ValueError, TypeError) as exc:
        print(f"pymem {args.command}: {exc}", file=sys.stderr)
        return 2
