"""pymem: QEMU's memory API for Python, with a C dispatch core."""
from .access import IOMMUAccessFlags, IOMMUTLBEntry
from .address_space import AddressSpace, MemorySystem
from .dispatch import Dispatch, DispatchRange, Section, Translation
from .errors import (ArgumentTypeError, CapacityError, DumpParseError, EditDuringCommitError,
                     IndexOutOfRangeError, InvalidArgumentError, IOMMUCycleError,
                     NotCopyableError, OutOfMemoryError, PymemError, RangeOrderError, RcuError,
                     ReadOnlyAttributeError, SnapshotError, SnapshotFormatError,
                     TopologyError)
from .flatview import FlatRange, FlatView
from .listener import MemoryListener, MemoryRegionSection
from .memtx import MEMTXATTRS_UNSPECIFIED, MemTxAttrs, MemTxError, MemTxResult
from .dirty import DirtyBitmap
from .region import (DIRTY_MEMORY_CODE, DIRTY_MEMORY_MIGRATION, DIRTY_MEMORY_SNAPSHOT,
                     DIRTY_MEMORY_VGA, MemoryRegion,
                     MemoryRegionOps)

__all__ = [
    "DIRTY_MEMORY_CODE", "DIRTY_MEMORY_MIGRATION", "DIRTY_MEMORY_SNAPSHOT", "DIRTY_MEMORY_VGA",
    "DirtyBitmap", "AddressSpace", "IOMMUAccessFlags", "IOMMUTLBEntry", "MEMTXATTRS_UNSPECIFIED",
    "MemTxAttrs", "MemTxError", "MemTxResult", "CapacityError", "Dispatch", "DispatchRange", "DumpParseError",
    "EditDuringCommitError", "ArgumentTypeError", "IOMMUCycleError",
    "IndexOutOfRangeError", "InvalidArgumentError", "OutOfMemoryError",
    "FlatRange", "FlatView", "MemoryListener", "MemoryRegion", "MemoryRegionOps",
    "MemoryRegionSection", "MemorySystem", "NotCopyableError", "ReadOnlyAttributeError", "PymemError", "RangeOrderError", "RcuError",
    "Section", "SnapshotError", "SnapshotFormatError", "TopologyError", "Translation",
]
