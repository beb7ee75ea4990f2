/* Reset code for the CH32V003 (RV32EC): stack, .data, .bss, main, halt.
 *
 * After reset the core runs the flash alias at address 0, but everything is
 * linked at 0x08000000, so the first thing done is an absolute jump there;
 * after that pc-relative and absolute addresses agree. Absolute addressing
 * (lui/addi) is used for the same reason. No interrupts, no clock setup: the
 * harness only needs a C environment.
 *
 * When main returns, the core spins at the global label _halt. The emulator
 * stops when pc reaches _halt; on hardware a debugger can read the results.
 */
    .section .text.start, "ax"
    .global _start
_start:
    lui     t0, %hi(_linked)
    jalr    zero, %lo(_linked)(t0)
_linked:
    lui     sp, %hi(__stack_top)
    addi    sp, sp, %lo(__stack_top)

    /* Copy .data from its load address in flash; word at a time, the
     * linker script keeps both ends 4-byte aligned. */
    lui     a0, %hi(__data_load)
    addi    a0, a0, %lo(__data_load)
    lui     a1, %hi(__data_start)
    addi    a1, a1, %lo(__data_start)
    lui     a2, %hi(__data_end)
    addi    a2, a2, %lo(__data_end)
    j       2f
1:  lw      t0, 0(a0)
    sw      t0, 0(a1)
    addi    a0, a0, 4
    addi    a1, a1, 4
2:  bltu    a1, a2, 1b

    /* Zero .bss. */
    lui     a1, %hi(__bss_start)
    addi    a1, a1, %lo(__bss_start)
    lui     a2, %hi(__bss_end)
    addi    a2, a2, %lo(__bss_end)
    j       4f
3:  sw      zero, 0(a1)
    addi    a1, a1, 4
4:  bltu    a1, a2, 3b

    call    main

    .global _halt
_halt:
    j       _halt
