"""MemoryRegion: the nodes of QEMU's region tree.

The class: its constructors, its read-only fields (node.py writes them
through to the C node) and what it answers (its memory, its subregions, the
type `info mtree` prints).  Its edits (_edits.py: add_subregion,
set_address, ...) and its dirty-page methods (_dirty.py) are base classes
of it, one concept a module; this class's docstring is the one place that
says what every edit raises and from which threads.  A region in a
MemorySystem tells its system that something changed through the small
interface the system registers (owner.py's RegionOwner); this module never
imports the system.

Thread safety:
    See `MemoryRegion`.  `set_ops` swaps a device's ops: call it with no
    access to that region in flight (trace replay does, while it holds the
    machine); accesses made after it returns use the new ops.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Type, cast

from .. import dirty, hostmem
from .._bindings import _fastpath, ffi, lib
from ..dispatch import NO_REGION, _function_address
from ..errors import ArgumentTypeError, InvalidArgumentError, TopologyError, Uncopyable
from ..tree_lock import TREE_LOCK
from ._dirty import _RegionDirtyPages
from ._edits import _RegionEdits
from .kinds import (ADDRESS_SPACE_SIZE, ALIAS, CONTAINER, IO, IOMMU, RAM, RAM_DEVICE, ROM,
                    ROM_DEVICE, _check_offset, _check_size)
from .memory import _allocate, _wrap_buffer
from .node import (_KIND_FLAGS, _ConstructorOrAttribute, _Field, _push_alias,
                   _push_alias_offset, _push_flag, _set)
from .ops import MemoryRegionOps
from .owner import RegionOwner

if TYPE_CHECKING:
    from ..address_space import AddressSpace, MemorySystem


def _refuse_new(name: Any, size: Any, kind: Any) -> None:
    """Raise the error for arguments `MemoryRegion(name, size, kind)` refused
    (the C base takes only what these checks accept)."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"region name must be a str, not {type(name).__name__}")
    if kind not in _KIND_FLAGS:
        raise InvalidArgumentError(f"region {name!r}: unknown kind {kind!r}")
    _check_size(f"region {name!r}", size)
    raise TopologyError("more than 2^32 - 2 regions created")


# The constructors behind `MemoryRegion.alias(...)` and `.container(...)`;
# out of the class body so that `cls` can be typed as the class.
def _new_alias(cls: Type["MemoryRegion"], name: str, target: "MemoryRegion", offset: int,
               size: int) -> "MemoryRegion":
    """A window of `size` bytes onto `target`, starting `offset` bytes into it."""
    if not isinstance(target, MemoryRegion):
        raise ArgumentTypeError(f"alias {name!r}: target must be a MemoryRegion, "
                                f"not {type(target).__name__}")
    offset = _check_offset(f"alias {name!r}", offset)
    mr = cls(name, size, ALIAS)
    mr._init_alias(target, offset)   # a new node: nothing renders it yet
    return mr


def _new_container(cls: Type["MemoryRegion"], name: str, size: int) -> "MemoryRegion":
    """A pure container: renders only its subregions."""
    return cls(name, size, CONTAINER)


class MemoryRegion(_RegionEdits, _RegionDirtyPages, Uncopyable):
    """One node of a region tree; build it with the class-method constructors.

    `ram`, `rom`, `rom_device`, `ram_device`, `io`, `alias`, `container` and
    `iommu` make the kinds QEMU has.  Sizes and offsets are bytes, as Python
    ints: sizes 0 .. 2^64 (0 is accepted, and `check()` reports it),
    offsets 0 .. 2^64 - 1.  A value of another type raises
    ArgumentTypeError, one out of range TopologyError ("beyond 2^64"), and
    an edit that would break the tree (a second parent,
    a region under its own descendant, an alias loop that never ends)
    TopologyError naming the regions; a refused edit changes nothing.
    Fields (`size`, `addr`, `enabled`, ...) are read-only: assigning one
    raises ReadOnlyAttributeError naming the edit method to use.

    Thread safety:
        Edits (`add_subregion`, `del_subregion`, the `set_*` methods) may
        come from any thread; on a region in a MemorySystem they take the
        system's writer lock and commit (at once, or when the outermost
        `transaction()` exits), and readers on other threads see the old
        view until that commit publishes the new one.  Every change to a
        region's C node takes the tree lock (`pymem.region.TREE_LOCK`).
        Reads of attributes (`name`, `size`, `addr`, `priority`, ...) are
        plain Python reads.  The dirty-log methods are atomic per page (see
        `pymem.dirty`); `buffer` is the memory itself, shared with every
        accessing thread.

    Every edit raises:
        EditDuringCommitError: made from a memory listener being told of a
            change (nothing changes).
        CapacityError: the commit that publishes the edit needs more sections
            or radix nodes than a dispatch entry can address (every space stays
            on its last view).
        Exception: an edit committed at once (outside a transaction) raises the
            first exception a listener raised while told of it, once the whole
            change is told and published.

    Raises:
        ArgumentTypeError: (constructing) `name` is not a str, or `size` not an
            int.
        InvalidArgumentError: (constructing) an unknown `kind`.
        TopologyError: (constructing) `size` beyond 2^64, or more than 2^32 - 2
            regions made in this process.
    """

    # The fields live in the C base (csrc/ext/regionobj.c), which makes the
    # region and its C node in one call (`MemoryRegion(name, size, kind)`:
    # enabled, at 0, romd for a ROM device, no subregions) and frees them
    # together; `_node` is that node as a cffi `pm_region *`.
    __slots__ = ()

    # Every public field is read-only: assigning one would skip the checks,
    # the adoption into a system and the commit that its edit method makes
    # (and a field C renders from would reach C unchecked).
    id = _Field[int]("a region's id is fixed (C and MemoryRegion.by_id know it by it)")
    """The region's id: unique among live regions, fixed (`MemoryRegion.by_id` finds it)."""
    name = _Field[str]("a region's name is fixed; make a new region")
    """The region's name (QEMU's names are not unique), fixed."""
    kind = _Field[str]("a region's kind is fixed; make a new region")
    """One of RAM, ROM, ROM_DEVICE, RAM_DEVICE, IO, ALIAS, CONTAINER, IOMMU; fixed."""
    ops = _Field[Optional[MemoryRegionOps]]("a region's ops are fixed, as QEMU's; make a new "
                                            "region")
    """The device's MemoryRegionOps (I/O and ROM-device regions), else None; fixed."""
    priority = _Field[int]("set it with add_subregion(offset, region, priority); to change it, "
                           "del_subregion() then add_subregion() again")
    """Its priority in its container, a signed 32-bit int (set by `add_subregion`)."""
    translate = _Field[Optional[Callable[..., Any]]]("an IOMMU's translate is given to "
                                                     "MemoryRegion.iommu()")
    """An IOMMU region's translate callback, else None; fixed."""
    target = _Field[Optional["AddressSpace"]]("an IOMMU's target is given to "
                                             "MemoryRegion.iommu(); an IOMMUTLBEntry's "
                                             "target_as may name another space")
    """An IOMMU region's default target address space, else None; fixed."""
    # What rendering reads is written through to the region's C node.
    addr = _Field[int]("use set_address()",
                       lambda mr, v: (lib.pm_region_set_addr, mr._node, v))
    """Bytes from its container's start, 0..2^64 - 1 (`set_address` moves it)."""
    size = _Field[int]("use set_size()", lambda mr, v: (
        lib.pm_region_set_size, mr._node, v & (ADDRESS_SPACE_SIZE - 1),
        v == ADDRESS_SPACE_SIZE))
    """Bytes, 0..2^64 (`set_size` changes it)."""
    enabled = _Field[bool]("use set_enabled()", _push_flag(lib.PM_REGION_ENABLED))
    """Whether it and its subtree are rendered (`set_enabled`)."""
    readonly = _Field[bool]("use set_readonly()", _push_flag(lib.PM_REGION_READONLY))
    """Whether writes through it are dropped (`set_readonly`; True for ROM)."""
    nonvolatile = _Field[bool]("use set_nonvolatile()", _push_flag(lib.PM_REGION_NONVOLATILE))
    """Whether it is non-volatile memory (`set_nonvolatile`)."""
    romd = _Field[bool]("use set_romd()", _push_flag(lib.PM_REGION_ROMD))
    """A ROM device's mode: True reads memory directly, False goes to its ops (`set_romd`)."""
    alias_offset = _Field[int]("use set_alias_offset()", _push_alias_offset)
    """An alias's window start in its target, in bytes (`set_alias_offset`)."""
    dirty_log = _Field[int]("use set_log()",
                            lambda mr, v: (lib.pm_region_set_dirty_log, mr._node, v))
    """The DIRTY_MEMORY_* clients logging it, as a bit mask (`set_log`)."""

    # The C fields (the slots behind the descriptors above); `_container`
    # and `_alias` are the slots behind `container` and `alias` (see
    # _ConstructorOrAttribute); rendering reads `_alias` directly.
    _id: int
    _name: str
    _size: int
    _kind: str
    _ops: Optional[MemoryRegionOps]
    _readonly: bool
    _romd: bool
    _enabled: bool
    _priority: int
    _addr: int
    _container: Optional[MemoryRegion]
    _alias: Optional[MemoryRegion]
    _alias_offset: int
    # Kept in reverse of QEMU's subregion order (lowest priority first,
    # oldest first among equals) so the common add is an append.
    _subs: List[MemoryRegion]
    _nonvolatile: bool
    _dirty_log: int
    _translate: Optional[Callable[..., Any]]
    _target: Optional[AddressSpace]
    _buffer: Any
    _system: Optional[RegionOwner]
    # Set once the region is found on a cycle of subregion and alias links
    # (kept after the cycle is broken: then it only costs a check).
    _on_loop: bool
    _node: Any   # the pm_region * this object owns (the C base frees it)

    # ------------------------------------------------------------ constructors

    @classmethod
    def ram(cls, name: str, size: int, buffer: Any = None) -> "MemoryRegion":
        """RAM of `size` bytes: `buffer` (any writable buffer of that size) or our own zeroes.

        `size` is bytes, 0..2^64.  `buffer`, if given, must be writable,
        C-contiguous and exactly `size` bytes (it is used in place, zero-copy).

        Raises:
            ArgumentTypeError: `name` is not a str, `size` not an int, or `buffer`
                has no buffer protocol.
            InvalidArgumentError: `buffer` is read-only, not C-contiguous, or of
                another size.
            TopologyError: `size` beyond 2^64, or memory of that size cannot be
                allocated.
        """
        mr = cls(name, size, RAM)
        mr._set_memory(_wrap_buffer(name, buffer, size) if buffer is not None
                       else _allocate("ram", name, size))
        return mr

    @classmethod
    def rom(cls, name: str, size: Optional[int] = None, data: Optional[bytes] = None) -> "MemoryRegion":
        """Read-only memory holding `data` (zero-padded to `size`).

        `size` is bytes, 0..2^64.  Give `size`, `data` (bytes-like), or both.

        Raises:
            ArgumentTypeError: `name` is not a str, `size` not an int, `data` not
                bytes-like, or neither given.
            InvalidArgumentError: `data` is longer than `size`.
            TopologyError: `size` beyond 2^64, or memory of that size cannot be
                allocated.
        """
        if data is not None:
            try:
                data = memoryview(data).cast("B").tobytes()
            except TypeError:
                raise ArgumentTypeError(f"rom {name!r}: data must be bytes-like, not "
                                        f"{type(data).__name__}") from None
        if size is None:
            if data is None:
                raise ArgumentTypeError(f"rom {name!r}: give a size, data, or both")
            size = len(data)
        mr = cls(name, size, ROM)
        _set(mr, "readonly", True)
        mr._set_memory(_allocate("rom", name, size))
        if data is not None:
            if len(data) > size:
                raise InvalidArgumentError(f"rom {name!r}: {len(data)} bytes of data do not fit "
                                           f"its size {size:#x}")
            mr.buffer[:len(data)] = data
        return mr

    @classmethod
    def rom_device(cls, name: str, size: int, ops: MemoryRegionOps) -> "MemoryRegion":
        """A ROM device: reads straight from memory in romd mode, writes to `ops`.

        `size` is bytes, 0..2^64.

        Raises:
            ArgumentTypeError: `name` is not a str, `size` not an int, or `ops` not
                a MemoryRegionOps.
            TopologyError: `size` beyond 2^64, or memory of that size cannot be
                allocated.
        """
        mr = cls(name, size, ROM_DEVICE)
        mr._ops = _check_ops(name, ops)
        mr._set_memory(_allocate("rom_device", name, size))
        return mr

    @classmethod
    def ram_device(cls, name: str, size: int, buffer: Any = None) -> "MemoryRegion":
        """Device memory (QEMU's ram_device, `ramd` in `info mtree`: a VFIO BAR,
        say): `size` bytes of `buffer` or our own zeroes, accessed as a device
        is, one access of up to 8 bytes at a time in host byte order, never
        mapped directly (`map` bounces) nor dirty-logged.  An access running
        past the end (device accesses are not cut at the region's end) touches
        only the bytes inside; the rest read as zero and writes to them are
        dropped (QEMU would touch the host memory after the BAR).

        `size` is bytes, 0..2^64.

        Raises:
            ArgumentTypeError: `name` is not a str, `size` not an int, or `buffer`
                has no buffer protocol.
            InvalidArgumentError: `buffer` is read-only, not C-contiguous, or of
                another size.
            TopologyError: `size` beyond 2^64, or memory of that size cannot be
                allocated.
        """
        mr = cls(name, size, RAM_DEVICE)
        memory = (_wrap_buffer(name, buffer, size) if buffer is not None
                  else _allocate("ram_device", name, size))
        mr._set_memory(memory)
        order = sys.byteorder
        end = size

        # The callbacks hold the memory, not the region: no cycle.
        def read(offset: int, size: int) -> int:
            return int.from_bytes(memory[offset:offset + size], order)

        def write(offset: int, value: int, size: int) -> None:
            inside = max(0, min(size, end - offset))
            memory[offset:offset + inside] = value.to_bytes(size, order)[:inside]

        mr._ops = MemoryRegionOps(read, write, order, valid_min=1, valid_max=8, impl_min=1,
                                 impl_max=8, unaligned=True)
        return mr

    @classmethod
    def io(cls, name: str, size: int, ops: MemoryRegionOps) -> "MemoryRegion":
        """MMIO: every access goes to `ops`.

        `size` is bytes, 0..2^64.

        Raises:
            ArgumentTypeError: `name` is not a str, `size` not an int, or `ops` not
                a MemoryRegionOps.
            TopologyError: `size` beyond 2^64.
        """
        mr = cls(name, size, IO)
        mr._ops = _check_ops(name, ops)
        return mr

    alias = _ConstructorOrAttribute(classmethod(_new_alias),
                                    "an alias's target is fixed, as in QEMU; make a new alias "
                                    "(its window slides with set_alias_offset())", _push_alias)
    """`MemoryRegion.alias(name, target, offset, size)` makes a window of
    `size` bytes (0..2^64) onto `target`, starting `offset` bytes into it
    (0..2^64 - 1).  On a region: the alias's target, or None (read-only).

    Raises:
        ArgumentTypeError: (constructing) `target` is not a MemoryRegion, or
            `name`, `offset` or `size` of the wrong type.
        TopologyError: (constructing) `offset` or `size` beyond 2^64.
    """
    container = _ConstructorOrAttribute(classmethod(_new_container),
                                        "map it with add_subregion(), unmap it with "
                                        "del_subregion()")
    """`MemoryRegion.container(name, size)` makes a pure container of `size`
    bytes (0..2^64) that renders only its subregions.  On a region: the region
    it is mapped in, or None (read-only).

    Raises:
        ArgumentTypeError: (constructing) `name` or `size` of the wrong type.
        TopologyError: (constructing) `size` beyond 2^64.
    """

    @classmethod
    def iommu(cls, name: str, size: int, translate: Callable[..., Any],
              target: Optional["AddressSpace"] = None) -> "MemoryRegion":
        """An IOMMU region: accesses are translated by `translate` into `target`.

        `size` is bytes, 0..2^64.  `translate(addr, flag)` answers an
        IOMMUTLBEntry; it is called on the accessing thread.

        Raises:
            ArgumentTypeError: `translate` is not callable, `target` is not an
                AddressSpace or None, `name` not a str or `size` not an int.
            TopologyError: `size` beyond 2^64.
        """
        if not callable(translate):
            raise ArgumentTypeError(f"iommu {name!r}: translate must be callable")
        # An AddressSpace (checked by what it has: this module sits below
        # address_space.py, which it must not import).
        if target is not None and not callable(getattr(target, "_section", None)):
            raise ArgumentTypeError(f"iommu {name!r}: target must be an AddressSpace or None, "
                                    f"not {type(target).__name__}")
        mr = cls(name, size, IOMMU)
        mr._translate = translate
        mr._target = target
        return mr

    @staticmethod
    def by_id(region_id: int) -> Optional["MemoryRegion"]:
        """The live region with this id, or None.

        Raises nothing.
        """
        return cast("Optional[MemoryRegion]", _fastpath.region_by_id(region_id))

    # ------------------------------------------------------------- properties

    @property
    def terminates(self) -> bool:
        """Whether the region renders itself (QEMU's mr->terminates)."""
        return self.kind not in (CONTAINER, ALIAS)

    @property
    def ram_backed(self) -> bool:
        """RAM and ROM: accesses go straight to `buffer`."""
        return self.kind in (RAM, ROM)

    @property
    def subregions(self) -> List["MemoryRegion"]:
        """Subregions in QEMU's order: highest priority first, newest first among equals."""
        return self._subs[::-1]

    @property
    def system(self) -> Optional["MemorySystem"]:
        """The MemorySystem whose address spaces reach this region (edits then
        commit; it registered itself as the region's owner), or None for a
        tree not yet in one."""
        return cast("Optional[MemorySystem]", self._system)

    @property
    def buffer(self) -> memoryview:
        """The contents of a RAM, ROM, ROM-device or RAM-device region, writable.

        A new memoryview at each read, onto the region's own memory: the
        caller may `release()` it (or use it in a `with`) without touching
        the view the region and its C node keep, whose release would free
        the memory under them.

        Raises:
            ArgumentTypeError: the region has no memory of its own (an I/O region,
                a container, an alias, an IOMMU).
        """
        if self.kind not in (RAM, ROM, ROM_DEVICE, RAM_DEVICE):
            raise ArgumentTypeError(f"region {self.name!r} ({self.kind}) has no memory of its own")
        return cast(memoryview, self._buffer)[:]

    def get_ram_ptr(self) -> "hostmem.RamPtr":
        """QEMU's memory_region_get_ram_ptr: the host address of the memory of
        a RAM, ROM, ROM-device or RAM-device region (an alias: of its window
        of the target's memory), as a RamPtr that keeps the memory alive while
        held (`with mr.get_ram_ptr() as ptr: ptr.address`).  Memory pymem
        allocated starts on a host page; a caller's `buffer` is where it is.
        TypeError for a region without memory of its own.

        Raises:
            ArgumentTypeError: the region (or an alias's target) has no memory of
                its own.
        """
        mr, offset = self, 0
        while mr.kind == ALIAS and mr._alias is not None:
            offset += mr._alias_offset
            mr = mr._alias
        if mr.kind not in (RAM, ROM, ROM_DEVICE, RAM_DEVICE):
            raise ArgumentTypeError(f"region {self.name!r} ({self.kind}) has no memory of its own")
        return hostmem.RamPtr(self.name, mr._buffer, offset, self._size)

    def type_name(self) -> str:
        """The type `info mtree` prints: an alias shows its target's.

        Raises nothing.
        """
        mr = self
        while mr.alias is not None:
            mr = mr.alias
        if mr.kind == RAM_DEVICE:
            return "ramd"
        if mr.kind == ROM_DEVICE and mr.romd:
            return "romd"
        if mr.ram_backed:
            return "rom" if mr.readonly else "ram"
        return "i/o"

    def __repr__(self) -> str:
        return f"<MemoryRegion {self.name!r} {self.kind} size={self.size:#x}>"

    # ------------------------------------------------------------------ edits
    # ------------------------------------------------------------------ edits
    # add_subregion, del_subregion and the set_* methods: _edits.py.

    # ------------------------------------------------------------ dirty pages
    # get_dirty, set_dirty, get_and_clear_dirty, ...: _dirty.py.


_fastpath.set_region_api(
    tuple(_function_address(f) for f in (
        "pm_region_new", "pm_region_free", "pm_region_insert_sub", "pm_region_remove_sub",
        "pm_region_set_addr", "pm_region_set_alias", "pm_region_set_memory",
        "pm_region_info_get")),
    {kind: (kind, flags | lib.PM_REGION_ENABLED | (lib.PM_REGION_ROMD if kind == ROM_DEVICE
                                                   else 0), kind == ROM_DEVICE)
     for kind, flags in _KIND_FLAGS.items()},
    ALIAS, RAM, lambda address: ffi.cast("pm_region *", address), _refuse_new, TREE_LOCK,
    NO_REGION)


def set_ops(mr: MemoryRegion, ops: MemoryRegionOps) -> None:
    """Give a device region other ops (trace replay's stubs, and putting the
    real ones back): callers read `ops` at every access; the C device path
    caches each region's callbacks, so it is told to look again.

    Raises:
        ArgumentTypeError: `ops` is not a MemoryRegionOps.
    """
    mr._ops = _check_ops(mr.name, ops)
    _fastpath.ops_changed()


def _check_ops(name: str, ops: Any) -> MemoryRegionOps:
    if not isinstance(ops, MemoryRegionOps):
        raise ArgumentTypeError(f"region {name!r}: ops must be a MemoryRegionOps, "
                                f"not {type(ops).__name__}")
    return ops
