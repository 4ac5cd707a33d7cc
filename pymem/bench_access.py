"""The access-path rows of `pymem bench`: taps, MMIO to a Python device and
QEMU's other access paths, each beside the path it must keep up with.

Every row pairs two ways of doing the same access in one address space,
timed interleaved (round-robin, thread CPU time, pymem.bench.time_interleaved)
so the ratio holds within one run.  The RAM rows use a 64 KiB window, which
stays in cache: a per-call overhead shows there undiluted by cache misses.
Goals (#12 goals 5 and 6, #14's taps):
- RAM builtins with no tap installed <= 1.02x a builtin bound without taps;
- an MMIO load with a do-nothing tap <= 1.5x the same load untapped;
- an `ldl_le` reaching a Python device <= 3x calling its callback directly;
- `rw`, `load`/`store` with attrs and `map`/`unmap` on RAM <= 1.2x
  `read`/`write` and the fixed-width builtins; map+unmap of 4 KiB <= 1 us.

Thread safety:
    As `pymem bench`: the main thread of a process of its own, nothing else
    touching the machine.  Times are ns per operation.
"""
from __future__ import annotations

import random
import sys
from functools import partial
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from .address_space import AddressSpace
from .bench import PAGE, Result, _mmio_range, _ram_range, _row, time_interleaved
from .dispatch import bind_fast
from .memtx import MemTxAttrs

HOT_WINDOW = 64 << 10

# (operation, peer, limit, goal text): checked on the rows below.
ACCESS_GOALS = [
    ("ldl_le RAM, no tap installed", "a builtin without the tap check", 1.02,
     "RAM builtin with no tap <= 1.02x untapped (#14)"),
    ("ldl_le MMIO, a do-nothing tap", "ldl_le MMIO, no tap", 1.5,
     "MMIO load with a do-nothing tap <= 1.5x untapped (#14)"),
    ("ldl_le MMIO to a Python device", "the device's callback, called directly", 3.0,
     "ldl_le to a Python device <= 3x its callback (#12 goal 5)"),
    ("rw read 4 bytes RAM", "read", 1.2, "rw read <= 1.2x read (#12 goal 6)"),
    ("rw write 4 bytes RAM", "write", 1.2, "rw write <= 1.2x write (#12 goal 6)"),
    ("load 4 bytes RAM, attrs", "ldl_le", 1.2, "load with attrs <= 1.2x ldl_le (#12 goal 6)"),
    ("store 4 bytes RAM, attrs", "stl_le", 1.2,
     "store with attrs <= 1.2x stl_le (#12 goal 6)"),
    ("map+unmap 4 KiB RAM", "write 4 KiB", 1.2, "map+unmap <= 1.2x write (#12 goal 6)"),
]
MAP_GOAL_NS = 1000.0


def _loop1(fn: Callable[[int], Any], items: List[int]) -> Callable[[], None]:
    def run() -> None:
        for a in items:
            fn(a)
    return run


def _loop2(fn: Callable[[int, Any], Any], items: List[int], arg: Any) -> Callable[[], None]:
    def run() -> None:
        for a in items:
            fn(a, arg)
    return run


def _nothing(event: Any) -> None:
    """The do-nothing tap."""


def tap_rows(asp: AddressSpace, rng: random.Random, n: int,
             repeats: int) -> List[Result]:
    """#14: a RAM builtin with no tap beside one bound without the tap check,
    the same with an mmio_only tap installed, and an MMIO load with a
    do-nothing tap beside the same load untapped.

    `n` is how many accesses a row makes, `repeats` how many times it is timed.

    Raises:
        InvalidArgumentError: the space has no writable RAM to measure.
    """
    ram = _ram_range(asp)
    addrs = [ram.addr + (rng.randrange(min(HOT_WINDOW, ram.size) - 4) & ~3) for _ in range(n)]
    untapped = bind_fast("load", "pm_as_ldl_le", asp._cas, 4,
                         partial(asp._load_or_raise, 4, False), asp._pin, device=True)
    ld = asp.ldl_le
    results = _row("ldl_le RAM, no tap installed", time_interleaved(
        {"pymem": _loop1(ld, addrs), "a builtin without the tap check": _loop1(untapped, addrs)},
        n, repeats), "pymem")

    def with_tap(run: Callable[[], None], **kw: Any) -> Callable[[], None]:
        def tapped() -> None:
            with asp.add_tap(_nothing, **kw):
                run()
        return tapped
    results += _row("ldl_le RAM, an mmio_only tap installed", time_interleaved(
        {"pymem": with_tap(_loop1(ld, addrs), mmio_only=True),
         "a builtin without the tap check": _loop1(untapped, addrs)}, n, repeats), "pymem")
    mmio = _mmio_range(asp)
    if mmio is not None:
        maddrs = [mmio.addr + (rng.randrange(mmio.size - 3) & ~3) for _ in range(n // 4)]
        plain = _loop1(ld, maddrs)
        results += _row("ldl_le MMIO, a do-nothing tap", time_interleaved(
            {"pymem": with_tap(plain), "ldl_le MMIO, no tap": plain}, len(maddrs), repeats),
            "pymem")
    return results


def device_rows(asp: AddressSpace, rng: random.Random, n: int,
                repeats: int) -> List[Result]:
    """#12 goal 5: ldl_le on a device region whose read callback is plain
    Python, beside calling that callback directly with the same offsets.

    Raises nothing (no rows for a space without MMIO).
    """
    mmio = _mmio_range(asp)
    if mmio is None:
        return []
    ops = mmio.region.ops
    assert ops is not None
    read: Any = ops.read   # plain callbacks (MemoryRegionOps.direct); the machines have no others
    addrs = [mmio.addr + (rng.randrange(mmio.size - 3) & ~3) for _ in range(n // 4)]
    offsets = [a - mmio.addr + mmio.offset_in_region for a in addrs]

    def direct() -> None:
        for o in offsets:
            read(o, 4)
    # The part of the gap that is CPython's: the same callback called from C
    # (functools.partial is a C callable that adds next to nothing).  A Python
    # call from C re-enters the interpreter; from the loop it does not.
    from_c = partial(read)

    def via_c() -> None:
        for o in offsets:
            from_c(o, 4)
    return _row("ldl_le MMIO to a Python device", time_interleaved(
        {"pymem": _loop1(asp.ldl_le, addrs), "the device's callback, called directly": direct,
         "the callback called from C (functools.partial)": via_c},
        len(addrs), repeats), "pymem")


def qemu_path_rows(asp: AddressSpace, rng: random.Random, n: int,
                   repeats: int) -> List[Result]:
    """#12 goal 6: QEMU's rw, load/store with attributes and map/unmap on RAM,
    each beside the builtin that does the same access.

    Raises:
        InvalidArgumentError: the space has no writable RAM to measure.
    """
    ram = _ram_range(asp)
    window = min(HOT_WINDOW, ram.size)
    addrs = [ram.addr + (rng.randrange(window - 4) & ~3) for _ in range(n)]
    pages = [ram.addr + rng.randrange(window // PAGE) * PAGE for _ in range(max(1, n // 10))]
    attrs = MemTxAttrs(requester_id=1)
    buf, data, page = bytearray(4), b"\x01\x02\x03\x04", bytes(PAGE)
    rw, load, store, mapf, unmap = asp.rw, asp.load, asp.store, asp.map, asp.unmap
    read, write = asp.read, asp.write

    def rw_read() -> None:
        for a in addrs:
            rw(a, buf, False)

    def rw_write() -> None:
        for a in addrs:
            rw(a, data, True)

    def load_attrs() -> None:
        for a in addrs:
            load(a, 4, False, attrs)

    def store_attrs() -> None:
        for a in addrs:
            store(a, 0x12345678, 4, False, attrs)

    def map_unmap() -> None:
        for a in pages:
            unmap(mapf(a, PAGE, True))

    rows: List[Tuple[str, Dict[str, Callable[[], None]], int]] = [
        ("rw read 4 bytes RAM", {"pymem": rw_read, "read": _loop2(read, addrs, 4)}, n),
        ("rw write 4 bytes RAM", {"pymem": rw_write, "write": _loop2(write, addrs, data)}, n),
        ("load 4 bytes RAM, attrs", {"pymem": load_attrs, "ldl_le": _loop1(asp.ldl_le, addrs)},
         n),
        ("store 4 bytes RAM, attrs",
         {"pymem": store_attrs, "stl_le": _loop2(asp.stl_le, addrs, 0x12345678)}, n),
        ("map+unmap 4 KiB RAM", {"pymem": map_unmap, "write 4 KiB": _loop2(write, pages, page)},
         len(pages)),
    ]
    results: List[Result] = []
    for operation, runners, ops in rows:
        results += _row(operation, time_interleaved(runners, ops, repeats), "pymem")
    return results


def run_access_rows(asp: AddressSpace, quick: bool,
                    progress: TextIO = sys.stderr) -> Tuple[List[Result], List[Dict[str, Any]]]:
    """Every access-path row and its goals.

    Raises:
        InvalidArgumentError: the space has no writable RAM to measure.
    """
    rng = random.Random(7)
    n, repeats = (2_000, 7) if quick else (20_000, 15)
    results: List[Result] = []
    for label, rows in (("taps", tap_rows), ("MMIO to a Python device", device_rows),
                        ("rw, load/store with attrs, map/unmap", qemu_path_rows)):
        print(f"[access] {label}", file=progress, flush=True)
        results += rows(asp, rng, n, repeats)
    return results, access_goals(results)


def access_goals(results: List[Result]) -> List[Dict[str, Any]]:
    """The goals of ACCESS_GOALS met or missed by `results`, as pymem bench
    lists goals (ratio or ns, met).

    Raises nothing.
    """
    by_key = {(r.operation, r.implementation): r for r in results}
    goals = []
    for operation, peer, limit, text in ACCESS_GOALS:
        r: Optional[Result] = by_key.get((operation, peer))
        if r is not None and r.ratio is not None:
            goals.append({"goal": text, "ratio": round(r.ratio, 3), "met": r.ratio <= limit})
    mapped = by_key.get(("map+unmap 4 KiB RAM", "pymem"))
    if mapped is not None:
        goals.append({"goal": "map+unmap of 4 KiB <= 1 us (#12 goal 6)",
                      "ns": round(mapped.ns_per_op), "met": mapped.ns_per_op <= MAP_GOAL_NS})
    return goals
