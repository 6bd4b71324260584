/* The raw line that bench/board.py measures the QEMU agent's link against: the same board
 * (ast1030-evb), the same UART set-up and driver (ast1030.h: FIFO trigger, divisor, the receive
 * interrupt into a ring) and the same main loop taking bytes off the ring, but no framing, no
 * CRC, no flash (SysTick runs as in the agent: QEMU's main loop wakes on its timer too). The
 * first byte received picks what comes back:
 *   'E'  every byte after it (an echo: the board's transmit path carries all the data too)
 *   'A'  one byte, 'k', for every ACK_BLOCK bytes after it (what programming sends back: a
 *        short reply per block, the data itself going one way). */
#include "../../cortexm/board.h"
#include "../ast1030.h"
#include "../semihost.h"

#define ACK_BLOCK 4096u

void board_uart_isr(void) { uart_isr(); }
void board_tick_isr(void) {}

_Noreturn void board_main(void)
{
    systick_start();
    uart5_start();
    irq_enable();
    sh_write0(QEMU_READY_LINE);
    uint8_t chunk[128], mode = 0;
    uint32_t since_ack = 0;
    for (;;) {
        size_t n = uart_take(chunk, sizeof chunk);
        if (n == 0) {
            uart5_idle();
            continue;
        }
        const uint8_t *data = chunk;
        if (mode == 0) {
            mode = chunk[0];
            data++;
            n--;
        }
        if (mode == 'E') {
            uart_send(data, n);
            continue;
        }
        since_ack += (uint32_t)n;
        for (; since_ack >= ACK_BLOCK; since_ack -= ACK_BLOCK) uart_send((const uint8_t *)"k", 1);
    }
}
