"""pymem.unicorn: a unicorn CPU whose memory is a pymem address space.

Guest programs are hand-assembled RISC-V 32 (RV32I), x86-64 and ARM64 machine
code; each instruction's assembly is beside its encoding.
"""
import builtins
import importlib
import struct
import subprocess
import sys
import traceback

import pytest

unicorn = pytest.importorskip("unicorn")

from unicorn import UcError  # noqa: E402
from unicorn.riscv_const import UC_RISCV_REG_X5, UC_RISCV_REG_X6, UC_RISCV_REG_X7  # noqa: E402
from unicorn.x86_const import UC_X86_REG_RAX, UC_X86_REG_RCX  # noqa: E402

from pymem import (DIRTY_MEMORY_VGA, MemoryRegion, MemoryRegionOps, MemorySystem,  # noqa: E402
                   MemTxResult)
from pymem.errors import ArgumentTypeError, TopologyError  # noqa: E402
from pymem.unicorn import BusError, BusFault, attach  # noqa: E402

UC = unicorn.unicorn_const
T0, T1, T2 = 5, 6, 7   # x5..x7
ROM_BASE, DEV_BASE, RAM_BASE = 0x0, 0x10000000, 0x80000000


# ------------------------------------------------------------ RV32I encoder

def lui(rd, imm20):
    return (imm20 << 12) | (rd << 7) | 0x37


def addi(rd, rs1, imm):
    return ((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13


def load(rd, rs1, imm, width):
    funct3 = {"b": 4, "h": 5, "w": 2}[width]   # lbu, lhu, lw
    return ((imm & 0xfff) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | 0x03


def store(rs2, rs1, imm, width):
    funct3 = {"b": 0, "h": 1, "w": 2}[width]   # sb, sh, sw
    return ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12)
            | ((imm & 0x1f) << 7) | 0x23)


def code(*words):
    return b"".join(struct.pack("<I", w) for w in words)


class Device:
    """A register file that logs every callback."""

    def __init__(self, value=0x12345678):
        self.value = value
        self.log = []

    def read(self, offset, size):
        self.log.append(("read", offset, size))
        return self.value

    def write(self, offset, value, size):
        self.log.append(("write", offset, value, size))


class Board:
    """ROM at 0 (the program), a device at DEV_BASE, RAM at RAM_BASE."""

    def __init__(self, program, ops=None, ram_size=0x10000, **dev_kw):
        self.system = MemorySystem()
        self.root = MemoryRegion.container("root", 1 << 32)
        self.rom = MemoryRegion.rom("boot", 0x1000, data=program)
        self.ram = MemoryRegion.ram("ram", ram_size)
        self.dev = Device(**dev_kw)
        self.ops = ops or MemoryRegionOps(self.dev.read, self.dev.write)
        self.io = MemoryRegion.io("dev", 0x100, self.ops)
        self.root.add_subregion(ROM_BASE, self.rom)
        self.root.add_subregion(DEV_BASE, self.io)
        self.root.add_subregion(RAM_BASE, self.ram)
        self.asp = self.system.address_space(self.root, "cpu")
        self.program = program
        self.uc = unicorn.Uc(UC.UC_ARCH_RISCV, UC.UC_MODE_RISCV32)
        self.binding = attach(self.uc, self.asp)

    def run(self, program=None):
        self.uc.emu_start(ROM_BASE, ROM_BASE + len(self.program))

    def reg(self, r):
        return self.uc.reg_read(r)


# -------------------------------------------------- RAM, ROM and their perms

def test_ram_and_rom_are_mapped_onto_the_regions_own_memory():
    board = Board(code(
        lui(T0, RAM_BASE >> 12),        # lui  t0, 0x80000
        load(T1, 0, 0x10, "w"),         # lw   t1, 0x10(zero)   (ROM data below)
        store(T1, T0, 0x20, "w"),       # sw   t1, 0x20(t0)
        load(T2, T0, 0x30, "w"),        # lw   t2, 0x30(t0)
        0x00000013,                     # nop  (addi zero, zero, 0)
        0xcafef00d,                     # .word 0xcafef00d   (at 0x14? no: data at 0x10)
    ))
    board.rom.buffer[0x10:0x14] = (0xcafef00d).to_bytes(4, "little")
    board.ram.buffer[0x30:0x34] = b"\x01\x02\x03\x04"
    board.uc.emu_start(0, 0x10)
    assert bytes(board.ram.buffer[0x20:0x24]) == (0xcafef00d).to_bytes(4, "little")
    assert board.reg(UC_RISCV_REG_X7) == 0x04030201
    assert board.binding.mappings() == [(0x0, 0x1000, "rom"), (DEV_BASE, DEV_BASE + 0x1000, "mmio"),
                                        (RAM_BASE, RAM_BASE + 0x10000, "ram")]
    regions = sorted(board.uc.mem_regions())
    assert regions[0] == (0x0, 0xfff, UC.UC_PROT_READ | UC.UC_PROT_EXEC)
    assert regions[2] == (RAM_BASE, RAM_BASE + 0xffff, UC.UC_PROT_ALL)


def test_a_guest_store_to_rom_is_a_decode_error_bus_fault_and_leaves_rom_alone():
    board = Board(code(
        addi(T0, 0, 0x7ff),             # addi t0, zero, 0x7ff
        store(T0, 0, 0x100, "w"),       # sw   t0, 0x100(zero)    -> ROM
    ))
    with pytest.raises(BusError) as info:
        board.run()
    assert info.value.errno == UC.UC_ERR_WRITE_PROT
    assert isinstance(info.value, UcError)
    fault = board.binding.last_fault
    assert fault == BusFault(0x100, 4, True, MemTxResult.DECODE_ERROR, board.rom)
    assert bytes(board.rom.buffer[0x100:0x104]) == b"\0\0\0\0"


def test_a_guest_store_through_a_read_only_alias_is_dropped_and_the_guest_goes_on():
    program = code(
        lui(T0, 0x40000),               # lui  t0, 0x40000        (the alias)
        addi(T1, 0, 0x55),              # addi t1, zero, 0x55
        store(T1, T0, 0, "w"),          # sw   t1, 0(t0)          -> dropped
        load(T2, T0, 4, "w"),           # lw   t2, 4(t0)          still runs
    )
    board = Board(program)
    alias = MemoryRegion.alias("ram-ro", board.ram, 0, 0x1000)
    alias.set_readonly(True)
    board.root.add_subregion(0x40000000, alias)
    board.ram.buffer[4:8] = b"\x78\x56\x34\x12"
    board.run()
    assert board.reg(UC_RISCV_REG_X7) == 0x12345678
    assert bytes(board.ram.buffer[0:4]) == b"\0\0\0\0"
    assert board.binding.last_fault is None
    assert (0x40000000, 0x40001000, "rom") in board.binding.mappings()


def test_romd_reads_memory_directly_and_sends_writes_to_the_device_until_romd_is_off():
    program = code(
        lui(T0, 0x20000),               # lui  t0, 0x20000        (the flash)
        load(T1, T0, 8, "w"),           # lw   t1, 8(t0)
        store(T1, T0, 0, "w"),          # sw   t1, 0(t0)          -> ops.write
    )
    board = Board(program)
    flash_dev = Device(value=0xabcd)
    flash = MemoryRegion.rom_device("flash", 0x1000, MemoryRegionOps(flash_dev.read,
                                                                     flash_dev.write))
    flash.buffer[8:12] = b"\x11\x22\x33\x44"
    board.root.add_subregion(0x20000000, flash)
    assert (0x20000000, 0x20001000, "rom") in board.binding.mappings()
    board.run()
    assert board.reg(UC_RISCV_REG_X6) == 0x44332211
    assert flash_dev.log == [("write", 0, 0x44332211, 4)]
    assert bytes(flash.buffer[0:4]) == b"\0\0\0\0"

    flash.set_romd(False)
    assert (0x20000000, 0x20001000, "mmio") in board.binding.mappings()
    board.run()
    assert board.reg(UC_RISCV_REG_X6) == 0xabcd
    assert flash_dev.log[1:] == [("read", 8, 4), ("write", 0, 0xabcd, 4)]


def test_a_flash_leaving_romd_mode_on_its_own_store_answers_the_next_load_from_its_ops():
    program = code(
        lui(T0, 0x20000),               # lui  t0, 0x20000        (the flash)
        addi(T1, 0, 0x70),              # addi t1, zero, 0x70     "read status"
        store(T1, T0, 0, "w"),          # sw   t1, 0(t0)          -> romd off
        load(T2, T0, 0, "w"),           # lw   t2, 0(t0)          the status
        addi(T1, 0, 1),                 # addi t1, zero, 1        still runs
    )
    board = Board(program)

    def command(offset, value, size):
        flash.set_romd(False)

    flash = MemoryRegion.rom_device("flash", 0x1000, MemoryRegionOps(lambda o, s: 0x80,
                                                                     command))
    flash.buffer[0:4] = b"DATA"
    board.root.add_subregion(0x20000000, flash)
    board.run()
    assert board.reg(UC_RISCV_REG_X7) == 0x80
    assert board.reg(UC_RISCV_REG_X6) == 1
    assert (0x20000000, 0x20001000, "mmio") in board.binding.mappings()


def test_a_ram_device_is_reached_through_mmio():
    program = code(
        lui(T0, 0x30000),               # lui  t0, 0x30000        (the BAR)
        addi(T1, 0, 0x66),              # addi t1, zero, 0x66
        store(T1, T0, 0x10, "b"),       # sb   t1, 0x10(t0)
        load(T2, T0, 0x20, "w"),        # lw   t2, 0x20(t0)
    )
    board = Board(program)
    bar = MemoryRegion.ram_device("bar", 0x1000)
    bar.buffer[0x20:0x24] = b"\x01\0\0\x80"
    board.root.add_subregion(0x30000000, bar)
    assert (0x30000000, 0x30001000, "mmio") in board.binding.mappings()
    board.run()
    assert bar.buffer[0x10] == 0x66
    assert board.reg(UC_RISCV_REG_X7) == 0x80000001


def test_the_part_of_a_page_ram_does_not_fill_is_mmio_that_still_reaches_the_ram():
    program = code(
        lui(T0, RAM_BASE >> 12),        # lui  t0, 0x80000
        lui(T1, 0x1),                   # lui  t1, 0x1
        addi(T0, T0, 0x7f0),            # addi t0, t0, 0x7f0
        addi(T0, T0, 0x7f0),            # addi t0, t0, 0x7f0      t0 = ram + 0xfe0
        addi(T0, T0, 0x100),            # addi t0, t0, 0x100      t0 = ram + 0x10e0
        addi(T1, 0, 0x5a),              # addi t1, zero, 0x5a
        store(T1, T0, 0, "w"),          # sw   t1, 0(t0)          (page 2: MMIO)
        load(T2, T0, 0, "w"),           # lw   t2, 0(t0)
        load(T1, T0, 0x7f0, "w"),       # lw   t1, 0x7f0(t0)      past the RAM: unassigned
    )
    board = Board(program, ram_size=0x1800)
    assert board.binding.mappings()[-2:] == [(RAM_BASE, RAM_BASE + 0x1000, "ram"),
                                             (RAM_BASE + 0x1000, RAM_BASE + 0x2000, "mmio")]
    with pytest.raises(BusError) as info:
        board.run()
    assert board.ram.buffer[0x10e0] == 0x5a
    assert board.reg(UC_RISCV_REG_X7) == 0x5a
    assert info.value.errno == UC.UC_ERR_READ_UNMAPPED
    assert board.binding.last_fault == BusFault(RAM_BASE + 0x18d0, 4, False,
                                                MemTxResult.DECODE_ERROR, None)


def test_ram_on_a_callers_buffer_that_is_not_page_aligned_is_reached_through_mmio():
    program = code(
        lui(T0, 0x70000),               # lui  t0, 0x70000        (the buffer's RAM)
        addi(T1, 0, 0x42),              # addi t1, zero, 0x42
        store(T1, T0, 0x10, "b"),       # sb   t1, 0x10(t0)
        load(T2, T0, 0x20, "w"),        # lw   t2, 0x20(t0)
    )
    board = Board(program)
    # One byte into a bytearray: an odd address, on no page boundary.
    buffer = memoryview(bytearray(0x2001))[1:]
    buffer[0x20:0x24] = b"\x01\x02\x03\x04"
    board.root.add_subregion(0x70000000, MemoryRegion.ram("user", 0x2000, buffer=buffer))
    assert (0x70000000, 0x70002000, "mmio") in board.binding.mappings()
    board.run()
    assert buffer[0x10] == 0x42
    assert board.reg(UC_RISCV_REG_X7) == 0x04030201


# ------------------------------------------------------------ MMIO rules

def test_an_iommu_page_is_translated_into_its_target_space():
    from pymem import IOMMUAccessFlags, IOMMUTLBEntry

    board = Board(code(
        lui(T0, 0x60000),               # lui  t0, 0x60000        (behind the IOMMU)
        load(T1, T0, 0x10, "w"),        # lw   t1, 0x10(t0)       -> page 1 of the target
        store(T1, T0, 0x20, "w"),       # sw   t1, 0x20(t0)       refused: read-only
    ))
    target_root = MemoryRegion.container("dma-root", 1 << 32)
    memory = MemoryRegion.ram("dma-ram", 0x2000)
    target_root.add_subregion(0, memory)
    target = board.system.address_space(target_root, "dma")
    memory.buffer[0x1010:0x1014] = b"\x0d\xf0\xad\x0b"

    def translate(offset, flag):
        return IOMMUTLBEntry(target, offset, 0x1000 | (offset & 0xfff), 0xfff,
                             IOMMUAccessFlags.RO)

    board.root.add_subregion(0x60000000, MemoryRegion.iommu("iommu", 0x1000, translate))
    assert (0x60000000, 0x60001000, "mmio") in board.binding.mappings()
    with pytest.raises(BusError):
        board.run()
    assert board.reg(UC_RISCV_REG_X6) == 0x0badf00d
    assert board.binding.last_fault.address == 0x60000020
    assert board.binding.last_fault.is_write



def test_each_guest_device_access_is_one_callback_of_its_size():
    board = Board(code(
        lui(T0, DEV_BASE >> 12),        # lui  t0, 0x10000
        load(T1, T0, 4, "w"),           # lw   t1, 4(t0)
        load(T1, T0, 2, "h"),           # lhu  t1, 2(t0)
        load(T1, T0, 1, "b"),           # lbu  t1, 1(t0)
        store(T1, T0, 8, "w"),          # sw   t1, 8(t0)
    ))
    board.run()
    assert board.dev.log == [("read", 4, 4), ("read", 2, 2), ("read", 1, 1),
                             ("write", 8, 0x78, 4)]


def test_a_size_the_device_refuses_is_a_bus_fault_without_a_callback():
    dev = Device()
    board = Board(code(
        lui(T0, DEV_BASE >> 12),        # lui  t0, 0x10000
        load(T1, T0, 1, "b"),           # lbu  t1, 1(t0)          (valid: 4 bytes only)
    ), ops=MemoryRegionOps(dev.read, dev.write, valid_min=4, valid_max=4))
    with pytest.raises(BusError) as info:
        board.run()
    assert info.value.errno == UC.UC_ERR_READ_PROT
    assert board.binding.last_fault == BusFault(DEV_BASE + 1, 1, False,
                                                MemTxResult.DECODE_ERROR, board.io)
    assert dev.log == []


def test_an_access_wider_than_the_device_implements_is_split_in_its_byte_order():
    program = code(
        lui(T0, DEV_BASE >> 12),        # lui  t0, 0x10000
        load(T1, T0, 4, "w"),           # lw   t1, 4(t0)
    )
    little = Board(program, ops=MemoryRegionOps(lambda o, s: 0x10 + o, lambda o, v, s: None,
                                                impl_max=1))
    little.run()
    assert little.reg(UC_RISCV_REG_X6) == 0x17161514
    big = Board(program, ops=MemoryRegionOps(lambda o, s: 0x10 + o, lambda o, v, s: None,
                                             endianness="big", impl_max=1))
    big.run()
    # The bytes on the bus are the same whichever order the device has.
    assert big.reg(UC_RISCV_REG_X6) == 0x17161514


def test_a_big_endian_device_sees_the_value_a_little_endian_cpu_stores_byte_swapped():
    dev = Device()
    board = Board(code(
        lui(T0, DEV_BASE >> 12),        # lui  t0, 0x10000
        lui(T1, 0x11223),               # lui  t1, 0x11223
        addi(T1, T1, 0x344),            # addi t1, t1, 0x344      t1 = 0x11223344
        store(T1, T0, 0, "w"),          # sw   t1, 0(t0)
    ), ops=MemoryRegionOps(dev.read, dev.write, endianness="big"))
    board.run()
    assert dev.log == [("write", 0, 0x44332211, 4)]


def test_a_device_that_answers_a_bus_error_stops_the_guest():
    def read(offset, size, attrs):
        return 0, MemTxResult.ERROR

    program = code(
        lui(T0, DEV_BASE >> 12),        # lui  t0, 0x10000
        load(T1, T0, 0, "w"),           # lw   t1, 0(t0)          (at 0x4)
        addi(T2, 0, 1),                 # addi t2, zero, 1        never runs
    )
    board = Board(program, ops=MemoryRegionOps(read, lambda o, v, s, a: None, with_attrs=True))
    with pytest.raises(BusError, match="ERROR: 1> from 'dev'"):
        board.run()
    assert board.binding.last_fault.result == MemTxResult.ERROR
    assert board.uc.reg_read(unicorn.riscv_const.UC_RISCV_REG_PC) == 0x4
    assert board.reg(UC_RISCV_REG_X7) == 0


def test_unassigned_space_is_a_bus_fault_with_no_region():
    board = Board(code(
        lui(T0, 0x50000),               # lui  t0, 0x50000        (nothing there)
        store(0, T0, 0, "w"),           # sw   zero, 0(t0)        (at 0x4)
        addi(T2, 0, 1),                 # addi t2, zero, 1        never runs
    ))
    with pytest.raises(BusError) as info:
        board.run()
    assert info.value.errno == UC.UC_ERR_WRITE_UNMAPPED
    assert board.binding.last_fault == BusFault(0x50000000, 4, True,
                                                MemTxResult.DECODE_ERROR, None)
    assert board.uc.reg_read(unicorn.riscv_const.UC_RISCV_REG_PC) == 0x4
    assert board.reg(UC_RISCV_REG_X7) == 0


def test_an_exception_in_a_device_callback_comes_out_of_emu_start_with_its_traceback():
    class Broken(Exception):
        pass

    raised = []

    def read(offset, size):
        exc = Broken(f"register {offset:#x}")
        raised.append(exc)
        raise exc

    board = Board(code(
        lui(T0, DEV_BASE >> 12),        # lui  t0, 0x10000
        load(T1, T0, 0xc, "w"),         # lw   t1, 0xc(t0)
    ), ops=MemoryRegionOps(read, lambda o, v, s: None))
    with pytest.raises(Broken) as info:
        board.run()
    assert info.value is raised[0]
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "read"
    assert board.binding.last_fault is None


# -------------------------------------------------- commits while running

def test_a_bank_switch_from_a_device_callback_is_seen_by_the_next_instruction():
    flash = MemoryRegion.rom("banks", 0x4000)
    flash.buffer[0x0:0x4] = b"BNK0"
    flash.buffer[0x2000:0x2004] = b"BNK1"
    window = MemoryRegion.alias("window", flash, 0, 0x2000)

    def select(offset, value, size):
        window.set_alias_offset(value * 0x2000)

    board = Board(code(
        lui(T0, DEV_BASE >> 12),        # lui  t0, 0x10000
        lui(T2, 0x40000),               # lui  t2, 0x40000        (the window)
        load(T1, T2, 0, "w"),           # lw   t1, 0(t2)          bank 0's word
        addi(T1, 0, 1),                 # addi t1, zero, 1
        store(T1, T0, 0, "w"),          # sw   t1, 0(t0)          select bank 1
        load(T1, T2, 0, "w"),           # lw   t1, 0(t2)          bank 1's word
    ), ops=MemoryRegionOps(lambda o, s: 0, select))
    board.root.add_subregion(0x40000000, window)
    board.run()
    assert struct.pack("<I", board.reg(UC_RISCV_REG_X6)) == b"BNK1"
    assert window.alias_offset == 0x2000


def test_a_device_that_moves_itself_is_found_at_its_new_address_next():
    log = []

    def write(offset, value, size):
        log.append(("write", offset))
        board.io.set_address(0x20000000)

    def read(offset, size):
        log.append(("read", offset))
        return 7

    program = code(
        lui(T0, DEV_BASE >> 12),        # lui  t0, 0x10000
        store(0, T0, 0, "w"),           # sw   zero, 0(t0)        the device moves
        lui(T0, 0x20000),               # lui  t0, 0x20000
        load(T1, T0, 4, "w"),           # lw   t1, 4(t0)          found there
    )
    board = Board(program, ops=MemoryRegionOps(read, write))
    board.run()
    assert log == [("write", 0), ("read", 4)]
    assert board.reg(UC_RISCV_REG_X6) == 7
    assert (0x20000000, 0x20001000, "mmio") in board.binding.mappings()
    assert (DEV_BASE, DEV_BASE + 0x1000, "mmio") not in board.binding.mappings()


# ------------------------------------------------------------ dirty logging

def test_guest_stores_mark_pages_dirty_while_logging_is_on_and_cost_no_hook_when_off():
    board = Board(code(
        lui(T0, RAM_BASE >> 12),        # lui  t0, 0x80000
        lui(T1, 0x3),                   # lui  t1, 0x3
        store(T1, T0, 0x10, "w"),       # sw   t1, 0x10(t0)       page 0
        load(T2, T0, 0x20, "w"),        # lw   t2, 0x20(t0)       (a load: nothing)
        lui(T2, 0x80003),               # lui  t2, 0x80003
        store(T1, T2, 0x8, "b"),        # sb   t1, 8(t2)          page 3
    ))
    ram = board.ram
    assert board.binding._map.dirty_hooks == 0
    ram.set_log(True, DIRTY_MEMORY_VGA)
    assert board.binding._map.dirty_hooks == 1
    board.run()
    assert ram.get_and_clear_dirty(0, 0x10000, DIRTY_MEMORY_VGA).pages_dirty() == [0x0, 0x3000]
    ram.set_log(False, DIRTY_MEMORY_VGA)
    assert board.binding._map.dirty_hooks == 0
    board.run()
    assert ram.get_and_clear_dirty(0, 0x10000, DIRTY_MEMORY_VGA).pages_dirty() == []


def test_a_snapshot_restore_puts_back_what_the_guest_stored():
    # The snapshot client turns the binding's dirty hook on: the guest's
    # stores into directly mapped RAM are seen, so the incremental restore
    # writes those pages back.
    board = Board(code(
        lui(T0, RAM_BASE >> 12),        # lui  t0, 0x80000
        lui(T1, 0x3),                   # lui  t1, 0x3
        store(T1, T0, 0x10, "w"),       # sw   t1, 0x10(t0)       page 0
        lui(T2, 0x80003),               # lui  t2, 0x80003
        store(T1, T2, 0x8, "b"),        # sb   t1, 8(t2)          page 3
    ))
    snap = board.system.snapshot()
    assert board.binding._map.dirty_hooks == 1
    board.run()
    assert board.ram.buffer[0x10:0x14] == (0x3000).to_bytes(4, "little")
    board.system.restore(snap)
    assert bytes(board.ram.buffer) == bytes(0x10000)


# ------------------------------------------------------ detach, several CPUs

def test_detach_unmaps_everything_and_later_commits_leave_the_cpu_alone():
    board = Board(code(0x00000013))    # nop
    assert board.uc.mem_regions() and list(board.uc.mem_regions())
    board.binding.detach()
    board.binding.detach()
    assert list(board.uc.mem_regions()) == []
    board.root.add_subregion(0x60000000, MemoryRegion.ram("late", 0x1000))
    assert list(board.uc.mem_regions()) == []
    assert "emu_start" not in board.uc.__dict__
    with attach(board.uc, board.asp) as again:
        assert again.mappings()[0] == (0x0, 0x1000, "rom")
    assert list(board.uc.mem_regions()) == []


def _spy_on_unicorn(monkeypatch, refuse=()):
    """Route the unicorn calls of bindings attached from now on (the C map
    calls unicorn through the addresses in pymem.unicorn._UC_FUNCTIONS)
    through ctypes callbacks that log each unmap and map, and answer
    UC_ERR_MAP to a map at an address in `refuse` without calling unicorn."""
    import ctypes

    import pymem.unicorn as binding_module

    real = binding_module._lib
    calls = []
    u64, ptr, status = ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int

    def unmap(uch, start, size):
        calls.append(("uc_mem_unmap", start, size))
        return real.uc_mem_unmap(uch, start, size)

    def map_ptr(uch, start, size, perms, host):
        calls.append(("uc_mem_map_ptr", start, size))
        return UC.UC_ERR_MAP if start in refuse else real.uc_mem_map_ptr(uch, start, size,
                                                                          perms, host)

    def mmio_map(uch, start, size, read, read_data, write, write_data):
        calls.append(("uc_mmio_map", start, size))
        return UC.UC_ERR_MAP if start in refuse else real.uc_mmio_map(
            uch, start, size, read, read_data, write, write_data)

    spies = {"uc_mem_unmap": ctypes.CFUNCTYPE(status, ptr, u64, u64)(unmap),
             "uc_mem_map_ptr": ctypes.CFUNCTYPE(status, ptr, u64, u64, ctypes.c_uint32,
                                                ptr)(map_ptr),
             "uc_mmio_map": ctypes.CFUNCTYPE(status, ptr, u64, u64, ptr, ptr, ptr,
                                             ptr)(mmio_map)}
    monkeypatch.setattr(binding_module, "_test_spies", spies, raising=False)   # kept alive
    for name, spy in spies.items():
        monkeypatch.setitem(binding_module._UC_FUNCTIONS, name,
                            ctypes.cast(spy, ctypes.c_void_p).value)
    return calls


def unicorn_has(uc):
    """What unicorn has mapped, as the binding's mappings() says it: [(start, end)]."""
    return sorted((begin, last + 1) for begin, last, _perms in uc.mem_regions())


def test_a_commit_remaps_only_the_ranges_that_changed(monkeypatch):
    calls = _spy_on_unicorn(monkeypatch)
    board = Board(code(0x00000013))    # nop
    banks = MemoryRegion.ram("banks", 0x2000)
    window = MemoryRegion.alias("window", banks, 0, 0x1000)
    board.root.add_subregion(0x20000000, window)
    del calls[:]
    window.set_alias_offset(0x1000)    # a bank switch: the window's page only
    assert calls == [("uc_mem_unmap", 0x20000000, 0x1000),
                     ("uc_mem_map_ptr", 0x20000000, 0x1000)]
    del calls[:]
    board.system.address_space(MemoryRegion.container("other", 0x1000), "other")
    window.set_alias_offset(0x1000)    # the same view again (re-rendered): nothing
    assert calls == []
    with banks.get_ram_ptr() as ptr:
        board.uc.mem_write(0x20000000, b"bank one")
        assert ctypes_bytes(ptr.address + 0x1000, 8) == b"bank one"


def test_a_mapping_unicorn_refuses_midway_is_left_out_and_the_rest_is_still_mapped(monkeypatch):
    calls = _spy_on_unicorn(monkeypatch, refuse=(0x40001000,))
    board = Board(code(0x00000013))    # nop
    low, high = MemoryRegion.ram("low", 0x1000), MemoryRegion.ram("high", 0x1000)
    dev = MemoryRegion.io("late-dev", 0x100, board.ops)
    with pytest.raises(TopologyError, match=r"cannot map \[0x40001000, 0x40002000\) of "
                                            r"address space 'cpu'"):
        with board.system.transaction():     # one commit: low, then high (refused), then dev
            board.root.add_subregion(0x40000000, low)
            board.root.add_subregion(0x40001000, high)
            board.root.add_subregion(0x40002000, dev)
    assert ("uc_mem_map_ptr", 0x40001000, 0x1000) in calls
    mapped = board.binding.mappings()
    assert (0x40000000, 0x40001000, "ram") in mapped
    assert (0x40002000, 0x40003000, "mmio") in mapped     # mapped after the refusal
    assert not any(start <= 0x40001000 < end for start, end, _ in mapped)
    assert [(start, end) for start, end, _ in mapped] == unicorn_has(board.uc)
    # The record stays true: later commits and detach work from it.
    board.root.del_subregion(low)
    assert [(start, end) for start, end, _ in board.binding.mappings()] == unicorn_has(board.uc)
    assert (0x40000000, 0x40001000, "ram") not in board.binding.mappings()
    board.binding.detach()
    assert unicorn_has(board.uc) == []


def test_a_dirty_log_hook_that_fails_leaves_its_ram_unmapped_and_raises_after_the_commit(
        monkeypatch):
    import pymem.unicorn as binding_module

    def refuse(region, start, size, offset, mask):
        raise MemoryError(f"no hook for {region.name}")

    monkeypatch.setattr(binding_module, "_dirty_range", refuse)
    board = Board(code(0x00000013))    # nop
    with pytest.raises(MemoryError, match="no hook for ram"):
        board.ram.set_log(True, DIRTY_MEMORY_VGA)
    mapped = board.binding.mappings()
    assert not any(start <= RAM_BASE < end for start, end, _ in mapped)
    assert [(start, end) for start, end, _ in mapped] == unicorn_has(board.uc)
    assert board.binding._map.dirty_hooks == 0
    monkeypatch.undo()                 # the binding's Mapper keeps the refusing function:
    board.binding.detach()             # a new binding hooks the logged RAM
    board.binding = attach(board.uc, board.asp)
    assert board.binding._map.dirty_hooks == 1
    assert any(start <= RAM_BASE < end for start, end, _ in board.binding.mappings())


def test_two_cpus_on_one_space_both_follow_a_bank_switch_and_detach_alone(monkeypatch):
    calls = _spy_on_unicorn(monkeypatch)
    program = code(
        lui(T0, 0x20000),               # lui  t0, 0x20000
        load(T1, T0, 0, "w"),           # lw   t1, 0(t0)
    )
    board = Board(program)
    banks = MemoryRegion.ram("banks", 0x2000)
    banks.buffer[0:4] = (1).to_bytes(4, "little")
    banks.buffer[0x1000:0x1004] = (2).to_bytes(4, "little")
    window = MemoryRegion.alias("window", banks, 0, 0x1000)
    board.root.add_subregion(0x20000000, window)
    other = unicorn.Uc(UC.UC_ARCH_RISCV, UC.UC_MODE_RISCV32)
    second = attach(other, board.asp)
    del calls[:]
    window.set_alias_offset(0x1000)
    assert calls == [("uc_mem_unmap", 0x20000000, 0x1000),
                     ("uc_mem_map_ptr", 0x20000000, 0x1000)] * 2     # one pair per CPU
    board.run()
    other.emu_start(0, len(program))
    assert (board.reg(UC_RISCV_REG_X6), other.reg_read(UC_RISCV_REG_X6)) == (2, 2)
    second.detach()
    assert unicorn_has(other) == []
    window.set_alias_offset(0)
    assert unicorn_has(other) == []
    board.run()
    assert board.reg(UC_RISCV_REG_X6) == 1
    assert [(start, end) for start, end, _ in board.binding.mappings()] == unicorn_has(board.uc)


def ctypes_bytes(address, size):
    import ctypes

    return ctypes.string_at(address, size)


def test_destroying_the_space_unmaps_what_the_binding_mapped():
    board = Board(code(0x00000013))    # nop
    board.asp.destroy()
    assert list(board.uc.mem_regions()) == []
    board.binding.detach()


def test_attach_names_what_is_not_a_cpu_or_an_address_space():
    board = Board(code(0x00000013))    # nop
    with pytest.raises(ArgumentTypeError, match="uc must be a unicorn.Uc, not str"):
        attach("cpu", board.asp)
    with pytest.raises(ArgumentTypeError, match="must be an AddressSpace, not MemoryRegion"):
        attach(unicorn.Uc(UC.UC_ARCH_RISCV, UC.UC_MODE_RISCV32), board.root)


def test_a_cpu_attaches_to_one_address_space_at_a_time():
    board = Board(code(0x00000013))    # nop
    with pytest.raises(TopologyError, match="already attached to address space 'cpu'"):
        attach(board.uc, board.asp)


def test_two_cpus_share_one_address_space_and_see_each_others_stores():
    program = code(
        lui(T0, RAM_BASE >> 12),        # lui  t0, 0x80000
        load(T1, T0, 0, "w"),           # lw   t1, 0(t0)
        addi(T1, T1, 1),                # addi t1, t1, 1
        store(T1, T0, 0, "w"),          # sw   t1, 0(t0)
    )
    board = Board(program)
    other = unicorn.Uc(UC.UC_ARCH_RISCV, UC.UC_MODE_RISCV32)
    with attach(other, board.asp):
        for _ in range(3):
            board.run()
            other.emu_start(0, len(program))
        assert other.reg_read(UC_RISCV_REG_X6) == 6
    assert struct.unpack("<I", board.ram.buffer[0:4])[0] == 6


def test_two_cpus_on_different_address_spaces_see_their_own_memory():
    program = code(
        lui(T0, RAM_BASE >> 12),        # lui  t0, 0x80000
        load(T1, T0, 0, "w"),           # lw   t1, 0(t0)
    )
    a, b = Board(program), Board(program)
    a.ram.buffer[0] = 1
    b.ram.buffer[0] = 2
    a.run()
    b.run()
    assert (a.reg(UC_RISCV_REG_X6), b.reg(UC_RISCV_REG_X6)) == (1, 2)


# ------------------------------------------------------------------ x86-64

X86_ROM, X86_DEV, X86_RAM = 0x1000, 0x100000, 0x200000


def x86_board(program, ops):
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 48)
    rom = MemoryRegion.rom("bios", 0x1000, data=program)
    ram = MemoryRegion.ram("ram", 0x4000)
    io = MemoryRegion.io("dev", 0x10, ops)
    root.add_subregion(X86_ROM, rom)
    root.add_subregion(X86_DEV, io)
    root.add_subregion(X86_RAM, ram)
    uc = unicorn.Uc(UC.UC_ARCH_X86, UC.UC_MODE_64)
    binding = attach(uc, system.address_space(root, "x86"))
    return uc, binding, rom, ram, io


def test_x86_64_guest_reaches_ram_rom_and_a_device():
    dev = Device(value=0x0a0b0c0d)
    program = bytes.fromhex(
        "48bb0000100000000000"          # mov rbx, 0x100000      (the device)
        "8b03"                          # mov eax, [rbx]
        "48b90000200000000000"          # mov rcx, 0x200000      (RAM)
        "8901"                          # mov [rcx], eax
        "894304"                        # mov [rbx+4], eax
        "8b4908"                        # mov ecx, [rcx+8]
    )
    uc, binding, rom, ram, io = x86_board(program, MemoryRegionOps(dev.read, dev.write))
    ram.buffer[8:12] = b"\x04\x03\x02\x01"
    uc.emu_start(X86_ROM, X86_ROM + len(program))
    assert bytes(ram.buffer[0:4]) == b"\x0d\x0c\x0b\x0a"
    assert dev.log == [("read", 0, 4), ("write", 4, 0x0a0b0c0d, 4)]
    assert uc.reg_read(UC_X86_REG_RCX) == 0x01020304
    assert binding.mappings()[0] == (X86_ROM, X86_ROM + 0x1000, "rom")


def test_x86_64_store_to_rom_faults_and_a_device_exception_propagates():
    program = bytes.fromhex(
        "48bb0010000000000000"          # mov rbx, 0x1000        (the ROM itself)
        "c70301000000"                  # mov dword [rbx], 1
    )
    uc, binding, rom, ram, io = x86_board(program, MemoryRegionOps(lambda o, s: 0,
                                                                   lambda o, v, s: None))
    with pytest.raises(BusError) as info:
        uc.emu_start(X86_ROM, X86_ROM + len(program))
    assert info.value.fault == BusFault(X86_ROM, 4, True, MemTxResult.DECODE_ERROR, rom)

    def read(offset, size):
        raise KeyError(offset)

    program = bytes.fromhex(
        "48bb0000100000000000"          # mov rbx, 0x100000
        "8b4304"                        # mov eax, [rbx+4]
    )
    uc, binding, rom, ram, io = x86_board(program, MemoryRegionOps(read, lambda o, v, s: None))
    with pytest.raises(KeyError) as kinfo:
        uc.emu_start(X86_ROM, X86_ROM + len(program))
    assert kinfo.value.args == (4,)
    assert uc.reg_read(UC_X86_REG_RAX) == 0


# ---------------------------------------------------------------- packaging

def test_without_unicorn_the_import_error_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_unicorn(name, *args, **kwargs):
        if name == "unicorn" or name.startswith("unicorn."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_unicorn)
    monkeypatch.delitem(sys.modules, "pymem.unicorn")
    with pytest.raises(ImportError, match=r"pip install 'pymem-qemu\[unicorn\]'"):
        importlib.import_module("pymem.unicorn")
    monkeypatch.undo()
    assert sys.modules["pymem.unicorn"].attach is attach


# ------------------------------------------------------------------- ARM64

def test_arm64_flash_leaving_romd_on_its_own_store_is_resumed_at_the_next_instruction():
    from unicorn.arm64_const import UC_ARM64_REG_W2, UC_ARM64_REG_W3

    program = struct.pack(
        "<5I",
        0xd2a40000,                     # movz x0, #0x2000, lsl #16   (the flash)
        0x52800e01,                     # movz w1, #0x70              "read status"
        0xb9000001,                     # str  w1, [x0]               -> romd off
        0xb9400002,                     # ldr  w2, [x0]               the status
        0x52800023,                     # movz w3, #1                 still runs
    )
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 40)
    root.add_subregion(0x1000, MemoryRegion.rom("boot", 0x1000, data=program))
    writes = []

    def command(offset, value, size):
        writes.append((offset, value, size))
        flash.set_romd(False)

    flash = MemoryRegion.rom_device("flash", 0x1000, MemoryRegionOps(lambda o, s: 0x80,
                                                                     command))
    flash.buffer[0:4] = b"DATA"
    root.add_subregion(0x20000000, flash)
    uc = unicorn.Uc(UC.UC_ARCH_ARM64, UC.UC_MODE_ARM)
    with attach(uc, system.address_space(root, "arm64")) as binding:
        uc.emu_start(0x1000, 0x1000 + len(program))
        assert writes == [(0, 0x70, 4)]
        assert uc.reg_read(UC_ARM64_REG_W2) == 0x80
        assert uc.reg_read(UC_ARM64_REG_W3) == 1
        assert (0x20000000, 0x20001000, "mmio") in binding.mappings()


def test_attach_starts_the_rcu_reclaimer_so_no_guest_callback_starts_a_thread():
    # Under ThreadSanitizer a thread started from inside a unicorn callback
    # (the first commit a device makes) kills the process: a fresh one shows
    # the reclaimer already running once attach returns.
    code = ("import threading, unicorn\n"
            "from pymem import MemoryRegion, MemorySystem\n"
            "from pymem.unicorn import attach\n"
            "root = MemoryRegion.container('root', 1 << 32)\n"
            "root.add_subregion(0, MemoryRegion.ram('ram', 0x1000))\n"
            "uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)\n"
            "binding = attach(uc, MemorySystem().address_space(root, 'cpu'))\n"
            "print(sorted(t.name for t in threading.enumerate()))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "pymem-rcu-reclaimer" in run.stdout
