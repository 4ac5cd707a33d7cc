"""Batched lookups from one thread beside two: do C readers scale?

`pm_as_lookup_many` runs with the GIL released inside one RCU read-side
section, so two threads should get nearly twice the lookups of one; what could
spoil it is shared state written by readers (the registry, a dispatch's MRU
section).  Each thread looks up its own buffer of addresses on the synthetic
10,000-range map through one address space.  The goal: 2 threads >= 1.7x one.

    python -m benchmarks.bench_threads     # prints lookups/s and the ratio
    pytest benchmarks/bench_threads.py     # the same under pytest-benchmark

The second half times a commit while other threads run Python: one
`set_enabled` on a 3-range machine, alone and while one or two threads loop
on `ldl_le` (issue 12, goal 8: <= 2x alone).  Each GIL release inside a
commit hands the GIL to a reader, and getting it back waits out the switch
interval (`sys.getswitchinterval()`, 5 ms), so a commit that releases it even
once takes milliseconds instead of microseconds.
"""
from __future__ import annotations

import statistics
import threading
import time
from array import array
from typing import List, Tuple

from pymem import Dispatch, DispatchRange, MemoryRegion, MemoryRegionOps, MemorySystem
from pymem._native import ffi, lib

from .bench_dispatch import addresses, synthetic_ranges

BATCH = 1 << 16       # addresses per C call
CALLS = 64            # calls per thread per run: 4M lookups


class Space:
    """One address space with the synthetic map published in it."""

    def __init__(self) -> None:
        ranges = synthetic_ranges()
        self.dispatch = Dispatch.build(
            [DispatchRange(s, n, 0, i) for i, (s, n) in enumerate(ranges)], 12)
        out = ffi.new("pm_as **")
        lib.pm_as_new(ffi.NULL, out)
        self.handle = ffi.gc(out[0], lib.pm_as_free)
        lib.pm_as_publish(self.handle, self.dispatch.handle)
        self.addrs = [array("Q", addresses(ranges, BATCH, seed=k)) for k in range(2)]

    def close(self) -> None:
        lib.pm_as_publish(self.handle, ffi.NULL)  # no reader left: free at once
        self.dispatch.close()


def run(space: Space, threads: int) -> float:
    """Seconds for `threads` threads to do CALLS batched lookups each."""
    start = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        src = ffi.from_buffer("uint64_t[]", space.addrs[k])
        dst = ffi.new("uint32_t[]", BATCH)
        start.wait()
        for _ in range(CALLS):
            lib.pm_as_lookup_many(space.handle, src, dst, BATCH)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    return time.perf_counter() - t0


def throughput(space: Space, threads: int, repeat: int = 7) -> float:
    """Lookups per second, best of `repeat` runs."""
    return threads * CALLS * BATCH / min(run(space, threads) for _ in range(repeat))


def test_lookup_many_one_thread(benchmark):
    space = Space()
    benchmark.group = "lookup_many threads"
    benchmark.pedantic(run, args=(space, 1), rounds=7)
    space.close()


def test_lookup_many_two_threads(benchmark):
    space = Space()
    benchmark.group = "lookup_many threads"
    benchmark.pedantic(run, args=(space, 2), rounds=7)
    space.close()


def small_machine() -> Tuple[MemorySystem, MemoryRegion, "object"]:
    """RAM, a device and more RAM: 3 ranges.  Returns the system, the region
    a commit toggles, and the address space."""
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    toggled = MemoryRegion.ram("high", 0x1000)
    with system.transaction():
        root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
        root.add_subregion(0x10000, MemoryRegion.io("device", 0x1000, MemoryRegionOps(
            lambda offset, size: 0, lambda offset, value, size: None)))
        root.add_subregion(0x20000, toggled)
    return system, toggled, system.address_space(root, "cpu")


def commit_times(readers: int, commits: int = 200) -> List[float]:
    """Seconds per commit (one `set_enabled` each, alternating) while
    `readers` threads loop on `ldl_le` of the same address space."""
    system, toggled, asp = small_machine()
    stop = threading.Event()
    ready = threading.Barrier(readers + 1)

    def reader() -> None:
        load = asp.ldl_le
        ready.wait()
        while not stop.is_set():
            for _ in range(100):
                load(0x100)

    workers = [threading.Thread(target=reader) for _ in range(readers)]
    for w in workers:
        w.start()
    ready.wait()
    times = []
    try:
        for i in range(commits):
            t0 = time.perf_counter()
            toggled.set_enabled(i % 2 == 1)
            times.append(time.perf_counter() - t0)
    finally:
        stop.set()
        for w in workers:
            w.join()
    return times


def contended_ratios(rounds: int = 3) -> dict:
    """Median commit time alone and with 1 and 2 reader threads (rounds
    interleaved, best median of each), and the ratios to alone."""
    best = {0: float("inf"), 1: float("inf"), 2: float("inf")}
    p99 = {0: 0.0, 1: 0.0, 2: 0.0}
    for _ in range(rounds):
        for readers in best:
            times = sorted(commit_times(readers))
            if statistics.median(times) < best[readers]:
                best[readers] = statistics.median(times)
                p99[readers] = times[int(len(times) * 0.99) - 1]
    return {"alone": best[0], "one": best[1], "two": best[2], "p99": p99}


def test_commit_alone(benchmark):
    benchmark.group = "commit beside ldl_le threads"
    benchmark.pedantic(commit_times, args=(0, 50), rounds=3)


def test_commit_beside_one_reader(benchmark):
    benchmark.group = "commit beside ldl_le threads"
    benchmark.pedantic(commit_times, args=(1, 50), rounds=3)


def test_commit_beside_two_readers(benchmark):
    benchmark.group = "commit beside ldl_le threads"
    benchmark.pedantic(commit_times, args=(2, 50), rounds=3)


def main() -> None:
    space = Space()
    one = throughput(space, 1)
    two = throughput(space, 2)
    space.close()
    print(f"1 thread : {one / 1e6:8.1f} M lookups/s")
    print(f"2 threads: {two / 1e6:8.1f} M lookups/s  ({two / one:.2f}x, goal 1.70x)")
    r = contended_ratios()
    alone = r["alone"]
    print(f"commit alone            : {alone * 1e6:8.1f} us median "
          f"(p99 {r['p99'][0] * 1e6:.1f})")
    for key, n in (("one", 1), ("two", 2)):
        print(f"commit beside {n} reader(s): {r[key] * 1e6:8.1f} us median "
              f"(p99 {r['p99'][n] * 1e6:.1f})  ({r[key] / alone:.2f}x, goal <= 2x)")


if __name__ == "__main__":
    main()
