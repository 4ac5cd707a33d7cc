"""Trees and dumps deeper than Python's recursion limit print, parse and derive
hints as any other: the walks keep stacks of their own."""
from __future__ import annotations

import sys

import pytest

from pymem import MemoryRegion, MemorySystem
from pymem.qemu import format_mtree, load_mtree
from pymem.qemu.hints import derive_hints

# Deeper than the recursion limit, with a margin, and quick to build.
DEPTH = sys.getrecursionlimit() + 200


def nested(depth: int) -> MemorySystem:
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    cur = root
    for i in range(depth):
        child = MemoryRegion.container(f"c{i}", 1 << 32)
        cur.add_subregion(0x10 if i % 2 else 0, child)
        cur = child
    cur.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    system.address_space(root, "as")
    return system


def alias_chain(length: int) -> MemorySystem:
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    prev = MemoryRegion.ram("ram", 0x1000)
    for i in range(length):
        prev = MemoryRegion.alias(f"a{i}", prev, 0, 0x1000)
    root.add_subregion(0, prev)
    system.address_space(root, "as")
    return system


@pytest.mark.parametrize("build", [nested, alias_chain], ids=["nested", "alias-chain"])
def test_a_tree_deeper_than_the_recursion_limit_prints_and_loads_back(build):
    system = build(DEPTH)
    text = format_mtree(system, disabled=True)
    assert len(text.splitlines()) > DEPTH
    again = load_mtree(text)
    assert format_mtree(again, disabled=True) == text
    assert format_mtree(again, flat=True) == format_mtree(system, flat=True)


def test_hints_derive_from_a_dump_deeper_than_the_recursion_limit():
    system = nested(DEPTH)
    hints = derive_hints(format_mtree(system, disabled=True), format_mtree(system, flat=True),
                         format_mtree(system, flat=True, dispatch=True))
    again = load_mtree(format_mtree(system, disabled=True), hints)
    assert format_mtree(again, flat=True) == format_mtree(system, flat=True)
