"""Commit: re-rendering every FlatView and rebuilding its dispatch.

A commit is what every topology change costs (QEMU re-renders every view at
each outermost transaction commit).  Measured on the q35-booted machine
(QEMU 7.2 dump: 8 address spaces, 4 views) and on synthetic trees of 100 to
100,000 regions shaped like a busy machine: nested buses of devices, RAM
aliases, overlaps at equal and higher priority, disabled regions.  The
synthetic sizes show the growth rate (render is a sort and a heap sweep:
O(n log n)).  Retired views are dropped between rounds: nothing reads them.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem
from pymem.qemu import load_mtree

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qemu" / "x86_64-q35-booted"
OPS = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)


def q35_system() -> MemorySystem:
    return load_mtree((FIXTURE / "mtree-D.txt").read_text(), FIXTURE / "hints.json")


def synthetic_system(n: int, seed: int = 5) -> MemorySystem:
    """About n regions: buses of 32 devices each, some RAM reached through
    aliases, some devices overlapping their neighbours at a higher priority."""
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
            if kind < 0.6:
                dev = MemoryRegion.io(f"dev{count}", rng.choice([0x10, 0x100, 0x1000]), OPS)
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


def commit(system: MemorySystem) -> None:
    system._update_pending = True
    with system.transaction():
        pass


def test_commit_q35_booted(benchmark):
    system = q35_system()
    benchmark.group = "commit"
    benchmark(commit, system)
    assert len(system.flatviews()) == 4


@pytest.mark.parametrize("n", [100, 1_000, 10_000, 100_000])
def test_commit_synthetic(benchmark, n):
    system = synthetic_system(n)
    benchmark.group = "commit"
    rounds = 3 if n >= 100_000 else None
    if rounds:
        benchmark.pedantic(commit, args=(system,), rounds=rounds, iterations=1)
    else:
        benchmark(commit, system)
    assert system.address_spaces[0].flatview.ranges
