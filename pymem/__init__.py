"""pymem: QEMU's memory API for Python, with a C dispatch core.

Thread safety:
    Readers never block, writers take one lock (the guide "Threads and
    RCU" has the table).  Accesses, lookups and translations may run from
    any thread in parallel, in C with the GIL released, each on the view
    current when it began; `Translation`, `FlatRange`, `Section` and the
    other results are immutable values.  Edits and commits of one
    MemorySystem run one at a time under its writer lock; device callbacks
    and taps run on the accessing thread with no pymem lock held; listeners
    run on the committing thread inside the commit.  A replaced view is
    freed through RCU after every reader that could hold it is done.
"""
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
