"""`pymem bench`: pymem against what a Python user would otherwise use, in one run.

Every operation is timed for pymem and for its peers on the same addresses,
drawn from the machine's real layout, so the ratios in the table are the
result.  Each measurement is repeated; the table shows the median ns per
operation and the spread (min..max of the repeats).
"""
from __future__ import annotations

import argparse
import bisect
import json
import random
import statistics
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from .dispatch import Dispatch, DispatchRange
from .qemu.flat import FlatViewText, parse_flat

Timed = Callable[[], None]


@dataclass
class Result:
    operation: str
    implementation: str
    ns_per_op: float
    spread: tuple
    ratio: Optional[float] = None   # pymem time / this peer's time

    def as_dict(self) -> dict:
        return {"operation": self.operation, "implementation": self.implementation,
                "ns_per_op": round(self.ns_per_op, 2),
                "spread_ns": [round(x, 2) for x in self.spread],
                "pymem_ratio": None if self.ratio is None else round(self.ratio, 3)}


@dataclass
class Case:
    """One operation: pymem's function and its peers', each running `ops` operations."""

    operation: str
    ops: int
    pymem: Timed
    peers: Dict[str, Timed] = field(default_factory=dict)


def time_per_op(fn: Timed, ops: int, repeats: int) -> tuple:
    fn()  # warm caches and MRU
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / ops)
    return statistics.median(samples), (min(samples), max(samples))


class BisectLookup:
    """The pure-Python peer: bisect over sorted range starts."""

    def __init__(self, view: FlatViewText) -> None:
        self.starts = [r.start for r in view.ranges]
        self.lasts = [r.last for r in view.ranges]

    def lookup(self, addr: int) -> int:
        i = bisect.bisect_right(self.starts, addr) - 1
        return i if i >= 0 and addr <= self.lasts[i] else -1


def sample_addresses(view: FlatViewText, n: int, pattern: str, rng: random.Random) -> List[int]:
    """Addresses inside the view's ranges: random, sequential, or all in one hot page."""
    ranges = view.ranges
    if pattern == "random":
        out = []
        for _ in range(n):
            r = rng.choice(ranges)
            out.append(r.start + rng.randrange(r.size))
        return out
    big = max(ranges, key=lambda r: r.size)
    if pattern == "sequential":
        return [big.start + (4 * i) % big.size for i in range(n)]
    page = big.start + rng.randrange(big.size) & ~0xFFF
    return [max(big.start, page) + rng.randrange(0x1000) % big.size for _ in range(n)]


def _lookup_cases(view: FlatViewText, dispatch: Dispatch, rng: random.Random,
                  quick: bool) -> List[Case]:
    cases = []
    peer = BisectLookup(view)
    n_single = 2_000 if quick else 20_000
    for pattern in ("random", "sequential", "hot page"):
        addrs = sample_addresses(view, n_single, pattern.split()[0], rng)
        lookup, peer_lookup = dispatch.lookup, peer.lookup

        def run_pymem(addrs=addrs, lookup=lookup) -> None:
            for a in addrs:
                lookup(a)

        def run_bisect(addrs=addrs, peer_lookup=peer_lookup) -> None:
            for a in addrs:
                peer_lookup(a)

        cases.append(Case(f"lookup ({pattern})", len(addrs), run_pymem,
                          {"bisect (pure Python)": run_bisect}))

    n_batch = 100_000 if quick else 1_000_000
    batch = array("Q", sample_addresses(view, n_batch, "random", rng))
    out = array("I", bytes(4 * n_batch))

    def run_batch() -> None:
        dispatch.lookup_many(batch, out)

    peers: Dict[str, Timed] = {}
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        starts = np.array(peer.starts, dtype=np.uint64)
        np_batch = np.frombuffer(batch, dtype=np.uint64)

        def run_searchsorted() -> None:
            np.searchsorted(starts, np_batch, side="right")

        peers["numpy.searchsorted"] = run_searchsorted
    cases.append(Case("batched lookup", n_batch, run_batch, peers))

    translate = dispatch.translate
    taddrs = sample_addresses(view, n_single, "random", rng)

    def run_translate() -> None:
        for a in taddrs:
            translate(a, 4)

    cases.append(Case("translate", len(taddrs), run_translate))
    return cases


def _memory_view(views: Sequence[FlatViewText]) -> FlatViewText:
    """The view the CPU sees: the one of AS "memory", else the largest."""
    for v in views:
        if v.ranges and any(line.startswith(' AS "memory"') for line in v.as_lines):
            return v
    return max((v for v in views if v.ranges), key=lambda v: len(v.ranges))


def run_cases(cases: List[Case], repeats: int, progress=sys.stderr) -> List[Result]:
    results = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.operation}", file=progress, flush=True)
        ns, spread = time_per_op(case.pymem, case.ops, repeats)
        results.append(Result(case.operation, "pymem", ns, spread))
        for name, fn in case.peers.items():
            peer_ns, peer_spread = time_per_op(fn, case.ops, repeats)
            results.append(Result(case.operation, name, peer_ns, peer_spread, ns / peer_ns))
    return results


def format_table(results: List[Result]) -> str:
    header = f"{'operation':<24} {'implementation':<24} {'ns/op':>10} {'spread (min..max)':>22} {'pymem/peer':>11}"
    lines = [header, "-" * len(header)]
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        spread = f"{r.spread[0]:.1f}..{r.spread[1]:.1f}"
        lines.append(f"{r.operation:<24} {r.implementation:<24} {r.ns_per_op:>10.1f} "
                     f"{spread:>22} {ratio:>11}")
    return "\n".join(lines)


def load_flat_views(args: argparse.Namespace) -> tuple:
    from . import machines

    if args.mtree:
        raise ValueError("--mtree needs the region-tree importer (issue 3)")
    return (parse_flat(machines.read(args.machine, "flat.txt")),
            json.loads(machines.read(args.machine, "hints.json")).get("page_bits", 12))


def run_bench(args: argparse.Namespace) -> int:
    views, page_bits = load_flat_views(args)
    view = _memory_view(views)
    dispatch = Dispatch.build([DispatchRange(r.start, r.size, r.offset, i)
                               for i, r in enumerate(view.ranges)], page_bits)
    rng = random.Random(1)
    cases = _lookup_cases(view, dispatch, rng, args.quick)
    results = run_cases(cases, 3 if args.quick else 7)
    print(f"pymem bench: machine {args.machine}, view with {len(view.ranges)} ranges")
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": args.machine, "results": [r.as_dict() for r in results]}, f,
                      indent=1)
    return 0
