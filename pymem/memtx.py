"""Memory transactions: the attributes an access carries and the answer it gets.

QEMU tags every bus access with MemTxAttrs (secure world, user mode, the
requester's id, ...) and every access answers a MemTxResult, a set of error
bits OR-ed over the pieces an access was split into.  pymem keeps both, so a
device model written against QEMU's API finds the same names here, and
MemTxError carries the result of an access that the caller asked to raise.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

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


class MemTxError(PymemError):
    """A bus error: `result` is the MemTxResult, `addr` and `size` the access."""

    def __init__(self, result: MemTxResult, addr: int, size: int,
                 is_write: bool) -> None:
        self.result = MemTxResult(result)
        self.addr = addr
        self.size = size
        self.is_write = is_write
        kind = "write" if is_write else "read"
        super().__init__(f"{kind} of {size} bytes at {addr:#x}: {self.result!r}")
