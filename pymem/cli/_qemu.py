"""`pymem qemu-dispatch`, `mtree`, `mtree diff` and `qemu-hints`: QEMU's
`info mtree` text in and out.
"""
from __future__ import annotations

import argparse
import sys
import textwrap

from ..errors import PymemError
from ._conventions import _arg, _command, _examples_epilog, _Parser, _read
from ._machine import _load_machine, _load_side, _MACHINE_INSTEAD_OF_DUMP


def declare(sub: "argparse._SubParsersAction[_Parser]") -> None:
    """Declare this module's subcommands on `pymem`'s parser."""
    _command(sub, "qemu-dispatch", _cmd_qemu_dispatch,
             help="print `info mtree -f -d` (FlatViews with their dispatch tables) for an "
             "`info mtree -f` dump, or for a machine",
             examples=["pymem qemu-dispatch flat.txt --page-bits 12",
                       "pymem qemu-dispatch --machine q35"],
             arguments=[
                 _arg("flatdump", nargs="?", help="a file holding QEMU's `info mtree -f` output"),
                 _MACHINE_INSTEAD_OF_DUMP,
                 _arg("--page-bits", type=int, default=12,
                      help="target page bits (10..16) of the dump")])

    _command(sub, "mtree", _cmd_mtree,
             help="load an `info mtree -D` dump (or a machine) and print it as "
             "`info mtree` would; `pymem mtree diff A B` compares two machines' maps",
             examples=["pymem mtree mtree-D.txt --hints hints.json -f",
                       "pymem mtree --machine q35 -D",
                       "pymem mtree --machine myboard:build   # myboard.py's build()"],
             arguments=[
                 _arg("dump", nargs="?", help="a file holding QEMU's `info mtree -D` output"),
                 _MACHINE_INSTEAD_OF_DUMP,
                 _arg("--hints", help="the hints.json that goes with the dump"),
                 _arg("-f", action="store_true", help="print the FlatViews (`info mtree -f`)"),
                 _arg("-d", action="store_true", help="with the dispatch tables (`-f -d`)"),
                 _arg("-D", action="store_true", help="show disabled regions in the tree")])

    _command(sub, "qemu-hints", _cmd_qemu_hints,
             help="derive the hints.json of a machine from its `info mtree -D`, "
             "`info mtree -f` and `info mtree -f -d` dumps (one moment of one QEMU)",
             examples=["pymem qemu-hints mtree-D.txt flat.txt dispatch.txt > hints.json"],
             arguments=[_arg("mtree_d", metavar="MTREE_D", help="`info mtree -D` output"),
                        _arg("flat", metavar="FLAT", help="`info mtree -f` output"),
                        _arg("dispatch", metavar="DISPATCH", help="`info mtree -f -d` output")])


def _cmd_qemu_dispatch(args: argparse.Namespace) -> int:
    from ..qemu import dispatch_from_flat, format_mtree

    if args.flatdump is not None:
        if args.machine is not None:
            raise PymemError("give an `info mtree -f` dump or --machine, not both")
        sys.stdout.write(dispatch_from_flat(_read(args.flatdump), args.page_bits))
        return 0
    if args.machine is None:
        raise PymemError("give an `info mtree -f` dump file, or --machine NAME")
    system = _load_machine(argparse.Namespace(machine=args.machine, mtree=None, hints=None))
    sys.stdout.write(format_mtree(system, flat=True, dispatch=True))
    return 0


def _cmd_mtree(args: argparse.Namespace) -> int:
    from ..qemu import format_mtree

    if args.dump is not None and args.machine is not None:
        raise PymemError("give an `info mtree -D` dump or --machine, not both")
    if args.dump is None and args.machine is None:
        raise PymemError("give an `info mtree -D` dump file, or --machine NAME")
    system = _load_machine(argparse.Namespace(machine=args.machine, mtree=args.dump,
                                              hints=args.hints))
    sys.stdout.write(format_mtree(system, flat=args.f or args.d, dispatch=args.d,
                                  disabled=args.D))
    return 0


def _cmd_qemu_hints(args: argparse.Namespace) -> int:
    import json

    from ..qemu.hints import derive_hints

    hints = derive_hints(_read(args.mtree_d), _read(args.flat), _read(args.dispatch))
    sys.stdout.write(json.dumps(hints, indent=1) + "\n")
    return 0


def _cmd_mtree_diff(args: argparse.Namespace) -> int:
    from ..diff import diff_systems

    a = _load_side(args.a, args.hints_a, "A")
    b = _load_side(args.b, args.hints_b, "B")
    diff = diff_systems(a, b)
    sys.stdout.write(f"{diff}\n")
    return 0 if diff.equal else 1


def _mtree_diff_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pymem mtree diff",
        description=textwrap.fill(
            "compare the memory maps of two machines per address space: regions "
            "added, removed, moved, resized, re-prioritised, enabled/disabled, and the flat "
            "ranges that changed; exit 0 equal, 1 different, 2 unusable input", 79),
        epilog=_examples_epilog([
            "pymem mtree diff reset/ booted/",
            "pymem mtree diff q35 myboard:build",
            "pymem mtree diff a.txt b.txt --hints-a a.json --hints-b b.json"]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    for side in ("a", "b"):
        p.add_argument(side, metavar=side.upper(),
                       help="an `info mtree -D` dump, a directory with mtree-D.txt and "
                       "hints.json, a bundled machine name, or module:callable (a function "
                       "returning a MemorySystem)")
    p.add_argument("--hints-a", metavar="FILE", help="the hints.json that goes with dump A")
    p.add_argument("--hints-b", metavar="FILE", help="the hints.json that goes with dump B")
    return p
