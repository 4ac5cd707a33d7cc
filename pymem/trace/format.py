"""The pymem trace format: its events, the digests of views, and one line per event.

What a trace holds (docs/guides/traces.md): a header line with the format
version, one JSON object per line for each event (an `Access`, or a `Commit`
with the digest of every FlatView), an end line when the recording closes.
This module is the vocabulary every other part of pymem/trace/ speaks: the
event types, `encode_event`/`decode_event` for one line, and the digest of a
view.  It knows nothing of files, address spaces' access paths or replays.

Thread safety:
    Events (`Access`, `Commit`, `ViewDigest`) are frozen values and the
    functions here keep no state: any thread.  A `Trace` is a plain mutable
    container: share it between threads only to read it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

from ..errors import PymemError
from ..memtx import MemTxAttrs

if TYPE_CHECKING:
    from ..address_space import MemorySystem
    from ..flatview import FlatView


FORMAT = "pymem-trace"
VERSION = 1
READ = "read"
WRITE = "write"

PathLike = Union[str, Path]


class TraceFormatError(PymemError, ValueError):
    """A trace that cannot be read; the message names the line."""

    def __init__(self, message: str, lineno: Optional[int] = None) -> None:
        super().__init__(f"line {lineno}: {message}" if lineno is not None else message)
        self.lineno = lineno


# ------------------------------------------------------------------ events

class TraceWriteError(PymemError, OSError):
    """A trace file that cannot be created or written (errno, strerror and
    filename as OSError's)."""


@dataclass(frozen=True)
class ViewDigest:
    """One FlatView at a commit: the address spaces on it, its root region's
    name, its range count and digest (`flatview_digest`).  QEMU logs give only
    pointers: `root` and `view` are then QEMU's `%p` and the digest is None."""

    spaces: Tuple[str, ...]
    root: Optional[str]
    digest: Optional[str]
    ranges: Optional[int]
    view: Optional[str] = None


@dataclass(frozen=True)
class Commit:
    """A topology commit: the views current after it.  `line` is where it
    was read from (0 for events not read from a file)."""

    seq: int
    views: Tuple[ViewDigest, ...]
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Access:
    """One access to one region, as its device or memory saw it.

    `value` is an MMIO access's value in the device's byte order; `data` the
    bytes of a RAM or ROM access.  `region` is None for unassigned space.
    `space` and `offset` are None in QEMU logs, which give neither; `cpu` is
    QEMU's cpu index there (-1 for DMA) and None in pymem traces.
    """

    space: Optional[str]
    op: str
    addr: int
    size: int
    value: Optional[int] = None
    data: Optional[bytes] = None
    attrs: Optional[MemTxAttrs] = None
    result: int = 0
    region: Optional[str] = None
    offset: Optional[int] = None
    cpu: Optional[int] = None
    line: int = field(default=0, compare=False)

    @property
    def mmio(self) -> bool:
        """Whether a device callback saw this access (it carries a value)."""
        return self.value is not None

    def describe(self) -> str:
        """One line for reports: op, size, address, region, payload.

        Raises nothing.
        """
        where = f" in {self.space!r}" if self.space is not None else ""
        region = f" -> {self.region!r}" if self.region is not None else " -> unassigned"
        if self.offset is not None:
            region += f" +{self.offset:#x}"
        if self.value is not None:
            payload = f" value {self.value:#x}"
        elif self.data is not None:
            shown = self.data[:16].hex()
            payload = f" data {shown}{'...' if len(self.data) > 16 else ''}"
        else:
            payload = ""
        result = f" result {self.result}" if self.result else ""
        return f"{self.op:<5} {self.size} @ {self.addr:#x}{where}{region}{payload}{result}"


Event = Union[Access, Commit]


@dataclass
class Trace:
    """A trace read back: header (None for QEMU logs, or when cut inside it),
    events in order, whether it was cut short, and the malformed lines of a
    QEMU log (line number, message)."""

    header: Optional[Dict[str, Any]]
    events: List[Event]
    truncated: bool
    source: str = FORMAT
    problems: List[Tuple[int, str]] = field(default_factory=list)

    @property
    def accesses(self) -> List[Access]:
        """The access events, in trace order (commits left out)."""
        return [e for e in self.events if isinstance(e, Access)]


# ------------------------------------------------------------------ digests

def _range_line(fr: Any) -> str:
    kind = "rom" if fr.readonly else fr.region.type_name()
    return (f"{fr.addr:016x}-{fr.addr + fr.size - 1:016x} {kind}: {fr.region.name} "
            f"@{fr.offset_in_region:016x}\n")


def flatview_digest(view: "FlatView") -> str:
    """BLAKE2b-128 (hex) of the view's ranges printed one per line, in address
    order, as `START-LAST TYPE: NAME @OFFSET` (16 hex digits each, TYPE as
    `info mtree -f` prints it).  Names, not ids, so two processes agree.

    Raises nothing.

    Thread safety:
        Any thread; reads the view's ranges, which never change once rendered
        (hold the view, or call it from the committing thread, to keep it from
        being released meanwhile).
    """
    h = hashlib.blake2b(digest_size=16)
    for fr in view.ranges:
        h.update(_range_line(fr).encode())
    return h.hexdigest()


def view_digests(system: "MemorySystem") -> Tuple[ViewDigest, ...]:
    """A digest of every current FlatView of `system`, with its address spaces.

    Raises nothing.

    Thread safety:
        Reads the system's current views without its writer lock: call it from
        the thread that edits the system (a commit listener, as the recorder
        does), or while no other thread commits.
    """
    return tuple(ViewDigest(spaces=tuple(asp.name for asp in spaces),
                            root=view.root.name if view.root is not None else None,
                            digest=flatview_digest(view), ranges=len(view.ranges))
                 for view, spaces in system.flatviews().items())


# ------------------------------------------------------------------ encoding

def _attrs_json(attrs: Optional[MemTxAttrs]) -> str:
    if attrs is None or attrs.unspecified:
        return "null"
    default = MemTxAttrs()
    return json.dumps({k: getattr(attrs, k) for k in MemTxAttrs.__dataclass_fields__
                       if getattr(attrs, k) != getattr(default, k)},
                      separators=(",", ":"))


def _attrs_from(obj: Any, lineno: int) -> Optional[MemTxAttrs]:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise TraceFormatError("attrs must be an object or null", lineno)
    try:
        return MemTxAttrs(**obj)
    except (TypeError, ValueError) as exc:
        raise TraceFormatError(f"bad attrs: {exc}", lineno) from None


def encode_event(event: Event) -> str:
    """One event as its trace line (with the newline).

    Raises nothing.
    """
    if isinstance(event, Commit):
        views = [{"spaces": list(v.spaces), "root": v.root, "ranges": v.ranges,
                  "digest": v.digest} for v in event.views]
        return json.dumps({"type": "commit", "seq": event.seq, "views": views},
                          separators=(",", ":")) + "\n"
    return _access_line(event.space, event.op, event.addr, event.size, event.value,
                        event.data, event.attrs, event.result, event.region, event.offset)


def _access_line(space: Optional[str], op: str, addr: int, size: int, value: Optional[int],
                 data: Optional[bytes], attrs: Optional[MemTxAttrs], result: int,
                 region: Optional[str], offset: Optional[int]) -> str:
    # Formatted by hand, not json.dumps: this runs once per recorded access.
    payload = (f'"value":"{value:#x}"' if value is not None
               else f'"data":"{data.hex() if data is not None else ""}"')
    return (f'{{"type":"access","space":{json.dumps(space)},"op":"{op}",'
            f'"addr":"{addr:#x}","size":{size},{payload},"attrs":{_attrs_json(attrs)},'
            f'"result":{int(result)},"region":{json.dumps(region)},'
            f'"offset":{"null" if offset is None else chr(34) + hex(offset) + chr(34)}}}\n')


def _hex(obj: Dict[str, Any], key: str, lineno: int) -> int:
    text = obj.get(key)
    if not isinstance(text, str) or not text.startswith("0x"):
        raise TraceFormatError(f"{key} must be a hex string like \"0x1f\", not {text!r}",
                               lineno)
    try:
        return int(text, 16)
    except ValueError:
        raise TraceFormatError(f"{key} {text!r} is not hex", lineno) from None


def decode_event(obj: Any, lineno: int = 0) -> Event:
    """The event a parsed trace line holds.

    `obj` is a parsed JSON line; `lineno` (from 1) only goes into messages.
    Addresses and offsets must lie in [0, 2^64), sizes are positive byte counts
    (1, 2, 4 or 8 with a value), results MemTxResult integers 0..7.

    Raises:
        TraceFormatError: `obj` is not an event: not an object, an unknown type,
            a missing or malformed field, a value out of its range; the message
            names the line and the field.
    """
    if not isinstance(obj, dict):
        raise TraceFormatError("a trace line must hold a JSON object", lineno)
    kind = obj.get("type")
    if kind == "commit":
        views = obj.get("views")
        if not isinstance(views, list):
            raise TraceFormatError("commit views must be a list", lineno)
        try:
            return Commit(int(obj["seq"]),
                          tuple(ViewDigest(tuple(v["spaces"]), v["root"], v["digest"],
                                           v["ranges"]) for v in views), line=lineno)
        except (KeyError, TypeError, ValueError) as exc:
            raise TraceFormatError(f"malformed commit: {exc!r}", lineno) from None
    if kind != "access":
        raise TraceFormatError(f"unknown event type {kind!r}", lineno)
    op = obj.get("op")
    if op not in (READ, WRITE):
        raise TraceFormatError(f"op must be \"read\" or \"write\", not {op!r}", lineno)
    size = obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise TraceFormatError(f"size must be a positive integer, not {size!r}", lineno)
    value = _hex(obj, "value", lineno) if obj.get("value") is not None else None
    data = None
    if value is not None and size not in (1, 2, 4, 8):
        # Checked here, not at replay: a huge size would be turned into a
        # mask or a buffer of that many bytes before the access refused it.
        raise TraceFormatError(f"an access with a value has size 1, 2, 4 or 8, not {size}",
                               lineno)
    if value is None:
        if not isinstance(obj.get("data"), str):
            raise TraceFormatError("an access needs a value or data", lineno)
        try:
            data = bytes.fromhex(obj["data"])
        except ValueError:
            raise TraceFormatError("data is not hex bytes", lineno) from None
        if len(data) != size:
            raise TraceFormatError(f"data holds {len(data)} bytes, size is {size}", lineno)
    space, region = obj.get("space"), obj.get("region")
    for key, val in (("space", space), ("region", region)):
        if val is not None and not isinstance(val, str):
            raise TraceFormatError(f"{key} must be a string or null", lineno)
    result = obj.get("result", 0)
    if not isinstance(result, int) or isinstance(result, bool) or not 0 <= result <= 7:
        raise TraceFormatError(f"result must be a MemTxResult integer, not {result!r}",
                               lineno)
    addr = _hex(obj, "addr", lineno)
    if addr + size > 1 << 64:
        raise TraceFormatError(f"an access of {size} bytes at {addr:#x} runs past 2^64",
                               lineno)
    offset = _hex(obj, "offset", lineno) if obj.get("offset") is not None else None
    if offset is not None and offset >= 1 << 64:
        raise TraceFormatError(f"offset {offset:#x} is beyond 2^64", lineno)
    return Access(space=space, op=op, addr=addr, size=size,
                  value=value, data=data, attrs=_attrs_from(obj.get("attrs"), lineno),
                  result=result, region=region, offset=offset, line=lineno)
