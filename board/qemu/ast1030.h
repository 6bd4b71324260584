/* The ast1030-evb as the qemu firmware sets it up: UART5, QEMU's 16550 (serial-mm, 32-bit
 * spacing) at 0x7E784000, IRQ 8; SysTick on the 200 MHz CPU clock. Shared by the agent
 * (qemu/main.c) and the bench's raw line (qemu/echo/echo.c), so both take bytes off the line
 * the same way. */
#ifndef QEMU_AST1030_H
#define QEMU_AST1030_H

#include "../cortexm/cortexm.h"
#include "../cortexm/uart16550.h"

/* What a firmware writes on QEMU's stderr (semihosting SYS_WRITE0) once its UART takes bytes
 * and it has powered up: run_qemu.py names the port only then. A host that wrote earlier could
 * lose bytes to the UART's reset and set-up (its FIFO clear). */
#define QEMU_READY_LINE "board: ready\n"

#define UART5_BASE 0x7E784000u
#define UART5_IRQ 8u
#define CPU_HZ 200000000u            /* the ast1030-evb's sysclk, SysTick's clock */
#ifndef SYSTICK_SPAN
#define SYSTICK_SPAN (1u << 24)      /* a wrap every 84 ms: the main loop's longest sleep */
#endif

/* Reads of the counter to wait for its first load before giving up (QEMU: a few ms). */
#define SYSTICK_LOAD_SPINS 50000000u

/* SysTick counting down from SYSTICK_SPAN - 1 on the CPU clock, its interrupt on; returns once
 * the counter has taken its first value. Until then it reads 0 (QEMU loads it from its own main
 * loop, a millisecond or two later), and a 0 reads as the end of the first period: the clock
 * would say 84 ms at power-up and then go back to 0, CLOCK_MONOTONIC reading -0.08 s. */
static inline void systick_start(void)
{
    SYST_RVR = SYSTICK_SPAN - 1u;
    SYST_CVR = 0;
    SYST_CSR = SYST_ENABLE_TICKINT_CPUCLK;
    for (uint32_t spins = 0; SYST_CVR == 0 && spins < SYSTICK_LOAD_SPINS; spins++) {}
}

/* Divisor 1: QEMU's 16550 then times its receive timeout at 38,400 bit/s instead of its reset
 * value's 9,600 (the last bytes of a frame wait four character times). FIFOs on and cleared,
 * receive trigger at 14 bytes (at 1 byte QEMU hands over one byte per main-loop turn), the
 * receive interrupt on. */
static inline void uart5_start(void)
{
    REG32(UART5_BASE + UART_LCR) = 0x80;   /* divisor latch */
    REG32(UART5_BASE + 0x00u) = 1;         /* DLL */
    REG32(UART5_BASE + 0x04u) = 0;         /* DLM */
    REG32(UART5_BASE + UART_LCR) = 0x03;
    uart_start(UART5_BASE, 0xC7);
    nvic_enable(UART5_IRQ);
}

/* Sleeps (WFI) until something arrives or another interrupt (SysTick) fires. */
static inline void uart5_idle(void)
{
    irq_disable();
    if (!uart_pending()) wait_for_interrupt();
    irq_enable();
}

#endif
