"""QEMU's address_space_map/unmap: zero-copy views of RAM for DMA, bounce buffers elsewhere, dirty marking at unmap.

Part of pymem.access (its docstring gives the rules).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from .. import dirty
from .._bindings import _fastpath, ffi, lib
from ..dispatch import SECTION_IOMMU, SECTION_RAM, SECTION_READONLY, SECTION_ROMD
from ..memtx import MEMTXATTRS_UNSPECIFIED, MemTxAttrs
from ..region import RAM
from ._common import OK, _check_access

if TYPE_CHECKING:
    from ..address_space import MemorySystem


# Section flags a map for writing reads: RAM that is neither read-only nor a ROM device.
_MAP_WRITE_MASK = SECTION_RAM | SECTION_READONLY | SECTION_ROMD | SECTION_IOMMU


class MapMixin:
    """The map/unmap part of AccessMixin (pymem/access/_path.py).

    Every view `map` answers is a window of a Mapping (csrc/ext/mapping.c)
    that holds what `unmap` needs: the region and offset (or the bounce
    buffer), the direction, the attributes.  `map` and `unmap` are builtins
    bound to the space (AccessMixin._bind_bulk): the builtin `map` takes RAM
    of one section in one C call and hands every other map to the method
    below; `unmap` is C's, with `_unmap_rest` for what a write leaves to do.

    Thread safety:
        `map` and `unmap` may be called from any thread; a view must be
        unmapped once, by one thread.  The view is the region's memory
        itself: writes to it race with other accesses as guest memory does.
    """

    destroyed: bool
    system: "MemorySystem"
    _pin: Any
    _section: Callable[..., Any]
    _resolve: Callable[..., Any]
    rw: Callable[..., Any]

    # -------------------------------------------------------------------- map

    def map(self, addr: int, size: int, is_write: bool,
            attrs: Optional[MemTxAttrs] = None) -> memoryview:
        """Zero-copy view of `size` bytes of RAM at `addr` for DMA (QEMU's
        address_space_map): shorter where the region's memory stops being
        contiguous in the space.  Where there is no RAM, a bounce buffer of
        at most one page (filled by a read unless `is_write`).  Give it back
        with `unmap`; a view dropped without it holds its region (or bounce
        buffer) until it is collected, and its writes are never marked dirty
        (QEMU leaks such a mapping).  A view stays valid across commits: it
        holds its region's memory.

        `addr` is a byte address and `size` bytes, `addr + size <= 2^64`; the
        view may be shorter than `size`.

        Raises:
            ArgumentTypeError: `addr` is not an int.
            InvalidArgumentError: `size` is negative or not an int, or the range
                runs past 2^64.
            IOMMUCycleError: the IOMMU translations do not end.
            TopologyError: the space is destroyed.
            Exception: what a device callback (a bounce buffer's read) or a tap
                raises propagates.
        """
        _check_access(addr, size)
        if attrs is None:
            attrs = MEMTXATTRS_UNSPECIFIED
        if size == 0:
            return memoryview(b"")
        is_write = bool(is_write)
        space, taddr, region, offset, length, flags = self._resolve(addr, size, is_write)
        direct = (flags & SECTION_RAM and not flags & (SECTION_READONLY | SECTION_ROMD)
                  if is_write else flags & (SECTION_RAM | SECTION_ROMD))
        if region is None or not direct:
            page = 1 << self.system.page_bits
            bounce = bytearray(min(size, page))
            if not is_write:
                self.rw(addr, bounce, False, attrs)
            # A bounce buffer's `space` is the one its write goes back to.
            return _fastpath.mapping(self._pin, bounce, 0, len(bounce), None, addr, is_write,
                                     attrs, 0, self)
        # flatview_extend_translation: go on while the next section continues
        # the same region at the next offset.
        t = ffi.new("pm_access *")
        while length < size:
            lib.pm_as_translate(space._cas, taddr + length, size - length, t)
            if t.region != region.id or t.offset != offset + length or t.flags != flags:
                break
            length += t.len
        n = min(length, size)
        view = _fastpath.mapping(self._pin, region._buffer, offset, n, region, offset, is_write,
                                 attrs, taddr, space)
        if not is_write and space._tapset().memory:
            space._tell(taddr, n, False, region, offset, None, bytes(view), False, attrs, OK,
                        False)
        return view

    def unmap(self, view: memoryview, access_len: Optional[int] = None) -> None:
        """Give back a view from `map`: the first `access_len` bytes (all by
        default) were written if it was mapped for writing, so their pages are
        marked dirty (or the bounce buffer is written out).  The view is
        released.

        `access_len` is bytes, 0 <= access_len <= len(view).

        Raises:
            InvalidArgumentError: `view` did not come from `map` on this space (or
                was unmapped already), or `access_len` is outside the view; the
                mapping is kept.
            ArgumentTypeError: `access_len` is not an int.
            Exception: what a device callback or a tap raises writing a bounce
                buffer back propagates.
        """
        # The builtin AccessMixin._bind_bulk made (csrc/ext/mapping.c).
        unmap = self.__dict__["unmap"]
        unmap(view) if access_len is None else unmap(view, access_len)


def _unmap_rest(view: memoryview, mapping: Any, access_len: int) -> None:
    """What unmap (csrc/ext/mapping.c) leaves to Python of a write of
    `access_len` bytes, the mapping given up and checked: a bounce buffer
    written out, a logged region's pages marked dirty, taps told."""
    attrs = mapping.attrs if mapping.attrs is not None else MEMTXATTRS_UNSPECIFIED
    region, space = mapping.region, mapping.space
    if region is None:
        space.rw(mapping.offset, view[:access_len], True, attrs)
        return
    # Only a region being logged has dirty bits to set.
    if region._dirty_log and region.kind == RAM:
        dirty.set_dirty(region, mapping.offset, access_len)
    tapset = space.__dict__.get("_taps") if space is not None else None
    if tapset is not None and tapset.memory:
        space._tell(mapping.addr, access_len, True, region, mapping.offset, None,
                    bytes(view[:access_len]), False, attrs, OK, False)
