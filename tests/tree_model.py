"""A reference model that answers "who owns this address?" by walking the tree.

No rendering, no merging, no dispatch: for one address it descends from the
view's root the way QEMU's rules say the winner is chosen (enabled regions
whose window holds the address, children in subregion order before their
parent, aliases re-based onto their target).  Property tests compare it with
what the C dispatch answers after every commit.

Alias loops (an alias inside the region it shows) are followed as QEMU
renders them: round and round while the address stays inside every window
on the way.  No path may go through one alias more than MAX_ALIAS_VISITS
times; pymem refuses edits that would allow it, so the model fails loudly
if it ever meets one.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Optional, Set

from pymem.region import CONTAINER, MAX_ALIAS_VISITS, MemoryRegion


class Owner(NamedTuple):
    region: MemoryRegion
    offset: int
    readonly: bool


def view_root(mr: Optional[MemoryRegion]) -> Optional[MemoryRegion]:
    """The region an address space on `mr` renders (QEMU-SEMANTICS §2); a
    loop of empty windows stops at the first region met twice."""
    met: List[MemoryRegion] = []
    while mr is not None and mr.enabled:
        if any(m is mr for m in met):
            return mr
        met.append(mr)
        if mr.kind == "alias":
            if mr.alias_offset == 0 and mr.size >= mr.alias.size:
                mr = mr.alias
                continue
            return mr
        if mr.kind != CONTAINER:
            return mr
        enabled = [c for c in mr.subregions if c.enabled]
        if not enabled:
            return None
        if len(enabled) == 1 and enabled[0].addr == 0 and enabled[0].size <= mr.size:
            mr = enabled[0]
            continue
        return mr
    return None


def _owner(mr: MemoryRegion, addr: int, base: int, readonly: bool,
           visits: Dict[int, int]) -> Optional[Owner]:
    if not mr.enabled:
        return None
    start = base + mr.addr
    if not start <= addr < start + mr.size:
        return None
    readonly = readonly or mr.readonly
    if mr.kind == "alias":
        target = mr.alias
        n = visits.get(mr.id, 0)
        assert n < MAX_ALIAS_VISITS, f"endless alias loop through {mr.name!r} accepted"
        visits[mr.id] = n + 1
        found = _owner(target, addr, start - mr.alias_offset - target.addr, readonly, visits)
        visits[mr.id] = n
        return found
    for sub in mr.subregions:
        found = _owner(sub, addr, start, readonly, visits)
        if found is not None:
            return found
    if mr.kind == CONTAINER:
        return None
    return Owner(mr, addr - start, readonly)


def owner(root: MemoryRegion, addr: int) -> Optional[Owner]:
    """Which region answers `addr` in an address space rooted at `root`."""
    phys = view_root(root)
    if phys is None or not 0 <= addr < 1 << 64:
        return None
    return _owner(phys, addr, 0, False, {})


def edges(root: MemoryRegion) -> Set[int]:
    """Every address where some window reachable from `root` starts or ends,
    and the address before it: where ownership can change.  Disabled regions
    and what lies outside the clip window own nothing, so they are not
    walked (an alias loop is gone round until its window is empty)."""
    out: Set[int] = set()
    seen: Set[tuple] = set()
    visits: Dict[int, int] = {}

    def walk(mr: MemoryRegion, base: int, lo: int, hi: int) -> None:
        if not mr.enabled:
            return
        start = base + mr.addr
        for p in (start, start + mr.size):
            out.update((p - 1, p))
        lo, hi = max(lo, start), min(hi, start + mr.size)
        key = (mr.id, base, lo, hi)
        if lo >= hi or key in seen:
            return
        seen.add(key)
        if mr.kind == "alias":
            n = visits.get(mr.id, 0)
            assert n < MAX_ALIAS_VISITS, f"endless alias loop through {mr.name!r} accepted"
            visits[mr.id] = n + 1
            walk(mr.alias, start - mr.alias_offset - mr.alias.addr, lo, hi)
            visits[mr.id] = n
        for sub in mr.subregions:
            walk(sub, start, lo, hi)

    walk(root, 0, 0, 1 << 64)
    return {p for p in out if 0 <= p < 1 << 64}


def probes(root: MemoryRegion, extra: Iterable[int] = ()) -> list:
    """Sorted probe addresses: the edges of the tree plus `extra`."""
    return sorted(edges(root) | {p for p in extra if 0 <= p < 1 << 64})
