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

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .dispatch import NO_REGION, Dispatch
from .errors import ArgumentTypeError, InvalidArgumentError
from .region import (ADDRESS_SPACE_SIZE, ALIAS, IOMMU, MAX_ALIAS_VISITS, ROM, ROM_DEVICE,
                     MemoryRegion)

if TYPE_CHECKING:
    from .address_space import AddressSpace
    from .buserror import Failure
    from .flatview import FlatRange, FlatView

_NIL = (1 << 26) - 1   # a radix entry pointing nowhere (QEMU's PHYS_MAP_NODE_NIL)

MAX_IOMMU_HOPS = 16
"""How many IOMMU translations one explanation follows (as pymem/access.py
bounds an access)."""


@dataclass(frozen=True)
class Link:
    """One step of the chain from the view's root to a region: `region`
    entered with its offset 0 at absolute address `base` (for a region under
    an alias: where the target's offset 0 would sit)."""

    region: MemoryRegion
    base: int

    def __str__(self) -> str:
        mr = self.region
        if mr.kind == ALIAS:
            target = mr.alias.name if mr.alias is not None else "?"
            return f"alias {mr.name!r} @{self.base:#x} (+{mr.alias_offset:#x} into {target!r})"
        return f"{mr.name!r} @{self.base:#x}"


@dataclass(frozen=True)
class Contender:
    """A region whose window holds the address but which does not answer it."""

    region: MemoryRegion
    chain: Tuple[Link, ...]
    reason: str

    @property
    def via(self) -> Optional[MemoryRegion]:
        """The nearest alias on the way to the region, if any."""
        for link in reversed(self.chain[:-1]):
            if link.region.kind == ALIAS:
                return link.region
        return None

    def __str__(self) -> str:
        via = self.via
        through = f" via alias {via.name!r}" if via is not None else ""
        return f"{self.region.name!r} ({self.region.kind}){through}: {self.reason}"


@dataclass(frozen=True)
class DispatchStep:
    """One radix entry read on the way down: at `level` (levels-1 is the
    top), entry `entry` of node `node` (None: the root entry) held
    {skip, ptr}; a leaf (skip 0) holds a section number."""

    level: int
    node: Optional[int]
    entry: int
    skip: int
    ptr: int

    def __str__(self) -> str:
        where = "root" if self.node is None else f"node [{self.node}] entry {self.entry}"
        what = (f"#{self.ptr}" if self.skip == 0 else
                "NIL" if self.ptr == _NIL else f"[{self.ptr}]")
        return f"level {self.level}: {where}: skip={self.skip} ptr={what}"


@dataclass(frozen=True)
class IOMMUStep:
    """What an IOMMU made of the address: the target space and address, or
    None when it refuses a read there; `then` explains the target's answer."""

    region: MemoryRegion
    offset: int
    target_space: Optional[str]
    target_addr: Optional[int]
    then: Optional["Explanation"]
    refused: str = ""


@dataclass(frozen=True)
class AccessCheck:
    """What the map says of an access of `size` bytes at the address (a
    write if `is_write`), split into pieces as `rw` splits it: `failure`
    says where and why it fails (pymem/buserror.py), None when the map
    accepts it (a device may still answer an error of its own)."""

    size: int
    is_write: bool
    failure: Optional["Failure"]

    def __str__(self) -> str:
        what = f"a {self.size}-byte {'write' if self.is_write else 'read'}"
        if self.failure is None:
            return f"{what}: the map accepts it (a device may still answer an error)"
        return f"{what} fails: {self.failure}"


@dataclass(frozen=True)
class Explanation:
    """Why `addr` in `space` (or a bare view) reaches `region`.

    `flat_range` is the view's range holding the address (None: unassigned),
    `section` the dispatch section accesses use (0: unassigned), and
    `page_section` the page-level section when that is a sub-page (then
    `piece` is the (first, last) page offsets of the piece holding the
    address).  `chain` leads from the view's root to the region; `losers`
    are the other regions whose window holds the address, each with why it
    does not answer.  Addresses are absolute, in bytes."""

    space: Optional[str]
    addr: int
    root: Optional[MemoryRegion]
    region: Optional[MemoryRegion]
    offset_in_region: Optional[int]
    flat_range: Optional["FlatRange"]
    section: int
    page_section: int
    piece: Optional[Tuple[int, int]]
    walk: Tuple[DispatchStep, ...]
    chain: Tuple[Link, ...]
    losers: Tuple[Contender, ...]
    notes: Tuple[str, ...] = ()
    iommu: Optional[IOMMUStep] = None
    access: Optional[AccessCheck] = None

    @property
    def unassigned(self) -> bool:
        """True when no region answers the address (QEMU's unassigned space)."""
        return self.region is None

    def __str__(self) -> str:
        where = f"address space {self.space!r}" if self.space is not None else "flat view"
        root = self.root.name if self.root is not None else "(none)"
        lines = [f"{self.addr:#x} in {where} (root {root!r})"]
        if self.region is None:
            lines.append("  answered by: nothing (unassigned)")
        else:
            lines.append(f"  answered by: {self.region.name!r} ({self.region.kind}) "
                         f"at offset {self.offset_in_region:#x}")
        fr = self.flat_range
        if fr is not None:
            attrs = "".join(f" {a}" for a in ("readonly", "romd", "nonvolatile")
                            if getattr(fr, a))
            lines.append(f"  flat range: {fr.addr:#018x}-{fr.end - 1:#018x} "
                         f"{fr.region.name!r} @{fr.offset_in_region:#x}{attrs}")
        else:
            lines.append("  flat range: none")
        if self.piece is not None:
            lines.append(f"  section: #{self.section}, sub-page piece "
                         f"+{self.piece[0]:#x}..+{self.piece[1]:#x} of sub-page section "
                         f"#{self.page_section}")
        else:
            lines.append(f"  section: #{self.section}")
        if self.walk:
            lines.append("  dispatch walk: " + "; ".join(str(s) for s in self.walk))
        if self.chain:
            lines.append("  chain: " + " -> ".join(str(link) for link in self.chain))
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.losers:
            lines.append("  also covering the address:")
            lines.extend(f"    {c}" for c in self.losers)
        step = self.iommu
        if step is not None:
            if step.target_space is None:
                lines.append(f"  IOMMU {step.region.name!r} at offset {step.offset:#x}: "
                             f"{step.refused}")
            else:
                lines.append(f"  IOMMU {step.region.name!r} translates offset "
                             f"{step.offset:#x} to {step.target_addr:#x} in "
                             f"{step.target_space!r}:")
                if step.then is not None:
                    lines.extend("    " + line for line in str(step.then).splitlines())
        if self.access is not None:
            lines.append(f"  access: {self.access}")
        return "\n".join(lines)


def check_address(addr: Any, what: str) -> int:
    """`addr` as a 64-bit address; the named errors for anything else."""
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise ArgumentTypeError(f"explain {what}: address must be an int, "
                                f"not {type(addr).__name__}")
    if not 0 <= addr < ADDRESS_SPACE_SIZE:
        raise InvalidArgumentError(f"explain {what}: address {addr:#x} is outside the "
                                   f"64-bit address space")
    return addr


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
    from .access import _iommu_translate   # an access helper: explain sits above access

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
    from .access import _iommu_translate
    from .buserror import diagnose
    from .memtx import MemTxReason

    failure = diagnose(space, addr, size, bool(is_write), _iommu_translate)
    # Neither is a failure the map makes: a device may or may not answer one.
    accepted = failure.reason in (MemTxReason.UNKNOWN, MemTxReason.DEVICE_ERROR)
    return replace(found, access=AccessCheck(size, bool(is_write),
                                             None if accepted else failure))


__all__ = ["AccessCheck", "Contender", "DispatchStep", "Explanation", "IOMMUStep", "Link", "explain",
           "explain_view"]
