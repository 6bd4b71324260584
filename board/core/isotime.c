#include "isotime.h"

#include <stddef.h>

static const int64_t US_PER_SECOND = 1000000;
static const int64_t US_PER_DAY = 86400LL * 1000000;

/* Days from 1970-01-01 to year-month-day in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Writes `value` as exactly `width` decimal digits. */
static char *digits(char *out, uint64_t value, unsigned width)
{
    for (unsigned i = width; i > 0; i--) {
        out[i - 1] = (char)('0' + value % 10);
        value /= 10;
    }
    return out + width;
}

unsigned isotime_format(int64_t wall_us, char out[ISOTIME_MAX])
{
    int64_t days = wall_us / US_PER_DAY;
    int64_t rest = wall_us % US_PER_DAY;
    if (rest < 0) {
        rest += US_PER_DAY;
        days--;
    }
    int64_t year;
    unsigned month, day;
    civil_from_days(days, &year, &month, &day);
    uint64_t seconds = (uint64_t)(rest / US_PER_SECOND), micros = (uint64_t)(rest % US_PER_SECOND);
    char *p = digits(out, (uint64_t)year, 4);
    *p++ = '-';
    p = digits(p, month, 2);
    *p++ = '-';
    p = digits(p, day, 2);
    *p++ = 'T';
    p = digits(p, seconds / 3600, 2);
    *p++ = ':';
    p = digits(p, seconds / 60 % 60, 2);
    *p++ = ':';
    p = digits(p, seconds % 60, 2);
    if (micros != 0) {
        *p++ = '.';
        p = digits(p, micros, 6);
    }
    const char *zone = "+00:00";
    while (*zone) *p++ = *zone++;
    *p = '\0';
    return (unsigned)(p - out);
}

/* Reads exactly `width` digits at text[*at]. */
static bool read_digits(const char *text, unsigned length, unsigned *at, unsigned width,
                        uint32_t *value)
{
    *value = 0;
    for (unsigned i = 0; i < width; i++, (*at)++) {
        if (*at >= length || text[*at] < '0' || text[*at] > '9') return false;
        *value = *value * 10 + (uint32_t)(text[*at] - '0');
    }
    return true;
}

static bool expect(const char *text, unsigned length, unsigned *at, char c)
{
    if (*at >= length || text[*at] != c) return false;
    (*at)++;
    return true;
}

static bool read_zone(const char *text, unsigned length, unsigned at)
{
    static const char utc[] = "+00:00";
    if (length - at == 1) return text[at] == 'Z';
    if (length - at != sizeof utc - 1) return false;
    for (unsigned i = 0; i < sizeof utc - 1; i++) {
        if (text[at + i] != utc[i]) return false;
    }
    return true;
}

static bool days_in_month_ok(uint32_t year, uint32_t month, uint32_t day)
{
    static const uint8_t days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days[month - 1]) return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return !(month == 2 && day == 29 && !leap);
}

bool isotime_parse(const char *text, unsigned length, int64_t *wall_us)
{
    uint32_t year, month, day, hour, minute, second, micros = 0;
    unsigned at = 0;
    if (!read_digits(text, length, &at, 4, &year) || !expect(text, length, &at, '-') ||
        !read_digits(text, length, &at, 2, &month) || !expect(text, length, &at, '-') ||
        !read_digits(text, length, &at, 2, &day) || !expect(text, length, &at, 'T') ||
        !read_digits(text, length, &at, 2, &hour) || !expect(text, length, &at, ':') ||
        !read_digits(text, length, &at, 2, &minute) || !expect(text, length, &at, ':') ||
        !read_digits(text, length, &at, 2, &second)) {
        return false;
    }
    if (at < length && text[at] == '.') {
        at++;
        if (!read_digits(text, length, &at, 6, &micros)) return false;
    }
    if (!read_zone(text, length, at) || !days_in_month_ok(year, month, day) || hour > 23 ||
        minute > 59 || second > 59) {
        return false;
    }
    int64_t days = days_from_civil(year, month, day);
    *wall_us = days * US_PER_DAY + (int64_t)(hour * 3600u + minute * 60u + second) * US_PER_SECOND +
               micros;
    return true;
}
