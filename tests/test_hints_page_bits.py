"""derive_hints' page-size search, when the dispatch dump has no sub-page
section to read the page size from: the first of 12, 10, 14, 16, 11, 13, 15
whose dispatch, rebuilt from the flat dump (`dispatch_from_flat`), prints the
dump's FlatView blocks (in any order, ` [MRU]` left out); 12 if none does.

The search compares a line at a time and stops at the first line that no
wanted block has (it formats no more radix nodes); these pin that it answers
what the whole comparison of the two texts answers, on dumps that match at
one page size, at none, or differ in one line, one view or the view order.
"""
from __future__ import annotations

import re
from typing import List

import pytest

from pymem.qemu.flat import dispatch_from_flat, parse_flat
from pymem.qemu.hints import _page_bits, _sections, derive_hints

from .qemu_fixtures import FLAT_CASES, flat_case, flatview_blocks, read

TRIED = (12, 10, 14, 16, 11, 13, 15)
# Machines with several views, an IOMMU, 1 KiB pages, and a small one.
CASES = [c for c in ("arm-versatilepb", "aarch64-virt-smmuv3", "x86_64-isapc", "riscv64-spike")
         if c in FLAT_CASES]


def whole_text_answer(flat: str, dispatch: str, iommu: List[str]) -> int:
    """The page size the search must find, by comparing whole texts."""
    # The sub-page rule (not what these pin) as derive_hints reads it.
    sizes = sorted({size for idx, _, size, name, _ in _sections(dispatch)
                    if idx > 0 and name == "(noname)"})
    for size in sizes:
        if size & (size - 1) == 0 and size > 1:
            return size.bit_length() - 1
    want = flatview_blocks(dispatch)
    for bits in TRIED:
        try:
            if flatview_blocks(dispatch_from_flat(flat, bits, iommu=iommu)) == want:
                return bits
        except ValueError:
            continue
    return 12


def blocks(text: str) -> List[str]:
    return [b for b in text.split("\n\n") if b.strip()]


def aligned(flat: str) -> str:
    """`flat` with only its ranges that start and end on a 64 KiB boundary:
    no page size from 1 to 64 KiB makes a sub-page section of it."""
    keep = []
    for line in flat.splitlines():
        m = re.match(r"^  ([0-9a-f]{16})-([0-9a-f]{16}) ", line)
        if m is None or (int(m.group(1), 16) % 0x10000 == 0
                         and (int(m.group(2), 16) + 1) % 0x10000 == 0):
            keep.append(line)
    return "\n".join(keep) + "\n"


def variants(flat: str, iommu: List[str]):
    """Dispatch dumps for `flat`: right at some page sizes, and near misses."""
    for bits in (10, 12, 16):
        text = dispatch_from_flat(flat, bits, iommu=iommu)
        views = blocks(text)
        yield f"{bits}", text
        yield f"{bits} views reversed", "\n\n".join(views[::-1]) + "\n\n"
        yield f"{bits} MRU marks", text.replace(" [ROM]", " [ROM] [MRU]")
        yield f"{bits} last view left out", "\n\n".join(views[:-1]) + "\n\n"
        yield f"{bits} first view twice", "\n\n".join(views[:1] + views) + "\n\n"
        yield f"{bits} last line left out", text.rstrip("\n").rsplit("\n", 1)[0] + "\n\n"
        yield f"{bits} one node entry changed", text.replace("skip=0  ptr=#", "skip=0  ptr=#1", 1)
        yield f"{bits} a line added", text.replace("      [0]\n", "      [0]\n      [0]\n", 1)
    yield "empty", ""


@pytest.mark.parametrize("case", CASES)
def test_the_search_answers_what_the_whole_texts_answer(case):
    c = flat_case(case)
    iommu = c["iommu"]
    searched = 0
    for flat in (c["flat"], aligned(c["flat"])):
        for name, dispatch in variants(flat, iommu):
            notes: List[str] = []
            got = _page_bits(parse_flat(flat), dispatch, iommu, notes)
            assert got == whole_text_answer(flat, dispatch, iommu), (case, name)
            searched += "no subpage section" in notes[0]
    assert searched >= 20, "most of these dumps must reach the search, not the sub-page rule"


def test_a_dump_at_no_page_size_falls_back_to_12_with_a_note():
    c = flat_case(CASES[0])
    flat = aligned(c["flat"])
    text = dispatch_from_flat(flat, 10, iommu=c["iommu"])
    wrong = text.replace("skip=0  ptr=#", "skip=0  ptr=#1", 1)
    assert wrong != text
    notes: List[str] = []
    assert _page_bits(parse_flat(flat), wrong, c["iommu"], notes) == 12
    assert notes == ["page_bits 12: no subpage section and no page size reproduces the dispatch"]


def test_derive_hints_finds_the_page_size_the_dispatch_was_made_at():
    mtree = read("x86_64-q35-reset", "mtree-D.txt")
    flat = aligned(read("x86_64-q35-reset", "flat.txt"))
    for bits in (10, 16):
        got = derive_hints(mtree, flat, dispatch_from_flat(flat, bits))
        assert got["page_bits"] == bits
