#include "console.h"

#include <string.h>

#include "utf8.h"

void console_clear(struct console *c)
{
    c->total = 0;
    c->sent = 0;
}

void console_append(struct console *c, const uint8_t *text, uint32_t length)
{
    struct console_line *line = &c->lines[c->total % BOARD_CONSOLE_LINES];
    length = utf8_cut(text, length, BOARD_CONSOLE_LINE_MAX);
    if (length > 0) memcpy(line->text, text, length);
    line->length = (uint16_t)length;
    c->total++;
}

uint32_t console_oldest(const struct console *c)
{
    return (c->total > BOARD_CONSOLE_LINES) ? c->total - BOARD_CONSOLE_LINES : 0;
}

const struct console_line *console_line(const struct console *c, uint32_t index)
{
    return &c->lines[index % BOARD_CONSOLE_LINES];
}
