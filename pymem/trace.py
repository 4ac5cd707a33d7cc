"""Access traces: record what an address space was asked, replay it, compare two runs.

An emulator author records the accesses of a run, changes the memory map or
a device, replays, and wants the first divergence pointed out; someone porting
a device from QEMU wants to know that the same guest produces the same MMIO
traffic in both.  So a trace holds, per access, where it went (address space,
address, region, offset in region) and what it carried (value or bytes,
attributes, MemTxResult), and per topology commit a digest of every FlatView,
so a replay knows when the map it runs against is not the recorded one.

The format is JSON Lines (README.md, "Traces"): a header line with the format
version, one event per line, an end line when the recording closes.  Lines are
written whole and flushed in batches, so an interrupted run leaves a trace that
is valid up to its last complete line; the reader says when the end line is
missing.  QEMU trace logs (pymem/qemu/tracelog.py) read into the same events.

Replay routes every access through the C dispatch of a machine, answers MMIO
reads with the recorded values (stub devices) unless real ops are kept,
checks RAM reads against the recorded bytes, and reports each divergence with
the commit it came after.
"""
from __future__ import annotations

import hashlib
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import (IO, TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional,
                    Sequence, Tuple, Union)

from .errors import InvalidArgumentError, PymemError
from .listener import MemoryListener
from .memtx import MemTxAttrs
from .region import MemoryRegion

if TYPE_CHECKING:
    from .address_space import AddressSpace, MemorySystem
    from .flatview import FlatView

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
        """One line for reports: op, size, address, region, payload."""
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
        return [e for e in self.events if isinstance(e, Access)]


# ------------------------------------------------------------------ digests

def _range_line(fr: Any) -> str:
    kind = "rom" if fr.readonly else fr.region.type_name()
    return (f"{fr.addr:016x}-{fr.addr + fr.size - 1:016x} {kind}: {fr.region.name} "
            f"@{fr.offset_in_region:016x}\n")


def flatview_digest(view: "FlatView") -> str:
    """BLAKE2b-128 (hex) of the view's ranges printed one per line, in address
    order, as `START-LAST TYPE: NAME @OFFSET` (16 hex digits each, TYPE as
    `info mtree -f` prints it).  Names, not ids, so two processes agree."""
    h = hashlib.blake2b(digest_size=16)
    for fr in view.ranges:
        h.update(_range_line(fr).encode())
    return h.hexdigest()


def view_digests(system: "MemorySystem") -> Tuple[ViewDigest, ...]:
    """A digest of every current FlatView of `system`, with its address spaces."""
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
    """One event as its trace line (with the newline)."""
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
    """The event a parsed trace line holds."""
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


# ------------------------------------------------------------------ writing

class TraceWriter:
    """Writes a trace: the header at once, events in whole lines, buffered.

    The buffer is written out every `batch` lines and on `flush`/`close`, one
    `write` of whole lines each time, so a crash loses at most the unflushed
    batch and never leaves a line that parses as something it was not.
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
        """Queue one encoded line (see `encode_event`)."""
        buf = self._buf
        buf.append(text)
        if len(buf) >= self._batch:
            self.flush()

    def event(self, event: Event) -> None:
        if isinstance(event, Commit):
            self.commits += 1
        else:
            self.accesses += 1
        self.line(encode_event(event))

    def access(self, space: Optional[str], op: str, addr: int, size: int,
               value: Optional[int], data: Optional[bytes], attrs: Optional[MemTxAttrs],
               result: int, region: Optional[str], offset: Optional[int]) -> None:
        self.accesses += 1
        self.line(_access_line(space, op, addr, size, value, data, attrs, result, region,
                               offset))

    def flush(self) -> None:
        """Write out every queued line."""
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
        """Flush, write the end line (its absence marks an interrupted run), close."""
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
    """Write `events` as a complete trace."""
    with TraceWriter(path, header) as writer:
        for event in events:
            writer.event(event)


# ------------------------------------------------------------------ reading

def parse_trace(raw: bytes) -> Trace:
    """A pymem trace from its bytes.  Bytes after the last newline are a line
    cut short: ignored, and the trace marked truncated, as it is when the
    end line is missing.  A complete line that does not parse is an error."""
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
    """A trace file in either format: a pymem trace, or a QEMU trace log."""
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
    from .qemu.tracelog import looks_like_qemu_log, parse_trace_log

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


# ------------------------------------------------------------------ recording

class _CommitListener(MemoryListener):
    """Writes a commit event after each commit, while it has a recorder."""

    def __init__(self, recorder: "Recorder") -> None:
        self.recorder: Optional[Recorder] = recorder

    def commit(self) -> None:
        if self.recorder is not None:
            self.recorder.commit()


class Recorder:
    """Records the accesses of address spaces into a TraceWriter.

    Device accesses reach `mmio` through the access path's hook, so plain
    memory costs nothing extra; with `mmio_only` False, the space's `rw`,
    `load`, `store` and fixed-width loads and stores are replaced on the
    instance, while recording, by wrappers that also record RAM and ROM.
    A commit event (the digests of every view) opens the trace and follows
    every commit.  Accesses through an IOMMU are recorded in the target
    space, when that space is recorded; `map`/`unmap` DMA is not recorded.
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
        self._hidden: Dict[int, Dict[str, Any]] = {}

    def start(self) -> None:
        """Attach to the spaces; writes the opening commit event."""
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
            if not self.mmio_only:
                self._hidden[id(asp)] = _install_ram_wrappers(asp, self)

    def stop(self) -> None:
        """Detach from the spaces and close the trace (writing its end line).

        The trace is always closed with every access recorded so far, even
        if a recorded space was destroyed meanwhile (a hot-unplugged device)
        or its commit listener was unregistered by someone else."""
        try:
            for asp in self.spaces:
                if asp._recorder is self:
                    asp._recorder = None
                if id(asp) in self._hidden:
                    _remove_ram_wrappers(asp, self._hidden.pop(id(asp)))
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
        """A commit event with the digest of every current view."""
        self.writer.event(Commit(self._seq, view_digests(self.system)))
        self._seq += 1

    def mmio(self, space: Any, addr: int, region: Optional[MemoryRegion], offset: int,
             size: int, value: int, is_write: bool, attrs: Optional[MemTxAttrs],
             result: int) -> None:
        """One device access (the access path's hook): the hot path of
        recording, so the line is built from cached pieces."""
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
        """One plain RAM or ROM piece (the RAM wrappers)."""
        self.writer.access(space.name, WRITE if is_write else READ, addr, len(data), None,
                           bytes(data), attrs, 0, region.name, offset)


@contextmanager
def record(spaces: Union["AddressSpace", List["AddressSpace"], Tuple["AddressSpace", ...]],
           path: PathLike, mmio_only: bool = True, batch: int = 4096) -> Iterator[Recorder]:
    """Record the accesses of one or more address spaces (of one system) to
    `path` while the block runs; the trace is complete when it exits."""
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
_FIXED = {
    "ldub": (1, False, False), "lduw_le": (2, False, False), "lduw_be": (2, True, False),
    "ldl_le": (4, False, False), "ldl_be": (4, True, False),
    "ldq_le": (8, False, False), "ldq_be": (8, True, False),
    "stb": (1, False, True), "stw_le": (2, False, True), "stw_be": (2, True, True),
    "stl_le": (4, False, True), "stl_be": (4, True, True),
    "stq_le": (8, False, True), "stq_be": (8, True, True),
}
_WRAPPED = ("read", "write", "rw", "load", "store") + tuple(_FIXED)


def _translate(asp: Any, addr: int, size: int) -> Tuple[Any, Optional[MemoryRegion]]:
    """The access path's view of `addr`: a pm_access (offset in region, bytes
    left in the section, section flags) and its region."""
    from .access import translate_section

    t = translate_section(asp, addr, size)
    return t, t.region


def _install_ram_wrappers(asp: Any, recorder: Recorder) -> Dict[str, Any]:
    """Shadow the instance's access methods with recording ones (RAM
    recording); returns the instance attributes they hid, for restoring."""
    from . import mmio
    from .access import AccessMixin
    from .dispatch import SECTION_IOMMU, SECTION_RAM, SECTION_ROMD
    from .memtx import MemTxError, MemTxResult

    cls_rw, cls_load, cls_store = AccessMixin.rw, AccessMixin.load, AccessMixin.store

    def plain(region: Optional[MemoryRegion], flags: int, is_write: bool) -> bool:
        # What C copies itself, plus RAM writes behind a read-only alias,
        # which are dropped without a device: the pieces the hook never sees.
        if region is None or flags & SECTION_IOMMU:
            return False
        if is_write:
            return bool(flags & SECTION_RAM) and not region.readonly
        return bool(flags & (SECTION_RAM | SECTION_ROMD))

    def rw(addr: int, buffer: Any, is_write: bool,
           attrs: Optional[MemTxAttrs] = None) -> MemTxResult:
        view = memoryview(buffer).cast("B")
        n = view.nbytes
        if not isinstance(addr, int) or addr < 0 or addr + n > 1 << 64 or n == 0:
            return cls_rw(asp, addr, view, is_write, attrs)   # its checks, its errors
        done = 0
        result = MemTxResult.OK
        # Piece by piece, each as its own rw, cut where the real path cuts:
        # plain memory at the end of its section, a device access where
        # QEMU's memory_access_size ends it, so what the devices see is
        # what an unrecorded run gives them.
        while done < n:
            t, region = _translate(asp, addr + done, n - done)
            rest = n - done
            if region is None or not (region.ram_backed or t.flags & SECTION_IOMMU):
                length = mmio.access_size(region.ops if region is not None else None,
                                          rest, t.offset)
            else:
                length = min(t.len, rest)
            piece = view[done:done + length]
            result |= cls_rw(asp, addr + done, piece, is_write, attrs)
            if plain(region, t.flags, is_write):
                assert region is not None
                recorder.memory(asp, addr + done, region, t.offset, piece, is_write, attrs)
            done += length
        return MemTxResult(result)

    def read(addr: int, size: int, attrs: Optional[MemTxAttrs] = None) -> bytes:
        if not isinstance(size, int) or size < 0:
            raise InvalidArgumentError(f"read size must be a non-negative int, not {size!r}")
        buf = bytearray(size)
        r = rw(addr, buf, False, attrs)
        if r:
            raise MemTxError(r, addr, size, False)
        return bytes(buf)

    def write(addr: int, data: Any, attrs: Optional[MemTxAttrs] = None) -> None:
        r = rw(addr, data, True, attrs)
        if r:
            raise MemTxError(r, addr, memoryview(data).nbytes, True)

    def load(addr: int, size: int, big_endian: bool = False,
             attrs: Optional[MemTxAttrs] = None) -> Tuple[int, MemTxResult]:
        t, region = _translate(asp, addr, size)
        value, result = cls_load(asp, addr, size, big_endian, attrs)
        if t.len >= size and plain(region, t.flags, False):
            assert region is not None
            data = value.to_bytes(size, "big" if big_endian else "little")
            recorder.memory(asp, addr, region, t.offset, data, False, attrs)
        return value, result

    def store(addr: int, value: int, size: int, big_endian: bool = False,
              attrs: Optional[MemTxAttrs] = None) -> MemTxResult:
        t, region = _translate(asp, addr, size)
        result = cls_store(asp, addr, value, size, big_endian, attrs)
        if t.len >= size and plain(region, t.flags, True):
            assert region is not None
            data = value.to_bytes(size, "big" if big_endian else "little")
            recorder.memory(asp, addr, region, t.offset, data, True, attrs)
        return result

    def fixed(size: int, big: bool, is_store: bool) -> Callable[..., Any]:
        # The builtins' contract: unspecified attributes, bus errors raised.
        if is_store:
            def st(addr: int, value: int) -> None:
                r = store(addr, value, size, big)
                if r:
                    raise MemTxError(r, addr, size, True)
            return st

        def ld(addr: int) -> int:
            value, r = load(addr, size, big)
            if r:
                raise MemTxError(r, addr, size, False)
            return value
        return ld

    hidden = {name: asp.__dict__[name] for name in _WRAPPED if name in asp.__dict__}
    wrappers: Dict[str, Any] = {"read": read, "write": write, "rw": rw, "load": load,
                                "store": store}
    wrappers.update((name, fixed(*spec)) for name, spec in _FIXED.items())
    for name, fn in wrappers.items():
        setattr(asp, name, fn)
    return hidden


def _remove_ram_wrappers(asp: Any, hidden: Dict[str, Any]) -> None:
    """Back to what the instance had (its bound builtins); accessors it had
    not bound yet rebind on next use."""
    for name in _WRAPPED:
        asp.__dict__.pop(name, None)
    asp.__dict__.update(hidden)


# ------------------------------------------------------------------ replay

@dataclass
class Divergence:
    """An access whose replay differs from the trace: `number` counts the
    replayed accesses from 1; `commit` is the last commit before it."""

    number: int
    access: Access
    kind: str
    expected: str
    got: str
    commit: Optional[Commit]
    context: List[Access]


@dataclass
class ReplayReport:
    """What a replay found.  `skipped` counts accesses of a QEMU log made
    before its last topology change, which no static map can replay; `via_alias`
    those of the replayed ones reached only through an alias."""

    source: str
    truncated: bool
    total: int = 0
    replayed: int = 0
    reads: int = 0
    writes: int = 0
    mmio: int = 0
    memory: int = 0
    skipped: int = 0
    via_alias: int = 0
    divergences: List[Divergence] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    problems: List[Tuple[int, str]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.divergences


class _Observer:
    """Takes the recorder's place on the access path during a replay: keeps
    the device accesses the replayed access caused."""

    def __init__(self) -> None:
        self.seen: List[Tuple[Any, Optional[MemoryRegion], int, int, int, int]] = []

    def mmio(self, space: Any, addr: int, region: Optional[MemoryRegion], offset: int,
             size: int, value: int, is_write: bool, attrs: Any, result: int) -> None:
        self.seen.append((space, region, offset, size, value, int(result)))


class _Stub:
    """The device behind every stubbed region: answers what the trace recorded."""

    def __init__(self) -> None:
        self.value = 0
        self.result = 0

    def read(self, offset: int, size: int, attrs: Any) -> Tuple[int, int]:
        return self.value, self.result

    def write(self, offset: int, value: int, size: int, attrs: Any) -> int:
        return self.result


def absolute_address(region: MemoryRegion) -> int:
    """The region's address through its real parents (never through aliases),
    as QEMU's trace events count it (memory_region_to_absolute_addr)."""
    addr = 0
    mr: Optional[MemoryRegion] = region
    while mr is not None:
        addr += mr.addr
        mr = mr.container
    return addr


def _where(region: Optional[MemoryRegion], offset: Optional[int]) -> str:
    if region is None:
        return "unassigned"
    return f"region {region.name!r} +{offset:#x}" if offset is not None else repr(region.name)


def _expected_where(access: Access) -> str:
    if access.region is None:
        return "unassigned"
    if access.offset is None:
        return f"region {access.region!r} at {access.addr:#x}"
    return f"region {access.region!r} +{access.offset:#x}"


StubChoice = Union[bool, Callable[[MemoryRegion], bool]]


class Replayer:
    """Replays traces against `system`.  `stub` says which device regions are
    answered from the trace (True: all; a predicate: those it accepts); the
    others keep their ops, and their read values are checked."""

    CONTEXT = 3

    def __init__(self, system: "MemorySystem", stub: StubChoice = True) -> None:
        self.system = system
        self.stub_choice = stub
        self.spaces: Dict[str, "AddressSpace"] = {}
        for asp in system.address_spaces:
            self.spaces.setdefault(asp.name, asp)
        self._stub = _Stub()
        self._observer = _Observer()
        self._by_name: Optional[Dict[str, List[MemoryRegion]]] = None
        self._targets: Dict[Tuple[str, int, int], Optional[Tuple[Any, int, bool]]] = {}

    # -------------------------------------------------------------- set-up

    def _device_regions(self) -> List[MemoryRegion]:
        from .region import reachable

        seen: Dict[int, MemoryRegion] = {}
        for asp in self.system.address_spaces:
            for mr in reachable(asp.root):
                if mr.ops is not None:
                    seen.setdefault(mr.id, mr)
        return list(seen.values())

    @contextmanager
    def _attached(self, permissive: bool) -> Iterator[None]:
        """Stubs on the chosen regions and the observer on every space, for
        the duration of a replay; everything restored afterwards."""
        from .region import MemoryRegionOps, set_ops

        # Everything swapped is restored in the finally, whatever stops the
        # set-up half way (a predicate that raises, Ctrl-C).
        saved: List[Tuple[MemoryRegion, Any]] = []
        spaces: List[Any] = []
        try:
            for asp in self.system.address_spaces:
                if asp._recorder is not None:
                    raise PymemError(f"address space {asp.name!r} is being recorded: "
                                     f"replay on another machine")
            for mr in self._device_regions():
                if self.stub_choice is True or (callable(self.stub_choice)
                                                and self.stub_choice(mr)):
                    ops = mr.ops
                    assert ops is not None
                    # QEMU logs do not say what a device accepts: let it take
                    # whatever the log shows it took.
                    stub_ops = MemoryRegionOps(
                        self._stub.read, self._stub.write, endianness=ops.endianness,
                        valid_min=1 if permissive else ops.valid_min,
                        valid_max=8 if permissive else ops.valid_max, impl_min=1, impl_max=8,
                        unaligned=True if permissive else ops.unaligned, with_attrs=True)
                    saved.append((mr, ops))
                    set_ops(mr, stub_ops)
            for asp in self.system.address_spaces:
                spaces.append(asp)
                asp._recorder = self._observer
            yield
        finally:
            for asp in spaces:
                asp._recorder = None
            for mr, ops in reversed(saved):
                set_ops(mr, ops)

    # -------------------------------------------------------------- replay

    def replay(self, trace: Trace, show_all: bool = True) -> ReplayReport:
        """Replay every access of `trace` (those after the last topology
        change, for a QEMU log) and report; stops at the first divergence
        unless `show_all`."""
        report = ReplayReport(source=trace.source, truncated=trace.truncated,
                              problems=list(trace.problems))
        events = trace.events
        start = 0
        if trace.source == "qemu":
            last = max((i for i, e in enumerate(events) if isinstance(e, Commit)), default=-1)
            start = last + 1
            report.skipped = sum(1 for e in events[:start] if isinstance(e, Access))
        commit: Optional[Commit] = None
        for e in events[:start]:
            if isinstance(e, Commit):
                commit = e
        report.total = sum(1 for e in events[start:] if isinstance(e, Access))
        recent: List[Access] = []
        with self._attached(permissive=trace.source == "qemu"):
            for e in events[start:]:
                if isinstance(e, Commit):
                    commit = e
                    self._check_commit(e, report)
                    continue
                report.replayed += 1
                report.reads += e.op == READ
                report.writes += e.op == WRITE
                report.mmio += e.mmio
                report.memory += not e.mmio
                found = self._qemu_access(e, report) if e.space is None else self._access(e)
                if found is not None:
                    kind, expected, got = found
                    report.divergences.append(Divergence(report.replayed, e, kind, expected,
                                                         got, commit, list(recent)))
                    if not show_all:
                        break
                recent.append(e)
                if len(recent) > self.CONTEXT:
                    del recent[0]
        return report

    def _check_commit(self, commit: Commit, report: ReplayReport) -> None:
        for vd in commit.views:
            if vd.digest is None:
                continue
            for name in vd.spaces:
                asp = self.spaces.get(name)
                if asp is None or asp.flatview is None:
                    continue
                mine = flatview_digest(asp.flatview)
                if mine != vd.digest:
                    report.notes.append(
                        f"after commit #{commit.seq} (line {commit.line}) the view of "
                        f"{name!r} differs from the recorded one ({len(asp.flatview.ranges)} "
                        f"ranges, digest {mine}; recorded {vd.ranges} ranges, {vd.digest})")

    def _perform(self, asp: Any, addr: int, e: Access, region: Optional[MemoryRegion]) -> Any:
        """Issue `e` at `addr` in `asp` through the real access path; the
        bytes read (RAM) or the device accesses seen (MMIO)."""
        stub = self._stub
        stub.result = e.result
        self._observer.seen.clear()
        if e.value is not None:
            stub.value = e.value
            big = region is not None and region.ops is not None \
                and region.ops.endianness == "big"
            if e.op == READ:
                asp.load(addr, e.size, big, e.attrs)
            else:
                asp.store(addr, e.value & ((1 << (8 * e.size)) - 1), e.size, big, e.attrs)
            return None
        assert e.data is not None
        stub.value = int.from_bytes(e.data, "little")
        if e.op == READ:
            buf = bytearray(e.size)
            asp.rw(addr, buf, False, e.attrs)
            return bytes(buf)
        asp.rw(addr, e.data, True, e.attrs)
        return None

    def _access(self, e: Access) -> Optional[Tuple[str, str, str]]:
        """Replay one access of a pymem trace: (kind, expected, got) if it diverges."""
        asp = self.spaces.get(e.space or "")
        if asp is None:
            return "space", f"address space {e.space!r}", "no address space of that name"
        t, region = _translate(asp, e.addr, e.size)
        got_offset = t.offset if region is not None else None
        diverged: Optional[Tuple[str, str, str]] = None
        if (region.name if region is not None else None, got_offset) != (e.region, e.offset):
            diverged = "route", _expected_where(e), _where(region, got_offset)
        got = self._perform(asp, e.addr, e, region)
        if diverged is not None:
            return diverged
        seen = self._observer.seen
        if e.value is not None:
            if not seen:
                return "route", f"a device access to {_expected_where(e)}", \
                    "plain memory, no device access"
            _, mr, offset, size, value, result = seen[0]
            if (mr.name if mr is not None else None, offset if mr is not None else None,
                    size) != (e.region, e.offset, e.size):
                return "route", f"{_expected_where(e)}, {e.size} bytes", \
                    f"{_where(mr, offset)}, {size} bytes"
            if value != e.value:
                return "value", f"value {e.value:#x}", f"value {value:#x}"
            if result != e.result:
                return "result", f"result {e.result}", f"result {result}"
            return None
        if got is not None and got != e.data:
            assert e.data is not None
            return "data", f"bytes {e.data.hex()}", f"bytes {got.hex()}"
        return None

    # ----------------------------------------------------------- QEMU logs

    def _regions_named(self, name: str) -> List[MemoryRegion]:
        if self._by_name is None:
            from .region import reachable

            by_name: Dict[str, Dict[int, MemoryRegion]] = {}
            for asp in self.system.address_spaces:
                for mr in reachable(asp.root):
                    by_name.setdefault(mr.name, {})[mr.id] = mr
            self._by_name = {k: list(v.values()) for k, v in by_name.items()}
        return self._by_name.get(name, [])

    def _qemu_target(self, e: Access) -> Optional[Tuple[Any, int, bool]]:
        """Where to issue a QEMU-traced access: (space, address, through an
        alias), or None if no space reaches a region of its name there."""
        assert e.region is not None
        key = (e.region, e.addr, e.size)
        if key in self._targets:
            return self._targets[key]
        found: Optional[Tuple[Any, int, bool]] = None
        views = self.system.flatviews()
        # The traced address is the address in every space that maps the
        # device where its real parents put it: try that first.
        for spaces in views.values():
            asp = spaces[0]
            t, mr = _translate(asp, e.addr, e.size)
            if mr is not None and mr.name == e.region and \
                    absolute_address(mr) + t.offset == e.addr:
                found = (asp, e.addr, False)
                break
        if found is None:
            # Else the device is reached only through an alias that moves it:
            # find a view that holds the traced offset of a region so named.
            for mr in self._regions_named(e.region):
                offset = e.addr - absolute_address(mr)
                if not 0 <= offset < mr.size:
                    continue
                for view, spaces in views.items():
                    for fr in view.ranges:
                        if fr.region is mr and fr.offset_in_region <= offset < \
                                fr.offset_in_region + fr.size:
                            found = (spaces[0], fr.addr + offset - fr.offset_in_region, True)
                            break
                    if found:
                        break
                if found:
                    break
        self._targets[key] = found
        return found

    def _qemu_access(self, e: Access, report: ReplayReport) -> Optional[Tuple[str, str, str]]:
        """Replay one access of a QEMU log: it must reach a region of the
        traced name at the traced address (its real parents' address plus
        the offset) in some address space."""
        if e.region is None:
            return "route", "a named region", "the log line names no region"
        target = self._qemu_target(e)
        expected = f"region {e.region!r} at {e.addr:#x}"
        if target is None:
            return "route", expected, self._what_is_at(e.addr, e.size)
        asp, addr, via_alias = target
        self._perform(asp, addr, e, _translate(asp, addr, e.size)[1])
        seen = self._observer.seen
        if not seen:
            return "route", expected, f"no device access in {asp.name!r} at {addr:#x}"
        _, mr, offset, size, value, _ = seen[0]
        if mr is None or mr.name != e.region or absolute_address(mr) + offset != e.addr:
            got = _where(mr, offset)
            if mr is not None:
                got += f" at {absolute_address(mr) + offset:#x}"
            return "route", expected, f"{got} (in {asp.name!r} at {addr:#x})"
        if e.op == WRITE and value != e.value:
            return "value", f"value {e.value:#x}", f"value {value:#x}"
        report.via_alias += via_alias
        return None

    def _what_is_at(self, addr: int, size: int) -> str:
        """What each view has at `addr`, for a divergence report."""
        found = []
        for spaces in self.system.flatviews().values():
            t, mr = _translate(spaces[0], addr, size)
            found.append(f"{spaces[0].name!r}: {_where(mr, t.offset if mr else None)}")
        return "; ".join(found) if found else "no address space"


def replay(trace: Union[Trace, PathLike], system: "MemorySystem", stub: StubChoice = True,
           show_all: bool = True) -> ReplayReport:
    """Replay a trace (or a trace file, either format) against `system`."""
    if not isinstance(trace, Trace):
        trace = load_trace(trace)
    return Replayer(system, stub).replay(trace, show_all)


# ------------------------------------------------------------------ reports

def _line_of(access: Access) -> str:
    return f" (line {access.line})" if access.line else ""


def format_report(report: ReplayReport, path: str = "", show_all: bool = False) -> str:
    """The replay report as `pymem replay` prints it."""
    out: List[str] = []
    for lineno, problem in report.problems:
        out.append(f"{path}:{lineno}: {problem} (skipped)")
    name = f" from {path}" if path else ""
    count = (f"{report.replayed}" if report.replayed == report.total
             else f"{report.replayed} of {report.total}")
    out.append(f"replayed {count} accesses{name}: {report.reads} reads, "
               f"{report.writes} writes; {report.mmio} device, {report.memory} RAM/ROM")
    if report.source == "qemu":
        out.append(f"skipped {report.skipped} accesses made before the log's last "
                   f"topology change (last flatview_new)")
        routed = report.replayed - sum(d.kind == "route" for d in report.divergences)
        alias = f" ({report.via_alias} only through an alias)" if report.via_alias else ""
        out.append(f"routed {routed} of {report.replayed} to a region of the traced name "
                   f"at the traced address{alias}")
    if report.truncated:
        out.append("the trace is truncated: replayed up to its last complete line")
    for note in report.notes[:5]:
        out.append(f"note: {note}")
    if len(report.notes) > 5:
        out.append(f"note: {len(report.notes) - 5} more commits with a different view")
    if report.identical:
        out.append("identical")
        return "\n".join(out) + "\n"
    first = report.divergences[0]
    stopped = report.replayed < report.total
    out.append("first divergence (the replay stopped there; --all goes on):" if stopped
               else "first divergence:")
    out.extend(_format_divergence(first))
    if show_all:
        out.append(f"{len(report.divergences)} divergences:")
        for d in report.divergences:
            out.append(f"  #{d.number}{_line_of(d.access)} {d.kind}: expected {d.expected}, "
                       f"got {d.got}")
    return "\n".join(out) + "\n"


def _format_divergence(d: Divergence) -> List[str]:
    if d.commit is None:
        after = ", before any commit"
    else:
        where = f" (line {d.commit.line})" if d.commit.line else ""
        after = f", after commit #{d.commit.seq}{where}"
    out = [f"  access #{d.number}{_line_of(d.access)}{after}:"]
    for i, c in enumerate(d.context):
        out.append(f"      #{d.number - len(d.context) + i}{_line_of(c)} {c.describe()}")
    out.append(f"   >  #{d.number}{_line_of(d.access)} {d.access.describe()}")
    out.append(f"    {d.kind}: expected {d.expected}")
    out.append(f"    {' ' * len(d.kind)}       got {d.got}")
    return out


# ------------------------------------------------------------------ diff

MmioKey = Tuple[str, Optional[str], int, int, int]


def mmio_sequence(trace: Trace) -> List[Access]:
    """The device accesses of a trace that QEMU would trace too: MMIO to a
    named region (RAM, ROM and unassigned space are not in QEMU's logs)."""
    return [e for e in trace.events
            if isinstance(e, Access) and e.value is not None and e.region is not None]


def _key(e: Access) -> MmioKey:
    return (e.op, e.region, e.addr, e.size, e.value if e.value is not None else -1)


@dataclass
class TraceDiff:
    """Where two MMIO sequences first differ (`index` from 0; None if equal)."""

    a: List[Access]
    b: List[Access]
    index: Optional[int]

    @property
    def identical(self) -> bool:
        return self.index is None


def diff_traces(a: Trace, b: Trace) -> TraceDiff:
    """Compare two traces as sequences of (op, region, address, size, value)."""
    sa, sb = mmio_sequence(a), mmio_sequence(b)
    for i, (x, y) in enumerate(zip(sa, sb)):
        if _key(x) != _key(y):
            return TraceDiff(sa, sb, i)
    return TraceDiff(sa, sb, None if len(sa) == len(sb) else min(len(sa), len(sb)))


def _mmio_line(e: Access) -> str:
    value = e.value if e.value is not None else 0
    return f"{e.op:<5} {e.region!r} @ {e.addr:#x} size {e.size} value {value:#x}"


def format_diff(diff: TraceDiff, name_a: str, name_b: str, context: int = 3) -> str:
    """The first difference with `context` accesses on each side, as
    `pymem trace diff` prints it."""
    out = [f"A: {name_a}: {len(diff.a)} MMIO accesses", f"B: {name_b}: {len(diff.b)} MMIO accesses"]
    if diff.index is None:
        out.append("identical")
        return "\n".join(out) + "\n"
    i = diff.index
    out.append(f"first difference at MMIO access #{i + 1}:")
    for label, seq in (("A", diff.a), ("B", diff.b)):
        out.append(f"  {label}:")
        for j in range(max(0, i - context), min(len(seq), i + context + 1)):
            mark = ">" if j == i else " "
            out.append(f"   {mark} #{j + 1}{_line_of(seq[j])} {_mmio_line(seq[j])}")
        if i >= len(seq):
            out.append(f"   > (ends after {len(seq)} accesses)")
    return "\n".join(out) + "\n"
