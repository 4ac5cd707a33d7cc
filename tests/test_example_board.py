"""The example RISC-V board (examples/riscv_board) boots its committed guest on
pymem.unicorn and every device does what the guest checks; the unicorn-alone
peer of the benchmark runs the same guest to the same output; the benchmark
times both."""
from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("unicorn")

from benchmarks import bench_unicorn  # noqa: E402
from examples.riscv_board import memmap  # noqa: E402
from examples.riscv_board.board import PymemBoard  # noqa: E402
from examples.riscv_board.machine import GuestFailed  # noqa: E402
from examples.riscv_board.unicorn_alone import UnicornBoard  # noqa: E402
from pymem import MemTxError  # noqa: E402

BOARDS = {"pymem": PymemBoard, "unicorn-alone": UnicornBoard}

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


@pytest.mark.parametrize("board_class", BOARDS.values(), ids=BOARDS.keys())
def test_the_demo_prints_every_device_ok(board_class):
    out = io.StringIO()
    board_class(output=out).run()
    assert out.getvalue().splitlines() == DEMO_LINES


@pytest.mark.parametrize("board_class", BOARDS.values(), ids=BOARDS.keys())
@pytest.mark.parametrize("mode, count, arg", [
    (memmap.MODE_MMIO, 500, 0), (memmap.MODE_DMA, 20, 0x1000),
    (memmap.MODE_RAM, 3, 0), (memmap.MODE_BANK, 51, 0)],
    ids=["mmio", "dma", "ram", "bank"])
def test_each_benchmark_mode_passes_its_own_checks(board_class, mode, count, arg):
    board = board_class(output=io.StringIO())
    board.run(mode, count, arg)
    assert board.syscon.passed
    if mode == memmap.MODE_DMA:
        assert board.dma.count == count
    if mode == memmap.MODE_BANK:
        assert board.bank_select.bank == 0    # the last of 51 switches: i = 50


def test_a_guest_bank_switch_moves_the_windows_alias_offset():
    board = PymemBoard(output=io.StringIO())
    board.run(memmap.MODE_BANK, 2)            # selects 0, 1 (its check), then 0, 1
    assert board.window.alias_offset == memmap.BANK_SIZE
    assert board.memory.read(memmap.WINDOW_BASE, 6) == b"bank 1"


def test_the_dma_engine_masters_a_space_of_ram_and_the_window_only():
    board = PymemBoard(output=io.StringIO())
    board.dma_space.write(memmap.RAM_BASE + 0x100, b"seen by the cpu")
    assert board.memory.read(memmap.RAM_BASE + 0x100, 15) == b"seen by the cpu"
    board.switch_bank(2)
    assert board.dma_space.read(memmap.WINDOW_BASE, 6) == b"bank 2"
    with pytest.raises(MemTxError):
        board.dma_space.read(memmap.UART_BASE, 1)


def test_the_guest_sees_the_boot_rom_from_rom_data():
    board = PymemBoard(output=io.StringIO())
    program = memmap.guest_program()
    assert board.memory.read(memmap.ROM_BASE, len(program)) == program
    assert board.rom.readonly


@pytest.mark.parametrize("board_class", BOARDS.values(), ids=BOARDS.keys())
def test_a_failed_guest_check_raises_with_its_code(board_class):
    board = board_class(output=io.StringIO())
    with pytest.raises(GuestFailed) as failed:
        board.run(memmap.MODE_DMA, 1, memmap.DMA_BENCH_MAX + 4)   # more than the guest allows
    assert failed.value.code == 21


@pytest.mark.parametrize("flags", [[], ["--unicorn-alone"]], ids=["pymem", "unicorn-alone"])
def test_one_command_runs_the_board(flags):
    run = subprocess.run([sys.executable, "-m", "examples.riscv_board", *flags],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == DEMO_LINES


def test_the_benchmark_times_every_operation_on_both_boards():
    rows = bench_unicorn.bench(quick=True, repeats=1)
    assert [r.name for r in rows] == [m.name for m in bench_unicorn.measures(quick=True)]
    for r in rows:
        assert set(r.ns) == {bench_unicorn.PYMEM, bench_unicorn.ALONE}
        assert all(ns > 0 for ns in r.ns.values()) and r.ratio > 0
    assert {r.name for r in rows if r.goal is not None} == {
        "guest MMIO access", "DMA 4 KiB", "DMA 4 KiB (host)", "RAM-only guest code",
        "bank switch (host)"}
    table = bench_unicorn.format_rows(rows)
    assert "<= 1.1x" in table and "<= 2.0x" in table


def test_the_example_type_checks_with_mypy():
    pytest.importorskip("mypy")
    result = subprocess.run([sys.executable, "-m", "mypy", "examples",
                             "benchmarks/bench_unicorn.py", "--ignore-missing-imports"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
