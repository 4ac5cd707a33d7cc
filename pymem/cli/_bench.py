"""`pymem bench`: pymem against its peers on a machine map, and its plots."""
from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
import sys

from ..errors import PymemError
from ._conventions import _arg, _check_writable, _command, _Parser, _progress, _read
from ._machine import _load_machine, _MACHINE


def declare(sub: "argparse._SubParsersAction[_Parser]") -> None:
    """Declare this module's subcommand on `pymem`'s parser."""
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


def _cmd_bench(args: argparse.Namespace) -> int:
    import json
    import tempfile

    if args.from_json:
        if not args.plot:
            raise PymemError("--from-json goes with --plot (it draws saved results)")
        from ..benchplot import plot_report

        _check_writable(args.plot)
        try:
            report = json.loads(_read(args.from_json))
        except json.JSONDecodeError as exc:
            raise PymemError(f"{args.from_json} is not JSON: {exc}") from None
        plot_report(report, args.plot)
        return 0
    from ..bench import run_bench as run_bench_only
    from ..bench_access import run_access_rows

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
    from ..benchplot import plot_report, require_matplotlib

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
