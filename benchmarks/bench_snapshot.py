"""Restoring a snapshot: incremental restore beside a full one and beside unicorn.

A fuzzer restores its machine after every input, and an input touches a few
pages of a large RAM, so what matters is that a restore costs what the guest
wrote, not what the machine holds.  A 64 MiB machine (4 KiB pages) whose guest
stored to 1% of its pages, chosen at random, is put back three ways, in the
same round, interleaved:

- pymem incremental: `system.restore(snap)` (the pages its dirty client saw);
- pymem full: `system.restore(snap, full=True)` (every page written back);
- unicorn: the same 64 MiB mapped in unicorn, the dirty pages found by
  comparing its memory with the saved image (`mem_read` of the whole RAM,
  numpy comparing page by page) and written back with `mem_write`: what a
  unicorn user does without dirty tracking (skipped if unicorn is missing).

Each ratio is the median over the rounds of the per-round ratio, so load on
the machine shifts numerator and denominator together.  Goals (issue 14):
incremental <= 0.05x full, <= 0.1x unicorn.  Run:
    python benchmarks/bench_snapshot.py [--rounds N]
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Dict, List

from pymem import MemoryRegion, MemorySystem

RAM_SIZE = 64 << 20
PAGE = 4096
PAGES = RAM_SIZE // PAGE
DIRTY_SHARE = 0.01


def dirty_pages(rng: random.Random) -> List[int]:
    return rng.sample(range(PAGES), int(PAGES * DIRTY_SHARE))


def run(rounds: int = 15, seed: int = 14) -> Dict[str, float]:
    rng = random.Random(seed)
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    ram = MemoryRegion.ram("ram", RAM_SIZE)
    root.add_subregion(0, ram)
    asp = system.address_space(root, "memory")
    image = bytes(rng.randbytes(RAM_SIZE))
    ram.buffer[:] = image
    snap = system.snapshot()
    stq = asp.stq_le

    uc = None
    try:
        import numpy
        from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.mem_map(0, RAM_SIZE)
        uc.mem_write(0, image)
        saved = numpy.frombuffer(image, numpy.uint8).reshape(PAGES, PAGE)
    except ImportError:
        pass

    times: Dict[str, List[float]] = {"incremental": [], "full": [], "unicorn": []}
    for _ in range(rounds):
        pages = dirty_pages(rng)
        for p in pages:
            stq(p * PAGE + 8, 0x1122334455667788)
        t = time.perf_counter()
        system.restore(snap)
        times["incremental"].append(time.perf_counter() - t)
        assert ram.buffer[pages[0] * PAGE + 8:pages[0] * PAGE + 16] == image[
            pages[0] * PAGE + 8:pages[0] * PAGE + 16]

        for p in pages:
            stq(p * PAGE + 8, 0x1122334455667788)
        t = time.perf_counter()
        system.restore(snap, full=True)
        times["full"].append(time.perf_counter() - t)

        if uc is not None:
            for p in pages:
                uc.mem_write(p * PAGE + 8, (0x1122334455667788).to_bytes(8, "little"))
            t = time.perf_counter()
            now = numpy.frombuffer(uc.mem_read(0, RAM_SIZE), numpy.uint8).reshape(PAGES, PAGE)
            for p in numpy.flatnonzero((now != saved).any(axis=1)):
                p = int(p)
                uc.mem_write(p * PAGE, image[p * PAGE:(p + 1) * PAGE])
            times["unicorn"].append(time.perf_counter() - t)

    out = {
        "incremental_ms": statistics.median(times["incremental"]) * 1e3,
        "full_ms": statistics.median(times["full"]) * 1e3,
        "incremental_vs_full": statistics.median(
            a / b for a, b in zip(times["incremental"], times["full"])),
    }
    if times["unicorn"]:
        out["unicorn_ms"] = statistics.median(times["unicorn"]) * 1e3
        out["incremental_vs_unicorn"] = statistics.median(
            a / b for a, b in zip(times["incremental"], times["unicorn"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    result = run(args.rounds)
    print(f"restore of a 64 MiB machine, {DIRTY_SHARE:.0%} of its pages dirty "
          f"(medians of {args.rounds} rounds)")
    print(f"  pymem incremental  {result['incremental_ms']:8.3f} ms")
    print(f"  pymem full         {result['full_ms']:8.3f} ms")
    if "unicorn_ms" in result:
        print(f"  unicorn compare+mem_write {result['unicorn_ms']:8.3f} ms")
    print(f"  incremental / full:    {result['incremental_vs_full']:.4f}x (goal <= 0.05x)")
    if "incremental_vs_unicorn" in result:
        print(f"  incremental / unicorn: {result['incremental_vs_unicorn']:.4f}x (goal <= 0.1x)")


if __name__ == "__main__":
    main()
