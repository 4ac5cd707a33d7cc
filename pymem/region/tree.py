"""MemoryRegion: the nodes of QEMU's region tree, and the edits that change it.

One class, whole: its constructors, its read-only fields (node.py) and the
edits that validate, apply and commit (add_subregion, set_address, ...).  It
is longer than the other modules because the edits share the class's
invariants (the slot, the C node and the Python list change together) and
read best next to each other.  A region in a MemorySystem tells its system
that something changed through the small interface the system registers
(owner.py's RegionOwner); this module never imports the system.

Thread safety:
    See `MemoryRegion`.  `set_ops` swaps a device's ops: call it with no
    access to that region in flight (trace replay does, while it holds the
    machine); accesses made after it returns use the new ops.
"""
from __future__ import annotations

import bisect
import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Callable, ContextManager, List, Optional, Type, cast

from .. import dirty, hostmem
from .._bindings import _fastpath, ffi, lib
from ..dispatch import NO_REGION, _function_address
from ..errors import (ArgumentTypeError, InvalidArgumentError, TopologyError, Uncopyable,
                      check)
from .kinds import (ADDRESS_SPACE_SIZE, ALIAS, CONTAINER, DIRTY_MEMORY_VGA, IO, IOMMU,
                    PRIORITY_MAX, PRIORITY_MIN, RAM, RAM_DEVICE, ROM, ROM_DEVICE)
from ..tree_lock import TREE_LOCK
from .loops import _check_loops, _is_ancestor, _loop_mates, _path_to
from .memory import _allocate, _wrap_buffer
from .node import (_KIND_FLAGS, _ConstructorOrAttribute, _Field, _push_alias,
                   _push_alias_offset, _push_flag)
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


class MemoryRegion(_fastpath.Region, Uncopyable):
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

    def _edit(self, other: Optional["MemoryRegion"] = None) -> ContextManager[Any]:
        """A transaction on the system this edit touches (ours, or `other`'s
        when we are outside every system).  The transaction object itself,
        not a generator around it: a generator context manager interrupted
        right after entering would keep the transaction open until collected."""
        system = self._editable_system(other)
        # Checked under the lock, then the transaction (which checks again).
        return nullcontext() if system is None else system.transaction()

    def _locked(self, other: Optional["MemoryRegion"] = None) -> ContextManager[Any]:
        """The lock of the system this edit touches, without a transaction:
        no commit may render a tentative edit that is being checked."""
        system = self._editable_system(other)
        return nullcontext() if system is None else system._lock

    def _editable_system(self, other: Optional["MemoryRegion"]) -> Any:
        """The system this edit touches (ours, or `other`'s when we are
        outside every system), checked editable under its lock; None when
        neither region is in a system."""
        system = self._system
        if system is None and other is not None:
            system = other._system
        if system is not None:
            with system._lock:
                system._check_editable(f"an edit of region {self.name!r}")
        return system

    def _update_pending(self, other: Optional["MemoryRegion"] = None) -> None:
        system = self._system
        if system is None and other is not None:
            system = other._system
        if system is not None:
            system._update_pending = True

    if TYPE_CHECKING:
        def add_subregion(self, offset: int, region: "MemoryRegion", priority: int = 0) -> None:
            """Map `region` at `offset` inside this one; higher `priority` wins overlaps,
            and among equals the region added last wins (QEMU's order).

            The C base's method (csrc/ext/regionobj.c, same docstring): the
            plain add (no MemorySystem, a subregion without links of its own)
            in one C call; everything else goes to `_add_subregion` below.

            `offset` is bytes from this region's start, 0 <= offset and
            offset + region.size <= 2^64; `priority` a signed 32-bit int.

            Raises:
                ArgumentTypeError: `region` is not a MemoryRegion, or `offset` or
                    `priority` not an int.
                TopologyError: `offset` or `priority` out of range, this region is an
                    alias, `region` already has a container, the two belong to
                    different MemorySystems, the edit would make a cycle of subregions,
                    or an alias loop that never ends (nothing changes).
                EditDuringCommitError: made from a memory listener being told of a
                    change (nothing changes).
                CapacityError: the commit that publishes the edit needs more sections
                    or radix nodes than a dispatch entry can address (every space stays
                    on its last view).
                Exception: an edit committed at once (outside a transaction) raises the
                    first exception a listener raised while told of it, once the whole
                    change is told and published.
            """

    def _add_subregion(self, offset: int, region: "MemoryRegion", priority: int = 0) -> None:
        """add_subregion, whole: the checks, the cycle and alias-loop checks,
        adoption into a system and the commit (the C base's add_subregion
        comes here for everything but the plain add)."""
        if not isinstance(region, MemoryRegion):
            raise ArgumentTypeError(f"add_subregion: region must be a MemoryRegion, "
                                    f"not {type(region).__name__}")
        where = f"adding {region.name!r} to {self.name!r}"
        _check_offset(where, offset)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise ArgumentTypeError(f"{where}: priority must be an int")
        if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            raise TopologyError(f"{where}: priority {priority} does not fit 32 bits")
        if offset + region.size > ADDRESS_SPACE_SIZE:
            raise TopologyError(f"{where}: offset {offset:#x} + size {region.size:#x} "
                                f"runs past 2^64")
        if self.kind == ALIAS:
            raise TopologyError(f"{where}: {self.name!r} is an alias and cannot hold "
                                f"subregions")
        if region.container is not None:
            raise TopologyError(f"{where}: {region.name!r} is already a subregion of "
                                f"{region.container.name!r}")
        if (self._system is not None and region._system is not None
                and region._system is not self._system):
            raise TopologyError(f"{where}: the regions belong to different MemorySystems")
        path = _path_to(region, self)
        loop: List[MemoryRegion] = []
        if path is not None:
            if _is_ancestor(region, self):
                chain = " -> ".join(repr(r.name) for r in path)
                raise TopologyError(f"{where} would make a cycle: {self.name!r} is reached "
                                    f"from {region.name!r} ({chain})")
            # An alias loop: try it, and keep it only if rendering it ends.
            with self._locked(region):
                saved = (region.addr, region.priority)
                _set(region, "addr", offset)
                region._priority = priority
                self._insert(region)
                try:
                    loop = _loop_mates(self)
                    _check_loops(loop, where, region)
                finally:
                    self._unlink(region)
                    _set(region, "addr", saved[0])
                    region._priority = saved[1]
        with self._edit(region):
            if self._system is not None:
                self._system._adopt(region)
            moved = region.addr != offset
            region._priority = priority
            _set(region, "addr", offset)
            self._insert(region)
            for mr in loop:
                mr._on_loop = True
            # QEMU re-renders only when both are enabled; a view root's own
            # address also counts, so a root that moved re-renders too.
            if region.enabled and (self.enabled or moved):
                self._update_pending(region)

    def _insert(self, region: "MemoryRegion") -> None:
        subs = self._subs
        # QEMU puts a region before every sibling of lower or equal priority
        # (so the newest wins ties): in our reversed list, after all of them.
        if not subs or subs[-1].priority <= region.priority:
            index = len(subs)
        else:
            index = bisect.bisect_right(subs, region.priority, key=lambda r: r.priority)
        # The C child array, the Python list and the container link change in
        # one C call, each undone if a later one fails: a signal (Ctrl-C)
        # sees the tree before or after, never C holding a node Python does
        # not keep alive.
        with TREE_LOCK:
            failed = _fastpath.atomic(
                ("!", (subs.insert, index, region), (subs.pop, index)),
                ("!", (lib.pm_region_insert_sub, self._node, index, region._node),
                 (lib.pm_region_remove_sub, self._node, index)),
                ("=", region, "_container", self))
        if failed is not None:
            check(failed[1], f"adding {region.name!r} to {self.name!r}")

    def _unlink(self, region: "MemoryRegion") -> None:
        # As in _insert: one C call.  The list lets go of the region last
        # (atomic releases it after every step), so C never points at a
        # freed node.
        with TREE_LOCK:
            subs = self._subs
            index = subs.index(region)
            failed = _fastpath.atomic(
                ("!", (lib.pm_region_remove_sub, self._node, index),
                 (lib.pm_region_insert_sub, self._node, index, region._node)),
                (subs.pop, index),
                ("=", region, "_container", None))
        if failed is not None:
            check(failed[1], f"removing {region.name!r} from {self.name!r}")

    def del_subregion(self, region: "MemoryRegion") -> None:
        """Unmap `region`, which must be a direct subregion of this one.

        Raises:
            ArgumentTypeError: `region` is not a MemoryRegion.
            TopologyError: `region` is not a direct subregion of this one.
            EditDuringCommitError: made from a memory listener being told of a
                change (nothing changes).
            CapacityError: the commit that publishes the edit needs more sections
                or radix nodes than a dispatch entry can address (every space stays
                on its last view).
            Exception: an edit committed at once (outside a transaction) raises the
                first exception a listener raised while told of it, once the whole
                change is told and published.
        """
        if not isinstance(region, MemoryRegion):
            raise ArgumentTypeError(f"del_subregion: region must be a MemoryRegion, "
                                    f"not {type(region).__name__}")
        if region.container is not self:
            owner = (f"a subregion of {region.container.name!r}"
                     if region.container is not None else "not mapped anywhere")
            raise TopologyError(f"removing {region.name!r} from {self.name!r}: it is {owner}")
        with self._edit(region):
            self._unlink(region)
            if self.enabled and region.enabled:
                self._update_pending(region)

    def set_enabled(self, enabled: bool) -> None:
        """Show or hide the region and its whole subtree.

        Raises:
            TopologyError: enabling would make an alias loop that never ends.
            EditDuringCommitError: made from a memory listener being told of a
                change (nothing changes).
            CapacityError: the commit that publishes the edit needs more sections
                or radix nodes than a dispatch entry can address (every space stays
                on its last view).
            Exception: an edit committed at once (outside a transaction) raises the
                first exception a listener raised while told of it, once the whole
                change is told and published.
        """
        enabled = bool(enabled)
        if enabled == self.enabled:
            return
        if enabled and self._on_loop:
            self._try(f"enabling {self.name!r}", "enabled", True)
        with self._edit():
            _set(self, "enabled", enabled)
            self._update_pending()

    def set_address(self, addr: int) -> None:
        """Move the region within its container (QEMU re-adds it, keeping its priority).

        `addr` is bytes from the container's start; `addr + size <= 2^64`.

        Raises:
            ArgumentTypeError: `addr` is not an int.
            TopologyError: `addr` out of range or the region would run past 2^64,
                or the move would make an alias loop that never ends.
            EditDuringCommitError: made from a memory listener being told of a
                change (nothing changes).
            CapacityError: the commit that publishes the edit needs more sections
                or radix nodes than a dispatch entry can address (every space stays
                on its last view).
            Exception: an edit committed at once (outside a transaction) raises the
                first exception a listener raised while told of it, once the whole
                change is told and published.
        """
        where = f"moving {self.name!r}"
        _check_offset(where, addr)
        if addr + self.size > ADDRESS_SPACE_SIZE:
            raise TopologyError(f"{where} to {addr:#x}: size {self.size:#x} runs past 2^64")
        if addr == self.addr:
            return
        if self._on_loop:
            self._try(f"{where} to {addr:#x}", "addr", addr)
        container = self.container
        with self._edit():
            _set(self, "addr", addr)
            if container is not None:
                container._unlink(self)
                container._insert(self)
            # QEMU re-renders only if the container is enabled too, leaving a
            # moved view root stale until the next commit; we re-render now.
            # What the render makes of a root's own address is QEMU's: it
            # counts unless the flat-view-root shortcut skips the root.
            if self.enabled:
                self._update_pending()

    def set_alias_offset(self, offset: int) -> None:
        """Slide an alias's window over its target.

        `offset` is bytes into the target, 0..2^64 - 1.

        Raises:
            ArgumentTypeError: `offset` is not an int.
            TopologyError: the region is not an alias, `offset` is out of range,
                or the slide would make an alias loop that never ends.
            EditDuringCommitError: made from a memory listener being told of a
                change (nothing changes).
            CapacityError: the commit that publishes the edit needs more sections
                or radix nodes than a dispatch entry can address (every space stays
                on its last view).
            Exception: an edit committed at once (outside a transaction) raises the
                first exception a listener raised while told of it, once the whole
                change is told and published.
        """
        if self.kind != ALIAS:
            raise TopologyError(f"set_alias_offset: {self.name!r} is not an alias")
        _check_offset(f"alias {self.name!r}", offset)
        if offset == self.alias_offset:
            return
        if self._on_loop:
            self._try(f"sliding alias {self.name!r} to offset {offset:#x}", "alias_offset",
                      offset)
        with self._edit():
            _set(self, "alias_offset", offset)
            if self.enabled:
                self._update_pending()

    def set_size(self, size: int) -> None:
        """Resize the region (its window; RAM contents are not reallocated).

        `size` is bytes, 0..2^64.

        Raises:
            ArgumentTypeError: `size` is not an int.
            TopologyError: `size` beyond 2^64, past 2^64 at the region's address,
                larger than the region's memory, or making an alias loop that never
                ends.
            EditDuringCommitError: made from a memory listener being told of a
                change (nothing changes).
            CapacityError: the commit that publishes the edit needs more sections
                or radix nodes than a dispatch entry can address (every space stays
                on its last view).
            Exception: an edit committed at once (outside a transaction) raises the
                first exception a listener raised while told of it, once the whole
                change is told and published.
        """
        _check_size(f"region {self.name!r}", size)
        if self.container is not None and self.addr + size > ADDRESS_SPACE_SIZE:
            raise TopologyError(f"resizing {self.name!r} at {self.addr:#x} to {size:#x} "
                                f"runs past 2^64")
        if self._buffer is not None and size > len(self._buffer):
            raise TopologyError(f"resizing {self.name!r} to {size:#x}: its memory holds "
                                f"only {len(self._buffer):#x} bytes")
        if size == self.size:
            return
        if self._on_loop:
            self._try(f"resizing {self.name!r} to {size:#x}", "size", size)
        with self._edit():
            _set(self, "size", size)
            self._update_pending()

    def _try(self, where: str, field: str, value: Any) -> None:
        """Refuse an edit of `field` that would make a loop through this
        region endless: set it, check every loop the region lies on, put it back."""
        with self._locked():
            saved = getattr(self, field)
            _set(self, field, value)
            try:
                _check_loops(_loop_mates(self), where, self)
            finally:
                _set(self, field, saved)

    def _switch(self, field: str, value: Any) -> None:
        """Set a field rendering reads (an attribute, not the topology): a
        commit if it changed, re-rendering only when the region is shown."""
        if value == getattr(self, field):
            return
        with self._edit():
            _set(self, field, value)
            if self.enabled:
                self._update_pending()

    def set_readonly(self, readonly: bool) -> None:
        """Make writes through this region (and, for an alias or container, below it) drop.

        Raises:
            EditDuringCommitError: made from a memory listener being told of a
                change (nothing changes).
            CapacityError: the commit that publishes the edit needs more sections
                or radix nodes than a dispatch entry can address (every space stays
                on its last view).
            Exception: an edit committed at once (outside a transaction) raises the
                first exception a listener raised while told of it, once the whole
                change is told and published.
        """
        self._switch("readonly", bool(readonly))

    def set_nonvolatile(self, nonvolatile: bool) -> None:
        """Mark RAM as non-volatile (QEMU's memory_region_set_nonvolatile,
        an NVDIMM): `info mtree` shows it, flat ranges carry it to listeners.
        Commits like any edit; no effect on accesses.

        Raises:
            EditDuringCommitError: made from a memory listener being told of a
                change (nothing changes).
            CapacityError: the commit that publishes the edit needs more sections
                or radix nodes than a dispatch entry can address (every space stays
                on its last view).
            Exception: an edit committed at once (outside a transaction) raises the
                first exception a listener raised while told of it, once the whole
                change is told and published.
        """
        self._switch("nonvolatile", bool(nonvolatile))

    def set_romd(self, romd: bool) -> None:
        """Switch a ROM device between romd mode (direct reads) and MMIO mode.

        Raises:
            TopologyError: the region is not a ROM device.
            EditDuringCommitError: made from a memory listener being told of a
                change (nothing changes).
            CapacityError: the commit that publishes the edit needs more sections
                or radix nodes than a dispatch entry can address (every space stays
                on its last view).
            Exception: an edit committed at once (outside a transaction) raises the
                first exception a listener raised while told of it, once the whole
                change is told and published.
        """
        if self.kind != ROM_DEVICE:
            raise TopologyError(f"set_romd: {self.name!r} is not a ROM device")
        self._switch("romd", bool(romd))

    def set_log(self, log: bool, client: int = DIRTY_MEMORY_VGA) -> None:
        """Start or stop dirty logging for `client` (listeners see log_start/log_stop).

        `client` is one of DIRTY_MEMORY_VGA (1), _CODE (2), _MIGRATION (4),
        _SNAPSHOT (8).

        Raises:
            InvalidArgumentError: `client` is not one of those.
            EditDuringCommitError: made from a memory listener being told of a
                change (nothing changes).
            CapacityError: the commit that publishes the edit needs more sections
                or radix nodes than a dispatch entry can address (every space stays
                on its last view).
            Exception: an edit committed at once (outside a transaction) raises the
                first exception a listener raised while told of it, once the whole
                change is told and published.
        """
        if client not in dirty.CLIENTS:
            raise InvalidArgumentError(f"set_log: unknown dirty-memory client {client}")
        self._switch("dirty_log", (self.dirty_log & ~client) | (client if log else 0))

    # Dirty memory (RAM only), QEMU's memory_region_*_dirty; see pymem/dirty.py.

    def get_dirty(self, addr: int, size: int, client: int) -> bool:
        """Whether a page of [addr, addr + size) was written since `client` last cleared it.

        Raises:
            InvalidArgumentError: `client` is unknown, or the range is outside the
                region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        return dirty.get_dirty(self, addr, size, client)

    def set_dirty(self, addr: int, size: int) -> None:
        """Mark [addr, addr + size) written, for every client logging this region.

        Raises:
            InvalidArgumentError: the range is outside the region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        dirty.set_dirty(self, addr, size)

    def reset_dirty(self, addr: int, size: int, client: int) -> None:
        """Clear `client`'s dirty bits of [addr, addr + size).

        Raises:
            InvalidArgumentError: `client` is unknown, or the range is outside the
                region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        dirty.reset_dirty(self, addr, size, client)

    def get_and_clear_dirty(self, addr: int, size: int, client: int) -> "dirty.DirtyBitmap":
        """The pages of [addr, addr + size) dirty for `client`, cleared at once,
        as a DirtyBitmap (one bit a page; `.pages_dirty()` lists their offsets).

        `addr` and `size` are bytes (region offsets); pages are the system's target
        pages (4 KiB for a region in no system).

        Raises:
            InvalidArgumentError: `client` is unknown, or the range is outside the
                region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        return dirty.get_and_clear_dirty(self, addr, size, client)

    def snapshot_and_clear_dirty(self, addr: int, size: int,
                                 client: int) -> "dirty.DirtyBitmap":
        """QEMU's memory_region_snapshot_and_clear_dirty: as get_and_clear_dirty.

        Raises:
            InvalidArgumentError: `client` is unknown, or the range is outside the
                region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        return dirty.snapshot_and_clear_dirty(self, addr, size, client)

    def mark_dirty(self, addr: int, size: int) -> None:
        """Report a write to [addr, addr + size) (bytes, region offsets) made
        outside pymem (a CPU engine's store, a DMA engine): marked for every
        client logging this region, as pymem's own writes are.

        Raises:
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
            InvalidArgumentError: the range is outside the region.
        """
        dirty.mark_dirty(self, addr, size)


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

_FIELDS = {name: field for name, field in vars(MemoryRegion).items()
           if isinstance(field, (_Field, _ConstructorOrAttribute))}


def _set(mr: MemoryRegion, field: str, value: Any) -> None:
    """Set a read-only field of `mr`: only for the edit methods, which have
    checked the value and commit the change."""
    _FIELDS[field].write(mr, value)


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
