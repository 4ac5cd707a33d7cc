"""What every part of the access path shares: the 64-bit space, the MemTxResults it answers most, argument checks, byte views, the section under an address.

Part of pymem.access (its docstring gives the rules).
"""
from __future__ import annotations

from typing import Any

from ..errors import ArgumentTypeError, InvalidArgumentError
from ..memtx import MemTxResult
from ..region import ByteOrder


ADDRESS_SPACE_SIZE = 1 << 64


OK = MemTxResult.OK
DECODE_ERROR = MemTxResult.DECODE_ERROR


def translate_section(space: Any, addr: int, size: int) -> Any:
    """The section under `addr` in `space`'s current view, as C sees it: a
    SectionAt (region or None for unassigned space, offset in the region,
    bytes left in the section, flags), in one C call that holds the read
    side until the region is ours (see `section` in csrc/ext/lookup.c).

    `addr` is a byte address and `size` bytes, inside [0, 2^64) (not
    checked: the access path checks first).

    Raises nothing (a destroyed space answers unassigned space).
    """
    return space._section(addr, size)


def _byte_view(buffer: Any, is_write: bool) -> memoryview:
    """`buffer` as flat bytes for an access; ArgumentTypeError for a buffer
    the access cannot use, naming what is wrong with it."""
    try:
        view = memoryview(buffer)
    except TypeError:
        raise ArgumentTypeError(f"rw: buffer must support the buffer protocol, "
                                f"not {type(buffer).__name__}") from None
    if not is_write and view.readonly:
        raise ArgumentTypeError(f"rw: cannot read into a read-only "
                                f"{type(buffer).__name__} buffer")
    if not view.c_contiguous:
        if not is_write:
            raise ArgumentTypeError(f"rw: cannot read into a non-contiguous (strided) "
                                    f"{type(buffer).__name__} buffer: read into a "
                                    f"contiguous one and copy")
        view = memoryview(view.tobytes())   # the bytes in logical order
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _check_access(addr: Any, size: int) -> None:
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise ArgumentTypeError(f"address must be an int, not {type(addr).__name__}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgumentError(f"access size must be a non-negative int, not {size!r}")
    if addr < 0 or addr + size > ADDRESS_SPACE_SIZE:
        raise InvalidArgumentError(f"access of {size} bytes at {addr:#x} is outside the "
                                   f"64-bit space")


def _byteorder(big: bool) -> ByteOrder:
    return "big" if big else "little"
