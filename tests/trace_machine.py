"""A small machine with RAM, ROM and two devices, and random runs over it, for trace tests.

`build()` takes the knobs the round-trip tests turn (where the UART sits, the
priority of the timer that overlaps RAM); `run()` drives every access API
with a seeded random mix, so a recorded run is reproducible.
"""
from __future__ import annotations

import random
from typing import Dict, Tuple

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem
from pymem.address_space import AddressSpace

RAM_SIZE = 0x10000
ROM_BASE = 0x20000
ROM_DATA = bytes((i * 7 + 3) & 0xFF for i in range(0x1000))
UART_BASE = 0x30000
UART_SIZE = 0x100
TIMER_BASE = 0x8000      # inside RAM: the timer wins by priority
TIMER_SIZE = 0x100
FREE_BASE = 0x40000      # nothing mapped here in the default machine


class Device:
    """A register file whose reads also count: replaying it for real would
    not reproduce the recorded values, so a replay needs the stubs."""

    def __init__(self) -> None:
        self.regs: Dict[int, int] = {}
        self.reads = 0

    def read(self, offset: int, size: int) -> int:
        self.reads += 1
        return (self.regs.get(offset, 0) + self.reads) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, value: int, size: int) -> None:
        self.regs[offset] = value


def build(uart_base: int = UART_BASE, timer_priority: int = 1) -> Tuple[MemorySystem, AddressSpace]:
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", RAM_SIZE))
    root.add_subregion(ROM_BASE, MemoryRegion.rom("rom", data=ROM_DATA))
    uart, timer = Device(), Device()
    root.add_subregion(uart_base, MemoryRegion.io(
        "uart", UART_SIZE, MemoryRegionOps(uart.read, uart.write, valid_max=4, impl_max=1)))
    root.add_subregion(TIMER_BASE, MemoryRegion.io(
        "timer", TIMER_SIZE, MemoryRegionOps(timer.read, timer.write, endianness="big",
                                             valid_max=8, impl_max=4)),
        priority=timer_priority)
    return system, system.address_space(root, "memory")


def _address(rng: random.Random, size: int) -> int:
    where = rng.choice(("ram", "ram", "rom", "uart", "timer"))
    if where == "ram":
        return rng.randrange(0, RAM_SIZE - size)
    if where == "rom":
        return ROM_BASE + rng.randrange(0, len(ROM_DATA) - size)
    base = UART_BASE if where == "uart" else TIMER_BASE
    return base + rng.randrange(0, 0x100 - 8) // size * size


def run(asp: AddressSpace, seed: int, n: int = 300) -> None:
    """`n` random accesses through every access API; bus errors are part of the run."""
    rng = random.Random(seed)
    for _ in range(n):
        size = rng.choice((1, 2, 4, 8))
        addr = _address(rng, size)
        kind = rng.randrange(6)
        try:
            if kind == 0:
                asp.read(addr, rng.choice((1, 3, 8, 17)))
            elif kind == 1:
                asp.write(addr, bytes(rng.randrange(256) for _ in range(rng.choice((1, 5, 8)))))
            elif kind == 2:
                getattr(asp, {1: "ldub", 2: "lduw_le", 4: "ldl_be", 8: "ldq_le"}[size])(addr)
            elif kind == 3:
                name = {1: "stb", 2: "stw_be", 4: "stl_le", 8: "stq_be"}[size]
                getattr(asp, name)(addr, rng.randrange(1 << (8 * size)))
            elif kind == 4:
                asp.load(addr, size, rng.random() < 0.5)
            else:
                asp.store(addr, rng.randrange(1 << (8 * size)), size, rng.random() < 0.5)
        except Exception as exc:  # noqa: BLE001 - MemTxError is part of the run
            from pymem.memtx import MemTxError

            if not isinstance(exc, MemTxError):
                raise
