"""Dirty memory logging: which pages of a RAM region were written, per client.

QEMU keeps one bitmap per client (VGA, CODE, MIGRATION) over all RAM; a
display model asks which lines of its framebuffer changed, migration which
pages to send again.  pymem keeps one byte per page per RAM region, a bit per
client, so the C write path marks a page with one atomic OR.  A write sets
the bits of the clients logging the region (`region.set_log`) when the write
happened; pages are the system's target pages.
"""
from __future__ import annotations

import weakref
from typing import Any, List

from ._native import ffi, lib
from .errors import ArgumentTypeError, InvalidArgumentError

CLIENTS = (1, 2, 4)   # DIRTY_MEMORY_VGA, _CODE, _MIGRATION as region.py names them

_logs: "weakref.WeakKeyDictionary[Any, DirtyLog]" = weakref.WeakKeyDictionary()


class DirtyLog:
    """The dirty bytes of one RAM region: one per page of its memory."""

    __slots__ = ("page_bits", "bytes", "cdata")

    def __init__(self, nbytes: int, page_bits: int) -> None:
        pages = (nbytes + (1 << page_bits) - 1) >> page_bits
        self.page_bits = page_bits
        self.bytes = bytearray(max(pages, 1))
        self.cdata = ffi.from_buffer("uint8_t[]", self.bytes)


def page_bits_of(region: Any) -> int:
    system = region.system
    return system.page_bits if system is not None else 12


def log_of(region: Any) -> DirtyLog:
    """The region's dirty log, made on first use; sized by its memory, which
    is all a write can reach, whatever the region's size later becomes."""
    page_bits = page_bits_of(region)
    log = _logs.get(region)
    if log is None or log.page_bits != page_bits:
        from .region import TREE_LOCK

        with TREE_LOCK:
            log = _logs[region] = DirtyLog(len(region.buffer), page_bits)
            # From the next render on, C's writes mark this log.
            lib.pm_region_set_dirty_bytes(region._node, log.cdata, page_bits, len(log.bytes))
    return log


def _pages(region: Any, addr: int, size: int, what: str) -> tuple:
    if region.kind != "ram":
        raise ArgumentTypeError(f"{what}: region {region.name!r} ({region.kind}) has no dirty log")
    if not (isinstance(addr, int) and isinstance(size, int)):
        raise ArgumentTypeError(f"{what}: addr and size must be ints")
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
    """Whether any page of [addr, addr + size) is dirty for `client`."""
    _client(client, "get_dirty")
    log, first, count = _pages(region, addr, size, "get_dirty")
    return any(b & client for b in log.bytes[first:first + count])


def set_dirty(region: Any, addr: int, size: int) -> None:
    """Mark [addr, addr + size) dirty for the clients logging the region, as a
    write through an address space would."""
    log, first, count = _pages(region, addr, size, "set_dirty")
    if count and region.dirty_log:
        lib.pm_dirty_set(log.cdata, first, count, region.dirty_log)


def reset_dirty(region: Any, addr: int, size: int, client: int) -> None:
    """Clear `client`'s bits of [addr, addr + size)."""
    get_and_clear_dirty(region, addr, size, client)


def get_and_clear_dirty(region: Any, addr: int, size: int, client: int) -> List[int]:
    """Offsets of the pages of [addr, addr + size) dirty for `client`, whose
    bits are cleared in the same atomic step (no write between is lost)."""
    _client(client, "get_and_clear_dirty")
    log, first, count = _pages(region, addr, size, "get_and_clear_dirty")
    if not count:
        return []
    out = bytearray(count)
    lib.pm_dirty_fetch_and_clear(log.cdata, first, count, client, ffi.from_buffer(out))
    return [(first + i) << log.page_bits for i, b in enumerate(out) if b]
