"""QEMU's IOMMU types as the access path uses them: IOMMUAccessFlags, IOMMUTLBEntry and the bound on translations one access may go through.

Part of pymem.access (its docstring gives the rules).
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, NamedTuple, Optional


if TYPE_CHECKING:
    from ..address_space import AddressSpace, MemorySystem


# How many IOMMU translations one access may go through before it counts as
# a cycle.  QEMU's translate loop (address_space_translate_iommu) has no
# bound at all, and real machines nest two at most (a vIOMMU in front of a
# nested one); an IOMMU that translates into its own address space would
# spin for ever in QEMU.  pymem raises IOMMUCycleError instead.
IOMMU_MAX_TRANSLATIONS = 16


class IOMMUAccessFlags(enum.IntFlag):
    """QEMU's IOMMUAccessFlags: what an access needs, what a mapping allows."""

    NONE = 0
    RO = 1
    WO = 2
    RW = 3


class IOMMUTLBEntry(NamedTuple):
    """What an IOMMU region's `translate(addr, flag)` answers (QEMU's IOMMUTLBEntry).

    The access goes to `(translated_addr & ~addr_mask) | (addr & addr_mask)` in
    `target_as` (None: the region's own target) if `perm` allows it; otherwise
    it is unassigned.  `addr_mask` is the page size minus one.
    """

    target_as: Optional[AddressSpace]
    iova: int
    translated_addr: int
    addr_mask: int
    perm: int
