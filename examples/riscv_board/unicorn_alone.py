"""The example board on unicorn alone: the peer of board.py in the benchmark.

The same devices and guest, with memory put together the way a unicorn user
does it without pymem: `mem_map` for the boot ROM and RAM, one `mmio_map`
page per device calling the device object, DMA through `uc.mem_read` /
`uc.mem_write`, and the bank window remapped by hand (`mem_unmap` +
`mem_map_ptr` onto the bank's host memory) when the guest switches banks.
"""
from __future__ import annotations

import ctypes
import mmap
from typing import Any, Callable, Optional, TextIO

import unicorn

from . import memmap
from .devices import Dma
from .machine import BoardBase

PAGE = 0x1000


def _mmio_read(uc: Any, offset: int, size: int, read: Callable[[int, int], int]) -> int:
    return read(offset, size)


def _mmio_write(uc: Any, offset: int, size: int, value: int,
                write: Callable[[int, int, int], None]) -> None:
    write(offset, value, size)


class UnicornDmaBus:
    """The DMA engine's bus on unicorn alone: the CPU's memory map, through
    uc.mem_read / uc.mem_write (the buffer mem_read returns is a bytearray,
    which mem_write does not take: bytes() converts it)."""

    def __init__(self, uc: unicorn.Uc) -> None:
        self.mem_read = uc.mem_read
        self.mem_write = uc.mem_write

    def read(self, addr: int, size: int) -> bytes:
        return bytes(self.mem_read(addr, size))

    def write(self, addr: int, data: bytes) -> None:
        self.mem_write(addr, data)


class UnicornBoard(BoardBase):
    """The board with unicorn's own memory map; see the module docstring."""

    def __init__(self, program: Optional[bytes] = None, output: Optional[TextIO] = None) -> None:
        super().__init__(output)
        uc = self.uc
        program = memmap.guest_program() if program is None else program
        uc.mem_map(memmap.ROM_BASE, memmap.ROM_SIZE, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
        uc.mem_write(memmap.ROM_BASE, program)
        uc.mem_map(memmap.RAM_BASE, memmap.RAM_SIZE, unicorn.UC_PROT_ALL)
        # The banks live in host memory of our own, so that a bank switch maps
        # a different part of it at the window without copying.
        self.banks = mmap.mmap(-1, memmap.BANK_SIZE * memmap.BANK_COUNT)
        self.banks[:] = memmap.bank_contents()
        self._banks_host = ctypes.addressof(ctypes.c_char.from_buffer(self.banks))
        uc.mem_map_ptr(memmap.WINDOW_BASE, memmap.BANK_SIZE, unicorn.UC_PROT_ALL, self._banks_host)

        self.dma = Dma(UnicornDmaBus(uc), (unicorn.UcError,))
        for base, device in ((memmap.SYSCON_BASE, self.syscon), (memmap.UART_BASE, self.uart),
                             (memmap.TIMER_BASE, self.timer), (memmap.DMA_BASE, self.dma),
                             (memmap.BANK_BASE, self.bank_select)):
            uc.mmio_map(base, PAGE, _mmio_read, device.read, _mmio_write, device.write)

    def switch_bank(self, bank: int) -> None:
        self.uc.mem_unmap(memmap.WINDOW_BASE, memmap.BANK_SIZE)
        self.uc.mem_map_ptr(memmap.WINDOW_BASE, memmap.BANK_SIZE, unicorn.UC_PROT_ALL,
                            self._banks_host + bank * memmap.BANK_SIZE)
