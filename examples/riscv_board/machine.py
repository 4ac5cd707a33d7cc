"""What both example boards share: the CPU, the devices, and running the guest.

A board is one unicorn RISC-V 32 CPU plus the devices of devices.py at the
addresses of memmap.py.  Subclasses say how memory is put together:
board.py on pymem (`pymem.unicorn.attach`), unicorn_alone.py on unicorn's
own `mem_map`/`mmio_map`.  `run(mode, count, arg)` starts the guest's main()
in one of its modes and returns when the guest writes the syscon.
"""
from __future__ import annotations

from typing import Optional, TextIO

import unicorn
from unicorn.riscv_const import (UC_RISCV_REG_A0, UC_RISCV_REG_A1, UC_RISCV_REG_A2,
                                  UC_RISCV_REG_PC)

from . import memmap
from .devices import BankSelect, Dma, Syscon, Timer, Uart16550

# emu_start's stop address: an address the guest never executes, so only the
# syscon (uc.emu_stop) ends a run.
NEVER = 0xFFFF_FFFC


class GuestFailed(RuntimeError):
    """The guest program reported a failed check (its code names which, see main.c)."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"the guest reported failure {code} (EXIT_FAIL({code}) in guest/main.c)")


class BoardBase:
    """A RISC-V 32 CPU and the board's devices; subclasses add memory and DMA.

    `output` receives what the guest prints on the UART (stdout by default).
    Not thread-safe: one thread runs the guest.
    """

    dma: Dma      # made by the subclass: it masters the subclass's memory

    def __init__(self, output: Optional[TextIO] = None) -> None:
        self.uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
        self.uart = Uart16550(output)
        self.timer = Timer()
        self.syscon = Syscon(self.uc.emu_stop)
        self.bank_select = BankSelect(memmap.BANK_COUNT, self.switch_bank)

    def switch_bank(self, bank: int) -> None:
        """Show bank `bank` (0-based) in the window at memmap.WINDOW_BASE."""
        raise NotImplementedError

    def run(self, mode: int = memmap.MODE_DEMO, count: int = 0, arg: int = 0,
            timeout_us: int = 0) -> None:
        """Run the guest's main(mode, count, arg) from reset until it exits.

        Raises GuestFailed if the guest reports a failed check, RuntimeError
        if it stops without exiting (timeout_us, in microseconds of host
        time, 0 for none), and whatever unicorn or a device raised.
        """
        self.syscon.exit_word = None
        self.uc.reg_write(UC_RISCV_REG_A0, mode)
        self.uc.reg_write(UC_RISCV_REG_A1, count)
        self.uc.reg_write(UC_RISCV_REG_A2, arg)
        self.uc.emu_start(memmap.ROM_BASE, NEVER, timeout=timeout_us)
        if self.syscon.exit_word is None:
            pc = self.uc.reg_read(UC_RISCV_REG_PC)
            raise RuntimeError(f"the guest stopped at pc {pc:#x} without writing the syscon")
        code = self.syscon.fail_code
        if code is not None:
            raise GuestFailed(code)
