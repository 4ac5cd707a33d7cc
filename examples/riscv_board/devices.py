"""The example board's devices, written once and used by both boards.

Each device is a plain Python object with QEMU-style register callbacks,
`read(offset, size) -> int` and `write(offset, value, size)`: offsets are
bytes from the start of the device's register block, sizes are bytes.  On the
pymem board (board.py) they become `MemoryRegionOps` of `MemoryRegion.io`
regions; on the unicorn-alone board (unicorn_alone.py) they sit behind
unicorn's own `mmio_map`.  Anything a device does to the rest of the machine
(stop the CPU, switch a bank, master the bus) goes through a callable or a
bus object the board hands it, so the device never knows which board it is on.

None of the devices is thread-safe: one vCPU drives them, as on a real board.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional, Protocol, TextIO, Tuple, Type

from pymem import MemoryRegionOps


class Uart16550:
    """The transmit side of a 16550 UART: bytes written to THR are printed.

    Byte registers (reg-shift 0): 0 THR (write: transmit; read: RBR, always
    0, there is no input), 5 LSR (transmitter always empty: 0x60), 7 SCR (the
    scratch register, read/write).  Every other register reads 0 and ignores
    writes.  Output is decoded as Latin-1 and written to `output` one
    character per THR write.
    """

    THR = 0
    LSR = 5
    SCR = 7
    LSR_IDLE = 0x60                 # THRE | TEMT: ready to transmit

    def __init__(self, output: Optional[TextIO] = None) -> None:
        self.output: TextIO = output if output is not None else sys.stdout
        self.scratch = 0

    def read(self, offset: int, size: int) -> int:
        if offset == self.LSR:
            return self.LSR_IDLE
        if offset == self.SCR:
            return self.scratch
        return 0

    def write(self, offset: int, value: int, size: int) -> None:
        if offset == self.THR:
            self.output.write(chr(value & 0xFF))
        elif offset == self.SCR:
            self.scratch = value & 0xFF

    def ops(self) -> MemoryRegionOps:
        """Byte-wide ops, as a 16550 with reg-shift 0 has."""
        return MemoryRegionOps(self.read, self.write, valid_min=1, valid_max=1)


class Timer:
    """A free-running 64-bit counter (RISC-V's mtime) and a compare register.

    32-bit registers: 0x00/0x04 mtime low/high (read-only), 0x08/0x0c
    mtimecmp low/high, 0x10 status (bit 0: mtime >= mtimecmp).  unicorn
    delivers no timer interrupts here, so the guest polls the status bit.
    mtime counts `frequency_hz` ticks per second of `clock` (nanoseconds,
    `time.monotonic_ns` by default) since the timer was made.
    """

    MTIME_LO, MTIME_HI, MTIMECMP_LO, MTIMECMP_HI, STATUS = 0x00, 0x04, 0x08, 0x0C, 0x10

    def __init__(self, frequency_hz: int = 1_000_000,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        if frequency_hz <= 0 or frequency_hz > 1_000_000_000:
            raise ValueError(f"timer frequency must be 1 Hz..1 GHz, not {frequency_hz} Hz")
        self.clock = clock
        self.ns_per_tick = 1_000_000_000 // frequency_hz
        self.start_ns = clock()
        self.mtimecmp = (1 << 64) - 1

    @property
    def mtime(self) -> int:
        return ((self.clock() - self.start_ns) // self.ns_per_tick) & ((1 << 64) - 1)

    def read(self, offset: int, size: int) -> int:
        if offset == self.MTIME_LO:
            return self.mtime & 0xFFFF_FFFF
        if offset == self.MTIME_HI:
            return self.mtime >> 32
        if offset == self.MTIMECMP_LO:
            return self.mtimecmp & 0xFFFF_FFFF
        if offset == self.MTIMECMP_HI:
            return self.mtimecmp >> 32
        if offset == self.STATUS:
            return int(self.mtime >= self.mtimecmp)
        return 0

    def write(self, offset: int, value: int, size: int) -> None:
        if offset == self.MTIMECMP_LO:
            self.mtimecmp = (self.mtimecmp & ~0xFFFF_FFFF) | value
        elif offset == self.MTIMECMP_HI:
            self.mtimecmp = (self.mtimecmp & 0xFFFF_FFFF) | (value << 32)

    def ops(self) -> MemoryRegionOps:
        """Aligned 32-bit registers only: other sizes are bus errors."""
        return MemoryRegionOps(self.read, self.write, valid_min=4, valid_max=4)


class DmaBus(Protocol):
    """What a DMA engine masters: a pymem AddressSpace fits as it is."""

    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


class Dma:
    """A memory-to-memory copy engine that masters `bus`.

    32-bit registers: 0x00 SRC, 0x04 DST, 0x08 LEN (bytes), 0x0c CTRL (write
    1: copy LEN bytes from SRC to DST now, before the guest's next
    instruction), 0x10 STATUS (1 done, 2 bus error, 0 never started), 0x14
    COUNT (transfers completed).  A bus error is an exception of one of the
    `bus_errors` types from `bus.read` or `bus.write` (pymem's MemTxError on
    the pymem board); it sets STATUS to 2 and the copy stops there.
    """

    SRC, DST, LEN, CTRL, STATUS, COUNT = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
    START = 1
    IDLE, DONE, ERROR = 0, 1, 2

    def __init__(self, bus: DmaBus, bus_errors: Tuple[Type[BaseException], ...]) -> None:
        self.bus = bus
        self.bus_errors = bus_errors
        self.src = self.dst = self.length = 0
        self.status = self.IDLE
        self.count = 0

    def transfer(self) -> None:
        """Copy LEN bytes from SRC to DST through the bus."""
        try:
            self.bus.write(self.dst, self.bus.read(self.src, self.length))
        except self.bus_errors:
            self.status = self.ERROR
        else:
            self.status = self.DONE
            self.count += 1

    def read(self, offset: int, size: int) -> int:
        return {self.SRC: self.src, self.DST: self.dst, self.LEN: self.length,
                self.STATUS: self.status, self.COUNT: self.count}.get(offset, 0)

    def write(self, offset: int, value: int, size: int) -> None:
        if offset == self.SRC:
            self.src = value
        elif offset == self.DST:
            self.dst = value
        elif offset == self.LEN:
            self.length = value
        elif offset == self.CTRL and value & self.START:
            self.transfer()

    def ops(self) -> MemoryRegionOps:
        return MemoryRegionOps(self.read, self.write, valid_min=4, valid_max=4)


class BankSelect:
    """Selects which bank of a banked memory a window shows.

    32-bit registers: 0x0 BANK (read/write: the bank shown; values wrap
    modulo the bank count), 0x4 COUNT (read-only: how many banks).  A write
    calls `switch(bank)`, which the board wires to its window: the new bank
    is visible from the guest's next instruction.
    """

    BANK, COUNT = 0x0, 0x4

    def __init__(self, banks: int, switch: Callable[[int], None]) -> None:
        if banks < 1:
            raise ValueError(f"a bank select needs at least one bank, not {banks}")
        self.banks = banks
        self.switch = switch
        self.bank = 0

    def read(self, offset: int, size: int) -> int:
        if offset == self.BANK:
            return self.bank
        if offset == self.COUNT:
            return self.banks
        return 0

    def write(self, offset: int, value: int, size: int) -> None:
        if offset == self.BANK:
            bank = value % self.banks
            if bank != self.bank:
                self.bank = bank
                self.switch(bank)

    def ops(self) -> MemoryRegionOps:
        return MemoryRegionOps(self.read, self.write, valid_min=4, valid_max=4)


class Syscon:
    """The test finisher (as QEMU's sifive_test on the virt board): the guest
    writes 0x5555 to pass or (code << 16) | 0x3333 to fail, at offset 0.

    The word written is kept in `exit_word`, and `stop()` is called: the
    board wires it to `uc.emu_stop`.
    """

    PASS = 0x5555
    FAIL = 0x3333

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        self.exit_word: Optional[int] = None

    @property
    def passed(self) -> bool:
        return self.exit_word == self.PASS

    @property
    def fail_code(self) -> Optional[int]:
        """The code of a failing exit, None if the guest passed or is running."""
        if self.exit_word is None or self.exit_word & 0xFFFF != self.FAIL:
            return None
        return self.exit_word >> 16

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, value: int, size: int) -> None:
        if offset == 0 and value & 0xFFFF in (self.PASS, self.FAIL):
            self.exit_word = value
            self.stop()

    def ops(self) -> MemoryRegionOps:
        return MemoryRegionOps(self.read, self.write, valid_min=4, valid_max=4)
