#include "utf8.h"

/* Bytes that follow a lead byte, and the range its first continuation byte must lie in. */
static bool lead_rule(uint8_t lead, uint32_t *more, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) *more = 1;
    else if (lead >= 0xE0 && lead <= 0xEF) *more = 2;
    else if (lead >= 0xF0 && lead <= 0xF4) *more = 3;
    else return false;
    if (lead == 0xE0) *lo = 0xA0;        /* overlong 3-byte form */
    else if (lead == 0xED) *hi = 0x9F;   /* surrogates */
    else if (lead == 0xF0) *lo = 0x90;   /* overlong 4-byte form */
    else if (lead == 0xF4) *hi = 0x8F;   /* above U+10FFFF */
    return true;
}

uint32_t utf8_cut(const uint8_t *text, uint32_t length, uint32_t limit)
{
    if (length <= limit) return length;
    uint32_t n = limit;
    while (n > 0 && (text[n] & 0xC0) == 0x80) n--;   /* text[n] would start the cut-off part */
    return n;
}

bool utf8_valid(const uint8_t *text, uint32_t length)
{
    uint32_t i = 0;
    while (i < length) {
        uint8_t lead = text[i++];
        if (lead < 0x80) continue;
        uint32_t more;
        uint8_t lo, hi;
        if (!lead_rule(lead, &more, &lo, &hi) || length - i < more) return false;
        if (text[i] < lo || text[i] > hi) return false;
        for (uint32_t k = 1; k < more; k++) {
            if ((text[i + k] & 0xC0) != 0x80) return false;
        }
        i += more;
    }
    return true;
}
