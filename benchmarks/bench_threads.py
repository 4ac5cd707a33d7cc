"""Batched lookups from one thread beside two: do C readers scale?

`pm_as_lookup_many` runs with the GIL released inside one RCU read-side
section, so two threads should get nearly twice the lookups of one; what could
spoil it is shared state written by readers (the registry, a dispatch's MRU
section).  Each thread looks up its own buffer of addresses on the synthetic
10,000-range map through one address space.  The goal: 2 threads >= 1.7x one.

    python -m benchmarks.bench_threads     # prints lookups/s and the ratio
    pytest benchmarks/bench_threads.py     # the same under pytest-benchmark
"""
from __future__ import annotations

import threading
import time
from array import array

from pymem import Dispatch, DispatchRange
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


def main() -> None:
    space = Space()
    one = throughput(space, 1)
    two = throughput(space, 2)
    space.close()
    print(f"1 thread : {one / 1e6:8.1f} M lookups/s")
    print(f"2 threads: {two / 1e6:8.1f} M lookups/s  ({two / one:.2f}x, goal 1.70x)")


if __name__ == "__main__":
    main()
