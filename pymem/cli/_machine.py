"""The machine a `pymem` command works on: a bundled `--machine NAME`, a
user's `--machine module:callable`, or a QEMU dump (`--mtree DUMP
[--hints H]`); the argument blocks that declare it (`_MACHINE`,
`_MACHINE_INSTEAD_OF_DUMP`) and the two sides of `mtree diff`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import PymemError
from ._conventions import _arg, _Argument, _read

if TYPE_CHECKING:
    from ..address_space import MemorySystem


def _load_machine(args: argparse.Namespace) -> "MemorySystem":
    """The machine a command works on: `--mtree DUMP [--hints H]`, a bundled
    `--machine NAME`, or `--machine module:callable`, a function of the
    user's returning a MemorySystem (the current directory is importable)."""
    if args.mtree:
        from ..qemu import load_mtree

        return load_mtree(_read(args.mtree), args.hints)
    if args.hints:
        raise PymemError("--hints goes with --mtree")
    return _named_machine(args.machine, f"--machine {args.machine}")


def _named_machine(name: str, what: str) -> "MemorySystem":
    """A bundled machine `name`, or `module:callable`, a function of the
    user's returning a MemorySystem; errors start with `what`."""
    from ..address_space import MemorySystem

    if ":" not in name:
        from .. import machines

        return machines.load(name)
    module_name, _, attr = name.partition(":")
    import importlib

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PymemError(f"{what}: cannot import {module_name!r}: {exc}") from None
    except Exception as exc:   # noqa: BLE001 - the user's module failed to import
        raise PymemError(f"{what}: importing {module_name!r} raised "
                         f"{type(exc).__name__}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise PymemError(f"{what}: {module_name!r} has no function {attr!r}")
    try:
        system = function()
    except Exception as exc:   # noqa: BLE001 - the user's machine failed to build
        raise PymemError(f"{what}: {attr}() raised {type(exc).__name__}: "
                         f"{exc}") from None
    if not isinstance(system, MemorySystem):
        raise PymemError(f"{what}: {attr}() returned a {type(system).__name__}, "
                         f"not a MemorySystem")
    return system


def _machine_block(p: argparse.ArgumentParser) -> None:
    """The machine a command works on (`_load_machine` loads it): a bundled
    `--machine NAME` (default q35), `--machine module:callable`, or
    `--mtree DUMP` with `--hints FILE`."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--machine", default="q35", metavar="NAME|MODULE:FUNC",
                       help="a bundled machine name (default q35), or module:callable, a "
                       "function of yours returning a MemorySystem (the current directory "
                       "is importable)")
    where.add_argument("--mtree", metavar="DUMP",
                       help="an `info mtree -D` dump of the machine instead")
    p.add_argument("--hints", metavar="FILE", help="the hints.json that goes with --mtree")


_MACHINE: _Argument = _machine_block
_MACHINE_INSTEAD_OF_DUMP: _Argument = _arg(
    "--machine", metavar="NAME|MODULE:FUNC",
    help="a bundled machine name, or module:callable (a function returning a "
    "MemorySystem), instead of a dump")


def _load_side(spec: str, hints: Optional[str], label: str) -> "MemorySystem":
    """One side of `mtree diff`: an `info mtree -D` dump file (with `hints`),
    a directory holding mtree-D.txt (and hints.json), a bundled machine name,
    or module:callable."""
    from .. import machines

    path = Path(spec)
    if path.is_dir():
        dump = path / "mtree-D.txt"
        if not dump.is_file():
            raise PymemError(f"{label} {spec}: a directory without mtree-D.txt")
        if hints is None and (path / "hints.json").is_file():
            hints = str(path / "hints.json")
        path = dump
    if path.is_file():
        from ..qemu import load_mtree

        try:
            return load_mtree(_read(str(path)), hints)
        except PymemError as exc:
            raise PymemError(f"{label} {path}: {exc}") from None
    if hints is not None:
        raise PymemError(f"{label} {spec}: hints go with a dump file, not a machine")
    if ":" in spec or spec in machines.available():
        return _named_machine(spec, f"{label} {spec}")
    raise PymemError(f"{label} {spec!r}: no such file or directory, not a bundled machine "
                     f"(have: {', '.join(machines.available())}) and not module:callable")
