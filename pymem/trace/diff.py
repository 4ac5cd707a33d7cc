"""Comparing two traces' MMIO sequences, as `pymem trace diff` does: two
traces in, no machine (it replays nothing).

Thread safety:
    Pure functions of the traces: any thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from .format import Access, Trace
from .report import _line_of


MmioKey = Tuple[str, Optional[str], int, int, int]


def mmio_sequence(trace: Trace) -> List[Access]:
    """The device accesses of a trace that QEMU would trace too: MMIO to a
    named region (RAM, ROM and unassigned space are not in QEMU's logs).

    Raises nothing.
    """
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
        """True when both traces hold the same MMIO accesses, in order."""
        return self.index is None


def diff_traces(a: Trace, b: Trace) -> TraceDiff:
    """Compare two traces as sequences of (op, region, address, size, value).

    Raises nothing.
    """
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
    `pymem trace diff` prints it.

    `context` is a count of accesses shown on each side of the first difference (>= 0).

    Raises nothing.
    """
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
