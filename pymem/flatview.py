"""FlatView: what an address space sees, rendered from a region tree.

Rendering follows QEMU's render_memory_region: walk the tree from the view's
root, children before their parent in subregion order, and let every
terminating region fill only the addresses no earlier region took; then merge
neighbours that continue each other (flatview_simplify).  QEMU inserts each
piece into a sorted array, which is quadratic for wide containers; we collect
the same pieces in the same order and resolve "first rendered wins" with one
sweep over sorted boundaries, which gives identical ranges in O(n log n).

A FlatView owns the dispatch built from its ranges.  It is reference counted
as QEMU's is: the registry of shared views and every address space using it
hold a reference, and the last unref hands the view to a reclaim callback that
frees it only once no reader can still hold it (RCU).
"""
from __future__ import annotations

import heapq
from typing import Any, Callable, List, Optional

from .access import host_pointers
from .dispatch import (SECTION_IOMMU, SECTION_NONVOLATILE, SECTION_RAM, SECTION_READONLY,
                       SECTION_ROMD, Dispatch, DispatchRange)
from .errors import TopologyError
from .region import (ADDRESS_SPACE_SIZE, CONTAINER, IOMMU, MAX_ALIAS_VISITS, ROM_DEVICE,
                     MemoryRegion, loop_text, runaway_loop)


class FlatRange:
    """A run of addresses that one terminating region answers, with the
    attributes gathered on the path to it."""

    __slots__ = ("addr", "size", "region", "offset_in_region", "readonly", "nonvolatile",
                 "romd", "dirty_log")

    def __init__(self, addr: int, size: int, region: MemoryRegion, offset_in_region: int,
                 readonly: bool, nonvolatile: bool, romd: bool, dirty_log: int) -> None:
        self.addr = addr
        self.size = size
        self.region = region
        self.offset_in_region = offset_in_region
        self.readonly = readonly
        self.nonvolatile = nonvolatile
        self.romd = romd
        self.dirty_log = dirty_log

    @property
    def end(self) -> int:
        """First address past the range (may be 2^64)."""
        return self.addr + self.size

    @property
    def flags(self) -> int:
        """The dispatch section flags of this range."""
        mr = self.region
        flags = 0
        if mr.ram_backed:
            flags |= SECTION_RAM
        if self.readonly:
            flags |= SECTION_READONLY
        if mr.kind == ROM_DEVICE and self.romd:
            flags |= SECTION_ROMD
        if mr.kind == IOMMU:
            flags |= SECTION_IOMMU
        if self.nonvolatile:
            flags |= SECTION_NONVOLATILE
        return flags

    def same_as(self, other: "FlatRange") -> bool:
        """QEMU's flatrange_equal: everything but the dirty-log mask."""
        return (self.region is other.region and self.addr == other.addr
                and self.size == other.size
                and self.offset_in_region == other.offset_in_region
                and self.romd == other.romd and self.readonly == other.readonly
                and self.nonvolatile == other.nonvolatile)

    def __repr__(self) -> str:
        return (f"<FlatRange {self.addr:#x}+{self.size:#x} {self.region.name!r}"
                f" @{self.offset_in_region:#x}{' ro' if self.readonly else ''}>")


class _Runaway(Exception):
    """A render path went through one alias more than MAX_ALIAS_VISITS times."""


def _collect(mr: MemoryRegion, base: int, start: int, end: int, readonly: bool,
             nonvolatile: bool, out: list, visits: dict) -> None:
    """Append (start, end, base, region, readonly, nonvolatile) for every
    terminating region in render order, clipped to its window.  `visits`
    counts the trips through each alias on the current path: an alias loop
    is gone round until its clip window is empty, within a bound
    (region.MAX_ALIAS_VISITS; edits keep every loop inside it)."""
    if not mr.enabled:
        return
    base += mr.addr
    readonly = readonly or mr.readonly
    nonvolatile = nonvolatile or mr.nonvolatile
    if base > start:
        start = base
    if base + mr.size < end:
        end = base + mr.size
    if start >= end:
        return
    target = mr._alias
    if target is not None:
        n = visits.get(mr, 0)
        if n >= MAX_ALIAS_VISITS:
            raise _Runaway
        visits[mr] = n + 1
        _collect(target, base - target.addr - mr.alias_offset, start, end,
                 readonly, nonvolatile, out, visits)
        visits[mr] = n
        return
    subs = mr._subs
    for i in range(len(subs) - 1, -1, -1):
        _collect(subs[i], base, start, end, readonly, nonvolatile, out, visits)
    if mr.kind != CONTAINER:
        out.append((start, end, base, mr, readonly, nonvolatile))


def render(root: Optional[MemoryRegion]) -> List[FlatRange]:
    """The merged flat ranges of the tree under `root` (its own address counts)."""
    if root is None:
        return []
    pieces: list = []
    try:
        _collect(root, 0, 0, ADDRESS_SPACE_SIZE, False, False, pieces, {})
    except _Runaway:
        # Only a tree changed behind the edits' backs gets here: name the loop.
        loop = runaway_loop(root, 0, 0, ADDRESS_SPACE_SIZE)
        named = loop_text(loop) if loop is not None else "an alias loop"
        raise TopologyError(f"rendering {root.name!r}: {named} never leaves its window "
                            f"(an alias entered more than {MAX_ALIAS_VISITS} times on one "
                            f"path)") from None
    if not pieces:
        return []
    ranges: List[FlatRange] = []
    if len(pieces) == 1:
        bounds = [pieces[0][0], pieces[0][1]]
        order = [0]
    else:
        starts = [p[0] for p in pieces]
        bounds = sorted(set(starts).union([p[1] for p in pieces]))
        order = sorted(range(len(pieces)), key=starts.__getitem__)
    # Sweep the boundaries; among the pieces covering a segment, the one
    # rendered first (lowest index) owns it, as QEMU's gap filling decides.
    active: list = []
    nxt = 0
    npieces = len(pieces)
    last: Optional[FlatRange] = None
    for k in range(len(bounds) - 1):
        b = bounds[k]
        while nxt < npieces and pieces[order[nxt]][0] <= b:
            i = order[nxt]
            heapq.heappush(active, (i, pieces[i][1]))
            nxt += 1
        while active and active[0][1] <= b:
            heapq.heappop(active)
        if not active:
            continue
        _, _, pbase, mr, ro, nv = pieces[active[0][0]]
        e = bounds[k + 1]
        offset = b - pbase
        romd = mr.romd
        log = mr.dirty_log
        # flatview_simplify's can_merge: contiguous in space and in the
        # region, with equal attributes.
        if (last is not None and last.region is mr and last.addr + last.size == b
                and last.offset_in_region + last.size == offset and last.readonly == ro
                and last.nonvolatile == nv and last.romd == romd and last.dirty_log == log):
            last.size += e - b
        else:
            last = FlatRange(b, e - b, mr, offset, ro, nv, romd, log)
            ranges.append(last)
    return ranges


def get_flatview_root(mr: Optional[MemoryRegion]) -> Optional[MemoryRegion]:
    """The region whose rendering an address space rooted at `mr` shares
    (QEMU's memory_region_get_flatview_root); None renders nothing.

    The walk can only come back to a region through a loop of empty windows
    (size 0: any other such loop renders forever and is refused); it stops
    at the first region seen twice."""
    seen = []
    while mr is not None and mr.enabled:
        if mr in seen:
            return mr
        seen.append(mr)
        target = mr._alias
        if target is not None:
            if mr.alias_offset == 0 and mr.size >= target.size:
                # The whole target is visible: share the target's view.
                mr = target
                continue
        elif mr.kind == CONTAINER:
            found = 0
            only: Optional[MemoryRegion] = None
            for child in mr._subs:
                if child.enabled:
                    found += 1
                    if found > 1:
                        only = None
                        break
                    if child.addr == 0 and mr.size >= child.size:
                        only = child
            if found == 0:
                return None
            if only is not None:
                mr = only
                continue
        return mr
    return None


class FlatView:
    """The rendered ranges of one root and the dispatch built from them."""

    __slots__ = ("root", "ranges", "dispatch", "_refs", "_reclaim", "_stats", "__weakref__")

    def __init__(self, root: Optional[MemoryRegion], ranges: List[FlatRange], page_bits: int,
                 reclaim: Callable[["FlatView"], None], stats: Any = None) -> None:
        self.root = root
        self.ranges = ranges
        self.dispatch: Optional[Dispatch] = Dispatch.build(
            [DispatchRange(r.addr, r.size, r.offset_in_region, r.region.id, r.flags)
             for r in ranges], page_bits, stats=stats,
            hosts=[host_pointers(r) for r in ranges], objects=[r.region for r in ranges],
            checked=True)
        self._refs = 1
        self._reclaim = reclaim
        # Declared after `dispatch`: the C dispatch counts itself in these
        # stats, so they must outlive it when the view is torn down.
        self._stats = stats

    def ref(self) -> bool:
        """Take a reference; False if the view is already being destroyed."""
        if self._refs <= 0:
            return False
        self._refs += 1
        return True

    def unref(self) -> None:
        """Drop a reference; the last one hands the view to its reclaimer."""
        self._refs -= 1
        if self._refs == 0:
            self._reclaim(self)

    @property
    def refs(self) -> int:
        return self._refs

    def destroy(self) -> None:
        """Drop the dispatch: called once no C reader can hold this view.  The
        table is freed when the last Python holder lets go (usually now)."""
        # Dropped, not closed: a Python caller still holding the Dispatch
        # (`view.dispatch.lookup_many(...)` in another thread) keeps using it.
        self.dispatch = None

    def lookup(self, addr: int) -> Optional[FlatRange]:
        """The flat range holding `addr`, by binary search (None if unassigned)."""
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

    def __repr__(self) -> str:
        name = self.root.name if self.root is not None else None
        return f"<FlatView root={name!r} ranges={len(self.ranges)} refs={self._refs}>"
