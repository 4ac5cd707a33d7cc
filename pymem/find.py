"""Finding regions by name: `system.find(name)` and `system.regions()`.

QEMU region names are not unique (q35 has thirteen `pam-rom` aliases and as
many `pam-pci`), so a name alone does not say which region is meant: every
answer carries the region's path, the names of its containers from the top
of its tree down to it ("system/pam-pci-hole/..."), which `info mtree`'s
indentation shows.  A region that no container holds (an alias target such
as `pc.ram`) has its own name as its path.

Read-only; call with the tree quiet (no edit in another thread).

Knows the region tree; the memory system only in annotations (it is handed one).

Thread safety:
    Read-only walks of the region tree without locks: call with the tree
    quiet (no edit in another thread meanwhile).  Entries are immutable
    values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, TypeVar

from .errors import ArgumentTypeError
from .region import MemoryRegion

if TYPE_CHECKING:
    from .address_space import MemorySystem

T = TypeVar("T")


@dataclass(frozen=True)
class RegionEntry:
    """A region and its path (container names joined by '/')."""

    path: str
    region: MemoryRegion

    def __str__(self) -> str:
        mr = self.region
        return (f"{self.path} ({mr.kind}, size {mr.size:#x}, at {mr.addr:#x}, "
                f"prio {mr.priority}{'' if mr.enabled else ', disabled'})")


def fold_down(mr: MemoryRegion, memo: Dict[int, T],
              step: Callable[[Optional[T], MemoryRegion], T]) -> T:
    """A value for `mr` computed from the top of its tree down: `step(above,
    region)` gives a region's value from its container's (`above` is None at
    the top).  `memo` (region id -> value) is shared between calls, so the
    values of a whole deep tree cost one walk up each; the walk is a loop,
    never a recursion, however deep the tree.

    Raises nothing (what `step` raises propagates).
    """
    pending = []
    node: Optional[MemoryRegion] = mr
    while node is not None and node.id not in memo:
        pending.append(node)
        node = node.container
    value: Optional[T] = memo[node.id] if node is not None else None
    for region in reversed(pending):
        value = step(value, region)
        memo[region.id] = value
    return memo[mr.id]


def _path_step(above: Optional[str], region: MemoryRegion) -> str:
    return region.name if above is None else f"{above}/{region.name}"


def region_path(mr: MemoryRegion, memo: Optional[Dict[int, str]] = None) -> str:
    """The names of `mr`'s containers, outermost first, and its own, joined
    by '/'.  `memo` (region id -> path) shares the work between calls.

    Raises nothing.
    """
    return fold_down(mr, {} if memo is None else memo, _path_step)


def regions(system: "MemorySystem") -> List[RegionEntry]:
    """Every region reachable from the system's address spaces (through
    subregions and aliases), each once, in `info mtree` order: each space's
    tree depth first, highest priority first, alias targets after.

    Raises nothing.
    """
    out: List[RegionEntry] = []
    seen = set()
    targets: List[MemoryRegion] = []
    stack: List[MemoryRegion] = []
    memo: Dict[int, str] = {}
    for asp in system.address_spaces:
        top = asp.root
        while top.container is not None:
            top = top.container
        stack.append(top)
        while stack or targets:
            mr = stack.pop() if stack else targets.pop(0)
            if mr.id in seen:
                continue
            seen.add(mr.id)
            out.append(RegionEntry(region_path(mr, memo), mr))
            if mr.alias is not None:
                targets.append(mr.alias)
            stack.extend(reversed(mr.subregions))
    return out


def find(system: "MemorySystem", name: str) -> List[RegionEntry]:
    """Every region named `name`, with its path ([] when there is none).

    Raises:
        ArgumentTypeError: `name` is not a str.
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"find: name must be a str, not {type(name).__name__}")
    return [entry for entry in regions(system) if entry.region.name == name]
