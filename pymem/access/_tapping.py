"""The taps of an address space (pymem/taps.py): installing them and telling them of the pieces the Python path answers.

Part of pymem.access (its docstring gives the rules).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Tuple, cast

from .. import taps as _taps_mod
from ..memtx import MemTxAttrs
from ..region import MemoryRegion
from ._common import ADDRESS_SPACE_SIZE

if TYPE_CHECKING:
    from ..address_space import AddressSpace, MemorySystem


class TapsMixin:
    """The taps part of AccessMixin (pymem/access/_path.py).

    Thread safety:
        Taps may be added and removed from any thread, and from inside a tap;
        a tap runs on the accessing thread with the GIL held.
    """

    _pin: Any
    _check_live: Callable[[], None]


    @property
    def _recorder(self) -> Any:
        """Set by pymem.trace while it records or replays this space, so two
        cannot at once (its accesses reach them through a tap; nothing on
        the access path reads this)."""
        return self._pin.recorder

    @_recorder.setter
    def _recorder(self, recorder: Any) -> None:
        self._pin.recorder = recorder

    # ---------------------------------------------------------------- taps

    def _tapset(self) -> Any:
        """This space's TapSet (csrc/ext/taps.c), made on first use: every
        access builtin holds it and reads its counters after each access."""
        tapset = self.__dict__.get("_taps")
        if tapset is None:
            tapset = self.__dict__["_taps"] = _taps_mod.TapSet(self)
        return tapset

    def add_tap(self, callback: Callable[[Any], Any], *, kinds: Optional[Iterable[str]] = None,
                start: int = 0, end: int = ADDRESS_SPACE_SIZE, reads: bool = True,
                writes: bool = True, mmio_only: bool = False) -> "_taps_mod.Tap":
        """Call `callback(event)` for every piece of every access of this
        space (pymem/taps.py says what a piece is and what an AccessEvent
        holds) whose region kind is in `kinds` (None: all of ram, rom,
        ram_device, rom_device, io, iommu, unassigned), which overlaps
        [start, end), in the directions asked; `mmio_only` keeps only
        device accesses and unassigned space (what QEMU would dispatch to a
        MemoryRegionOps), not plain memory.  Returns the Tap; `tap.remove()`
        uninstalls it.  Builtins bound earlier (`ld = asp.ldl_le`) tell it
        too.  A tap that raises: the exception reaches the access's caller,
        the piece stays done.  Thread-safe (taps run with the GIL, in the
        accessing thread).  Bad arguments raise ArgumentTypeError or
        InvalidArgumentError naming this space.

        Raises:
            TopologyError: the space is destroyed.
            ArgumentTypeError: `callback` is not callable, or an argument of the
                wrong type (see `pymem.taps.check_tap`).
            InvalidArgumentError: unknown or no kinds, an empty range or one past
                2^64, or neither reads nor writes.
        """
        self._check_live()
        wanted = _taps_mod.check_tap(cast("AddressSpace", self).name, callback, kinds, start,
                                     end, reads, writes, mmio_only)
        return _taps_mod.Tap(cast("AddressSpace", self), self._tapset(), callback, wanted,
                             start, end, reads, writes, mmio_only)

    @property
    def taps(self) -> Tuple[Callable[[Any], Any], ...]:
        """The callbacks of the installed taps, oldest first."""
        return tuple(t.callback for t in self._tapset().taps)

    def _tell(self, addr: int, size: int, is_write: bool, region: Optional[MemoryRegion],
              offset: int, value: Optional[int], data: Optional[bytes], big: bool,
              attrs: Optional[MemTxAttrs], result: int, device: bool) -> None:
        """Tell the taps of a piece the Python path answered (csrc/ext/taps.c
        filters and builds the event)."""
        tapset = self.__dict__.get("_taps")
        if tapset is not None and tapset.taps:
            tapset.emit(addr, size, is_write, region, offset, value, data, big,
                        attrs if attrs is not None and not attrs.unspecified else None,
                        int(result), device)
