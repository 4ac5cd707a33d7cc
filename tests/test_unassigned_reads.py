"""Accesses across large unassigned ranges run in C (issue #17, F5 of the
fuzz findings): the Python work of a read does not grow with its size, only
with the number of ranges it crosses.  Counted as Python function calls
(sys.setprofile), never timed."""
from __future__ import annotations

import sys

import pytest

from pymem import MemoryRegion, MemorySystem, MemTxAttrs

MIB = 1 << 20


def python_calls(fn) -> int:
    calls = [0]

    def profile(frame, event, arg):
        if event == "call":
            calls[0] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls[0]


def space(pieces: int):
    root = MemoryRegion.container("root", 1 << 64)
    for i in range(pieces):
        root.add_subregion(0x1_0000_0000 + i * 4 * MIB, MemoryRegion.ram(f"ram{i}", 0x1000))
    return MemorySystem().address_space(root, "cpu")


@pytest.mark.parametrize("attrs", [None, MemTxAttrs(secure=True)])
@pytest.mark.parametrize("is_write", [False, True])
def test_python_work_of_an_unassigned_access_does_not_grow_with_its_size(attrs, is_write):
    asp = space(0)
    small = python_calls(lambda: asp.rw(0x2_0000_0000, bytearray(4096), is_write, attrs))
    big = python_calls(lambda: asp.rw(0x2_0000_0000, bytearray(64 * MIB), is_write, attrs))
    assert big <= small + 8


def test_a_big_read_across_ram_pieces_and_holes_costs_python_per_piece_not_per_byte():
    few, many = space(2), space(16)
    calls_few = python_calls(lambda: few.rw(0x1_0000_0000, bytearray(64 * MIB), False))
    calls_many = python_calls(lambda: many.rw(0x1_0000_0000, bytearray(64 * MIB), False))
    # 14 more pieces of RAM (and holes), 64 MiB: the calls are the pieces'.
    assert calls_many - calls_few < 40 * 14
    assert calls_many < 64 * MIB // 4096
