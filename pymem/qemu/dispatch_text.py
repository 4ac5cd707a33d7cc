"""QEMU's `info mtree -f -d` dispatch block, printed from one of our dispatches.

QEMU prints, under each FlatView, its AddressSpaceDispatch: the sections table
(with historic labels that go by index, not by content) and every radix node,
reachable or not, as runs of equal entries.  We print the same bytes from the C
tables, so a diff against QEMU's dump is a diff of the data structures.

Thread safety:
    Reads a dispatch table, which never changes once built: any thread, as
    long as the caller holds the `Dispatch` (or its view) for the call.
"""
from __future__ import annotations

from itertools import groupby
from typing import Callable, Iterator, List, Optional, Tuple

from ..dispatch import NO_REGION, SECTION_IOMMU, SECTION_SUBPAGE, Dispatch

ENTRY_NIL = (1 << 26) - 1

# QEMU labels the first four sections by position, whatever they now hold.
_INDEX_LABELS = (" [unassigned]", " [not dirty]", " [ROM]", " [watch]")


def _entry_run(first: int, last: int, skip: int, ptr: int) -> str:
    where = f"\t{first:3d}      " if first == last else f"\t{first:3d}..{last:<3d} "
    if ptr == ENTRY_NIL:
        target = " ptr=NIL"
    elif skip == 0:
        target = f" ptr=#{ptr}"
    else:
        target = f" ptr=[{ptr}]"
    return f"{where} skip={skip} {target}"


def node_lines(entries: List[Tuple[int, int]]) -> List[str]:
    """One node's 512 (skip, ptr) entries as QEMU prints them: runs of equal ones.

    Raises nothing.
    """
    lines = []
    first = 0
    # groupby walks the entries in C: a node has 512 of them but few runs.
    for (skip, ptr), run in groupby(entries):
        last = first + len(list(run)) - 1
        lines.append(_entry_run(first, last, skip, ptr))
        first = last + 1
    return lines


def format_dispatch(dispatch: Dispatch, name_of: Callable[[int], Optional[str]],
                    root_region: Optional[int], mru: bool = True) -> str:
    """The `  Dispatch` block of one FlatView.

    `name_of(region_id)` names a section's region (None prints `(noname)`);
    sections whose region is `root_region` get ` [ROOT]`.  `mru=False` leaves
    out the ` [MRU]` marker, which depends on past lookups.

    Raises:
        InvalidArgumentError: the dispatch is closed.
    """
    return "\n".join(dispatch_lines(dispatch, name_of, root_region, mru)) + "\n"


def dispatch_lines(dispatch: Dispatch, name_of: Callable[[int], Optional[str]],
                   root_region: Optional[int], mru: bool = True) -> Iterator[str]:
    """`format_dispatch`'s lines, one at a time (no line ends): a reader that
    stops early (a comparison that already differs) formats no more nodes.

    Raises:
        InvalidArgumentError: the dispatch is closed.
    """
    yield "  Dispatch"
    yield "    Physical sections"
    mru_index = dispatch.mru if mru else -1
    for s in dispatch.sections():
        if s.region == NO_REGION or s.flags & SECTION_SUBPAGE:
            name = None
        else:
            name = name_of(s.region)
        line = f"      #{s.index} @{s.start:016x}..{s.last:016x} {name or '(noname)'}"
        if s.index < len(_INDEX_LABELS):
            line += _INDEX_LABELS[s.index]
        if root_region is not None and s.region == root_region:
            line += " [ROOT]"
        if s.index == mru_index and s.index != 0:
            line += " [MRU]"
        if s.flags & SECTION_IOMMU:
            line += " [iommu]"
        yield line
    ptr, skip = dispatch.root
    yield f"    Nodes (9 bits per level, {dispatch.levels} levels) ptr=[{ptr}] skip={skip}"
    for n in range(dispatch.node_count()):
        yield f"      [{n}]"
        yield from node_lines(dispatch.node(n))
