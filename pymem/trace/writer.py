"""Writing a trace file: whole lines, flushed in batches.

An interrupted run leaves a trace that is valid up to its last complete line
(the reader says the end line is missing).  Knows the format (format.py),
not where the events come from.

Thread safety:
    A `TraceWriter` may be fed from several threads (accesses of recorded
    spaces come from whichever thread made them): queuing a line is one
    list append, atomic under the GIL, and writing out holds the writer's
    lock.  `close` must come after the last line is queued.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence

from ..memtx import MemTxAttrs
from .format import (FORMAT, VERSION, Commit, Event, PathLike, TraceWriteError, _access_line,
                     encode_event)


class TraceWriter:
    """Writes a trace: the header at once, events in whole lines, buffered.

    The buffer is written out every `batch` lines and on `flush`/`close`, one
    `write` of whole lines each time, so a crash loses at most the unflushed
    batch and never leaves a line that parses as something it was not.

    `path` is created or truncated at once and the header written; `batch`
    (lines, >= 1) is how many queued lines trigger a write.

    Raises:
        TraceWriteError: `path` cannot be created or written (its errno,
            strerror and filename).
    """

    def __init__(self, path: PathLike, header: Optional[Dict[str, Any]] = None,
                 batch: int = 4096) -> None:
        self.path = Path(path)
        try:
            self._file: Optional[IO[str]] = open(self.path, "w", encoding="ascii")
        except OSError as exc:
            raise TraceWriteError(exc.errno, f"cannot write trace: "
                                  f"{exc.strerror}", str(self.path)) from None
        self._buf: List[str] = []
        self._batch = batch
        self._lock = threading.Lock()
        self.accesses = 0
        self.commits = 0
        head = {"type": "header", "format": FORMAT, "version": VERSION}
        head.update(header or {})
        self._file.write(json.dumps(head, separators=(",", ":")) + "\n")
        self._file.flush()

    def line(self, text: str) -> None:
        """Queue one encoded line (see `encode_event`).

        Raises:
            OSError: writing out a full batch failed (a full disk).
        """
        buf = self._buf
        buf.append(text)
        if len(buf) >= self._batch:
            self.flush()

    def event(self, event: Event) -> None:
        """Queue one event (a Commit or an Access), counted for the end line.

        Raises:
            OSError: writing out a full batch failed (a full disk).
        """
        if isinstance(event, Commit):
            self.commits += 1
        else:
            self.accesses += 1
        self.line(encode_event(event))

    def access(self, space: Optional[str], op: str, addr: int, size: int,
               value: Optional[int], data: Optional[bytes], attrs: Optional[MemTxAttrs],
               result: int, region: Optional[str], offset: Optional[int]) -> None:
        """Queue one access line from its fields, without building an Access
        (the recorder's hot path): `value` for a device access, `data` for
        plain memory; `region` None for unassigned space.  Queuing is one
        list append (atomic under the GIL); writing out takes the writer's
        lock (`flush`).

        Raises:
            OSError: writing out a full batch failed (a full disk).
        """
        self.accesses += 1
        self.line(_access_line(space, op, addr, size, value, data, attrs, result, region,
                               offset))

    def flush(self) -> None:
        """Write out every queued line.

        Raises:
            OSError: the file cannot be written (a full disk).
        """
        with self._lock:
            buf = self._buf
            n = len(buf)
            if n and self._file is not None:
                # The same list stays in use (recorders append to it without
                # a lock): take the first n lines, later appends stay queued.
                text = "".join(buf[:n])
                del buf[:n]
                self._file.write(text)
                self._file.flush()

    def close(self) -> None:
        """Flush, write the end line (its absence marks an interrupted run), close.

        Idempotent: closing a closed writer does nothing.

        Raises:
            OSError: the file cannot be written (a full disk).
        """
        if self._file is None:
            return
        self.line(json.dumps({"type": "end", "accesses": self.accesses,
                              "commits": self.commits}, separators=(",", ":")) + "\n")
        self.flush()
        self._file.close()
        self._file = None

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_trace(path: PathLike, events: Sequence[Event],
                header: Optional[Dict[str, Any]] = None) -> None:
    """Write `events` as a complete trace.

    Raises:
        TraceWriteError: `path` cannot be created or written.
        OSError: writing a batch failed (a full disk).
    """
    with TraceWriter(path, header) as writer:
        for event in events:
            writer.event(event)
