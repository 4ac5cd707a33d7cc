"""Host memory of RAM and ROM regions: page-aligned, slab-carved when small,
reachable by address (memory_region_get_ram_ptr)."""
import ctypes
import os
import signal
import threading
import gc

import pytest

from pymem import MemoryRegion, MemoryRegionOps, hostmem
from pymem.hostmem import PAGE_SIZE, SLAB_PAGES, RamPtr, _SlabAllocator


@pytest.mark.parametrize("size", [0x10, 0x1800, 0x3ffff, 0x40000, 0x100000])
def test_region_memory_of_any_size_starts_on_a_host_page(size):
    for mr in (MemoryRegion.ram("ram", size), MemoryRegion.rom("rom", size),
               MemoryRegion.rom_device("flash", size, MemoryRegionOps(lambda o, s: 0,
                                                                      lambda o, v, s: None))):
        with mr.get_ram_ptr() as ptr:
            assert ptr.address % PAGE_SIZE == 0
            assert ptr.size == size


def test_small_memories_share_slabs_a_whole_page_each():
    slabs = _SlabAllocator()
    blocks = [slabs.allocate(0x10) for _ in range(SLAB_PAGES + 1)]
    assert slabs.slab_count() == 2
    addresses = sorted(ctypes.addressof(ctypes.c_char.from_buffer(b)) for b in blocks)
    assert all(b - a >= PAGE_SIZE for a, b in zip(addresses, addresses[1:]))


def test_a_slab_is_unmapped_once_nothing_carved_from_it_is_alive():
    slabs = _SlabAllocator()
    blocks = [slabs.allocate(0x2000) for _ in range(4)]
    assert slabs.slab_count() == 1
    del blocks
    gc.collect()
    assert slabs.slab_count() == 0


def test_pages_given_back_come_back_zeroed_and_are_reused():
    slabs = _SlabAllocator()
    keep = slabs.allocate(0x10)   # keeps the slab mapped
    first = slabs.allocate(0x1000)
    where = ctypes.addressof(ctypes.c_char.from_buffer(first))
    first[:4] = b"dead"
    del first
    gc.collect()
    again = slabs.allocate(0x1000)
    assert ctypes.addressof(ctypes.c_char.from_buffer(again)) == where
    assert again[:4] == b"\0\0\0\0"
    assert keep[0] == 0


def test_get_ram_ptr_is_the_address_of_the_regions_bytes():
    rom = MemoryRegion.rom("boot", data=b"\x13\x00\x00\x00hello")
    with rom.get_ram_ptr() as ptr:
        assert ctypes.string_at(ptr.address, 9) == b"\x13\x00\x00\x00hello"
        assert int(ptr) == ptr.address
    ram = MemoryRegion.ram("ram", 0x2000)
    with ram.get_ram_ptr() as ptr:
        ctypes.memmove(ptr.address + 0x1000, b"abc", 3)
    assert bytes(ram.buffer[0x1000:0x1003]) == b"abc"


def test_get_ram_ptr_keeps_the_memory_alive_after_the_region_is_gone():
    ram = MemoryRegion.ram("scratch", 0x100)
    ptr = ram.get_ram_ptr()
    ram.buffer[:2] = b"ok"
    del ram
    gc.collect()
    assert ctypes.string_at(ptr.address, 2) == b"ok"
    ptr.release()
    with pytest.raises(ValueError, match="'scratch' was released"):
        ptr.address


def test_get_ram_ptr_of_an_alias_points_into_its_targets_window():
    ram = MemoryRegion.ram("ram", 0x4000)
    window = MemoryRegion.alias("window", ram, 0x1000, 0x2000)
    with ram.get_ram_ptr() as whole, window.get_ram_ptr() as part:
        assert part.address == whole.address + 0x1000
        assert part.size == 0x2000


def test_get_ram_ptr_of_a_region_without_memory_is_refused():
    io = MemoryRegion.io("uart", 0x10, MemoryRegionOps(lambda o, s: 0, lambda o, v, s: None))
    with pytest.raises(TypeError, match="'uart' \\(io\\) has no memory"):
        io.get_ram_ptr()
    assert isinstance(MemoryRegion.ram_device("bar", 0x10).get_ram_ptr(), RamPtr)


def test_memories_of_many_sizes_leave_no_type_behind_for_each_size():
    """A slab block is exported through a ctypes array type, and ctypes keeps
    every array type it ever made: one type per page count, not per byte
    size, or a program making regions of many sizes grows without bound (the
    `api` fuzz target's collections slowed 10x on them)."""
    def array_types():
        gc.collect()
        return sum(1 for o in gc.get_objects()
                   if isinstance(o, type) and issubclass(o, ctypes.Array))

    slabs = _SlabAllocator()
    for size in range(1, 20 * PAGE_SIZE, 97):      # every page count from 1 to 20
        slabs.allocate(size)
    before = array_types()
    for size in range(3, 20 * PAGE_SIZE, 89):      # ~900 byte sizes not seen yet
        block = slabs.allocate(size)
        assert len(block) == size and block.nbytes == size
    assert array_types() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_another_thread_allocates_leaves_the_child_able_to_allocate() -> None:
    # The child of a fork made while another thread was in the middle of
    # creating a RAM region (then under the slab lock) hung on its own first
    # RAM region.  The slabs change only under the GIL now, between bytecodes.
    stop = threading.Event()

    def allocating() -> None:
        while not stop.is_set():
            MemoryRegion.ram("busy", 0x1000)

    thread = threading.Thread(target=allocating)
    thread.start()
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.alarm(5)
                mr = MemoryRegion.ram("child", 0x1000)
                mr.buffer[:2] = b"ok"
                code = 0 if bytes(mr.buffer[:2]) == b"ok" else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        stop.set()
        thread.join()
    assert os.waitstatus_to_exitcode(status) == 0
