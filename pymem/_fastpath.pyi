"""Types of the compiled `pymem._fastpath` module (csrc/ext/fastpath.c)."""
from typing import Any, Callable, List, Optional, Tuple, final

from _typeshed import structseq

@final
class Translation(structseq[int], Tuple[int, int, int]):
    """What translate answers: section, offset in its region, length inside it."""

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
