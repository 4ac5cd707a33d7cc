"""QEMU's `info mtree -f` text: parsed into FlatView blocks, and rebuilt with dispatch.

`dispatch_from_flat` is the conformance harness of the C dispatch: it takes the
flat ranges QEMU printed, builds our dispatch for each view, and prints the
`info mtree -f -d` text QEMU would print for it.

Thread safety:
    Pure functions of their text (each builds its own dispatch tables):
    any thread.  The dataclasses are plain values.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from ..dispatch import SECTION_IOMMU, Dispatch, DispatchRange
from ..errors import DumpParseError
from .dispatch_text import dispatch_lines

_RANGE = re.compile(
    r"^  ([0-9a-f]{16})-([0-9a-f]{16}) \(prio (-?\d+), ((?:nv-)?[a-z/]+)\): (.*?)(?: @([0-9a-f]{16}))?$")
_AS = re.compile(r'^ AS "(.*)", root: (.*)$')


@dataclass
class FlatRangeText:
    """One range line of `info mtree -f`."""

    start: int
    last: int
    priority: int
    type: str
    name: str
    offset: int = 0

    @property
    def size(self) -> int:
        """Bytes in the range (last - start + 1; up to 2^64)."""
        return self.last - self.start + 1

    def line(self) -> str:
        """The range as `info mtree -f` prints it.

        Raises nothing.
        """
        text = f"  {self.start:016x}-{self.last:016x} (prio {self.priority}, {self.type}): {self.name}"
        return text + (f" @{self.offset:016x}" if self.offset else "")


@dataclass
class FlatViewText:
    """One `FlatView #n` block: its AS lines, root name (None: `(none)`), ranges."""

    number: int
    as_lines: List[str] = field(default_factory=list)
    root: Optional[str] = None
    ranges: List[FlatRangeText] = field(default_factory=list)

    def header_lines(self) -> List[str]:
        """The view's header as `info mtree -f` prints it: the FlatView
        number, its address spaces, its root.

        Raises nothing.
        """
        return ([f"FlatView #{self.number}"] + self.as_lines
                + [f" Root memory region: {self.root if self.root is not None else '(none)'}"])


def parse_flat(text: str) -> List[FlatViewText]:
    """Parse `info mtree -f` (or `-f -d`: dispatch blocks are skipped).

    Raises:
        DumpParseError: a line that is not `info mtree -f` output, text before
            the first `FlatView #n` line, a range that ends before it starts or
            overlaps the previous one; the message names the line.
    """
    views: List[FlatViewText] = []
    view: Optional[FlatViewText] = None
    in_dispatch = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            in_dispatch = False
            continue
        m = re.match(r"^FlatView #(\d+)$", line)
        if m:
            view = FlatViewText(int(m.group(1)))
            views.append(view)
            in_dispatch = False
            continue
        if view is None:
            raise DumpParseError("text before the first 'FlatView #n' line", lineno, line)
        if in_dispatch:
            continue
        if line == "  Dispatch":
            in_dispatch = True
            continue
        m = _AS.match(line)
        if m:
            if view.ranges:
                raise DumpParseError("AS line after the ranges of a FlatView", lineno, line)
            view.as_lines.append(line)
            continue
        if line.startswith(" Root memory region: "):
            name = line[len(" Root memory region: "):]
            view.root = None if name == "(none)" else name
            continue
        if line == "  No rendered FlatView":
            continue
        m = _RANGE.match(line)
        if not m:
            raise DumpParseError("not a line of 'info mtree -f'", lineno, line)
        start, last = int(m.group(1), 16), int(m.group(2), 16)
        if last < start:
            raise DumpParseError("range ends before it starts", lineno, line)
        if view.ranges and start <= view.ranges[-1].last:
            raise DumpParseError("range overlaps or precedes the previous one", lineno, line)
        view.ranges.append(FlatRangeText(start, last, int(m.group(3)), m.group(4), m.group(5),
                                         int(m.group(6), 16) if m.group(6) else 0))
    return views


# A flat dump prints IOMMU regions as plain i/o.  QEMU 7.2's IOMMU regions go
# by these names; names merely containing "iommu" are not enough (intel_iommu
# and amd_iommu_ir are register banks and interrupt remapping, not IOMMUs).
_IOMMU_NAMES = re.compile(
    r"smmuv3-iommu-memory-region-\d+-\d+|virtio-iommu-memory-region-\d+-\d+"
    r"|vtd-[0-9a-f]{2}\.[0-7]-dmar|amd_iommu|tz-mpc-upstream")


def _looks_like_iommu(name: str) -> bool:
    return _IOMMU_NAMES.fullmatch(name) is not None


def build_view_dispatch(view: FlatViewText, page_bits: int,
                        iommu: Optional[Iterable[str]] = None
                        ) -> Tuple[Dispatch, Dict[int, str], Optional[int]]:
    """Our dispatch for one parsed view, with its region-name table.

    `page_bits` is the target page size as a power of two (10..16).

    Raises:
        ArgumentTypeError: `page_bits` is not an int.
        TopologyError: `page_bits` is outside 10..16.
        CapacityError: more sections or radix nodes than a dispatch entry can
            address.
    """
    iommu_names = set(iommu) if iommu is not None else None
    ids: Dict[str, int] = {}
    ranges = []
    for r in view.ranges:
        region = ids.setdefault(r.name, len(ids))
        is_iommu = r.name in iommu_names if iommu_names is not None else _looks_like_iommu(r.name)
        ranges.append(DispatchRange(r.start, r.size, r.offset, region,
                                    SECTION_IOMMU if is_iommu else 0))
    names = {v: k for k, v in ids.items()}
    return Dispatch.build(ranges, page_bits), names, ids.get(view.root) if view.root else None


def dispatch_from_flat(text: str, page_bits: int = 12,
                       iommu: Optional[Iterable[str]] = None) -> str:
    """`info mtree -f -d` text for the FlatViews of an `info mtree -f` dump.

    `iommu` names the IOMMU regions (printed ` [iommu]`); by default the names
    QEMU 7.2 gives its IOMMU regions are taken for them, as a flat dump
    cannot say.

    `page_bits` is the target page size as a power of two (10..16).

    Raises:
        DumpParseError: the text is not `info mtree -f` output (see `parse_flat`).
        ArgumentTypeError: `page_bits` is not an int.
        TopologyError: `page_bits` is outside 10..16 (the message names the
            FlatView).
        CapacityError: a view needs more sections or radix nodes than a dispatch
            entry can address.
    """
    out: List[str] = []
    views = parse_flat(text)
    if not views:
        raise DumpParseError("no FlatView in the dump (expected `info mtree -f` output)")
    for view in views:
        out.extend(view_dispatch_lines(view, page_bits, iommu))
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def view_dispatch_lines(view: FlatViewText, page_bits: int = 12,
                        iommu: Optional[Iterable[str]] = None) -> Iterator[str]:
    """One view's block of `dispatch_from_flat`, a line at a time (no line
    ends, no blank line after it): the header, the ranges, then the dispatch
    (or `  No rendered FlatView`).  The dispatch is built when the header
    and ranges have been read (so what it raises comes then), its nodes
    formatted as they are read.

    Raises:
        ArgumentTypeError: `page_bits` is not an int.
        TopologyError: `page_bits` is outside 10..16 (the message names the
            FlatView).
        CapacityError: the view needs more sections or radix nodes than a
            dispatch entry can address.
    """
    yield from view.header_lines()
    if not view.ranges:
        yield "  No rendered FlatView"
        return
    yield from (r.line() for r in view.ranges)
    try:
        dispatch, names, root_id = build_view_dispatch(view, page_bits, iommu)
    except ValueError as exc:
        raise type(exc)(f"FlatView #{view.number}: {exc}") from exc
    yield from dispatch_lines(dispatch, names.get, root_id)
