"""QEMU behaviours of the access path that pymem pins, one per test."""
import pytest

from pymem import (IOMMUAccessFlags, IOMMUTLBEntry, MemoryListener, MemoryRegion,
                   MemoryRegionOps, MemorySystem, MemTxAttrs, MemTxError, MemTxResult, PymemError,
                   TopologyError)
from pymem.errors import ArgumentTypeError, InvalidArgumentError
from pymem.region import DIRTY_MEMORY_MIGRATION, DIRTY_MEMORY_VGA
from pymem.trace import record as record_trace


class Device:
    """MMIO callbacks that record what they see and answer fixed values."""

    def __init__(self, value=0x0102030405060708):
        self.value = value
        self.log = []

    def read(self, offset, size):
        self.log.append(("r", offset, size))
        return self.value & ((1 << (8 * size)) - 1)

    def write(self, offset, value, size):
        self.log.append(("w", offset, value, size))

    def ops(self, **kw):
        return MemoryRegionOps(self.read, self.write, **kw)


def machine(*regions):
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    for addr, mr in regions:
        root.add_subregion(addr, mr)
    return system, root, system.address_space(root, "memory")


# ------------------------------------------------------------------ RAM, ROM

def test_ram_reads_back_what_was_written_across_regions():
    a, b = MemoryRegion.ram("a", 0x1000), MemoryRegion.ram("b", 0x1000)
    _, _, asp = machine((0, a), (0x1000, b))
    asp.write(0xffe, b"\x01\x02\x03\x04")
    assert asp.read(0xffe, 4) == b"\x01\x02\x03\x04"
    assert bytes(a.buffer[0xffe:]) == b"\x01\x02" and bytes(b.buffer[:2]) == b"\x03\x04"


def test_loads_and_stores_use_the_byte_order_they_name():
    ram = MemoryRegion.ram("ram", 0x1000)
    _, _, asp = machine((0, ram))
    asp.stl_be(0x10, 0x11223344)
    assert bytes(ram.buffer[0x10:0x14]) == b"\x11\x22\x33\x44"
    assert asp.ldl_le(0x10) == 0x44332211
    asp.stq_le(0x20, 0xffffffffffffffff)
    assert asp.ldq_le(0x20) == 0xffffffffffffffff
    asp.stw_le(0x30, 0xabcd)
    assert (asp.lduw_be(0x30), asp.ldub(0x31)) == (0xcdab, 0xab)


def test_store_of_a_value_wider_than_the_access_is_refused():
    _, _, asp = machine((0, MemoryRegion.ram("ram", 0x1000)))
    with pytest.raises(ValueError):
        asp.stb(0, 0x100)


def test_rom_write_changes_nothing_and_answers_decode_error():
    rom = MemoryRegion.rom("rom", 0x1000, b"\xaa" * 16)
    _, _, asp = machine((0, rom))
    assert asp.rw(0, b"\x00\x00", True) == MemTxResult.DECODE_ERROR
    with pytest.raises(MemTxError) as err:
        asp.stl_le(0, 0)
    assert err.value.result == MemTxResult.DECODE_ERROR
    assert asp.read(0, 4) == b"\xaa" * 4


def test_write_through_a_read_only_alias_is_dropped_without_error():
    ram = MemoryRegion.ram("ram", 0x1000)
    alias = MemoryRegion.alias("ro", ram, 0, 0x1000)
    alias.set_readonly(True)
    _, _, asp = machine((0, ram), (0x10000, alias))
    asp.write(0x10000, b"\x55")
    asp.stl_le(0x10004, 0x12345678)
    assert bytes(ram.buffer[:8]) == bytes(8)
    asp.write(0, b"\x66")
    assert asp.read(0x10000, 1) == b"\x66"


def test_rom_device_reads_memory_in_romd_mode_and_ops_otherwise():
    dev = Device(0x5a)
    mr = MemoryRegion.rom_device("flash", 0x1000, dev.ops())
    mr.buffer[:1] = b"\x11"
    _, _, asp = machine((0, mr))
    assert asp.read(0, 1) == b"\x11" and dev.log == []
    asp.write(0, b"\x22")
    assert dev.log == [("w", 0, 0x22, 1)] and bytes(mr.buffer[:1]) == b"\x11"
    mr.set_romd(False)
    assert asp.read(0, 1) == b"\x5a"


# ---------------------------------------------------------------------- MMIO

def test_split_mmio_read_puts_little_endian_pieces_low_first():
    dev = Device()
    dev.read = lambda offset, size: dev.log.append(("r", offset, size)) or (0x1100 + offset)
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, dev.ops(impl_max=2))))
    assert asp.read(0, 4) == bytes([0x00, 0x11, 0x02, 0x11])
    assert dev.log == [("r", 0, 2), ("r", 2, 2)]


def test_split_mmio_read_puts_big_endian_pieces_high_first():
    dev = Device()
    dev.read = lambda offset, size: dev.log.append(("r", offset, size)) or (0x1100 + offset)
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100,
                                            dev.ops(impl_max=2, endianness="big"))))
    assert asp.read(0, 4) == bytes([0x11, 0x00, 0x11, 0x02])
    assert asp.ldl_be(0) == 0x11001102 and asp.ldl_le(0) == 0x02110011


def test_split_mmio_write_hands_each_callback_its_part():
    dev = Device()
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, dev.ops(impl_max=1))))
    asp.stl_le(0, 0x44332211)
    assert dev.log == [("w", 0, 0x11, 1), ("w", 1, 0x22, 1), ("w", 2, 0x33, 1),
                       ("w", 3, 0x44, 1)]


def test_long_mmio_read_is_cut_to_the_largest_valid_aligned_size():
    dev = Device()
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, dev.ops())))
    asp.read(2, 7)
    assert dev.log == [("r", 2, 2), ("r", 4, 4), ("r", 8, 1)]


def test_access_size_the_device_rejects_answers_decode_error_without_callback():
    dev = Device()
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, dev.ops(valid_min=4))))
    assert asp.rw(0, bytearray(2), False) == MemTxResult.DECODE_ERROR
    assert asp.load(1, 4) == (0, MemTxResult.DECODE_ERROR)
    assert dev.log == []


def test_narrow_access_to_a_wide_device_is_widened_and_masked():
    dev = Device(0xaabbccdd)
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, dev.ops(impl_min=4))))
    assert asp.read(1, 1) == b"\xdd"
    assert dev.log == [("r", 1, 4)]


def test_with_attrs_callbacks_get_the_attributes_and_may_answer_errors():
    seen = []

    def read(offset, size, attrs):
        seen.append(attrs)
        return 7, MemTxResult.ACCESS_ERROR if attrs.secure else MemTxResult.OK

    ops = MemoryRegionOps(read, lambda *a: None, with_attrs=True)
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, ops)))
    assert asp.read(0, 1, MemTxAttrs(requester_id=3)) == b"\x07"
    assert asp.rw(0, bytearray(1), False, MemTxAttrs(secure=True)) == MemTxResult.ACCESS_ERROR
    assert [a.requester_id for a in seen] == [3, 0]


def test_mmio_load_is_one_device_access_of_its_full_width():
    dev = Device()
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, dev.ops(valid_max=2))))
    assert asp.load(0, 4) == (0, MemTxResult.DECODE_ERROR)
    asp.read(0, 4)
    assert dev.log == [("r", 0, 2), ("r", 2, 2)]


# ---------------------------------------------------------------- unassigned

def test_unassigned_read_gives_zeros_and_decode_error():
    _, _, asp = machine((0, MemoryRegion.ram("ram", 0x1000)))
    buf = bytearray(b"\xff" * 8)
    assert asp.rw(0x2000, buf, False) == MemTxResult.DECODE_ERROR
    assert buf == bytes(8)
    with pytest.raises(MemTxError) as err:
        asp.ldl_le(0x2000)
    assert (err.value.result, err.value.addr) == (MemTxResult.DECODE_ERROR, 0x2000)


def test_unassigned_write_answers_decode_error_and_the_rest_still_lands():
    ram = MemoryRegion.ram("ram", 0x1000)
    _, _, asp = machine((0, ram))
    assert asp.rw(0xffc, b"\x01" * 8, True) == MemTxResult.DECODE_ERROR
    assert bytes(ram.buffer[0xffc:]) == b"\x01" * 4


# --------------------------------------------------------------------- IOMMU

def iommu_machine(perm=IOMMUAccessFlags.RW):
    system = MemorySystem()
    dram = MemoryRegion.ram("dram", 0x10000)
    droot = MemoryRegion.container("dma-root", 1 << 32)
    droot.add_subregion(0, dram)
    dma = system.address_space(droot, "dma")
    calls = []

    def translate(addr, flag):
        calls.append((addr, flag))
        # Page n of the IOMMU window maps to page n + 1 of dram.
        return IOMMUTLBEntry(dma, addr & ~0xfff, (addr & ~0xfff) + 0x1000, 0xfff, perm)

    root = MemoryRegion.container("bus", 1 << 32)
    root.add_subregion(0x100000, MemoryRegion.iommu("iommu", 0x8000, translate, dma))
    return dram, system.address_space(root, "bus"), calls


def test_iommu_translates_into_its_target_address_space_page_by_page():
    dram, bus, calls = iommu_machine()
    bus.write(0x100ffe, b"\x01\x02\x03\x04")
    assert bytes(dram.buffer[0x1ffe:0x2002]) == b"\x01\x02\x03\x04"
    assert calls == [(0xffe, IOMMUAccessFlags.WO), (0x1000, IOMMUAccessFlags.WO)]
    assert bus.ldl_le(0x100ffc) == 0x02010000


def test_load_across_an_iommu_page_is_not_split_and_fails_as_in_qemu():
    _, bus, _ = iommu_machine()
    # address_space_ldl: 2 bytes left in the page, so the 4-byte load goes
    # to the RAM region's (unassigned) ops.
    with pytest.raises(MemTxError):
        bus.ldl_le(0x100ffe)
    assert bus.read(0x100ffe, 4) == bytes(4)


def test_iommu_permission_fault_answers_decode_error():
    dram, bus, _ = iommu_machine(perm=IOMMUAccessFlags.RO)
    assert bus.rw(0x100000, b"\x01", True) == MemTxResult.DECODE_ERROR
    assert dram.buffer[0x1000] == 0
    assert bus.read(0x100000, 1) == b"\x00"


def test_iommus_chain_until_memory():
    dram, bus, _ = iommu_machine()
    system = bus.system
    calls = []

    def translate(addr, flag):
        calls.append(addr)
        return IOMMUTLBEntry(bus, addr, addr + 0x100000, 0xfff, IOMMUAccessFlags.RW)

    root = MemoryRegion.container("outer", 1 << 32)
    root.add_subregion(0, MemoryRegion.iommu("outer-iommu", 0x8000, translate, bus))
    outer = system.address_space(root, "outer")
    outer.stb(0x10, 0x99)
    assert dram.buffer[0x1010] == 0x99 and calls == [0x10]


# ---------------------------------------------------------------------- dirty

def test_writes_set_dirty_bits_only_for_logging_clients():
    ram = MemoryRegion.ram("vram", 0x4000)
    _, _, asp = machine((0, ram))
    asp.stb(0x10, 1)
    assert ram.get_and_clear_dirty(0, 0x4000, DIRTY_MEMORY_VGA).pages_dirty() == []
    ram.set_log(True, DIRTY_MEMORY_VGA)
    asp.write(0xffe, b"abcd")
    asp.stl_le(0x3000, 5)
    assert not ram.get_dirty(0, 0x4000, DIRTY_MEMORY_MIGRATION)
    assert ram.get_and_clear_dirty(0, 0x4000, DIRTY_MEMORY_VGA).pages_dirty() == [0, 0x1000, 0x3000]
    assert ram.get_and_clear_dirty(0, 0x4000, DIRTY_MEMORY_VGA).pages_dirty() == []


def test_set_log_tells_listeners_log_start_and_log_stop():
    ram = MemoryRegion.ram("vram", 0x4000)
    _, _, asp = machine((0, ram))
    events = []

    class Logger(MemoryListener):
        def log_start(self, section, old, new):
            events.append(("start", section.mr.name, old, new))

        def log_stop(self, section, old, new):
            events.append(("stop", section.mr.name, old, new))

    asp.register_listener(Logger())
    ram.set_log(True, DIRTY_MEMORY_VGA)
    ram.set_log(False, DIRTY_MEMORY_VGA)
    assert events == [("start", "vram", 0, 1), ("stop", "vram", 1, 0)]


def test_map_for_writing_marks_the_written_pages_dirty_on_unmap():
    ram = MemoryRegion.ram("ram", 0x4000)
    ram.set_log(True, DIRTY_MEMORY_MIGRATION)
    _, _, asp = machine((0, ram))
    view = asp.map(0x800, 0x10000, True)
    assert len(view) == 0x3800   # stops where the RAM ends
    view[0x1000] = 7
    asp.unmap(view, 0x1001)
    assert ram.buffer[0x1800] == 7
    assert ram.get_and_clear_dirty(0, 0x4000, DIRTY_MEMORY_MIGRATION).pages_dirty() == [0, 0x1000]


def test_map_of_mmio_goes_through_a_bounce_buffer():
    dev = Device(0x11)
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, dev.ops(valid_max=1))))
    view = asp.map(0, 2, False)
    assert bytes(view) == b"\x11\x11"
    asp.unmap(view)
    view = asp.map(0, 1, True)
    view[0] = 0x42
    asp.unmap(view)
    assert dev.log[-1] == ("w", 0, 0x42, 1)


# ----------------------------------------------------------------- callbacks

def test_exception_in_a_callback_reaches_the_caller_and_the_space_keeps_working():
    def read(offset, size):
        raise RuntimeError("device model bug")

    ram = MemoryRegion.ram("ram", 0x1000)
    _, _, asp = machine((0, ram), (0x1000, MemoryRegion.io("bad", 0x100,
                                                            MemoryRegionOps(read, print))))
    with pytest.raises(RuntimeError):
        asp.rw(0xffe, bytearray(4), False)
    with pytest.raises(RuntimeError):
        asp.ldl_le(0x1000)
    asp.stl_le(0, 0x1234)
    assert asp.ldl_le(0) == 0x1234


def test_callback_that_changes_the_topology_takes_effect_at_its_commit():
    system, root, asp = machine()
    late = MemoryRegion.ram("late", 0x1000)

    def write(offset, value, size):
        root.add_subregion(0x10000, late)

    root.add_subregion(0, MemoryRegion.io("ctl", 0x100, MemoryRegionOps(lambda o, s: 0, write)))
    asp.stl_le(0, 1)
    asp.stl_le(0x10000, 0xcafe)
    assert asp.ldl_le(0x10000) == 0xcafe and late.buffer[0] == 0xfe


# ------------------------------------- device accesses the builtins make in C

def test_builtin_mmio_load_and_store_call_the_device_once_in_its_byte_order():
    dev = Device(0x11223344)
    _, _, asp = machine((0x1000, MemoryRegion.io("dev", 0x100,
                                                 dev.ops(endianness="big", valid_max=8))))
    assert asp.ldl_be(0x1010) == 0x11223344
    assert asp.ldl_le(0x1010) == 0x44332211
    asp.stw_le(0x1020, 0xaabb)
    asp.stq_be(0x1028, 0x0102030405060708)   # wider than impl_max: split in Python
    assert dev.log[:3] == [("r", 0x10, 4), ("r", 0x10, 4), ("w", 0x20, 0xbbaa, 2)]
    assert dev.log[3:] == [("w", 0x28, 0x01020304, 4), ("w", 0x2c, 0x05060708, 4)]


def test_a_device_region_the_tree_dropped_is_not_kept_alive_by_a_builtin_that_used_it():
    # The builtin remembers the last device (its callbacks, the region by a
    # weak reference, for the taps' events), never the region itself.
    import gc
    import weakref

    from pymem import rcu
    dev = Device(0x11)
    system, root, asp = machine((0x1000, MemoryRegion.io("dev", 0x100, dev.ops())))
    ld = asp.ldl_le
    events = []
    with asp.add_tap(events.append):
        assert ld(0x1004) == 0x11 and events[0].region.name == "dev"
    region = weakref.ref(root.subregions[0])
    root.del_subregion(root.subregions[0])
    events.clear()
    rcu.drain_call_rcu()   # the old view holds it until its grace period
    gc.collect()
    assert region() is None
    with pytest.raises(MemTxError):
        ld(0x1004)   # unassigned now


def test_builtin_mmio_load_masks_what_the_callback_answers_as_the_python_path_does():
    values = [-1, 1 << 40, True]
    ops = MemoryRegionOps(lambda offset, size: values.pop(0), print)
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, ops)))
    assert [asp.ldl_le(0), asp.lduw_le(0), asp.ldub(0)] == [0xffffffff, 0, 1]
    values[:] = [-1]
    assert asp.load(0, 4) == (0xffffffff, MemTxResult.OK)    # the Python path agrees
    values[:] = ["not a number"]
    with pytest.raises(TypeError):
        asp.ldl_le(0)


def test_builtin_mmio_load_answers_a_plain_int_whatever_int_the_callback_gave():
    import enum

    class Level(enum.IntEnum):
        HIGH = 7
    values = [True, Level.HIGH, 0x1234]
    ops = MemoryRegionOps(lambda offset, size: values.pop(0), print)
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, ops)))
    answers = [asp.ldl_le(0), asp.ldl_le(0), asp.ldl_le(0)]
    assert answers == [1, 7, 0x1234]
    assert [type(a) for a in answers] == [int, int, int]


def test_a_device_callback_that_keeps_its_offset_ints_sees_each_as_it_was_passed():
    # The builtin reuses the offset int of its last device call only when
    # nobody else holds it: kept ones (a list, a nested access's frame) stay.
    kept, seen = [], []

    def read(offset, size):
        seen.append(offset + 0)          # its value when passed
        if len(seen) % 2:
            kept.append(offset)          # every other one is kept
        if offset == 0x4000_0008:        # a nested access on the same builtin
            ld(0x3000)
            assert offset == 0x4000_0008
        return 0

    ops = MemoryRegionOps(read, print)
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x8000_0000, ops)))
    ld = asp.ldl_le
    for addr in (0x1000, 0x2000, 0x4000_0008, 0x10, 0x7fff_fff0, 0x5000, 0x6000):
        ld(addr)
    assert seen == [0x1000, 0x2000, 0x4000_0008, 0x3000, 0x10, 0x7fff_fff0, 0x5000, 0x6000]
    assert kept == seen[::2]


def test_misaligned_or_rejected_builtin_mmio_accesses_follow_qemus_rules():
    dev = Device()
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, dev.ops(valid_min=2))))
    with pytest.raises(MemTxError):
        asp.ldub(0)                       # below valid_min: no callback
    with pytest.raises(MemTxError):
        asp.ldl_le(2)                     # misaligned for an aligned device
    assert dev.log == []


def test_builtin_mmio_accesses_are_recorded_while_a_trace_runs(tmp_path):
    from pymem.trace import load_trace

    dev = Device(0x55)
    _, _, asp = machine((0, MemoryRegion.io("dev", 0x100, dev.ops())))
    ld = asp.ldl_le
    with record_trace(asp, tmp_path / "t.jsonl"):
        ld(0x4)
        asp.stb(0x8, 1)
    ld(0x4)                               # after recording: C again
    accesses = load_trace(tmp_path / "t.jsonl").accesses
    assert [(e.op, e.addr, e.size) for e in accesses] == [("read", 4, 4), ("write", 8, 1)]
    assert len(dev.log) == 3


def test_memory_region_ops_are_fixed_once_made():
    ops = Device().ops()
    with pytest.raises(AttributeError, match="fixed once made"):
        ops.valid_max = 8


def test_translate_names_the_region_offset_and_length_inside_its_section():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    ram = MemoryRegion.ram("ram", 0x10000)
    root.add_subregion(0x1000, MemoryRegion.alias("window", ram, 0x4000, 0x2000))
    asp = system.address_space(root, "memory")
    assert asp.translate(0x1800, 0x4000) == (ram, 0x4800, 0x1800)
    assert asp.translate(0x10, 4) == (None, 0x10, 4)


@pytest.mark.parametrize("entry, message", [
    (lambda addr, flag: IOMMUTLBEntry(None, 0, 0, -2, IOMMUAccessFlags.RW), "invalid mapping"),
    (lambda addr, flag: IOMMUTLBEntry(None, 0, 1 << 64, 0xfff, IOMMUAccessFlags.RW),
     "invalid mapping"),
    (lambda addr, flag: 7, "must answer an IOMMUTLBEntry"),
    (lambda addr, flag: IOMMUTLBEntry(None, 0, 0, 0xfff, IOMMUAccessFlags.RW),
     "into no address space"),
])
def test_a_nonsensical_iommu_answer_is_an_error_naming_the_iommu(entry, message):
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    root.add_subregion(0x10000, MemoryRegion.iommu("smmu", 0x10000, entry))
    asp = system.address_space(root, "memory")
    for access in (lambda: asp.read(0x10000, 4), lambda: asp.ldl_le(0x10000)):
        with pytest.raises(TopologyError, match=f"IOMMU 'smmu'.*{message}"):
            access()


def test_out_of_range_addresses_are_the_same_value_error_on_every_path():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    asp = system.address_space(root, "memory")
    for call in (lambda: asp.ldl_le(-1), lambda: asp.ldl_le(1 << 64),
                 lambda: asp.stl_le(1 << 64, 0), lambda: asp.read(-4, 4),
                 lambda: asp.translate(0, -5), lambda: asp.map(0, -1, False),
                 lambda: asp.read(0, True)):
        with pytest.raises(ValueError):
            call()


def test_a_builtin_access_running_past_2_64_is_refused_before_any_device_sees_it():
    dev = Device()
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 64)
    root.add_subregion((1 << 64) - 0x1000, MemoryRegion.io(
        "top", 0x1000, dev.ops(unaligned=True, valid_max=8, impl_max=8)))
    asp = system.address_space(root, "memory")
    for access in (lambda: asp.ldl_le((1 << 64) - 2), lambda: asp.stl_le((1 << 64) - 2, 1),
                   lambda: asp.ldq_le((1 << 64) - 4)):
        with pytest.raises(ValueError, match="2\\^64|64-bit"):
            access()
    assert dev.log == []


# ----------------------------------------------------------------- ram_device

def test_ram_device_memory_is_reached_one_device_access_at_a_time():
    bar = MemoryRegion.ram_device("vfio-bar0", 0x1000)
    _, _, asp = machine((0x10000, bar))
    asp.stl_le(0x10004, 0x11223344)
    asp.write(0x10010, bytes(range(20)))          # split into 8, 8 and 4 byte accesses
    assert bytes(bar.buffer[4:8]) == bytes.fromhex("44332211")
    assert asp.read(0x10010, 20) == bytes(range(20))
    assert asp.ldq_le(0x10010) == int.from_bytes(bytes(range(8)), "little")
    assert asp.ldl_le(0x10011) == int.from_bytes(bytes(range(1, 5)), "little")  # unaligned


def test_a_ram_device_access_running_past_its_end_touches_only_the_bytes_inside():
    # Found by the api fuzz target: an 8-byte write 4 bytes before the end of
    # a ram_device raised a bare ValueError from a memoryview assignment (device
    # accesses are not clamped to the region, as in QEMU, which would write
    # host memory past the BAR).  Reads gave the bytes inside and zeros.
    bar = MemoryRegion.ram_device("vfio-bar0", 0x10)
    bar.buffer[:] = bytes(range(1, 17))
    after = MemoryRegion.ram("after", 0x10)
    _, _, asp = machine((0x10000, bar), (0x10010, after))
    assert asp.rw(0x1000c, bytearray(b"abcdefgh"), True) == 0
    assert bytes(bar.buffer[12:]) == b"abcd"
    assert bytes(after.buffer[:4]) == bytes(4)            # nothing spilled over
    buf = bytearray(8)
    assert asp.rw(0x1000c, buf, False) == 0
    assert bytes(buf) == b"abcd" + bytes(4)
    asp.stq_le(0x1000e, int.from_bytes(b"XYZWVUTS", "little"))
    assert bytes(bar.buffer[14:]) == b"XY"


def test_ram_device_is_mapped_through_a_bounce_buffer_and_never_dirty_logged():
    bar = MemoryRegion.ram_device("vfio-bar0", 0x1000)
    _, _, asp = machine((0x10000, bar))
    view = asp.map(0x10000, 4, True)
    view[:] = b"abcd"
    assert bytes(bar.buffer[:4]) == bytes(4)          # not direct: QEMU bounces too
    asp.unmap(view)
    assert bytes(bar.buffer[:4]) == b"abcd"
    with pytest.raises(TypeError, match="no dirty log"):
        bar.get_dirty(0, 4, DIRTY_MEMORY_VGA)
    assert bar.type_name() == "ramd"


# ------------------------------------------------- buffers that are guest RAM

def pattern(n):
    return bytes(i * 7 & 0xff for i in range(n))


@pytest.mark.parametrize("shift", [0x10, -0x10], ids=["up", "down"])
def test_writing_a_view_of_guest_ram_over_itself_moves_it_as_memmove(shift):
    # A DMA descriptor taken from guest RAM: the source overlaps the
    # destination (ASan called the old memcpy memcpy-param-overlap).
    ram = MemoryRegion.ram("ram", 0x10000)
    system, root, asp = machine((0, ram))
    ram.buffer[0x1000:0x1400] = pattern(0x400)
    src = asp.map(0x1000, 0x400, False)
    asp.write(0x1000 + shift, src)
    asp.unmap(src)
    assert asp.read(0x1000 + shift, 0x400) == pattern(0x400)


def test_rw_reading_into_a_view_of_the_same_ram_moves_it_as_memmove():
    ram = MemoryRegion.ram("ram", 0x10000)
    system, root, asp = machine((0, ram))
    ram.buffer[0x10:0x810] = pattern(0x800)
    assert asp.rw(0x10, ram.buffer[0x20:0x820], False) == MemTxResult.OK
    assert bytes(ram.buffer[0x20:0x820]) == pattern(0x800)


def test_a_read_past_the_end_of_the_space_is_refused_before_any_allocation():
    system, root, asp = machine((0, MemoryRegion.ram("ram", 0x1000)))
    # 1 TiB of zeroes would be a MemoryError (or the OOM killer) first.
    with pytest.raises(ValueError, match="outside the 64-bit space"):
        asp.read((1 << 64) - 1, 1 << 40)


# ------------------------- the bound builtins take what the methods take

class OnlyIndex:
    """An integer-like object that is not an int (numpy.uint64 is one)."""

    def __index__(self):
        return 0


def raised(call):
    try:
        call()
    except Exception as exc:   # noqa: BLE001 - the test compares what was raised
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("builtin, method", [
    (lambda a: a.ldl_le(True), lambda a: a.load(True, 4)),
    (lambda a: a.ldl_le(OnlyIndex()), lambda a: a.load(OnlyIndex(), 4)),
    (lambda a: a.ldl_le(-1), lambda a: a.load(-1, 4)),
    (lambda a: a.ldq_be(1 << 64), lambda a: a.load(1 << 64, 8, True)),
    (lambda a: a.stl_le(True, 1), lambda a: a.store(True, 1, 4)),
    (lambda a: a.stl_le(0, -1), lambda a: a.store(0, -1, 4)),
    (lambda a: a.stl_le(0, 1 << 32), lambda a: a.store(0, 1 << 32, 4)),
    (lambda a: a.stq_le(0, 1 << 64), lambda a: a.store(0, 1 << 64, 8)),
    (lambda a: a.stb(0, 1.5), lambda a: a.store(0, 1.5, 1)),
    (lambda a: a.stb(OnlyIndex(), 1), lambda a: a.store(OnlyIndex(), 1, 1)),
], ids=["bool", "index-only", "negative", "past-2^64", "store-bool-address",
        "negative-value", "value-too-wide", "value-past-2^64", "float-value",
        "store-index-only"])
def test_a_builtin_refuses_what_its_python_method_refuses_with_the_same_error(builtin, method):
    system, root, asp = machine((0, MemoryRegion.ram("ram", 0x1000)))
    got = raised(lambda: builtin(asp))
    assert got is not None and got == raised(lambda: method(asp))
    assert issubclass(got[0], PymemError)


def test_a_bool_value_is_stored_as_the_methods_store_it():
    system, root, asp = machine((0, MemoryRegion.ram("ram", 0x1000)))
    asp.stl_le(0, True)
    asp.store(4, True, 4)
    assert asp.ldl_le(0) == asp.ldl_le(4) == 1


def test_the_builtins_take_keywords_as_the_methods_do():
    ram = MemoryRegion.ram("ram", 0x1000)
    system, root, asp = machine((0, ram))
    asp.write(addr=0x10, data=b"\x11\x22", attrs=MemTxAttrs(secure=True))
    assert asp.read(0x10, 2, attrs=MemTxAttrs(secure=True)) == b"\x11\x22"
    assert asp.read(addr=0x10, size=2) == b"\x11\x22"
    asp.stl_le(addr=0x20, value=0x12345678)
    assert asp.ldl_le(addr=0x20) == 0x12345678 and asp.ldq_le(addr=0x20) == 0x12345678
    d = asp.flatview.dispatch
    assert d.lookup(addr=0x20) == d.lookup(0x20)
    assert d.translate(0x20, length=4) == d.translate(addr=0x20, length=4) == d.translate(0x20, 4)
    with pytest.raises(TypeError, match="unexpected keyword argument 'size'"):
        d.translate(0x20, size=4)


@pytest.mark.parametrize("call, error, message", [
    (lambda d: d.lookup(True), ArgumentTypeError, "address must be an int, not bool"),
    (lambda d: d.lookup(OnlyIndex()), ArgumentTypeError, "not OnlyIndex"),
    (lambda d: d.lookup(-1), InvalidArgumentError, "address -0x1 is outside the 64-bit space"),
    (lambda d: d.translate(0, -1), InvalidArgumentError, "length -0x1 is outside"),
    (lambda d: d.translate(1 << 64), InvalidArgumentError, "address 0x10000000000000000"),
])
def test_dispatch_builtins_refuse_bad_addresses_with_pymem_errors(call, error, message):
    system, root, asp = machine((0, MemoryRegion.ram("ram", 0x1000)))
    with pytest.raises(error, match=message):
        call(asp.flatview.dispatch)


# ------------------------------------------ rw, load, store in C (#12 goal 6)

def test_rw_load_and_store_on_ram_answer_as_the_python_paths_do():
    a, b = MemoryRegion.ram("a", 0x1000), MemoryRegion.ram("b", 0x1000)
    _, _, asp = machine((0, a), (0x1000, b))
    assert asp.rw(0x10, b"\x01\x02\x03\x04", True, MemTxAttrs(secure=True)) is MemTxResult.OK
    buf = bytearray(4)
    assert asp.rw(0x10, buf, False) is MemTxResult.OK and buf == b"\x01\x02\x03\x04"
    assert asp.load(0x10, 4, True, attrs=MemTxAttrs()) == (0x01020304, MemTxResult.OK)
    assert asp.store(0x20, 0xAABB, 2, big_endian=True) is MemTxResult.OK
    assert bytes(a.buffer[0x20:0x22]) == b"\xaa\xbb"
    # QEMU's ld/st want one section: across two RAM regions the whole access
    # goes to the first one, which answers DECODE_ERROR; rw crosses freely.
    assert asp.load(0xffe, 4)[1] == MemTxResult.DECODE_ERROR
    assert asp.rw(0xffe, bytearray(4), False) is MemTxResult.OK


def test_a_load_answer_the_caller_kept_is_not_changed_by_later_loads():
    # load() reuses its answer tuple when nobody holds it (as zip does); one
    # that is held, or unpacked and kept, must stay what it was.
    ram = MemoryRegion.ram("ram", 0x1000)
    _, _, asp = machine((0, ram))
    ram.buffer[:16] = bytes(range(1, 17))
    kept = asp.load(0, 4)
    later = [asp.load(4 * i, 4) for i in range(1, 4)]
    assert kept == (0x04030201, MemTxResult.OK)
    assert [v for v, _ in later] == [0x08070605, 0x0c0b0a09, 0x100f0e0d]
    values = []
    for i in range(4):
        value, result = asp.load(4 * i, 4, False, MemTxAttrs(requester_id=1))
        values.append(value)
    assert values == [0x04030201, 0x08070605, 0x0c0b0a09, 0x100f0e0d]
    assert len({id(t) for t in later}) == 3


def test_rw_load_and_store_refuse_bad_arguments_as_the_python_paths_do():
    _, _, asp = machine((0, MemoryRegion.ram("ram", 0x1000)))
    with pytest.raises(InvalidArgumentError):
        asp.load(0, 3)
    with pytest.raises(InvalidArgumentError):
        asp.store(0, 0x100, 1)
    with pytest.raises(ArgumentTypeError):
        asp.rw(0, bytes(4), False)   # a read into a read-only buffer
    with pytest.raises(ArgumentTypeError):
        asp.rw("0", bytearray(4), False)
