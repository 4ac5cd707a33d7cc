"""Python face of the C dispatch: one FlatView's address -> section table.

`Dispatch.build(ranges, page_bits)` validates the flat ranges in Python (order,
overlap, sizes), hands them to C in address order and commits; the result is
immutable apart from its most-recently-used section. Lookups return section
indices; `sections()` maps them back to the ranges they came from.

Thread safety:
    A built table never changes but for its MRU section (a hint written
    with relaxed atomics): `lookup`, `translate`, `lookup_many` and the
    inspection methods may run from any thread in parallel.  A builtin taken
    from a Dispatch (`lk = d.lookup`) keeps the C table alive for as long as
    it is held, even after `close()` or after its view was replaced; the
    Dispatch object itself keeps it until `close()` or collection.
    `Section`, `DispatchRange` and `Translation` are immutable values.
"""
from __future__ import annotations

from array import array
from functools import partial
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, NoReturn, Optional, Sequence, Tuple

from ._bindings import _fastpath, ffi, lib
from .errors import (ArgumentTypeError, CapacityError, IndexOutOfRangeError,
                     InvalidArgumentError, RangeOrderError, TopologyError, Uncopyable, check)

ADDRESS_SPACE_SIZE = 1 << 64
MIN_PAGE_BITS = 10
MAX_PAGE_BITS = 16
ENTRY_LIMIT = lib.PM_NIL
NODE_ENTRIES = 512

SECTION_SUBPAGE = lib.PM_SECTION_SUBPAGE
SECTION_RAM = lib.PM_SECTION_RAM
SECTION_READONLY = lib.PM_SECTION_READONLY
SECTION_ROMD = lib.PM_SECTION_ROMD
SECTION_IOMMU = lib.PM_SECTION_IOMMU
SECTION_NONVOLATILE = lib.PM_SECTION_NONVOLATILE

NO_REGION = 0xFFFFFFFF
"""The region id of section #0 (unassigned) and of sub-page sections."""


class DispatchRange(NamedTuple):
    """One flat range as the builder takes it: `size` may be 2^64."""

    start: int
    size: int
    offset: int = 0
    region: int = 0
    flags: int = 0


class Section(NamedTuple):
    """One entry of the sections table.

    Raises nothing.
    """

    # The section's number in the table, named as in C.  The field hides
    # tuple.index, which mypy reports; renaming it would break callers, and
    # nothing needs tuple.index on a Section.
    index: int  # type: ignore[assignment]
    start: int
    size: int
    offset: int
    region: int
    flags: int

    @property
    def last(self) -> int:
        """Inclusive last address of the section (start + size - 1; no
        overflow for a section ending at 2^64 - 1)."""
        return self.start + self.size - 1

    @property
    def is_subpage(self) -> bool:
        """True for a sub-page section: a page split between sections, whose
        pieces `Dispatch.subpage(index)` lists."""
        return bool(self.flags & SECTION_SUBPAGE)


Translation = _fastpath.Translation
"""What `translate` answers: (section, offset_in_region, length), where length
is how much of the asked length from the address stays inside the section."""


def check_page_bits(page_bits: int) -> None:
    """Refuse a target page size QEMU does not have: `page_bits` must be an
    int (ArgumentTypeError otherwise) from MIN_PAGE_BITS to MAX_PAGE_BITS,
    10..16 (TopologyError otherwise).

    Raises:
        ArgumentTypeError: `page_bits` is not an int.
        TopologyError: `page_bits` is outside 10..16 (1 KiB to 64 KiB pages).
    """
    if not isinstance(page_bits, int) or isinstance(page_bits, bool):
        raise ArgumentTypeError(f"page_bits must be an int, not {type(page_bits).__name__}")
    if not MIN_PAGE_BITS <= page_bits <= MAX_PAGE_BITS:
        raise TopologyError(
            f"page_bits must be between {MIN_PAGE_BITS} and {MAX_PAGE_BITS}, not {page_bits}")


def _check_range(i: int, r: DispatchRange, next_start: Optional[int]) -> int:
    """Validate one range against its predecessor; returns its exclusive end."""
    for field in ("start", "size", "offset", "region", "flags"):
        value = getattr(r, field)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ArgumentTypeError(f"range {i}: {field} must be an int, "
                                    f"not {type(value).__name__}")
    if r.size <= 0:
        raise TopologyError(f"range {i} at {r.start:#x}: size must be positive, not {r.size}")
    if r.start < 0 or r.start >= ADDRESS_SPACE_SIZE:
        raise TopologyError(f"range {i}: start {r.start:#x} is outside the 64-bit space")
    end = r.start + r.size
    if end > ADDRESS_SPACE_SIZE:
        raise TopologyError(
            f"range {i} at {r.start:#x}: size {r.size:#x} runs past 2^64")
    if not 0 <= r.offset < ADDRESS_SPACE_SIZE or r.offset + r.size > ADDRESS_SPACE_SIZE:
        raise TopologyError(f"range {i} at {r.start:#x}: offset {r.offset:#x} out of range")
    if not 0 <= r.region < NO_REGION:
        raise TopologyError(f"range {i}: region id {r.region} out of range")
    if r.flags & SECTION_SUBPAGE or r.flags < 0 or r.flags > 0xFFFFFFFF:
        raise TopologyError(f"range {i}: invalid flags {r.flags:#x}")
    if next_start is not None and r.start < next_start:
        raise RangeOrderError(
            f"range {i} at {r.start:#x} starts before the end of range {i - 1} "
            f"({next_start:#x}): ranges must be sorted and must not overlap")
    return end


def check_build(status: int, i: int, start: int, size: int, max_sections: int = ENTRY_LIMIT,
                max_nodes: int = ENTRY_LIMIT) -> None:
    """Raise for a failed dispatch build; `size` 0 means no range failed.

    `i`, `start` and `size` (bytes) name the range C stopped at.

    Raises:
        CapacityError: more sections or radix nodes than the limits allow.
        PymemError: the exception `errors.check` gives for any other status
            (OutOfMemoryError, RangeOrderError, TopologyError).
    """
    if not status:
        return
    if not size:
        check(status, "building a dispatch")
    if status in (lib.PM_ERR_TOO_MANY_SECTIONS, lib.PM_ERR_TOO_MANY_NODES):
        kind = "sections" if status == lib.PM_ERR_TOO_MANY_SECTIONS else "nodes"
        limit = max_sections if kind == "sections" else max_nodes
        raise CapacityError(
            f"range {i} at {start:#x} (size {size:#x}) needs more than "
            f"{limit} {kind}: a dispatch entry addresses at most {ENTRY_LIMIT}")
    check(status, f"adding range {i} at {start:#x}")


def c_address(cdata: Any) -> int:
    """The address of a cffi pointer or of a `lib` function, as an int.

    Raises nothing.
    """
    return int(ffi.cast("uintptr_t", cdata))


_FUNCTION_ADDRESSES: Dict[str, int] = {}


def _function_address(function: str) -> int:
    """The address of `lib.<function>`, looked up once (a lookup through
    cffi costs ~1.4 us, and every view binds several builtins)."""
    address = _FUNCTION_ADDRESSES.get(function)
    if address is None:
        address = _FUNCTION_ADDRESSES[function] = c_address(ffi.addressof(lib, function))
    return address


def bind_fast(kind: str, function: str, handle: Any, width: int = 0,
              fallback: Any = None, keepalive: Any = None, device: bool = False,
              big_endian: bool = False, taps: Any = None,
              second: Optional[str] = None) -> Callable[..., Any]:
    """A builtin calling `lib.<function>(handle, ...)` without cffi's argument
    handling (see csrc/ext/fastpath.c).  It keeps `keepalive` (by default
    `handle`) alive: whatever the C object reaches must be kept by it.  With
    `device`, a load or store of an address space (`handle`) calls a device's
    plain callback itself when one callback answers the access; `keepalive`
    is then the space's pin.  `taps` (a space's TapSet, pymem/taps.py) is
    told of each access of a load, store, read or write builtin.  `second`
    names a second C function (`rw`: the write one).

    `width` is the access size in bytes (1, 2, 4, 8) of a load or store.

    Raises nothing.
    """
    fn = _function_address(function)
    lock = _function_address("pm_rcu_read_lock")
    unlock = _function_address("pm_rcu_read_unlock")
    translate = (_function_address(second) if second is not None
                 else _function_address("pm_as_translate") if device else 0)
    return _fastpath.bind(kind, fn, c_address(handle), width, fallback,
                          handle if keepalive is None else keepalive, lock, unlock, translate,
                          big_endian, taps)


def _closed(*args: Any) -> NoReturn:
    raise InvalidArgumentError("the dispatch is closed")


class Dispatch(Uncopyable):
    """A committed dispatch table, owned by this object (freed with it).

    `lookup(addr) -> int` is the section index of `addr`, sub-pages resolved;
    `translate(addr, length=1) -> Translation` adds the offset in the region
    and the length that stays inside the section.  Both are builtins bound to
    the C table, the cheapest calls Python can make.

    Raises nothing (tables are made by `build`, or by a FlatView's render).
    """

    __slots__ = ("_d", "page_bits", "_keepalive", "lookup", "translate", "__weakref__")

    lookup: Callable[[int], int]
    translate: Callable[..., Translation]

    def __init__(self, handle: Any, page_bits: int, keepalive: Any = None) -> None:
        self._d = handle
        self.page_bits = page_bits
        self._keepalive = keepalive
        # `lookup` and `translate` are bound on first use (__getattr__): a
        # commit builds a dispatch per view, and most are never looked up
        # from Python.

    def __getattr__(self, name: str) -> Any:
        # Called only while the `lookup`/`translate` slot is still empty.
        if name == "lookup":
            function = "pm_dispatch_lookup"
        elif name == "translate":
            function = "pm_dispatch_translate"
        else:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        if self._d is None:
            return _closed
        bound = bind_fast(name, function, self._d)
        setattr(self, name, bound)
        return bound

    @classmethod
    def build(cls, ranges: Iterable[DispatchRange], page_bits: int = 12, *,
              stats: Any = None, hosts: Optional[Sequence[Any]] = None,
              objects: Optional[Sequence[Any]] = None,
              max_sections: int = ENTRY_LIMIT, max_nodes: int = ENTRY_LIMIT,
              checked: bool = False) -> "Dispatch":
        """Build and commit a dispatch from ranges given in address order.

        `hosts`, if given, holds per range a (host pointer, dirty pointer,
        dirty mask[, dirty page_bits, dirty pages]) tuple for the access path
        (without the last two, writes mark no dirty byte); `objects`
        the Python object C hands back for each range's section (its `user`
        pointer: the object's address, kept alive by this dispatch). The
        limits exist to test the capacity errors without allocating 2^26 nodes.
        `checked=True` skips the Python checks of ranges a FlatView has just
        rendered (C still refuses what breaks its invariants).

        Ranges must be in address order, not overlapping, each of positive `size`
        (bytes) and inside [0, 2^64); `region` ids and `offset` fit C's fields;
        `page_bits` is 10..16.

        Raises:
            ArgumentTypeError: `page_bits` or a range field is not an int.
            TopologyError: `page_bits` outside 10..16, or a range that is empty,
                outside the 64-bit space, or with an offset, region id or flags out
                of range (the message names the range).
            RangeOrderError: ranges out of address order or overlapping.
            InvalidArgumentError: `hosts` or `objects` of another length than
                `ranges`, or a limit outside 1..ENTRY_LIMIT.
            CapacityError: more sections or radix nodes than an entry can address.
            OutOfMemoryError: C cannot allocate the table.
        """
        check_page_bits(page_bits)
        ranges = [r if isinstance(r, DispatchRange) else DispatchRange(*r) for r in ranges]
        for name, per_range in (("hosts", hosts), ("objects", objects)):
            if per_range is not None and len(per_range) != len(ranges):
                raise InvalidArgumentError(f"{name} has {len(per_range)} entries for "
                                           f"{len(ranges)} ranges")
        for what, limit in (("max_sections", max_sections), ("max_nodes", max_nodes)):
            if not isinstance(limit, int) or not 1 <= limit <= ENTRY_LIMIT:
                raise InvalidArgumentError(f"{what} must be between 1 and {ENTRY_LIMIT}, "
                                           f"not {limit!r}")
        next_start = None
        for i, r in enumerate(() if checked else ranges):
            if next_start == ADDRESS_SPACE_SIZE:
                raise RangeOrderError(
                    f"range {i} at {r.start:#x} follows a range that ends at 2^64")
            next_start = _check_range(i, r, next_start)
        # One C call for the whole build: every cffi call gives up the GIL,
        # and winning it back from busy reader threads costs more than the call.
        c_ranges = ffi.new("pm_range[]", max(len(ranges), 1))
        for i, r in enumerate(ranges):
            c = c_ranges[i]
            c.start = r.start
            c.last = r.start + r.size - 1
            c.offset = r.offset
            c.region = r.region
            c.flags = r.flags
            if hosts is not None and hosts[i] is not None:
                c.host, c.dirty, c.dirty_mask = hosts[i][:3]
                # Writes mark at most `pages` dirty bytes of 2^page_bits each.
                c.dirty_page_bits, c.dirty_pages = hosts[i][3:] or (page_bits, 0)
            # CPython: an object's id is its address, what fastpath.c hands back.
            if objects is not None:
                c.user = ffi.cast("void *", id(objects[i]))
        out = ffi.new("pm_dispatch **")
        failed = ffi.new("size_t *")
        # Owned in the same C call that builds it: an interrupt cannot leak it.
        status, handle = _fastpath.call_owned(
            ffi.gc, lib.pm_dispatch_build,
            (page_bits, stats if stats is not None else ffi.NULL, max_sections, max_nodes,
             c_ranges, len(ranges), failed, out), ((out, cls.destructor(stats)),))
        if status:
            i = failed[0]
            bad = ranges[i] if i < len(ranges) else DispatchRange(0, 0)
            check_build(status, i, bad.start, bad.size, max_sections, max_nodes)
        return cls.adopt(handle, page_bits, (hosts, objects))

    @classmethod
    def own(cls, built: Any, page_bits: int, stats: Any, keepalive: Any) -> "Dispatch":
        """Take ownership of a `pm_dispatch *` just built in C; `keepalive`
        is what its ranges reach (regions, memory).

        Raises nothing.
        """
        return cls(ffi.gc(built, cls.destructor(stats)), page_bits, keepalive)

    @classmethod
    def adopt(cls, handle: Any, page_bits: int, keepalive: Any) -> "Dispatch":
        """Wrap a `pm_dispatch *` that is already owned (wrapped in ffi.gc
        with `destructor`, by `_fastpath.call_owned` in the call that built it).

        Raises nothing.
        """
        return cls(handle, page_bits, keepalive)

    @staticmethod
    def destructor(stats: Any) -> Callable[[Any], None]:
        """The ffi.gc destructor of a `pm_dispatch *` counted in `stats`.

        Raises nothing.
        """
        # It holds `stats`: the C dispatch counts itself down in them when
        # freed, so they must outlive it whatever the GC's order.  A partial
        # of a C function, not a lambda: a signal landing in a Python
        # destructor would skip the free (reported as unraisable, leaked).
        return partial(lib.pm_dispatch_release, stats if stats is not None else ffi.NULL)

    def close(self) -> None:
        """Drop this object's hold on the C table: it is freed at once unless
        a builtin taken from it earlier (`lk = d.lookup`) still holds it, or
        it is a FlatView's (`view.dispatch`): a view keeps its own hold for as
        long as any address space may read it, so closing a published view's
        dispatch only closes this object.

        Idempotent.

        Raises nothing.
        """
        if self._d is not None:
            self.lookup = self.translate = _closed
            self._d = None

    @property
    def handle(self) -> Any:
        """The `pm_dispatch *` (for other C calls); ValueError once closed.

        Raises:
            InvalidArgumentError: the dispatch is closed.
        """
        if self._d is None:
            _closed()
        return self._d

    def lookup_many(self, addrs: Any, out: Any = None, *, simd: bool = True) -> Any:
        """Section indices of a buffer of uint64 addresses, in one C call.

        `addrs` is any contiguous buffer of 64-bit items (array('Q'), a numpy
        uint64 array); the result goes into `out` (a writable buffer of 32-bit
        items) or a new array('I').  `simd=False` takes the scalar path even
        where this view and CPU would use AVX2 (`batch_path`); the answers are
        the same.

        Raises:
            ArgumentTypeError: `addrs` does not hold 64-bit items or `out` 32-bit
                ones.
            InvalidArgumentError: `out` holds fewer entries than `addrs`, or the
                dispatch is closed.
            TypeError: `addrs` or `out` is not a contiguous buffer (or `out` is
                read-only).
        """
        for name, buf, width in (("addrs", addrs, 8), ("out", out, 4)):
            if buf is not None and memoryview(buf).itemsize != width:
                raise ArgumentTypeError(f"{name} must hold {width * 8}-bit items, not "
                                        f"{memoryview(buf).itemsize * 8}-bit ones")
        src = ffi.from_buffer("uint64_t[]", addrs)
        n = len(src)
        if out is None:
            out = array("I", bytes(4 * n))
        dst = ffi.from_buffer("uint32_t[]", out, require_writable=True)
        if len(dst) < n:
            raise InvalidArgumentError(f"out holds {len(dst)} uint32 entries, {n} needed")
        many = lib.pm_dispatch_lookup_many if simd else lib.pm_dispatch_lookup_many_scalar
        many(self.handle, src, dst, n)
        return out

    @property
    def batch_path(self) -> str:
        """How `lookup_many` searches this view on this CPU: "radix" (the
        radix walk, large views), "bounds" (a branch-free search over the
        resolved boundaries), "avx2" (the same boundaries compared four
        addresses at a time, the smallest views on CPUs with AVX2) or
        "one-level" (the walk in one load, views that all lie within one
        last-level radix node, such as a 64 KiB I/O space, past the AVX2
        compare's size)."""
        return {lib.PM_BATCH_RADIX: "radix", lib.PM_BATCH_BOUNDS: "bounds",
                lib.PM_BATCH_AVX2: "avx2", lib.PM_BATCH_ONE_LEVEL: "one-level",
                }[lib.pm_dispatch_batch_path(self.handle)]

    @property
    def levels(self) -> int:
        """Radix levels of the table: ((64 - page_bits - 1) // 9) + 1, as in
        QEMU (6 for 4 KiB pages)."""
        return int(lib.pm_dispatch_levels(self.handle))

    @property
    def mru(self) -> int:
        """The most recently used page-level section (QEMU's mru_section)."""
        return int(lib.pm_dispatch_mru(self.handle))

    def section_count(self) -> int:
        """Sections in the table, section 0 ("unassigned") included.

        Raises:
            InvalidArgumentError: the dispatch is closed.
        """
        return int(lib.pm_dispatch_section_count(self.handle))

    def section(self, index: int) -> Section:
        """Section `index` (0 <= index < section_count()); raises
        IndexOutOfRangeError past the end, ArgumentTypeError for a non-int.

        Raises:
            ArgumentTypeError: `index` is not an int.
            IndexOutOfRangeError: `index` is not below `section_count()`.
            InvalidArgumentError: the dispatch is closed.
        """
        _check_index("section", index)
        r = ffi.new("pm_range *")
        check(lib.pm_dispatch_section(self.handle, index, r), f"section {index}")
        return Section(index, r.start, r.last - r.start + 1, r.offset, r.region, r.flags)

    def sections(self) -> List[Section]:
        """Every section, in QEMU's numbering (registration order, 0 first).

        Raises:
            InvalidArgumentError: the dispatch is closed.
        """
        return [self.section(i) for i in range(self.section_count())]

    def subpage(self, index: int) -> List[Tuple[int, int, int]]:
        """Pieces (first, last, section) of sub-page section `index`, page-relative.

        `index` is a section number; an index that is not a sub-page section has
        no pieces.

        Raises:
            ArgumentTypeError: `index` is not an int.
            IndexOutOfRangeError: `index` does not fit 32 bits.
            InvalidArgumentError: the dispatch is closed.
        """
        _check_index("subpage", index)
        n = lib.pm_dispatch_subpage_pieces(self.handle, index, ffi.NULL, ffi.NULL, ffi.NULL, 0)
        firsts, lasts, secs = (ffi.new("uint32_t[]", max(n, 1)) for _ in range(3))
        lib.pm_dispatch_subpage_pieces(self.handle, index, firsts, lasts, secs, n)
        return [(firsts[i], lasts[i], secs[i]) for i in range(n)]

    @property
    def root(self) -> Tuple[int, int]:
        """The root entry as (ptr, skip)."""
        ptr = ffi.new("uint32_t[2]")
        lib.pm_dispatch_root(self.handle, ptr, ptr + 1)
        return ptr[0], ptr[1]

    def node_count(self) -> int:
        """Radix nodes in the table after compaction (512 entries each).

        Raises:
            InvalidArgumentError: the dispatch is closed.
        """
        return int(lib.pm_dispatch_node_count(self.handle))

    def node(self, index: int) -> List[Tuple[int, int]]:
        """Entries of node `index` as a list of 512 (skip, ptr) pairs.

        Raises:
            ArgumentTypeError: `index` is not an int.
            IndexOutOfRangeError: `index` is not below `node_count()`.
            InvalidArgumentError: the dispatch is closed.
        """
        _check_index("node", index)
        skips = ffi.new("uint8_t[]", NODE_ENTRIES)
        ptrs = ffi.new("uint32_t[]", NODE_ENTRIES)
        check(lib.pm_dispatch_node(self.handle, index, skips, ptrs), f"node {index}")
        return list(zip(skips, ptrs))


def _check_index(what: str, index: Any) -> None:
    """Refuse a table index C's uint32_t cannot hold, before it reaches C."""
    if not isinstance(index, int) or isinstance(index, bool):
        raise ArgumentTypeError(f"{what} index must be an int, not {type(index).__name__}")
    if not 0 <= index < 1 << 32:
        raise IndexOutOfRangeError(f"{what} index {index} is out of range")
