"""The example-board rows of `pymem bench`: a guest on pymem.unicorn beside the same guest on unicorn alone.

Part of pymem.bench (see its docstring); a pure move out of the old bench.py.
"""
from __future__ import annotations

from typing import Any, List

from ..address_space import MemorySystem
from ..region import MemoryRegion, MemoryRegionOps
from ._core import Case, PAGE, Timed, _repeat

# RISC-V 32 guest loops for the unicorn group (a0: address, a1: count >= 1).
# The MMIO loop, at the start of RAM: 1: sw a1,0(a0); lw t0,0(a0);
# addi a1,a1,-1; bnez a1,1b.  The RAM loop, after it: 2: lw t0,0(a0);
# add t1,t1,t0; sw t1,4(a0); addi a1,a1,-1; bnez a1,2b.  Each ends where the
# next instruction would be, emu_start's stop address.
_RV32_LOOPS = b"".join(w.to_bytes(4, "little") for w in (
    0x00B52023, 0x00052283, 0xFFF58593, 0xFE059AE3,
    0x00052283, 0x00530333, 0x00652223, 0xFFF58593, 0xFE0598E3))

_MMIO_LOOP, _MMIO_END, _RAM_LOOP, _RAM_END = 0x0, 0x10, 0x10, 0x24

_UC_CODE, _UC_DATA, _UC_DEVICE, _UC_WINDOW = 0x10000, 0x18000, 0x1000, 0x100000

class _Register:
    """One read/write register: the device both boards of the unicorn group
    call, each in its own callback shape (pymem's ops, unicorn's mmio_map),
    so neither board pays an adapter call the other does not."""

    def __init__(self) -> None:
        self.value = 0

    def read(self, offset: int, size: int) -> int:
        return self.value

    def write(self, offset: int, value: int, size: int) -> None:
        self.value = value

    def uc_read(self, uc: Any, offset: int, size: int, user_data: Any) -> int:
        return self.value

    def uc_write(self, uc: Any, offset: int, size: int, value: int, user_data: Any) -> None:
        self.value = value

def unicorn_cases(n: int) -> List[Case]:
    """A RISC-V 32 unicorn CPU on pymem (pymem.unicorn.attach) against the same
    machine on unicorn alone (mem_map, mmio_map calling the same device, the
    bank window remapped by hand): guest MMIO loads and stores, a guest loop
    in RAM, and a bank switch.  Empty when unicorn is not installed.

    Raises nothing (empty without unicorn).
    """
    try:
        import mmap
        import ctypes
        import unicorn
        from unicorn.riscv_const import UC_RISCV_REG_A0, UC_RISCV_REG_A1
        from ..unicorn import attach
    except ImportError:
        return []
    page = PAGE

    def cpu() -> Any:
        return unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)

    # pymem: RAM with the code, a sub-page device, a window aliasing two banks.
    on_pymem = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    ram = MemoryRegion.ram("ram", 0x10000)
    ram.buffer[:len(_RV32_LOOPS)] = _RV32_LOOPS
    banks = MemoryRegion.ram("banks", 2 * page)
    window = MemoryRegion.alias("window", banks, 0, page)
    device = _Register()
    with on_pymem.transaction():
        root.add_subregion(_UC_CODE, ram)
        root.add_subregion(_UC_DEVICE, MemoryRegion.io("register", 0x100, MemoryRegionOps(
            device.read, device.write, valid_min=4, valid_max=4)))
        root.add_subregion(_UC_WINDOW, window)
    uc_pymem = cpu()
    binding = attach(uc_pymem, on_pymem.address_space(root, "cpu-memory"))

    # unicorn alone: the same map from mem_map, mmio_map and mem_map_ptr.
    uc_alone = cpu()
    uc_alone.mem_map(_UC_CODE, 0x10000)
    uc_alone.mem_write(_UC_CODE, _RV32_LOOPS)
    uc_alone.mmio_map(_UC_DEVICE, page, device.uc_read, None, device.uc_write, None)
    bank_memory = mmap.mmap(-1, 2 * page)
    bank_host = ctypes.addressof(ctypes.c_char.from_buffer(bank_memory))
    uc_alone.mem_map_ptr(_UC_WINDOW, page, unicorn.UC_PROT_ALL, bank_host)

    def guest(uc: Any, start: int, end: int, addr: int, count: int) -> Timed:
        def run() -> None:
            uc.reg_write(UC_RISCV_REG_A0, addr)
            uc.reg_write(UC_RISCV_REG_A1, count)
            uc.emu_start(_UC_CODE + start, _UC_CODE + end)
        return run

    def remap_by_hand() -> None:
        for bank in (1, 0):
            uc_alone.mem_unmap(_UC_WINDOW, page)
            uc_alone.mem_map_ptr(_UC_WINDOW, page, unicorn.UC_PROT_ALL, bank_host + bank * page)

    def switch_banks() -> None:
        for bank in (1, 0):
            window.set_alias_offset(bank * page)

    loops = max(1, n // 2)
    calls = max(1, n // 200)      # two bank switches each
    cases = [
        Case("guest MMIO sw/lw (unicorn)", 2 * loops,
             guest(uc_pymem, _MMIO_LOOP, _MMIO_END, _UC_DEVICE, loops),
             {"unicorn mmio_map": guest(uc_alone, _MMIO_LOOP, _MMIO_END, _UC_DEVICE, loops)}),
        # Long enough (5 instructions a turn) that starting the CPU does not count.
        Case("guest RAM loop (unicorn)", 50 * loops,
             guest(uc_pymem, _RAM_LOOP, _RAM_END, _UC_DATA, 50 * loops),
             {"unicorn mem_map": guest(uc_alone, _RAM_LOOP, _RAM_END, _UC_DATA, 50 * loops)}),
        Case("bank switch (unicorn)", 2 * calls, _repeat(switch_banks, calls),
             {"unicorn mem_unmap + mem_map_ptr": _repeat(remap_by_hand, calls)}),
    ]
    for case in cases:
        case.keep = (binding, bank_memory)
    return cases
