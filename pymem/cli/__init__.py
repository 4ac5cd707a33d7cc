"""The `pymem` command: `bench`, `qemu-dispatch`, and the other subcommands.

Each subcommand is a function taking parsed arguments and returning an exit
status.  Any input it cannot use (a missing or unreadable file, text that is
not UTF-8, a dump or trace that does not parse, hints of the wrong type, a
dump too deep or too large, a usage error) prints one line on stderr naming
the problem and exits 2, never a traceback: `replay` and `trace diff` keep
exit 1 for "divergence".

One module per group of subcommands, each declaring its subcommands
(`declare(sub)`, called in the order `pymem --help` lists them) next to the
functions that run them: _qemu.py (`qemu-dispatch`, `mtree`, `mtree diff`,
`qemu-hints`), _bench.py (`bench`), _trace.py (`replay`, `trace diff`),
_inspect.py (`explain`, `check`, `find`, `map`).  _conventions.py holds what
they share (below), _machine.py the machine a command works on.

Conventions for a new subcommand (tests/test_cli_conventions.py checks them):
declare it in its group's `declare` with `_command(sub, name, run, help=...,
examples=[...], arguments=[...])`, which registers `run`, puts the examples in
`--help` and declares its arguments in the order given: `_arg(...)` for one of
its own, and
the shared blocks for the rest (`_MACHINE`: a bundled `--machine NAME`, a
user's `--machine module:callable`, or `--mtree DUMP [--hints H]`, loaded with
`_load_machine(args)`; `_MACHINE_INSTEAD_OF_DUMP` beside a dump argument);
write progress of long runs to `_progress()`, which is stderr on a terminal
and silent otherwise.

Thread safety:
    `main` runs one command and is meant for the main thread of a process
    of its own (it writes to stdout/stderr, and `--machine module:callable`
    puts the current directory on sys.path); `build_parser` returns a new
    parser each call.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..errors import PymemError
from . import _bench, _inspect, _qemu, _trace
from ._conventions import _COMMANDS, Command as Command, _Parser, _progress as _progress
from ._qemu import _cmd_mtree_diff, _mtree_diff_parser as _mtree_diff_parser


def build_parser() -> argparse.ArgumentParser:
    """The `pymem` argument parser, every subcommand declared (with `_command`).

    Raises nothing.
    """
    parser = _Parser(prog="pymem", description="pymem: QEMU's memory API for Python. "
                     "Commands that work on a machine take a bundled --machine NAME, your "
                     "own --machine module:callable, or a QEMU dump (--mtree).",
                     epilog="`pymem COMMAND --help` shows a command's options and examples")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (_qemu, _bench, _trace, _inspect):   # the order of `pymem --help`
        group.declare(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run `pymem` with `argv` (default: sys.argv[1:]) and return its exit
    status: 0 success, 1 a finding or divergence where the command says so,
    2 unusable input (one line on stderr), 130 interrupted.  A usage error
    exits 2 through SystemExit, as argparse does.

    Raises:
        SystemExit: a usage error (exit status 2, one line on stderr), or
            `--help` (exit status 0).  Every other error of a command is turned
            into exit status 2 and one line on stderr, not raised.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["mtree", "diff"]:
        # `mtree` takes a dump as its positional argument, so `diff` is
        # routed here rather than declared as a subcommand of it (a dump
        # named `diff` can be given as ./diff).
        args = _mtree_diff_parser().parse_args(argv[2:])
        args.command = "mtree diff"
        _COMMANDS.setdefault("mtree diff", _cmd_mtree_diff)
    else:
        args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (PymemError, ValueError, TypeError, OSError) as exc:
        message = str(exc)
    except RecursionError:
        message = "the input is nested too deeply to process"
    except MemoryError:
        message = "out of memory: the input is too large"
    except KeyboardInterrupt:
        print(f"pymem {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:   # noqa: BLE001 - exit 2, never exit 1, on a crash
        # A bug in pymem rather than in the input, but the exit status must
        # not read as "divergence": still one line and 2.
        message = f"unexpected {type(exc).__name__} (a pymem bug, please report it): {exc}"
    print(f"pymem {args.command}: {' '.join(message.split())}", file=sys.stderr)
    return 2
