"""What `explain` answers: the Explanation of one address, and its parts.

Immutable values (frozen dataclasses) that print as the `pymem explain`
report: the chain of links from the root (`Link`), every other region that
covered the address and why it lost (`Contender`), the dispatch walk
(`DispatchStep`), an IOMMU's translation (`IOMMUStep`) and an access check
(`AccessCheck`).  pymem/explain/__init__.py makes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Tuple

from ..region import ALIAS, MemoryRegion

if TYPE_CHECKING:
    from ..buserror import Failure
    from ..flatview import FlatRange

_NIL = (1 << 26) - 1   # a radix entry pointing nowhere (QEMU's PHYS_MAP_NODE_NIL)


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
