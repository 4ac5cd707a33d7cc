"""The `api` fuzz target: bytes read as a program of public pymem API calls.

A program is a sequence of operations, one opcode byte each followed by its
operands, over a small world: a pool of regions (every kind), a pool of
address spaces of one MemorySystem, listeners that record what they are told,
and live map() views.  Operands are drawn from the bytes, integers from a mix
of small values, page multiples, values near 2^64, past it and negative, so
edits and accesses hit every edge the API promises to check.  Operations are
what a user of the API does: build regions, add/delete/move/resize them,
switch their flags, nest transactions, register and unregister listeners,
read/write/load/store (the bound builtins too), map/unmap, translate,
dirty-log calls, destroy address spaces, drop regions, print the tree.

Devices answer from their offset; one kind of device raises `DeviceFault`,
which pymem documents to pass through to the caller of the access.  Some
listeners raise `DeviceFault` too (pymem tells the others, then raises it to
whoever made the change), and some try to edit the map while they are told
of a change (pymem refuses with EditDuringCommitError, which the listener
lets escape).  Every other exception that is not a PymemError is a finding.
"""
from __future__ import annotations

import copy
import gc
from typing import Any, Callable, List, Optional

from pymem import (DIRTY_MEMORY_CODE, DIRTY_MEMORY_MIGRATION, DIRTY_MEMORY_VGA, IOMMUTLBEntry,
                   MemoryListener, MemoryRegion, MemoryRegionOps, MemorySystem, MemTxAttrs)
from pymem.errors import PymemError
from pymem.region.kinds import RAM, ROM, ROM_DEVICE

MAX_OPS = 96
MAX_REGIONS = 24
SIZES = (1, 2, 4, 8)
CLIENTS = (DIRTY_MEMORY_VGA, DIRTY_MEMORY_CODE, DIRTY_MEMORY_MIGRATION)


def _only_memory(asp: Any, addr: int, size: int) -> bool:
    """Whether all of [addr, addr + size) in `asp` is RAM, ROM, a ROM device
    in ROMD mode or unassigned: what pymem reads in C a stretch at a time."""
    try:
        ranges = asp.flatview.ranges
    except (PymemError, AttributeError):     # a destroyed space: let read() say so
        return False
    end = addr + size
    for fr in ranges:
        if fr.addr < end and addr < fr.addr + fr.size:
            kind = fr.region.kind
            if not (kind in (RAM, ROM) or (kind == ROM_DEVICE and fr.romd)):
                return False
    return True


def _big_read_size(asp: Any, addr: int, size: int) -> int:
    """A read size in [64 KiB, 2^63) made one the fuzzer can afford.

    Sizes past 2^63 stay (they must be refused before anything is read), and
    so do reads of plain memory and unassigned space up to 64 MiB: pymem
    answers those in C a stretch at a time (a 64 MiB read of unassigned space
    took ~0.02 CPU s and 25-48 Python calls; issue #17, F5).  Bigger ones are
    cut to under 64 KiB to 64 MiB (log-uniform): the buffer is allocated and
    zeroed first, and gigabytes would cross the fuzzer's RSS limit, not find
    a bug.  A read that touches a device (I/O, a ROM device out of ROMD mode,
    a RAM device, an IOMMU) is cut to under 64 KiB: a device answers each
    piece through its Python callback, as QEMU calls a device per access, so
    a GiB through one is minutes by nature, not a hang.
    """
    if not _only_memory(asp, addr, size):
        return size % 0x10000
    if size < 64 << 20:
        return size
    return size % (1 << (16 + size % 11))


class DeviceFault(Exception):
    """What the raising devices raise: pymem passes it to the caller."""


class Reader:
    """Operands from the bytes; past the end everything reads as zero."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self, nbytes: int) -> int:
        return int.from_bytes(bytes(self.byte() for _ in range(nbytes)), "little")

    def flag(self) -> bool:
        return bool(self.byte() & 1)

    def pick(self, seq: List[Any]) -> Any:
        return seq[self.byte() % len(seq)] if seq else None

    def num(self) -> int:
        """An address, size or offset: mostly small, sometimes at an edge."""
        kind = self.byte() % 10
        if kind < 3:
            return self.byte()
        if kind == 3:
            return self.uint(2)
        if kind == 4:
            return self.byte() << 10
        if kind == 5:
            return 1 << (self.byte() % 65)
        if kind == 6:
            return (1 << 64) - 1 - self.byte()
        if kind == 7:
            return self.uint(8)
        if kind == 8:
            return (1 << 64) + self.byte()
        return -1 - self.byte() % 4

    def size(self) -> int:
        """A region size: mostly small and positive."""
        kind = self.byte() % 8
        if kind < 5:
            return 1 + self.uint(2) % 0x2000
        return self.num()


def _device(name: str, faulty: bool) -> Callable[..., Any]:
    def read(offset: int, size: int) -> int:
        if faulty and offset % 7 == 3:
            raise DeviceFault(f"{name} fails at {offset:#x}")
        return (offset * 0x9E3779B1 + size) & ((1 << (8 * size)) - 1)
    return read


def _ops(r: Reader, name: str) -> MemoryRegionOps:
    def write(offset: int, value: int, size: int) -> None:
        if faulty and offset % 7 == 3:
            raise DeviceFault(f"{name} fails at {offset:#x}")

    faulty = r.byte() % 8 == 0
    vmin, vmax = sorted((r.pick(SIZES), r.pick(SIZES)))
    imin, imax = sorted((r.pick(SIZES), r.pick(SIZES)))
    return MemoryRegionOps(_device(name, faulty), write,
                           endianness="big" if r.flag() else "little",
                           valid_min=vmin, valid_max=vmax, impl_min=imin, impl_max=imax,
                           unaligned=r.flag())


class Recorder(MemoryListener):
    """Keeps what it is told, as an emulator's listener keeps its own map."""

    def __init__(self) -> None:
        self.events: List[tuple] = []

    def begin(self) -> None:
        self.events.append(("begin",))

    def commit(self) -> None:
        self.events.append(("commit",))

    def region_add(self, section: Any) -> None:
        self.events.append(("add", section.offset_within_address_space, section.size))

    def region_del(self, section: Any) -> None:
        self.events.append(("del", section.offset_within_address_space, section.size))

    def log_start(self, section: Any, old: int, new: int) -> None:
        self.events.append(("log_start", old, new))

    def log_stop(self, section: Any, old: int, new: int) -> None:
        self.events.append(("log_stop", old, new))


class Troublemaker(Recorder):
    """A listener that raises, or edits the map, on some of the changes it is told."""

    def __init__(self, world: "World", edits: bool) -> None:
        super().__init__()
        self.world = world
        self.edits = edits

    def region_add(self, section: Any) -> None:
        super().region_add(section)
        if len(self.events) % 3:
            return
        if not self.edits:
            raise DeviceFault("listener fails")
        mr = self.world.region()
        if mr is not None and mr.container is not None:
            mr.container.del_subregion(mr)        # EditDuringCommitError
        else:
            self.world.system.address_space(self.world.regions[0], "late")


class World:
    def __init__(self, r: Reader) -> None:
        self.r = r
        self.system = MemorySystem(page_bits=10 + r.byte() % 7)
        self.regions: List[MemoryRegion] = []
        self.spaces: List[Any] = []
        self.listeners: List[tuple] = []
        self.views: List[tuple] = []
        self.serial = 0
        root = MemoryRegion.container("root", 1 << 64)
        self.regions.append(root)
        self.spaces.append(self.system.address_space(root, "memory"))

    # ------------------------------------------------------------ helpers

    def name(self) -> str:
        self.serial += 1
        return self.r.pick(["r", "dup", "", "ünï", "a b", f"r{self.serial}"])

    def region(self) -> Optional[MemoryRegion]:
        return self.r.pick(self.regions)

    def space(self) -> Any:
        return self.r.pick(self.spaces)

    def keep(self, mr: MemoryRegion) -> None:
        if len(self.regions) < MAX_REGIONS:
            self.regions.append(mr)
        else:
            self.regions[self.r.byte() % MAX_REGIONS] = mr

    def translate_into(self, target: Any) -> Callable[..., IOMMUTLBEntry]:
        shift, mask = self.r.num(), (1 << (self.r.byte() % 16)) - 1
        perm = self.r.byte() % 4

        def translate(addr: int, flag: int) -> IOMMUTLBEntry:
            return IOMMUTLBEntry(target, addr & ~mask, (addr + shift) & ~mask & ((1 << 64) - 1),
                                 mask, perm)
        return translate

    # ------------------------------------------------------------ operations

    def new_region(self) -> None:
        r, kind = self.r, self.r.byte() % 8
        name, size = self.name(), r.size()
        if kind == 0:
            mr = MemoryRegion.ram(name, size)
        elif kind == 1:
            mr = MemoryRegion.rom(name, size, bytes(range(256)) * (min(size, 1 << 16) // 256)
                                  if r.flag() else None)
        elif kind == 2:
            mr = MemoryRegion.io(name, size, _ops(r, name))
        elif kind == 3:
            mr = MemoryRegion.container(name, size)
        elif kind == 4:
            target = self.region()
            if target is None:
                return
            mr = MemoryRegion.alias(name, target, r.num(), size)
        elif kind == 5:
            mr = MemoryRegion.rom_device(name, size, _ops(r, name))
        elif kind == 6:
            mr = MemoryRegion.ram_device(name, size)
        else:
            target = self.space()
            mr = MemoryRegion.iommu(name, size, self.translate_into(target), target)
        self.keep(mr)

    def add(self) -> None:
        parent, child = self.region(), self.region()
        if parent is not None and child is not None:
            prio = self.r.pick([0, 1, -1, 2, 1 << 31, -(1 << 31) - 1])
            parent.add_subregion(self.r.num(), child, prio)

    def delete(self) -> None:
        child = self.region()
        if child is not None and child.container is not None:
            parent = child.container if self.r.byte() % 4 else self.region()
            parent.del_subregion(child)

    def edit(self) -> None:
        mr, r = self.region(), self.r
        if mr is None:
            return
        what = r.byte() % 9
        if what == 0:
            mr.set_enabled(r.flag())
        elif what == 1:
            mr.set_address(r.num())
        elif what == 2:
            mr.set_alias_offset(r.num())
        elif what == 3:
            mr.set_size(r.size())
        elif what == 4:
            mr.set_readonly(r.flag())
        elif what == 5:
            mr.set_nonvolatile(r.flag())
        elif what == 6:
            mr.set_romd(r.flag())
        elif what == 7:
            mr.set_log(r.flag(), r.pick(CLIENTS))
        else:
            getattr(mr, r.pick(["get_dirty", "reset_dirty", "get_and_clear_dirty"]))(
                r.num(), r.num(), r.pick(CLIENTS))

    def new_space(self) -> None:
        root = self.region()
        if root is not None and len(self.spaces) < 6:
            self.spaces.append(self.system.address_space(root, self.name()))

    def destroy(self) -> None:
        asp = self.space()
        if asp is not None and len(self.spaces) > 1:
            self.spaces.remove(asp)
            asp.destroy()

    def listen(self) -> None:
        asp = self.space()
        if self.r.flag() or not self.listeners:
            kind = self.r.byte() % 4
            listener = Recorder() if kind < 2 else Troublemaker(self, kind == 3)
            asp.register_listener(listener)
            self.listeners.append((asp, listener))
        else:
            asp, listener = self.listeners.pop(self.r.byte() % len(self.listeners))
            asp.unregister_listener(listener)

    def access(self) -> None:
        asp, r = self.space(), self.r
        addr, kind = r.num(), r.byte() % 7
        attrs = MemTxAttrs(secure=r.flag()) if r.flag() else None
        if kind == 0:
            size = r.num() % 0x3000 if r.flag() else r.num()
            if 0x10000 <= size < 1 << 63:
                size = _big_read_size(asp, addr, size)
            asp.read(addr, size, attrs)
        elif kind == 1:
            asp.write(addr, bytes(r.byte() for _ in range(r.byte() % 24)), attrs)
        elif kind == 2:
            asp.rw(addr, bytearray(r.byte() % 40), r.flag(), attrs)
        elif kind == 3:
            asp.load(addr, r.pick([1, 2, 4, 8, 3, 0, 16]), r.flag(), attrs)
        elif kind == 4:
            size = r.pick(SIZES)
            asp.store(addr, r.uint(size) if r.byte() % 8 else r.num(), size, r.flag(), attrs)
        elif kind == 5:
            getattr(asp, r.pick(["ldub", "lduw_le", "lduw_be", "ldl_le", "ldl_be",
                                 "ldq_le", "ldq_be"]))(addr)
        else:
            name = r.pick(["stb", "stw_le", "stw_be", "stl_le", "stl_be", "stq_le", "stq_be"])
            size = {"b": 1, "w": 2, "l": 4, "q": 8}[name[2]]
            asp_value = r.uint(size) if r.byte() % 8 else r.num()
            getattr(asp, name)(addr, asp_value)

    def map(self) -> None:
        r = self.r
        if self.views and r.flag():
            asp, view = self.views.pop(r.byte() % len(self.views))
            asp.unmap(view, None if r.flag() else r.num())
            return
        asp = self.space()
        is_write = r.flag()
        view = asp.map(r.num(), r.num() % 0x3000 if r.flag() else r.num(), is_write)
        if is_write and len(view):
            view[0] = r.byte()
        self.views.append((asp, view))

    def translate(self) -> None:
        self.space().translate(self.r.num(), max(1, self.r.num()), self.r.flag())

    def copy(self) -> None:
        mr = self.region()
        if mr is not None:
            (copy.deepcopy if self.r.flag() else copy.copy)(mr)   # NotCopyableError

    def drop(self) -> None:
        if len(self.regions) > 1:
            self.regions.pop(1 + self.r.byte() % (len(self.regions) - 1))
            gc.collect()

    def show(self) -> None:
        from pymem.qemu.mtree import format_mtree

        format_mtree(self.system, flat=self.r.flag(), dispatch=self.r.flag(),
                     disabled=self.r.flag())

    def transaction(self, depth: int) -> None:
        with self.system.transaction():
            for _ in range(1 + self.r.byte() % 6):
                self.step(depth + 1)

    def step(self, depth: int = 0) -> None:
        ops = [self.new_region, self.new_region, self.add, self.add, self.delete, self.edit,
               self.edit, self.new_space, self.destroy, self.listen, self.access, self.access,
               self.access, self.map, self.translate, self.drop, self.show, self.copy]
        op = self.r.byte() % (len(ops) + 1)
        try:
            if op == len(ops):
                if depth < 3:
                    self.transaction(depth)
            else:
                ops[op]()
        except (PymemError, DeviceFault):
            pass
        except Exception as exc:  # noqa: BLE001
            # A known finding someone is fixing (fuzz.targets.KNOWN): go on
            # with the program rather than end it there.
            from fuzz.targets import known
            if known(exc) is None:
                raise


def run(data: bytes) -> None:
    """Run the program in `data`, then release everything it made."""
    r = Reader(data)
    world = World(r)
    try:
        for _ in range(MAX_OPS):
            if not r.more():
                break
            world.step()
        for asp, view in world.views:
            try:
                asp.unmap(view)       # a bounce buffer is written out: may fault
            except (PymemError, DeviceFault):
                pass
        world.show()
    finally:
        world.views.clear()
        for asp, listener in world.listeners:
            try:
                asp.unregister_listener(listener)
            except PymemError:
                pass


def seed_programs() -> List[bytes]:
    """A few programs that build a small machine and touch it in every way."""
    build = bytes([
        3,                                  # page_bits 13
        0, 0, 0, 0, 0x80, 0x00,             # new ram, size 0x81
        0, 2, 1, 3, 0x20, 0x00, 0, 2, 2, 4, 8, 1, 1, 0,   # new io
        2, 0, 1, 0, 0x10, 0,                # add ram at 0x10
        2, 0, 2, 0, 0x40, 0,                # add io
        10, 0, 0x30, 0, 0, 0,               # access
        9, 1,                               # listener
        5, 1, 1, 0, 0x20,                   # edit: move
        13, 0, 0, 0x10, 0, 0x10, 1,         # map
        16, 1, 1, 0,                        # show
    ])
    return [build, build * 3, bytes(range(256)), bytes([17]) + build]
