"""The `pymem` command: `bench`, `qemu-dispatch`, and the other subcommands.

Each subcommand is a function taking parsed arguments and returning an exit
status.  Any input it cannot use (a missing or unreadable file, text that is
not UTF-8, a dump or trace that does not parse, hints of the wrong type, a
dump too deep or too large, a usage error) prints one line on stderr naming
the problem and exits 2, never a traceback: `replay` and `trace diff` keep
exit 1 for "divergence".

Conventions for a new subcommand (tests/test_cli_conventions.py checks them):
declare it with `_command(sub, name, run, help=..., examples=[...],
arguments=[...])`, which registers `run`, puts the examples in `--help` and
declares its arguments in the order given: `_arg(...)` for one of its own, and
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
import io
import os
import sys
import textwrap
from functools import partial
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, NoReturn, Optional, Sequence,
                    TextIO, cast)

from .errors import PymemError

if TYPE_CHECKING:
    from .address_space import MemorySystem

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


def _cmd_qemu_dispatch(args: argparse.Namespace) -> int:
    from .qemu import dispatch_from_flat, format_mtree

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
    from .qemu import format_mtree

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

    from .qemu.hints import derive_hints

    hints = derive_hints(_read(args.mtree_d), _read(args.flat), _read(args.dispatch))
    sys.stdout.write(json.dumps(hints, indent=1) + "\n")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import json
    import tempfile

    if args.from_json:
        if not args.plot:
            raise PymemError("--from-json goes with --plot (it draws saved results)")
        from .benchplot import plot_report

        _check_writable(args.plot)
        try:
            report = json.loads(_read(args.from_json))
        except json.JSONDecodeError as exc:
            raise PymemError(f"{args.from_json} is not JSON: {exc}") from None
        plot_report(report, args.plot)
        return 0
    from .bench import run_bench as run_bench_only
    from .bench_access import run_access_rows

    # The access-path rows live above bench (they use its timing helpers).
    run_bench = partial(run_bench_only, extra_rows=(run_access_rows,))

    # Checked up front: the benchmark runs for minutes before it writes.
    if args.mtree and not args.hints:
        raise PymemError("--mtree needs --hints (the hints.json of the same dump)")
    _check_writable(args.json)
    system = _load_machine(args)
    progress = _progress()
    if not args.plot:
        return run_bench(args, system=system, progress=progress)
    from .benchplot import plot_report, require_matplotlib

    _check_writable(args.plot)
    require_matplotlib()
    if args.json in (None, "-"):
        # The results go through a file of our own; printed as asked too.
        with tempfile.TemporaryDirectory() as tmp:
            stdout_json, args.json = args.json == "-", str(Path(tmp) / "bench.json")
            status = run_bench(args, system=system, progress=progress)
            text = Path(args.json).read_text()
        if stdout_json:
            sys.stdout.write(text + "\n")
    else:
        status = run_bench(args, system=system, progress=progress)
        text = Path(args.json).read_text()
    plot_report(json.loads(text), args.plot)
    return status


def _cmd_replay(args: argparse.Namespace) -> int:
    from .trace import format_report, load_trace, replay

    progress = _progress()
    print(f"reading {args.trace}", file=progress, flush=True)
    trace = load_trace(args.trace)
    if trace.header is None and trace.source != "qemu":
        raise PymemError(f"{args.trace} is cut inside its header line: nothing to replay")
    system = _load_machine(args)
    print(f"replaying {len(trace.events):,} events", file=progress, flush=True)
    report = replay(trace, system, show_all=args.all)
    sys.stdout.write(format_report(report, args.trace, args.all))
    return 0 if report.identical else 1


def _cmd_trace(args: argparse.Namespace) -> int:
    from .trace import diff_traces, format_diff, load_trace

    progress = _progress()
    print(f"reading {args.a}", file=progress, flush=True)
    a = load_trace(args.a)
    print(f"reading {args.b}", file=progress, flush=True)
    b = load_trace(args.b)
    diff = diff_traces(a, b)
    sys.stdout.write(format_diff(diff, args.a, args.b, args.context))
    return 0 if diff.identical else 1


def _load_machine(args: argparse.Namespace) -> "MemorySystem":
    """The machine a command works on: `--mtree DUMP [--hints H]`, a bundled
    `--machine NAME`, or `--machine module:callable`, a function of the
    user's returning a MemorySystem (the current directory is importable)."""
    if args.mtree:
        from .qemu import load_mtree

        return load_mtree(_read(args.mtree), args.hints)
    if args.hints:
        raise PymemError("--hints goes with --mtree")
    return _named_machine(args.machine, f"--machine {args.machine}")


def _named_machine(name: str, what: str) -> "MemorySystem":
    """A bundled machine `name`, or `module:callable`, a function of the
    user's returning a MemorySystem; errors start with `what`."""
    from .address_space import MemorySystem

    if ":" not in name:
        from . import machines

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
    from . import machines

    path = Path(spec)
    if path.is_dir():
        dump = path / "mtree-D.txt"
        if not dump.is_file():
            raise PymemError(f"{label} {spec}: a directory without mtree-D.txt")
        if hints is None and (path / "hints.json").is_file():
            hints = str(path / "hints.json")
        path = dump
    if path.is_file():
        from .qemu import load_mtree

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


def _cmd_mtree_diff(args: argparse.Namespace) -> int:
    from .diff import diff_systems

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
    from .htmlmap import render_html

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


def build_parser() -> argparse.ArgumentParser:
    """The `pymem` argument parser, every subcommand declared (with `_command`).

    Raises nothing.
    """
    parser = _Parser(prog="pymem", description="pymem: QEMU's memory API for Python. "
                     "Commands that work on a machine take a bundled --machine NAME, your "
                     "own --machine module:callable, or a QEMU dump (--mtree).",
                     epilog="`pymem COMMAND --help` shows a command's options and examples")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    _command(sub, "bench", _cmd_bench,
             help="benchmark pymem against its peers on a machine map (minutes; "
             "progress on stderr when it is a terminal)",
             examples=["pymem bench --quick",
                       "pymem bench --machine myboard:build --json results.json",
                       "pymem bench --mtree mtree-D.txt --hints hints.json"],
             arguments=[
                 _MACHINE,
                 _arg("--json", metavar="FILE", nargs="?", const="-",
                      help="write the results as JSON to FILE, or alone to stdout without FILE"),
                 _arg("--quick", action="store_true", help="fewer repetitions"),
                 _arg("--plot", metavar="FILE", help="also draw the lookup and commit-scaling "
                      "results into FILE (.png, .svg, .pdf; needs the `plot` extra: "
                      "pip install 'pymem-qemu[plot]')"),
                 _arg("--from-json", metavar="FILE", help="with --plot: draw the results a "
                      "previous `bench --json FILE` saved, without running the benchmarks")])

    _command(sub, "replay", _cmd_replay,
             help="replay a trace (pymem's or a QEMU trace log) against a machine; "
             "exit 0 identical, 1 divergence, 2 unusable input",
             examples=["pymem replay trace.jsonl",
                       "pymem replay trace.log --mtree mtree-D.txt --hints hints.json --all",
                       "pymem replay trace.jsonl --machine myboard:build"],
             arguments=[
                 _arg("trace", help="a pymem trace (JSON Lines) or a QEMU trace.log"),
                 _MACHINE,
                 _arg("--all", action="store_true",
                      help="replay to the end, list every divergence")])

    p = _command(sub, "trace", _cmd_trace, help="work with traces: `trace diff A B`",
                 examples=["pymem trace diff before.jsonl after.log"])
    trace_sub = p.add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    d = trace_sub.add_parser(
        "diff", help="compare two traces (either format) as sequences of MMIO accesses; "
        "exit 0 identical, 1 different",
        description="compare two traces (either format) as sequences of MMIO accesses; "
        "exit 0 identical, 1 different",
        epilog=_examples_epilog(["pymem trace diff before.jsonl after.log --context 5"]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("a", help="first trace")
    d.add_argument("b", help="second trace")
    d.add_argument("--context", type=int, default=3, help="accesses shown on each side")

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
