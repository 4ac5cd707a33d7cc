"""MemoryListener: callbacks told how an address space's flat map changed.

At every commit QEMU diffs each address space's old FlatView against its new
one (address_space_update_topology_pass): a first pass deletes the ranges that
vanished or changed, a second adds the new ones and reports the unchanged ones
(region_nop) and dirty-logging changes.  Deletions run in reverse listener
order and additions forward, so listeners unwind in the opposite order to the
one they built up in.  We reproduce the passes and the orders exactly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, NamedTuple, Optional

if TYPE_CHECKING:
    from .address_space import AddressSpace
    from .flatview import FlatRange, FlatView
    from .region import MemoryRegion


class MemoryRegionSection(NamedTuple):
    """A piece of a region as mapped in a FlatView (QEMU's MemoryRegionSection)."""

    mr: "MemoryRegion"
    fv: Optional["FlatView"]
    offset_within_region: int
    size: int
    offset_within_address_space: int
    readonly: bool
    nonvolatile: bool


def section_from_flat_range(fr: "FlatRange", fv: Optional["FlatView"]) -> MemoryRegionSection:
    return MemoryRegionSection(fr.region, fv, fr.offset_in_region, fr.size, fr.addr,
                               fr.readonly, fr.nonvolatile)


class MemoryListener:
    """Subclass and override the callbacks you need; the defaults do nothing.

    `priority` orders listeners (lower first for forward calls), as in QEMU.
    """

    priority: int = 0

    def begin(self) -> None:
        """A commit (or this listener's registration) starts."""

    def commit(self) -> None:
        """A commit (or this listener's registration) ends."""

    def region_add(self, section: MemoryRegionSection) -> None:
        """`section` appeared in the address space."""

    def region_del(self, section: MemoryRegionSection) -> None:
        """`section` left the address space (or changed attributes)."""

    def region_nop(self, section: MemoryRegionSection) -> None:
        """`section` is in both the old and the new view, unchanged."""

    def log_start(self, section: MemoryRegionSection, old: int, new: int) -> None:
        """Dirty logging gained clients: `old` and `new` are the masks."""

    def log_stop(self, section: MemoryRegionSection, old: int, new: int) -> None:
        """Dirty logging lost clients: `old` and `new` are the masks."""


def insert_by_priority(listeners: List[MemoryListener], listener: MemoryListener) -> None:
    """Insert after every listener of lower or equal priority (QEMU's order)."""
    i = len(listeners)
    while i > 0 and listeners[i - 1].priority > listener.priority:
        i -= 1
    listeners.insert(i, listener)


def update_topology(asp: "AddressSpace", old: Optional["FlatView"], new: "FlatView") -> None:
    """Tell `asp`'s listeners how `old` became `new`: deletions, then the rest.

    The walk over both views runs in C (FlatView.diff); unchanged ranges are
    built into sections only when a listener has its own region_nop."""
    from .flatview import DIFF_ADD, DIFF_DEL, DIFF_SAME, diff_views

    forward = asp.listeners
    backward = forward[::-1]
    # Unchanged ranges matter only to a listener with its own region_nop
    # (overridden, or set on the instance as QEMU code fills callback slots).
    with_nops = any(getattr(listener.region_nop, "__func__", None)
                    is not MemoryListener.region_nop for listener in forward)
    steps = diff_views(old, new, with_nops)
    # During the passes QEMU's sections still name the old view (the space's
    # current map until it is published).  DEL and SAME steps need an old view.
    for kind, i, _ in steps:
        if kind == DIFF_DEL:
            assert old is not None
            section = section_from_flat_range(old.range_at(i), old)
            for listener in backward:
                listener.region_del(section)
    for kind, i, j in steps:
        if kind == DIFF_SAME:
            assert old is not None
            frold, frnew = old.range_at(i), new.range_at(j)
            section = section_from_flat_range(frnew, old)
            for listener in forward:
                listener.region_nop(section)
            if frnew.dirty_log & ~frold.dirty_log:
                for listener in forward:
                    listener.log_start(section, frold.dirty_log, frnew.dirty_log)
            if frold.dirty_log & ~frnew.dirty_log:
                for listener in backward:
                    listener.log_stop(section, frold.dirty_log, frnew.dirty_log)
        elif kind == DIFF_ADD:
            section = section_from_flat_range(new.range_at(j), old)
            for listener in forward:
                listener.region_add(section)


def listener_add_address_space(listener: MemoryListener, fv: "FlatView") -> None:
    """Replay the current view to a newly registered listener."""
    listener.begin()
    for fr in fv.ranges:
        section = section_from_flat_range(fr, fv)
        listener.region_add(section)
        if fr.dirty_log:
            listener.log_start(section, 0, fr.dirty_log)
    listener.commit()


def listener_del_address_space(listener: MemoryListener, fv: "FlatView") -> None:
    """Take the current view away from a listener being unregistered."""
    listener.begin()
    for fr in fv.ranges:
        section = section_from_flat_range(fr, fv)
        if fr.dirty_log:
            listener.log_stop(section, fr.dirty_log, 0)
        listener.region_del(section)
    listener.commit()
