"""QEMU's text formats: `info mtree` in all its forms, and trace logs."""
from .flat import dispatch_from_flat, parse_flat

__all__ = ["dispatch_from_flat", "parse_flat"]
