"""QEMU's text formats: `info mtree` in all its forms, and trace logs.

Thread safety:
    Parsing and formatting functions: see each module.  Loading builds a
    new MemorySystem; formatting takes the system's writer lock.
"""
from .flat import dispatch_from_flat, parse_flat
from .mtree import format_mtree, load_mtree
from .tracelog import parse_trace_log

__all__ = ["dispatch_from_flat", "format_mtree", "load_mtree", "parse_flat", "parse_trace_log"]
