"""Reading a trace file back: a pymem trace, or a QEMU trace log (sniffed).

QEMU trace logs (qemu_log.py) read into the same events.  Knows files and
the format; no address space, no replay.

Thread safety:
    Pure functions of their input (a file is read once, whole): any thread.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from .format import FORMAT, VERSION, Event, PathLike, Trace, TraceFormatError, decode_event
from .qemu_log import looks_like_qemu_log, parse_trace_log


def parse_trace(raw: bytes) -> Trace:
    """A pymem trace from its bytes.  Bytes after the last newline are a line
    cut short: ignored, and the trace marked truncated, as it is when the
    end line is missing.  A complete line that does not parse is an error.

    Raises:
        TraceFormatError: a complete line that is not a JSON object or not an
            event, a header that is not pymem's or of a newer version, an event
            after the end line; the message names the line.
    """
    body, newline, tail = raw.rpartition(b"\n")
    if not newline:
        # Cut inside the header line (the writer writes it at once, so only
        # a cut makes this): nothing to read, and it says so.
        return Trace(header=None, events=[], truncated=True)
    truncated = bool(tail)
    lines = body.split(b"\n")
    events: List[Event] = []
    header: Optional[Dict[str, Any]] = None
    ended = False
    for lineno, text in enumerate(lines, 1):
        try:
            obj = json.loads(text)
        except ValueError:
            raise TraceFormatError("not a JSON object", lineno) from None
        if lineno == 1:
            header = _check_header(obj)
            continue
        if ended:
            raise TraceFormatError("event after the end line", lineno)
        if isinstance(obj, dict) and obj.get("type") == "end":
            ended = True
            continue
        events.append(decode_event(obj, lineno))
    return Trace(header=header, events=events, truncated=truncated or not ended)


def _check_header(obj: Any) -> Dict[str, Any]:
    if not isinstance(obj, dict) or obj.get("type") != "header" or obj.get("format") != FORMAT:
        raise TraceFormatError(f"first line is not a {FORMAT} header", 1)
    version = obj.get("version")
    if not isinstance(version, int) or version < 1:
        raise TraceFormatError(f"bad format version {version!r}", 1)
    if version > VERSION:
        raise TraceFormatError(f"trace format version {version} is newer than this "
                               f"pymem reads ({VERSION})", 1)
    return obj


def load_trace(path: PathLike) -> Trace:
    """A trace file in either format: a pymem trace, or a QEMU trace log.

    Raises:
        TraceFormatError: `path` cannot be read, is neither format, or a line of
            a pymem trace does not parse (the message names the file and line).
            Malformed lines of a QEMU log are not errors: they are listed in
            `Trace.problems`.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TraceFormatError(f"cannot read {path}: {exc.strerror}") from None
    # A UTF-8 byte order mark (an editor's, or a tool's that wrote the log)
    # is not part of the first line.
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if raw.lstrip()[:1] == b"{":
        try:
            return parse_trace(raw)
        except TraceFormatError as exc:
            raise TraceFormatError(f"{path}: {exc}") from None
    text = raw.decode("utf-8", errors="replace")
    # QEMU's log backend shares stderr with QEMU's own messages (warnings,
    # blank lines): an event among the first lines is enough.
    head = text.split("\n", _SNIFF_LINES)[:_SNIFF_LINES]
    if not any(looks_like_qemu_log(line) for line in head):
        raise TraceFormatError(f"{path} is neither a {FORMAT} trace nor a QEMU trace log "
                               f"(no trace event in its first {_SNIFF_LINES} lines)")
    return parse_trace_log(text)


# How many lines of a file load_trace reads to tell a QEMU trace log.
_SNIFF_LINES = 64
