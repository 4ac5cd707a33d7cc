"""Alias loops whose render paths multiply are refused, in bounded time.

Several aliases on one loop, each mapping the loop again a little further on
within its window, multiply the render paths (k aliases, up to
MAX_ALIAS_VISITS trips each): no single path goes round too often, yet a
render would walk for hours.  The edit that makes such a loop is refused
once the check's walk passes `pymem.region.loops.MAX_LOOP_WALK` regions
(found by the mtree fuzz target: a 2 KiB dump hung `load_mtree`).
"""
from __future__ import annotations

from pathlib import Path

import pytest

import pymem.region.loops
from pymem import MemoryRegion, MemorySystem
from pymem.errors import TopologyError
from pymem.qemu.mtree import load_mtree

FANOUT = Path(__file__).parent / "fixtures" / "mtree-alias-fanout.txt"


def shifted_loop():
    """A container with 10 RAM regions and an alias of itself 0x100 on: the
    window shrinks by 0x100 a trip, so the loop ends after 15 trips, having
    walked about 15 x 12 regions."""
    system = MemorySystem()
    c = MemoryRegion.container("c", 0x1000)
    for i in range(10):
        c.add_subregion(0x10 * i, MemoryRegion.ram(f"ram{i}", 0x10))
    system.address_space(c, "cpu")
    return c, MemoryRegion.alias("again", c, 0, 0xf00)


def test_a_loop_that_leaves_its_window_within_the_walk_limit_is_taken():
    c, alias = shifted_loop()
    c.add_subregion(0x100, alias)
    assert alias.container is c


def test_a_loop_whose_walk_passes_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(pymem.region.loops, "MAX_LOOP_WALK", 100)
    c, alias = shifted_loop()
    with pytest.raises(TopologyError, match="walks more than 100 regions"):
        c.add_subregion(0x100, alias)
    assert alias.container is None and alias not in c.subregions


def test_a_dump_of_aliases_that_multiply_render_paths_is_refused():
    with pytest.raises(TopologyError, match="render paths multiply"):
        load_mtree(FANOUT.read_text(errors="replace"))


def test_derive_hints_refuses_the_same_dump_with_a_named_error():
    from pymem.errors import DumpParseError
    from pymem.qemu.hints import derive_hints

    flat = ('FlatView #0\n AS "cpu-memory-0", root: armrom-container\n'
            ' Root memory region: armrom-container\n'
            '  0000000000000000-00000000000fffff (prio 0, i/o): system\n')
    with pytest.raises(DumpParseError, match="render paths multiply"):
        derive_hints(FANOUT.read_text(errors="replace"), flat, "")
