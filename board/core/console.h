/* The console (§6.3): the last BOARD_CONSOLE_LINES lines logged since power-up. */
#ifndef BOARD_CONSOLE_H
#define BOARD_CONSOLE_H

#include <stdint.h>

#include "config.h"

struct console_line {
    uint16_t length;
    uint8_t text[BOARD_CONSOLE_LINE_MAX];
};

struct console {
    uint32_t total;    /* lines logged since power-up; line i is kept iff total - i <= LINES */
    uint32_t sent;     /* lines sent as CONSOLE_LINE frames so far */
    struct console_line lines[BOARD_CONSOLE_LINES];
};

void console_clear(struct console *c);

/* Logs one line of valid UTF-8; a line longer than BOARD_CONSOLE_LINE_MAX bytes keeps its first
 * characters only, up to that many bytes (§6.3: cut between characters). */
void console_append(struct console *c, const uint8_t *text, uint32_t length);

/* The index of the oldest line still kept (== total when none is). */
uint32_t console_oldest(const struct console *c);

/* Line `index`, which must be kept: oldest <= index < total. */
const struct console_line *console_line(const struct console *c, uint32_t index);

#endif
