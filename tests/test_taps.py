"""Access taps (pymem/taps.py): what a tap is told, on every access path."""
import threading

import pytest

from pymem import (IOMMUAccessFlags, IOMMUTLBEntry, MemoryRegion, MemoryRegionOps, MemorySystem,
                   MemTxAttrs, MemTxError, MemTxResult)
from pymem.errors import ArgumentTypeError, InvalidArgumentError
from pymem.region import set_ops

RAM_AT, ROM_AT, DEV_AT = 0x0, 0x10000, 0x20000


class Device:
    def __init__(self, value=0x11223344):
        self.value = value
        self.writes = []

    def read(self, offset, size):
        return self.value & ((1 << (8 * size)) - 1)

    def write(self, offset, value, size):
        self.writes.append((offset, value, size))


def board(big_endian_device=False):
    """RAM at 0, a ROM at 0x10000, a 4-byte-register device at 0x20000,
    unassigned space everywhere else."""
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    dev = Device()
    ram = MemoryRegion.ram("ram", 0x2000)
    rom = MemoryRegion.rom("rom", 0x1000, b"\xaa" * 0x1000)
    io = MemoryRegion.io("dev", 0x100, MemoryRegionOps(
        dev.read, dev.write, endianness="big" if big_endian_device else "little",
        valid_min=1, valid_max=4, impl_min=4, impl_max=4))
    root.add_subregion(RAM_AT, ram)
    root.add_subregion(ROM_AT, rom)
    root.add_subregion(DEV_AT, io)
    asp = system.address_space(root, "memory")
    return asp, dev


def seen(events):
    return [(e.kind, "w" if e.is_write else "r", e.addr, e.size, e.value, e.mmio)
            for e in events]


# ------------------------------------------------------ what a tap is told

def test_a_fixed_width_ram_load_and_store_are_one_piece_each():
    asp, _ = board()
    events = []
    asp.add_tap(events.append)
    asp.stl_le(0x10, 0xdeadbeef)
    assert asp.ldl_le(0x10) == 0xdeadbeef
    assert seen(events) == [("ram", "w", 0x10, 4, 0xdeadbeef, False),
                            ("ram", "r", 0x10, 4, 0xdeadbeef, False)]
    load = events[1]
    assert (load.space, load.region.name, load.offset, load.result) == (asp, "ram", 0x10, 0)
    assert load.data == bytes.fromhex("efbeadde") and load.attrs is None
    assert repr(load) == "<AccessEvent 'memory' read 4 bytes at 0x10: 'ram' +0x10 (ram), result 0>"


def test_builtins_bound_before_the_tap_was_added_tell_it():
    asp, _ = board()
    ld, st, read, write = asp.ldl_be, asp.stw_le, asp.read, asp.write
    events = []
    asp.add_tap(events.append)
    st(0x20, 0x1234)
    assert ld(0x20) == 0x34120000
    write(0x30, b"\x01\x02")
    assert read(0x30, 2) == b"\x01\x02"
    assert seen(events) == [("ram", "w", 0x20, 2, 0x1234, False),
                            ("ram", "r", 0x20, 4, 0x34120000, False),
                            ("ram", "w", 0x30, 2, None, False),
                            ("ram", "r", 0x30, 2, None, False)]
    assert events[1].data == b"\x34\x12\x00\x00"   # ldl_be: big-endian bytes
    assert [e.data for e in events[2:]] == [b"\x01\x02"] * 2


def test_mmio_loads_and_stores_tell_the_devices_value_from_c_and_python():
    asp, dev = board(big_endian_device=True)
    events = []
    asp.add_tap(events.append)
    assert asp.ldl_be(DEV_AT + 4) == 0x11223344          # the C device path
    asp.stl_le(DEV_AT + 8, 0x01020304)
    assert asp.load(DEV_AT, 4, attrs=MemTxAttrs(secure=True)) == (0x44332211, 0)
    assert seen(events) == [("io", "r", DEV_AT + 4, 4, 0x11223344, True),
                            ("io", "w", DEV_AT + 8, 4, 0x04030201, True),
                            ("io", "r", DEV_AT, 4, 0x11223344, True)]
    assert dev.writes == [(8, 0x04030201, 4)]
    assert [e.data for e in events] == [bytes.fromhex("11223344"), bytes.fromhex("04030201"),
                                        bytes.fromhex("11223344")]
    assert events[2].attrs.secure and events[0].offset == 4


def test_rw_tells_one_piece_per_section_and_per_device_access():
    asp, _ = board()
    events = []
    asp.add_tap(events.append)
    buf = bytearray(8)
    # The last 4 bytes of RAM, then unassigned space (4-byte pieces).
    assert asp.rw(0x1ffc, buf, False) == MemTxResult.DECODE_ERROR
    assert seen(events) == [("ram", "r", 0x1ffc, 4, None, False),
                            ("unassigned", "r", 0x2000, 4, 0, True)]
    assert events[1].region is None and events[1].result == MemTxResult.DECODE_ERROR
    events.clear()
    # A 6-byte write to a device with 4-byte registers: two widened accesses.
    asp.write(DEV_AT, b"\x01\x02\x03\x04\x05\x06")
    assert [(e.addr, e.size, e.value) for e in events] == [(DEV_AT, 4, 0x04030201),
                                                          (DEV_AT + 4, 2, 0x0605)]


def test_rom_writes_are_device_pieces_answering_decode_error():
    asp, _ = board()
    events = []
    asp.add_tap(events.append)
    assert asp.rw(ROM_AT, b"\x00", True) == MemTxResult.DECODE_ERROR
    assert asp.read(ROM_AT, 2) == b"\xaa\xaa"
    assert seen(events) == [("rom", "w", ROM_AT, 1, 0, True),
                            ("rom", "r", ROM_AT, 2, None, False)]
    assert events[0].result == MemTxResult.DECODE_ERROR


def test_an_unassigned_load_is_told_before_the_error_is_raised():
    asp, _ = board()
    events = []
    asp.add_tap(events.append)
    with pytest.raises(MemTxError):
        asp.ldl_le(0x50000)
    assert seen(events) == [("unassigned", "r", 0x50000, 4, 0, True)]


def test_an_iommu_access_is_told_by_the_target_space_at_the_translated_address():
    system = MemorySystem()
    dram = MemoryRegion.ram("dram", 0x10000)
    droot = MemoryRegion.container("dma-root", 1 << 32)
    droot.add_subregion(0, dram)
    dma = system.address_space(droot, "dma")
    perm = [IOMMUAccessFlags.RW]

    def translate(addr, flag):
        return IOMMUTLBEntry(dma, addr & ~0xfff, (addr & ~0xfff) + 0x1000, 0xfff, perm[0])

    root = MemoryRegion.container("bus", 1 << 32)
    root.add_subregion(0x100000, MemoryRegion.iommu("iommu", 0x8000, translate, dma))
    bus = system.address_space(root, "bus")
    on_bus, on_dma = [], []
    bus.add_tap(on_bus.append)
    dma.add_tap(on_dma.append)
    bus.stl_le(0x100010, 0x55)
    bus.write(0x100020, b"\x01\x02")
    assert seen(on_dma) == [("ram", "w", 0x1010, 4, 0x55, False),
                            ("ram", "w", 0x1020, 2, None, False)]
    assert on_bus == [] and all(e.space is dma for e in on_dma)
    perm[0] = IOMMUAccessFlags.NONE   # refused: unassigned in the bus space
    assert bus.rw(0x100030, bytearray(2), False) == MemTxResult.DECODE_ERROR
    assert seen(on_bus) == [("unassigned", "r", 0x100030, 2, 0, True)]


def test_map_tells_a_read_and_unmap_the_bytes_written():
    asp, _ = board()
    events = []
    asp.add_tap(events.append)
    view = asp.map(0x100, 16, False)
    asp.unmap(view)
    view = asp.map(0x200, 16, True)
    view[:4] = b"\x01\x02\x03\x04"
    asp.unmap(view, 4)
    assert seen(events) == [("ram", "r", 0x100, 16, None, False),
                            ("ram", "w", 0x200, 4, None, False)]
    assert events[1].data == b"\x01\x02\x03\x04"


def test_a_tap_added_while_a_view_is_mapped_is_told_its_write_at_unmap():
    # map took its one-call path (no tap then); the unmap still tells.
    asp, _ = board()
    view = asp.map(0x200, 16, True)
    events = []
    asp.add_tap(events.append)
    view[:2] = b"\x05\x06"
    asp.unmap(view, 2)
    assert seen(events) == [("ram", "w", 0x200, 2, None, False)]
    assert events[0].data == b"\x05\x06"


# ----------------------------------------------------------------- filters

def test_filters_by_kind_address_range_and_direction():
    asp, _ = board()
    io_only, window, writes = [], [], []
    asp.add_tap(io_only.append, kinds={"io"})
    asp.add_tap(window.append, start=0x100, end=0x200)
    asp.add_tap(writes.append, reads=False)
    asp.stl_le(0xfe, 1)        # overlaps the window's start
    asp.ldl_le(0x1fc)
    asp.ldl_le(0x200)          # just past the window
    asp.ldl_le(DEV_AT)
    asp.stl_le(DEV_AT, 7)
    assert [e.addr for e in io_only] == [DEV_AT, DEV_AT]
    assert [e.addr for e in window] == [0xfe, 0x1fc]
    assert [(e.kind, e.addr) for e in writes] == [("ram", 0xfe), ("io", DEV_AT)]


def test_an_mmio_only_tap_leaves_ram_on_its_one_call_path():
    asp, _ = board()
    events = []
    asp.add_tap(events.append, mmio_only=True)
    assert not asp._tapset().memory
    asp.stl_le(0, 1)
    asp.write(0x10, b"\x00" * 32)
    asp.ldl_le(DEV_AT)
    assert seen(events) == [("io", "r", DEV_AT, 4, 0x11223344, True)]


def test_bad_tap_arguments_are_refused_naming_the_space():
    asp, _ = board()
    with pytest.raises(ArgumentTypeError, match="'memory'.*callable"):
        asp.add_tap(42)
    with pytest.raises(InvalidArgumentError, match="unknown kinds \\['mmio'\\]"):
        asp.add_tap(print, kinds={"mmio"})
    with pytest.raises(ArgumentTypeError, match="the string 'io'"):
        asp.add_tap(print, kinds="io")
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        asp.add_tap(print, start=0x100, end=0x100)
    with pytest.raises(InvalidArgumentError, match="see nothing"):
        asp.add_tap(print, reads=False, writes=False)
    assert asp.taps == ()


# ----------------------------------------------------------------- removal

def test_a_removed_tap_is_told_nothing_more_and_removing_twice_is_harmless():
    asp, _ = board()
    events = []
    ld = asp.ldl_le
    tap = asp.add_tap(events.append)
    ld(0)
    tap.remove()
    tap.remove()
    ld(0)
    asp.ldl_le(DEV_AT)
    assert len(events) == 1 and not tap.installed and asp.taps == ()


def test_a_tap_as_a_context_manager_is_removed_when_the_block_ends():
    asp, _ = board()
    events = []
    with asp.add_tap(events.append):
        asp.ldub(0)
    asp.ldub(0)
    assert len(events) == 1 and asp.taps == ()


def test_a_tap_may_remove_itself_while_it_is_being_told():
    asp, _ = board()
    told = []

    def once(event):
        told.append(event.addr)
        tap.remove()
    tap = asp.add_tap(once)
    other = []
    asp.add_tap(other.append)
    asp.ldl_le(0)
    asp.ldl_le(4)
    assert told == [0] and [e.addr for e in other] == [0, 4]


def test_a_region_given_other_ops_answers_through_the_new_ones():
    asp, dev = board()
    ld = asp.ldl_le
    assert ld(DEV_AT) == 0x11223344   # the builtin caches the device's callbacks
    (io,) = [mr for mr in asp.root.subregions if mr.name == "dev"]
    set_ops(io, MemoryRegionOps(lambda o, s: 0x77, lambda o, v, s: None))
    assert ld(DEV_AT) == 0x77


# ----------------------------------------------------------- a tap raising

def test_a_tap_that_raises_reaches_the_caller_after_the_access_is_done():
    asp, dev = board()

    def boom(event):
        raise RuntimeError(f"tap saw {event.addr:#x}")
    asp.add_tap(boom)
    with pytest.raises(RuntimeError, match="0x10"):
        asp.stl_le(0x10, 0x99)
    with pytest.raises(RuntimeError, match="0x20004"):
        asp.stl_le(DEV_AT + 4, 5)
    with pytest.raises(RuntimeError):
        asp.write(0x40, b"\x01")
    assert dev.writes == [(4, 5, 4)]
    assert asp.taps == (boom,)   # still installed
    (tap,) = asp._tapset().taps
    asp._tapset().remove(tap)
    assert asp.ldl_le(0x10) == 0x99 and asp.ldub(0x40) == 1


# ----------------------------------------------------------------- threads

def test_taps_added_and_removed_while_other_threads_access_see_whole_events():
    asp, _ = board()
    stop = threading.Event()
    errors = []

    def worker(base):
        ld, st = asp.ldl_le, asp.stl_le
        try:
            while not stop.is_set():
                st(base, 1)
                ld(base)
                ld(DEV_AT)
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(0x100 * i,)) for i in range(1, 3)]
    for t in threads:
        t.start()
    counts = []
    try:
        for _ in range(200):
            events = []
            tap = asp.add_tap(events.append)
            asp.ldub(0)
            tap.remove()
            counts.append(len(events))
            assert all(e.size in (1, 4) and e.space is asp for e in events)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors and all(n >= 1 for n in counts)
