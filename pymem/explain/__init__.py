"""Why an address reaches the region it does: `asp.explain(addr)`.

QEMU users read `info mtree` and guess which of several overlapping regions
answers an address.  This module answers it by walking the region tree in
the order rendering walks it (pymem/flatview.py, QEMU's
render_memory_region: children before their parent, highest priority first,
the newest first among equals, each terminating region taking only what is
still free), for the one address asked about.  The first terminating region
the walk reaches wins; every other region whose window holds the address is
listed with the reason it lost.  The dispatch side (section, sub-page piece,
radix walk) is read from the view's own table, so the answer shows both what
the tree says and what accesses really use.

Three modules: this one explains (`explain`, `explain_view`: the dispatch
side, the notes, an IOMMU's translation followed); _walk.py is the render
walk for the one address (the winner, the losers and why); _report.py the
immutable values an explanation is made of, and how they print.

Read-only: nothing here changes a tree or a view.  Call it with the tree
quiet (no edit in another thread), as for `info mtree`.

Below rendering in the import layers (docs/architecture.md): it is handed a
FlatView or an AddressSpace and reads it; it imports the access path's IOMMU
translation and buserror's diagnosis, never the memory system or the views.

Thread safety:
    Reads a view (which never changes once rendered) and the region tree
    without the writer lock: any thread, but an edit in another thread
    meanwhile can make the tree and the view disagree (the explanation then
    says so in its notes).  The results are immutable values.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from ..dispatch import NO_REGION, Dispatch
from ..errors import ArgumentTypeError, InvalidArgumentError
from ..region import ADDRESS_SPACE_SIZE, IOMMU, ROM, ROM_DEVICE, MemoryRegion
from ._report import (_NIL, AccessCheck, Contender, DispatchStep, Explanation, IOMMUStep,
                      Link)
from ._walk import _chain, _Walk

if TYPE_CHECKING:
    from ..address_space import AddressSpace
    from ..flatview import FlatView

MAX_IOMMU_HOPS = 16
"""How many IOMMU translations one explanation follows (as pymem/access.py
bounds an access)."""


def check_address(addr: Any, what: str) -> int:
    """`addr` as a 64-bit address; the named errors for anything else."""
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise ArgumentTypeError(f"explain {what}: address must be an int, "
                                f"not {type(addr).__name__}")
    if not 0 <= addr < ADDRESS_SPACE_SIZE:
        raise InvalidArgumentError(f"explain {what}: address {addr:#x} is outside the "
                                   f"64-bit address space")
    return addr


def _dispatch_walk(dispatch: Dispatch, addr: int) -> Tuple[List[DispatchStep], int]:
    """The radix walk of QEMU's phys_page_find for `addr`: the entries read,
    and the page-level section found (0 if it does not cover the address)."""
    levels = dispatch.levels
    index = addr >> dispatch.page_bits
    ptr, skip = dispatch.root
    steps = [DispatchStep(levels, None, 0, skip, ptr)]
    level = levels
    while skip:
        level -= skip
        if level < 0 or ptr == _NIL:
            return steps, 0
        node = ptr
        entry = (index >> (level * 9)) & 511
        skip, ptr = dispatch.node(node)[entry]
        steps.append(DispatchStep(level, node, entry, skip, ptr))
    section = dispatch.section(ptr)
    if not section.start <= addr <= section.last:
        return steps, 0
    return steps, ptr


def explain_view(view: "FlatView", addr: int, space: Optional["AddressSpace"] = None,
                 _hops: int = 0) -> Explanation:
    """Explain `addr` in `view` (see Explanation); `space` names the space.

    `addr` is a byte address in [0, 2^64).

    Raises:
        ArgumentTypeError: `addr` is not an int.
        InvalidArgumentError: `addr` is outside [0, 2^64).
    """
    what = repr(space.name) if space is not None else "flat view"
    addr = check_address(addr, what)
    walk = _Walk(addr)
    # A space's own root, not the view's: the view may render a region
    # below it that the flat-view-root shortcut found (a container with one
    # child at 0), and the chain and the losers start at the space's root.
    root = space.root if space is not None else view.root
    if root is not None:
        walk.run(root)
    fr = view.lookup(addr)
    dispatch = view.dispatch
    steps: List[DispatchStep] = []
    section = page_section = 0
    piece = None
    if dispatch is not None:
        steps, page_section = _dispatch_walk(dispatch, addr)
        section = dispatch.lookup(addr)
        if dispatch.section(page_section).is_subpage:
            page_offset = addr & ((1 << dispatch.page_bits) - 1)
            for first, last, sec in dispatch.subpage(page_section):
                if first <= page_offset <= last:
                    piece = (first, last)
                    break
    region = fr.region if fr is not None else None
    offset = fr.offset_in_region + addr - fr.addr if fr is not None else None
    notes: List[str] = []
    chain = _chain(walk.winner)
    if (chain[-1].region if chain else None) is not region:
        notes.append("the tree and the published view disagree (edited since the last "
                     "commit?): the region above is the view's")
    if dispatch is not None:
        used = dispatch.section(section)
        if (used.region == NO_REGION) != (region is None) or (
                region is not None and used.region != region.id):
            notes.append(f"dispatch section #{section} is not the flat range's region")
    if fr is not None and fr.readonly:
        notes.append("ROM: a write changes nothing and answers DECODE_ERROR"
                     if region is not None and region.kind == ROM else
                     "read-only here: writes are dropped")
    if region is not None and region.kind == ROM_DEVICE and not region.romd:
        notes.append("ROM device in MMIO mode (romd off): reads go to its ops, not memory")
    step = None
    if region is not None and region.kind == IOMMU and offset is not None:
        step = _explain_iommu(region, offset, _hops)
    return Explanation(space.name if space is not None else None, addr, root, region,
                       offset, fr, section, page_section if piece is not None else section,
                       piece, tuple(steps), chain, tuple(walk.losers()), tuple(notes), step)


def _explain_iommu(region: MemoryRegion, offset: int, hops: int) -> IOMMUStep:
    from ..access import _iommu_translate   # an access helper: explain sits above access

    if hops >= MAX_IOMMU_HOPS:
        return IOMMUStep(region, offset, None, None, None,
                         f"not followed: more than {MAX_IOMMU_HOPS} IOMMU translations")
    if region.target is None:
        note = " (the IOMMU has no target space)"
    else:
        note = ""
    try:
        found = _iommu_translate(region, offset, 1, False)
    except Exception as exc:   # noqa: BLE001 - the model's error is the explanation
        return IOMMUStep(region, offset, None, None, None,
                         f"translation failed: {exc}{note}")
    if found is None:
        return IOMMUStep(region, offset, None, None, None, "a read here is refused "
                         "(permission denied by the mapping)")
    space, target, _ = found
    then = None
    if space.flatview is not None:
        then = explain_view(space.flatview, target, space, hops + 1)
    return IOMMUStep(region, offset, space.name, target, then)


def explain(space: "AddressSpace", addr: int, size: Optional[int] = None,
            is_write: bool = False) -> Explanation:
    """Explain `addr` in address space `space`'s current view; with `size`,
    also whether an access of `size` bytes there (a write if `is_write`)
    fails, where and why (`Explanation.access`).

    `addr` is a byte address in [0, 2^64); `size` a byte count, > 0, with
    `addr + size <= 2^64`.  A failing IOMMU translate callback is reported in
    the explanation, not raised.

    Raises:
        ArgumentTypeError: `addr` or `size` is not an int.
        InvalidArgumentError: `addr` is outside [0, 2^64), or the access is
            empty or runs past 2^64.
    """
    assert space.flatview is not None
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
        raise ArgumentTypeError(f"explain {space.name!r}: size must be an int, "
                                f"not {type(size).__name__}")
    if size is not None and not 0 < size <= ADDRESS_SPACE_SIZE - check_address(
            addr, repr(space.name)):
        raise InvalidArgumentError(f"explain {space.name!r}: an access of {size} bytes at "
                                   f"{addr:#x} is empty or runs past 2^64")
    found = explain_view(space.flatview, addr, space)
    if size is None:
        return found
    from ..access import _iommu_translate
    from ..buserror import diagnose
    from ..memtx import MemTxReason

    failure = diagnose(space, addr, size, bool(is_write), _iommu_translate)
    # Neither is a failure the map makes: a device may or may not answer one.
    accepted = failure.reason in (MemTxReason.UNKNOWN, MemTxReason.DEVICE_ERROR)
    return replace(found, access=AccessCheck(size, bool(is_write),
                                             None if accepted else failure))


__all__ = ["AccessCheck", "Contender", "DispatchStep", "Explanation", "IOMMUStep", "Link", "explain",
           "explain_view"]
