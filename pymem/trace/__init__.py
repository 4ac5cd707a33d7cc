"""Access traces: record what an address space was asked, replay it, compare two runs.

An emulator author records the accesses of a run, changes the memory map or
a device, replays, and wants the first divergence pointed out; someone porting
a device from QEMU wants to know that the same guest produces the same MMIO
traffic in both.  So a trace holds, per access, where it went (address space,
address, region, offset in region) and what it carried (value or bytes,
attributes, MemTxResult), and per topology commit a digest of every FlatView,
so a replay knows when the map it runs against is not the recorded one.

The format is JSON Lines (docs/guides/traces.md): a header line with the format
version, one event per line, an end line when the recording closes.  Lines are
written whole and flushed in batches, so an interrupted run leaves a trace that
is valid up to its last complete line; the reader says when the end line is
missing.  QEMU trace logs (qemu_log.py) read into the same events.

One concept per module:

    format.py        events, view digests, one line per event (encode/decode)
    writer.py        TraceWriter, write_trace: whole lines, batched
    reader.py        parse_trace, load_trace (a pymem trace or a QEMU log)
    recorder.py      Recorder, record: an access tap on each space, and commits
    replay.py        Replayer, replay: a trace against a machine, divergences
    report.py        format_report: a replay report as text
    diff.py          diff_traces, format_diff: two runs' MMIO sequences
    qemu_log.py      QEMU's `-trace memory_region_ops_*` logs read as traces

Traces observe the access path; nothing below them (regions, views, address
spaces, the access path) imports this package.
"""
from .diff import MmioKey, TraceDiff, diff_traces, format_diff, mmio_sequence
from .format import (FORMAT, READ, VERSION, WRITE, Access, Commit, Event, PathLike, Trace,
                     TraceFormatError, TraceWriteError, ViewDigest, decode_event, encode_event,
                     flatview_digest, view_digests)
from .reader import load_trace, parse_trace
from .recorder import Recorder, record
from .replay import (Divergence, Replayer, ReplayReport, StubChoice, absolute_address,
                     replay)
from .report import format_report
from .writer import TraceWriter, write_trace

__all__ = [
    "FORMAT", "VERSION", "READ", "WRITE", "PathLike", "TraceFormatError", "TraceWriteError",
    "ViewDigest", "Commit", "Access", "Event", "Trace", "flatview_digest", "view_digests",
    "encode_event", "decode_event", "TraceWriter", "write_trace", "parse_trace", "load_trace",
    "Recorder", "record", "Divergence", "ReplayReport", "StubChoice", "Replayer", "replay",
    "absolute_address", "format_report", "MmioKey", "mmio_sequence", "TraceDiff",
    "diff_traces", "format_diff",
]
