"""Lookup: pymem's C dispatch beside pure-Python bisect and numpy.searchsorted.

Each test measures one implementation on the same addresses; pytest-benchmark
groups them so the table shows the ratio.  Maps: the q35-booted machine's
system view (QEMU 7.2 dump) and a synthetic 10,000-range map.
"""
from __future__ import annotations

import bisect
import random
from array import array

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
