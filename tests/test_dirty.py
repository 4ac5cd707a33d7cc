"""Dirty bitmaps (get_and_clear_dirty, snapshot_and_clear_dirty) against a
pure-Python model, and mark_dirty for writes made outside pymem."""
import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymem import (DIRTY_MEMORY_MIGRATION, DIRTY_MEMORY_VGA, ArgumentTypeError, DirtyBitmap,
                   InvalidArgumentError, MemoryRegion, MemorySystem)

PAGE = 0x1000


def board(pages=16):
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    ram = MemoryRegion.ram("ram", pages * PAGE)
    root.add_subregion(0x10000, ram)
    asp = system.address_space(root, "mem")
    return system, root, ram, asp


def model_runs(dirty_pages, first, count):
    """(offset, size) runs of the dirty pages among first..first+count-1."""
    runs = []
    for p in range(first, first + count):
        if p in dirty_pages:
            if runs and runs[-1][0] + runs[-1][1] == p * PAGE:
                runs[-1] = (runs[-1][0], runs[-1][1] + PAGE)
            else:
                runs.append((p * PAGE, PAGE))
    return runs


@given(writes=st.lists(st.tuples(st.integers(0, 64 * PAGE - 1), st.integers(1, 3 * PAGE)),
                       max_size=20),
       window=st.tuples(st.integers(0, 64 * PAGE - 1), st.integers(0, 64 * PAGE)))
def test_bitmap_matches_a_model_of_the_pages_written(writes, window):
    system, root, ram, asp = board(pages=64)
    ram.set_log(True, DIRTY_MEMORY_VGA)
    dirty_pages = set()
    for addr, size in writes:
        size = min(size, 64 * PAGE - addr)
        asp.write(0x10000 + addr, bytes(size))
        dirty_pages.update(range(addr // PAGE, (addr + size - 1) // PAGE + 1))
    addr, size = window
    size = min(size, 64 * PAGE - addr)
    bm = ram.snapshot_and_clear_dirty(addr, size, DIRTY_MEMORY_VGA)
    first = addr // PAGE
    count = (addr + size - 1) // PAGE - first + 1 if size else 0
    runs = model_runs(dirty_pages, first, count)
    assert bm.pages == count
    assert list(bm) == list(bm.ranges()) == runs
    assert bm.count() == sum(size for _, size in runs) // PAGE
    assert bm.pages_dirty() == [p * PAGE for p in range(first, first + count)
                                if p in dirty_pages]
    for p in range(64):
        assert ((p * PAGE + 5) in bm) == (first <= p < first + count and p in dirty_pages)
    # Cleared: the window reads clean next time, the rest is still dirty.
    assert not ram.get_and_clear_dirty(addr, size, DIRTY_MEMORY_VGA)
    rest = ram.get_and_clear_dirty(0, 64 * PAGE, DIRTY_MEMORY_VGA)
    assert rest.pages_dirty() == [p * PAGE for p in sorted(dirty_pages)
                                  if not first <= p < first + count]


def test_numpy_wraps_the_bitmap_without_copying():
    system, root, ram, asp = board(pages=16)
    ram.set_log(True, DIRTY_MEMORY_VGA)
    for page in (0, 3, 4, 9, 15):
        asp.stb(0x10000 + page * PAGE + 7, 1)
    bm = ram.get_and_clear_dirty(0, 16 * PAGE, DIRTY_MEMORY_VGA)
    array = numpy.frombuffer(bm, numpy.uint8)
    assert array.base is bm   # a view of the bitmap's own bytes, not a copy
    flags = numpy.unpackbits(array, bitorder="little")[:bm.pages]
    assert list(numpy.flatnonzero(flags)) == [0, 3, 4, 9, 15]
    assert isinstance(bm, DirtyBitmap) and isinstance(bm, bytes)


def test_bitmap_of_a_window_counts_offsets_from_its_first_page():
    system, root, ram, asp = board(pages=16)
    ram.set_log(True, DIRTY_MEMORY_VGA)
    asp.write(0x10000 + 5 * PAGE - 2, b"abcd")   # pages 4 and 5
    bm = ram.get_and_clear_dirty(4 * PAGE + 0x10, 3 * PAGE, DIRTY_MEMORY_VGA)
    assert bm.start == 4 * PAGE and bm.pages == 4
    assert list(bm) == [(4 * PAGE, 2 * PAGE)]
    assert bm.test(5 * PAGE + 0xfff) and not bm.test(6 * PAGE) and not bm.test(0)
    assert "x" not in bm


def test_region_mark_dirty_marks_for_every_logging_client():
    system, root, ram, asp = board()
    ram.set_log(True, DIRTY_MEMORY_VGA)
    ram.set_log(True, DIRTY_MEMORY_MIGRATION)
    ram.buffer[2 * PAGE:3 * PAGE + 1] = bytes(PAGE + 1)   # a write pymem did not see
    ram.mark_dirty(2 * PAGE, PAGE + 1)
    assert list(ram.get_and_clear_dirty(0, 16 * PAGE, DIRTY_MEMORY_VGA)) == [(2 * PAGE, 2 * PAGE)]
    assert ram.get_and_clear_dirty(0, 16 * PAGE, DIRTY_MEMORY_MIGRATION).count() == 2


def test_address_space_mark_dirty_reaches_the_ram_behind_aliases_and_skips_devices():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    ram = MemoryRegion.ram("ram", 8 * PAGE)
    low = MemoryRegion.alias("low", ram, 4 * PAGE, 4 * PAGE)   # ram pages 4..7
    rom = MemoryRegion.rom("rom", PAGE)
    root.add_subregion(0, low)
    root.add_subregion(4 * PAGE, rom)
    asp = system.address_space(root, "mem")
    ram.set_log(True, DIRTY_MEMORY_VGA)
    asp.mark_dirty(3 * PAGE, 3 * PAGE)   # alias page 3 (ram page 7), the ROM, a hole
    assert ram.get_and_clear_dirty(0, 8 * PAGE, DIRTY_MEMORY_VGA).pages_dirty() == [7 * PAGE]


def test_mark_dirty_refuses_what_it_cannot_mark():
    system, root, ram, asp = board()
    with pytest.raises(InvalidArgumentError, match="ram"):
        ram.mark_dirty(15 * PAGE, 2 * PAGE)
    with pytest.raises(ArgumentTypeError, match="rom"):
        MemoryRegion.rom("rom", PAGE).mark_dirty(0, 1)
    with pytest.raises(InvalidArgumentError, match="outside"):
        asp.mark_dirty(-1, 4)
    with pytest.raises(ArgumentTypeError):
        asp.mark_dirty(0, 1.5)
