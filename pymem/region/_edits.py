"""The edits of MemoryRegion: what changes a region tree, checked, applied and committed.

`add_subregion`, `del_subregion` and the `set_*` methods, with what they
share: the transaction on the system an edit touches (`_edit`), the
tentative edit that an alias loop must survive (`_try`), and the steps that
change a container's subregions, its C node and the link back in one C
call (`_insert`, `_unlink`).  They are a base class of MemoryRegion
(pymem/region/tree.py), whose docstring says what every edit raises and
from which threads edits may come.
"""
from __future__ import annotations

import bisect
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, ContextManager, List, Optional, cast

from .. import dirty
from .._bindings import _fastpath, lib
from ..errors import ArgumentTypeError, InvalidArgumentError, TopologyError, check
from ..tree_lock import TREE_LOCK
from .kinds import (ADDRESS_SPACE_SIZE, ALIAS, DIRTY_MEMORY_VGA, PRIORITY_MAX, PRIORITY_MIN,
                    ROM_DEVICE, _check_offset, _check_size)
from .loops import _check_loops, _is_ancestor, _loop_mates, _path_to
from .node import _set

if TYPE_CHECKING:
    from .tree import MemoryRegion


class _RegionEdits(_fastpath.Region):
    """MemoryRegion's edit methods (a base class of it, no class of its own:
    an instance of it is a MemoryRegion)."""

    __slots__ = ()

    if TYPE_CHECKING:
        # The fields the edits read (MemoryRegion's read-only descriptors).
        name: str
        kind: str
        size: int
        addr: int
        enabled: bool
        alias_offset: int
        dirty_log: int
        container: Optional[MemoryRegion]

    def _edit(self, other: Optional["MemoryRegion"] = None) -> ContextManager[Any]:
        """A transaction on the system this edit touches (ours, or `other`'s
        when we are outside every system).  The transaction object itself,
        not a generator around it: a generator context manager interrupted
        right after entering would keep the transaction open until collected."""
        system = self._editable_system(other)
        # Checked under the lock, then the transaction (which checks again).
        return nullcontext() if system is None else system.transaction()

    def _locked(self, other: Optional["MemoryRegion"] = None) -> ContextManager[Any]:
        """The lock of the system this edit touches, without a transaction:
        no commit may render a tentative edit that is being checked."""
        system = self._editable_system(other)
        return nullcontext() if system is None else system._lock

    def _editable_system(self, other: Optional["MemoryRegion"]) -> Any:
        """The system this edit touches (ours, or `other`'s when we are
        outside every system), checked editable under its lock; None when
        neither region is in a system."""
        system = self._system
        if system is None and other is not None:
            system = other._system
        if system is not None:
            with system._lock:
                system._check_editable(f"an edit of region {self.name!r}")
        return system

    def _update_pending(self, other: Optional["MemoryRegion"] = None) -> None:
        system = self._system
        if system is None and other is not None:
            system = other._system
        if system is not None:
            system._update_pending = True

    if TYPE_CHECKING:
        def add_subregion(self, offset: int, region: "MemoryRegion", priority: int = 0) -> None:
            """Map `region` at `offset` inside this one; higher `priority` wins overlaps,
            and among equals the region added last wins (QEMU's order).

            The C base's method (csrc/ext/regionobj.c, same docstring): the
            plain add (no MemorySystem, a subregion without links of its own)
            in one C call; everything else goes to `_add_subregion` below.

            `offset` is bytes from this region's start, 0 <= offset and
            offset + region.size <= 2^64; `priority` a signed 32-bit int.

            An edit: it raises what every edit raises (see `MemoryRegion`), and:

            Raises:
                ArgumentTypeError: `region` is not a MemoryRegion, or `offset` or
                    `priority` not an int.
                TopologyError: `offset` or `priority` out of range, this region is an
                    alias, `region` already has a container, the two belong to
                    different MemorySystems, the edit would make a cycle of subregions,
                    or an alias loop that never ends (nothing changes).
            """

    def _add_subregion(self, offset: int, region: "MemoryRegion", priority: int = 0) -> None:
        """add_subregion, whole: the checks, the cycle and alias-loop checks,
        adoption into a system and the commit (the C base's add_subregion
        comes here for everything but the plain add)."""
        if not isinstance(region, _RegionEdits):
            raise ArgumentTypeError(f"add_subregion: region must be a MemoryRegion, "
                                    f"not {type(region).__name__}")
        where = f"adding {region.name!r} to {self.name!r}"
        _check_offset(where, offset)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise ArgumentTypeError(f"{where}: priority must be an int")
        if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            raise TopologyError(f"{where}: priority {priority} does not fit 32 bits")
        if offset + region.size > ADDRESS_SPACE_SIZE:
            raise TopologyError(f"{where}: offset {offset:#x} + size {region.size:#x} "
                                f"runs past 2^64")
        if self.kind == ALIAS:
            raise TopologyError(f"{where}: {self.name!r} is an alias and cannot hold "
                                f"subregions")
        if region.container is not None:
            raise TopologyError(f"{where}: {region.name!r} is already a subregion of "
                                f"{region.container.name!r}")
        if (self._system is not None and region._system is not None
                and region._system is not self._system):
            raise TopologyError(f"{where}: the regions belong to different MemorySystems")
        # Every _RegionEdits is a MemoryRegion (its only subclass).
        this = cast("MemoryRegion", self)
        path = _path_to(region, this)
        loop: List[MemoryRegion] = []
        if path is not None:
            if _is_ancestor(region, this):
                chain = " -> ".join(repr(r.name) for r in path)
                raise TopologyError(f"{where} would make a cycle: {self.name!r} is reached "
                                    f"from {region.name!r} ({chain})")
            # An alias loop: try it, and keep it only if rendering it ends.
            with self._locked(region):
                saved = (region.addr, region.priority)
                _set(region, "addr", offset)
                region._priority = priority
                self._insert(region)
                try:
                    loop = _loop_mates(this)
                    _check_loops(loop, where, region)
                finally:
                    self._unlink(region)
                    _set(region, "addr", saved[0])
                    region._priority = saved[1]
        with self._edit(region):
            if self._system is not None:
                self._system._adopt(region)
            moved = region.addr != offset
            region._priority = priority
            _set(region, "addr", offset)
            self._insert(region)
            for mr in loop:
                mr._on_loop = True
            # QEMU re-renders only when both are enabled; a view root's own
            # address also counts, so a root that moved re-renders too.
            if region.enabled and (self.enabled or moved):
                self._update_pending(region)

    def _insert(self, region: "MemoryRegion") -> None:
        subs = self._subs
        # QEMU puts a region before every sibling of lower or equal priority
        # (so the newest wins ties): in our reversed list, after all of them.
        if not subs or subs[-1].priority <= region.priority:
            index = len(subs)
        else:
            index = bisect.bisect_right(subs, region.priority, key=lambda r: r.priority)
        # The C child array, the Python list and the container link change in
        # one C call, each undone if a later one fails: a signal (Ctrl-C)
        # sees the tree before or after, never C holding a node Python does
        # not keep alive.
        with TREE_LOCK:
            failed = _fastpath.atomic(
                ("!", (subs.insert, index, region), (subs.pop, index)),
                ("!", (lib.pm_region_insert_sub, self._node, index, region._node),
                 (lib.pm_region_remove_sub, self._node, index)),
                ("=", region, "_container", self))
        if failed is not None:
            check(failed[1], f"adding {region.name!r} to {self.name!r}")

    def _unlink(self, region: "MemoryRegion") -> None:
        # As in _insert: one C call.  The list lets go of the region last
        # (atomic releases it after every step), so C never points at a
        # freed node.
        with TREE_LOCK:
            subs = self._subs
            index = subs.index(region)
            failed = _fastpath.atomic(
                ("!", (lib.pm_region_remove_sub, self._node, index),
                 (lib.pm_region_insert_sub, self._node, index, region._node)),
                (subs.pop, index),
                ("=", region, "_container", None))
        if failed is not None:
            check(failed[1], f"removing {region.name!r} from {self.name!r}")

    def del_subregion(self, region: "MemoryRegion") -> None:
        """Unmap `region`, which must be a direct subregion of this one.

        An edit: it raises what every edit raises (see `MemoryRegion`), and:

        Raises:
            ArgumentTypeError: `region` is not a MemoryRegion.
            TopologyError: `region` is not a direct subregion of this one.
        """
        if not isinstance(region, _RegionEdits):
            raise ArgumentTypeError(f"del_subregion: region must be a MemoryRegion, "
                                    f"not {type(region).__name__}")
        if region.container is not self:
            owner = (f"a subregion of {region.container.name!r}"
                     if region.container is not None else "not mapped anywhere")
            raise TopologyError(f"removing {region.name!r} from {self.name!r}: it is {owner}")
        with self._edit(region):
            self._unlink(region)
            if self.enabled and region.enabled:
                self._update_pending(region)

    def set_enabled(self, enabled: bool) -> None:
        """Show or hide the region and its whole subtree.

        An edit: it raises what every edit raises (see `MemoryRegion`), and:

        Raises:
            TopologyError: enabling would make an alias loop that never ends.
        """
        enabled = bool(enabled)
        if enabled == self.enabled:
            return
        if enabled and self._on_loop:
            self._try(f"enabling {self.name!r}", "enabled", True)
        with self._edit():
            _set(self, "enabled", enabled)
            self._update_pending()

    def set_address(self, addr: int) -> None:
        """Move the region within its container (QEMU re-adds it, keeping its priority).

        `addr` is bytes from the container's start; `addr + size <= 2^64`.

        An edit: it raises what every edit raises (see `MemoryRegion`), and:

        Raises:
            ArgumentTypeError: `addr` is not an int.
            TopologyError: `addr` out of range or the region would run past 2^64,
                or the move would make an alias loop that never ends.
        """
        where = f"moving {self.name!r}"
        _check_offset(where, addr)
        if addr + self.size > ADDRESS_SPACE_SIZE:
            raise TopologyError(f"{where} to {addr:#x}: size {self.size:#x} runs past 2^64")
        if addr == self.addr:
            return
        if self._on_loop:
            self._try(f"{where} to {addr:#x}", "addr", addr)
        container = self.container
        with self._edit():
            _set(self, "addr", addr)
            if container is not None:
                container._unlink(cast("MemoryRegion", self))
                container._insert(cast("MemoryRegion", self))
            # QEMU re-renders only if the container is enabled too, leaving a
            # moved view root stale until the next commit; we re-render now.
            # What the render makes of a root's own address is QEMU's: it
            # counts unless the flat-view-root shortcut skips the root.
            if self.enabled:
                self._update_pending()

    def set_alias_offset(self, offset: int) -> None:
        """Slide an alias's window over its target.

        `offset` is bytes into the target, 0..2^64 - 1.

        An edit: it raises what every edit raises (see `MemoryRegion`), and:

        Raises:
            ArgumentTypeError: `offset` is not an int.
            TopologyError: the region is not an alias, `offset` is out of range,
                or the slide would make an alias loop that never ends.
        """
        if self.kind != ALIAS:
            raise TopologyError(f"set_alias_offset: {self.name!r} is not an alias")
        _check_offset(f"alias {self.name!r}", offset)
        if offset == self.alias_offset:
            return
        if self._on_loop:
            self._try(f"sliding alias {self.name!r} to offset {offset:#x}", "alias_offset",
                      offset)
        with self._edit():
            _set(self, "alias_offset", offset)
            if self.enabled:
                self._update_pending()

    def set_size(self, size: int) -> None:
        """Resize the region (its window; RAM contents are not reallocated).

        `size` is bytes, 0..2^64.

        An edit: it raises what every edit raises (see `MemoryRegion`), and:

        Raises:
            ArgumentTypeError: `size` is not an int.
            TopologyError: `size` beyond 2^64, past 2^64 at the region's address,
                larger than the region's memory, or making an alias loop that never
                ends.
        """
        _check_size(f"region {self.name!r}", size)
        if self.container is not None and self.addr + size > ADDRESS_SPACE_SIZE:
            raise TopologyError(f"resizing {self.name!r} at {self.addr:#x} to {size:#x} "
                                f"runs past 2^64")
        if self._buffer is not None and size > len(self._buffer):
            raise TopologyError(f"resizing {self.name!r} to {size:#x}: its memory holds "
                                f"only {len(self._buffer):#x} bytes")
        if size == self.size:
            return
        if self._on_loop:
            self._try(f"resizing {self.name!r} to {size:#x}", "size", size)
        with self._edit():
            _set(self, "size", size)
            self._update_pending()

    def _try(self, where: str, field: str, value: Any) -> None:
        """Refuse an edit of `field` that would make a loop through this
        region endless: set it, check every loop the region lies on, put it back."""
        with self._locked():
            saved = getattr(self, field)
            _set(self, field, value)
            try:
                this = cast("MemoryRegion", self)
                _check_loops(_loop_mates(this), where, this)
            finally:
                _set(self, field, saved)

    def _switch(self, field: str, value: Any) -> None:
        """Set a field rendering reads (an attribute, not the topology): a
        commit if it changed, re-rendering only when the region is shown."""
        if value == getattr(self, field):
            return
        with self._edit():
            _set(self, field, value)
            if self.enabled:
                self._update_pending()

    def set_readonly(self, readonly: bool) -> None:
        """Make writes through this region (and, for an alias or container, below it) drop.

        An edit: it raises what every edit raises (see `MemoryRegion`), nothing else.
        """
        self._switch("readonly", bool(readonly))

    def set_nonvolatile(self, nonvolatile: bool) -> None:
        """Mark RAM as non-volatile (QEMU's memory_region_set_nonvolatile,
        an NVDIMM): `info mtree` shows it, flat ranges carry it to listeners.
        Commits like any edit; no effect on accesses.

        An edit: it raises what every edit raises (see `MemoryRegion`), nothing else.
        """
        self._switch("nonvolatile", bool(nonvolatile))

    def set_romd(self, romd: bool) -> None:
        """Switch a ROM device between romd mode (direct reads) and MMIO mode.

        An edit: it raises what every edit raises (see `MemoryRegion`), and:

        Raises:
            TopologyError: the region is not a ROM device.
        """
        if self.kind != ROM_DEVICE:
            raise TopologyError(f"set_romd: {self.name!r} is not a ROM device")
        self._switch("romd", bool(romd))

    def set_log(self, log: bool, client: int = DIRTY_MEMORY_VGA) -> None:
        """Start or stop dirty logging for `client` (listeners see log_start/log_stop).

        `client` is one of DIRTY_MEMORY_VGA (1), _CODE (2), _MIGRATION (4),
        _SNAPSHOT (8).

        An edit: it raises what every edit raises (see `MemoryRegion`), and:

        Raises:
            InvalidArgumentError: `client` is not one of those.
        """
        if client not in dirty.CLIENTS:
            raise InvalidArgumentError(f"set_log: unknown dirty-memory client {client}")
        self._switch("dirty_log", (self.dirty_log & ~client) | (client if log else 0))
