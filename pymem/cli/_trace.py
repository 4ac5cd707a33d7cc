"""`pymem replay` and `pymem trace diff`: traces against a machine, and two
traces against each other."""
from __future__ import annotations

import argparse
import sys

from ..errors import PymemError
from ._conventions import _arg, _command, _examples_epilog, _Parser, _progress
from ._machine import _load_machine, _MACHINE


def declare(sub: "argparse._SubParsersAction[_Parser]") -> None:
    """Declare this module's subcommands on `pymem`'s parser."""
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


def _cmd_replay(args: argparse.Namespace) -> int:
    from ..trace import format_report, load_trace, replay

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
    from ..trace import diff_traces, format_diff, load_trace

    progress = _progress()
    print(f"reading {args.a}", file=progress, flush=True)
    a = load_trace(args.a)
    print(f"reading {args.b}", file=progress, flush=True)
    b = load_trace(args.b)
    diff = diff_traces(a, b)
    sys.stdout.write(format_diff(diff, args.a, args.b, args.context))
    return 0 if diff.identical else 1
