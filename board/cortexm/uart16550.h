/* A 16550-family UART with 32-bit register spacing (QEMU's serial-mm with regshift 2, the
 * MT3620's ISU UARTs), received by interrupt into a ring, transmitted by polling THRE. */
#ifndef UART16550_H
#define UART16550_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UART_RBR 0x00u   /* receive buffer / transmit holding / divisor latch low */
#define UART_IER 0x04u
#define UART_FCR 0x08u   /* write; IIR on read */
#define UART_LCR 0x0Cu
#define UART_LSR 0x14u
#define IER_RX_AVAILABLE 0x01u
#define LSR_DATA_READY 0x01u
#define LSR_THR_EMPTY 0x20u
#define LSR_TX_IDLE 0x40u

/* Enables the FIFOs with `fifo_control` (FCR: its receive trigger level decides how many
 * bytes arrive per interrupt), 8N1, and the receive interrupt. Baud setup is the platform's,
 * before this. */
void uart_start(uintptr_t base, uint32_t fifo_control);

/* The interrupt handler's work: moves received bytes into the ring; if the ring is full, the
 * receive interrupt is masked (the UART's FIFO, then the line, hold the rest). */
void uart_isr(void);

/* Takes up to `n` received bytes (main loop only); re-enables reception it had masked. */
size_t uart_take(uint8_t *out, size_t n);

/* True if received bytes wait in the ring. */
bool uart_pending(void);

/* Sends bytes, waiting for room in the transmitter. */
void uart_send(const uint8_t *bytes, size_t n);

/* Waits until every byte has left the transmitter. */
void uart_drain_tx(void);

#endif
