/* Reset entry at the start of the boot ROM.  The host passes main's
 * arguments in a0-a2; they are kept in s0-s2 while .data is copied out of
 * the ROM and .bss cleared, then main's result goes to the syscon, which
 * stops the CPU. */
    .section .text.start
    .globl _start
_start:
    mv    s0, a0
    mv    s1, a1
    mv    s2, a2
    la    sp, __stack_top

    la    t0, __data_load       /* .data: ROM image -> RAM */
    la    t1, __data_start
    la    t2, __data_end
1:  bgeu  t1, t2, 2f
    lw    t3, 0(t0)
    sw    t3, 0(t1)
    addi  t0, t0, 4
    addi  t1, t1, 4
    j     1b
2:  la    t1, __bss_start       /* .bss: zeroes */
    la    t2, __bss_end
3:  bgeu  t1, t2, 4f
    sw    zero, 0(t1)
    addi  t1, t1, 4
    j     3b

4:  mv    a0, s0
    mv    a1, s1
    mv    a2, s2
    call  main
    li    t0, 0x00100000        /* SYSCON_BASE: main's result is the exit word */
    sw    a0, 0(t0)
5:  j     5b                    /* not reached: the syscon write stops the CPU */
