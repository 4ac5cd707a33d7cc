"""pymem: QEMU's memory API for Python, with a C dispatch core."""
from .access import IOMMUAccessFlags, IOMMUTLBEntry
from .address_space import AddressSpace, MemorySystem
from .dispatch import Dispatch, DispatchRange, Section, Translation
from .errors import (CapacityError, DumpParseError, PymemError, RangeOrderError,
                     RcuError, TopologyError)
from .flatview import FlatRange, FlatView
from .listener import MemoryListener, MemoryRegionSection
from .memtx import MEMTXATTRS_UNSPECIFIED, MemTxAttrs, MemTxError, MemTxResult
from .region import MemoryRegion, MemoryRegionOps

__all__ = [
    "AddressSpace", "IOMMUAccessFlags", "IOMMUTLBEntry", "MEMTXATTRS_UNSPECIFIED",
    "MemTxAttrs", "MemTxError", "MemTxResult", "CapacityError", "Dispatch", "DispatchRange", "DumpParseError",
    "FlatRange", "FlatView", "MemoryListener", "MemoryRegion", "MemoryRegionOps",
    "MemoryRegionSection", "MemorySystem", "PymemError", "RangeOrderError", "RcuError",
    "Section", "TopologyError", "Translation",
]
