"""The access path proper: read, write, rw, the fixed-width loads and stores and their attributes, piece by piece as QEMU answers them.

Part of pymem.access (its docstring gives the rules).
"""
from __future__ import annotations

from bisect import bisect_right
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple, cast

from .. import mmio
from .._bindings import _fastpath, ffi, lib
from ..dispatch import SECTION_IOMMU, SECTION_RAM, SECTION_READONLY, SECTION_ROMD, _function_address, bind_fast
from ..errors import ArgumentTypeError, InvalidArgumentError, IOMMUCycleError, OutOfMemoryError, TopologyError
from ..memtx import MEMTXATTRS_UNSPECIFIED, MemTxAttrs, MemTxError, MemTxResult
from ..region import MemoryRegion
from ._common import ADDRESS_SPACE_SIZE, DECODE_ERROR, OK, _byte_view, _byteorder, _check_access, translate_section
from ._device import _device_access
from ._iommu import IOMMUAccessFlags, IOMMUTLBEntry, IOMMU_MAX_TRANSLATIONS
from ._mapping import MapMixin, _unmap_rest
from ._tapping import TapsMixin

if TYPE_CHECKING:
    from ..address_space import AddressSpace, MemorySystem


# Fixed-width accessors, QEMU's names: name -> (fast-path kind, C function,
# size, big-endian).  Loads are ld + b/w/l/q (ldub: QEMU's unsigned byte),
# stores st + the same letter; every width but the byte has _le and _be.
_WIDTHS = (("b", 1), ("w", 2), ("l", 4), ("q", 8))


def _accessors(prefix: str, kind: str, wide_kind: str) -> Dict[str, Tuple[str, str, int, bool]]:
    """The table of one direction, in set_memtx's order (by width, le first)."""
    table = {}
    for letter, size in _WIDTHS:
        base = prefix + ("u" if prefix == "ld" and size < 4 else "") + letter
        k = wide_kind if size == 8 else kind
        orders = (("", False),) if size == 1 else (("_le", False), ("_be", True))
        for suffix, big in orders:
            table[base + suffix] = (k, "pm_as_" + base + suffix, size, big)
    return table


_LOADS = _accessors("ld", "load", "load64")
_STORES = _accessors("st", "store", "store")


_fastpath.set_memtx(OK, *(_function_address(spec[1])
                          for spec in (*_LOADS.values(), *_STORES.values())))


_range_start = attrgetter("addr")


class AccessMixin(TapsMixin, MapMixin):
    """Access methods mixed into AddressSpace (which provides `_cas`).

    `ldub`, `lduw_le`, ... `stq_be` are builtins bound on first use to this
    space's C handle; they take `(addr)` or `(addr, value)` and use
    unspecified attributes.  `load`/`store` take attributes.
    """

    _cas: Any
    _pin: Any
    # Raises TopologyError once the space is destroyed (AddressSpace.destroy).
    _check_live: Callable[[], None]
    # Bound on first use by __getattr__ (QEMU's address_space_ld*/st* with
    # unspecified attributes): loads take (addr), stores (addr, value).
    ldub: Callable[[int], int]
    lduw_le: Callable[[int], int]
    lduw_be: Callable[[int], int]
    ldl_le: Callable[[int], int]
    ldl_be: Callable[[int], int]
    ldq_le: Callable[[int], int]
    ldq_be: Callable[[int], int]
    stb: Callable[[int, int], None]
    stw_le: Callable[[int, int], None]
    stw_be: Callable[[int, int], None]
    stl_le: Callable[[int, int], None]
    stl_be: Callable[[int, int], None]
    stq_le: Callable[[int, int], None]
    stq_be: Callable[[int, int], None]
    system: MemorySystem
    destroyed: bool


    def __getattr__(self, name: str) -> Callable[..., Any]:
        spec = _LOADS.get(name) or _STORES.get(name)
        if spec is None or "_cas" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        kind, function, size, big = spec
        slow = "_load_or_raise" if kind != "store" else "_store_or_raise"
        # The builtin holds this space's pin (its last view) and its slow
        # path; the cycle back to the space is one the collector can see.
        fn = bind_fast(kind, function, self._cas, size,
                       partial(getattr(self, slow), size, big), self._pin,
                       device=True, big_endian=big, taps=self._tapset())
        # Cached on the instance: later calls never come back here.
        setattr(self, name, fn)
        return fn

    def translate(self, addr: int, length: int = 1,
                  is_write: bool = False) -> Tuple[Optional[MemoryRegion], int, int]:
        """QEMU's address_space_translate: the region that answers `addr`
        (through any IOMMUs; None for unassigned space or a refused
        translation), the offset in it, and how much of `length` stays
        inside its section.

        `addr` is a byte address and `length` bytes (>= 0), with
        `addr + max(length, 1) <= 2^64`.

        Raises:
            ArgumentTypeError: `addr` is not an int.
            InvalidArgumentError: `length` is negative or not an int, or the range
                runs past 2^64.
            IOMMUCycleError: the IOMMU translations do not end.
            TopologyError: the space is destroyed.
            Exception: what an IOMMU's translate callback raises propagates.
        """
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise InvalidArgumentError(f"translate length must be a non-negative int, "
                                       f"not {length!r}")
        _check_access(addr, max(length, 1))
        _, _, region, offset, plen, _ = self._resolve(addr, length, is_write)
        return region, offset, min(plen, length)

    # ------------------------------------------------------------ bulk access

    def _bind_bulk(self) -> None:
        """Shadow `read` and `write` with builtins bound to this space's C handle:
        plain memory costs one C call; anything else falls back to the methods
        below."""
        self.read = bind_fast("read", "pm_as_read", self._cas, 0,  # type: ignore[method-assign]
                              partial(AccessMixin.read, self), self._pin,
                              taps=self._tapset())
        self.write = bind_fast("write", "pm_as_write", self._cas, 0,  # type: ignore[method-assign]
                               partial(AccessMixin.write, self), self._pin,
                               taps=self._tapset())
        # QEMU's rw, ld*/st* with attributes: RAM in one C call (csrc/ext/memtx.c).
        self.rw = bind_fast("rw", "pm_as_read", self._cas, 0,  # type: ignore[method-assign]
                            partial(AccessMixin.rw, self), self._pin, taps=self._tapset(),
                            second="pm_as_write")
        self.load = bind_fast("load_attrs", "pm_as_read", self._cas,  # type: ignore[method-assign]
                              0, partial(AccessMixin.load, self), self._pin,
                              taps=self._tapset())
        self.store = bind_fast("store_attrs", "pm_as_read",  # type: ignore[method-assign]
                               self._cas, 0, partial(AccessMixin.store, self), self._pin,
                               taps=self._tapset())
        self._section = bind_fast("section", "pm_as_translate", self._cas, 0, None, self._pin)
        # QEMU's map/unmap: RAM of one section mapped in one C call, every
        # view unmapped in one (csrc/ext/mapping.c).
        self.map = bind_fast("map", "pm_as_translate", self._cas, 0,  # type: ignore[method-assign]
                             partial(MapMixin.map, self), self._pin, taps=self._tapset())
        self.unmap = bind_fast("unmap", "pm_as_translate",  # type: ignore[method-assign]
                               self._cas, 0, _unmap_rest, self._pin, taps=self._tapset())
        # translate: one C call for a region's section (no IOMMU); the rest,
        # errors included, is the method below.
        self.translate = bind_fast(  # type: ignore[method-assign]
            "space_translate", "pm_as_translate", self._cas, 0,
            partial(AccessMixin.translate, self), self._pin)
        self._rw_read = bind_fast("rw_read", "pm_as_read", self._cas, 0, None, self._pin)
        self._rw_write = bind_fast("rw_write", "pm_as_write", self._cas, 0, None, self._pin)

    def read(self, addr: int, size: int, attrs: Optional[MemTxAttrs] = None) -> bytes:
        """`size` bytes at `addr`; raises MemTxError if the bus answers an error.

        `addr` is a byte address and `size` bytes (>= 0), `addr + size <= 2^64`.

        Raises:
            ArgumentTypeError: `addr` is not an int.
            InvalidArgumentError: `size` is negative or not an int, or the access
                runs past 2^64.
            OutOfMemoryError: no buffer of `size` bytes can be had.
            MemTxError: the bus answered an error for some piece (the others are
                done); it says where and why.
            IOMMUCycleError: the IOMMU translations do not end.
            TopologyError: the space is destroyed.
            Exception: what a device callback or a tap raises propagates.
        """
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgumentError(f"read size must be a non-negative int, not {size!r}")
        # Checked before allocating: a size past the space's end must not cost
        # gigabytes of zeroes first.
        _check_access(addr, size)
        try:
            buf = bytearray(size)
        except (MemoryError, OverflowError):   # OverflowError: past what an index holds
            raise OutOfMemoryError(f"read of {size:#x} bytes at {addr:#x}: no memory for "
                                   f"a buffer that size (read in smaller pieces)") from None
        # All plain memory: one C call, nothing else to build (unless a tap
        # wants its pieces).
        if (size and not self._tapset().memory
                and not lib.pm_as_read(self._cas, addr, ffi.from_buffer(buf), size, ffi.NULL)):
            return bytes(buf)
        result = self.rw(addr, buf, False, attrs)
        if result:
            raise _bus_error(self, result, addr, size, False)
        return bytes(buf)

    def write(self, addr: int, data: Any, attrs: Optional[MemTxAttrs] = None) -> None:
        """Write the bytes of `data`; raises MemTxError if the bus answers an error.

        `data` is any bytes-like object; `addr + len(data) <= 2^64`.

        Raises:
            ArgumentTypeError: `addr` is not an int, or `data` is not bytes-like.
            InvalidArgumentError: the access runs past 2^64.
            MemTxError: the bus answered an error for some piece (the others are
                done).
            IOMMUCycleError: the IOMMU translations do not end.
            TopologyError: the space is destroyed.
            Exception: what a device callback or a tap raises propagates.
        """
        if type(data) is bytes and data and not self._tapset().memory:
            _check_access(addr, len(data))
            # Once C has stopped, bytes already written stay written: the
            # slow path below starts over, which rewrites them (same bytes).
            if not lib.pm_as_write(self._cas, addr, data, len(data), ffi.NULL):
                return
        view = _byte_view(data, True)
        result = self.rw(addr, view, True, attrs)
        if result:
            raise _bus_error(self, result, addr, view.nbytes, True)

    def rw(self, addr: int, buffer: Any, is_write: bool,
           attrs: Optional[MemTxAttrs] = None) -> MemTxResult:
        """Read into (a writable) or write from `buffer`; the bus's answer,
        never raised (QEMU's address_space_rw).  Any buffer works for a
        write (a strided one is copied first); a read needs a writable,
        C-contiguous one.

        Raises:
            ArgumentTypeError: `addr` is not an int; `buffer` has no buffer
                protocol, or is read-only or strided for a read.
            InvalidArgumentError: the access runs past 2^64.
            IOMMUCycleError: the IOMMU translations do not end.
            TopologyError: the space is destroyed.
            Exception: what a device callback or a tap raises propagates.
        """
        view = _byte_view(buffer, is_write)
        n = view.nbytes
        _check_access(addr, n)
        if n == 0:
            return OK
        if attrs is None:
            attrs = MEMTXATTRS_UNSPECIFIED
        return self._rw(addr, view, is_write, attrs)

    def _rw(self, addr: int, view: memoryview, is_write: bool, attrs: MemTxAttrs,
            via: Tuple[Tuple[str, str], ...] = ()) -> MemTxResult:
        """The slow path of `rw`; `via` lists the (space, IOMMU) translations
        that led here, to bound IOMMU cycles."""
        self._check_live()
        if self._tapset().memory:
            return self._rw_pieces(addr, view, is_write, attrs, via)
        n = view.nbytes
        # One C call per step takes the read-side section, accesses what is
        # plain memory, makes the region where it stopped ours and leaves the
        # section (`rw_*` in csrc/ext/ram.c): no bytecode boundary, where
        # a signal handler could raise, lies inside the section.
        step = self._rw_write if is_write else self._rw_read
        done = 0
        result = OK
        while True:
            stop = step(addr + done, view, done)
            if stop is None:
                break
            stopped, region, offset, length, flags = stop
            done += stopped
            length, r = self._piece(addr + done, view[done:], offset, length, flags, region,
                                    is_write, attrs, via)
            result |= r
            done += length
            if done == n:
                break
        return result

    def _hole_left(self, addr: int) -> int:
        """Bytes from `addr`, which no flat range of the current view holds,
        to the next range (2^64 if none follows)."""
        view = self._pin.view
        ranges = view.ranges if view is not None else []
        i = bisect_right(ranges, addr, key=_range_start)
        return ranges[i].addr - addr if i < len(ranges) else 1 << 64

    def _rw_pieces(self, addr: int, view: memoryview, is_write: bool, attrs: MemTxAttrs,
                   via: Tuple[Tuple[str, str], ...]) -> MemTxResult:
        """`_rw` while a tap wants plain memory: one piece per section, each
        told to the taps, where C would copy the whole stretch at once."""
        n = view.nbytes
        done = 0
        result = OK
        while done < n:
            at = addr + done
            t = translate_section(self, at, n - done)
            region, flags = t.region, t.flags
            plain = (region is not None and not flags & SECTION_IOMMU
                     and (flags & SECTION_RAM and not flags & SECTION_READONLY if is_write
                          else flags & (SECTION_RAM | SECTION_ROMD)))
            if not plain:
                length, r = self._piece(at, view[done:], t.offset, t.len, flags, region,
                                        is_write, attrs, via)
                result |= r
                done += length
                continue
            length = min(t.len, n - done)
            piece = view[done:done + length]
            call = lib.pm_as_write if is_write else lib.pm_as_read
            if call(self._cas, at, ffi.from_buffer(piece), length, ffi.NULL):
                continue   # a commit came in between: look again
            self._tell(at, length, is_write, region, t.offset, None, bytes(piece), False, attrs,
                       OK, False)
            done += length
        return result

    def _piece(self, addr: int, view: memoryview, offset: int, section_len: int, flags: int,
               region: Optional[MemoryRegion], is_write: bool,
               attrs: MemTxAttrs,
               via: Tuple[Tuple[str, str], ...] = ()) -> Tuple[int, MemTxResult]:
        """Answer the start of `view` at `addr`, where C stopped in `region`
        (at `offset`, `section_len` bytes left in the section); returns the
        bytes answered and the result (flatview_*_continue's I/O case)."""
        if flags & SECTION_IOMMU and region is not None:
            return self._iommu_piece(addr, region, offset, view, is_write, attrs, via)
        rest = view.nbytes
        tapset = self.__dict__.get("_taps")
        if region is None and section_len and not (tapset is not None and tapset.taps):
            # Unassigned space: QEMU answers it piece by piece (at most 4
            # bytes each, unassigned_mem_ops), every piece DECODE_ERROR and
            # reading zeros.  The whole stretch at once gives the same bytes
            # and the same OR-ed result, in one step instead of one Python
            # round trip per 4 bytes (a tap still sees every piece).
            # QEMU re-translates only where each piece starts, so the last
            # piece that starts in the hole runs on into whatever follows
            # (reading zeros there; a write there is dropped).  C's section
            # length here is that of QEMU's unassigned section, which spans
            # the whole space.
            n = _unassigned_stretch(addr, min(rest, section_len), self._hole_left(addr))
            if not is_write:
                view[:n] = bytes(n)
            return n, DECODE_ERROR
        ops = region.ops if region is not None else None
        if region is not None and region.ram_backed:
            # QEMU clamps RAM and ROM to their section; devices are not.
            rest = min(rest, section_len)
            if is_write and not region.readonly:
                # RAM behind a read-only alias: the write is dropped.
                self._tell(addr, rest, True, region, offset, None, bytes(view[:rest]), False,
                           attrs, OK, False)
                return rest, OK
        size, r = _device_access(ops, offset, view, mmio.access_size(ops, rest, offset),
                                 is_write, attrs, _name(region))
        order = mmio.byteorder(ops)
        self._tell(addr, size, is_write, region, offset, int.from_bytes(view[:size], order), None,
                   order == "big", attrs, r, True)
        return size, r

    def _iommu_piece(self, addr: int, region: MemoryRegion, offset: int, view: memoryview,
                     is_write: bool, attrs: MemTxAttrs,
                     via: Tuple[Tuple[str, str], ...] = ()) -> Tuple[int, MemTxResult]:
        via = _one_more_translation(via, cast("AddressSpace", self), region)
        found = _iommu_translate(region, offset, view.nbytes, is_write)
        if found is None:
            # A permission fault: QEMU goes on as if the address were unassigned.
            size, r = _device_access(None, offset, view,
                                     mmio.access_size(None, view.nbytes, offset), is_write, attrs)
            self._tell(addr, size, is_write, None, offset,
                       int.from_bytes(view[:size], "little"), None, False, attrs, r, True)
            return size, r
        target, target_addr, length = found
        return length, target._rw(target_addr, view[:length], is_write, attrs, via)

    # -------------------------------------------------------- loads and stores

    def load(self, addr: int, size: int, big_endian: bool = False,
             attrs: Optional[MemTxAttrs] = None) -> Tuple[int, MemTxResult]:
        """QEMU's address_space_ld*: (value, result) of a `size`-byte load.

        `size` is 1, 2, 4 or 8 bytes; `big_endian` the byte order of the value.

        Raises:
            ArgumentTypeError: `addr` is not an int.
            InvalidArgumentError: `size` is not 1, 2, 4 or 8, or the access runs
                past 2^64.
            IOMMUCycleError: the IOMMU translations do not end.
            TopologyError: the space is destroyed.
            Exception: what a device callback or a tap raises propagates.
        """
        if size not in (1, 2, 4, 8):
            raise InvalidArgumentError(f"load size must be 1, 2, 4 or 8, not {size!r}")
        _check_access(addr, size)
        return self._load(addr, size, big_endian, attrs or MEMTXATTRS_UNSPECIFIED)

    def store(self, addr: int, value: int, size: int, big_endian: bool = False,
              attrs: Optional[MemTxAttrs] = None) -> MemTxResult:
        """QEMU's address_space_st*: store the low `size` bytes of `value`.

        `size` is 1, 2, 4 or 8 bytes and `value` fits in it (0 <= value <
        2^(8*size)).

        Raises:
            ArgumentTypeError: `addr` is not an int.
            InvalidArgumentError: `size` is not 1, 2, 4 or 8, `value` does not fit
                it, or the access runs past 2^64.
            IOMMUCycleError: the IOMMU translations do not end.
            TopologyError: the space is destroyed.
            Exception: what a device callback or a tap raises propagates.
        """
        if size not in (1, 2, 4, 8):
            raise InvalidArgumentError(f"store size must be 1, 2, 4 or 8, not {size!r}")
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
            raise InvalidArgumentError(f"value {value!r} does not fit in {size} bytes")
        _check_access(addr, size)
        return self._store(addr, value, size, big_endian, attrs or MEMTXATTRS_UNSPECIFIED)

    # The slow paths of the bound loads and stores, which also get every call
    # the builtin would not take (keywords, a bool or an object with only
    # __index__ as the address, a value that does not fit): they check as
    # load() and store() do, so every path refuses the same with the same error.
    def _load_or_raise(self, size: int, big: bool, addr: int) -> int:
        _check_access(addr, size)
        value, result = self._load(addr, size, big, MEMTXATTRS_UNSPECIFIED)
        if result:
            raise _bus_error(self, result, addr, size, False, whole=True)
        return value

    def _store_or_raise(self, size: int, big: bool, addr: int, value: int) -> None:
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
            raise InvalidArgumentError(f"value {value!r} does not fit in {size} bytes")
        _check_access(addr, size)
        result = self._store(addr, value, size, big, MEMTXATTRS_UNSPECIFIED)
        if result:
            raise _bus_error(self, result, addr, size, True, whole=True)

    def _resolve(self, addr: int, size: int,
                 is_write: bool) -> Tuple[Any, int, Optional[MemoryRegion], int, int, int]:
        """Translate once, through IOMMUs: (space, addr, region or None,
        offset, in-section length, flags); a permission fault gives the
        unassigned region at the IOMMU's offset."""
        space: AccessMixin = self
        via: Tuple[Tuple[str, str], ...] = ()
        while True:
            space._check_live()
            t = translate_section(space, addr, size)
            region = t.region
            if not (t.flags & SECTION_IOMMU and region is not None):
                return space, addr, region, t.offset, t.len, t.flags
            via = _one_more_translation(via, cast("AddressSpace", space), region)
            found = _iommu_translate(region, t.offset, size, is_write)
            if found is None:
                return space, addr, None, t.offset, size, 0
            space, addr, size = found

    def _load(self, addr: int, size: int, big: bool, attrs: MemTxAttrs) -> Tuple[int, MemTxResult]:
        while True:
            space, taddr, region, offset, length, flags = self._resolve(addr, size, False)
            if not (region is not None and length >= size
                    and flags & (SECTION_RAM | SECTION_ROMD)):
                break
            buf = bytearray(size)
            # Translating and reading are two read-side sections: if a commit
            # came between them, C stops, and the load starts over.
            if not lib.pm_as_read(space._cas, taddr, ffi.from_buffer(buf), size, ffi.NULL):
                value = int.from_bytes(buf, _byteorder(big))
                space._tell(taddr, size, False, region, offset, value, None, big, attrs, OK,
                            False)
                return value, OK
        ops = region.ops if region is not None else None
        value, result = mmio.dispatch_read(ops, offset, size, attrs, _name(region))
        space._tell(taddr, size, False, region, offset, value, None,
                    mmio.byteorder(ops) == "big", attrs, result, True)
        if ops is not None and ops.endianness != _byteorder(big):
            value = int.from_bytes(value.to_bytes(size, "little"), "big")
        return value, result

    def _store(self, addr: int, value: int, size: int, big: bool,
               attrs: MemTxAttrs) -> MemTxResult:
        while True:
            space, taddr, region, offset, length, flags = self._resolve(addr, size, True)
            if not (region is not None and length >= size and flags & SECTION_RAM):
                break
            if flags & SECTION_READONLY and not region.readonly:
                # RAM behind a read-only alias: dropped, as in rw.
                space._tell(taddr, size, True, region, offset, value, None, big, attrs, OK,
                            False)
                return OK
            if flags & (SECTION_READONLY | SECTION_ROMD):
                break
            data = value.to_bytes(size, _byteorder(big))
            # As in _load: a commit between translating and writing: again.
            if not lib.pm_as_write(space._cas, taddr, data, size, ffi.NULL):
                space._tell(taddr, size, True, region, offset, value, None, big, attrs, OK,
                            False)
                return OK
        ops = region.ops if region is not None else None
        if ops is not None and ops.endianness != _byteorder(big):
            value = int.from_bytes(value.to_bytes(size, "little"), "big")
        result = mmio.dispatch_write(ops, offset, value, size, attrs, _name(region))
        space._tell(taddr, size, True, region, offset, value, None,
                    mmio.byteorder(ops) == "big", attrs, result, True)
        return result


def _one_more_translation(via: Tuple[Tuple[str, str], ...], space: "AddressSpace",
                          region: MemoryRegion) -> Tuple[Tuple[str, str], ...]:
    """`via` with one more IOMMU translation (by `region`, reached in
    `space`); IOMMUCycleError past IOMMU_MAX_TRANSLATIONS, naming the chain."""
    via = via + ((space.name, region.name),)
    if len(via) > IOMMU_MAX_TRANSLATIONS:
        # Name each distinct hop once, in the order they were met.
        hops = list(dict.fromkeys(via))
        chain = " -> ".join(f"IOMMU {mr!r} in {name!r}" for name, mr in hops + hops[:1])
        raise IOMMUCycleError(f"an access went through {IOMMU_MAX_TRANSLATIONS} IOMMU "
                              f"translations without reaching memory; the cycle: {chain}")
    return via


def _iommu_translate(region: MemoryRegion, offset: int, length: int,
                     is_write: bool) -> Optional[Tuple["AddressSpace", int, int]]:
    """Ask the IOMMU: (target space, target address, length kept within the
    mapping's page), or None if it refuses the access.  An answer that makes
    no sense is the IOMMU model's bug: a TopologyError naming the region."""
    flag = IOMMUAccessFlags.WO if is_write else IOMMUAccessFlags.RO
    if region.translate is None:
        raise TopologyError(f"IOMMU {region.name!r} has no translate callable")
    try:
        entry = IOMMUTLBEntry(*region.translate(offset, flag))
    except TypeError as exc:
        raise TopologyError(f"IOMMU {region.name!r}: translate must answer an "
                            f"IOMMUTLBEntry ({exc})") from None
    if not isinstance(entry.perm, int) or not entry.perm & flag:
        return None
    mask, translated = entry.addr_mask, entry.translated_addr
    # QEMU's masks are a power of two minus one; anything else can split an
    # access into empty pieces or leave the address space.
    if (not isinstance(mask, int) or not isinstance(translated, int) or mask < 0
            or mask & (mask + 1) or not 0 <= translated < ADDRESS_SPACE_SIZE
            or mask >= ADDRESS_SPACE_SIZE):
        raise TopologyError(f"IOMMU {region.name!r} answered an invalid mapping for "
                            f"{offset:#x}: translated_addr={translated!r}, addr_mask={mask!r}")
    target_space = entry.target_as if entry.target_as is not None else region.target
    if target_space is None:
        raise TopologyError(f"IOMMU {region.name!r} translated {offset:#x} into no address "
                            f"space: give the region a target or the entry a target_as")
    if not isinstance(target_space, AccessMixin):
        what = "its entry's target_as" if entry.target_as is not None else "its target"
        raise ArgumentTypeError(f"IOMMU {region.name!r}: {what} must be an AddressSpace, "
                                f"not {type(target_space).__name__}")
    target = (translated & ~mask) | (offset & mask)
    return target_space, target, min(length, (target | mask) - target + 1)


def _bus_error(space: Any, result: MemTxResult, addr: int, size: int, is_write: bool,
               whole: bool = False) -> MemTxError:
    """The MemTxError to raise, naming the space, the region and the reason
    (pymem/buserror.py): built on the error path only."""
    from ..buserror import bus_error

    return bus_error(space, result, addr, size, is_write, _iommu_translate, whole)


def _unassigned_stretch(addr: int, rest: int, hole: int) -> int:
    """How many of `rest` bytes at `addr` QEMU answers as unassigned space
    when the hole there is `hole` bytes long: its pieces (`mmio.access_size`
    with no ops: at most 4 bytes, aligned to their size) up to and with the
    first one that reaches the hole's end, which may run past it.  O(1):
    the whole 4-byte pieces inside the hole are counted, not walked.

    Raises nothing.
    """
    if hole >= rest:
        return rest
    end, stop, pos = addr + hole, addr + rest, addr
    while pos < end:
        if not pos & 3 and end - pos > 4:
            pos += (end - pos - 1) & ~3         # whole pieces, all inside the hole
            continue
        pos += mmio.access_size(None, stop - pos, pos)
    return pos - addr


def _name(region: Optional[MemoryRegion]) -> str:
    return region.name if region is not None else "unassigned"
