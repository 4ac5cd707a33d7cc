"""Lookup: pymem's C dispatch beside pure-Python bisect and numpy.searchsorted,
and beside QEMU 7.2's own lookup algorithm.

Under pytest (`pytest benchmarks/bench_dispatch.py`), each test measures one
implementation on the same addresses; pytest-benchmark groups them so the
table shows the ratio.  Maps: the q35-booted machine's system view (QEMU 7.2
dump) and a synthetic 10,000-range map.

As a script (`python benchmarks/bench_dispatch.py [--quick] [--json]`), it
times pymem's lookups in C beside benchmarks/qemu_ref (QEMU's phys_page_find,
sub-page table and MRU on the same tables, and the compare-based floors),
single and batched, on random, sequential, hot-page and sub-page addresses,
for several machines' views, and the Python-level lookups beside builtins that
only convert their arguments; every implementation is checked to give pymem's
section on every address it times, and the implementations are timed
interleaved in one process.  It prints the rows and issue 12's goals, or
with --json a report carrying the ratios and the goals.
"""
from __future__ import annotations

import argparse
import bisect
import json
import random
import sys
from array import array
from pathlib import Path

import pytest

from pymem import Dispatch, DispatchRange, machines
from pymem.qemu.flat import parse_flat

N_SINGLE = 10_000
N_BATCH = 1_000_000


def q35_ranges():
    views = parse_flat(machines.read("q35", "flat.txt"))
    view = next(v for v in views if any('"memory"' in line for line in v.as_lines))
    return [(r.start, r.size) for r in view.ranges]


def synthetic_ranges(n=10_000, seed=7):
    """n ranges of mixed sizes (sub-page to MiBs) with gaps, like a busy machine."""
    rng = random.Random(seed)
    out, addr = [], 0
    for _ in range(n):
        size = rng.choice([rng.randrange(1, 0x1000), 0x1000 * rng.randrange(1, 64),
                           0x100000 * rng.randrange(1, 8)])
        out.append((addr, size))
        addr += size + rng.choice([0, rng.randrange(1, 0x10000)])
    return out


MAPS = {"q35": q35_ranges(), "10k": synthetic_ranges()}


def addresses(ranges, n, seed=1):
    rng = random.Random(seed)
    return [s + rng.randrange(size) for s, size in (rng.choice(ranges) for _ in range(n))]


def bisect_lookup(ranges):
    starts = [s for s, _ in ranges]
    lasts = [s + n - 1 for s, n in ranges]

    def lookup(addr):
        i = bisect.bisect_right(starts, addr) - 1
        return i if i >= 0 and addr <= lasts[i] else -1
    return lookup


def dispatch(ranges):
    return Dispatch.build([DispatchRange(s, n, 0, i) for i, (s, n) in enumerate(ranges)], 12)


@pytest.mark.parametrize("machine", MAPS)
@pytest.mark.parametrize("impl", ["pymem", "bisect"])
def test_single_lookup(benchmark, machine, impl):
    ranges = MAPS[machine]
    benchmark.group = f"single lookup x{N_SINGLE}: {machine}"
    lookup = dispatch(ranges).lookup if impl == "pymem" else bisect_lookup(ranges)
    addrs = addresses(ranges, N_SINGLE)

    def run():
        for a in addrs:
            lookup(a)
    benchmark(run)


def bisect_translate(ranges):
    starts = [s for s, _ in ranges]
    ends = [s + n for s, n in ranges]

    def translate(addr, length=4):
        i = bisect.bisect_right(starts, addr) - 1
        if i < 0 or addr >= ends[i]:
            return -1, addr, length
        return i, addr - starts[i], min(length, ends[i] - addr)
    return translate


@pytest.mark.parametrize("machine", MAPS)
@pytest.mark.parametrize("impl", ["pymem", "bisect"])
def test_translate(benchmark, machine, impl):
    ranges = MAPS[machine]
    benchmark.group = f"translate x{N_SINGLE}: {machine}"
    translate = dispatch(ranges).translate if impl == "pymem" else bisect_translate(ranges)
    addrs = addresses(ranges, N_SINGLE)

    def run():
        for a in addrs:
            translate(a, 4)
    benchmark(run)


@pytest.mark.parametrize("machine", MAPS)
@pytest.mark.parametrize("impl", ["pymem", "numpy.searchsorted"])
def test_batched_lookup(benchmark, machine, impl):
    ranges = MAPS[machine]
    benchmark.group = f"batched lookup x{N_BATCH}: {machine}"
    addrs = array("Q", addresses(ranges, N_BATCH))
    if impl == "pymem":
        d = dispatch(ranges)
        out = array("I", bytes(4 * N_BATCH))
        benchmark(d.lookup_many, addrs, out)
    else:
        np = pytest.importorskip("numpy")
        starts = np.array([s for s, _ in ranges], dtype=np.uint64)
        batch = np.frombuffer(addrs, dtype=np.uint64)
        benchmark(np.searchsorted, starts, batch, side="right")


# ------------------------------------------------------- beside QEMU (script)

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qemu"
FIXTURE_MACHINES = ("x86_64-pc-booted", "aarch64-virt-reset")


def qemu_machines(quick: bool) -> list:
    """(label, system) pairs: the bundled q35, some fixture dumps, a synthetic tree."""
    from pymem.bench import synthetic_system
    from pymem.qemu.mtree import load_mtree

    out = [("q35-booted", machines.load("q35"))]
    for name in () if quick else FIXTURE_MACHINES:
        case = FIXTURES / name
        if case.exists():
            out.append((name, load_mtree((case / "mtree-D.txt").read_text(),
                                         json.loads((case / "hints.json").read_text()))))
    out.append(("synthetic-1k" if quick else "synthetic-10k",
                synthetic_system(1_000 if quick else 10_000)))
    return out


def main(argv=None) -> int:
    from pymem import bench

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer addresses and repeats")
    p.add_argument("--json", action="store_true", help="print a JSON report instead")
    args = p.parse_args(argv)
    ref = bench.qemu_reference()
    if ref is None:
        print("benchmarks/qemu_ref could not be built", file=sys.stderr)
        return 1
    rng = random.Random(3)
    n, py_n, repeats = (1 << 14, 5_000, 5) if args.quick else (1 << 16, 20_000, 15)
    results, goals, ratios = [], [], {}
    for label, system in qemu_machines(args.quick):
        asp = bench.memory_space(system)
        spaces = [asp] + [a for a in system.address_spaces if a.name == "I/O"]
        machine_ratios = {}
        for space in spaces:
            print(f"{label}: {space.name!r}", file=sys.stderr, flush=True)
            r, q = bench.qemu_lookup_cases(ref, space, n, repeats, rng)
            results += [bench.Result(f"{label} {x.operation}", x.implementation, x.ns_per_op,
                                     x.spread, x.ratio) for x in r]
            machine_ratios.update(q)
        if label == "q35-booted":
            r, q = bench.python_lookup_cases(ref, asp, py_n, repeats, rng)
            results += r
            machine_ratios.update(q)
        ratios.update({f"{label} {k}": v for k, v in machine_ratios.items()})
        goals += [dict(g, goal=f"{label}: {g['goal']}")
                  for g in bench.qemu_goals(machine_ratios, [s.name for s in spaces])]
    if args.json:
        json.dump({"results": [r.as_dict() for r in results],
                   "ratios": {k: round(v, 3) for k, v in ratios.items()},
                   "goals": goals}, sys.stdout, indent=1)
        print()
    else:
        print(bench.format_table(results, goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
