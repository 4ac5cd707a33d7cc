"""MemoryRegionOps and the MMIO callback types: how a device region is accessed.

QEMU's MemoryRegionOps (valid and implemented access sizes, byte order, the
callbacks in their two shapes).  Knows nothing of the tree or the access
path that calls them (pymem/mmio.py).
"""
from __future__ import annotations

from typing import Any, Callable, Literal, Optional, Tuple, Union

from ..errors import ArgumentTypeError, InvalidArgumentError
from ..memtx import MemTxAttrs


ByteOrder = Literal["little", "big"]
"""A device's byte order, spelled as int.from_bytes takes it."""

# MemoryRegionOps callbacks come in QEMU's two shapes: read/write, and
# read_with_attrs/write_with_attrs (`with_attrs` says which a device has).
# Their results are MemTxResult bits: a MemTxResult, or the plain int a
# trace replay answers.
MMIORead = Callable[[int, int], int]
MMIOWrite = Callable[[int, int, int], None]
MMIOReadWithAttrs = Callable[[int, int, MemTxAttrs], Tuple[int, int]]
MMIOWriteWithAttrs = Callable[[int, int, int, MemTxAttrs], Optional[int]]


class MemoryRegionOps:
    """How an MMIO region is accessed: QEMU's MemoryRegionOps.

    `read(offset, size) -> int` and `write(offset, value, size)`; `valid_*`
    are the access sizes the device accepts, `impl_*` the sizes its callbacks
    handle (wider accesses are split, narrower ones widened).  With
    `with_attrs` the callbacks are QEMU's *_with_attrs: they also get the
    access's MemTxAttrs, `read` returns (value, MemTxResult) and `write` a
    MemTxResult (None for OK), so a device can answer a bus error.

    Ops are fixed once made, as QEMU's are const: give a region new ops
    instead of changing these.

    Sizes are bytes: 1, 2, 4 or 8, min <= max.

    Raises:
        ArgumentTypeError: `read` or `write` is not callable, or a size is not
            an int.
        InvalidArgumentError: `endianness` is not "little" or "big", or a size
            is not 1, 2, 4 or 8 or min > max.

    Thread safety:
        Immutable once made: share it between regions and threads.  The
        callbacks run on whichever thread makes an access, with the GIL and
        no pymem lock held, possibly on several threads at once: a device
        model shared between accessing threads locks its own state.  A
        callback may access memory and commit topology changes.
    """

    __slots__ = ("read", "write", "endianness", "valid_min", "valid_max",
                 "impl_min", "impl_max", "unaligned", "with_attrs", "direct")

    direct: Optional[Tuple[Any, Any, int, bool, bool]]
    """For the C fast path (csrc/ext/fastpath.c): (read, write, the access
    sizes one callback answers as a bit mask, unaligned, big-endian), or
    None for callbacks with attributes."""

    def __init__(self, read: Union[MMIORead, MMIOReadWithAttrs],
                 write: Union[MMIOWrite, MMIOWriteWithAttrs], endianness: ByteOrder = "little",
                 valid_min: int = 1, valid_max: int = 4, impl_min: int = 1,
                 impl_max: int = 4, unaligned: bool = False,
                 with_attrs: bool = False) -> None:
        if not callable(read) or not callable(write):
            raise ArgumentTypeError("MemoryRegionOps needs callable read and write")
        if endianness not in ("little", "big"):
            raise InvalidArgumentError(f"endianness must be 'little' or 'big', not {endianness!r}")
        for label, lo, hi in (("valid", valid_min, valid_max), ("impl", impl_min, impl_max)):
            if type(lo) is not int or type(hi) is not int:
                raise ArgumentTypeError(f"MemoryRegionOps: {label} access sizes must be ints, "
                                        f"not {lo!r}..{hi!r}")
            if lo not in (1, 2, 4, 8) or hi not in (1, 2, 4, 8) or lo > hi:
                raise InvalidArgumentError(f"{label} access sizes must be powers of two in 1..8 "
                                           f"with min <= max, not {lo}..{hi}")
        self.read = read
        self.write = write
        self.endianness = endianness
        self.valid_min = valid_min
        self.valid_max = valid_max
        self.impl_min = impl_min
        self.impl_max = impl_max
        self.unaligned = unaligned
        self.with_attrs = with_attrs
        # The sizes mmio.dispatch_read/write answer with one plain callback.
        sizes = sum(s for s in (1, 2, 4, 8)
                    if valid_min <= s <= valid_max and impl_min <= s <= impl_max)
        self.direct = (None if with_attrs else
                       (read, write, sizes, bool(unaligned), endianness == "big"))

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "direct"):
            raise AttributeError(f"MemoryRegionOps are fixed once made (QEMU's are const): "
                                 f"cannot set {name!r}; give the region new ops")
        object.__setattr__(self, name, value)
