/* SLIP receiving (§4: candidates, drops, resync) and sending (§2). */
#ifndef BOARD_SLIP_H
#define BOARD_SLIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one received byte did to the decoder. */
enum slip_event {
    SLIP_MORE = 0,         /* keep feeding */
    SLIP_FRAME,            /* a candidate passed every check of §4: see slip_rx.frame */
    SLIP_IGNORED,          /* an empty candidate (two ENDs in a row): not counted */
    SLIP_DROP_OVERSIZE,    /* §4 rules 2 and 5 */
    SLIP_DROP_GARBAGE,     /* §4 rules 3 and 4 */
    SLIP_DROP_LENGTH,      /* §4 rule 6 */
    SLIP_DROP_CRC,         /* §4 rule 7 */
};

/* A decoder that unescapes as bytes arrive into a buffer of 13 + max_payload bytes. */
struct slip_rx {
    uint8_t *frame;        /* the unescaped candidate; a checked frame when SLIP_FRAME */
    uint32_t capacity;     /* 13 + max_payload */
    uint32_t max_payload;
    uint32_t length;       /* unescaped bytes held */
    bool started;          /* at least one byte since the last END */
    bool escaped;          /* the last byte was ESC */
    bool garbage;          /* a bad escape was seen */
    bool oversize;         /* more than capacity bytes arrived */
};

/* Prepares `rx` over `buffer` (at least 13 + max_payload bytes). */
void slip_rx_init(struct slip_rx *rx, uint8_t *buffer, uint32_t max_payload);

/* Forgets any half-received candidate (a boot clears the receiver, §9). */
void slip_rx_reset(struct slip_rx *rx);

/* Takes one byte off the line. On SLIP_FRAME, rx->frame holds rx->length bytes (13 + n) that
 * passed §4; the caller must use them before the next call. Never reads or writes outside
 * the buffer, whatever the input. */
enum slip_event slip_rx_byte(struct slip_rx *rx, uint8_t byte);

/* Takes the plain bytes (neither END nor ESC) at the start of `bytes`, as slip_rx_byte would
 * one by one (none of them can end a candidate), in one go; returns how many: 0 if the first
 * byte is END or ESC, or follows an ESC (slip_rx_byte takes it). */
size_t slip_rx_run(struct slip_rx *rx, const uint8_t *bytes, size_t n);

/* Where encoded bytes go: the platform's transmitter, in pieces. */
typedef void (*slip_sink)(const uint8_t *bytes, size_t n);

/* Sends END, the escaped `n` bytes, END. */
void slip_send(slip_sink sink, const uint8_t *data, size_t n);

#endif
