"""QEMU trace logs, read as pymem traces: lives in pymem/trace/qemu_log.py.

Kept under this name for code that imports it from here; the reader belongs
with the trace package, which sniffs a file's format (pymem/trace/reader.py)
and must not import this package above it.

Thread safety:
    Pure functions of their text: any thread.
"""
from ..trace.qemu_log import looks_like_qemu_log, parse_trace_log

__all__ = ["looks_like_qemu_log", "parse_trace_log"]
