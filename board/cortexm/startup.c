/* Cortex-M start-up shared by the qemu and mt3620 firmware: the vector table, .data/.bss set
 * up, then board_main(). The platform names its UART interrupt (BOARD_UART_IRQ) and count
 * (BOARD_IRQ_COUNT); every other exception resets the core. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "cortexm.h"

#ifndef BOARD_UART_IRQ
#error "BOARD_UART_IRQ: the UART's interrupt number"
#endif
#ifndef BOARD_IRQ_COUNT
#error "BOARD_IRQ_COUNT: interrupts in the vector table"
#endif

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;

_Noreturn void reset_handler(void);
_Noreturn void fault_handler(void);

#define EXCEPTIONS (16 + BOARD_IRQ_COUNT)

__attribute__((section(".vector_table"), used, aligned(512)))
const uintptr_t vector_table[EXCEPTIONS] = {
    [0] = (uintptr_t)&__stack_top,
    [1] = (uintptr_t)reset_handler,
    [2 ... 14] = (uintptr_t)fault_handler,
    [15] = (uintptr_t)board_tick_isr,
#if BOARD_UART_IRQ > 0
    [16 ... 15 + BOARD_UART_IRQ] = (uintptr_t)fault_handler,
#endif
    [16 + BOARD_UART_IRQ] = (uintptr_t)board_uart_isr,
    [17 + BOARD_UART_IRQ ... EXCEPTIONS - 1] = (uintptr_t)fault_handler,
};

_Noreturn void cortexm_system_reset(void)
{
    __asm__ volatile("dsb" ::: "memory");
    SCB_AIRCR = AIRCR_SYSRESETREQ;
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {}
}

/* An unexpected exception: the board resets (its .noinit state decides what survives). */
_Noreturn void fault_handler(void) { cortexm_system_reset(); }

_Noreturn void reset_handler(void)
{
    SCB_VTOR = (uint32_t)(uintptr_t)vector_table;
#ifdef __ARM_FP
    REG32(0xE000ED88u) |= 0xFu << 20;   /* CPACR: the FPU (CP10, CP11) for the hard-float ABI */
    __asm__ volatile("dsb\n isb" ::: "memory");
#endif
    size_t data = (size_t)((uintptr_t)&__data_end - (uintptr_t)&__data_start);
    if (data > 0 && &__data_load != &__data_start) memcpy(&__data_start, &__data_load, data);
    memset(&__bss_start, 0, (size_t)((uintptr_t)&__bss_end - (uintptr_t)&__bss_start));
    board_main();
}
