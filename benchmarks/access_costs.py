"""The cost table of docs/guides/access-memory.md: ns per call of every access path.

Regenerate the page with one command, from the repository root:

    python -m benchmarks.access_costs > docs/access-costs.md

Each row is one way to read or write guest memory, measured in this one run
beside the Python floor (struct.unpack_from / pack_into and slicing on a
bytearray), so the ratio column is the result and the absolute numbers only
describe the machine it ran on.  Every path is timed round-robin with the
others (the order rotated each repeat), in thread CPU time, 10,000 calls per
sample over the same pseudo-random addresses; the median of the samples is
reported.  `--quick` takes fewer samples (tests use it).
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import struct
import sys
import time
from typing import Callable, Dict, List, NamedTuple, Sequence

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem

RAM_BASE = 0x100000
RAM_SIZE = 1 << 20
MMIO_BASE = 0x1000
CALLS = 10_000


class Path(NamedTuple):
    code: str       # the call, exactly as timed: a user's line of code
    what: str       # what it does
    floor: str      # the peer row it is compared with ("" for the peers themselves)
    over: str = "pairs"   # the (addr, off) pairs it loops over


FLOOR_LOAD = "struct.unpack_from('<I', buf, off)"
FLOOR_STORE = "struct.pack_into('<I', buf, off, 7)"
FLOOR_PAGE = "bytes(buf[off:off + 4096])"
FLOOR_DEVICE = "ops.read(addr - 0x1000, 4)"

PATHS = [
    Path(FLOOR_LOAD, "4-byte load from a bytearray: the Python floor", ""),
    Path(FLOOR_STORE, "4-byte store into a bytearray: the Python floor", ""),
    Path(FLOOR_PAGE, "one page copied out of a bytearray", "", "pages"),
    Path("asp.ldl_le(addr)", "4-byte load from RAM (a builtin bound to C)", FLOOR_LOAD),
    Path("asp.stl_le(addr, 7)", "4-byte store to RAM (a builtin bound to C)", FLOOR_STORE),
    Path("asp.read(addr, 4)", "4 bytes from RAM, as bytes", FLOOR_LOAD),
    Path("asp.write(addr, data)", "4 bytes to RAM", FLOOR_STORE),
    Path("asp.rw(addr, out, False)", "4 bytes into the caller's buffer; MemTxResult back",
         FLOOR_LOAD),
    Path("asp.load(addr, 4)", "4-byte load, size (and attrs) as arguments", FLOOR_LOAD),
    Path("asp.store(addr, 7, 4)", "4-byte store, size (and attrs) as arguments", FLOOR_STORE),
    Path("asp.read(addr, 4096)", "one page from RAM, as bytes", FLOOR_PAGE, "pages"),
    Path("asp.write(addr, page)", "one page to RAM", FLOOR_PAGE, "pages"),
    Path("asp.unmap(asp.map(addr, 4096, True))",
         "one page of RAM mapped for writing (zero-copy) and given back", FLOOR_PAGE, "pages"),
    Path("asp.translate(addr)", "the region, offset and length under an address", FLOOR_LOAD),
    Path("dispatch.lookup(addr)", "the section index under an address (FlatView's dispatch)",
         FLOOR_LOAD),
    Path(FLOOR_DEVICE, "the device's Python callback, called directly", "", "mmio"),
    Path("asp.ldl_le(addr)  # MMIO", "4-byte load that reaches that callback", FLOOR_DEVICE,
         "mmio"),
]


def _runners(addrs: Sequence[int], offsets: Sequence[int]) -> Dict[str, Callable[[], None]]:
    """One function per path (and "loop", the empty loop), each running the
    path's line once per address, compiled as a plain `for` loop."""
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    root.add_subregion(RAM_BASE, MemoryRegion.ram("ram", RAM_SIZE))
    ops = MemoryRegionOps(lambda offset, size: offset, lambda offset, value, size: None)
    root.add_subregion(MMIO_BASE, MemoryRegion.io("dev", 0x100, ops))
    asp = system.address_space(root, "memory")
    namespace = {
        "struct": struct, "asp": asp, "ops": ops, "dispatch": asp.flatview.dispatch,
        "buf": bytearray(RAM_SIZE), "data": b"\x01\x02\x03\x04", "page": bytes(4096),
        "out": bytearray(4),
        "pairs": list(zip(addrs, offsets)),
        "pages": [(RAM_BASE + (o & ~0xfff), o & ~0xfff) for o in offsets],
        "mmio": [(MMIO_BASE + (a & 0xfc), 0) for a in addrs],
    }
    runners = {}
    for key, code, over in [("loop", "pass", "pairs")] + [(p.code, p.code, p.over)
                                                           for p in PATHS]:
        source = f"def run():\n    for addr, off in {over}:\n        {code.split('  #')[0]}\n"
        exec(compile(source, f"<access_costs {key}>", "exec"), namespace)
        runners[key] = namespace.pop("run")
    return runners


def measure(quick: bool = False, seed: int = 1, calls: int = CALLS) -> Dict[str, float]:
    """ns per call of every path, net of the empty loop (the median of the
    samples of each, minus the median of the empty loop's), by path code."""
    rng = random.Random(seed)
    offsets = [rng.randrange(0, RAM_SIZE - 4096) & ~3 for _ in range(calls)]
    addrs = [RAM_BASE + o for o in offsets]
    runners = _runners(addrs, offsets)
    names = list(runners)
    repeats = 3 if quick else 15
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for run in runners.values():   # warm up: caches, builtins bound on first use
        run()
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            t0 = time.thread_time_ns()
            runners[name]()
            samples[name].append((time.thread_time_ns() - t0) / calls)
    loop = statistics.median(samples.pop("loop"))
    return {name: max(statistics.median(v) - loop, 0.1) for name, v in samples.items()}


def table(ns: Dict[str, float]) -> str:
    """The Markdown page: one row per path, its ns per call and its ratio to
    the peer it stands beside."""
    lines = [
        "<!-- Generated by `python -m benchmarks.access_costs > docs/access-costs.md`;"
        " do not edit by hand. -->",
        "",
        "| path | what it does | ns per call | beside | ratio |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    for p in PATHS:
        ratio = f"{ns[p.code] / ns[p.floor]:.2f}x" if p.floor else ""
        beside = f"`{p.floor}`" if p.floor else "(peer)"
        lines.append(f"| `{p.code}` | {p.what} | {ns[p.code]:.1f} | {beside} | {ratio} |")
    lines += [
        "",
        f"Measured on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}: each line run {CALLS:,} times in a plain `for` loop over "
        "pseudo-random RAM addresses, the loop's own cost subtracted; the median of the "
        "samples, thread CPU time, the paths taking turns in one loop. The ratios are the result: absolute numbers depend "
        "on the machine.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.access_costs",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args(list(argv))
    sys.stdout.write(table(measure(quick=args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
