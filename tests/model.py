"""A pure-Python reference model of QEMU's dispatch: sections and lookups.

It numbers sections the way QEMU registers them (head piece, whole pages, tail
piece; a page's sub-page section registered before the first piece that needs
it) and answers lookups by searching the registered pieces directly, with no
radix tree.  The C dispatch must agree with it on every address.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

SPACE = 1 << 64


@dataclass(frozen=True)
class Piece:
    start: int
    last: int
    offset: int
    section: int


class DispatchModel:
    """Sections numbered as QEMU numbers them; lookups by search over pieces."""

    def __init__(self, ranges: Sequence[Tuple[int, int, int]], page_bits: int) -> None:
        """`ranges` are (start, size, offset_in_region), sorted and disjoint."""
        self.page_size = 1 << page_bits
        self.sections: List[Tuple[int, int]] = [(0, SPACE - 1)]   # (start, last)
        self.subpage_of_page: Dict[int, int] = {}
        self.pieces: List[Piece] = []
        for start, size, offset in ranges:
            self._add(start, start + size - 1, offset)
        self._starts = [p.start for p in self.pieces]

    def _new_section(self, start: int, last: int) -> int:
        self.sections.append((start, last))
        return len(self.sections) - 1

    def _piece(self, start: int, last: int, offset: int, partial: bool) -> None:
        if partial:
            page = start - start % self.page_size
            if page not in self.subpage_of_page:
                self.subpage_of_page[page] = self._new_section(page, page + self.page_size - 1)
        self.pieces.append(Piece(start, last, offset, self._new_section(start, last)))

    def _add(self, start: int, last: int, offset: int) -> None:
        ps = self.page_size
        if start % ps:
            head_last = min(last, start - start % ps + ps - 1)
            self._piece(start, head_last, offset, partial=True)
            offset += head_last - start + 1
            start = head_last + 1
            if start > last:
                return
        whole_last = last if (last + 1) % ps == 0 else last - (last % ps) - 1
        if whole_last >= start:
            self._piece(start, whole_last, offset, partial=False)
            offset += whole_last - start + 1
            start = whole_last + 1
        if start <= last:
            self._piece(start, last, offset, partial=True)

    def find(self, addr: int) -> Piece | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr <= self.pieces[i].last:
            return self.pieces[i]
        return None

    def lookup(self, addr: int) -> int:
        piece = self.find(addr)
        return piece.section if piece else 0

    def translate(self, addr: int, length: int) -> Tuple[int, int, int]:
        piece = self.find(addr)
        if piece is None:
            return 0, addr, min(length, SPACE - addr)
        return (piece.section, piece.offset + addr - piece.start,
                min(length, piece.last - addr + 1))
