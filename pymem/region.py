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
"""
from __future__ import annotations

import bisect
import itertools
import operator
import os
import sys
import threading
import weakref
from contextlib import nullcontext
from typing import (TYPE_CHECKING, Any, Callable, ContextManager, Generic, Iterator, List,
                    Literal, NoReturn, Optional, Protocol, Tuple, Type, TypeVar, Union,
                    overload)

from . import _fastpath, dirty, hostmem
from ._native import ffi, lib
from .dispatch import NO_REGION
from .errors import (ArgumentTypeError, InvalidArgumentError, ReadOnlyAttributeError,
                     TopologyError, Uncopyable, check)
from .memtx import MemTxAttrs

if TYPE_CHECKING:
    from .address_space import AddressSpace, MemorySystem

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

TREE_LOCK = threading.RLock()
"""Held for every change to a region's C node and for every render.  C
rendering runs without the GIL (cffi releases it), so without this lock a
tree edited in another thread, above all one outside any MemorySystem, could
be changed or freed under the walk.  Taken after a system's own lock, never
before it."""
# A fork while another thread renders would leave the child's lock held for
# ever: fork only between renders.
os.register_at_fork(before=TREE_LOCK.acquire, after_in_parent=TREE_LOCK.release,
                    after_in_child=TREE_LOCK.release)

_ids = itertools.count(1)
_by_id: "weakref.WeakValueDictionary[int, MemoryRegion]" = weakref.WeakValueDictionary()

ByteOrder = Literal["little", "big"]
"""A device's byte order, spelled as int.from_bytes takes it."""

# MemoryRegionOps callbacks come in QEMU's two shapes: read/write, and
# read_with_attrs/write_with_attrs (`with_attrs` says which a device has).
# Their results are MemTxResult bits: a MemTxResult, or the plain int a
# trace replay answers.
MMIORead = Callable[[int, int], int]
MMIOWrite = Callable[[int, int, int], None]
MMIOReadWithAttrs = Callable[[int, int, MemTxAttrs], Tuple[int, int]]
MMIOWriteWithAttrs = Callable[[int, int, int, MemTxAttrs], Optional[int]]


class MemoryRegionOps:
    """How an MMIO region is accessed: QEMU's MemoryRegionOps.

    `read(offset, size) -> int` and `write(offset, value, size)`; `valid_*`
    are the access sizes the device accepts, `impl_*` the sizes its callbacks
    handle (wider accesses are split, narrower ones widened).  With
    `with_attrs` the callbacks are QEMU's *_with_attrs: they also get the
    access's MemTxAttrs, `read` returns (value, MemTxResult) and `write` a
    MemTxResult (None for OK), so a device can answer a bus error.

    Ops are fixed once made, as QEMU's are const: give a region new ops
    instead of changing these.
    """

    __slots__ = ("read", "write", "endianness", "valid_min", "valid_max",
                 "impl_min", "impl_max", "unaligned", "with_attrs", "direct")

    direct: Optional[Tuple[Any, Any, int, bool, bool]]
    """For the C fast path (csrc/ext/fastpath.c): (read, write, the access
    sizes one callback answers as a bit mask, unaligned, big-endian), or
    None for callbacks with attributes."""

    def __init__(self, read: Union[MMIORead, MMIOReadWithAttrs],
                 write: Union[MMIOWrite, MMIOWriteWithAttrs], endianness: ByteOrder = "little",
                 valid_min: int = 1, valid_max: int = 4, impl_min: int = 1,
                 impl_max: int = 4, unaligned: bool = False,
                 with_attrs: bool = False) -> None:
        if not callable(read) or not callable(write):
            raise ArgumentTypeError("MemoryRegionOps needs callable read and write")
        if endianness not in ("little", "big"):
            raise InvalidArgumentError(f"endianness must be 'little' or 'big', not {endianness!r}")
        for label, lo, hi in (("valid", valid_min, valid_max), ("impl", impl_min, impl_max)):
            if type(lo) is not int or type(hi) is not int:
                raise ArgumentTypeError(f"MemoryRegionOps: {label} access sizes must be ints, "
                                        f"not {lo!r}..{hi!r}")
            if lo not in (1, 2, 4, 8) or hi not in (1, 2, 4, 8) or lo > hi:
                raise InvalidArgumentError(f"{label} access sizes must be powers of two in 1..8 "
                                           f"with min <= max, not {lo}..{hi}")
        self.read = read
        self.write = write
        self.endianness = endianness
        self.valid_min = valid_min
        self.valid_max = valid_max
        self.impl_min = impl_min
        self.impl_max = impl_max
        self.unaligned = unaligned
        self.with_attrs = with_attrs
        # The sizes mmio.dispatch_read/write answer with one plain callback.
        sizes = sum(s for s in (1, 2, 4, 8)
                    if valid_min <= s <= valid_max and impl_min <= s <= impl_max)
        self.direct = (None if with_attrs else
                       (read, write, sizes, bool(unaligned), endianness == "big"))

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "direct"):
            raise AttributeError(f"MemoryRegionOps are fixed once made (QEMU's are const): "
                                 f"cannot set {name!r}; give the region new ops")
        object.__setattr__(self, name, value)


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


_Constructor = TypeVar("_Constructor")
_Constructor_co = TypeVar("_Constructor_co", covariant=True)


class _Bindable(Protocol[_Constructor_co]):
    """A classmethod, as far as the descriptor below uses it: binding it to
    the class gives the constructor's signature without `cls`."""

    def __get__(self, obj: Any, owner: Any, /) -> _Constructor_co: ...


def _refuse_write(mr: Any, name: str, hint: str) -> NoReturn:
    raise ReadOnlyAttributeError(f"{mr!r}: {name!r} is read-only; {hint}")


class _ConstructorOrAttribute(Generic[_Constructor]):
    """`MemoryRegion.container(...)` builds a container while `mr.container` is
    its parent, and likewise for `alias`: QEMU's names for both, so the class
    attribute is the constructor and the instance attribute is the link.
    The link is read-only (the edit methods set it, through `write`, which
    calls `push`, if given, to tell C first)."""

    def __init__(self, constructor: _Bindable[_Constructor], hint: str,
                 push: Optional[Callable[["MemoryRegion", Any], Tuple[Any, ...]]] = None
                 ) -> None:
        self.constructor = constructor
        self.hint = hint
        self.push = push
        self.__doc__ = constructor.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.slot_name = "_" + name
        self.slot = getattr(owner, self.slot_name)

    @overload
    def __get__(self, obj: None, owner: type) -> _Constructor: ...

    @overload
    def __get__(self, obj: "MemoryRegion", owner: type) -> Optional["MemoryRegion"]: ...

    def __get__(self, obj: Optional["MemoryRegion"], owner: type
                ) -> Union[_Constructor, Optional["MemoryRegion"]]:
        if obj is None:
            return self.constructor.__get__(owner, owner)
        return self.slot.__get__(obj, owner)

    def __set__(self, obj: "MemoryRegion", value: Optional["MemoryRegion"]) -> NoReturn:
        _refuse_write(obj, self.name, self.hint)

    def __delete__(self, obj: "MemoryRegion") -> NoReturn:
        _refuse_write(obj, self.name, self.hint)

    def write(self, obj: "MemoryRegion", value: Optional["MemoryRegion"]) -> None:
        """Set the link (the edit methods' way in)."""
        if self.push is None:
            self.slot.__set__(obj, value)
            return
        # One step for renderers and for signals: the slot and the C node
        # change in one C call (the old target stays alive until both did).
        with TREE_LOCK:
            _fastpath.atomic(("=", obj, self.slot_name, value), self.push(obj, value))


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
    _set(mr, "alias", target)
    _set(mr, "alias_offset", offset)
    return mr


def _new_container(cls: Type["MemoryRegion"], name: str, size: int) -> "MemoryRegion":
    """A pure container: renders only its subregions."""
    return cls(name, size, CONTAINER)


_FieldType = TypeVar("_FieldType")

if TYPE_CHECKING:
    class _Field(Generic[_FieldType]):
        """What mypy sees of the runtime class below: read, never assigned."""

        def __init__(self, hint: str,
                     push: Optional[Callable[["MemoryRegion", Any], Tuple[Any, ...]]] = None
                     ) -> None: ...

        @overload
        def __get__(self, obj: None, owner: type) -> "_Field[_FieldType]": ...

        @overload
        def __get__(self, obj: "MemoryRegion", owner: type) -> _FieldType: ...

        def __get__(self, obj: Optional["MemoryRegion"], owner: type
                    ) -> Union["_Field[_FieldType]", _FieldType]: ...

        def write(self, obj: "MemoryRegion", value: _FieldType) -> None: ...
else:
    class _Field(property):
        """A public read-only field kept in the slot `_<name>`.  Reading is a
        property with a C getter (as cheap as Python makes it); assigning
        raises ReadOnlyAttributeError pointing at the edit method (`hint`)
        that checks, adopts and commits.  `write` is the edit methods' way
        in: with `push` (a field rendering reads: it gives the C call), the
        slot and C's node change in one C call (`_fastpath.atomic`), so
        neither a renderer nor a signal ever sees them disagree."""

        __class_getitem__ = classmethod(lambda cls, item: cls)

        def __init__(self, hint, push=None):
            super().__init__(None, self._refuse, self._refuse)
            self.hint = hint
            self.push = push

        def __set_name__(self, owner, name):
            self.name = name
            self.slot_name = "_" + name
            self.slot = getattr(owner, self.slot_name)
            # property's own getter: the slot's C getter, no Python frame.
            self.getter_slot = operator.attrgetter("_" + name)
            property.__init__(self, self.getter_slot, self._refuse, self._refuse,
                              f"Read-only: {self.hint}.")

        def _refuse(self, obj, value=None):
            _refuse_write(obj, self.name, self.hint)

        def write(self, obj, value):
            if self.push is None:
                self.slot.__set__(obj, value)
                return
            with TREE_LOCK:
                _fastpath.atomic(("=", obj, self.slot_name, value), self.push(obj, value))


# A push gives the C call (a `_fastpath.atomic` step) that writes a value
# to the region's node.
def _push_flag(flag: int) -> Callable[["MemoryRegion", Any], Tuple[Any, ...]]:
    return lambda mr, on: (lib.pm_region_set_flag, mr._node, flag, bool(on))


def _push_alias(mr: "MemoryRegion", target: Optional["MemoryRegion"]) -> Tuple[Any, ...]:
    return (lib.pm_region_set_alias, mr._node,
            target._node if target is not None else ffi.NULL, mr._alias_offset)


def _push_alias_offset(mr: "MemoryRegion", offset: int) -> Tuple[Any, ...]:
    target = mr._alias
    return (lib.pm_region_set_alias, mr._node,
            target._node if target is not None else ffi.NULL, offset)


_KIND_FLAGS = {
    RAM: lib.PM_REGION_TERMINATES | lib.PM_REGION_MEMORY,
    ROM: lib.PM_REGION_TERMINATES | lib.PM_REGION_MEMORY,
    ROM_DEVICE: lib.PM_REGION_TERMINATES | lib.PM_REGION_ROM_DEVICE,
    RAM_DEVICE: lib.PM_REGION_TERMINATES,
    IO: lib.PM_REGION_TERMINATES,
    IOMMU: lib.PM_REGION_TERMINATES | lib.PM_REGION_IOMMU,
    ALIAS: 0,
    CONTAINER: 0,
}


class MemoryRegion(Uncopyable):
    """One node of a region tree; build it with the class-method constructors."""

    __slots__ = ("_id", "_name", "_size", "_kind", "_ops", "_readonly", "_romd", "_enabled",
                 "_priority", "_addr", "_container", "_alias", "_alias_offset", "_subs",
                 "_nonvolatile", "_dirty_log", "_translate", "_target", "_buffer",
                 "_system", "_on_loop", "_node", "__weakref__")

    # Every public field is read-only: assigning one would skip the checks,
    # the adoption into a system and the commit that its edit method makes
    # (and a field C renders from would reach C unchecked).
    id = _Field[int]("a region's id is fixed (C and MemoryRegion.by_id know it by it)")
    name = _Field[str]("a region's name is fixed; make a new region")
    kind = _Field[str]("a region's kind is fixed; make a new region")
    ops = _Field[Optional[MemoryRegionOps]]("a region's ops are fixed, as QEMU's; make a new "
                                            "region")
    priority = _Field[int]("set it with add_subregion(offset, region, priority); to change it, "
                           "del_subregion() then add_subregion() again")
    translate = _Field[Optional[Callable[..., Any]]]("an IOMMU's translate is given to "
                                                     "MemoryRegion.iommu()")
    target = _Field[Optional["AddressSpace"]]("an IOMMU's target is given to "
                                             "MemoryRegion.iommu(); an IOMMUTLBEntry's "
                                             "target_as may name another space")
    # What rendering reads is written through to the region's C node.
    addr = _Field[int]("use set_address()",
                       lambda mr, v: (lib.pm_region_set_addr, mr._node, v))
    size = _Field[int]("use set_size()", lambda mr, v: (
        lib.pm_region_set_size, mr._node, v & (ADDRESS_SPACE_SIZE - 1),
        v == ADDRESS_SPACE_SIZE))
    enabled = _Field[bool]("use set_enabled()", _push_flag(lib.PM_REGION_ENABLED))
    readonly = _Field[bool]("use set_readonly()", _push_flag(lib.PM_REGION_READONLY))
    nonvolatile = _Field[bool]("use set_nonvolatile()", _push_flag(lib.PM_REGION_NONVOLATILE))
    romd = _Field[bool]("use set_romd()", _push_flag(lib.PM_REGION_ROMD))
    alias_offset = _Field[int]("use set_alias_offset()", _push_alias_offset)
    dirty_log = _Field[int]("use set_log()",
                            lambda mr, v: (lib.pm_region_set_dirty_log, mr._node, v))

    # The slots behind `container` and `alias` (see _ConstructorOrAttribute);
    # rendering reads `_alias` directly, without the descriptor.
    _container: Optional[MemoryRegion]
    _alias: Optional[MemoryRegion]
    _node: Any   # the pm_region * this object owns

    def __init__(self, name: str, size: int, kind: str) -> None:
        if not isinstance(name, str):
            raise ArgumentTypeError(f"region name must be a str, not {type(name).__name__}")
        if kind not in _KIND_FLAGS:
            raise InvalidArgumentError(f"region {name!r}: unknown kind {kind!r}")
        size = _check_size(f"region {name!r}", size)
        self._id = next(_ids)
        if self._id >= NO_REGION:
            raise TopologyError("more than 2^32 - 2 regions created")
        node = ffi.new("pm_region **")
        # The C node starts as the slots below do (enabled, at 0, romd for a
        # ROM device).  CPython: id() is the object's address, which C hands
        # back as `user`.
        romd = kind == ROM_DEVICE
        flags = (_KIND_FLAGS[kind] | lib.PM_REGION_ENABLED
                 | (lib.PM_REGION_ROMD if romd else 0))
        # Owned in the call that makes it: no interrupt can leak it.
        status, self._node = _fastpath.call_owned(
            ffi.gc, lib.pm_region_new,
            (self._id, flags, size & (ADDRESS_SPACE_SIZE - 1), size == ADDRESS_SPACE_SIZE,
             ffi.cast("void *", id(self)), node), ((node, lib.pm_region_free),))
        check(status, f"creating region {name!r}")
        self._name = name
        self._size = size
        self._kind = kind
        self._ops: Optional[MemoryRegionOps] = None
        self._readonly = False
        self._romd = romd
        self._enabled = True
        self._priority = 0
        self._addr = 0
        self._container = None
        self._alias = None
        self._alias_offset = 0
        # Kept in reverse of QEMU's subregion order (lowest priority first,
        # oldest first among equals) so the common add is an append.
        self._subs: List[MemoryRegion] = []
        self._nonvolatile = False
        self._dirty_log = 0
        self._translate: Optional[Callable[..., Any]] = None
        self._target: Optional[AddressSpace] = None
        self._buffer: Any = None
        self._system: Optional[MemorySystem] = None
        # Set once the region is found on a cycle of subregion and alias
        # links (kept after the cycle is broken: then it only costs a check).
        self._on_loop = False
        _by_id[self._id] = self

    # ------------------------------------------------------------ constructors

    @classmethod
    def ram(cls, name: str, size: int, buffer: Any = None) -> "MemoryRegion":
        """RAM of `size` bytes: `buffer` (any writable buffer of that size) or our own zeroes."""
        mr = cls(name, size, RAM)
        mr._set_buffer(_wrap_buffer(name, buffer, size) if buffer is not None
                       else _allocate("ram", name, size))
        return mr

    @classmethod
    def rom(cls, name: str, size: Optional[int] = None, data: Optional[bytes] = None) -> "MemoryRegion":
        """Read-only memory holding `data` (zero-padded to `size`)."""
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
        mr._set_buffer(_allocate("rom", name, size))
        if data is not None:
            if len(data) > size:
                raise InvalidArgumentError(f"rom {name!r}: {len(data)} bytes of data do not fit "
                                           f"its size {size:#x}")
            mr.buffer[:len(data)] = data
        return mr

    @classmethod
    def rom_device(cls, name: str, size: int, ops: MemoryRegionOps) -> "MemoryRegion":
        """A ROM device: reads straight from memory in romd mode, writes to `ops`."""
        mr = cls(name, size, ROM_DEVICE)
        mr._ops = _check_ops(name, ops)
        mr._set_buffer(_allocate("rom_device", name, size))
        return mr

    @classmethod
    def ram_device(cls, name: str, size: int, buffer: Any = None) -> "MemoryRegion":
        """Device memory (QEMU's ram_device, `ramd` in `info mtree`: a VFIO BAR,
        say): `size` bytes of `buffer` or our own zeroes, accessed as a device
        is, one access of up to 8 bytes at a time in host byte order, never
        mapped directly (`map` bounces) nor dirty-logged.  An access running
        past the end (device accesses are not cut at the region's end) touches
        only the bytes inside; the rest read as zero and writes to them are
        dropped (QEMU would touch the host memory after the BAR)."""
        mr = cls(name, size, RAM_DEVICE)
        memory = (_wrap_buffer(name, buffer, size) if buffer is not None
                  else _allocate("ram_device", name, size))
        mr._set_buffer(memory)
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
        """MMIO: every access goes to `ops`."""
        mr = cls(name, size, IO)
        mr._ops = _check_ops(name, ops)
        return mr

    alias = _ConstructorOrAttribute(classmethod(_new_alias),
                                    "an alias's target is fixed, as in QEMU; make a new alias "
                                    "(its window slides with set_alias_offset())", _push_alias)
    container = _ConstructorOrAttribute(classmethod(_new_container),
                                        "map it with add_subregion(), unmap it with "
                                        "del_subregion()")

    @classmethod
    def iommu(cls, name: str, size: int, translate: Callable[..., Any],
              target: Optional["AddressSpace"] = None) -> "MemoryRegion":
        """An IOMMU region: accesses are translated by `translate` into `target`."""
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

    def _set_buffer(self, buffer: memoryview) -> None:
        self._buffer = buffer
        # A bare pointer, not the from_buffer cdata: that would hold an export
        # of the memoryview, which the garbage collector cannot clear when a
        # dead tree is collected.  The memoryview keeps the memory in place.
        host = ffi.from_buffer("uint8_t[]", buffer, require_writable=True)
        lib.pm_region_set_memory(self._node, ffi.cast("uint8_t *", host))

    @staticmethod
    def by_id(region_id: int) -> Optional["MemoryRegion"]:
        """The live region with this id, or None."""
        return _by_id.get(region_id)

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
        return self._system

    @property
    def buffer(self) -> memoryview:
        """The contents of a RAM, ROM, ROM-device or RAM-device region, writable."""
        if self.kind not in (RAM, ROM, ROM_DEVICE, RAM_DEVICE):
            raise ArgumentTypeError(f"region {self.name!r} ({self.kind}) has no memory of its own")
        return self._buffer

    def get_ram_ptr(self) -> "hostmem.RamPtr":
        """QEMU's memory_region_get_ram_ptr: the host address of the memory of
        a RAM, ROM, ROM-device or RAM-device region (an alias: of its window
        of the target's memory), as a RamPtr that keeps the memory alive while
        held (`with mr.get_ram_ptr() as ptr: ptr.address`).  Memory pymem
        allocated starts on a host page; a caller's `buffer` is where it is.
        TypeError for a region without memory of its own."""
        mr, offset = self, 0
        while mr.kind == ALIAS and mr._alias is not None:
            offset += mr._alias_offset
            mr = mr._alias
        if mr.kind not in (RAM, ROM, ROM_DEVICE, RAM_DEVICE):
            raise ArgumentTypeError(f"region {self.name!r} ({self.kind}) has no memory of its own")
        return hostmem.RamPtr(self.name, mr._buffer, offset, self._size)

    def type_name(self) -> str:
        """The type `info mtree` prints: an alias shows its target's."""
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
        system = self._system
        if system is None and other is not None:
            system = other._system
        if system is None:
            return nullcontext()
        # Checked under the lock, then the transaction (which checks again).
        with system._lock:
            system._check_editable(f"an edit of region {self.name!r}")
        return system.transaction()

    def _locked(self, other: Optional["MemoryRegion"] = None) -> ContextManager[Any]:
        """The lock of the system this edit touches, without a transaction:
        no commit may render a tentative edit that is being checked."""
        system = self._system
        if system is None and other is not None:
            system = other._system
        if system is None:
            return nullcontext()
        with system._lock:
            system._check_editable(f"an edit of region {self.name!r}")
        return system._lock

    def _update_pending(self, other: Optional["MemoryRegion"] = None) -> None:
        system = self._system
        if system is None and other is not None:
            system = other._system
        if system is not None:
            system._update_pending = True

    def add_subregion(self, offset: int, region: "MemoryRegion", priority: int = 0) -> None:
        """Map `region` at `offset` inside this one; higher `priority` wins overlaps,
        and among equals the region added last wins (QEMU's order)."""
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
        """Unmap `region`, which must be a direct subregion of this one."""
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
        """Show or hide the region and its whole subtree."""
        enabled = bool(enabled)
        if enabled == self.enabled:
            return
        if enabled and self._on_loop:
            self._try(f"enabling {self.name!r}", "enabled", True)
        with self._edit():
            _set(self, "enabled", enabled)
            self._update_pending()

    def set_address(self, addr: int) -> None:
        """Move the region within its container (QEMU re-adds it, keeping its priority)."""
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
        """Slide an alias's window over its target."""
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
        """Resize the region (its window; RAM contents are not reallocated)."""
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
        """Make writes through this region (and, for an alias or container, below it) drop."""
        self._switch("readonly", bool(readonly))

    def set_nonvolatile(self, nonvolatile: bool) -> None:
        self._switch("nonvolatile", bool(nonvolatile))

    def set_romd(self, romd: bool) -> None:
        """Switch a ROM device between romd mode (direct reads) and MMIO mode."""
        if self.kind != ROM_DEVICE:
            raise TopologyError(f"set_romd: {self.name!r} is not a ROM device")
        self._switch("romd", bool(romd))

    def set_log(self, log: bool, client: int = DIRTY_MEMORY_VGA) -> None:
        """Start or stop dirty logging for `client` (listeners see log_start/log_stop)."""
        if client not in dirty.CLIENTS:
            raise InvalidArgumentError(f"set_log: unknown dirty-memory client {client}")
        self._switch("dirty_log", (self.dirty_log & ~client) | (client if log else 0))

    # Dirty memory (RAM only), QEMU's memory_region_*_dirty; see pymem/dirty.py.

    def get_dirty(self, addr: int, size: int, client: int) -> bool:
        """Whether a page of [addr, addr + size) was written since `client` last cleared it."""
        return dirty.get_dirty(self, addr, size, client)

    def set_dirty(self, addr: int, size: int) -> None:
        """Mark [addr, addr + size) written, for every client logging this region."""
        dirty.set_dirty(self, addr, size)

    def reset_dirty(self, addr: int, size: int, client: int) -> None:
        """Clear `client`'s dirty bits of [addr, addr + size)."""
        dirty.reset_dirty(self, addr, size, client)

    def get_and_clear_dirty(self, addr: int, size: int, client: int) -> "dirty.DirtyBitmap":
        """The pages of [addr, addr + size) dirty for `client`, cleared at once,
        as a DirtyBitmap (one bit a page; `.pages_dirty()` lists their offsets)."""
        return dirty.get_and_clear_dirty(self, addr, size, client)

    def snapshot_and_clear_dirty(self, addr: int, size: int,
                                 client: int) -> "dirty.DirtyBitmap":
        """QEMU's memory_region_snapshot_and_clear_dirty: as get_and_clear_dirty."""
        return dirty.snapshot_and_clear_dirty(self, addr, size, client)

    def mark_dirty(self, addr: int, size: int) -> None:
        """Report a write to [addr, addr + size) (bytes, region offsets) made
        outside pymem (a CPU engine's store, a DMA engine): marked for every
        client logging this region, as pymem's own writes are."""
        dirty.mark_dirty(self, addr, size)


_FIELDS = {name: field for name, field in vars(MemoryRegion).items()
           if isinstance(field, (_Field, _ConstructorOrAttribute))}


def _set(mr: MemoryRegion, field: str, value: Any) -> None:
    """Set a read-only field of `mr`: only for the edit methods, which have
    checked the value and commit the change."""
    _FIELDS[field].write(mr, value)


def set_ops(mr: MemoryRegion, ops: MemoryRegionOps) -> None:
    """Give a device region other ops (trace replay's stubs, and putting the
    real ones back): callers read `ops` at every access, C included."""
    mr._ops = _check_ops(mr.name, ops)


def _check_ops(name: str, ops: Any) -> MemoryRegionOps:
    if not isinstance(ops, MemoryRegionOps):
        raise ArgumentTypeError(f"region {name!r}: ops must be a MemoryRegionOps, "
                                f"not {type(ops).__name__}")
    return ops


def _allocate(kind: str, name: str, size: int) -> memoryview:
    """Zeroed, page-aligned memory for a region (pymem/hostmem.py: small ones
    carved from shared slabs, so many small regions do not exhaust the
    process's mappings), allocated when the region is made, so a size the
    machine cannot map fails here, naming the region, not at a commit."""
    try:
        return hostmem.allocate(size)
    except (OverflowError, OSError, ValueError, MemoryError) as exc:
        raise TopologyError(f"{kind} {name!r}: cannot allocate {size:#x} bytes of memory "
                            f"({exc})") from None


def _wrap_buffer(name: str, buffer: Any, size: int) -> memoryview:
    try:
        view = memoryview(buffer)
    except TypeError:
        raise ArgumentTypeError(f"ram {name!r}: buffer must support the buffer protocol, "
                                f"not {type(buffer).__name__}") from None
    if view.readonly:
        raise InvalidArgumentError(f"ram {name!r}: buffer is read-only")
    if not view.c_contiguous:
        raise InvalidArgumentError(f"ram {name!r}: buffer is not C-contiguous (a Fortran-order or "
                                   f"strided array): give it a C-ordered copy")
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    if view.nbytes != size:
        raise InvalidArgumentError(f"ram {name!r}: buffer holds {view.nbytes:#x} bytes, "
                                   f"size is {size:#x}")
    return view


def _path_to(start: MemoryRegion, goal: MemoryRegion) -> Optional[List[MemoryRegion]]:
    """A chain of subregion and alias links from `start` to `goal`, if any."""
    stack: List[tuple] = [(start, [start])]
    seen = set()
    while stack:
        mr, path = stack.pop()
        if mr is goal:
            return path
        if mr.id in seen:
            continue
        seen.add(mr.id)
        if mr.alias is not None:
            stack.append((mr.alias, path + [mr.alias]))
        for sub in mr._subs:
            stack.append((sub, path + [sub]))
    return None


def _is_ancestor(region: MemoryRegion, mr: Optional[MemoryRegion]) -> bool:
    """Whether `region` is `mr` or one of its containers."""
    while mr is not None:
        if mr is region:
            return True
        mr = mr.container
    return False


def _loop_mates(region: MemoryRegion) -> List[MemoryRegion]:
    """The regions that lie on a cycle with `region` (its strongly connected
    component of subregion and alias links), or [] when it lies on none."""
    forward = list(reachable(region))
    preds: dict = {}
    for mr in forward:
        if mr._alias is not None:
            preds.setdefault(mr._alias.id, []).append(mr)
        for sub in mr._subs:
            preds.setdefault(sub.id, []).append(mr)
    if region.id not in preds:
        return []
    inside = {mr.id for mr in forward}
    seen = {region.id}
    stack = [region]
    while stack:
        for p in preds.get(stack.pop().id, ()):
            if p.id in inside and p.id not in seen:
                seen.add(p.id)
                stack.append(p)
    return [mr for mr in forward if mr.id in seen]


def runaway_loop(start: MemoryRegion, base: int, lo: int, hi: int
                 ) -> Optional[List[MemoryRegion]]:
    """Walk what rendering `start` (at `base`, clipped to [lo, hi)) walks, as
    pymem/flatview.py's _collect does but without recursion, and return the
    loop of a path that goes through one alias more than MAX_ALIAS_VISITS
    times (from that alias's previous visit back to it), or None."""
    path: List[MemoryRegion] = []
    visits: dict = {}
    stack: List[Tuple[MemoryRegion, int, int, int, int]] = [(start, base, lo, hi, 0)]
    while stack:
        mr, base, lo, hi, depth = stack.pop()
        while len(path) > depth:
            gone = path.pop()
            if gone._alias is not None:
                visits[gone.id] -= 1
        if not mr.enabled:
            continue
        base += mr.addr
        if base > lo:
            lo = base
        if base + mr.size < hi:
            hi = base + mr.size
        if lo >= hi:
            continue
        target = mr._alias
        if target is not None:
            n = visits.get(mr.id, 0) + 1
            if n > MAX_ALIAS_VISITS:
                i = max(k for k, r in enumerate(path) if r is mr)
                return path[i:] + [mr]
            visits[mr.id] = n
            path.append(mr)
            stack.append((target, base - target.addr - mr.alias_offset, lo, hi, depth + 1))
        else:
            path.append(mr)
            for sub in mr._subs:
                stack.append((sub, base, lo, hi, depth + 1))
    return None


def loop_text(loop: List[MemoryRegion], first: Optional[MemoryRegion] = None) -> str:
    """A closed loop (its first region repeated at the end) as text, starting
    at `first` when it lies on the loop."""
    ring = loop[:-1]
    if first is not None and any(r is first for r in ring):
        i = next(k for k, r in enumerate(ring) if r is first)
        ring = ring[i:] + ring[:i]
    return " -> ".join(repr(r.name) for r in ring + ring[:1])


def _check_loops(mates: List[MemoryRegion], where: str, edited: MemoryRegion) -> None:
    """Refuse the tentative edit if rendering from any alias on these loops
    (each alone: its own whole window, the widest clip any render can reach
    it with) runs past MAX_ALIAS_VISITS.  Any endless render path goes round
    a cycle through an alias, so this covers every root."""
    for mr in mates:
        if mr._alias is None:
            continue
        loop = runaway_loop(mr, 0, mr.addr, mr.addr + mr.size)
        if loop is not None:
            raise TopologyError(
                f"{where} would make a cycle that rendering never leaves: "
                f"{loop_text(loop, edited)} (each trip round an alias loop must move its "
                f"window off itself; here {loop[0].name!r} is entered more than "
                f"{MAX_ALIAS_VISITS} times on one path)")


def reachable(root: MemoryRegion) -> Iterator[MemoryRegion]:
    """Every region reached from `root` through subregions and aliases, once each."""
    stack = [root]
    seen = set()
    while stack:
        mr = stack.pop()
        if mr.id in seen:
            continue
        seen.add(mr.id)
        yield mr
        if mr.alias is not None:
            stack.append(mr.alias)
        stack.extend(mr._subs)
