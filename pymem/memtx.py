"""Memory transactions: the attributes an access carries and the answer it gets.

QEMU tags every bus access with MemTxAttrs (secure world, user mode, the
requester's id, ...) and every access answers a MemTxResult, a set of error
bits OR-ed over the pieces an access was split into.  pymem keeps both, so a
device model written against QEMU's API finds the same names here, and
MemTxError carries the result of an access that the caller asked to raise.

Imports only pymem.errors; every layer above may use it (docs/architecture.md).

Thread safety:
    `MemTxAttrs`, `MemTxResult` and `MemTxReason` are immutable values and
    `MemTxError` is made per failed access: any thread.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import ArgumentTypeError, InvalidArgumentError, PymemError


class MemTxResult(enum.IntFlag):
    """QEMU's MemTxResult: 0 is success, each error is a bit."""

    OK = 0
    ERROR = 1
    DECODE_ERROR = 2
    ACCESS_ERROR = 4


@dataclass(frozen=True)
class MemTxAttrs:
    """QEMU's MemTxAttrs; `unspecified` marks MEMTXATTRS_UNSPECIFIED.

    `space` is Arm's security space (0 secure, 1 non-secure, ...);
    `memory` says the access is known to target memory, not a device.

    Raises:
        ArgumentTypeError: (constructing) a flag that is not a bool, or `space`,
            `requester_id`, `pid` that are not ints.
        InvalidArgumentError: (constructing) `space` outside 0..3,
            `requester_id` outside 0..0xffff, `pid` outside 0..0xff.
    """

    unspecified: bool = False
    secure: bool = False
    space: int = 0
    user: bool = False
    memory: bool = False
    requester_id: int = 0
    pid: int = 0

    def __post_init__(self) -> None:
        # QEMU's fields are bits and bit-fields: bools stay bools, and the
        # numbers fit their widths (space 2 bits, requester_id 16, pid 8).
        for name in ("unspecified", "secure", "user", "memory"):
            if type(getattr(self, name)) is not bool:
                raise ArgumentTypeError(f"MemTxAttrs: {name} must be a bool, "
                                        f"not {getattr(self, name)!r}")
        for name, bits in (("space", 2), ("requester_id", 16), ("pid", 8)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ArgumentTypeError(f"MemTxAttrs: {name} must be an int, not {value!r}")
            if not 0 <= value < 1 << bits:
                raise InvalidArgumentError(f"MemTxAttrs: {name} {value} does not fit "
                                           f"{bits} bits")


MEMTXATTRS_UNSPECIFIED = MemTxAttrs(unspecified=True)


class MemTxReason(str, enum.Enum):
    """Why an access failed (pymem/buserror.py finds it); the value is a
    short phrase."""

    UNASSIGNED = "nothing mapped"
    INVALID_SIZE = "size outside the device's valid sizes"
    UNALIGNED = "unaligned, and the device refuses unaligned accesses"
    ROM_WRITE = "write to ROM"
    IOMMU_DENIED = "IOMMU permission denied"
    DEVICE_ERROR = "the device answered an error"
    NOT_A_DEVICE = "a load or store running out of memory reached no device"
    UNKNOWN = "not found"


class MemTxError(PymemError):
    """A bus error: `result` is the MemTxResult, `addr` and `size` the access
    (bytes), `is_write` its direction.  Raised by pymem's accesses with
    where and why: `space` (the address space's name), `region` (the name of
    the region that refused the access, None for unassigned space),
    `region_kind`, `offset` (in that region), `reason` (a MemTxReason) and
    `detail` (a sentence); `piece` is (space, address, size) of the failing
    piece, which an IOMMU may have moved into another space.  Those are None
    when not known.  The message is composed when it is printed."""

    def __init__(self, result: MemTxResult, addr: int, size: int,
                 is_write: bool, *, space: Optional[str] = None,
                 region: Optional[str] = None, region_kind: Optional[str] = None,
                 offset: Optional[int] = None, reason: Optional[MemTxReason] = None,
                 detail: Optional[str] = None,
                 piece: Optional[Tuple[Optional[str], int, int]] = None) -> None:
        super().__init__(result, addr, size, is_write)
        self.result = MemTxResult(result)
        self.addr = addr
        self.size = size
        self.is_write = is_write
        self.space = space
        self.region = region
        self.region_kind = region_kind
        self.offset = offset
        self.reason = reason
        self.detail = detail
        self.piece = piece

    def __str__(self) -> str:
        kind = "write" if self.is_write else "read"
        where = f" in address space {self.space!r}" if self.space is not None else ""
        text = (f"{kind} of {self.size} byte{'' if self.size == 1 else 's'} at "
                f"{self.addr:#x}{where}: "
                f"{self.result.name or repr(self.result)}")
        if self.reason is None:
            return text
        if self.region is not None:
            text += f" from {self.region!r} ({self.region_kind})"
            if self.offset is not None:
                text += f" at offset {self.offset:#x}"
        elif self.reason is not MemTxReason.UNKNOWN:
            text += ", unassigned"
        piece = self.piece
        if piece is not None and (piece[0], piece[1]) != (self.space, self.addr):
            text += f" (the piece of {piece[2]} bytes at {piece[1]:#x} in {piece[0]!r})"
        return f"{text}: {self.detail or self.reason.value}"
