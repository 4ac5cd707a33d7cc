"""Recording the accesses of address spaces into a trace.

A recorder is one access tap (pymem/taps.py) on each recorded space: device
accesses always, plain RAM and ROM pieces too unless `mmio_only`.  A commit
listener writes a commit event after every topology commit.

Thread safety:
    Accesses of recorded spaces may come from any thread: each is one line
    queued on the writer (see `TraceWriter`).  `start`, `stop` and `record`
    edit the spaces' taps and listeners: call them from the thread that
    edits the system, not while another thread commits.  Commit events are
    written from the committing thread.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import (TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple,
                    Union)

from ..errors import InvalidArgumentError, PymemError
from ..listener import MemoryListener
from ..memtx import MemTxAttrs
from ..region import MemoryRegion
from .format import READ, WRITE, Commit, PathLike, _attrs_json, view_digests
from .writer import TraceWriter

if TYPE_CHECKING:
    from ..address_space import AddressSpace


class _CommitListener(MemoryListener):
    """Writes a commit event after each commit, while it has a recorder."""

    def __init__(self, recorder: "Recorder") -> None:
        self.recorder: Optional[Recorder] = recorder

    def commit(self) -> None:
        if self.recorder is not None:
            self.recorder.commit()


class Recorder:
    """Records the accesses of address spaces into a TraceWriter.

    Each recorded space gets a tap: with `mmio_only` (the default) it sees
    only device accesses and unassigned space, so plain memory keeps its
    one-C-call path; otherwise RAM and ROM pieces are recorded too.
    A commit event (the digests of every view) opens the trace and follows
    every commit.  Accesses through an IOMMU are recorded in the target
    space, when that space is recorded; `map`/`unmap` DMA is not recorded.

    `spaces` (at least one) must all belong to one MemorySystem, checked by
    `start`.

    Raises:
        InvalidArgumentError: `spaces` is empty.
    """

    def __init__(self, writer: TraceWriter, spaces: Sequence["AddressSpace"],
                 mmio_only: bool = True) -> None:
        if not spaces:
            raise InvalidArgumentError("record: no address space given")
        self.writer = writer
        self.spaces = list(spaces)
        self.system = self.spaces[0].system
        self.mmio_only = mmio_only
        self._seq = 0
        self._listener: Optional[_CommitListener] = None
        self._pieces: Dict[Tuple[str, bool, Optional[int]], Tuple[str, str]] = {}
        self._taps: List[Any] = []

    def start(self) -> None:
        """Attach to the spaces; writes the opening commit event.

        Raises:
            PymemError: a space belongs to another MemorySystem, or is already being
                recorded or replayed.
            EditDuringCommitError: called from a listener being told of a change.
        """
        for asp in self.spaces:
            if asp.system is not self.system:
                raise PymemError(f"record: address space {asp.name!r} belongs to another "
                                 f"MemorySystem")
            if asp._recorder is not None:
                raise PymemError(f"address space {asp.name!r} is already being recorded "
                                 f"or replayed")
        listener = _CommitListener(self)
        self._listener = listener
        # Registering replays the current view to the listener, which ends
        # in commit(): that writes the opening commit event.
        self.spaces[0].register_listener(listener)
        for asp in self.spaces:
            asp._recorder = self
            self._taps.append(asp.add_tap(self._on_access, mmio_only=self.mmio_only))

    def stop(self) -> None:
        """Detach from the spaces and close the trace (writing its end line).

        The trace is always closed with every access recorded so far, even
        if a recorded space was destroyed meanwhile (a hot-unplugged device)
        or its commit listener was unregistered by someone else.

        Raises:
            OSError: the end of the trace cannot be written (the spaces are
                detached all the same).
        """
        try:
            for asp in self.spaces:
                if asp._recorder is self:
                    asp._recorder = None
            for tap in self._taps:
                tap.remove()
            self._taps = []
            if self._listener is not None:
                listener, self._listener = self._listener, None
                # Detach first: unregistering ends in a commit() of its own.
                listener.recorder = None
                first = self.spaces[0]
                # destroy() has unregistered it already, or the user did.
                if any(listener is other for other in first.listeners):
                    first.unregister_listener(listener)
        finally:
            self.writer.close()

    def commit(self) -> None:
        """A commit event with the digest of every current view.

        Raises:
            OSError: writing out a full batch failed.
        """
        self.writer.event(Commit(self._seq, view_digests(self.system)))
        self._seq += 1

    def _on_access(self, event: Any) -> None:
        """The tap: one piece of an access (pymem.taps.AccessEvent)."""
        if event.mmio:
            self.mmio(event.space, event.addr, event.region, event.offset, event.size,
                      event.value, event.is_write, event.attrs, event.result)
        else:
            self.memory(event.space, event.addr, event.region, event.offset, event.data,
                        event.is_write, event.attrs)

    def mmio(self, space: Any, addr: int, region: Optional[MemoryRegion], offset: int,
             size: int, value: int, is_write: bool, attrs: Optional[MemTxAttrs],
             result: int) -> None:
        """One device access (or unassigned piece): the hot path of
        recording, so the line is built from cached pieces.

        `addr` and `offset` are byte addresses, `size` bytes (1..8), `value` the
        device's value, `result` a MemTxResult.

        Raises:
            OSError: writing out a full batch failed.
        """
        key = (space.name, is_write, region.id if region is not None else None)
        pieces = self._pieces.get(key)
        if pieces is None:
            pieces = self._pieces[key] = self._line_pieces(space.name, is_write, region)
        head, tail = pieces
        attrs_text = "null" if attrs is None or attrs.unspecified else _attrs_json(attrs)
        offset_text = f'"{offset:#x}"' if region is not None else "null"
        writer = self.writer
        writer.accesses += 1
        buf = writer._buf
        buf.append(f'{head}{addr:#x}","size":{size},"value":"{value:#x}","attrs":{attrs_text},'
                   f'"result":{int(result)},{tail}{offset_text}}}\n')
        if len(buf) >= writer._batch:
            writer.flush()

    @staticmethod
    def _line_pieces(space: str, is_write: bool, region: Optional[MemoryRegion]
                     ) -> Tuple[str, str]:
        """The constant parts of an access line, as `_access_line` writes them."""
        op = WRITE if is_write else READ
        name = json.dumps(region.name) if region is not None else "null"
        return (f'{{"type":"access","space":{json.dumps(space)},"op":"{op}","addr":"',
                f'"region":{name},"offset":')

    def memory(self, space: Any, addr: int, region: MemoryRegion, offset: int,
               data: Union[bytes, memoryview], is_write: bool,
               attrs: Optional[MemTxAttrs]) -> None:
        """One plain RAM or ROM piece.

        Raises:
            OSError: writing out a full batch failed.
        """
        self.writer.access(space.name, WRITE if is_write else READ, addr, len(data), None,
                           bytes(data), attrs, 0, region.name, offset)


@contextmanager
def record(spaces: Union["AddressSpace", List["AddressSpace"], Tuple["AddressSpace", ...]],
           path: PathLike, mmio_only: bool = True, batch: int = 4096) -> Iterator[Recorder]:
    """Record the accesses of one or more address spaces (of one system) to
    `path` while the block runs; the trace is complete when it exits.

    `spaces` is one AddressSpace or a list of them; `batch` as for
    `TraceWriter`.  The trace is closed (with its end line) even when the block
    raises.

    Raises:
        InvalidArgumentError: no address space given.
        TraceWriteError: `path` cannot be created.
        PymemError: a space belongs to another system or is already being
            recorded or replayed.
        EditDuringCommitError: called from a listener being told of a change.
    """
    spaces = [spaces] if not isinstance(spaces, (list, tuple)) else list(spaces)
    if not spaces:
        raise InvalidArgumentError("record: no address space given")
    system = spaces[0].system
    header = {"page_bits": system.page_bits, "mmio_only": mmio_only,
              "spaces": [asp.name for asp in spaces]}
    recorder = Recorder(TraceWriter(path, header, batch), spaces, mmio_only)
    try:
        recorder.start()
    except BaseException:
        recorder.writer.close()
        raise
    try:
        yield recorder
    finally:
        recorder.stop()


# Fixed-width accessor names -> (size, big-endian, is a store).
