"""pymem's exceptions, and the one helper that turns a C status into one of them.

Bad arguments and bad topologies raise ValueError/TypeError subclasses whose
messages name the regions and numbers involved; bus errors raise MemTxError.

The bottom layer (docs/architecture.md): it imports nothing of pymem.

Thread safety:
    Exception classes and two helpers without state: any thread.
"""
from __future__ import annotations

from typing import NoReturn


class PymemError(Exception):
    """Base of every pymem exception."""


class InvalidArgumentError(PymemError, ValueError):
    """An argument, a callback's answer or a file field with a value pymem
    cannot use; the message names the object it was for."""


class IndexOutOfRangeError(PymemError, IndexError):
    """An index past the end of a table (a dispatch's sections or nodes)."""


class OutOfMemoryError(PymemError, MemoryError):
    """Memory for what was asked cannot be had: a buffer for an access's
    size, or C's allocations for a view; the message says for what."""


class ArgumentTypeError(PymemError, TypeError):
    """An argument, a callback's answer or a file field of the wrong type; the
    message names the object it was for."""


class TopologyError(PymemError, ValueError):
    """A region tree or flat-range list that cannot be built as asked."""


class EditDuringCommitError(TopologyError):
    """A topology edit (or a transaction, or destroying an address space) made
    from a memory listener while it is being told of a change.  QEMU forbids
    it; pymem refuses it before anything changes, so the commit being told
    stays whole.  Make the edit once the commit is over instead."""


class IOMMUCycleError(TopologyError):
    """An access whose IOMMU translations do not end (an IOMMU translating into
    its own address space, or a cycle of them): a device-model bug, refused
    after a bounded number of translations instead of hanging."""


class ViewLifetimeError(PymemError, RuntimeError):
    """A FlatView about to be published after it was released (a pymem bug
    caught before it becomes a use-after-free)."""


class RangeOrderError(TopologyError):
    """Flat ranges out of address order, or overlapping."""


class CapacityError(TopologyError):
    """More sections or radix nodes than a dispatch entry can address."""


class DumpParseError(PymemError, ValueError):
    """A QEMU text dump that does not parse; the message names the line."""

    def __init__(self, message: str, lineno: int | None = None, line: str | None = None):
        where = f"line {lineno}: " if lineno is not None else ""
        shown = f": {line.strip()!r}" if line is not None else ""
        super().__init__(f"{where}{message}{shown}")
        self.lineno = lineno
        self.line = line


class RcuError(PymemError, RuntimeError):
    """RCU misuse, such as waiting for a grace period inside a read-side section."""


class ReadOnlyAttributeError(PymemError, AttributeError):
    """Assigning a field that only an edit method may change (`mr.size = n`:
    use `mr.set_size(n)`); the message names the object and the method."""


class SnapshotError(PymemError, ValueError):
    """A snapshot that cannot be restored here (another system's; regions it
    holds are gone or hold memory of another size), or cannot be written to
    a file; the message names the regions.  Raised before anything is written."""


class SnapshotFormatError(SnapshotError):
    """A snapshot file that is not one (no magic), of a version pymem does not
    read, truncated or corrupted (its checksum fails); the message names the
    file and the record.  Nothing is restored from it."""


class NotCopyableError(PymemError, TypeError):
    """copy.copy, copy.deepcopy or pickle of an object that owns C state."""


class Uncopyable:
    """Refuses copy.copy, copy.deepcopy and pickle, naming the object.

    For the classes whose objects own C state (a region's node, a view's
    dispatch, an address space's handle): a copy would share that state while
    C points back at the original object only (a region's node hands C the
    region's address), so the copy outliving the original is a
    use-after-free.  Build a new object instead."""

    __slots__ = ()

    def _refuse_copy(self, how: str) -> NoReturn:
        raise NotCopyableError(f"cannot {how} {self!r}: it owns C state that a copy would "
                               f"share; build a new {type(self).__name__} instead")

    def __copy__(self) -> NoReturn:
        self._refuse_copy("copy")

    def __deepcopy__(self, memo: object) -> NoReturn:
        self._refuse_copy("deep-copy")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        self._refuse_copy("pickle or copy")

    def __reduce__(self) -> NoReturn:
        self._refuse_copy("pickle or copy")


_STATUS_TEXT = {
    1: (OutOfMemoryError, "out of memory"),
    2: (RangeOrderError, "ranges are not in address order or overlap"),
    3: (TopologyError, "range is empty or wraps past 2^64"),
    4: (CapacityError, "more sections than a dispatch entry can address"),
    5: (CapacityError, "more radix nodes than a dispatch entry can address"),
    6: (TopologyError, "page_bits must be between 10 and 16"),
    7: (RuntimeError, "operation not valid in this state"),
    8: (RcuError, "synchronize_rcu() called inside an RCU read-side section"),
    9: (IndexOutOfRangeError, "index out of range"),
    10: (TopologyError, "an alias loop never leaves its window"),
    11: (RcuError, "the process has run out of thread-specific keys (PTHREAD_KEYS_MAX)"),
}


def fail(status: int, context: str) -> NoReturn:
    """Raise the exception for a non-zero C status.

    `status` is a C status code (`pm_status` in csrc/pymem.h), `context` what
    was being done (it starts the message).

    Raises:
        OutOfMemoryError: status 1.
        RangeOrderError: status 2.
        TopologyError: status 3, 6 (page_bits outside 10..16) or 10.
        CapacityError: status 4 or 5.
        RcuError: status 8 or 11.
        IndexOutOfRangeError: status 9.
        RuntimeError: status 7, or a status this module does not know.
    """
    exc_type, text = _STATUS_TEXT.get(status, (RuntimeError, f"C status {status}"))
    raise exc_type(f"{context}: {text}" if context else text)


def check(status: int, context: str = "") -> None:
    """Raise the exception for a non-zero C status; `context` says what was done.

    Raises:
        PymemError: the subclass `fail` names for a non-zero `status` (or
            RuntimeError, see `fail`); nothing for 0.
    """
    if status:
        fail(status, context)
