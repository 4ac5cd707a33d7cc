"""The example board on pymem.unicorn beside the same board on unicorn alone.

Both boards (examples/riscv_board: board.py and unicorn_alone.py) run the same
guest binary and the same device objects; what differs is the memory system:
pymem's tree with `pymem.unicorn.attach`, or unicorn's own `mem_map`,
`mmio_map` per device (a two-line adapter calls the device), DMA through
`uc.mem_read`/`mem_write` and the bank window remapped by hand.  Every
measurement alternates the two boards in one run (the order flips each
repeat), so the ratio is the result:

- guest MMIO: the guest stores to and loads from the UART's scratch register
  in a loop (MODE_MMIO); time per access.  Goal: pymem <= 1.1x unicorn alone.
- DMA: the guest starts 4 KiB RAM-to-RAM DMA transfers (MODE_DMA), which the
  device copies through the board's address space (pymem) or through
  uc.mem_read/mem_write (unicorn alone); time per transfer, the guest's
  programming of the registers included.  Goal: <= 1.0x.  The host row calls
  the engine's transfer() directly: the copy alone.
- RAM-only code: a checksum loop over RAM (MODE_RAM), no device; time per
  4 KiB pass.  Goal: the same speed (<= 1.1x).
- bank switch: one switch of the window from the host, between runs: on
  pymem one `set_alias_offset` commit with the binding attached (unicorn's
  map follows at the commit), on unicorn alone `mem_unmap` + `mem_map_ptr`.
  Goal: <= 2x.
- guest bank switch (no goal): the guest writes the bank register and loads
  from the window (MODE_BANK): the same switch from inside a device callback,
  with what unicorn does to its TLB and translated code afterwards.

A guest loop's time per operation is (time of a run of N - time of a run of
0) / N, so starting the CPU and the guest's start-up code cancel out.

    python -m benchmarks.bench_unicorn           # full run, prints the table and goals
    python -m benchmarks.bench_unicorn --quick   # a short run
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from examples.riscv_board import memmap
from examples.riscv_board.machine import BoardBase

PYMEM = "pymem.unicorn"
ALONE = "unicorn alone"


@dataclass
class Measure:
    """One operation timed on both boards: `run(board, n)` does n operations."""

    name: str
    unit: str                       # what one operation is, for the table
    ops: int                        # n for the timed runs
    run: Callable[[BoardBase, int], None]
    goal: Optional[float] = None    # pymem / unicorn-alone time, at most
    baseline: bool = True           # subtract a run with n = 0


@dataclass
class Row:
    name: str
    unit: str
    ns: Dict[str, float]            # median ns per operation, per board
    spread: Dict[str, tuple]
    goal: Optional[float]
    ratio: float                    # median over the repeats of pymem / unicorn alone


def guest(mode: int, arg: int = 0) -> Callable[[BoardBase, int], None]:
    def run(board: BoardBase, n: int) -> None:
        board.run(mode, n, arg)
    return run


def host_bank_switches(board: BoardBase, n: int) -> None:
    switch = board.switch_bank
    for i in range(n):
        switch(i & 1)
    if n:
        switch(0)   # leave bank 0 shown, as the device's register says


def host_dma(board: BoardBase, n: int) -> None:
    dma = board.dma
    dma.src, dma.dst, dma.length = memmap.DMA_BENCH_SRC, memmap.DMA_BENCH_DST, 0x1000
    for _ in range(n):
        dma.transfer()


def measures(quick: bool) -> List[Measure]:
    # Each timed run takes some 10-20 ms: short enough for many alternations.
    scale = 4 if quick else 1
    return [
        Measure("guest MMIO access", "access (lbu/sb)", 8_000 // scale,
                guest(memmap.MODE_MMIO), goal=1.1),
        Measure("DMA 4 KiB", "transfer", 1_000 // scale,
                guest(memmap.MODE_DMA, 0x1000), goal=1.0),
        Measure("DMA 4 KiB (host)", "transfer", 2_000 // scale, host_dma,
                goal=1.0, baseline=False),
        Measure("RAM-only guest code", "4 KiB checksum pass", 800 // scale,
                guest(memmap.MODE_RAM), goal=1.1),
        Measure("bank switch (host)", "switch", 500 // scale, host_bank_switches,
                goal=2.0, baseline=False),
        Measure("bank switch (guest)", "switch + load", 500 // scale,
                guest(memmap.MODE_BANK)),
    ]


def time_ns(fn: Callable[[BoardBase, int], None], board: BoardBase, n: int) -> int:
    """CPU time of the process, all its threads (pymem's RCU thread too): on
    a shared machine the time other processes take is not counted."""
    t0 = time.process_time_ns()
    fn(board, n)
    return time.process_time_ns() - t0


def run_measures(boards: Dict[str, BoardBase], todo: Sequence[Measure], repeats: int,
                 progress: Optional[io.TextIOBase] = None) -> List[Row]:
    """Time each measure on both boards, back to back (flipping their order
    each repeat) so that drift in the machine's speed lands on both alike;
    the ratio is the median of the repeats' ratios."""
    rows = []
    names = list(boards)
    for m in todo:
        if progress is not None:
            print(f"{m.name}: {repeats} x {m.ops:,} {m.unit}", file=progress, flush=True)
        per_op: Dict[str, List[float]] = {name: [] for name in names}
        for name in names:            # warm up: translated code, caches, first commits
            m.run(boards[name], max(1, m.ops // 10))
        for r in range(repeats):
            for name in (names if r % 2 == 0 else names[::-1]):
                board = boards[name]
                total = time_ns(m.run, board, m.ops)
                base = time_ns(m.run, board, 0) if m.baseline else 0
                per_op[name].append(max(total - base, 1) / m.ops)
        ratio = statistics.median(p / a for p, a in zip(per_op[PYMEM], per_op[ALONE]))
        rows.append(Row(m.name, m.unit, {n: statistics.median(v) for n, v in per_op.items()},
                        {n: (min(v), max(v)) for n, v in per_op.items()}, m.goal, ratio))
    return rows


def mmio_accesses(row: Row) -> Row:
    """MODE_MMIO does a store and a load per iteration: per access is half."""
    return Row(row.name, row.unit, {k: v / 2 for k, v in row.ns.items()},
               {k: (a / 2, b / 2) for k, (a, b) in row.spread.items()}, row.goal, row.ratio)


def make_boards() -> Dict[str, BoardBase]:
    from examples.riscv_board.board import PymemBoard
    from examples.riscv_board.unicorn_alone import UnicornBoard

    return {PYMEM: PymemBoard(output=io.StringIO()), ALONE: UnicornBoard(output=io.StringIO())}


def bench(quick: bool = False, repeats: Optional[int] = None,
          progress: Optional[io.TextIOBase] = None) -> List[Row]:
    boards = make_boards()
    rows = run_measures(boards, measures(quick), repeats or (5 if quick else 21), progress)
    return [mmio_accesses(r) if r.name == "guest MMIO access" else r for r in rows]


def format_rows(rows: List[Row]) -> str:
    header = (f"{'operation':<22} {'per':<20} {PYMEM + ' ns':>16} {ALONE + ' ns':>16} "
              f"{'ratio':>7}  goal")
    lines = [header, "-" * (len(header) + 12)]
    for r in rows:
        goal = ("" if r.goal is None else
                f"<= {r.goal:.1f}x {'met' if r.ratio <= r.goal else 'MISSED'}")
        lines.append(f"{r.name:<22} {r.unit:<20} {r.ns[PYMEM]:>16.1f} {r.ns[ALONE]:>16.1f} "
                     f"{r.ratio:>6.2f}x  {goal}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_unicorn",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a short run (4x fewer operations, 5 repeats)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per board and operation (default 21, quick 5)")
    args = parser.parse_args(argv)
    rows = bench(args.quick, args.repeats, progress=sys.stderr)   # type: ignore[arg-type]
    print(f"example RISC-V board, {PYMEM} / {ALONE}, median ns per operation, "
          f"interleaved in one run")
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
