#include "options.h"

#include <string.h>

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool decode_path(const char *text, char *out)
{
    size_t used = 0;
    for (const char *p = text; *p; p++) {
        char c = *p;
        if (c == '%') {
            int hi = hex_digit(p[1]), lo = hi < 0 ? -1 : hex_digit(p[2]);
            if (lo < 0) return false;
            c = (char)(hi * 16 + lo);
            p += 2;
        }
        if (used + 1 >= OPTION_PATH_MAX) return false;
        out[used++] = c;
    }
    out[used] = '\0';
    return used > 0;
}

static bool decode_number(const char *text, int64_t *out)
{
    bool negative = *text == '-';
    if (negative) text++;
    if (*text == '\0') return false;
    int64_t value = 0;
    for (; *text; text++) {
        if (*text < '0' || *text > '9' || value > (INT64_MAX - 9) / 10) return false;
        value = value * 10 + (*text - '0');
    }
    *out = negative ? -value : value;
    return true;
}

/* Stores one key=value; false if the key is unknown or the value bad. */
static bool store(struct qemu_options *o, const char *key, const char *value, unsigned *seen)
{
    static const char *const keys[] = {"size", "sector", "page", "otp", "payload", "window",
                                       "session"};
    uint32_t *fields[] = {&o->size, &o->sector, &o->page, &o->otp, &o->payload, &o->window,
                          &o->session};
    int64_t number;
    if (strcmp(key, "flash") == 0) {
        *seen |= 1u << 8;
        return decode_path(value, o->flash);
    }
    if (!decode_number(value, &number)) return false;
    if (strcmp(key, "wall") == 0) {
        *seen |= 1u << 7;
        o->wall_us = number;
        return true;
    }
    for (unsigned i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(key, keys[i]) == 0 && number >= 0 && number <= 0xFFFFFFFFLL) {
            *fields[i] = (uint32_t)number;
            *seen |= 1u << i;
            return true;
        }
    }
    return false;
}

/* Words separated by spaces, cut in place. (Not strtok: picolibc keeps its state in
 * thread-local storage, which this start-up code never sets up; the thread pointer is 0, so
 * strtok's state went into low SRAM, where the vector table is.) */
bool options_parse(char *line, struct qemu_options *o)
{
    unsigned seen = 0;
    for (char *token = line; *token;) {
        char *end = token + strcspn(token, " ");
        char *next = *end ? end + 1 : end;
        *end = '\0';
        char *equals = strchr(token, '=');
        if (equals) {   /* else the program name, or an empty word */
            *equals = '\0';
            if (!store(o, token, equals + 1, &seen)) return false;
        }
        token = next;
    }
    return seen == 0x1FFu;
}
