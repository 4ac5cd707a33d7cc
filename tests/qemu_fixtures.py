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


def flatview_blocks(text: str) -> List[str]:
    """The FlatView blocks of an `info mtree -f [-d]` text, sorted, MRU marks dropped."""
    return sorted(b.strip("\n") for b in text.replace(" [MRU]", "").split("\n\n") if b.strip())
