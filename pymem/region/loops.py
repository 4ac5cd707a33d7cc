"""Walking the region tree: reachability, paths, and alias loops that never end.

An alias may map a region that contains it (see pymem/region/__init__.py,
"Alias loops"); the functions here find the regions on such a loop and walk
it as rendering would, without recursion, to refuse an edit that would make
a render path go through one alias more than MAX_ALIAS_VISITS times.  They
read the tree; they change nothing.

Thread safety:
    Read-only walks of the tree: call them where the tree cannot change
    meanwhile (the edits call them holding the system's writer lock).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple

from ..errors import TopologyError
from .kinds import MAX_ALIAS_VISITS

if TYPE_CHECKING:
    from .tree import MemoryRegion


def _path_to(start: MemoryRegion, goal: MemoryRegion) -> Optional[List[MemoryRegion]]:
    """A chain of subregion and alias links from `start` to `goal`, if any."""
    stack: List[Tuple[MemoryRegion, List[MemoryRegion]]] = [(start, [start])]
    seen = set()
    while stack:
        mr, path = stack.pop()
        if mr is goal:
            return path
        if mr.id in seen:
            continue
        seen.add(mr.id)
        if mr.alias is not None:
            stack.append((mr.alias, path + [mr.alias]))
        for sub in mr._subs:
            stack.append((sub, path + [sub]))
    return None


def _is_ancestor(region: MemoryRegion, mr: Optional[MemoryRegion]) -> bool:
    """Whether `region` is `mr` or one of its containers."""
    while mr is not None:
        if mr is region:
            return True
        mr = mr.container
    return False


def _loop_mates(region: MemoryRegion) -> List[MemoryRegion]:
    """The regions that lie on a cycle with `region` (its strongly connected
    component of subregion and alias links), or [] when it lies on none."""
    forward = list(reachable(region))
    preds: Dict[int, List[MemoryRegion]] = {}
    for mr in forward:
        if mr._alias is not None:
            preds.setdefault(mr._alias.id, []).append(mr)
        for sub in mr._subs:
            preds.setdefault(sub.id, []).append(mr)
    if region.id not in preds:
        return []
    inside = {mr.id for mr in forward}
    seen = {region.id}
    stack = [region]
    while stack:
        for p in preds.get(stack.pop().id, ()):
            if p.id in inside and p.id not in seen:
                seen.add(p.id)
                stack.append(p)
    return [mr for mr in forward if mr.id in seen]


# The most regions `runaway_loop` walks from one start.  Several aliases on
# one loop, each mapping the loop again a little further on within its window,
# multiply the render paths (k aliases, up to MAX_ALIAS_VISITS trips each:
# k^16 paths), which a render (QEMU's too) would walk for hours: such a
# tree is refused.  Real loops (Arm SSE's container) walk a few thousand.
MAX_LOOP_WALK = 1 << 18


def runaway_loop(start: MemoryRegion, base: int, lo: int, hi: int
                 ) -> Optional[List[MemoryRegion]]:
    """Walk what rendering `start` (at `base`, clipped to [lo, hi)) walks, as
    pymem/flatview.py's _collect does but without recursion, and return the
    loop of a path that goes through one alias more than MAX_ALIAS_VISITS
    times (from that alias's previous visit back to it), or None.

    `base` and [lo, hi) are bytes of the address space the walk renders into.

    Raises:
        TopologyError: the walk passes MAX_LOOP_WALK regions (alias loops
            whose render paths multiply); the message names `start`.
    """
    path: List[MemoryRegion] = []
    visits: Dict[int, int] = {}
    stack: List[Tuple[MemoryRegion, int, int, int, int]] = [(start, base, lo, hi, 0)]
    walked = 0
    while stack:
        mr, base, lo, hi, depth = stack.pop()
        walked += 1
        if walked > MAX_LOOP_WALK:
            raise TopologyError(
                f"rendering from {start.name!r} walks more than {MAX_LOOP_WALK} regions: "
                f"aliases on one loop map it again and again within their windows, and "
                f"the render paths multiply")
        while len(path) > depth:
            gone = path.pop()
            if gone._alias is not None:
                visits[gone.id] -= 1
        if not mr.enabled:
            continue
        base += mr.addr
        if base > lo:
            lo = base
        if base + mr.size < hi:
            hi = base + mr.size
        if lo >= hi:
            continue
        target = mr._alias
        if target is not None:
            n = visits.get(mr.id, 0) + 1
            if n > MAX_ALIAS_VISITS:
                i = max(k for k, r in enumerate(path) if r is mr)
                return path[i:] + [mr]
            visits[mr.id] = n
            path.append(mr)
            stack.append((target, base - target.addr - mr.alias_offset, lo, hi, depth + 1))
        else:
            path.append(mr)
            for sub in mr._subs:
                stack.append((sub, base, lo, hi, depth + 1))
    return None


def loop_text(loop: List[MemoryRegion], first: Optional[MemoryRegion] = None) -> str:
    """A closed loop (its first region repeated at the end) as text, starting
    at `first` when it lies on the loop.

    Raises nothing.
    """
    ring = loop[:-1]
    if first is not None and any(r is first for r in ring):
        i = next(k for k, r in enumerate(ring) if r is first)
        ring = ring[i:] + ring[:i]
    return " -> ".join(repr(r.name) for r in ring + ring[:1])


def _check_loops(mates: List[MemoryRegion], where: str, edited: MemoryRegion) -> None:
    """Refuse the tentative edit if rendering from any alias on these loops
    (each alone: its own whole window, the widest clip any render can reach
    it with) runs past MAX_ALIAS_VISITS.  Any endless render path goes round
    a cycle through an alias, so this covers every root."""
    for mr in mates:
        if mr._alias is None:
            continue
        try:
            loop = runaway_loop(mr, 0, mr.addr, mr.addr + mr.size)
        except TopologyError as exc:
            raise TopologyError(f"{where} would make a render that never ends in "
                                f"practice: {exc}") from None
        if loop is not None:
            raise TopologyError(
                f"{where} would make a cycle that rendering never leaves: "
                f"{loop_text(loop, edited)} (each trip round an alias loop must move its "
                f"window off itself; here {loop[0].name!r} is entered more than "
                f"{MAX_ALIAS_VISITS} times on one path)")


def reachable(root: MemoryRegion) -> Iterator[MemoryRegion]:
    """Every region reached from `root` through subregions and aliases, once each.

    Raises nothing.
    """
    stack = [root]
    seen = set()
    while stack:
        mr = stack.pop()
        if mr.id in seen:
            continue
        seen.add(mr.id)
        yield mr
        if mr.alias is not None:
            stack.append(mr.alias)
        stack.extend(mr._subs)
