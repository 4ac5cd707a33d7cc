"""The example board on pymem: the memory map is a pymem tree, the CPU is
unicorn, and `pymem.unicorn.attach` is all the glue.

    root "system" (4 GiB)
      0x00000000  bootrom      ROM, the guest program (MemoryRegion.rom(data=...))
      0x00100000  syscon       MMIO  (the guest's exit)
      0x10000000  uart         MMIO  16550 transmit side
      0x10001000  timer        MMIO  mtime / mtimecmp, polled
      0x10002000  dma          MMIO  copy engine, masters the "dma" address space
      0x10003000  bank-select  MMIO  a write moves the window's alias offset
      0x20000000  bank-window  alias of banked-sram, one 4 KiB bank at a time
      0x80000000  ram          1 MiB

The DMA engine masters its own address space: a "dma-bus" root that sees RAM
and the bank window (an alias of the system root's window, so it follows bank
switches too), and nothing else: a DMA to a device or to unassigned space is a
bus error the engine reports in its status register.  A bank switch is one
`set_alias_offset` commit, made from inside the device's callback; the binding
remaps unicorn before the guest's next instruction.
"""
from __future__ import annotations

from typing import Optional, TextIO

from pymem import MemoryRegion, MemorySystem, MemTxError
from pymem.unicorn import attach

from . import memmap
from .devices import Dma
from .machine import BoardBase


class PymemBoard(BoardBase):
    """The board with pymem as its bus; see the module docstring for the map.

    `program` is the boot ROM image (the committed guest/board.bin by
    default), `output` where the UART prints.  `close()` (or `with`)
    detaches the CPU from the memory system.
    """

    def __init__(self, program: Optional[bytes] = None, output: Optional[TextIO] = None) -> None:
        super().__init__(output)
        program = memmap.guest_program() if program is None else program
        self.system = MemorySystem()
        root = MemoryRegion.container("system", 1 << 32)
        self.rom = MemoryRegion.rom("bootrom", memmap.ROM_SIZE, data=program)
        self.ram = MemoryRegion.ram("ram", memmap.RAM_SIZE)
        self.banks = MemoryRegion.ram("banked-sram", memmap.BANK_SIZE * memmap.BANK_COUNT)
        self.banks.buffer[:] = memmap.bank_contents()
        self.window = MemoryRegion.alias("bank-window", self.banks, 0, memmap.BANK_SIZE)

        dma_root = MemoryRegion.container("dma-bus", 1 << 32)
        self.dma_space = self.system.address_space(dma_root, "dma")
        self.dma = Dma(self.dma_space, (MemTxError,))

        size = memmap.DEVICE_SIZE
        with self.system.transaction():
            root.add_subregion(memmap.ROM_BASE, self.rom)
            root.add_subregion(memmap.SYSCON_BASE,
                               MemoryRegion.io("syscon", size, self.syscon.ops()))
            root.add_subregion(memmap.UART_BASE, MemoryRegion.io("uart", size, self.uart.ops()))
            root.add_subregion(memmap.TIMER_BASE, MemoryRegion.io("timer", size, self.timer.ops()))
            root.add_subregion(memmap.DMA_BASE, MemoryRegion.io("dma", size, self.dma.ops()))
            root.add_subregion(memmap.BANK_BASE,
                               MemoryRegion.io("bank-select", size, self.bank_select.ops()))
            root.add_subregion(memmap.WINDOW_BASE, self.window)
            root.add_subregion(memmap.RAM_BASE, self.ram)
            dma_root.add_subregion(memmap.RAM_BASE,
                                   MemoryRegion.alias("dma-ram", self.ram, 0, memmap.RAM_SIZE))
            dma_root.add_subregion(memmap.WINDOW_BASE,
                                   MemoryRegion.alias("dma-window", root, memmap.WINDOW_BASE,
                                                      memmap.BANK_SIZE))
        self.memory = self.system.address_space(root, "cpu-memory")
        self.binding = attach(self.uc, self.memory)

    def switch_bank(self, bank: int) -> None:
        self.window.set_alias_offset(bank * memmap.BANK_SIZE)

    def close(self) -> None:
        """Detach the CPU: unicorn's map is emptied of what the binding mapped."""
        self.binding.detach()

    def __enter__(self) -> "PymemBoard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
