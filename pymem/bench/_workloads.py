"""What `pymem bench` measures on: addresses drawn from a machine's layout, the pure-Python peer, synthetic machines.

Part of pymem.bench (see its docstring); a pure move out of the old bench.py.
"""
from __future__ import annotations

import bisect
import random
from typing import Any, List, Optional, Tuple

from ..address_space import AddressSpace, MemorySystem
from ..errors import InvalidArgumentError
from ..flatview import FlatRange, FlatView
from ..region import MemoryRegion, MemoryRegionOps
from ._core import PAGE

class BisectMap:
    """The pure-Python peer: sorted range starts and bisect.

    Raises nothing.
    """

    def __init__(self, ranges: List[FlatRange]) -> None:
        self.starts = [r.addr for r in ranges]
        self.ends = [r.end for r in ranges]
        self.offsets = [r.offset_in_region for r in ranges]

    def lookup(self, addr: int) -> int:
        """Index of the range holding `addr`, or -1 for none.

        Raises nothing (an address below the first range answers -1).
        """
        i = bisect.bisect_right(self.starts, addr) - 1
        return i if i >= 0 and addr < self.ends[i] else -1

    def translate(self, addr: int, length: int = 4) -> Tuple[int, int, int]:
        """(range index or -1, offset in its region, bytes left in the range,
        at most `length`), as Dispatch.translate answers.

        Raises nothing.
        """
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0 or addr >= self.ends[i]:
            return -1, addr, length
        return i, self.offsets[i] + addr - self.starts[i], min(length, self.ends[i] - addr)

def sample_addresses(ranges: List[FlatRange], n: int, pattern: str,
                     rng: random.Random) -> List[int]:
    """Addresses inside the ranges: random, sequential (4-byte steps through the
    largest range), or all in one hot page.

    `n` addresses; any `pattern` but random and sequential draws from one hot page.

    Raises nothing.
    """
    if pattern == "random":
        out = []
        for _ in range(n):
            r = rng.choice(ranges)
            out.append(r.addr + rng.randrange(r.size))
        return out
    big = max(ranges, key=lambda r: r.size)
    if pattern == "sequential":
        return [big.addr + (4 * i) % big.size for i in range(n)]
    page = big.addr + (rng.randrange(big.size) & ~(PAGE - 1))
    span = min(PAGE, big.end - page)
    return [page + rng.randrange(span) for _ in range(n)]

def _view(asp: AddressSpace) -> FlatView:
    view = asp.flatview
    assert view is not None   # set by MemorySystem.address_space
    return view

def memory_space(system: MemorySystem) -> AddressSpace:
    """The CPU's view: AS "memory" if there is one, else the most populated.

    Raises:
        ValueError: the system has no address space.
    """
    spaces = system.address_spaces
    for asp in spaces:
        if asp.name == "memory":
            return asp
    return max(spaces, key=lambda a: len(_view(a).ranges))

def _ram_range(asp: AddressSpace) -> FlatRange:
    writable = [r for r in _view(asp).ranges
                if r.region.ram_backed and not r.readonly and r.region.kind == "ram"]
    if not writable:
        raise InvalidArgumentError(f"address space {asp.name!r} has no writable RAM to benchmark")
    return max(writable, key=lambda r: r.size)

def _mmio_range(asp: AddressSpace) -> Optional[FlatRange]:
    io = [r for r in _view(asp).ranges if r.region.kind == "io" and r.size >= 4]
    return max(io, key=lambda r: r.size) if io else None

def subpage_addresses(dispatch: Any, ranges: List[FlatRange], n: int,
                      rng: random.Random) -> List[int]:
    """Addresses inside the view's sub-pages: a random piece of a random
    sub-page, then a random byte of it (the layout's rule, as for "random").

    Raises nothing.
    """
    pieces = []
    for s in dispatch.sections():
        if s.is_subpage:
            pieces += [(s.start + first, last - first + 1)
                       for first, last, sec in dispatch.subpage(s.index) if sec]
    if not pieces:
        return []
    return [start + rng.randrange(size) for start, size in
            (rng.choice(pieces) for _ in range(n))]

def _mix(dispatch: Any, ranges: List[FlatRange], mix: str, n: int,
         rng: random.Random) -> List[int]:
    if mix == "sub-page":
        return subpage_addresses(dispatch, ranges, n, rng)
    return sample_addresses(ranges, n, mix.split()[0], rng)

_DEVICE_OPS = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)

def synthetic_system(n: int, seed: int = 5) -> MemorySystem:
    """About n regions shaped like a busy machine: buses of 32 devices each
    (MMIO, RAM buffers, windows aliasing a 1 GiB RAM), some overlapping their
    neighbours at a higher priority, some disabled; two address spaces on it.

    `n` is the number of regions (>= 1).

    Raises nothing.
    """
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
            dev: MemoryRegion
            if kind < 0.6:
                dev = MemoryRegion.io(f"dev{count}", rng.choice([0x10, 0x100, 0x1000]),
                                      _DEVICE_OPS)
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
