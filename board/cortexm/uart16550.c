#include "uart16550.h"

#include "cortexm.h"

#define RING_SIZE 1024u   /* a power of two */

static uintptr_t uart_base;
static uint8_t ring[RING_SIZE];
static volatile uint32_t ring_head;   /* written by the interrupt */
static volatile uint32_t ring_tail;   /* written by the main loop */

static uint32_t reg_read(uint32_t offset) { return REG32(uart_base + offset); }
static void reg_write(uint32_t offset, uint32_t value) { REG32(uart_base + offset) = value; }

void uart_start(uintptr_t base, uint32_t fifo_control)
{
    uart_base = base;
    reg_write(UART_LCR, 0x03);          /* 8 data bits, no parity, 1 stop bit */
    reg_write(UART_FCR, fifo_control);
    reg_write(UART_IER, IER_RX_AVAILABLE);
}

void uart_isr(void)
{
    while (reg_read(UART_LSR) & LSR_DATA_READY) {
        if (ring_head - ring_tail == RING_SIZE) {
            reg_write(UART_IER, 0);     /* full: leave the rest in the FIFO for now */
            return;
        }
        ring[ring_head % RING_SIZE] = (uint8_t)reg_read(UART_RBR);
        ring_head = ring_head + 1;
    }
}

size_t uart_take(uint8_t *out, size_t n)
{
    size_t got = 0;
    uint32_t head = ring_head;
    while (got < n && ring_tail != head) {
        out[got++] = ring[ring_tail % RING_SIZE];
        ring_tail = ring_tail + 1;
    }
    if (got > 0) reg_write(UART_IER, IER_RX_AVAILABLE);
    return got;
}

bool uart_pending(void) { return ring_head != ring_tail; }

void uart_send(const uint8_t *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (!(reg_read(UART_LSR) & LSR_THR_EMPTY)) {}
        reg_write(UART_RBR, bytes[i]);
    }
}

void uart_drain_tx(void)
{
    while (!(reg_read(UART_LSR) & LSR_TX_IDLE)) {}
}
