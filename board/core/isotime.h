/* FLASH.clock's text: Python's datetime.fromtimestamp(wall, UTC).isoformat(), e.g.
 * "2025-02-01T00:00:00+00:00" or "2025-02-01T00:00:00.250000+00:00". */
#ifndef BOARD_ISOTIME_H
#define BOARD_ISOTIME_H

#include <stdbool.h>
#include <stdint.h>

#define ISOTIME_MAX 33u   /* "YYYY-MM-DDTHH:MM:SS.ffffff+00:00" and a NUL */

/* Microseconds since 1970 (UTC) of 0001-01-01T00:00:00 and of 9999-12-31T23:59:59.999999:
 * the range Python's datetime can write. */
#define ISOTIME_MIN_US (-62135596800000000LL)
#define ISOTIME_MAX_US (253402300799999999LL)

/* Writes `wall_us` (within the range above) as Python does, NUL-terminated; returns its
 * length. */
unsigned isotime_format(int64_t wall_us, char out[ISOTIME_MAX]);

/* Reads what isotime_format writes (and a "Z" or "+00:00" zone, microseconds optional, no
 * other offset); false if the text is not such a time. `length` excludes any newline. */
bool isotime_parse(const char *text, unsigned length, int64_t *wall_us);

#endif
