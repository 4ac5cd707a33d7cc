"""Problems in a memory map that QEMU accepts silently: `system.check()`.

QEMU renders whatever tree it is given.  Two subregions overlapping at equal
priority render by insertion order (the later one wins), an alias may show
bytes past its target's end (unassigned), a region may be added where it
can never be seen, and a device may accept no access that fits in it.  None
of that is an error to QEMU; each is usually a board-model bug.  This module
walks a MemorySystem's regions and current views and reports each as a
Finding (severity, region path, message), in a stable order.

Read-only; call with the tree quiet (no edit in another thread).

Knows the region tree and find.py; the memory system only in annotations (it
is handed one).

Thread safety:
    Read-only, without locks: call with the system quiet (no edit or commit
    in another thread meanwhile).  Findings are immutable values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Set

from .find import fold_down, region_path, regions
from .region import ALIAS, IO, IOMMU, RAM, ROM, ROM_DEVICE, MemoryRegion

if TYPE_CHECKING:
    from .address_space import MemorySystem

ERROR = "error"
WARNING = "warning"
INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One problem: `severity` is "error" (accesses will fail or a region is
    wasted), "warning" (the map depends on something fragile) or "info";
    `path` is the region's path (pymem/find.py)."""

    severity: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


def check_system(system: "MemorySystem") -> List[Finding]:
    """Every finding for the system's regions and current views.  Regions
    that are disabled, or under a disabled container, are not part of the
    current map and are not checked (their problems would show once a board
    enables them).

    Raises nothing.
    """
    entries = regions(system)
    found: List[Finding] = []
    shown: Dict[int, bool] = {}
    paths = {entry.region.id: entry.path for entry in entries}
    for entry in entries:
        mr, path = entry.region, entry.path
        if not _shown(mr, shown):
            continue   # not part of the current map (a board enables it later)
        if mr.size == 0 and mr.container is not None:
            found.append(Finding(WARNING, path, "size 0: it can never be seen"))
        _check_alias(mr, path, found)
        _check_device(mr, path, found)
        _check_outside_container(mr, path, found)
        if mr.subregions:
            _check_overlaps(mr, paths, found)
    _check_visibility(system, paths, found)
    _check_ram_alignment(system, paths, found)
    return found


def _shown(mr: MemoryRegion, memo: Dict[int, bool]) -> bool:
    """Whether the region and every container above it are enabled (`memo`:
    region id -> answer, shared between calls)."""
    return fold_down(mr, memo, _shown_step)


def _shown_step(above: Optional[bool], region: MemoryRegion) -> bool:
    return (above is None or above) and region.enabled


def _check_alias(mr: MemoryRegion, path: str, found: List[Finding]) -> None:
    target = mr.alias
    if mr.kind != ALIAS or target is None:
        return
    end = mr.alias_offset + mr.size
    if mr.size and end > target.size:
        found.append(Finding(ERROR, path, f"alias window {mr.alias_offset:#x}..{end - 1:#x} "
                             f"runs past the end of its target {target.name!r} (size "
                             f"{target.size:#x}): the last {end - max(target.size, mr.alias_offset):#x} "
                             f"bytes of the alias are unassigned"))


def _check_device(mr: MemoryRegion, path: str, found: List[Finding]) -> None:
    if mr.kind == IOMMU and mr.target is None:
        found.append(Finding(WARNING, path, "IOMMU without a target address space: every "
                             "translation must name its target_as, or the access fails"))
    ops = mr.ops
    if mr.kind in (IO, ROM_DEVICE) and ops is not None and 0 < mr.size < ops.valid_min:
        found.append(Finding(ERROR, path, f"MMIO region of {mr.size} byte(s) whose ops accept "
                             f"only {ops.valid_min}..{ops.valid_max}-byte accesses: no "
                             f"access it accepts fits in it"))


def _check_outside_container(mr: MemoryRegion, path: str, found: List[Finding]) -> None:
    parent = mr.container
    if parent is None or mr.size == 0:
        return
    if mr.addr >= parent.size:
        found.append(Finding(ERROR, path, f"at {mr.addr:#x}, entirely outside its container "
                             f"{parent.name!r} (size {parent.size:#x}): never visible"))
    elif mr.addr + mr.size > parent.size:
        found.append(Finding(WARNING, path, f"{mr.addr:#x}..{mr.addr + mr.size - 1:#x} runs "
                             f"past the end of its container {parent.name!r} (size "
                             f"{parent.size:#x}): the rest is cut off"))


def _check_overlaps(container: MemoryRegion, paths: Dict[int, str],
                    found: List[Finding]) -> None:
    """Enabled siblings overlapping at equal priority: the later one wins,
    so the map depends on the order the board added them in."""
    subs = [s for s in container.subregions if s.enabled and s.size]   # newest first
    by_priority: Dict[int, List[MemoryRegion]] = {}
    for sub in subs:
        by_priority.setdefault(sub.priority, []).append(sub)
    for priority, group in by_priority.items():
        for i, newer in enumerate(group):
            for older in group[i + 1:]:
                lo = max(newer.addr, older.addr)
                hi = min(newer.addr + newer.size, older.addr + older.size)
                if lo < hi:
                    found.append(Finding(
                        WARNING, paths[older.id],
                        f"overlaps {newer.name!r} at {lo:#x}..{hi - 1:#x} in "
                        f"{container.name!r} at equal priority {priority}: {newer.name!r}, "
                        f"added later, wins (QEMU's result depends on insertion order)"))


def _check_visibility(system: "MemorySystem", paths: Dict[int, str],
                      found: List[Finding]) -> None:
    """Terminating regions reached through enabled regions only, from some
    space's root, that no current view shows anywhere."""
    visible: Set[int] = set()
    for view in system.flatviews():
        visible.update(r.region.id for r in view.ranges)
    seen: Set[int] = set()
    stack: List[MemoryRegion] = [asp.root for asp in system.address_spaces]
    candidates: List[MemoryRegion] = []
    while stack:
        mr = stack.pop()
        if mr.id in seen or not mr.enabled:
            continue
        seen.add(mr.id)
        if mr.terminates and mr.size:
            candidates.append(mr)
        if mr.alias is not None:
            stack.append(mr.alias)
        stack.extend(mr.subregions)
    for mr in sorted(candidates, key=lambda mr: paths[mr.id]):
        parent = mr.container
        if mr.id in visible or (parent is not None and mr.addr >= parent.size):
            continue   # outside its container: reported as such
        found.append(Finding(WARNING, paths[mr.id],
                             "never visible in any address space: fully shadowed by "
                             "higher-priority (or later) regions, or outside every window "
                             "that shows it"))


def _check_ram_alignment(system: "MemorySystem", paths: Dict[int, str],
                         found: List[Finding]) -> None:
    """RAM and ROM flat ranges that start or end inside a page: accesses go
    through a sub-page (the slow path), and QEMU cannot hand such memory to
    KVM or map it directly."""
    page = 1 << system.page_bits
    reported: Set[int] = set()
    for view in system.flatviews():
        for r in view.ranges:
            mr = r.region
            if mr.kind not in (RAM, ROM) or mr.id in reported:
                continue
            if r.addr % page or r.end % page:
                reported.add(mr.id)
                found.append(Finding(WARNING, paths.get(mr.id) or region_path(mr),
                                     f"RAM shown at {r.addr:#x}..{r.end - 1:#x}, not aligned "
                                     f"to the {page:#x}-byte page: accesses take the "
                                     f"sub-page path and it cannot be mapped directly"))
