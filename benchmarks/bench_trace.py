"""Recording overhead: the same run unrecorded, recorded MMIO-only, and recorded with RAM.

A trace is only useful if recording it does not change how a run is done, so
the cost must stay small where runs spend their time.  Two runs of 10,000
accesses over a machine with RAM and a device whose callbacks are in Python:
all MMIO (the recorder's worst case: every access writes a line), and a CPU-
like mix of 90% RAM loads and stores, where MMIO-only recording costs nothing
on the RAM accesses (they stay one C call) and RAM recording shows its price.
Each recorded round opens, writes and closes a real trace file.
"""
from __future__ import annotations

import random

import pytest

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem
from pymem.trace import record as record_trace

N = 10_000
RAM_SIZE = 1 << 20
DEV_BASE = 0x1000_0000


def space():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", RAM_SIZE))
    regs = {}
    ops = MemoryRegionOps(lambda offset, size: regs.get(offset, 0),
                          lambda offset, value, size: regs.__setitem__(offset, value))
    root.add_subregion(DEV_BASE, MemoryRegion.io("dev", 0x1000, ops))
    return system.address_space(root, "memory")


def workload(ram_share: float, seed: int = 11):
    rng = random.Random(seed)
    ops = []
    for _ in range(N):
        is_ram = rng.random() < ram_share
        addr = (rng.randrange(0, RAM_SIZE - 4) & ~3 if is_ram
                else DEV_BASE + rng.randrange(0, 0x400) * 4)
        ops.append((addr, rng.random() < 0.5, rng.randrange(1 << 32)))
    return ops


def make_run(asp, ops):
    ldl, stl = asp.ldl_le, asp.stl_le

    def run():
        for addr, is_write, value in ops:
            if is_write:
                stl(addr, value)
            else:
                ldl(addr)
    return run


MODES = ["unrecorded", "recorded, mmio_only", "recorded, with RAM"]


def bench(benchmark, tmp_path, ram_share, mode):
    asp = space()
    ops = workload(ram_share)
    path = tmp_path / "run.jsonl"

    def timed():
        if mode == "unrecorded":
            make_run(asp, ops)()
        else:
            with record_trace(asp, path, mmio_only=mode == "recorded, mmio_only"):
                # Bound inside: with RAM recording the accessors are wrappers.
                make_run(asp, ops)()

    benchmark.pedantic(timed, rounds=15, warmup_rounds=1)


@pytest.mark.parametrize("mode", MODES[:2])
def test_mmio_run(benchmark, tmp_path, mode):
    benchmark.group = f"all-MMIO run x{N}"
    bench(benchmark, tmp_path, 0.0, mode)


@pytest.mark.parametrize("mode", MODES)
def test_mixed_run(benchmark, tmp_path, mode):
    benchmark.group = f"90% RAM / 10% MMIO run x{N}"
    bench(benchmark, tmp_path, 0.9, mode)
