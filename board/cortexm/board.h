/* What a Cortex-M platform provides to the shared start-up code. */
#ifndef CORTEXM_BOARD_H
#define CORTEXM_BOARD_H

/* After .data and .bss are set up; never returns. */
_Noreturn void board_main(void);
/* The UART's interrupt (BOARD_UART_IRQ) and SysTick's. */
void board_uart_isr(void);
void board_tick_isr(void);

#endif
