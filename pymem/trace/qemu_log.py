"""QEMU trace logs (`-trace 'memory_region_ops_*' -trace 'flatview_*'`) read as pymem traces.

QEMU's `log` trace backend prints one event per line, optionally prefixed by
`PID@SECONDS.MICROS:` (with `-msg timestamp=on`).  Two kinds of line matter
for replay (QEMU-SEMANTICS §7): `memory_region_ops_read|write`, one device
callback each (an access wider than the device implements appears as several),
whose address is the region's absolute address through its real parents plus
the offset; and `flatview_new`, which every commit prints once per rebuilt
view, so the last one marks the last topology change.  Every other event is
skipped; a line naming one of these events but not parsing is reported with
its line number and skipped too, so one garbled line does not hide the rest.

It lives in the trace package (pymem/qemu/tracelog.py re-exports it) because
the trace reader sniffs a file's format and must not import the QEMU
formats' package, which sits above the traces.  Knows only text and events.

Thread safety:
    Pure functions of their text: any thread.
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from .format import Access, Commit, Event, Trace, ViewDigest

_PREFIX = r"(?:\d+@\d+\.\d+:)?"
_OPS = re.compile(_PREFIX + r"memory_region_ops_(read|write) cpu (-?\d+) mr (\S+) "
                  r"addr 0x([0-9a-fA-F]+) value 0x([0-9a-fA-F]+) size (\d+)"
                  r"(?: name '(.*)')?\s*$")
_FLATVIEW_NEW = re.compile(_PREFIX + r"flatview_new (\S+) \(root (\S+)\)\s*$")
_EVENT = re.compile(_PREFIX + r"(memory_region_ops_(?:read|write)|flatview_new)\b")


def looks_like_qemu_log(line: str) -> bool:
    """Whether `line` is a QEMU trace event (`name args...`, QEMU's event
    names all hold an underscore), not JSON nor prose.

    Raises nothing.
    """
    return bool(re.match(_PREFIX + r"[a-z0-9]+_[a-z_0-9]+ ", line))


def parse_trace_log(text: str) -> Trace:
    """The accesses and topology changes of a QEMU trace log, in log order.

    Consecutive `flatview_new` lines (destroy lines between them aside) are one
    commit; malformed lines are listed in `Trace.problems` with their numbers.

    Raises nothing: a line naming an event but not parsing goes to
    `Trace.problems` with its line number.
    """
    events: List[Event] = []
    problems: List[Tuple[int, str]] = []
    views: List[ViewDigest] = []
    commit_line = 0
    seq = 0

    def close_commit() -> None:
        nonlocal seq, views
        if views:
            events.append(Commit(seq, tuple(views), line=commit_line))
            seq += 1
            views = []

    lines = text.splitlines()
    # A log whose writer was interrupted ends in a partial line: that one is
    # truncation, not a malformed event.
    cut = len(lines) if text and not text.endswith("\n") else 0
    truncated = False
    for lineno, line in enumerate(lines, 1):
        head = _EVENT.match(line)
        if head is None:
            continue
        name = head.group(1)
        m = (_FLATVIEW_NEW if name == "flatview_new" else _OPS).match(line)
        if m is None:
            # The last line of a log cut mid-write is truncation; any
            # other line naming an event but not parsing is a problem.
            if lineno == cut:
                truncated = True
            else:
                problems.append((lineno, f"malformed {name} line: {line.strip()!r}"))
            continue
        if name == "flatview_new":
            if not views:
                commit_line = lineno
            views.append(ViewDigest(spaces=(), root=_pointer(m.group(2)), digest=None,
                                    ranges=None, view=_pointer(m.group(1))))
            continue
        size = int(m.group(6))
        if size not in (1, 2, 4, 8):
            problems.append((lineno, f"access size {size} is not 1, 2, 4 or 8"))
            continue
        addr = int(m.group(4), 16)
        if addr + size > 1 << 64:
            problems.append((lineno, f"access of {size} bytes at {addr:#x} runs past 2^64"))
            continue
        close_commit()
        events.append(Access(space=None, op=m.group(1), addr=addr, size=size,
                             value=int(m.group(5), 16), region=m.group(7),
                             cpu=int(m.group(2)), line=lineno))
    close_commit()
    return Trace(header=None, events=events, truncated=truncated, source="qemu",
                 problems=problems)


def _pointer(text: str) -> Optional[str]:
    """A `%p` as printed by glibc: `(nil)` is NULL."""
    return None if text == "(nil)" else text
