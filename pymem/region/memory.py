"""A region's own memory: allocated (pymem/hostmem.py) or a caller's buffer, checked."""
from __future__ import annotations

from typing import Any

from .. import hostmem
from ..errors import ArgumentTypeError, InvalidArgumentError, TopologyError


def _allocate(kind: str, name: str, size: int) -> memoryview:
    """Zeroed, page-aligned memory for a region (pymem/hostmem.py: small ones
    carved from shared slabs, so many small regions do not exhaust the
    process's mappings), allocated when the region is made, so a size the
    machine cannot map fails here, naming the region, not at a commit."""
    try:
        return hostmem.allocate(size)
    except (OverflowError, OSError, ValueError, MemoryError) as exc:
        raise TopologyError(f"{kind} {name!r}: cannot allocate {size:#x} bytes of memory "
                            f"({exc})") from None


def _wrap_buffer(name: str, buffer: Any, size: int) -> memoryview:
    try:
        view = memoryview(buffer)
    except TypeError:
        raise ArgumentTypeError(f"ram {name!r}: buffer must support the buffer protocol, "
                                f"not {type(buffer).__name__}") from None
    if view.readonly:
        raise InvalidArgumentError(f"ram {name!r}: buffer is read-only")
    if not view.c_contiguous:
        raise InvalidArgumentError(f"ram {name!r}: buffer is not C-contiguous (a Fortran-order or "
                                   f"strided array): give it a C-ordered copy")
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    if view.nbytes != size:
        raise InvalidArgumentError(f"ram {name!r}: buffer holds {view.nbytes:#x} bytes, "
                                   f"size is {size:#x}")
    return view
