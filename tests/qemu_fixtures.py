"""The QEMU 7.2 dumps in tests/fixtures/qemu/, and how to compare with them.

QEMU prints FlatView blocks in hash-table order and marks the MRU section by
past lookups, so comparisons take the blocks as a set and drop ` [MRU]`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

FIXTURES = Path(__file__).parent / "fixtures" / "qemu"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def read(case: str, name: str) -> str:
    return (FIXTURES / case / name).read_text()


def hints(case: str) -> dict:
    return json.loads(read(case, "hints.json"))


FLAT_FIXTURES = Path(__file__).parent / "fixtures" / "qemu-flat"
FLAT_CASES = sorted(p.name for p in FLAT_FIXTURES.iterdir() if p.is_dir())


def flat_case(case: str) -> dict:
    """A tests/fixtures/qemu-flat case: its two dumps, page bits and IOMMU names
    (what QEMU marked ` [iommu]`: a flat dump cannot show it; none if no `iommu.txt`)."""
    root = FLAT_FIXTURES / case
    iommu = root / "iommu.txt"
    return {"flat": (root / "flat.txt").read_text(),
            "dispatch": (root / "dispatch.txt").read_text(),
            "page_bits": int((root / "page_bits.txt").read_text()),
            "iommu": iommu.read_text().split("\n")[:-1] if iommu.exists() else []}


def flatview_blocks(text: str) -> List[str]:
    """The FlatView blocks of an `info mtree -f [-d]` text, sorted, MRU marks dropped."""
    return sorted(b.strip("\n") for b in text.replace(" [MRU]", "").split("\n\n") if b.strip())
