"""`pymem explain`, `check`, `find` and `map`: what a machine's map says,
address by address, region by region, and drawn."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import PymemError
from ._conventions import _arg, _check_writable, _command, _Parser
from ._machine import _load_machine, _MACHINE


def declare(sub: "argparse._SubParsersAction[_Parser]") -> None:
    """Declare this module's subcommands on `pymem`'s parser."""
    _command(sub, "explain", _cmd_explain,
             help="why an address reaches the region it does: flat range, section, "
             "dispatch walk, chain from the root, and every other region covering it "
             "with why it lost",
             examples=["pymem explain 0xc1000",
                       "pymem explain 0x3f8 --as I/O",
                       "pymem explain 0x1000 --machine myboard:build"],
             arguments=[
                 _arg("addr", metavar="ADDR", help="the address (0x... or decimal)"),
                 _arg("--as", dest="address_space", metavar="NAME",
                      help="the address space (default 'memory', else the first)"),
                 _arg("--size", type=int, metavar="N", help="also say whether an access of N "
                      "bytes here fails, where and why (as a MemTxError would)"),
                 _arg("--write", action="store_true",
                      help="with --size: a write, not a read"),
                 _MACHINE])

    _command(sub, "check", _cmd_check,
             help="problems in a machine's map (equal-priority overlaps, aliases past "
             "their target, regions never visible, ...); exit 0 clean, 1 findings, "
             "2 unusable input",
             examples=["pymem check", "pymem check --machine myboard:build",
                       "pymem check --mtree mtree-D.txt --hints hints.json"],
             arguments=[_MACHINE])

    _command(sub, "find", _cmd_find,
             help="every region of a name (names are not unique), with its path; "
             "exit 1 when there is none",
             examples=["pymem find isa-bios", "pymem find uart --machine myboard:build"],
             arguments=[_arg("name", metavar="NAME", help="the region name"), _MACHINE])

    _command(sub, "map", _cmd_map,
             help="draw a machine's map as one self-contained HTML page (nothing fetched "
             "when viewed): an address bar per view (gaps squeezed), the region tree "
             "beside it; click a region to highlight its ranges, hover a range to "
             "explain it",
             examples=["pymem map -o map.html",
                       "pymem map --machine myboard:build --as memory -o board.html"],
             arguments=[
                 _arg("-o", "--output", default="-", metavar="FILE",
                      help="the page to write (default: standard output)"),
                 _arg("--as", dest="address_space", metavar="NAME", action="append",
                      help="draw only this address space (repeat for more; default: all)"),
                 _MACHINE])


def _cmd_explain(args: argparse.Namespace) -> int:
    try:
        addr = int(args.addr, 0)
    except ValueError:
        raise PymemError(f"ADDR {args.addr!r} is not a number (0x1000, 4096, ...)") from None
    system = _load_machine(args)
    spaces = {asp.name: asp for asp in system.address_spaces}
    if not spaces:
        raise PymemError("the machine has no address space")
    name = args.address_space
    if name is None:
        name = "memory" if "memory" in spaces else next(iter(spaces))
    if name not in spaces:
        raise PymemError(f"no address space named {name!r} (have: "
                         f"{', '.join(repr(n) for n in spaces)})")
    if args.write and args.size is None:
        raise PymemError("--write goes with --size (the access to check)")
    sys.stdout.write(f"{spaces[name].explain(addr, args.size, args.write)}\n")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    found = _load_machine(args).check()
    for finding in found:
        sys.stdout.write(f"{finding}\n")
    sys.stdout.write(f"{len(found)} finding{'' if len(found) == 1 else 's'}\n")
    return 1 if found else 0


def _cmd_map(args: argparse.Namespace) -> int:
    from ..htmlmap import render_html

    _check_writable(args.output)
    system = _load_machine(args)
    title = args.mtree if args.mtree else args.machine
    page = render_html(system, args.address_space or None, title=title)
    if args.output == "-":
        sys.stdout.write(page)
    else:
        Path(args.output).write_text(page, encoding="utf-8")
    return 0


def _cmd_find(args: argparse.Namespace) -> int:
    found = _load_machine(args).find(args.name)
    for entry in found:
        sys.stdout.write(f"{entry}\n")
    return 0 if found else 1
