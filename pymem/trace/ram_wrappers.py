"""Recording plain RAM and ROM accesses: wrappers shadowing a space's accessors.

Device accesses reach the recorder through the access path's hook; plain
memory is copied by C without a callback, so while a recording with
`mmio_only=False` runs, the space's `rw`, `load`, `store` and fixed-width
accessors are replaced on the instance by wrappers that also record RAM and
ROM pieces, cut where the real path cuts them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from ..errors import InvalidArgumentError
from ..memtx import MemTxAttrs
from ..region import MemoryRegion

if TYPE_CHECKING:
    from .recorder import Recorder


_FIXED = {
    "ldub": (1, False, False), "lduw_le": (2, False, False), "lduw_be": (2, True, False),
    "ldl_le": (4, False, False), "ldl_be": (4, True, False),
    "ldq_le": (8, False, False), "ldq_be": (8, True, False),
    "stb": (1, False, True), "stw_le": (2, False, True), "stw_be": (2, True, True),
    "stl_le": (4, False, True), "stl_be": (4, True, True),
    "stq_le": (8, False, True), "stq_be": (8, True, True),
}
_WRAPPED = ("read", "write", "rw", "load", "store") + tuple(_FIXED)


def _translate(asp: Any, addr: int, size: int) -> Tuple[Any, Optional[MemoryRegion]]:
    """The access path's view of `addr`: a pm_access (offset in region, bytes
    left in the section, section flags) and its region."""
    from ..access import translate_section

    t = translate_section(asp, addr, size)
    return t, t.region


def _install_ram_wrappers(asp: Any, recorder: Recorder) -> Dict[str, Any]:
    """Shadow the instance's access methods with recording ones (RAM
    recording); returns the instance attributes they hid, for restoring."""
    from .. import mmio
    from ..access import AccessMixin
    from ..dispatch import SECTION_IOMMU, SECTION_RAM, SECTION_ROMD
    from ..memtx import MemTxError, MemTxResult

    cls_rw, cls_load, cls_store = AccessMixin.rw, AccessMixin.load, AccessMixin.store

    def plain(region: Optional[MemoryRegion], flags: int, is_write: bool) -> bool:
        # What C copies itself, plus RAM writes behind a read-only alias,
        # which are dropped without a device: the pieces the hook never sees.
        if region is None or flags & SECTION_IOMMU:
            return False
        if is_write:
            return bool(flags & SECTION_RAM) and not region.readonly
        return bool(flags & (SECTION_RAM | SECTION_ROMD))

    def rw(addr: int, buffer: Any, is_write: bool,
           attrs: Optional[MemTxAttrs] = None) -> MemTxResult:
        view = memoryview(buffer).cast("B")
        n = view.nbytes
        if not isinstance(addr, int) or addr < 0 or addr + n > 1 << 64 or n == 0:
            return cls_rw(asp, addr, view, is_write, attrs)   # its checks, its errors
        done = 0
        result = MemTxResult.OK
        # Piece by piece, each as its own rw, cut where the real path cuts:
        # plain memory at the end of its section, a device access where
        # QEMU's memory_access_size ends it, so what the devices see is
        # what an unrecorded run gives them.
        while done < n:
            t, region = _translate(asp, addr + done, n - done)
            rest = n - done
            if region is None or not (region.ram_backed or t.flags & SECTION_IOMMU):
                length = mmio.access_size(region.ops if region is not None else None,
                                          rest, t.offset)
            else:
                length = min(t.len, rest)
            piece = view[done:done + length]
            result |= cls_rw(asp, addr + done, piece, is_write, attrs)
            if plain(region, t.flags, is_write):
                assert region is not None
                recorder.memory(asp, addr + done, region, t.offset, piece, is_write, attrs)
            done += length
        return MemTxResult(result)

    def read(addr: int, size: int, attrs: Optional[MemTxAttrs] = None) -> bytes:
        if not isinstance(size, int) or size < 0:
            raise InvalidArgumentError(f"read size must be a non-negative int, not {size!r}")
        buf = bytearray(size)
        r = rw(addr, buf, False, attrs)
        if r:
            raise MemTxError(r, addr, size, False)
        return bytes(buf)

    def write(addr: int, data: Any, attrs: Optional[MemTxAttrs] = None) -> None:
        r = rw(addr, data, True, attrs)
        if r:
            raise MemTxError(r, addr, memoryview(data).nbytes, True)

    def load(addr: int, size: int, big_endian: bool = False,
             attrs: Optional[MemTxAttrs] = None) -> Tuple[int, MemTxResult]:
        t, region = _translate(asp, addr, size)
        value, result = cls_load(asp, addr, size, big_endian, attrs)
        if t.len >= size and plain(region, t.flags, False):
            assert region is not None
            data = value.to_bytes(size, "big" if big_endian else "little")
            recorder.memory(asp, addr, region, t.offset, data, False, attrs)
        return value, result

    def store(addr: int, value: int, size: int, big_endian: bool = False,
              attrs: Optional[MemTxAttrs] = None) -> MemTxResult:
        t, region = _translate(asp, addr, size)
        result = cls_store(asp, addr, value, size, big_endian, attrs)
        if t.len >= size and plain(region, t.flags, True):
            assert region is not None
            data = value.to_bytes(size, "big" if big_endian else "little")
            recorder.memory(asp, addr, region, t.offset, data, True, attrs)
        return result

    def fixed(size: int, big: bool, is_store: bool) -> Callable[..., Any]:
        # The builtins' contract: unspecified attributes, bus errors raised.
        if is_store:
            def st(addr: int, value: int) -> None:
                r = store(addr, value, size, big)
                if r:
                    raise MemTxError(r, addr, size, True)
            return st

        def ld(addr: int) -> int:
            value, r = load(addr, size, big)
            if r:
                raise MemTxError(r, addr, size, False)
            return value
        return ld

    hidden = {name: asp.__dict__[name] for name in _WRAPPED if name in asp.__dict__}
    wrappers: Dict[str, Any] = {"read": read, "write": write, "rw": rw, "load": load,
                                "store": store}
    wrappers.update((name, fixed(*spec)) for name, spec in _FIXED.items())
    for name, fn in wrappers.items():
        setattr(asp, name, fn)
    return hidden


def _remove_ram_wrappers(asp: Any, hidden: Dict[str, Any]) -> None:
    """Back to what the instance had (its bound builtins); accessors it had
    not bound yet rebind on next use."""
    for name in _WRAPPED:
        asp.__dict__.pop(name, None)
    asp.__dict__.update(hidden)
