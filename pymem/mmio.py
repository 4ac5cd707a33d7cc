"""QEMU's rules for an access that reaches a device, in pure Python.

What a device sees of an access is decided here, as QEMU decides it in
`memory_access_size` (how much of a longer access one device access takes),
`memory_region_access_valid` (which sizes and alignments the device accepts:
others answer DECODE_ERROR without a callback), `access_with_adjusted_size`
(the sizes its callbacks implement: wider accesses split into several
callbacks, narrower ones widened and masked) and `adjust_endianness` (bytes
on the bus are the value in the device's byte order).  `ops` None stands for
QEMU's unassigned_mem_ops: unassigned space and regions without ops, which
reject every access.

Knows MemoryRegionOps (pymem/region/ops.py) and the MemTx types, not the
access path that calls it nor any address space (docs/architecture.md).

Thread safety:
    Pure functions but for the device callbacks they call, which run on the
    thread that made the access with no pymem lock held (a callback may
    access memory and commit topology changes).  A device model shared by
    several accessing threads must lock its own state.
"""
from __future__ import annotations

import operator
from typing import List, Optional, Tuple, cast

from .errors import ArgumentTypeError
from .memtx import MemTxAttrs, MemTxResult
from .region import (ByteOrder, MemoryRegionOps, MMIORead, MMIOReadWithAttrs, MMIOWrite,
                     MMIOWriteWithAttrs)

OK = MemTxResult.OK
DECODE_ERROR = MemTxResult.DECODE_ERROR


def access_size(ops: Optional[MemoryRegionOps], length: int, offset: int) -> int:
    """How many of `length` bytes at `offset` one device access takes.

    `length` and `offset` are bytes; the answer is a power of two.

    Raises nothing.
    """
    size_max = ops.valid_max if ops is not None else 4
    if ops is None or not ops.unaligned:
        # An aligned device only sees accesses aligned to their size.
        align = offset & -offset
        if align and align < size_max:
            size_max = align
    size = min(length, size_max)
    return 1 << (size.bit_length() - 1)


def access_valid(ops: Optional[MemoryRegionOps], offset: int, size: int) -> bool:
    """Whether the device accepts an access of `size` bytes at `offset`.

    Raises nothing.
    """
    if ops is None:
        return False
    if not ops.unaligned and offset & (size - 1):
        return False
    return ops.valid_min <= size <= ops.valid_max


def _impl_pieces(ops: MemoryRegionOps, size: int) -> Tuple[int, int, List[Tuple[int, int]]]:
    """The callback size, its mask, and (offset delta, shift) per callback."""
    step = max(min(size, ops.impl_max), ops.impl_min)
    if ops.endianness == "big":
        # The first callback holds the most significant part of the value.
        shifts = [(i, (size - step - i) * 8) for i in range(0, size, step)]
    else:
        shifts = [(i, i * 8) for i in range(0, size, step)]
    return step, (1 << (step * 8)) - 1, shifts


def callback_value(value: object, name: str, what: str, offset: int, size: int) -> int:
    """`value`, a device callback's answer, as an int (anything with
    __index__, as numpy integers); ArgumentTypeError naming the region
    `name` otherwise.

    Raises:
        ArgumentTypeError: `value` has no `__index__`.
    """
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentTypeError(
            f"device {name!r}: its {what} callback answered {type(value).__name__} "
            f"{value!r:.40} for {size} bytes at offset {offset:#x}, not an int") from None


def _attrs_answer(got: object, name: str, offset: int, size: int) -> Tuple[int, int]:
    """A with_attrs read's (value, MemTxResult), checked."""
    if not isinstance(got, tuple) or len(got) != 2:
        raise ArgumentTypeError(
            f"device {name!r}: its read callback (with_attrs) answered "
            f"{type(got).__name__} {got!r:.40} for {size} bytes at offset {offset:#x}, "
            f"not a (value, MemTxResult) pair")
    return (callback_value(got[0], name, "read", offset, size),
            callback_value(got[1], name, "read result", offset, size))


def dispatch_read(ops: Optional[MemoryRegionOps], offset: int, size: int,
                  attrs: MemTxAttrs, name: str = "?") -> Tuple[int, MemTxResult]:
    """Read `size` bytes: the value in the device's byte order, and the result.
    `name` (the region's) is what an error about a callback's answer names.

    `offset` is a byte offset in the region, `size` bytes (1, 2, 4 or 8).

    Raises:
        ArgumentTypeError: a callback answered something other than an int (or,
            with_attrs, a (value, MemTxResult) pair).
        Exception: what the device's read callback raises propagates.
    """
    if not access_valid(ops, offset, size):
        return 0, DECODE_ERROR
    assert ops is not None   # access_valid refuses unassigned space
    # `with_attrs` says which of its two shapes `ops.read` has.
    if ops.impl_min <= size <= ops.impl_max and not ops.with_attrs:
        # The device implements this size: one callback, nothing to adjust.
        value = cast(MMIORead, ops.read)(offset, size)
        if type(value) is not int:
            value = callback_value(value, name, "read", offset, size)
        return value & ((1 << (size * 8)) - 1), OK
    step, mask, shifts = _impl_pieces(ops, size)
    read = cast(MMIORead, ops.read)
    read_with_attrs = cast(MMIOReadWithAttrs, ops.read)
    with_attrs = ops.with_attrs
    value = 0
    result = OK
    for delta, shift in shifts:
        if with_attrs:
            part, r = _attrs_answer(read_with_attrs(offset + delta, step, attrs), name,
                                    offset + delta, step)
            result |= r
        else:
            part = read(offset + delta, step)
            if type(part) is not int:
                part = callback_value(part, name, "read", offset + delta, step)
        part &= mask
        # A callback wider than the access (impl_min) gives only its part:
        # for a big-endian device that is its low-addressed, high-order end.
        value |= part << shift if shift >= 0 else part >> -shift
    return value & ((1 << (size * 8)) - 1), MemTxResult(result) if result else OK


def dispatch_write(ops: Optional[MemoryRegionOps], offset: int, value: int, size: int,
                   attrs: MemTxAttrs, name: str = "?") -> MemTxResult:
    """Write `value` (in the device's byte order) as `size` bytes at `offset`.
    `name` (the region's) is what an error about a callback's answer names.

    `offset` is a byte offset in the region, `size` bytes (1, 2, 4 or 8).

    Raises:
        ArgumentTypeError: a with_attrs callback answered something other than
            None or a MemTxResult.
        Exception: what the device's write callback raises propagates.
    """
    if not access_valid(ops, offset, size):
        return DECODE_ERROR
    assert ops is not None   # access_valid refuses unassigned space
    # `with_attrs` says which of its two shapes `ops.write` has.
    if ops.impl_min <= size <= ops.impl_max and not ops.with_attrs:
        cast(MMIOWrite, ops.write)(offset, value, size)
        return OK
    step, mask, shifts = _impl_pieces(ops, size)
    write = cast(MMIOWrite, ops.write)
    write_with_attrs = cast(MMIOWriteWithAttrs, ops.write)
    with_attrs = ops.with_attrs
    result = OK
    for delta, shift in shifts:
        part = (value >> shift if shift >= 0 else value << -shift) & mask
        if with_attrs:
            r = write_with_attrs(offset + delta, part, step, attrs)
            if r is not None:
                if type(r) is not int and not isinstance(r, MemTxResult):
                    r = callback_value(r, name, "write (with_attrs)", offset + delta, step)
                result |= r
        else:
            write(offset + delta, part, step)
    return MemTxResult(result) if result else OK


def byteorder(ops: Optional[MemoryRegionOps]) -> ByteOrder:
    """The byte order of the device's values on the bus.

    Raises nothing.
    """
    return ops.endianness if ops is not None else "little"
