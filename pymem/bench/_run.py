"""`pymem bench` as a whole: run every row, check the goals, print the table.

Part of pymem.bench (see its docstring); a pure move out of the old bench.py.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from ..address_space import AddressSpace, MemorySystem
from ..errors import InvalidArgumentError
from ._cases import access_cases, lookup_cases
from ._commit import commit_case, run_scaling, small_commit_cases
from ._core import COMMIT_GOAL_NS, GOALS, QUICK_SCALING_SIZES, REGION_GOAL_NS, Result, SCALING_SIZES, SMALL_COMMIT_GOAL_NS, run_cases
from ._qemu import run_qemu_cases
from ._unicorn import unicorn_cases
from ._workloads import _view, memory_space

def check_goals(results: List[Result], sizes: Tuple[int, ...] = ()) -> List[Dict[str, Any]]:
    """The goals of GOALS (and the commit-scaling goal over `sizes`) as
    dicts: `goal` text, measured `ratio` or `ns`, and `met`.

    Raises nothing.
    """
    by_key = {(r.operation, r.implementation): r for r in results}
    out = []
    for g in GOALS:
        r = by_key.get((g.operation, g.peer))
        if r is not None:
            assert r.ratio is not None   # every peer's result has its ratio
            out.append({"goal": g.text, "ratio": round(r.ratio, 3), "met": r.ratio <= g.limit})
    commit = by_key.get(("full commit", "pymem"))
    if commit is not None:
        out.append({"goal": "full commit < 1 ms", "ns": round(commit.ns_per_op),
                    "met": commit.ns_per_op < COMMIT_GOAL_NS})
    for operation, ns_limit, text in (
            ("small commit (set_alias_offset, 7 ranges)", SMALL_COMMIT_GOAL_NS,
             "small commit <= 20 us"),
            ("region + add_subregion", REGION_GOAL_NS, "region + add_subregion <= 3 us")):
        timed = by_key.get((operation, "pymem"))
        if timed is not None:
            out.append({"goal": text, "ns": round(timed.ns_per_op),
                        "met": timed.ns_per_op <= ns_limit})
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        first = by_key.get((f"full commit, {small:,} regions", "pymem"))
        last = by_key.get((f"full commit, {large:,} regions", "pymem"))
        if first is not None and last is not None:
            limit = large * math.log(large) / (small * math.log(small))
            growth = last.ns_per_op / first.ns_per_op
            out.append({"goal": f"commit {small:,} -> {large:,} regions <= n log n "
                                f"({limit:.1f}x)",
                        "ratio": round(growth, 3), "met": growth <= limit})
    return out

def format_table(results: List[Result], goals: List[Dict[str, Any]]) -> str:
    """The table `pymem bench` prints: one row per result, then the goals.

    Raises nothing.
    """
    op_w = max([28] + [len(r.operation) for r in results])
    impl_w = max([32] + [len(r.implementation) for r in results])
    goal_w = max([52] + [len(g["goal"]) for g in goals])
    header = (f"{'operation':<{op_w}} {'implementation':<{impl_w}} {'ns/op':>11} "
              f"{'spread (min..max)':>22} {'pymem/peer':>10}")
    lines = [header, "-" * len(header)]
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        spread = f"{r.spread[0]:.1f}..{r.spread[1]:.1f}"
        lines.append(f"{r.operation:<{op_w}} {r.implementation:<{impl_w}} {r.ns_per_op:>11.1f} "
                     f"{spread:>22} {ratio:>10}")
    lines.append("")
    for g in goals:
        measured = f"{g['ratio']:.2f}x" if "ratio" in g else f"{g['ns'] / 1e6:.3f} ms"
        lines.append(f"goal: {g['goal']:<{goal_w}} measured {measured:>10}  "
                     f"{'met' if g['met'] else 'MISSED'}")
    return "\n".join(lines)

def load_system(args: argparse.Namespace) -> Tuple[MemorySystem, str]:
    """(system, label) from `args`: `--mtree` with its `--hints` (ValueError
    without them), else the bundled `--machine`.

    Raises:
        InvalidArgumentError: `--mtree` without `--hints`, or an unknown bundled machine.
        DumpParseError: the dump or hints do not parse.
        OSError: the dump cannot be read.
    """
    from .. import machines
    from ..qemu.mtree import load_mtree

    if args.mtree:
        if not args.hints:
            raise InvalidArgumentError("--mtree needs --hints (the hints.json of the same dump)")
        with open(args.mtree) as f:
            return load_mtree(f.read(), args.hints), args.mtree
    return machines.load(args.machine), args.machine

ExtraRows = Callable[[AddressSpace, bool, TextIO], Tuple[List[Result], List[Dict[str, Any]]]]

def run_bench(args: argparse.Namespace, system: Optional["MemorySystem"] = None,
              progress: Optional[TextIO] = None, extra_rows: Sequence[ExtraRows] = ()) -> int:
    """Run `pymem bench` as `args` (machine, mtree, hints, quick, json) say:
    print the table (or JSON) on stdout, progress lines on `progress`
    (default stderr).  `system`, when given, is the machine to measure
    (labelled with `args.mtree` or `args.machine`); otherwise it is loaded
    from `args`.  `extra_rows` add groups of rows and goals (the CLI passes
    pymem.bench_access's), each called with (address space, quick,
    progress).  Returns the exit status (0).

    Raises:
        InvalidArgumentError: `--mtree` without `--hints`, an unknown bundled
            machine, or a machine without writable RAM.
        DumpParseError: the dump or hints do not parse.
        OSError: the `--json` file cannot be written.
    """
    if progress is None:
        progress = sys.stderr
    if system is None:
        system, label = load_system(args)
    else:
        label = args.mtree or args.machine
    asp = memory_space(system)
    rng = random.Random(1)
    n, n_batch, repeats = (2_000, 100_000, 3) if args.quick else (20_000, 1_000_000, 7)
    cases = lookup_cases(asp, rng, n, n_batch) + access_cases(asp, rng, n)
    cases.append(commit_case(system, asp, with_c=True))
    cases += small_commit_cases()
    cases += unicorn_cases(n)
    results = run_cases(cases, repeats, progress)
    sizes = QUICK_SCALING_SIZES if args.quick else SCALING_SIZES
    results += run_scaling(sizes, repeats, progress)
    goals = check_goals(results, sizes)
    qemu_results, qemu_goal_list = run_qemu_cases(system, asp, args.quick, progress)
    results += qemu_results
    goals += qemu_goal_list
    for rows in extra_rows:
        extra_results, extra_goals = rows(asp, args.quick, progress)
        results += extra_results
        goals += extra_goals
    report = {"machine": label, "address_space": asp.name, "repeats": repeats,
              "results": [r.as_dict() for r in results], "goals": goals}
    if args.json == "-":
        json.dump(report, sys.stdout, indent=1)
        print()
        return 0
    print(f"pymem bench: {label}, address space {asp.name!r} "
          f"({len(_view(asp).ranges)} ranges), ns per operation, {repeats} repeats")
    print(format_table(results, goals))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0
