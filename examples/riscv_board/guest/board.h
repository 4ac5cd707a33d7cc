/* The board's memory map and device registers, as the guest sees them.
 * examples/riscv_board/memmap.py holds the same numbers for the host side;
 * tests/test_example_board.py checks that the two agree. */
#ifndef BOARD_H
#define BOARD_H

#include <stdint.h>

#define ROM_BASE     0x00000000u   /* boot ROM: this program, executed in place */
#define SYSCON_BASE  0x00100000u   /* write EXIT_PASS or EXIT_FAIL(code) to stop */
#define UART_BASE    0x10000000u   /* 16550 subset, byte registers */
#define TIMER_BASE   0x10001000u   /* free-running 1 MHz mtime, mtimecmp, status */
#define DMA_BASE     0x10002000u   /* memory-to-memory copy engine */
#define BANK_BASE    0x10003000u   /* bank select for the window below */
#define WINDOW_BASE  0x20000000u   /* one 4 KiB bank of the banked SRAM */
#define RAM_BASE     0x80000000u

#define BANK_SIZE    0x1000u

/* MODE_DMA copies between these two RAM areas. */
#define DMA_BENCH_SRC 0x80040000u
#define DMA_BENCH_DST 0x80080000u
#define DMA_BENCH_MAX 0x40000u

#define REG8(a)  (*(volatile uint8_t *)(a))
#define REG32(a) (*(volatile uint32_t *)(a))

#define SYSCON_EXIT  REG32(SYSCON_BASE + 0x0)
#define EXIT_PASS    0x5555u
#define EXIT_FAIL(code) (((uint32_t)(code) << 16) | 0x3333u)

#define UART_THR     REG8(UART_BASE + 0x0)
#define UART_LSR     REG8(UART_BASE + 0x5)
#define UART_SCR     REG8(UART_BASE + 0x7)
#define LSR_THRE     0x20u

#define TIMER_MTIME_LO    REG32(TIMER_BASE + 0x00)
#define TIMER_MTIME_HI    REG32(TIMER_BASE + 0x04)
#define TIMER_MTIMECMP_LO REG32(TIMER_BASE + 0x08)
#define TIMER_MTIMECMP_HI REG32(TIMER_BASE + 0x0c)
#define TIMER_STATUS      REG32(TIMER_BASE + 0x10)   /* bit 0: mtime >= mtimecmp */

#define DMA_SRC      REG32(DMA_BASE + 0x00)
#define DMA_DST      REG32(DMA_BASE + 0x04)
#define DMA_LEN      REG32(DMA_BASE + 0x08)
#define DMA_CTRL     REG32(DMA_BASE + 0x0c)   /* write DMA_START: copy now */
#define DMA_STATUS   REG32(DMA_BASE + 0x10)   /* DMA_DONE or DMA_ERROR */
#define DMA_COUNT    REG32(DMA_BASE + 0x14)   /* transfers completed */
#define DMA_START    1u
#define DMA_DONE     1u
#define DMA_ERROR    2u

#define BANK_SELECT  REG32(BANK_BASE + 0x0)
#define BANK_COUNT   REG32(BANK_BASE + 0x4)

/* What main() does; the host puts it in a0 (with a count in a1 and an
 * argument in a2) before starting the CPU. */
#define MODE_DEMO    0   /* exercise every device and print what happened */
#define MODE_MMIO    1   /* a1 times: store then load the UART scratch register */
#define MODE_DMA     2   /* a1 times: one DMA of a2 bytes, RAM to RAM */
#define MODE_RAM     3   /* a1 passes of a checksum over a 4 KiB RAM buffer */
#define MODE_BANK    4   /* a1 bank switches, each followed by a load from the window */

#endif
