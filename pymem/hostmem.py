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
    Any thread: the slabs (csrc/ext/hostmem.c) change only with the GIL
    held and without running Python code between the first step and the
    last, so threads, and a fork taken between two bytecodes, see them
    whole; a block's pages return when its last view is freed.  A
    `RamPtr` may be read from any thread; after `release()` the memory may
    be reused, so whoever uses the address must hold the RamPtr.
"""
from __future__ import annotations

import mmap
from typing import Any, Optional

from ._bindings import _fastpath, ffi
from .errors import InvalidArgumentError

PAGE_SIZE = max(mmap.PAGESIZE, 4096)
"""Granularity (bytes) of every region memory: the host page, at least 4 KiB."""

MMAP_MIN = 256 << 10
"""Memories from this size (bytes) up are anonymous mappings of their own."""

SLAB_PAGES: int = _fastpath.SLAB_PAGES
"""Pages per slab (4 MiB with 4 KiB pages)."""

_SlabAllocator = _fastpath.SlabAllocator
"""The slabs (csrc/ext/hostmem.c): `allocate(size)` answers a memoryview of
`size` zeroed bytes on whole pages of a slab, first fit, newest slab first;
the pages go back when the last view of them goes, and a slab with none
handed out is unmapped.  No lock: it changes only while holding the GIL and
calling no Python code, so threads and forks see it whole."""

SLABS = _SlabAllocator()


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
    return SLABS.allocate(size)


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
