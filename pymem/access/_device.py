"""A piece handed to a device: the MMIO callback with QEMU's rules (pymem/mmio.py), a device's bad answer, and bus errors that say why.

Part of pymem.access (its docstring gives the rules).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from .. import mmio
from ..errors import ArgumentTypeError
from ..memtx import MemTxAttrs, MemTxResult
from ..region import MemoryRegionOps


def device_answer_error(pin: Any, addr: int, size: int, value: object) -> BaseException:
    """The error for a device read callback that answered `value`, not an
    int, as the C fast path (csrc/ext/device.c) reports it: the region is
    found in the view the access went through (`pin.view`).

    Raises nothing: it returns the exception (an ArgumentTypeError naming the region) for the caller to raise.
    """
    view = pin.view
    found = view.lookup(addr) if view is not None else None
    name = found.region.name if found is not None else "?"
    offset = addr - found.addr + found.offset_in_region if found is not None else addr
    try:
        mmio.callback_value(value, name, "read", offset, size)
    except ArgumentTypeError as exc:
        return exc
    return ArgumentTypeError(f"device {name!r}: its read callback answered {value!r:.40}")


def _device_access(ops: Optional[MemoryRegionOps], offset: int, view: memoryview, size: int,
                   is_write: bool, attrs: MemTxAttrs,
                   name: str = "unassigned") -> Tuple[int, MemTxResult]:
    """One device access of `size` bytes from the start of `view`."""
    order = mmio.byteorder(ops)
    if is_write:
        value = int.from_bytes(view[:size], order)
        return size, mmio.dispatch_write(ops, offset, value, size, attrs, name)
    value, result = mmio.dispatch_read(ops, offset, size, attrs, name)
    view[:size] = value.to_bytes(size, order)
    return size, result
