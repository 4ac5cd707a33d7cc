"""The example board's memory map: the host side of guest/board.h.

tests/test_example_board.py checks these numbers against the header the guest
is compiled with, so the two cannot drift apart silently.
"""
from __future__ import annotations

from pathlib import Path

ROM_BASE = 0x0000_0000
ROM_SIZE = 0x1_0000          # 64 KiB boot ROM; the program image is zero-padded to it
SYSCON_BASE = 0x0010_0000
UART_BASE = 0x1000_0000
TIMER_BASE = 0x1000_1000
DMA_BASE = 0x1000_2000
BANK_BASE = 0x1000_3000
WINDOW_BASE = 0x2000_0000
RAM_BASE = 0x8000_0000
RAM_SIZE = 0x10_0000         # 1 MiB

# Each device's register block: sub-page, the rest of its page is unassigned.
DEVICE_SIZE = 0x100
BANK_SIZE = 0x1000
BANK_COUNT = 4
BANK_TEXTS = (
    "bank 0: boot parameters",
    "bank 1: calibration table",
    "bank 2: user settings",
    "bank 3: font glyphs",
)

DMA_BENCH_SRC = 0x8004_0000
DMA_BENCH_DST = 0x8008_0000
DMA_BENCH_MAX = 0x4_0000

EXIT_PASS = 0x5555
EXIT_FAIL = 0x3333

# main()'s modes (a0 at reset); a1 is a count and a2 an argument.
MODE_DEMO = 0
MODE_MMIO = 1
MODE_DMA = 2
MODE_RAM = 3
MODE_BANK = 4

GUEST_DIR = Path(__file__).resolve().parent / "guest"
GUEST_BINARY = GUEST_DIR / "board.bin"


def guest_program() -> bytes:
    """The committed boot ROM image (guest/board.bin, built by guest/Makefile)."""
    return GUEST_BINARY.read_bytes()


def bank_contents() -> bytes:
    """The banked SRAM's initial contents: each bank starts with its NUL-ended text."""
    image = bytearray(BANK_SIZE * BANK_COUNT)
    for i, text in enumerate(BANK_TEXTS):
        data = text.encode() + b"\0"
        image[i * BANK_SIZE:i * BANK_SIZE + len(data)] = data
    return bytes(image)
