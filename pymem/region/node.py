"""The C node mirror: a region's fields as read-only descriptors written through to C.

Every field rendering reads lives twice: in the region's slot (read by
Python) and in its C node, `pm_region` (read by C rendering, without the
GIL).  The descriptors here make a field read-only to users and give the
edit methods (_edits.py) one way in, `write` (through `_set`), which changes the slot and the C
node in one C call (`_fastpath.atomic`), so neither a renderer nor a signal
ever sees them disagree.  `_KIND_FLAGS` is the C flags of each kind.
"""
from __future__ import annotations

import operator
from typing import (TYPE_CHECKING, Any, Callable, Dict, Generic, NoReturn, Optional, Protocol,
                    Tuple, TypeVar, Union, cast, overload)

from .._bindings import _fastpath, ffi, lib
from ..errors import ReadOnlyAttributeError
from .kinds import ALIAS, CONTAINER, IO, IOMMU, RAM, RAM_DEVICE, ROM, ROM_DEVICE
from ..tree_lock import TREE_LOCK

if TYPE_CHECKING:
    from .tree import MemoryRegion


# MemoryRegion's fields by name, each registered as the class is made (the
# descriptors' __set_name__): `_set` is the edit methods' one way in.
_FIELDS: Dict[str, Any] = {}


def _set(mr: Any, field: str, value: Any) -> None:
    """Set a read-only field of region `mr`: only for the edit methods and
    the constructors, which have checked the value and commit the change."""
    _FIELDS[field].write(mr, value)


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
        _FIELDS[name] = self

    @overload
    def __get__(self, obj: None, owner: type) -> _Constructor: ...

    @overload
    def __get__(self, obj: "MemoryRegion", owner: type) -> Optional["MemoryRegion"]: ...

    def __get__(self, obj: Optional["MemoryRegion"], owner: type
                ) -> Union[_Constructor, Optional["MemoryRegion"]]:
        if obj is None:
            return self.constructor.__get__(owner, owner)
        return cast("Optional[MemoryRegion]", self.slot.__get__(obj, owner))

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
            _FIELDS[name] = self
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
