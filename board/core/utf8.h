#ifndef BOARD_UTF8_H
#define BOARD_UTF8_H

#include <stdbool.h>
#include <stdint.h>

/* True if `text` is well-formed UTF-8 as Python's strict decoder takes it: no overlong forms,
 * no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no cut sequence. */
bool utf8_valid(const uint8_t *text, uint32_t length);

/* How many of the `length` bytes of valid UTF-8 `text` to keep so that at most `limit` remain
 * and the cut falls between characters, never inside one (§3.1): `length` if it fits. */
uint32_t utf8_cut(const uint8_t *text, uint32_t length, uint32_t limit);

#endif
