"""`pymem bench`: pymem against what a Python user would otherwise use, in one run.

The machine is a real QEMU map (the bundled q35-booted one by default).  Every
operation is timed for pymem and for its peers on the same addresses, drawn
from the machine's layout, so the ratios in the table are the result.  Each
measurement is repeated; the table shows the median ns per operation and the
spread (min..max of the repeats).  Peers that are not installed (numpy,
intervaltree, unicorn: `pip install pymem[peers]`) are left out.
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import statistics
import struct
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, TextIO

from .address_space import AddressSpace, MemorySystem
from .flatview import FlatRange, FlatView
from .region import MemoryRegion, MemoryRegionOps

Timed = Callable[[], Any]
PAGE = 0x1000
WINDOW = 16 << 20          # RAM window the access benchmarks use


@dataclass
class Result:
    operation: str
    implementation: str
    ns_per_op: float
    spread: tuple
    ratio: Optional[float] = None   # pymem time / this implementation's time

    def as_dict(self) -> dict:
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
]
COMMIT_GOAL_NS = 1_000_000
SCALING_SIZES = (1_000, 10_000, 100_000)
QUICK_SCALING_SIZES = (1_000, 10_000)


def time_per_op(fn: Timed, ops: int, repeats: int) -> tuple:
    fn()  # warm caches and the MRU section
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / ops)
    return statistics.median(samples), (min(samples), max(samples))


def _loop(fn: Callable[[Any], Any], items: List[Any]) -> Timed:
    def run() -> None:
        for x in items:
            fn(x)
    return run


class BisectMap:
    """The pure-Python peer: sorted range starts and bisect."""

    def __init__(self, ranges: List[FlatRange]) -> None:
        self.starts = [r.addr for r in ranges]
        self.ends = [r.end for r in ranges]
        self.offsets = [r.offset_in_region for r in ranges]

    def lookup(self, addr: int) -> int:
        i = bisect.bisect_right(self.starts, addr) - 1
        return i if i >= 0 and addr < self.ends[i] else -1

    def translate(self, addr: int, length: int = 4) -> tuple:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0 or addr >= self.ends[i]:
            return -1, addr, length
        return i, self.offsets[i] + addr - self.starts[i], min(length, self.ends[i] - addr)


def sample_addresses(ranges: List[FlatRange], n: int, pattern: str,
                     rng: random.Random) -> List[int]:
    """Addresses inside the ranges: random, sequential (4-byte steps through the
    largest range), or all in one hot page."""
    if pattern == "random":
        out = []
        for _ in range(n):
            r = rng.choice(ranges)
            out.append(r.addr + rng.randrange(r.size))
        return out
    big = max(ranges, key=lambda r: r.size)
    if pattern == "sequential":
        return [big.addr + (4 * i) % big.size for i in range(n)]
    page = big.addr + (rng.randrange(big.size) & ~(PAGE - 1))
    span = min(PAGE, big.end - page)
    return [page + rng.randrange(span) for _ in range(n)]


def _view(asp: AddressSpace) -> FlatView:
    view = asp.flatview
    assert view is not None   # set by MemorySystem.address_space
    return view


def memory_space(system: MemorySystem) -> AddressSpace:
    """The CPU's view: AS "memory" if there is one, else the most populated."""
    spaces = system.address_spaces
    for asp in spaces:
        if asp.name == "memory":
            return asp
    return max(spaces, key=lambda a: len(_view(a).ranges))


def _ram_range(asp: AddressSpace) -> FlatRange:
    writable = [r for r in _view(asp).ranges
                if r.region.ram_backed and not r.readonly and r.region.kind == "ram"]
    if not writable:
        raise ValueError(f"address space {asp.name!r} has no writable RAM to benchmark")
    return max(writable, key=lambda r: r.size)


def _mmio_range(asp: AddressSpace) -> Optional[FlatRange]:
    io = [r for r in _view(asp).ranges if r.region.kind == "io" and r.size >= 4]
    return max(io, key=lambda r: r.size) if io else None


def lookup_cases(asp: AddressSpace, rng: random.Random, n: int, n_batch: int) -> List[Case]:
    view = _view(asp)
    ranges = view.ranges
    dispatch = view.dispatch
    assert dispatch is not None   # only a destroyed view has none
    peer = BisectMap(ranges)
    tree = None
    try:
        import intervaltree
    except ImportError:
        pass
    else:
        tree = intervaltree.IntervalTree.from_tuples(
            (r.addr, r.end, i) for i, r in enumerate(ranges))

    cases = []
    for pattern in ("random", "sequential", "hot page"):
        addrs = sample_addresses(ranges, n, pattern.split()[0], rng)
        peers = {"bisect (pure Python)": _loop(peer.lookup, addrs)}
        if tree is not None:
            peers["intervaltree"] = _loop(tree.at, addrs)
        cases.append(Case(f"lookup ({pattern})", n, _loop(dispatch.lookup, addrs), peers))

    batch = array("Q", sample_addresses(ranges, n_batch, "random", rng))
    out = array("I", bytes(4 * n_batch))
    peers = {}
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        starts = np.array(peer.starts, dtype=np.uint64)
        np_batch = np.frombuffer(batch, dtype=np.uint64)
        peers["numpy.searchsorted"] = lambda: np.searchsorted(starts, np_batch, side="right")
    cases.append(Case("batched lookup", n_batch, lambda: dispatch.lookup_many(batch, out), peers))

    addrs = sample_addresses(ranges, n, "random", rng)
    translate = dispatch.translate
    cases.append(Case("translate", n, _loop(lambda a: translate(a, 4), addrs),
                      {"bisect (pure Python)": _loop(peer.translate, addrs)}))
    return cases


def _unicorn(base: int, size: int) -> Any:
    try:
        import unicorn
    except ImportError:
        return None
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    uc.mem_map(base, size)
    return uc


def access_cases(asp: AddressSpace, rng: random.Random, n: int) -> List[Case]:
    ram = _ram_range(asp)
    base = ram.addr
    window = min(WINDOW, ram.size) & ~(PAGE - 1)
    buf = bytearray(window)
    uc = _unicorn(base, window)
    offs4 = [rng.randrange(0, window - 4) & ~3 for _ in range(n)]
    addrs4 = [base + o for o in offs4]
    offs_page = [rng.randrange(0, window // PAGE) * PAGE for _ in range(max(1, n // 10))]
    addrs_page = [base + o for o in offs_page]
    page = bytes(PAGE)
    unpack_from, pack_into = struct.unpack_from, struct.pack_into

    def stores(store: Callable[[int, int], Any], addrs: List[int]) -> Timed:
        def run() -> None:
            for a in addrs:
                store(a, 0x12345678)
        return run

    cases = []
    peers = {"struct.unpack_from": _loop(lambda o: unpack_from("<I", buf, o), offs4)}
    if uc is not None:
        peers["unicorn mem_read"] = _loop(lambda a: uc.mem_read(a, 4), addrs4)
    cases.append(Case("ldl_le RAM", n, _loop(asp.ldl_le, addrs4), peers))

    peers = {"struct.pack_into": stores(lambda o, v: pack_into("<I", buf, o, v), offs4)}
    if uc is not None:
        peers["unicorn mem_write"] = stores(lambda a, v: uc.mem_write(a, v.to_bytes(4, "little")),
                                            addrs4)
    cases.append(Case("stl_le RAM", n, stores(asp.stl_le, addrs4), peers))

    read = asp.read
    peers = {"bytearray slice": _loop(lambda o: buf[o:o + PAGE], offs_page)}
    if uc is not None:
        peers["unicorn mem_read"] = _loop(lambda a: uc.mem_read(a, PAGE), addrs_page)
    cases.append(Case("read 4 KiB RAM", len(offs_page),
                      _loop(lambda a: read(a, PAGE), addrs_page), peers))

    write = asp.write

    def slice_write(o: int) -> None:
        buf[o:o + PAGE] = page
    peers = {"bytearray slice": _loop(slice_write, offs_page)}
    if uc is not None:
        peers["unicorn mem_write"] = _loop(lambda a: uc.mem_write(a, page), addrs_page)
    cases.append(Case("write 4 KiB RAM", len(offs_page),
                      _loop(lambda a: write(a, page), addrs_page), peers))

    mmio = _mmio_range(asp)
    if mmio is not None:
        addrs = [mmio.addr + (rng.randrange(mmio.size - 3) & ~3) for _ in range(n // 4)]
        peer = BisectMap(_view(asp).ranges)
        # Any: the peer calls ops.read unchecked, as a user's own bus would.
        regions: List[Any] = [r.region for r in _view(asp).ranges]

        def python_bus(addr: int) -> int:
            i, offset, _ = peer.translate(addr)
            return regions[i].ops.read(offset, 4)
        cases.append(Case(f"ldl_le MMIO ({mmio.region.name})", len(addrs),
                          _loop(asp.ldl_le, addrs),
                          {"bisect + ops.read (pure Python)": _loop(python_bus, addrs)}))
    return cases


def commit_case(system: MemorySystem, asp: AddressSpace, name: str = "full commit") -> Case:
    """A full commit: every view re-rendered and its dispatch rebuilt."""
    region = asp.root.subregions[0] if asp.root.subregions else asp.root

    def run() -> None:
        # Disable and re-enable: a change, so the outermost transaction commits
        # and rebuilds every FlatView, as QEMU would.
        with system.transaction():
            region.set_enabled(not region.enabled)
            region.set_enabled(not region.enabled)
    return Case(name, 1, run)


_DEVICE_OPS = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)


def synthetic_system(n: int, seed: int = 5) -> MemorySystem:
    """About n regions shaped like a busy machine: buses of 32 devices each
    (MMIO, RAM buffers, windows aliasing a 1 GiB RAM), some overlapping their
    neighbours at a higher priority, some disabled; two address spaces on it."""
    rng = random.Random(seed)
    system_mr = MemoryRegion.container("system", 1 << 64)
    ram = MemoryRegion.ram("ram", 1 << 30)
    system_mr.add_subregion(0, MemoryRegion.alias("ram-below-4g", ram, 0, 1 << 30))
    count = 2
    bus_addr = 1 << 32
    while count < n:
        bus = MemoryRegion.container(f"bus{count}", 0x40000)
        system_mr.add_subregion(bus_addr, bus, rng.choice([0, 0, 1]))
        count += 1
        for d in range(min(32, n - count)):
            kind = rng.random()
            dev: MemoryRegion
            if kind < 0.6:
                dev = MemoryRegion.io(f"dev{count}", rng.choice([0x10, 0x100, 0x1000]),
                                      _DEVICE_OPS)
            elif kind < 0.8:
                dev = MemoryRegion.alias(f"win{count}", ram, rng.randrange(0, 1 << 20) * 0x1000,
                                         0x2000)
            else:
                dev = MemoryRegion.ram(f"buf{count}", 0x1000)
            bus.add_subregion(d * 0x2000 + rng.choice([0, 0, 0x800]), dev,
                              rng.choice([0, 0, 0, 2]))
            if rng.random() < 0.05:
                dev.set_enabled(False)
            count += 1
        bus_addr += 0x40000
    system = MemorySystem()
    system.address_space(system_mr, "memory")
    system.address_space(system_mr, "cpu-memory-0")
    return system


def run_scaling(sizes: tuple, repeats: int, progress: TextIO = sys.stderr) -> List[Result]:
    """A full commit of synthetic trees of each size, for the growth rate.
    One tree at a time, so the big ones do not weigh on other measurements."""
    results = []
    for n in sizes:
        print(f"building a {n:,}-region tree", file=progress, flush=True)
        system = synthetic_system(n)
        case = commit_case(system, system.address_spaces[0], f"full commit, {n:,} regions")
        # The first commits of a big tree run while malloc adapts to its
        # arrays (fresh mmaps, page faults); time the steady state.
        for _ in range(3):
            case.pymem()
        results += run_cases([case], repeats, progress)
    return results


def run_cases(cases: List[Case], repeats: int, progress: TextIO = sys.stderr) -> List[Result]:
    results = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.operation}", file=progress, flush=True)
        ns, spread = time_per_op(case.pymem, case.ops, repeats)
        results.append(Result(case.operation, "pymem", ns, spread))
        for name, fn in case.peers.items():
            peer_ns, peer_spread = time_per_op(fn, case.ops, repeats)
            results.append(Result(case.operation, name, peer_ns, peer_spread, ns / peer_ns))
    return results


def check_goals(results: List[Result], sizes: tuple = ()) -> List[dict]:
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


def format_table(results: List[Result], goals: List[dict]) -> str:
    header = (f"{'operation':<28} {'implementation':<32} {'ns/op':>11} "
              f"{'spread (min..max)':>22} {'pymem/peer':>10}")
    lines = [header, "-" * len(header)]
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        spread = f"{r.spread[0]:.1f}..{r.spread[1]:.1f}"
        lines.append(f"{r.operation:<28} {r.implementation:<32} {r.ns_per_op:>11.1f} "
                     f"{spread:>22} {ratio:>10}")
    lines.append("")
    for g in goals:
        measured = f"{g['ratio']:.2f}x" if "ratio" in g else f"{g['ns'] / 1e6:.3f} ms"
        lines.append(f"goal: {g['goal']:<52} measured {measured:>10}  "
                     f"{'met' if g['met'] else 'MISSED'}")
    return "\n".join(lines)


def load_system(args: argparse.Namespace) -> tuple:
    from . import machines
    from .qemu.mtree import load_mtree

    if args.mtree:
        if not args.hints:
            raise ValueError("--mtree needs --hints (the hints.json of the same dump)")
        with open(args.mtree) as f:
            return load_mtree(f.read(), args.hints), args.mtree
    return machines.load(args.machine), args.machine


def run_bench(args: argparse.Namespace) -> int:
    system, label = load_system(args)
    asp = memory_space(system)
    rng = random.Random(1)
    n, n_batch, repeats = (2_000, 100_000, 3) if args.quick else (20_000, 1_000_000, 7)
    cases = lookup_cases(asp, rng, n, n_batch) + access_cases(asp, rng, n)
    cases.append(commit_case(system, asp))
    results = run_cases(cases, repeats)
    sizes = QUICK_SCALING_SIZES if args.quick else SCALING_SIZES
    results += run_scaling(sizes, repeats)
    goals = check_goals(results, sizes)
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
