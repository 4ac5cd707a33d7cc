"""The example RISC-V board (examples/riscv_board) boots its committed guest and
every device does what the guest checks; the unicorn-alone peer of the
benchmark runs the same guest to the same output."""
from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("unicorn")

from examples.riscv_board import memmap  # noqa: E402
from examples.riscv_board.machine import GuestFailed  # noqa: E402
from examples.riscv_board.unicorn_alone import UnicornBoard  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

DEMO_LINES = [
    "pymem riscv board: running from the boot ROM",
    "uart: scratch register ok",
    "timer: 1000 ticks passed, polled until mtime >= mtimecmp: ok",
    "dma: 4096 bytes RAM -> RAM, checksum 0x0ca809e4: ok",
    "dma: from unassigned space reports an error: ok",
    "window: bank 0: boot parameters",
    "window: bank 1: calibration table",
    "window: bank 2: user settings",
    "window: bank 3: font glyphs",
    "window: a store to bank 2 is still there after switching away and back: ok",
    "dma from the window: bank 3: font glyphs",
    "DMA transfers: 2",
    "all devices ok",
]


def header_defines() -> dict:
    text = (memmap.GUEST_DIR / "board.h").read_text()
    return {name: int(value, 16) for name, value in
            re.findall(r"#define\s+(\w+)\s+(0x[0-9a-fA-F]+)u", text)}


def test_the_host_memory_map_matches_the_guests_header():
    defines = header_defines()
    for name in ("ROM_BASE", "SYSCON_BASE", "UART_BASE", "TIMER_BASE", "DMA_BASE", "BANK_BASE",
                 "WINDOW_BASE", "RAM_BASE", "BANK_SIZE", "DMA_BENCH_SRC", "DMA_BENCH_DST",
                 "DMA_BENCH_MAX", "EXIT_PASS"):
        assert defines[name] == getattr(memmap, name), name


def test_the_committed_guest_fits_the_boot_rom():
    program = memmap.guest_program()
    assert 0 < len(program) <= memmap.ROM_SIZE


def test_the_demo_on_unicorn_alone_prints_every_device_ok():
    out = io.StringIO()
    UnicornBoard(output=out).run()
    assert out.getvalue().splitlines() == DEMO_LINES


@pytest.mark.parametrize("mode, count, arg", [
    (memmap.MODE_MMIO, 500, 0), (memmap.MODE_DMA, 20, 0x1000),
    (memmap.MODE_RAM, 3, 0), (memmap.MODE_BANK, 50, 0)],
    ids=["mmio", "dma", "ram", "bank"])
def test_each_benchmark_mode_passes_its_own_checks_on_unicorn_alone(mode, count, arg):
    board = UnicornBoard(output=io.StringIO())
    board.run(mode, count, arg)
    assert board.syscon.passed
    if mode == memmap.MODE_DMA:
        assert board.dma.count == count
    if mode == memmap.MODE_BANK:
        assert board.bank_select.bank == (count - 1) & 1


def test_a_failed_guest_check_raises_with_its_code():
    board = UnicornBoard(output=io.StringIO())
    with pytest.raises(GuestFailed) as failed:
        board.run(memmap.MODE_DMA, 1, memmap.DMA_BENCH_MAX + 4)   # more than the guest allows
    assert failed.value.code == 21


def test_one_command_runs_the_unicorn_alone_board():
    run = subprocess.run([sys.executable, "-m", "examples.riscv_board", "--unicorn-alone"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == DEMO_LINES


def test_the_example_type_checks_with_mypy():
    pytest.importorskip("mypy")
    result = subprocess.run([sys.executable, "-m", "mypy", "examples", "--ignore-missing-imports"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
