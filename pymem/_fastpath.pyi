"""Types of the compiled `pymem._fastpath` module (csrc/ext/fastpath.c)."""
from typing import Any, Callable, Dict, Final, List, Optional, Tuple, Type, TypeVar, final

from _typeshed import structseq
from typing_extensions import disjoint_base

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
         big_endian: bool = False, taps: Optional["TapSet"] = None, /) -> Callable[..., Any]: ...

def mapping(owner: Any, memory: Any, start: int, length: int, region: Any, offset: int,
            is_write: bool, attrs: Any, addr: int, space: Any, /) -> memoryview: ...


def ops_changed() -> None: ...

def set_memtx(ok: Any, *functions: int) -> None: ...

# Access taps (csrc/ext/taps.c; pymem/taps.py is the public side).
@final
class Tap:
    """One installed tap: its callback and filters."""

    @property
    def callback(self) -> Callable[[Any], Any]: ...

@final
class AccessEvent:
    """One piece of an access, as a tap is told of it."""

    @property
    def space(self) -> Any: ...
    @property
    def addr(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def is_write(self) -> bool: ...
    @property
    def region(self) -> Any: ...
    @property
    def offset(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def mmio(self) -> bool: ...
    @property
    def value(self) -> Optional[int]: ...
    @property
    def data(self) -> bytes: ...
    @property
    def attrs(self) -> Any: ...
    @property
    def result(self) -> int: ...

@final
class TapSet:
    """The taps of one address space."""

    def __new__(cls, space: Any, /) -> "TapSet": ...
    @property
    def taps(self) -> Tuple[Tap, ...]: ...
    @property
    def memory(self) -> bool: ...
    def add(self, callback: Callable[[Any], Any], kinds: int, start: int, last: int,
            reads: bool, writes: bool, mmio_only: bool, /) -> Tap: ...
    def remove(self, tap: Tap, /) -> bool: ...
    def emit(self, addr: int, size: int, is_write: bool, region: Any, offset: int,
             value: Optional[int], data: Optional[bytes], big_endian: bool, attrs: Any,
             result: int, mmio: bool, /) -> None: ...

def range_users(ranges_address: int, n: int, /) -> List[Any]: ...

# Signal-safe building blocks (see "signal-safe building blocks" in guards.c).
def set_rcu(read_lock_address: int, read_unlock_address: int, /) -> None: ...

def atomic(*steps: Tuple[Any, ...]) -> Optional[Tuple[int, int]]: ...

def swap_views(system: Any, views: Dict[Any, Any], spaces: List[Any],
               keys: List[Optional[int]], done: bool, release: bool, /) -> None: ...

def set_commit_api(functions: Tuple[int, ...], max_alias_visits: int, cast: Callable[..., Any],
                   gc: Callable[..., Any], range_type: Any, dispatch_type: Any,
                   ranges_free: Callable[..., Any], tree_lock: Any, /) -> None: ...

def flatview_roots(spaces: List[Any], /) -> Tuple[List[Optional[int]], Dict[Optional[int], Any]]: ...

def render_view(root: Any, page_bits: int, stats_address: int, destructor: Callable[..., Any],
                /) -> Optional[Tuple[Any, List[Any], Any, int]]: ...

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

# MemoryRegion's C base (csrc/ext/regionobj.c); pymem/region/tree.py types
# the fields more closely.
_R = TypeVar("_R", bound="Region")

@disjoint_base
class Region:
    """The C base of MemoryRegion: its fields and C node."""

    @property
    def _id(self) -> Any: ...
    _name: Any
    _size: Any
    _kind: Any
    _ops: Any
    _readonly: Any
    _romd: Any
    _enabled: Any
    _priority: Any
    _addr: Any
    _container: Any
    _alias: Any
    _alias_offset: Any
    _subs: Any
    _nonvolatile: Any
    _dirty_log: Any
    _translate: Any
    _target: Any
    _buffer: Any
    _system: Any
    _on_loop: Any
    @property
    def _node(self) -> Any: ...
    def __new__(cls: Type[_R], name: str, size: int, kind: str) -> _R: ...
    def add_subregion(self, offset: int, region: Any, priority: int = 0) -> None: ...
    def _init_alias(self, target: Any, offset: int, /) -> None: ...
    def _set_memory(self, buffer: Any, /) -> None: ...

def set_region_api(functions: Tuple[int, ...], kinds: Dict[str, Tuple[str, int, bool]],
                   alias_kind: str, ram_kind: str, node_cast: Callable[[int], Any],
                   refuse_new: Callable[[Any, Any, Any], None], tree_lock: Any,
                   no_region: int, /) -> None: ...

def region_by_id(region_id: int, /) -> Optional[Region]: ...

# Page-aligned memory of small regions (csrc/ext/hostmem.c; pymem/hostmem.py).
SLAB_PAGES: int

@final
class SlabAllocator:
    """Page-aligned memories carved from shared slabs."""

    def allocate(self, size: int, /) -> memoryview: ...
    def slab_count(self) -> int: ...
