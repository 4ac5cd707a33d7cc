"""MemoryRegion: the nodes of QEMU's region tree, and the edits that change it.

A region is RAM, ROM, a ROM device, MMIO ("i/o"), an IOMMU, a pure container,
or an alias of a window of another region.  Any region but an alias may hold
subregions at offsets and priorities; rendering (pymem/flatview.py) turns a
tree into the flat map an address space sees.  Edits are validated here, before
anything changes, so a bad edit leaves the tree and every view as they were;
a valid edit on a region that belongs to a MemorySystem is committed at once,
or at the end of the enclosing transaction, as QEMU does.

Alias loops.  An alias may map (a window of) a region that contains it, as
QEMU's Arm SSE boards do (mps2-an505: `alias 3`, at 0x50000000 inside
`arm-sse-cpu-container0`, shows that container from 0x40000000).  QEMU
renders such a loop by going round it: every trip shifts the base and
intersects the clip window with a shifted window, so a loop that moves the
window ends once the clip is empty.  pymem accepts a loop exactly when
rendering it ends within a bound: no render path may go through one alias
more than MAX_ALIAS_VISITS times.  Every edit that can close a loop or
change one (add_subregion when the new subregion reaches its container,
and set_address / set_alias_offset / set_size / set_enabled on a region that
lies on a loop) is applied tentatively, checked by walking the loop's
regions as rendering would, and undone with a TopologyError naming the loop
if some path runs past the bound.  A cycle of subregions alone (a region
under its own descendant) is still refused: `info mtree` could not print it.

One concept per module:

    kinds.py       region kinds, the 2^64 bound, priorities, dirty-memory clients
    ops.py         MemoryRegionOps and the MMIO callback types
    node.py        the C node mirror: read-only fields written through to C
    memory.py      a region's own memory (allocated, or a caller's buffer)
    loops.py       reachability and the alias-loop checks
    owner.py       RegionOwner: what a region asks of the system it belongs to
    _edits.py      MemoryRegion's edits (add_subregion, set_address, ...)
    _dirty.py      MemoryRegion's dirty pages (get_dirty, set_dirty, ...)
    tree.py        MemoryRegion (those two are base classes of it): its
                   constructors, its fields, what it answers

The region layer knows no flat view, no address space and no access path: a
region in a MemorySystem tells its system that something changed through
the interface the system registers (owner.py), never by importing it.
"""
from ..tree_lock import TREE_LOCK
from .kinds import (ADDRESS_SPACE_SIZE, ALIAS, CONTAINER, DIRTY_MEMORY_CODE,
                    DIRTY_MEMORY_MIGRATION, DIRTY_MEMORY_SNAPSHOT, DIRTY_MEMORY_VGA, IO, IOMMU,
                    MAX_ALIAS_VISITS, PRIORITY_MAX, PRIORITY_MIN, RAM, RAM_DEVICE, ROM,
                    ROM_DEVICE)
from .loops import loop_text, reachable, runaway_loop
from .ops import (ByteOrder, MemoryRegionOps, MMIORead, MMIOReadWithAttrs, MMIOWrite,
                  MMIOWriteWithAttrs)
from .owner import RegionOwner
from .tree import MemoryRegion, set_ops
from .node import _set  # noqa: F401  (tests edit a field behind the edits' back)

__all__ = [
    "ADDRESS_SPACE_SIZE", "PRIORITY_MIN", "PRIORITY_MAX", "RAM", "ROM", "ROM_DEVICE",
    "RAM_DEVICE", "IO", "ALIAS", "CONTAINER", "IOMMU", "MAX_ALIAS_VISITS", "DIRTY_MEMORY_VGA",
    "DIRTY_MEMORY_CODE", "DIRTY_MEMORY_MIGRATION", "DIRTY_MEMORY_SNAPSHOT", "TREE_LOCK",
    "ByteOrder", "MMIORead", "MMIOWrite", "MMIOReadWithAttrs", "MMIOWriteWithAttrs",
    "MemoryRegionOps", "MemoryRegion", "RegionOwner", "set_ops", "runaway_loop", "loop_text",
    "reachable",
]
