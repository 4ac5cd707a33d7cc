"""Dirty memory logging: which pages of a RAM region were written, per client.

QEMU keeps one bitmap per client (VGA, CODE, MIGRATION) over all RAM; a
display model asks which lines of its framebuffer changed, migration which
pages to send again.  pymem keeps one byte per page per RAM region, a bit per
client, so the C write path marks a page with one atomic OR.  A write sets
the bits of the clients logging the region (`region.set_log`) when the write
happened; pages are the system's target pages.

Reading a log gives a `DirtyBitmap`: one bit a page (QEMU's
DirtyBitmapSnapshot), a bytes object numpy wraps without copying, with the
dirty runs, the count and a membership test.  Writes pymem does not see (a
CPU engine's stores into RAM it maps directly, a DMA engine's) are reported
with `mark_dirty`.

Below the region tree (docs/architecture.md): a region is handed in and read
by its attributes (its memory, its system's page size); this module imports
no region, view or address space.

Thread safety:
    Any thread.  Writes mark pages with atomic ORs in C and
    `get_and_clear_dirty`/`snapshot_and_clear_dirty` fetch and clear each
    page's bit in one atomic step, so a write racing a read of the log is in
    this bitmap or the next one, never lost.  A region's log is made on first
    use under the tree lock.  `DirtyBitmap` is immutable.
"""
from __future__ import annotations

import weakref
from typing import Any, Iterator, List, Tuple

from ._bindings import ffi, lib
from .errors import ArgumentTypeError, InvalidArgumentError
from .tree_lock import TREE_LOCK

# DIRTY_MEMORY_VGA, _CODE, _MIGRATION as pymem/region/kinds.py names them, and pymem's
# DIRTY_MEMORY_SNAPSHOT (pymem/snapshot.py's incremental copies).
CLIENTS = (1, 2, 4, 8)

_logs: "weakref.WeakKeyDictionary[Any, DirtyLog]" = weakref.WeakKeyDictionary()


class DirtyLog:
    """The dirty bytes of one RAM region: one per page of its memory.

    Raises nothing.
    """

    __slots__ = ("page_bits", "bytes", "cdata")

    def __init__(self, nbytes: int, page_bits: int) -> None:
        pages = (nbytes + (1 << page_bits) - 1) >> page_bits
        self.page_bits = page_bits
        self.bytes = bytearray(max(pages, 1))
        self.cdata = ffi.from_buffer("uint8_t[]", self.bytes)


def page_bits_of(region: Any) -> int:
    """Page bits of the dirty log of `region`: its system's page_bits, or 12
    (4 KiB) for a region not yet in a system.

    Raises nothing.
    """
    system = region.system
    return system.page_bits if system is not None else 12


def log_of(region: Any) -> DirtyLog:
    """The region's dirty log, made on first use; sized by its memory, which
    is all a write can reach, whatever the region's size later becomes.

    Raises nothing.
    """
    page_bits = page_bits_of(region)
    log = _logs.get(region)
    if log is None or log.page_bits != page_bits:
        with TREE_LOCK:
            log = _logs[region] = DirtyLog(len(region.buffer), page_bits)
            # From the next render on, C's writes mark this log.
            lib.pm_region_set_dirty_bytes(region._node, log.cdata, page_bits, len(log.bytes))
    return log


def _pages(region: Any, addr: int, size: int, what: str) -> Tuple[Any, int, int]:
    if region.kind != "ram":
        raise ArgumentTypeError(f"{what}: region {region.name!r} ({region.kind}) has no dirty log")
    if not (isinstance(addr, int) and isinstance(size, int)):
        raise ArgumentTypeError(f"{what}: addr and size must be ints, not "
                                f"{type(addr).__name__} and {type(size).__name__}")
    if addr < 0 or size < 0 or addr + size > region.size:
        raise InvalidArgumentError(f"{what}: [{addr:#x}, {addr + size:#x}) is outside region "
                         f"{region.name!r} of size {region.size:#x}")
    log = log_of(region)
    if size == 0:
        return log, 0, 0
    first = addr >> log.page_bits
    last = (addr + size - 1) >> log.page_bits
    return log, first, last - first + 1


def _client(client: int, what: str) -> int:
    if client not in CLIENTS:
        raise InvalidArgumentError(f"{what}: unknown dirty-memory client {client!r}")
    return client


def get_dirty(region: Any, addr: int, size: int, client: int) -> bool:
    """Whether any page of [addr, addr + size) is dirty for `client`.

    `addr` and `size` are byte offsets in the region; `client` one of
    DIRTY_MEMORY_VGA (1), _CODE (2), _MIGRATION (4), _SNAPSHOT (8).

    Raises:
        InvalidArgumentError: `client` is not one of those, or the range is
            outside the region.
        ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
    """
    _client(client, "get_dirty")
    log, first, count = _pages(region, addr, size, "get_dirty")
    return any(b & client for b in log.bytes[first:first + count])


def set_dirty(region: Any, addr: int, size: int) -> None:
    """Mark [addr, addr + size) dirty for the clients logging the region, as a
    write through an address space would.

    Raises:
        InvalidArgumentError: the range is outside the region.
        ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
    """
    log, first, count = _pages(region, addr, size, "set_dirty")
    if count and region.dirty_log:
        lib.pm_dirty_set(log.cdata, first, count, region.dirty_log)


def reset_dirty(region: Any, addr: int, size: int, client: int) -> None:
    """Clear `client`'s bits of [addr, addr + size).

    Raises:
        InvalidArgumentError: `client` is unknown, or the range is outside the
            region.
        ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
    """
    get_and_clear_dirty(region, addr, size, client)


def get_and_clear_dirty(region: Any, addr: int, size: int, client: int) -> "DirtyBitmap":
    """The pages of [addr, addr + size) dirty for `client`, as a DirtyBitmap
    whose bit 0 is the page holding `addr`; their bits are cleared in the
    same atomic step per page (no write between is lost).  Thread-safe
    against concurrent writes: a write racing the call is in this bitmap or
    the next one.

    `addr` and `size` are byte offsets in the region; `client` one of the
    DIRTY_MEMORY_* bits (1, 2, 4, 8).

    Raises:
        InvalidArgumentError: `client` is unknown, or the range is outside the
            region.
        ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
    """
    return snapshot_and_clear_dirty(region, addr, size, client, "get_and_clear_dirty")


def snapshot_and_clear_dirty(region: Any, addr: int, size: int, client: int,
                             what: str = "snapshot_and_clear_dirty") -> "DirtyBitmap":
    """QEMU's memory_region_snapshot_and_clear_dirty: as get_and_clear_dirty.

    Raises:
        InvalidArgumentError: `client` is unknown, or the range is outside the
            region.
        ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
    """
    _client(client, what)
    log, first, count = _pages(region, addr, size, what)
    bits = bytearray((count + 7) >> 3)
    if count:
        lib.pm_dirty_fetch_and_clear_bits(log.cdata, first, count, client, ffi.from_buffer(bits))
    return DirtyBitmap(bits, first << log.page_bits, log.page_bits, count)


def fetch_all(region: Any, client: int) -> "DirtyBitmap":
    """Every page of the region's memory dirty for `client` (bits cleared),
    whatever the region's current size: for pymem/snapshot.py.

    Raises nothing.
    """
    log = log_of(region)
    count = (len(region.buffer) + (1 << log.page_bits) - 1) >> log.page_bits
    bits = bytearray((count + 7) >> 3)
    if count:
        lib.pm_dirty_fetch_and_clear_bits(log.cdata, 0, count, client, ffi.from_buffer(bits))
    return DirtyBitmap(bits, 0, log.page_bits, count)


def set_pages(region: Any, first: int, count: int, mask: int) -> None:
    """Set `mask` in the dirty bytes of pages [first, first + count).

    `first` and `count` are page numbers; `mask` DIRTY_MEMORY_* bits.

    Raises nothing.
    """
    if count and mask:
        lib.pm_dirty_set(log_of(region).cdata, first, count, mask)


def mark_dirty(region: Any, addr: int, size: int) -> None:
    """Tell the region's dirty log that [addr, addr + size) (bytes, offsets in
    the region) was written behind pymem's back, as a write through an
    address space would have marked it: for every client logging the region.
    Raises ArgumentTypeError for a region that is not RAM, InvalidArgumentError
    outside the region.  Thread-safe (atomic bit sets).

    Raises:
        ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        InvalidArgumentError: the range is outside the region.
    """
    set_dirty(region, addr, size)


def mark_dirty_in_view(view: Any, addr: int, size: int) -> None:
    """mark_dirty for [addr, addr + size) of an address space whose current
    view is `view`: the RAM regions the range reaches are marked (aliases
    resolved by the view); ROM, devices and holes it crosses are not logged.

    `addr` and `size` are bytes of the address space, within [0, 2^64].

    Raises:
        ArgumentTypeError: `addr` or `size` is not an int.
        InvalidArgumentError: the range is outside [0, 2^64).
    """
    if not (isinstance(addr, int) and isinstance(size, int)):
        raise ArgumentTypeError(f"mark_dirty: addr and size must be ints, not "
                                f"{type(addr).__name__} and {type(size).__name__}")
    if addr < 0 or size < 0 or addr + size > 1 << 64:
        raise InvalidArgumentError(f"mark_dirty: [{addr:#x}, {addr + size:#x}) is outside "
                                   f"the address space")
    end = addr + size
    for fr in view.ranges:
        if fr.addr >= end:
            break
        lo, hi = max(fr.addr, addr), min(fr.addr + fr.size, end)
        if lo < hi and fr.region.kind == "ram":
            set_dirty(fr.region, fr.offset_in_region + lo - fr.addr, hi - lo)


class DirtyBitmap(bytes):
    """Dirty pages as one bit a page: page i (the page at offset
    `start + (i << page_bits)`) is bit i & 7 of byte i >> 3, little-endian
    bit order, as QEMU lays out its bitmaps on a little-endian host.

    It is a bytes object: `numpy.frombuffer(bm, numpy.uint8)` wraps it without
    a copy (`numpy.unpackbits(..., bitorder="little")[:bm.pages]` gives one
    flag a page).  Iterating yields the dirty runs as (offset, size) pairs in
    bytes; `addr in bm` and `bm.test(addr)` say whether the page holding
    `addr` is dirty; `count()` is the number of dirty pages.  Offsets are
    those the bitmap was asked with (a region's).  Immutable; thread-safe.

    Raises:
        InvalidArgumentError: (constructing) `bits` does not hold exactly
            `pages` bits rounded up to bytes.
    """

    start: int
    page_bits: int
    pages: int

    def __new__(cls, bits: Any, start: int, page_bits: int, pages: int) -> "DirtyBitmap":
        self = super().__new__(cls, bits)
        if len(self) != (pages + 7) >> 3:
            raise InvalidArgumentError(f"DirtyBitmap: {len(self)} bytes do not hold "
                                       f"{pages} pages")
        self.start, self.page_bits, self.pages = start, page_bits, pages
        return self

    @property
    def page_size(self) -> int:
        """Bytes a bit stands for."""
        return 1 << self.page_bits

    def _find(self, index: int, value: int) -> int:
        return int(lib.pm_bitmap_find(ffi.from_buffer(self), self.pages, index, value))

    def page_indices(self) -> Iterator[int]:
        """Indices (bit numbers) of the dirty pages, ascending.

        Raises nothing.
        """
        i = self._find(0, 1)
        while i < self.pages:
            end = self._find(i, 0)
            yield from range(i, end)
            i = self._find(end, 1)

    def pages_dirty(self) -> List[int]:
        """Offsets of the dirty pages, ascending (what get_and_clear_dirty
        returned before it returned bitmaps).

        Raises nothing.
        """
        return [self.start + (i << self.page_bits) for i in self.page_indices()]

    def ranges(self) -> Iterator[Tuple[int, int]]:
        """Maximal runs of dirty pages as (offset, size in bytes), ascending.

        Raises nothing.
        """
        i = self._find(0, 1)
        while i < self.pages:
            end = self._find(i, 0)
            yield self.start + (i << self.page_bits), (end - i) << self.page_bits
            i = self._find(end, 1)

    def __iter__(self) -> Iterator[Tuple[int, int]]:  # type: ignore[override]
        return self.ranges()

    def count(self) -> int:  # type: ignore[override]
        """How many pages are dirty.

        Raises nothing.
        """
        return int(lib.pm_bitmap_count(ffi.from_buffer(self), self.pages))

    def test(self, addr: int) -> bool:
        """Whether the page holding offset `addr` is dirty (False outside the
        bitmap), as QEMU's memory_region_snapshot_get_dirty for one byte.

        Raises:
            ArgumentTypeError: `addr` is not an int.
        """
        if not isinstance(addr, int):
            raise ArgumentTypeError(f"DirtyBitmap.test: addr must be an int, not "
                                    f"{type(addr).__name__}")
        i = (addr - self.start) >> self.page_bits if addr >= self.start else -1
        if not 0 <= i < self.pages:
            return False
        return bool(self[i >> 3] >> (i & 7) & 1)

    def __contains__(self, addr: object) -> bool:
        return isinstance(addr, int) and self.test(addr)

    def __bool__(self) -> bool:
        return self._find(0, 1) < self.pages

    def __repr__(self) -> str:
        return (f"<DirtyBitmap {self.count()}/{self.pages} pages of {self.page_size:#x} "
                f"from {self.start:#x}>")
