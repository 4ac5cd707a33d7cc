"""QEMU's address_space_map/unmap: zero-copy views of RAM for DMA, bounce buffers elsewhere, dirty marking at unmap.

Part of pymem.access (its docstring gives the rules).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, NamedTuple, Optional, Tuple

from .. import dirty
from .._bindings import ffi, lib
from ..dispatch import SECTION_IOMMU, SECTION_RAM, SECTION_READONLY, SECTION_ROMD
from ..errors import ArgumentTypeError, InvalidArgumentError
from ..memtx import MEMTXATTRS_UNSPECIFIED, MemTxAttrs
from ..region import RAM, MemoryRegion
from ._common import ADDRESS_SPACE_SIZE, OK, _check_access

if TYPE_CHECKING:
    from ..address_space import AddressSpace, MemorySystem


class _Mapping(NamedTuple):
    region: Optional[MemoryRegion]   # None: a bounce buffer
    offset: int                      # in the region, or the address of the bounce
    is_write: bool
    attrs: MemTxAttrs
    addr: int = 0                    # RAM: the address in `space` (for taps)
    space: Any = None



# Section flags a map for writing reads: RAM that is neither read-only nor a ROM device.
_MAP_WRITE_MASK = SECTION_RAM | SECTION_READONLY | SECTION_ROMD | SECTION_IOMMU


class MapMixin:
    """The map/unmap part of AccessMixin (pymem/access/_path.py).

    Thread safety:
        `map` and `unmap` may be called from any thread; a mapping is
        remembered by the space until unmapped, and a view must be unmapped
        once, by one thread.  The view is the region's memory itself: writes
        to it race with other accesses as guest memory does.
    """

    destroyed: bool
    system: "MemorySystem"
    _mappings: Dict[int, Tuple[memoryview, Tuple[Any, ...]]]
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
        with `unmap`: as in QEMU, a view never unmapped stays mapped (held by
        this space, with its region or bounce buffer) for the space's life.

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
        # RAM of one section, no tap wanting it: the short way (#12 goal 6),
        # every step inline (a Python call costs as much as the copy it saves).
        tapset = self.__dict__.get("_taps")
        mappings = self.__dict__.get("_mappings")
        if (type(addr) is int and type(size) is int and 0 <= addr and 0 < size
                and addr + size <= ADDRESS_SPACE_SIZE and not self.destroyed
                and mappings is not None and tapset is not None and not tapset.memory):
            region, offset, length, flags = self._section(addr, size)
            if (region is not None and length >= size
                    and (flags & _MAP_WRITE_MASK == SECTION_RAM if is_write
                         else flags & (SECTION_RAM | SECTION_ROMD)
                         and not flags & SECTION_IOMMU)):
                view: memoryview = region._buffer[offset:offset + size]
                # A plain tuple laid out as _Mapping (a NamedTuple costs 0.4 us).
                mappings[id(view)] = (view, (region, offset, is_write,
                                             attrs or MEMTXATTRS_UNSPECIFIED, addr, self))
                return view
        _check_access(addr, size)
        if attrs is None:
            attrs = MEMTXATTRS_UNSPECIFIED
        if size == 0:
            return memoryview(b"")
        space, taddr, region, offset, length, flags = self._resolve(addr, size, is_write)
        direct = (flags & SECTION_RAM and not flags & (SECTION_READONLY | SECTION_ROMD)
                  if is_write else flags & (SECTION_RAM | SECTION_ROMD))
        if region is None or not direct:
            page = 1 << self.system.page_bits
            bounce = bytearray(min(size, page))
            if not is_write:
                self.rw(addr, bounce, False, attrs)
            view = memoryview(bounce)
            self._remember(view, _Mapping(None, addr, is_write, attrs))
            return view
        # flatview_extend_translation: go on while the next section continues
        # the same region at the next offset.
        t = ffi.new("pm_access *")
        while length < size:
            lib.pm_as_translate(space._cas, taddr + length, size - length, t)
            if t.region != region.id or t.offset != offset + length or t.flags != flags:
                break
            length += t.len
        view = region.buffer[offset:offset + min(length, size)]
        self._remember(view, _Mapping(region, offset, is_write, attrs, taddr, space))
        if not is_write and space._tapset().memory:
            space._tell(taddr, view.nbytes, False, region, offset, None, bytes(view), False,
                        attrs, OK, False)
        return view

    def _remember(self, view: memoryview, mapping: Tuple[Any, ...]) -> None:
        mappings = self.__dict__.get("_mappings")
        if mappings is None:
            mappings = self._mappings = {}
        mappings[id(view)] = (view, mapping)

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
        mappings = self.__dict__.get("_mappings")
        entry = mappings.get(id(view)) if mappings is not None else None
        if mappings is None or entry is None or entry[0] is not view:
            raise InvalidArgumentError("unmap: this view did not come from map() on this "
                                       "address space")
        # Checked before the mapping is given up: a bad access_len leaves it
        # mapped, so the caller can retry (and a bounce buffer's data is kept).
        n = view.nbytes
        if access_len is None:
            access_len = n
        elif type(access_len) is not int:
            if not isinstance(access_len, int) or isinstance(access_len, bool):
                raise ArgumentTypeError(f"unmap: access_len must be an int, "
                                        f"not {type(access_len).__name__}")
        if not 0 <= access_len <= n:
            raise InvalidArgumentError(f"unmap: access_len {access_len} is outside the view's "
                                       f"{n} bytes")
        del mappings[id(view)]
        # A _Mapping, or the plain tuple map's short way stores.
        region, offset, is_write, attrs, addr, space = entry[1]
        if is_write and access_len:
            if region is None:
                self.rw(offset, view[:access_len], True, attrs)
            else:
                # Only a region being logged has dirty bits to set.
                if region._dirty_log and region.kind == RAM:
                    dirty.set_dirty(region, offset, access_len)
                tapset = space.__dict__.get("_taps") if space is not None else None
                if tapset is not None and tapset.memory:
                    space._tell(addr, access_len, True, region, offset, None,
                                bytes(view[:access_len]), False, attrs, OK, False)
        view.release()
