/* The guest program of the example board: no libc, no interrupts.
 *
 * main(mode, count, arg) runs one of the modes in board.h.  MODE_DEMO uses
 * every device once and prints what it saw on the UART; the other modes are
 * the loops benchmarks/bench_unicorn.py times.  The result is the word
 * start.S writes to the syscon: EXIT_PASS, or EXIT_FAIL(n) naming the check
 * that failed. */
#include "board.h"

/* gcc may emit calls to these for copies and clears, even freestanding. */
void *memcpy(void *dst, const void *src, unsigned long n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, unsigned long n)
{
    uint8_t *d = dst;
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}

static void putc(char c)
{
    while (!(UART_LSR & LSR_THRE))
        ;
    UART_THR = (uint8_t)c;
}

static void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

static void put_hex(uint32_t v)
{
    puts("0x");
    for (int shift = 28; shift >= 0; shift -= 4)
        putc("0123456789abcdef"[(v >> shift) & 0xf]);
}

static void put_dec(uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        putc(digits[--n]);
}

static uint8_t src[4096];
static uint8_t dst[4096];
static char bank_copy[48];
volatile uint32_t ram_checksum;   /* MODE_RAM's result, kept so the loop stays */

static uint32_t checksum(const uint8_t *p, uint32_t n)
{
    uint32_t h = 2166136261u;     /* FNV-1a */
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static uint64_t mtime(void)
{
    uint32_t hi, lo;
    do {
        hi = TIMER_MTIME_HI;
        lo = TIMER_MTIME_LO;
    } while (hi != TIMER_MTIME_HI);
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t dma(uint32_t from, uint32_t to, uint32_t len)
{
    DMA_SRC = from;
    DMA_DST = to;
    DMA_LEN = len;
    DMA_CTRL = DMA_START;
    return DMA_STATUS;
}

static void window_string(char *out, uint32_t n)
{
    const volatile char *w = (const volatile char *)WINDOW_BASE;
    uint32_t i = 0;
    for (; i + 1 < n && w[i]; i++)
        out[i] = w[i];
    out[i] = 0;
}

static uint32_t demo(void)
{
    puts("pymem riscv board: running from the boot ROM\n");

    UART_SCR = 0xa5;
    if (UART_SCR != 0xa5)
        return EXIT_FAIL(1);
    puts("uart: scratch register ok\n");

    uint64_t start = mtime();
    uint64_t deadline = start + 1000;        /* 1000 ticks of 1 MHz: 1 ms */
    TIMER_MTIMECMP_HI = 0xffffffffu;          /* no early match while lo changes */
    TIMER_MTIMECMP_LO = (uint32_t)deadline;
    TIMER_MTIMECMP_HI = (uint32_t)(deadline >> 32);
    /* Poll the status bit: under a slow host (a sanitizer build) the first
       poll may already see the match, so no count of polls is required. */
    while (!(TIMER_STATUS & 1))
        ;
    if (mtime() < deadline)
        return EXIT_FAIL(2);
    puts("timer: 1000 ticks passed, polled until mtime >= mtimecmp: ok\n");

    uint32_t x = 12345;
    for (uint32_t i = 0; i < sizeof src; i++) {
        x = x * 1103515245u + 12345u;
        src[i] = (uint8_t)(x >> 16);
    }
    if (dma((uint32_t)src, (uint32_t)dst, sizeof dst) != DMA_DONE)
        return EXIT_FAIL(3);
    for (uint32_t i = 0; i < sizeof dst; i++)
        if (dst[i] != src[i])
            return EXIT_FAIL(4);
    puts("dma: 4096 bytes RAM -> RAM, checksum ");
    put_hex(checksum(dst, sizeof dst));
    puts(": ok\n");
    if (dma(0x40000000u, (uint32_t)dst, 4) != DMA_ERROR)   /* nothing there */
        return EXIT_FAIL(5);
    puts("dma: from unassigned space reports an error: ok\n");

    uint32_t banks = BANK_COUNT;
    for (uint32_t b = 0; b < banks; b++) {
        BANK_SELECT = b;
        window_string(bank_copy, sizeof bank_copy);
        puts("window: ");
        puts(bank_copy);
        putc('\n');
    }
    volatile uint32_t *word = (volatile uint32_t *)(WINDOW_BASE + 0x800);
    BANK_SELECT = 2;
    *word = 0xc0ffee02u;
    BANK_SELECT = 1;
    if (*word == 0xc0ffee02u)
        return EXIT_FAIL(6);
    BANK_SELECT = 2;
    if (*word != 0xc0ffee02u)
        return EXIT_FAIL(7);
    puts("window: a store to bank 2 is still there after switching away and back: ok\n");

    BANK_SELECT = 3;
    memset(bank_copy, 0, sizeof bank_copy);
    if (dma(WINDOW_BASE, (uint32_t)bank_copy, sizeof bank_copy - 1) != DMA_DONE)
        return EXIT_FAIL(8);
    puts("dma from the window: ");
    puts(bank_copy);
    putc('\n');

    puts("DMA transfers: ");
    put_dec(DMA_COUNT);
    puts("\nall devices ok\n");
    return EXIT_PASS;
}

static uint32_t mmio_loop(uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        UART_SCR = (uint8_t)i;
        if (UART_SCR != (uint8_t)i)
            return EXIT_FAIL(11);
    }
    return EXIT_PASS;
}

static uint32_t dma_loop(uint32_t n, uint32_t len)
{
    if (len > DMA_BENCH_MAX)
        return EXIT_FAIL(21);
    for (uint32_t i = 0; i < n; i++)
        if (dma(DMA_BENCH_SRC, DMA_BENCH_DST, len) != DMA_DONE)
            return EXIT_FAIL(22);
    return EXIT_PASS;
}

static uint32_t ram_loop(uint32_t n)
{
    uint32_t h = 0;
    for (uint32_t pass = 0; pass < n; pass++)
        h += checksum(src, sizeof src);
    ram_checksum = h;
    return EXIT_PASS;
}

static uint32_t bank_loop(uint32_t n)
{
    /* The word after "bank": the texts differ from their fifth byte. */
    volatile uint32_t *first = (volatile uint32_t *)(WINDOW_BASE + 4);
    uint32_t seen[2];
    BANK_SELECT = 0;
    seen[0] = *first;
    BANK_SELECT = 1;
    seen[1] = *first;
    if (seen[0] == seen[1])
        return EXIT_FAIL(31);
    for (uint32_t i = 0; i < n; i++) {
        BANK_SELECT = i & 1;
        if (*first != seen[i & 1])
            return EXIT_FAIL(32);
    }
    return EXIT_PASS;
}

uint32_t main(uint32_t mode, uint32_t count, uint32_t arg)
{
    switch (mode) {
    case MODE_DEMO: return demo();
    case MODE_MMIO: return mmio_loop(count);
    case MODE_DMA:  return dma_loop(count, arg);
    case MODE_RAM:  return ram_loop(count);
    case MODE_BANK: return bank_loop(count);
    default:        return EXIT_FAIL(99);
    }
}
