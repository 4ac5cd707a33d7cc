"""The `pymem` command's conventions, in code: how a subcommand is declared
(`_command`, `_arg`), how a usage error reads (`_Parser`), where progress
goes (`_progress`), and how an input file is read and an output file
checked before any work (`_read`, `_check_writable`).  Every subcommand
module of the package uses them; tests/test_cli_conventions.py checks
what they promise.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Dict, NoReturn, Optional, Sequence, TextIO, cast

from ..errors import PymemError

Command = Callable[[argparse.Namespace], int]
_COMMANDS: Dict[str, Command] = {}


class _Parser(argparse.ArgumentParser):
    """argparse with pymem's error convention: a usage error is one line on
    stderr that says what to fix, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


_Argument = Callable[[argparse.ArgumentParser], None]
"""Declares one argument (or a block of them) on a subcommand's parser."""


def _arg(*flags: str, **options: Any) -> _Argument:
    """One `add_argument(*flags, **options)`, as an item of `_command`'s
    `arguments`."""
    def declare(p: argparse.ArgumentParser) -> None:
        p.add_argument(*flags, **options)
    return declare


def _examples_epilog(examples: Sequence[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in examples)


def _command(sub: "argparse._SubParsersAction[_Parser]", name: str, run: Command, *,
             help: str, examples: Sequence[str],
             arguments: Sequence[_Argument] = ()) -> argparse.ArgumentParser:
    """Declare the subcommand `name`: `help` is its line in `pymem --help` and
    the start of its own `--help`, `examples` (whole command lines, each with
    an optional `  # comment`) end its `--help`; `arguments` are declared in
    order (`--help` lists them so); `run` is called with the parsed arguments
    and returns the exit status."""
    if not examples:
        raise ValueError(f"pymem {name}: a subcommand needs at least one example")
    p = sub.add_parser(name, help=help, description=textwrap.fill(help, 79),
                       epilog=_examples_epilog(examples),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    for declare in arguments:
        declare(p)
    _COMMANDS[name] = run
    return p


class _Silent(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def _progress() -> TextIO:
    """Where a long run reports progress: stderr when it is a terminal, a
    sink otherwise (a pipe, a file, CI), so logs hold only results and
    errors."""
    stream = sys.stderr
    try:
        if stream is not None and stream.isatty():
            return stream
    except ValueError:   # a closed stream
        pass
    return cast(TextIO, _Silent())


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PymemError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PymemError(f"{path} is not UTF-8 text (byte {exc.start}: "
                         f"{exc.object[exc.start:exc.start + 1]!r})") from None


def _check_writable(path: Optional[str]) -> None:
    """Refuse an output file that cannot be written before any work is done."""
    if path is None or path == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise PymemError(f"cannot write {path}: it is a directory")
    where = target if target.exists() else target.parent
    if not os.access(where, os.W_OK) or not where.exists():
        raise PymemError(f"cannot write {path}: "
                         f"{'no such directory' if not where.exists() else 'permission denied'}")
