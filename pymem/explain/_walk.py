"""The render walk for one address: which region answers it, and why each
other region that covers it lost.

The walk visits the region tree in the order rendering does
(pymem/flatview.py, QEMU's render_memory_region: children before their
parent, highest priority first, the newest first among equals, each
terminating region taking only what is still free), for the one address
asked about, with a stack of its own.  pymem/explain/__init__.py runs it.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..region import ADDRESS_SPACE_SIZE, ALIAS, MAX_ALIAS_VISITS, MemoryRegion
from ._report import Contender, Link


_Path = Optional[Tuple[Link, Any]]
"""A chain as a linked list, innermost link first: (link, the rest); a
tree thousands of regions deep then shares its chains instead of copying them."""


def _chain(path: _Path) -> Tuple[Link, ...]:
    links: List[Link] = []
    while path is not None:
        links.append(path[0])
        path = path[1]
    return tuple(reversed(links))


class _Frame:
    """A region being walked: what its exit needs to judge it."""

    __slots__ = ("mr", "start", "lo", "lo_by", "hi", "hi_by", "path", "parent", "got",
                 "tbase")

    def __init__(self, mr: MemoryRegion, start: int, lo: int, lo_by: Optional[MemoryRegion],
                 hi: int, hi_by: Optional[MemoryRegion], path: _Path,
                 parent: Optional["_Frame"]) -> None:
        self.mr = mr
        self.start = start
        self.lo, self.lo_by, self.hi, self.hi_by = lo, lo_by, hi, hi_by
        self.path = path
        self.parent = parent
        self.got = False   # a terminating region at or below it took the address
        self.tbase = 0


class _Walk:
    """The render walk for one address (see the module docstring), with a
    stack of its own: trees deeper than Python's recursion limit walk too."""

    def __init__(self, addr: int) -> None:
        self.addr = addr
        self.winner: _Path = None
        # (region, chain, reason or None: judged against the winner later)
        self.found: List[Tuple[MemoryRegion, _Path, Optional[str]]] = []
        self.visits: Dict[int, int] = {}

    def run(self, root: MemoryRegion) -> None:
        addr = self.addr
        # ("enter", region, base, lo, lo_by, hi, hi_by, parent frame) or ("exit", frame)
        stack: List[Tuple[Any, ...]] = [("enter", root, 0, 0, None, ADDRESS_SPACE_SIZE, None,
                                         None)]
        while stack:
            item = stack.pop()
            if item[0] == "exit":
                self._exit(item[1])
                continue
            _, mr, base, lo, lo_by, hi, hi_by, parent = item
            start = base + mr.addr
            end = start + mr.size
            path: _Path = (Link(mr, start), parent.path if parent is not None else None)
            if not mr.enabled:
                if start <= addr < end and lo <= addr < hi:
                    self.found.append((mr, path, "disabled"))
                continue
            if start > lo:
                lo, lo_by = start, mr
            if end < hi:
                hi, hi_by = end, mr
            if lo >= hi:
                continue
            frame = _Frame(mr, start, lo, lo_by, hi, hi_by, path, parent)
            target = mr.alias
            if target is not None:
                n = self.visits.get(mr.id, 0)
                if n >= MAX_ALIAS_VISITS:
                    continue
                self.visits[mr.id] = n + 1
                frame.tbase = start - target.addr - mr.alias_offset
                stack.append(("exit", frame))
                stack.append(("enter", target, frame.tbase, lo, lo_by, hi, hi_by, frame))
            else:
                stack.append(("exit", frame))
                # Pushed last first: popped in subregion order.  A leaf
                # whose own window misses the address cannot answer it nor
                # lose it: not walked (most of a big tree).
                for sub in mr._subs:
                    if (not sub._subs and sub._alias is None
                            and not 0 <= addr - start - sub.addr < sub.size):
                        continue
                    stack.append(("enter", sub, start, lo, lo_by, hi, hi_by, frame))

    def _exit(self, frame: _Frame) -> None:
        addr, mr = self.addr, frame.mr
        inside = frame.start <= addr < frame.start + mr.size
        clipped = not frame.lo <= addr < frame.hi
        target = mr.alias
        if target is not None:
            self.visits[mr.id] -= 1
            if inside and not clipped and not frame.got:
                t_start = frame.tbase + target.addr
                if not t_start <= addr < t_start + target.size:
                    self.found.append((mr, frame.path, f"its window runs past the end of its "
                                       f"target {target.name!r} (size {target.size:#x})"))
                else:
                    self.found.append((mr, frame.path, f"nothing in its target "
                                       f"{target.name!r} answers here"))
        elif mr.terminates and inside:
            if clipped:
                by = frame.lo_by if addr < frame.lo else frame.hi_by
                assert by is not None
                kind = "alias" if by.kind == ALIAS else "container"
                self.found.append((mr, frame.path, f"outside the window of {kind} "
                                   f"{by.name!r}"))
            elif self.winner is None:
                self.winner = frame.path
                frame.got = True
            else:
                self.found.append((mr, frame.path, None))
                frame.got = True
        elif (inside and not clipped and not frame.got and mr._subs
              and frame.parent is not None):
            self.found.append((mr, frame.path, "nothing in it answers here"))
        if frame.got and frame.parent is not None:
            frame.parent.got = True

    def losers(self) -> List[Contender]:
        out: List[Contender] = []
        seen = set()
        winner = _chain(self.winner)
        for mr, path, reason in self.found:
            if reason is None:
                assert winner
                reason = _why_lost(_chain(path), winner)
            elif winner and mr is winner[-1].region and reason.startswith("outside"):
                continue   # another way to the same region that the winner took
            key = (mr.id, reason)
            if key in seen:
                continue
            seen.add(key)
            out.append(Contender(mr, _chain(path), reason))
        return out


def _why_lost(loser: Tuple[Link, ...], winner: Tuple[Link, ...]) -> str:
    """Why the terminating region at the end of `loser` came after the one
    at the end of `winner` in render order."""
    i = 0
    while (i < len(loser) and i < len(winner) and loser[i].region is winner[i].region
           and loser[i].base == winner[i].base):
        i += 1
    if i == len(loser):
        return (f"{winner[i].region.name!r} inside it takes the address (a region "
                f"renders only in the gaps its subregions leave)")
    parent = loser[i - 1].region.name if i else "(root)"
    lost, won = loser[i].region, winner[i].region
    if lost.priority < won.priority:
        return (f"lower priority: {lost.name!r} has {lost.priority}, {won.name!r} has "
                f"{won.priority} in {parent!r}")
    return (f"added earlier than {won.name!r} at equal priority {lost.priority} in "
            f"{parent!r} (the later one wins)")
