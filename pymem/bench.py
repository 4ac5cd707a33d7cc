"""`pymem bench`: pymem against what a Python user would otherwise use, in one run.

The machine is a real QEMU map (the bundled q35-booted one by default).  Every
operation is timed for pymem and for its peers on the same addresses, drawn
from the machine's layout, so the ratios in the table are the result.  Each
measurement is repeated, pymem and its peers interleaved round-robin in CPU
time (a busy machine slows all of them alike, and other processes do not
count); the table shows the median ns per operation and the spread
(min..max of the repeats).  Every implementation is called the same way: a
bound method or builtin taken once and called straight from the loop.  Peers that are not installed (numpy,
intervaltree, unicorn: `pip install 'pymem-qemu[peers]'`) are left out.
"""
from __future__ import annotations

import argparse
import bisect
import importlib.util
import json
import math
import random
import statistics
import struct
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

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
    spread: Tuple[float, float]
    ratio: Optional[float] = None   # pymem time / this implementation's time

    def as_dict(self) -> Dict[str, Any]:
        """The row as `--json` writes it: ns rounded to 0.01, the ratio to
        the peer as `pymem_over_peer` (None on pymem's own rows)."""
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
    (wall-clock perf_counter_ns)."""
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


class BisectMap:
    """The pure-Python peer: sorted range starts and bisect."""

    def __init__(self, ranges: List[FlatRange]) -> None:
        self.starts = [r.addr for r in ranges]
        self.ends = [r.end for r in ranges]
        self.offsets = [r.offset_in_region for r in ranges]

    def lookup(self, addr: int) -> int:
        """Index of the range holding `addr`, or -1 for none."""
        i = bisect.bisect_right(self.starts, addr) - 1
        return i if i >= 0 and addr < self.ends[i] else -1

    def translate(self, addr: int, length: int = 4) -> Tuple[int, int, int]:
        """(range index or -1, offset in its region, bytes left in the range,
        at most `length`), as Dispatch.translate answers."""
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
    """The lookup, batched lookup and translate rows of `asp`'s view, each
    beside bisect, intervaltree and numpy.searchsorted where installed: `n`
    addresses per single-lookup case, `n_batch` for the batched one."""
    view = _view(asp)
    ranges = view.ranges
    dispatch = view.dispatch
    assert dispatch is not None   # only a destroyed view has none
    peer = BisectMap(ranges)
    tree = None
    try:
        import intervaltree  # type: ignore[import-not-found,unused-ignore]  # the peers extra
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
    cases.append(Case("translate", n, _loop_then(dispatch.translate, addrs, 4),
                      {"bisect (pure Python)": _loop_then(peer.translate, addrs, 4)}))
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
    """The RAM load/store/read/write rows (beside struct, bytearray slices and
    unicorn's mem_read/mem_write) and the MMIO load row, `n` accesses each,
    in the largest RAM range of `asp`."""
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
    word = struct.Struct("<I")
    value = 0x12345678
    value_bytes = value.to_bytes(4, "little")

    cases = []
    peers = {"struct.unpack_from": _loop_after(word.unpack_from, buf, offs4)}
    if uc is not None:
        peers["unicorn mem_read"] = _loop_then(uc.mem_read, addrs4, 4)
    cases.append(Case("ldl_le RAM", n, _loop(asp.ldl_le, addrs4), peers))

    peers = {"struct.pack_into": _loop_between(word.pack_into, buf, offs4, value)}
    if uc is not None:
        peers["unicorn mem_write"] = _loop_then(uc.mem_write, addrs4, value_bytes)
    cases.append(Case("stl_le RAM", n, _loop_then(asp.stl_le, addrs4, value), peers))

    def slice_read() -> None:
        for o in offs_page:
            buf[o:o + PAGE]   # the copy is the work
    peers = {"bytearray slice": slice_read}
    if uc is not None:
        peers["unicorn mem_read"] = _loop_then(uc.mem_read, addrs_page, PAGE)
    cases.append(Case("read 4 KiB RAM", len(offs_page), _loop_then(asp.read, addrs_page, PAGE),
                      peers))

    def slice_write() -> None:
        for o in offs_page:
            buf[o:o + PAGE] = page
    peers = {"bytearray slice": slice_write}
    if uc is not None:
        peers["unicorn mem_write"] = _loop_then(uc.mem_write, addrs_page, page)
    cases.append(Case("write 4 KiB RAM", len(offs_page), _loop_then(asp.write, addrs_page, page),
                      peers))

    mmio = _mmio_range(asp)
    if mmio is not None:
        addrs = [mmio.addr + (rng.randrange(mmio.size - 3) & ~3) for _ in range(n // 4)]
        peer = BisectMap(_view(asp).ranges)
        # Any: the peer calls ops.read unchecked, as a user's own bus would.
        regions: List[Any] = [r.region for r in _view(asp).ranges]

        def python_bus(addr: int) -> int:
            i, offset, _ = peer.translate(addr)
            return int(regions[i].ops.read(offset, 4))
        cases.append(Case(f"ldl_le MMIO ({mmio.region.name})", len(addrs),
                          _loop(asp.ldl_le, addrs),
                          {"bisect + ops.read (pure Python)": _loop(python_bus, addrs)}))
    return cases


# ------------------------------------------------- beside QEMU's algorithm

QEMU_MIXES = ("random", "sequential", "hot page", "sub-page")
QEMU_GOALS = {
    "subpage": 1.5, "local": 1.0, "random": 0.5, "floor": 1.2, "lookup": 1.2, "translate": 1.3,
    "ldl_le": 1.1, "rcu": 1.5, "space_translate": 2.0}


def qemu_reference() -> Any:
    """benchmarks/qemu_ref of the source tree (QEMU 7.2's lookup transcribed,
    and the floors), built on first use; None outside a source checkout or
    without a compiler (the QEMU column is then left out)."""
    init = Path(__file__).resolve().parent.parent / "benchmarks" / "qemu_ref" / "__init__.py"
    if not init.exists():
        return None
    spec = importlib.util.spec_from_file_location("pymem_bench_qemu_ref", init)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        module.load()
    except Exception as e:   # no compiler, no headers: say so and go on
        print(f"QEMU column left out: {e}", file=sys.stderr)
        return None
    return module


def time_interleaved(runners: Dict[str, Timed], ops: int, repeats: int,
                     clock: Callable[[], int] = time.thread_time_ns,
                     ) -> Dict[str, Tuple[float, Tuple[float, float]]]:
    """Median and (min, max) ns per op of each runner, measured round-robin in
    one loop (the order rotated every repeat) in thread CPU time (or `clock`),
    so a slow window of a shared machine weighs on every implementation
    alike."""
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


def subpage_addresses(dispatch: Any, ranges: List[FlatRange], n: int,
                      rng: random.Random) -> List[int]:
    """Addresses inside the view's sub-pages: a random piece of a random
    sub-page, then a random byte of it (the layout's rule, as for "random")."""
    pieces = []
    for s in dispatch.sections():
        if s.is_subpage:
            pieces += [(s.start + first, last - first + 1)
                       for first, last, sec in dispatch.subpage(s.index) if sec]
    if not pieces:
        return []
    return [start + rng.randrange(size) for start, size in
            (rng.choice(pieces) for _ in range(n))]


def _mix(dispatch: Any, ranges: List[FlatRange], mix: str, n: int,
         rng: random.Random) -> List[int]:
    if mix == "sub-page":
        return subpage_addresses(dispatch, ranges, n, rng)
    return sample_addresses(ranges, n, mix.split()[0], rng)


def _row(operation: str, timed: Dict[str, Tuple[float, Tuple[float, float]]], pymem: str) -> List[Result]:
    ns = timed[pymem][0]
    out = [Result(operation, "pymem", ns, timed[pymem][1])]
    out += [Result(operation, name, t[0], t[1], ns / t[0])
            for name, t in timed.items() if name != pymem]
    return out


def qemu_lookup_cases(ref: Any, asp: AddressSpace, n: int, repeats: int,
                      rng: random.Random) -> Tuple[List[Result], Dict[str, float]]:
    """Lookups in C beside QEMU's algorithm and the floors on one view, every
    implementation checked to answer pymem's section on every timed address.
    Returns (results, ratios by goal key)."""
    from ._bindings import ffi, lib
    from .dispatch import c_address

    view = _view(asp)
    d = view.dispatch
    assert d is not None
    qemu = ref.QemuLookup(d)
    bounds, secs = ref.resolved_bounds(d)
    small = len(bounds) <= 256
    call_fn = c_address(ffi.addressof(lib, "pm_dispatch_lookup"))
    handle = c_address(d.handle)
    results: List[Result] = []
    ratios: Dict[str, float] = {}
    for mix in QEMU_MIXES:
        addr_list = _mix(d, view.ranges, mix, n, rng)
        if not addr_list:
            continue
        addrs = array("Q", addr_list)
        want = d.lookup_many(addrs)
        outs = {k: array("I", bytes(4 * len(addrs))) for k in
                ("pymem", "mru", "walk", "call", "pcall", "bsearch", "avx2")}
        def pymem_many(a: "array[int]" = addrs, o: "array[int]" = outs["pymem"]) -> None:
            d.lookup_many(a, o)

        def pymem_calls(a: "array[int]" = addrs, o: "array[int]" = outs["pcall"]) -> None:
            ref.load().call_many(call_fn, handle, a, o)
        batched: Dict[str, Timed] = {
            "pymem": pymem_many,
            "QEMU walk+MRU (loop)": qemu.runner("mru", addrs, outs["mru"]),
            "QEMU walk (loop)": qemu.runner("walk", addrs, outs["walk"]),
        }
        if small:
            batched["floor: binary search"] = ref.floor_runner(
                "bsearch", bounds, secs, addrs, outs["bsearch"])
            avx2 = ref.floor_runner("avx2", bounds, secs, addrs, outs["avx2"])
            if avx2 is not None and len(bounds) <= 64:
                batched["floor: AVX2 compare"] = avx2
        single: Dict[str, Timed] = {
            "pymem": pymem_calls,
            "QEMU lookup (a call each)": qemu.runner("call", addrs, outs["call"]),
        }
        for fn in list(batched.values()) + list(single.values()):
            fn()
        used = {"pymem", "mru", "walk", "call", "pcall"}
        used |= {k for k in ("bsearch", "avx2") if f"floor: {'binary search' if k == 'bsearch' else 'AVX2 compare'}" in batched}
        for k, o in outs.items():
            if k in used and o != want:
                bad = next(i for i in range(len(want)) if o[i] != want[i])
                raise AssertionError(f"{asp.name}: {k} answers section {o[bad]} at "
                                     f"{addrs[bad]:#x}, pymem {want[bad]}")
        label = f"{asp.name} {mix}"
        tb = time_interleaved(batched, len(addrs), repeats)
        ts = time_interleaved(single, len(addrs), repeats)
        results += _row(f"C batched lookup, {label}", tb, "pymem")
        results += _row(f"C single lookup, {label}", ts, "pymem")
        best_qemu = min(tb["QEMU walk+MRU (loop)"][0], tb["QEMU walk (loop)"][0])
        ratios[f"batched {label}"] = tb["pymem"][0] / best_qemu
        ratios[f"single {label}"] = ts["pymem"][0] / ts["QEMU lookup (a call each)"][0]
        floors = [t[0] for k, t in tb.items() if k.startswith("floor")]
        if floors:
            ratios[f"floor {label}"] = tb["pymem"][0] / min(floors)
    return results, ratios


def qemu_access_cases(ref: Any, asp: AddressSpace, n: int, repeats: int,
                      rng: random.Random) -> Tuple[List[Result], Dict[str, float]]:
    """The access path in C beside QEMU's: pm_as_ldl_le against the model of
    address_space_ldl_le (benchmarks/qemu_ref), both called once per address
    from a C loop, on 4-byte loads inside one page of the largest RAM range
    (L1-resident: the path is measured, not the cache), every value checked
    equal; and the RCU read-side lock+unlock pair against QEMU's (its
    default build, and built with membarrier).  Returns (results, ratios)."""
    from .dispatch import c_address

    d = _view(asp).dispatch
    assert d is not None
    qemu = ref.QemuLookup(d)
    qemu.attach_memory(d)
    ram = _ram_range(asp)
    page = min(ram.end - PAGE, (ram.addr + PAGE - 1) & ~(PAGE - 1)) if ram.size >= PAGE \
        else ram.addr
    span = min(PAGE, ram.end - page)
    asp.write(page, bytes(rng.randrange(256) for _ in range(span)))
    addrs = array("Q", [page + (rng.randrange(span - 3) & ~3) for _ in range(n)])
    got = {k: array("Q", bytes(8 * n)) for k in ("pymem", "qemu")}
    loads = {"pymem": ref.pymem_ldl_runner(c_address(asp._cas), addrs, got["pymem"]),
             "QEMU address_space_ldl_le (model)": qemu.ldl_runner(addrs, got["qemu"])}
    for fn in loads.values():
        fn()
    if got["pymem"] != got["qemu"] or (1 << 64) - 1 in got["pymem"]:
        bad = next((i for i in range(n) if got["pymem"][i] != got["qemu"][i]), 0)
        raise AssertionError(f"{asp.name}: ldl_le at {addrs[bad]:#x}: pymem "
                             f"{got['pymem'][bad]:#x}, QEMU model {got['qemu'][bad]:#x}")
    tl = time_interleaved(loads, n, repeats)
    pairs = {"pymem": ref.rcu_runner("pymem", n),
             "QEMU rcu_read_lock/unlock": ref.rcu_runner("qemu", n),
             "QEMU built with membarrier": ref.rcu_runner("qemu-membarrier", n)}
    tp = time_interleaved(pairs, n, repeats)
    results = (_row(f"C ldl_le RAM, one page ({asp.name})", tl, "pymem")
               + _row("C RCU read lock+unlock pair", tp, "pymem"))
    ratios = {"ldl_le": tl["pymem"][0] / tl["QEMU address_space_ldl_le (model)"][0],
              "rcu": tp["pymem"][0] / tp["QEMU rcu_read_lock/unlock"][0]}
    return results, ratios


def python_lookup_cases(ref: Any, asp: AddressSpace, n: int, repeats: int,
                        rng: random.Random) -> Tuple[List[Result], Dict[str, float]]:
    """Dispatch.lookup and translate beside builtins that only convert their
    arguments (and return a small int, or a plain tuple), net of the loop."""
    d = _view(asp).dispatch
    assert d is not None
    mod = ref.load()
    addrs = sample_addresses(_view(asp).ranges, n, "random", rng)
    if [d.lookup(a) for a in addrs[:1000]] != list(d.lookup_many(array("Q", addrs[:1000]))):
        raise AssertionError("Dispatch.lookup disagrees with lookup_many")
    lookup, translate = d.lookup, d.translate

    def empty() -> None:
        for a in addrs:
            pass

    def loop1(f: Callable[[int], Any]) -> Timed:
        def run() -> None:
            for a in addrs:
                f(a)
        return run

    def loop2(f: Callable[[int, int], Any]) -> Timed:
        def run() -> None:
            for a in addrs:
                f(a, 4)
        return run
    timed = time_interleaved({
        "empty loop": empty, "lookup": loop1(lookup), "translate": loop2(translate),
        "convert": loop1(mod.convert_only_std), "convert fast": loop1(mod.convert_only),
        "tuple": loop2(mod.plain_tuple_std), "tuple fast": loop2(mod.plain_tuple),
        "space translate": loop2(asp.translate)}, n, repeats)
    base = timed["empty loop"][0]

    def net(operation: str, impl: str, k: str, pymem: Optional[str] = None) -> Result:
        # A difference of medians: on a noisy machine (or under a sanitizer)
        # a cheap row can come out at or below the empty loop.  Its ratio is
        # then infinite (no goal can be claimed met on it), never a division
        # by zero or a negative ratio that would read as met.
        ns, (lo, hi) = timed[k]
        ratio = None
        if pymem is not None:
            ratio = (timed[pymem][0] - base) / (ns - base) if ns > base else math.inf
        return Result(operation, impl, ns - base, (lo - base, hi - base), ratio)
    op_l, op_t = "Python Dispatch.lookup (net of loop)", "Python Dispatch.translate (net of loop)"
    results = [
        net(op_l, "pymem", "lookup"),
        net(op_l, "METH_O converting (PyLong_AsUnsignedLongLong)", "convert", "lookup"),
        net(op_l, "METH_O converting (pymem's digit read)", "convert fast", "lookup"),
        net(op_t, "pymem", "translate"),
        net(op_t, "builtin returning a tuple (PyLong_As...)", "tuple", "translate"),
        net(op_t, "builtin returning a tuple (digit read)", "tuple fast", "translate"),
        net("Python AddressSpace.translate (net of loop)", "pymem", "space translate"),
        net("Python AddressSpace.translate (net of loop)", "Dispatch.translate", "translate",
            "space translate")]
    ratios = {"lookup": results[1].ratio, "translate": results[4].ratio,
              "space_translate": results[7].ratio}
    return results, {k: v for k, v in ratios.items() if v is not None}


def qemu_goals(ratios: Dict[str, float], views: List[str]) -> List[Dict[str, Any]]:
    """Issue 12's dispatch goals from the measured ratios."""
    goals = []

    def add(text: str, keys: List[str], limit: float) -> None:
        got = [ratios[k] for k in keys if k in ratios]
        if got:
            worst = max(got)
            goals.append({"goal": text, "ratio": round(worst, 3), "met": worst <= limit})
    io = [v for v in views if v != views[0]]
    add("single lookup in a sub-page <= 1.5x QEMU",
        [f"single {v} sub-page" for v in (io or views)], QEMU_GOALS["subpage"])
    add("batched sequential and hot-page <= 1.0x QEMU walk+MRU",
        [f"batched {v} {m}" for v in views for m in ("sequential", "hot page")],
        QEMU_GOALS["local"])
    add("batched random <= 0.5x QEMU", [f"batched {views[0]} random"], QEMU_GOALS["random"])
    add("batched on small views <= 1.2x the best compare floor",
        [f"floor {v} random" for v in views], QEMU_GOALS["floor"])
    add("pm_as_ldl_le in C <= 1.1x QEMU's address_space_ldl_le", ["ldl_le"],
        QEMU_GOALS["ldl_le"])
    add("RCU read lock+unlock pair <= 1.5x QEMU's", ["rcu"], QEMU_GOALS["rcu"])
    add("Dispatch.lookup <= 1.2x a builtin converting the address", ["lookup"],
        QEMU_GOALS["lookup"])
    add("AddressSpace.translate <= 2x Dispatch.translate", ["space_translate"],
        QEMU_GOALS["space_translate"])
    add("Dispatch.translate <= 1.3x a builtin returning a tuple", ["translate"],
        QEMU_GOALS["translate"])
    return goals


def run_qemu_cases(system: MemorySystem, asp: AddressSpace, quick: bool,
                   progress: TextIO = sys.stderr) -> Tuple[List[Result], List[Dict[str, Any]]]:
    """The lookup rows beside QEMU's algorithm: the CPU's view and, where the
    machine has one, its I/O view (QEMU's sub-page-heavy case)."""
    ref = qemu_reference()
    if ref is None:
        return [], []
    rng = random.Random(3)
    n, py_n, repeats = (1 << 14, 5_000, 5) if quick else (1 << 16, 20_000, 15)
    spaces = [asp] + [a for a in system.address_spaces if a.name == "I/O"]
    results: List[Result] = []
    ratios: Dict[str, float] = {}
    for space in spaces:
        print(f"[qemu] lookups on {space.name!r}", file=progress, flush=True)
        r, q = qemu_lookup_cases(ref, space, n, repeats, rng)
        results += r
        ratios.update(q)
    print("[qemu] ldl_le and the RCU read side in C", file=progress, flush=True)
    r, q = qemu_access_cases(ref, asp, n, repeats, rng)
    results += r
    ratios.update(q)
    print("[qemu] Python-level lookups", file=progress, flush=True)
    r, q = python_lookup_cases(ref, asp, py_n, repeats, rng)
    results += r
    ratios.update(q)
    return results, qemu_goals(ratios, [s.name for s in spaces])


# RISC-V 32 guest loops for the unicorn group (a0: address, a1: count >= 1).
# The MMIO loop, at the start of RAM: 1: sw a1,0(a0); lw t0,0(a0);
# addi a1,a1,-1; bnez a1,1b.  The RAM loop, after it: 2: lw t0,0(a0);
# add t1,t1,t0; sw t1,4(a0); addi a1,a1,-1; bnez a1,2b.  Each ends where the
# next instruction would be, emu_start's stop address.
_RV32_LOOPS = b"".join(w.to_bytes(4, "little") for w in (
    0x00B52023, 0x00052283, 0xFFF58593, 0xFE059AE3,
    0x00052283, 0x00530333, 0x00652223, 0xFFF58593, 0xFE0598E3))
_MMIO_LOOP, _MMIO_END, _RAM_LOOP, _RAM_END = 0x0, 0x10, 0x10, 0x24
_UC_CODE, _UC_DATA, _UC_DEVICE, _UC_WINDOW = 0x10000, 0x18000, 0x1000, 0x100000


class _Register:
    """One read/write register: the device both boards of the unicorn group
    call, each in its own callback shape (pymem's ops, unicorn's mmio_map),
    so neither board pays an adapter call the other does not."""

    def __init__(self) -> None:
        self.value = 0

    def read(self, offset: int, size: int) -> int:
        return self.value

    def write(self, offset: int, value: int, size: int) -> None:
        self.value = value

    def uc_read(self, uc: Any, offset: int, size: int, user_data: Any) -> int:
        return self.value

    def uc_write(self, uc: Any, offset: int, size: int, value: int, user_data: Any) -> None:
        self.value = value


def unicorn_cases(n: int) -> List[Case]:
    """A RISC-V 32 unicorn CPU on pymem (pymem.unicorn.attach) against the same
    machine on unicorn alone (mem_map, mmio_map calling the same device, the
    bank window remapped by hand): guest MMIO loads and stores, a guest loop
    in RAM, and a bank switch.  Empty when unicorn is not installed."""
    try:
        import mmap
        import ctypes
        import unicorn
        from unicorn.riscv_const import UC_RISCV_REG_A0, UC_RISCV_REG_A1
        from .unicorn import attach
    except ImportError:
        return []
    page = PAGE

    def cpu() -> Any:
        return unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)

    # pymem: RAM with the code, a sub-page device, a window aliasing two banks.
    on_pymem = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    ram = MemoryRegion.ram("ram", 0x10000)
    ram.buffer[:len(_RV32_LOOPS)] = _RV32_LOOPS
    banks = MemoryRegion.ram("banks", 2 * page)
    window = MemoryRegion.alias("window", banks, 0, page)
    device = _Register()
    with on_pymem.transaction():
        root.add_subregion(_UC_CODE, ram)
        root.add_subregion(_UC_DEVICE, MemoryRegion.io("register", 0x100, MemoryRegionOps(
            device.read, device.write, valid_min=4, valid_max=4)))
        root.add_subregion(_UC_WINDOW, window)
    uc_pymem = cpu()
    binding = attach(uc_pymem, on_pymem.address_space(root, "cpu-memory"))

    # unicorn alone: the same map from mem_map, mmio_map and mem_map_ptr.
    uc_alone = cpu()
    uc_alone.mem_map(_UC_CODE, 0x10000)
    uc_alone.mem_write(_UC_CODE, _RV32_LOOPS)
    uc_alone.mmio_map(_UC_DEVICE, page, device.uc_read, None, device.uc_write, None)
    bank_memory = mmap.mmap(-1, 2 * page)
    bank_host = ctypes.addressof(ctypes.c_char.from_buffer(bank_memory))
    uc_alone.mem_map_ptr(_UC_WINDOW, page, unicorn.UC_PROT_ALL, bank_host)

    def guest(uc: Any, start: int, end: int, addr: int, count: int) -> Timed:
        def run() -> None:
            uc.reg_write(UC_RISCV_REG_A0, addr)
            uc.reg_write(UC_RISCV_REG_A1, count)
            uc.emu_start(_UC_CODE + start, _UC_CODE + end)
        return run

    def remap_by_hand() -> None:
        for bank in (1, 0):
            uc_alone.mem_unmap(_UC_WINDOW, page)
            uc_alone.mem_map_ptr(_UC_WINDOW, page, unicorn.UC_PROT_ALL, bank_host + bank * page)

    def switch_banks() -> None:
        for bank in (1, 0):
            window.set_alias_offset(bank * page)

    loops = max(1, n // 2)
    calls = max(1, n // 200)      # two bank switches each
    cases = [
        Case("guest MMIO sw/lw (unicorn)", 2 * loops,
             guest(uc_pymem, _MMIO_LOOP, _MMIO_END, _UC_DEVICE, loops),
             {"unicorn mmio_map": guest(uc_alone, _MMIO_LOOP, _MMIO_END, _UC_DEVICE, loops)}),
        # Long enough (5 instructions a turn) that starting the CPU does not count.
        Case("guest RAM loop (unicorn)", 50 * loops,
             guest(uc_pymem, _RAM_LOOP, _RAM_END, _UC_DATA, 50 * loops),
             {"unicorn mem_map": guest(uc_alone, _RAM_LOOP, _RAM_END, _UC_DATA, 50 * loops)}),
        Case("bank switch (unicorn)", 2 * calls, _repeat(switch_banks, calls),
             {"unicorn mem_unmap + mem_map_ptr": _repeat(remap_by_hand, calls)}),
    ]
    for case in cases:
        case.keep = (binding, bank_memory)
    return cases


def _repeat(fn: Callable[[], None], times: int) -> Timed:
    def run() -> None:
        for _ in range(times):
            fn()
    return run


def commit_case(system: MemorySystem, asp: AddressSpace, name: str = "full commit",
                with_c: bool = False) -> Case:
    """A full commit: every view re-rendered and its dispatch rebuilt.  With
    `with_c`, its peer is the C part alone: `pm_render_dispatch` of each
    view's root (and freeing what it made), called straight through cffi."""
    region = asp.root.subregions[0] if asp.root.subregions else asp.root

    def run() -> None:
        # Disable and re-enable: a change, so the outermost transaction commits
        # and rebuilds every FlatView, as QEMU would.
        with system.transaction():
            region.set_enabled(not region.enabled)
            region.set_enabled(not region.enabled)
    peers: Dict[str, Timed] = {}
    if with_c:
        from ._bindings import ffi, lib
        from .region import MAX_ALIAS_VISITS

        nodes = [view.root._node for view in system.flatviews() if view.root is not None]
        out = (ffi.new("pm_range **"), ffi.new("size_t *"), ffi.new("size_t *"),
               ffi.new("pm_dispatch **"))

        def c_part() -> None:
            for node in nodes:
                lib.pm_render_dispatch(node, MAX_ALIAS_VISITS, system.page_bits, ffi.NULL, *out)
                lib.pm_ranges_free(out[0][0])
                lib.pm_dispatch_free(out[3][0])
        peers["C render+dispatch of the same views"] = c_part
    return Case(name, 1, run, peers)


def small_commit_cases() -> List[Case]:
    """Issue 12 goal 7's small cases: one `set_alias_offset` commit on a
    7-range machine with no listener, and a region made and added."""
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    banks = MemoryRegion.ram("banks", 2 * PAGE)
    window = MemoryRegion.alias("window", banks, 0, PAGE)
    with system.transaction():
        root.add_subregion(0, MemoryRegion.rom("rom", 0x10000))
        for i, name in enumerate(("syscon", "uart", "timer", "dma")):
            root.add_subregion(0x10000000 + i * PAGE, MemoryRegion.io(name, PAGE, _DEVICE_OPS))
        root.add_subregion(0x20000000, window)
        root.add_subregion(0x80000000, MemoryRegion.ram("ram", 1 << 20))
    system.address_space(root, "cpu")
    calls = 100

    def switch() -> None:
        for _ in range(calls):
            window.set_alias_offset(PAGE)
            window.set_alias_offset(0)

    def regions() -> None:
        bus = MemoryRegion.container("bus", 1 << 20)
        for i in range(calls):
            bus.add_subregion(i * PAGE, MemoryRegion.io("dev", PAGE, _DEVICE_OPS))
    return [Case("small commit (set_alias_offset, 7 ranges)", 2 * calls, switch, keep=system),
            Case("region + add_subregion", calls, regions)]


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


def run_scaling(sizes: Tuple[int, ...], repeats: int, progress: TextIO = sys.stderr) -> List[Result]:
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
    """Time every case, its implementations interleaved (time_interleaved) in
    process CPU time: every thread of this process counts (pymem's RCU
    reclaimer among them), other processes on a shared machine do not.  A
    case without peers is timed alone, in wall time.  Writes "[i/n]
    operation" to `progress` before each."""
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


def check_goals(results: List[Result], sizes: Tuple[int, ...] = ()) -> List[Dict[str, Any]]:
    """The goals of GOALS (and the commit-scaling goal over `sizes`) as
    dicts: `goal` text, measured `ratio` or `ns`, and `met`."""
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
    """The table `pymem bench` prints: one row per result, then the goals."""
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
    without them), else the bundled `--machine`."""
    from . import machines
    from .qemu.mtree import load_mtree

    if args.mtree:
        if not args.hints:
            raise ValueError("--mtree needs --hints (the hints.json of the same dump)")
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
    progress).  Returns the exit status (0)."""
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
