"""FlatView: what an address space sees, rendered from a region tree.

Rendering follows QEMU's render_memory_region: walk the tree from the view's
root, children before their parent in subregion order, and let every
terminating region fill only the addresses no earlier region took; then merge
neighbours that continue each other (flatview_simplify).  The walk runs in C
(csrc/render.c) over the C mirror of the tree that every edit keeps current
(csrc/region.c), so a commit costs no Python work per region.

A FlatView owns the dispatch built from its ranges.  It is reference counted
as QEMU's is: the registry of shared views and every address space using it
hold a reference, and the last unref hands the view to a reclaim callback that
frees it only once no reader can still hold it (RCU).

Thread safety:
    A rendered view never changes: `ranges`, `range_at`, `lookup`,
    `first_range_after`, `explain` and its dispatch may be read from any
    thread for as long as the view is held (a reference to the FlatView
    object, or an RCU read-side section begun while it was published).
    `ref`, `unref` and `destroy` are the memory system's, called under its
    writer lock.  `render` holds the system's writer lock when the root is
    in a system; rendering runs in C under the tree lock.
"""
from __future__ import annotations

import contextlib
import gc
import struct
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

from ._bindings import _fastpath, ffi, lib
from .dispatch import (SECTION_NONVOLATILE, SECTION_READONLY, SECTION_ROMD, Dispatch,
                       c_address, check_build)
from .errors import (ArgumentTypeError, IndexOutOfRangeError, ReadOnlyAttributeError,
                     TopologyError, Uncopyable, check, fail)
from .region import (ADDRESS_SPACE_SIZE, CONTAINER, MAX_ALIAS_VISITS, TREE_LOCK, MemoryRegion,
                     loop_text, runaway_loop)

if TYPE_CHECKING:
    from .explain import Explanation


class FlatRange:
    """A run of addresses that one terminating region answers, with the
    attributes gathered on the path to it.

    Raises nothing (ranges are made by rendering).
    """

    __slots__ = ("addr", "size", "region", "offset_in_region", "flags", "readonly",
                 "nonvolatile", "romd", "dirty_log")

    def __init__(self, addr: int, size: int, region: MemoryRegion, offset_in_region: int,
                 flags: int, dirty_log: int) -> None:
        self.addr = addr
        self.size = size
        self.region = region
        self.offset_in_region = offset_in_region
        self.flags = flags   # the dispatch section flags it was rendered with
        self.readonly = bool(flags & SECTION_READONLY)
        self.nonvolatile = bool(flags & SECTION_NONVOLATILE)
        self.romd = bool(flags & SECTION_ROMD)
        self.dirty_log = dirty_log

    @property
    def end(self) -> int:
        """First address past the range (may be 2^64)."""
        return self.addr + self.size

    def same_as(self, other: "FlatRange") -> bool:
        """QEMU's flatrange_equal: everything but the dirty-log mask.

        Raises nothing.
        """
        return (self.region is other.region and self.addr == other.addr
                and self.size == other.size
                and self.offset_in_region == other.offset_in_region
                and self.romd == other.romd and self.readonly == other.readonly
                and self.nonvolatile == other.nonvolatile)

    def __repr__(self) -> str:
        return (f"<FlatRange {self.addr:#x}+{self.size:#x} {self.region.name!r}"
                f" @{self.offset_in_region:#x}{' ro' if self.readonly else ''}>")


# pm_range as C lays it out (csrc/pymem.h), for reading rendered ranges in bulk.
# start last offset region flags host dirty dirty_mask dirty_page_bits user dirty_pages
_RANGE_FORMAT = "@QQQIIPPIIPQ"
_RANGE_SIZE = struct.calcsize(_RANGE_FORMAT)
assert _RANGE_SIZE == ffi.sizeof("pm_range"), "pm_range layout changed"


# From how many ranges a render releases the GIL (pm_render_dispatch_nogil).
# Under contention a release costs the switch interval (5 ms: another thread
# takes the GIL and keeps it that long once the render is done); the render
# itself costs 0.3-0.5 us a range here.  So below ~10,000 ranges (3-5 ms of
# C) the render keeps the GIL, and other threads wait at most as long as
# they would for any Python code; above, it runs in parallel with them.
RENDER_NOGIL_RANGES = 10_000


# The C render's out parameters, made once: every render holds TREE_LOCK
# from the call until its outputs are read, so one set serves them all.
_OUT_RANGES = ffi.new("pm_range **")
_OUT_COUNT = ffi.new("size_t *")
_OUT_BUILT = ffi.new("pm_dispatch **")
_OUT_FAILED = ffi.new("size_t *")
_UINTPTR = ffi.typeof("uintptr_t")


def _function_address(name: str) -> int:
    return int(ffi.cast(_UINTPTR, ffi.addressof(lib, name)))


# What csrc/ext/commit.c calls: the core's walk, render and release, cffi's
# cast and gc to own what the render makes, TREE_LOCK.
_fastpath.set_commit_api(
    tuple(_function_address(name) for name in (
        "pm_flatview_root", "pm_region_user", "pm_render_dispatch", "pm_ranges_free",
        "pm_dispatch_release", "pm_rcu_try_synchronize", "pm_as_publish")),
    MAX_ALIAS_VISITS, ffi.cast, ffi.gc, ffi.typeof("pm_range *"), ffi.typeof("pm_dispatch *"),
    lib.pm_ranges_free, TREE_LOCK)
_render_view = _fastpath.render_view


def _render(root: MemoryRegion, page_bits: Optional[int] = None, stats: Any = None,
            expected: int = 0, destructor: Any = None) -> Tuple[Any, List[MemoryRegion], Any]:
    """Render `root`'s tree in C (csrc/render.c); with `page_bits`, build the
    dispatch in the same call.  Returns the C array of merged ranges (None if
    empty), the region of each range, and the built `pm_dispatch *` (or
    None), both already owned (freed with their last reference).
    `expected` is how many ranges the render will likely make (the last
    view's count): from RENDER_NOGIL_RANGES on, the GIL is released.
    `destructor`: `Dispatch.destructor(stats)`, if the caller keeps one."""
    out_ranges, count = _OUT_RANGES, _OUT_COUNT
    with TREE_LOCK:
        # C allocates the ranges and the dispatch; call_owned wraps them in
        # ffi.gc within the same C call, so an interrupt (Ctrl-C) after it
        # returns drops them with this frame instead of leaking them.
        if page_bits is None:
            status, array = _fastpath.call_owned(
                ffi.gc, lib.pm_render, (root._node, MAX_ALIAS_VISITS, out_ranges, count),
                ((out_ranges, lib.pm_ranges_free),))
            dispatch = None
        else:
            render = (lib.pm_render_dispatch_nogil if expected >= RENDER_NOGIL_RANGES
                      else lib.pm_render_dispatch)
            if destructor is None:
                destructor = Dispatch.destructor(stats)
            status, array, dispatch = _fastpath.call_owned(
                ffi.gc, render,
                (root._node, MAX_ALIAS_VISITS, page_bits,
                 stats if stats is not None else ffi.NULL, out_ranges, count, _OUT_FAILED,
                 _OUT_BUILT),
                ((out_ranges, lib.pm_ranges_free), (_OUT_BUILT, destructor)))
        n = count[0]
        if status == lib.PM_OK:
            # Taken before the lock goes, while the tree holds every region:
            # from here on the list keeps them (and the memory the dispatch
            # points into) alive.
            regions = (_fastpath.range_users(int(ffi.cast(_UINTPTR, array)), n)
                       if array is not None else [])
            return array, regions, dispatch
        failed = _OUT_FAILED[0] if page_bits is not None else n
    if status == lib.PM_ERR_LOOP:
        # Only a tree changed behind the edits' backs gets here: name the loop.
        loop = runaway_loop(root, 0, 0, ADDRESS_SPACE_SIZE)
        named = loop_text(loop) if loop is not None else "an alias loop"
        raise TopologyError(f"rendering {root.name!r}: {named} never leaves its window "
                            f"(an alias entered more than {MAX_ALIAS_VISITS} times on one "
                            f"path)")
    if array is not None and failed < n:
        bad = array[failed]
        check_build(status, failed, bad.start, bad.last - bad.start + 1)
    fail(status, f"rendering {root.name!r}")


def _flat_ranges(array: Any, regions: List[MemoryRegion]) -> List[FlatRange]:
    """FlatRange objects for the C array of rendered ranges."""
    if not regions:
        return []
    data = ffi.buffer(array, len(regions) * _RANGE_SIZE)
    # A burst of acyclic objects: without the pause, the allocation count
    # would start full collections that scan every object of the process.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return [FlatRange(start, last - start + 1, mr, offset, flags, mask)
                for (start, last, offset, _, flags, _, _, mask, _, _, _), mr
                in zip(struct.iter_unpack(_RANGE_FORMAT, data), regions)]
    finally:
        if collecting:
            gc.enable()





def render(root: Optional[MemoryRegion]) -> List[FlatRange]:
    """The merged flat ranges of the tree under `root` (its own address counts).

    Raises:
        TopologyError: an alias loop under `root` never leaves its window.
        CapacityError: the view needs more sections or radix nodes than a
            dispatch entry can address.
        OutOfMemoryError: C cannot allocate the ranges or the table.
    """
    if root is None:
        return []
    system = root.system
    # Within a system, as a commit does: no edit is half made.
    with system._lock if system is not None else contextlib.nullcontext():
        array, regions, _ = _render(root)
    return _flat_ranges(array, regions)


def get_flatview_root(mr: Optional[MemoryRegion]) -> Optional[MemoryRegion]:
    """The region whose rendering an address space rooted at `mr` shares
    (QEMU's memory_region_get_flatview_root); None renders nothing.

    The walk can only come back to a region through a loop of empty windows
    (size 0: any other such loop renders forever and is refused); it stops
    at the first region seen twice.

    Raises nothing.
    """
    # A commit walks in C (_fastpath.flatview_roots, csrc/render.c's
    # pm_flatview_root); this is the same walk over the Python fields.
    seen = set()
    while mr is not None and mr._enabled:
        if mr._id in seen:
            return mr
        seen.add(mr._id)
        target = mr._alias
        if target is not None:
            if mr._alias_offset == 0 and mr._size >= target._size:
                # The whole target is visible: share the target's view.
                mr = target
                continue
        elif mr._kind == CONTAINER:
            found = 0
            only: Optional[MemoryRegion] = None
            for child in mr._subs:
                if child._enabled:
                    found += 1
                    if found > 1:
                        only = None
                        break
                    if child._addr == 0 and mr._size >= child._size:
                        only = child
            if found == 0:
                return None
            if only is not None:
                mr = only
                continue
        return mr
    return None


class FlatView(Uncopyable):
    """The rendered ranges of one root and the dispatch built from them.

    Rendering and the dispatch build happen in one C call; the FlatRange
    objects are made from C's ranges the first time `ranges` is read (by a
    listener, `info mtree -f`, ...), so a commit nobody inspects makes none.

    `page_bits` is the target page size as a power of two (10..16).

    Raises:
        TopologyError: an alias loop under `root` never leaves its window.
        CapacityError: the view needs more sections or radix nodes than a
            dispatch entry can address.
        OutOfMemoryError: C cannot allocate the ranges or the table.
    """

    __slots__ = ("root", "_dispatch", "_handle", "_address", "_array", "_regions", "_ranges",
                 "_refs", "_reclaim", "_stats", "_page_bits", "__weakref__")

    def __init__(self, root: Optional[MemoryRegion], page_bits: int,
                 reclaim: Callable[["FlatView"], None], stats: Any = None,
                 expected: int = 0, destructor: Any = None, stats_address: int = 0) -> None:
        """Render `root` (None: nothing) now.  `expected`: about how many
        ranges it will have (the root's last view's count), which decides
        whether the render releases the GIL; `destructor`: the stats'
        `Dispatch.destructor`, if the caller keeps one, and `stats_address`
        the address of `stats` (a commit renders in one C call with both)."""
        self.root = root
        self._ranges: Optional[List[FlatRange]] = None
        self._page_bits = page_bits
        self._regions: List[MemoryRegion]
        self._array: Any   # the C ranges (pm_range *), None when there are none
        # The Dispatch object is made when first asked for (`dispatch`): a
        # commit makes a view per changed root, and most are never looked
        # up from Python.
        self._dispatch: Optional[Dispatch] = None
        if root is None:
            self._array, self._regions = None, []
            self._dispatch = Dispatch.build([], page_bits, stats=stats)
            handle = self._dispatch.handle
            address = int(ffi.cast(_UINTPTR, handle))
        else:
            rendered = None
            if destructor is not None and expected < RENDER_NOGIL_RANGES:
                # A commit's render, in one C call (csrc/ext/commit.c); None
                # when it failed, and the Python path renders again to say why.
                rendered = _render_view(root, page_bits, stats_address, destructor)
            if rendered is None:
                array, regions, handle = _render(root, page_bits, stats, expected, destructor)
                rendered = array, regions, handle, int(ffi.cast(_UINTPTR, handle))
            self._array, self._regions, handle, address = rendered
        # The view's own hold on the C table, apart from the Dispatch object a
        # caller may close: address spaces publish this handle, and it goes
        # only in _release, a grace period after the last space left the view.
        self._handle: Any = handle
        # Its address, for swap_views' publishes (kept after the release:
        # swap_views checks `_handle` before it publishes).
        self._address: int = address
        self._refs = 1
        self._reclaim = reclaim
        # Declared after `dispatch`: the C dispatch counts itself in these
        # stats, so they must outlive it when the view is torn down.
        self._stats = stats

    @property
    def ranges(self) -> List[FlatRange]:
        """The view's flat ranges in address order."""
        ranges = self._ranges
        if ranges is None:
            ranges = self._ranges = _flat_ranges(self._array, self._regions)
        return ranges

    @property
    def range_count(self) -> int:
        """How many flat ranges the view has, without making them."""
        return len(self._regions)

    def first_range_after(self, addr: int) -> int:
        """The index of the first range that ends past `addr` (`range_count`
        if none), found by bisection over C's ranges without making any
        FlatRange.

        `addr` is a byte address.

        Raises nothing.
        """
        lo, hi = 0, len(self._regions)
        if self._ranges is not None:
            ranges = self._ranges
            while lo < hi:
                mid = (lo + hi) // 2
                if ranges[mid].addr + ranges[mid].size <= addr:
                    lo = mid + 1
                else:
                    hi = mid
            return lo
        array = self._array
        while lo < hi:
            mid = (lo + hi) // 2
            if array[mid].last < addr:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def range_at(self, index: int) -> FlatRange:
        """`ranges[index]`, without making the others.

        `index` counts from 0, or from the end when negative, as a list's.

        Raises:
            ArgumentTypeError: `index` is not an int.
            IndexOutOfRangeError: `index` is out of range.
        """
        count = len(self._regions)
        if not isinstance(index, int) or isinstance(index, bool):
            raise ArgumentTypeError(f"range_at: index must be an int, not {type(index).__name__}")
        if index < 0:
            index += count
        if not 0 <= index < count:
            # Checked before C's array is read: past its end is not memory of the view.
            raise IndexOutOfRangeError(f"range_at: index {index} is out of range for a view "
                                       f"of {count} ranges")
        if self._ranges is not None:
            return self._ranges[index]
        start, last, offset, _, flags, _, _, mask, _, _, _ = struct.unpack_from(
            _RANGE_FORMAT, ffi.buffer(self._array + index, _RANGE_SIZE))
        return FlatRange(start, last - start + 1, self._regions[index], offset, flags, mask)

    def ref(self) -> bool:
        """Take a reference; False if the view is already being destroyed.

        Raises nothing.
        """
        if self._refs <= 0:
            return False
        self._refs += 1
        return True

    def unref(self) -> None:
        """Drop a reference; the last one hands the view to its reclaimer.

        Raises nothing (the reclaimer runs the release later, through RCU).
        """
        self._refs -= 1
        if self._refs == 0:
            self._reclaim(self)

    @property
    def refs(self) -> int:
        """References held on this view (address spaces using it, readers
        holding it); at 0 it is destroyed after an RCU grace period."""
        return self._refs

    @property
    def dispatch(self) -> Optional[Dispatch]:
        """The dispatch built from the ranges (None once the view is reclaimed).

        Read-only: address spaces publish the view's own handle on the C
        table, so `dispatch.close()` closes only that Python object, and the
        table lives until the view is reclaimed."""
        dispatch = self._dispatch
        if dispatch is None and self._handle is not None:
            # It keeps the regions alive, as the view does.
            dispatch = self._dispatch = Dispatch.adopt(self._handle, self._page_bits,
                                                       self._regions)
        return dispatch

    @dispatch.setter
    def dispatch(self, value: Any) -> None:
        name = self.root.name if self.root is not None else None
        raise ReadOnlyAttributeError(f"flat view of {name!r}: 'dispatch' is read-only; the view "
                                     f"owns its table until it is reclaimed")

    def destroy(self) -> None:
        """Free the view's dispatch now.  Only a view nobody holds may go:
        TopologyError while an address space or the system's registry still
        has a reference (the view is freed a grace period after the last
        unref, by itself).

        Raises:
            TopologyError: the view still has references.
        """
        if self._refs > 0:
            name = self.root.name if self.root is not None else None
            raise TopologyError(
                f"destroying the flat view of {name!r}: it still has {self._refs} "
                f"reference(s) (address spaces publish it); it is reclaimed a grace "
                f"period after the last unref")
        self._release()

    def _release(self) -> None:
        """Drop the dispatch: called once no C reader can hold this view (the
        reclaimer), or for a view never published.  The table is freed when
        the last Python holder lets go (usually now).  A commit's
        `_fastpath.swap_views` does the same in C (csrc/ext/commit.c)."""
        # Dropped, not closed: a Python caller still holding the Dispatch
        # (`view.dispatch.lookup_many(...)` in another thread) keeps using it.
        self._dispatch = None
        self._handle = None

    def lookup(self, addr: int) -> Optional[FlatRange]:
        """The flat range holding `addr`, by binary search (None if unassigned).

        `addr` is a byte address.

        Raises nothing.
        """
        ranges = self.ranges
        lo, hi = 0, len(ranges)
        while lo < hi:
            mid = (lo + hi) // 2
            r = ranges[mid]
            if addr < r.addr:
                hi = mid
            elif addr >= r.addr + r.size:
                lo = mid + 1
            else:
                return r
        return None

    def explain(self, addr: int) -> "Explanation":
        """Why `addr` reaches the region it does in this view (pymem/explain.py).

        Raises:
            ArgumentTypeError: `addr` is not an int.
            InvalidArgumentError: `addr` is outside [0, 2^64).
        """
        from .explain import explain_view

        return explain_view(self, addr)

    def __repr__(self) -> str:
        name = self.root.name if self.root is not None else None
        return f"<FlatView root={name!r} ranges={len(self.ranges)} refs={self._refs}>"


_DIFF_FORMAT = "@QQQ"   # kind old_index new_index
DIFF_DEL, DIFF_SAME, DIFF_ADD = lib.PM_DIFF_DEL, lib.PM_DIFF_SAME, lib.PM_DIFF_ADD


def diff_views(old: Optional[FlatView], new: FlatView,
               with_same: bool) -> List[Tuple[int, int, int]]:
    """How `old` (None: nothing) became `new`, as QEMU's topology passes walk
    it: (DIFF_DEL, old index, 0), (DIFF_SAME, old index, new index) and
    (DIFF_ADD, 0, new index) in address order; DIFF_SAME only where the
    dirty-log mask changed, unless `with_same`.

    Raises:
        OutOfMemoryError: C cannot allocate the difference.
    """
    old_n = len(old._regions) if old is not None else 0
    new_n = len(new._regions)
    out = ffi.new("pm_diff **")
    count = ffi.new("size_t *")
    check(lib.pm_ranges_diff(old._array if old is not None and old_n else ffi.NULL, old_n,
                             new._array if new_n else ffi.NULL, new_n, with_same,
                             out, count), "comparing two views")
    # Owned before anything else is looked at: whatever C handed back is freed.
    entries = ffi.gc(out[0], lib.pm_diff_free) if out[0] != ffi.NULL else None
    if entries is None or not count[0]:
        return []
    size = struct.calcsize(_DIFF_FORMAT)
    return list(struct.iter_unpack(_DIFF_FORMAT, ffi.buffer(entries, count[0] * size)))
