"""Access taps: observe the accesses of an address space.

A debugger wants to know what the guest touched, a fuzzer which device
registers an input reached, a tracer what went over the bus.  A tap is a
callable an address space tells of every piece of an access, as the access
path hands it out: a stretch of plain memory (RAM, ROM) copied in one go, one
device access (after QEMU's splitting and widening), an unassigned stretch.
It gets an `AccessEvent` (space, addr, size, is_write, region, offset, kind,
mmio, value, data, attrs, result) after the piece is done.

    tap = asp.add_tap(print, kinds={"io"}, start=0xfed00000, end=0xfed01000)
    ...
    tap.remove()            # or: with asp.add_tap(...): ...

What it costs: with no tap installed, nothing measurable (the C builtins read
one counter after each access).  Taps that only want device pieces
(`mmio_only=True`, or `kinds` without a memory kind) leave RAM and ROM
accesses on their one-C-call path; a tap that may want plain memory sends
`read`/`write`/`rw` through the piece-by-piece path while it is installed.
Builtins bound before the tap was added (`ld = asp.ldl_le`) tell it too.

Semantics:
- Pieces: a fixed-width load or store is one piece; `read`, `write` and
  `rw` give one piece per section of plain memory and one per device access;
  an access through an IOMMU is told by the target space, at the translated
  address (a refused translation is an unassigned piece of the first space);
  `map` tells a read of the mapped RAM when it maps for reading, `unmap` a
  write of the `access_len` bytes written.
- `value` is the device's value in the device's byte order for device
  pieces, the loaded or stored value for the fixed-width accessors, and None
  for longer pieces, whose bytes are `data`.
- Order: taps are told in the order they were added, each piece after it is
  done (after the device callback returned; a load's value is the answer).
- A tap that raises: the exception reaches the caller of the access, whose
  memory effects (this piece and those before it) stay done; the taps after
  it are not told of that piece and the rest of the access is not made, as
  when a device callback raises.
- Threads: a tap runs in the thread making the access, with the GIL.  Adding
  and removing taps is safe from any thread, and from inside a tap: a piece
  already being told goes to the taps installed when it started.

Thread safety:
    A tap runs on the thread making the access, with the GIL held and no
    pymem lock.  Adding and removing taps is safe from any thread, and from
    inside a tap (a piece already being told goes to the taps installed
    when it started).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, FrozenSet, Iterable, Optional

from ._bindings import _fastpath
from .errors import ArgumentTypeError, InvalidArgumentError

if TYPE_CHECKING:
    from .address_space import AddressSpace

AccessEvent = _fastpath.AccessEvent
TapSet = _fastpath.TapSet

# The kinds a tap filters on, in the bit order of csrc/ext/fastpath.h.
KINDS = ("ram", "rom", "ram_device", "rom_device", "io", "iommu", "unassigned")
ALL_KINDS: FrozenSet[str] = frozenset(KINDS)
ADDRESS_SPACE_SIZE = 1 << 64


class Tap:
    """An installed tap (what `AddressSpace.add_tap` answers).  `remove()`
    uninstalls it; as a context manager it is removed when the block ends.

    Raises nothing (taps are made by `AddressSpace.add_tap`).
    """

    __slots__ = ("space", "callback", "kinds", "start", "end", "reads", "writes",
                 "mmio_only", "_set", "_tap")

    def __init__(self, space: "AddressSpace", tapset: Any, callback: Callable[[Any], Any],
                 kinds: FrozenSet[str], start: int, end: int, reads: bool, writes: bool,
                 mmio_only: bool) -> None:
        self.space = space
        self.callback = callback
        self.kinds = kinds
        self.start = start
        self.end = end
        self.reads = reads
        self.writes = writes
        self.mmio_only = mmio_only
        self._set = tapset
        bits = sum(1 << KINDS.index(k) for k in kinds)
        self._tap = tapset.add(callback, bits, start, end - 1, reads, writes, mmio_only)

    @property
    def installed(self) -> bool:
        """Whether the tap is still installed."""
        return self._tap in self._set.taps

    def remove(self) -> None:
        """Uninstall the tap (again: nothing happens).  Pieces after this call
        are not told to it.

        Raises nothing.
        """
        self._set.remove(self._tap)

    def __enter__(self) -> "Tap":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        return (f"<Tap {self.callback!r} on {self.space.name!r} "
                f"[{self.start:#x}, {self.end:#x}) kinds={sorted(self.kinds)}"
                f"{' mmio_only' if self.mmio_only else ''}"
                f"{'' if self.installed else ' (removed)'}>")


def check_tap(space_name: str, callback: Any, kinds: Optional[Iterable[str]], start: Any,
              end: Any, reads: Any, writes: Any, mmio_only: Any) -> FrozenSet[str]:
    """Check add_tap's arguments; the kinds as a set.  ArgumentTypeError or
    InvalidArgumentError naming the space and the bad argument.

    `start` and `end` are byte addresses, 0 <= start < end <= 2^64.

    Raises:
        ArgumentTypeError: `callback` is not callable, `kinds` is a string or
            not a collection, `start`/`end` are not ints, or `reads`, `writes`,
            `mmio_only` are not bools.
        InvalidArgumentError: an unknown or empty set of kinds, an empty range
            or one outside the 64-bit space, or neither reads nor writes.
    """
    where = f"add_tap on address space {space_name!r}"
    if not callable(callback):
        raise ArgumentTypeError(f"{where}: the tap must be callable, "
                                f"not {type(callback).__name__}")
    if kinds is None:
        wanted = ALL_KINDS
    else:
        if isinstance(kinds, str):
            raise ArgumentTypeError(f"{where}: kinds must be a collection of kind names "
                                    f"(e.g. {{'io'}}), not the string {kinds!r}")
        try:
            wanted = frozenset(kinds)
        except TypeError:
            raise ArgumentTypeError(f"{where}: kinds must be a collection of kind names, "
                                    f"not {type(kinds).__name__}") from None
        unknown = sorted(str(k) for k in wanted - ALL_KINDS)
        if unknown:
            raise InvalidArgumentError(f"{where}: unknown kinds {unknown}; "
                                       f"kinds are {', '.join(KINDS)}")
        if not wanted:
            raise InvalidArgumentError(f"{where}: kinds is empty: the tap would see nothing")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ArgumentTypeError(f"{where}: {name} must be an int, "
                                    f"not {type(value).__name__}")
    if not 0 <= start < end <= ADDRESS_SPACE_SIZE:
        raise InvalidArgumentError(f"{where}: the range [{start:#x}, {end:#x}) must be "
                                   f"non-empty and inside the 64-bit space")
    for name, value in (("reads", reads), ("writes", writes), ("mmio_only", mmio_only)):
        if not isinstance(value, bool):
            raise ArgumentTypeError(f"{where}: {name} must be a bool, "
                                    f"not {type(value).__name__}")
    if not reads and not writes:
        raise InvalidArgumentError(f"{where}: reads and writes are both off: "
                                   f"the tap would see nothing")
    return wanted
