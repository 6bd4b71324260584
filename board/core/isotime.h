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

/* Reads an ISO 8601 date or date-time in the forms Python's datetime.fromisoformat (3.11)
 * reads: a date YYYY-MM-DD, YYYYMMDD, YYYY-Www[-D] or YYYYWww[D]; then, optionally, any one
 * ASCII character and a time HH[:MM[:SS]] or HH[MM[SS]], the seconds with an optional fraction
 * (. or , then digits; past the sixth they are dropped); then, only after a time, an optional
 * zone, Z or +/-HH[[:]MM[[:]SS[.ffffff]]] below 24 hours. Without a zone the time is UTC, or
 * refused when `zone_required`. *wall_us is the time in UTC; false (nothing stored) if the
 * text is not such a time or the time is outside what isotime_format writes. `length`
 * excludes any newline. */
bool isotime_parse(const char *text, unsigned length, bool zone_required, int64_t *wall_us);

#endif
