"""The results, the goals and the timing of `pymem bench`: one measurement repeated, peers interleaved round-robin in CPU time.

Part of pymem.bench (see its docstring); a pure move out of the old bench.py.
"""
from __future__ import annotations

import bisect
import json
import random
import statistics
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple


Timed = Callable[[], Any]

PAGE = 0x1000

WINDOW = 16 << 20          # RAM window the access benchmarks use

@dataclass
class Result:
    operation: str
    implementation: str
    ns_per_op: float
    spread: Tuple[float, float]
    ratio: Optional[float] = None   # pymem time / this implementation's time

    def as_dict(self) -> Dict[str, Any]:
        """The row as `--json` writes it: ns rounded to 0.01, the ratio to
        the peer as `pymem_over_peer` (None on pymem's own rows).

        Raises nothing.
        """
        return {"operation": self.operation, "implementation": self.implementation,
                "ns_per_op": round(self.ns_per_op, 2),
                "spread_ns": [round(x, 2) for x in self.spread],
                "pymem_over_peer": None if self.ratio is None else round(self.ratio, 3)}

@dataclass
class Case:
    """One operation: pymem's function and its peers', each running `ops` operations."""

    operation: str
    ops: int
    pymem: Timed
    peers: Dict[str, Timed] = field(default_factory=dict)
    keep: Any = None   # what the timed functions need alive (a CPU's binding, say)

@dataclass
class Goal:
    """A target from the project's goals: pymem/peer time ratio at most `limit`."""

    operation: str
    peer: str
    limit: float
    text: str

GOALS = [
    Goal("lookup (random)", "bisect (pure Python)", 0.8, "single lookup <= 0.8x bisect"),
    Goal("batched lookup", "numpy.searchsorted", 0.5, "batched lookup <= 0.5x numpy.searchsorted"),
    Goal("ldl_le RAM", "struct.unpack_from", 1.5, "ldl_le <= 1.5x struct.unpack_from"),
    Goal("ldl_le RAM", "unicorn mem_read", 0.2, "ldl_le >= 5x faster than unicorn mem_read"),
    Goal("stl_le RAM", "unicorn mem_write", 1 / 3, "stl_le >= 3x faster than unicorn mem_write"),
    Goal("guest MMIO sw/lw (unicorn)", "unicorn mmio_map", 1.1,
         "guest MMIO access <= 1.1x unicorn mmio_map"),
    Goal("guest RAM loop (unicorn)", "unicorn mem_map", 1.1,
         "guest RAM code <= 1.1x unicorn alone"),
    Goal("bank switch (unicorn)", "unicorn mem_unmap + mem_map_ptr", 2.0,
         "bank switch commit <= 2x remapping unicorn by hand"),
    # Issue 12 goal 7: a commit's Python part <= its C part, i.e. <= 2x the C.
    Goal("full commit", "C render+dispatch of the same views", 2.0,
         "full commit <= 2x its C render+dispatch (Python part <= C)"),
]

COMMIT_GOAL_NS = 1_000_000

# Issue 12 goal 7, in ns: one set_alias_offset commit on a 7-range machine
# without listeners, and making a region plus its add_subregion.
SMALL_COMMIT_GOAL_NS = 20_000

REGION_GOAL_NS = 3_000

SCALING_SIZES = (1_000, 10_000, 100_000)

QUICK_SCALING_SIZES = (1_000, 10_000)

def time_per_op(fn: Timed, ops: int, repeats: int) -> Tuple[float, Tuple[float, float]]:
    """(median, (min, max)) ns per operation of `fn`, which runs `ops`
    operations a call: one warm-up call, then `repeats` timed ones
    (wall-clock perf_counter_ns).

    `ops` (>= 1) is how many operations one call of `fn` makes, `repeats` (>=
    1) how many times it is timed.

    Raises:
        Exception: what `fn` raises propagates.
    """
    fn()  # warm caches and the MRU section
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / ops)
    return statistics.median(samples), (min(samples), max(samples))

# Every timed loop calls its function the same way, whoever's it is: a
# bound method or builtin taken once, called directly with the loop's item
# (and constants), no lambda or other Python frame in between.  The peers
# are called at their best: struct through a precompiled Struct's bound
# methods, unicorn's stores with the bytes made once.

def _loop(fn: Callable[[Any], Any], items: List[Any]) -> Timed:
    """fn(x) for each x."""
    def run() -> None:
        for x in items:
            fn(x)
    return run

def _loop_then(fn: Callable[[Any, Any], Any], items: List[Any], b: Any) -> Timed:
    """fn(x, b) for each x."""
    def run() -> None:
        for x in items:
            fn(x, b)
    return run

def _loop_after(fn: Callable[[Any, Any], Any], a: Any, items: List[Any]) -> Timed:
    """fn(a, x) for each x."""
    def run() -> None:
        for x in items:
            fn(a, x)
    return run

def _loop_between(fn: Callable[[Any, Any, Any], Any], a: Any, items: List[Any],
                  c: Any) -> Timed:
    """fn(a, x, c) for each x."""
    def run() -> None:
        for x in items:
            fn(a, x, c)
    return run

def time_interleaved(runners: Dict[str, Timed], ops: int, repeats: int,
                     clock: Callable[[], int] = time.thread_time_ns,
                     ) -> Dict[str, Tuple[float, Tuple[float, float]]]:
    """Median and (min, max) ns per op of each runner, measured round-robin in
    one loop (the order rotated every repeat) in thread CPU time (or `clock`),
    so a slow window of a shared machine weighs on every implementation
    alike.

    Raises:
        Exception: what a runner raises propagates.
    """
    names = list(runners)
    samples: Dict[str, List[float]] = {k: [] for k in names}
    for fn in runners.values():
        fn()
    for rep in range(repeats):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            t0 = clock()
            runners[name]()
            samples[name].append((clock() - t0) / ops)
    return {k: (statistics.median(v), (min(v), max(v))) for k, v in samples.items()}

def _row(operation: str, timed: Dict[str, Tuple[float, Tuple[float, float]]], pymem: str) -> List[Result]:
    ns = timed[pymem][0]
    out = [Result(operation, "pymem", ns, timed[pymem][1])]
    out += [Result(operation, name, t[0], t[1], ns / t[0])
            for name, t in timed.items() if name != pymem]
    return out

def _repeat(fn: Callable[[], None], times: int) -> Timed:
    def run() -> None:
        for _ in range(times):
            fn()
    return run

def run_cases(cases: List[Case], repeats: int, progress: TextIO = sys.stderr) -> List[Result]:
    """Time every case, its implementations interleaved (time_interleaved) in
    process CPU time: every thread of this process counts (pymem's RCU
    reclaimer among them), other processes on a shared machine do not.  A
    case without peers is timed alone, in wall time.  Writes "[i/n]
    operation" to `progress` before each.

    Raises:
        Exception: what a case's implementation raises propagates.
    """
    results = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.operation}", file=progress, flush=True)
        if not case.peers:
            ns, spread = time_per_op(case.pymem, case.ops, repeats)
            results.append(Result(case.operation, "pymem", ns, spread))
            continue
        timed = time_interleaved({"pymem": case.pymem, **case.peers}, case.ops, repeats,
                                 time.process_time_ns)
        results += _row(case.operation, timed, "pymem")
    return results
