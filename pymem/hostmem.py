"""Host memory for RAM and ROM regions: page-aligned, mappable, and cheap in mappings.

A CPU emulator maps a region's memory into its guest zero-copy (unicorn's
uc_mem_map_ptr, KVM's memory slots), which needs memory that starts on a host
page and spans whole pages.  One anonymous mmap per region gives that, but a
machine of many small regions (ROMs, device buffers) would then run out of
the process's mappings (vm.max_map_count, 65,530 by default).  So memories
from 256 KiB up get their own mmap (zero pages cost nothing until touched),
and smaller ones are carved, a whole number of pages each, out of shared
slabs of anonymous memory; a slab's pages go back to it when the region's
memory is no longer referenced (the pages are dropped with MADV_DONTNEED, so
they come back zeroed and cost no memory), and a slab with nothing carved
from it is unmapped.

`RamPtr` is QEMU's memory_region_get_ram_ptr as an object: the host address
of a region's memory, which it keeps alive while held.

Knows only the C side (pymem/_bindings.py): regions ask it for memory; it never
names a region, a view or an address space.

Thread safety:
    Any thread: the slabs are shared under one lock (held across fork), and
    a slab's pages return to it from finalizers that only queue them.  A
    `RamPtr` may be read from any thread; after `release()` the memory may
    be reused, so whoever uses the address must hold the RamPtr.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import threading
import weakref
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from ._bindings import ffi
from .errors import InvalidArgumentError

PAGE_SIZE = max(mmap.PAGESIZE, 4096)
"""Granularity (bytes) of every region memory: the host page, at least 4 KiB."""

MMAP_MIN = 256 << 10
"""Memories from this size (bytes) up are anonymous mappings of their own."""

SLAB_PAGES = 1024
"""Pages per slab (4 MiB with 4 KiB pages)."""


class _Slab:
    """One anonymous mapping carved into runs of pages; first fit."""

    __slots__ = ("memory", "free", "used")

    def __init__(self) -> None:
        # Private: MADV_DONTNEED then zeroes the pages (shared memory keeps them).
        self.memory = mmap.mmap(-1, SLAB_PAGES * PAGE_SIZE,
                                flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.free: List[Tuple[int, int]] = [(0, SLAB_PAGES)]   # (first page, count), sorted
        self.used = 0

    def take(self, pages: int) -> Optional[int]:
        for i, (first, count) in enumerate(self.free):
            if count >= pages:
                if count == pages:
                    del self.free[i]
                else:
                    self.free[i] = (first + pages, count - pages)
                self.used += pages
                return first
        return None

    def give_back(self, first: int, pages: int) -> None:
        # Zeroed for the next owner, and no longer resident.
        self.memory.madvise(mmap.MADV_DONTNEED, first * PAGE_SIZE, pages * PAGE_SIZE)
        self.used -= pages
        runs = self.free
        lo, hi = 0, len(runs)
        while lo < hi:
            mid = (lo + hi) // 2
            if runs[mid][0] < first:
                lo = mid + 1
            else:
                hi = mid
        runs.insert(lo, (first, pages))
        # Coalesce with the neighbours.
        if lo + 1 < len(runs) and runs[lo][0] + runs[lo][1] == runs[lo + 1][0]:
            runs[lo] = (first, runs[lo][1] + runs[lo + 1][1])
            del runs[lo + 1]
        if lo > 0 and runs[lo - 1][0] + runs[lo - 1][1] == runs[lo][0]:
            runs[lo - 1] = (runs[lo - 1][0], runs[lo - 1][1] + runs[lo][1])
            del runs[lo]


class _SlabAllocator:
    """The slabs of the process.  Thread-safe: a lock guards the slabs, and
    blocks are given back through a queue (their finalizers may run inside a
    garbage collection triggered while the lock is held)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slabs: List[_Slab] = []
        self._returned: Deque[Tuple[_Slab, int, int]] = deque()
        self._types: Dict[int, Any] = {}

    def allocate(self, size: int) -> memoryview:
        pages = (size + PAGE_SIZE - 1) // PAGE_SIZE
        with self._lock:
            self._drain()
            for slab in reversed(self._slabs):
                first = slab.take(pages)
                if first is not None:
                    break
            else:
                slab = _Slab()
                self._slabs.append(slab)
                first = slab.take(pages)
                assert first is not None
        # One array type per page count (at most MMAP_MIN // PAGE_SIZE of
        # them), not per byte size: ctypes keeps every array type it makes.
        array_type = self._types.get(pages)
        if array_type is None:
            array_type = self._types.setdefault(pages, ctypes.c_ubyte * (pages * PAGE_SIZE))
        block = array_type.from_buffer(slab.memory, first * PAGE_SIZE)
        # deque.append is atomic: safe from any thread, any finalizer.
        weakref.finalize(block, self._returned.append, (slab, first, pages))
        # Views of the slice keep `block` (their exporter) alive, and so the pages.
        return memoryview(block).cast("B")[:size]

    def _drain(self) -> None:
        returned: Dict[_Slab, List[Tuple[int, int]]] = {}
        while self._returned:
            slab, first, pages = self._returned.popleft()
            returned.setdefault(slab, []).append((first, pages))
        for slab, blocks in returned.items():
            if slab.used == sum(pages for _, pages in blocks):
                # Every block is dead, so nothing exports the slab's buffer:
                # unmap it whole rather than give back its blocks one by one.
                self._slabs.remove(slab)
                slab.memory.close()
                continue
            for first, pages in blocks:
                slab.give_back(first, pages)

    def slab_count(self) -> int:
        """Slabs mapped now (for tests)."""
        with self._lock:
            self._drain()
            return len(self._slabs)


SLABS = _SlabAllocator()

# fork() copies only the forking thread: a slab lock another thread held at
# that moment would stay held in the child for ever, and its first RAM region
# would hang.  Hold the lock across fork, so the slabs are never mid-change
# there either.  Safe against deadlock: nothing waits for another lock while
# holding this one (the finalizers that run under it only append to a queue).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=lambda: SLABS._lock.acquire(),
                        after_in_parent=lambda: SLABS._lock.release(),
                        after_in_child=lambda: SLABS._lock.release())


def allocate(size: int) -> memoryview:
    """`size` zeroed bytes starting on a host page: a slab's pages when small,
    an mmap of their own from MMAP_MIN up.  `size` is bytes, >= 0 (not
    checked here: the regions asking check it first).

    Raises:
        OverflowError: `size` is too large for mmap.
        OSError: the memory cannot be mapped.
    """
    if size >= MMAP_MIN:
        return memoryview(mmap.mmap(-1, size))
    return SLABS.allocate(max(size, 1))[:size]


def address_of(buffer: Any) -> int:
    """The host address of a writable buffer's first byte.

    Raises:
        TypeError: `buffer` is not a writable buffer.
    """
    return int(ffi.cast("uintptr_t", ffi.from_buffer("uint8_t[]", buffer,
                                                      require_writable=True)))


class RamPtr:
    """QEMU's memory_region_get_ram_ptr: the host address of a region's memory.

    `address` (also `int(ptr)`) is where byte 0 of the region is in this
    process, `size` how many bytes are there.  While the RamPtr is held, the
    memory stays allocated and at that address, even if the region itself is
    dropped; `release()`, or leaving `with region.get_ram_ptr() as ptr:`,
    lets it go (the RamPtr then refuses to answer).  Thread-safe to read.

    Raises nothing (made by `MemoryRegion.get_ram_ptr`).
    """

    __slots__ = ("_memory", "_address", "size", "name")

    def __init__(self, name: str, memory: memoryview, offset: int, size: int) -> None:
        self._memory: Optional[memoryview] = memory
        self._address = address_of(memory) + offset
        self.size = size
        self.name = name

    @property
    def address(self) -> int:
        """The host address (an int); ValueError once released.

        Raises:
            InvalidArgumentError: the RamPtr was released.
        """
        if self._memory is None:
            raise InvalidArgumentError(f"RAM pointer of region {self.name!r} was released")
        return self._address

    def __int__(self) -> int:
        return self.address

    def __index__(self) -> int:
        return self.address

    def release(self) -> None:
        """Stop keeping the memory alive; idempotent.

        Raises nothing.
        """
        self._memory = None

    def __enter__(self) -> "RamPtr":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        where = f"{self._address:#x}" if self._memory is not None else "released"
        return f"<RamPtr {self.name!r} {where} size={self.size:#x}>"
