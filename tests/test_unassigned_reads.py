"""Unassigned space in bulk accesses.

Accesses across large unassigned ranges run in C (issue #17, F5 of the
fuzz findings): the Python work of a read does not grow with its size, only
with the number of ranges it crosses.  Counted as Python function calls
(sys.setprofile), never timed.

And they answer what QEMU answers: unassigned space goes in pieces of at
most 4 bytes aligned to their size, translated where each piece starts, so
the last piece that starts in a hole runs on into the region after it: those
bytes read as zeros and a write to them is dropped (F8, found by
`pytest --stress` in test_access_model)."""
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


def ram_after_a_hole(at: int, size: int, fill: int):
    root = MemoryRegion.container("root", 1 << 64)
    ram = MemoryRegion.ram("ram", size)
    ram.buffer[:] = bytes([fill]) * size
    root.add_subregion(at, ram)
    return MemorySystem().address_space(root, "cpu"), ram


def test_the_last_unassigned_piece_runs_into_the_ram_after_the_hole():
    # Pieces from 86: 86 (2 bytes), 88, 92, 96 (4 each): 96..99 takes the
    # RAM's first byte; the RAM answers from 100.
    asp, ram = ram_after_a_hole(99, 4, 0x11)
    buf = bytearray(20)
    assert asp.rw(86, buf, False) != 0
    assert bytes(buf) == bytes(14) + b"\x11" * 3 + bytes(3)
    assert asp.rw(86, b"\xee" * 20, True) != 0
    assert bytes(ram.buffer) == b"\x11" + b"\xee" * 3


def test_a_piece_ending_at_the_hole_leaves_the_ram_whole():
    asp, ram = ram_after_a_hole(100, 4, 0x11)
    buf = bytearray(20)
    asp.rw(86, buf, False)
    assert bytes(buf) == bytes(14) + b"\x11" * 4 + bytes(2)


def test_after_a_big_hole_the_last_piece_too_runs_into_the_ram():
    base = 0x1_0000_0000
    asp, ram = ram_after_a_hole(base + 64 * MIB + 1, 8, 0x22)
    buf = bytearray(64 * MIB + 8)
    asp.rw(base, buf, False)
    # The piece at base + 64 MiB covers the RAM's first 3 bytes.
    assert bytes(buf[64 * MIB:]) == bytes(4) + b"\x22" * 4
    assert not any(buf[:64 * MIB])
