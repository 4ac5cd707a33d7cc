"""Region kinds, the bounds of the region tree, and QEMU's dirty-memory clients.

The vocabulary the tree (tree.py), rendering (pymem/flatview.py) and the
dumps share: numbers and names, and the checks of a size or an offset
against the 2^64 bound that the constructors and the edits both make.
"""
from typing import Any

from ..errors import ArgumentTypeError, TopologyError

ADDRESS_SPACE_SIZE = 1 << 64
PRIORITY_MIN = -(1 << 31)
PRIORITY_MAX = (1 << 31) - 1

RAM = "ram"
ROM = "rom"
ROM_DEVICE = "rom_device"
RAM_DEVICE = "ram_device"
IO = "io"
ALIAS = "alias"
CONTAINER = "container"
IOMMU = "iommu"

MAX_ALIAS_VISITS = 16
"""How many times one render path may go through the same alias.  QEMU has
no bound (a loop that never empties its window recurses until the stack
overflows).  A loop whose window w moves by s per trip is gone round about
w / |s| times; the loops QEMU 7.2 builds (Arm SSE's `alias 1`, `alias 2`,
`alias 3`: window 0x10000000, shift 0x10000000) go through each alias once.
A loop that keeps its window (shift 0), or loops whose shifts cancel (one
up, one down), would go round forever and are refused.  16 leaves a wide
margin over real machines while keeping a render path short enough for
Python's recursion limit."""

# QEMU's dirty-memory clients, as the bits of a region's dirty-log mask.
DIRTY_MEMORY_VGA = 1
DIRTY_MEMORY_CODE = 2
DIRTY_MEMORY_MIGRATION = 4
DIRTY_MEMORY_SNAPSHOT = 8   # pymem's own: incremental snapshots (pymem/snapshot.py)


def _check_size(what: str, size: Any) -> int:
    if not isinstance(size, int) or isinstance(size, bool):
        raise ArgumentTypeError(f"{what}: size must be an int, not {type(size).__name__}")
    if not 0 <= size <= ADDRESS_SPACE_SIZE:
        raise TopologyError(f"{what}: size {size:#x} is beyond 2^64")
    return size


def _check_offset(what: str, offset: Any) -> int:
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ArgumentTypeError(f"{what}: offset must be an int, not {type(offset).__name__}")
    if not 0 <= offset < ADDRESS_SPACE_SIZE:
        raise TopologyError(f"{what}: offset {offset:#x} is beyond 2^64")
    return offset
