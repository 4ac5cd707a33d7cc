"""A small RISC-V 32 board on pymem and unicorn: boot ROM, RAM, a UART, a
timer, a DMA engine with its own address space and a banked memory window.

`python -m examples.riscv_board` runs the guest program (guest/board.bin,
built from guest/main.c) on it.  board.py is the board on pymem;
unicorn_alone.py the same board on unicorn alone, its peer in
benchmarks/bench_unicorn.py.  See README.md here.
"""
