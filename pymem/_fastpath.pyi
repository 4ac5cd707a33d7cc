"""Types of the compiled `pymem._fastpath` module (csrc/ext/fastpath.c)."""
from typing import Any, Callable, Final, List, Optional, Tuple, final

from _typeshed import structseq

@final
class Translation(structseq[int], Tuple[int, int, int]):
    """What translate answers: section, offset in its region, length inside it."""

    __match_args__: Final = ("section", "offset_in_region", "length")

    @property
    def section(self) -> int: ...
    @property
    def offset_in_region(self) -> int: ...
    @property
    def length(self) -> int: ...

@final
class SectionAt(structseq[Any], Tuple[Any, int, int, int]):
    """The section under an address: region object (None: unassigned), offset
    in the region, length inside the section, section flags."""

    __match_args__: Final = ("region", "offset", "len", "flags")

    @property
    def region(self) -> Any: ...
    @property
    def offset(self) -> int: ...
    @property
    def len(self) -> int: ...
    @property
    def flags(self) -> int: ...

# The builtin's arguments depend on `kind` (see `kinds` in fastpath.c).
def bind(kind: str, fn_address: int, obj_address: int, width: int,
         fallback: Optional[Callable[..., Any]], keepalive: object,
         read_lock: int = 0, read_unlock: int = 0, device_fn: int = 0,
         big_endian: bool = False, /) -> Callable[..., Any]: ...

def range_users(ranges_address: int, n: int, /) -> List[Any]: ...

# Signal-safe building blocks (see "signal-safe building blocks" in fastpath.c).
def set_rcu(read_lock_address: int, read_unlock_address: int, /) -> None: ...

def atomic(*steps: Tuple[Any, ...]) -> Optional[Tuple[int, int]]: ...

def call_owned(gc: Callable[..., Any], fn: Callable[..., Any], args: Tuple[Any, ...],
               outs: Tuple[Tuple[Any, Any], ...], /) -> Tuple[Any, ...]: ...

@final
class ReadSection:
    """An RCU read-side section for a `with` block, entered and left in C."""

    def __enter__(self) -> None: ...
    def __exit__(self, *exc: object) -> bool: ...

@final
class Setting:
    """obj.name is value inside the `with` (entered and left in C)."""

    def __new__(cls, obj: object, name: str, value: object, /) -> "Setting": ...
    def __enter__(self) -> None: ...
    def __exit__(self, *exc: object) -> bool: ...

@final
class Transaction:
    """A MemorySystem transaction, entered and left in C."""

    def __new__(cls, system: Any, /) -> "Transaction": ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> bool: ...
