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

/* A cursor over the text being read. */
struct reader {
    const char *text;
    unsigned length, at;
};

static bool at_end(const struct reader *r) { return r->at >= r->length; }
static char peek(const struct reader *r) { return at_end(r) ? '\0' : r->text[r->at]; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Reads exactly `width` digits. */
static bool read_digits(struct reader *r, unsigned width, uint32_t *value)
{
    *value = 0;
    for (unsigned i = 0; i < width; i++, r->at++) {
        if (!is_digit(peek(r))) return false;
        *value = *value * 10 + (uint32_t)(r->text[r->at] - '0');
    }
    return true;
}

/* Takes `c` if it is next. */
static bool take(struct reader *r, char c)
{
    if (at_end(r) || r->text[r->at] != c) return false;
    r->at++;
    return true;
}

static bool leap_year(uint32_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static bool days_in_month_ok(uint32_t year, uint32_t month, uint32_t day)
{
    static const uint8_t days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days[month - 1]) return false;
    return !(month == 2 && day == 29 && !leap_year(year));
}

/* Days since 1970 of ISO week date year-Wweek-weekday (weekday 1 = Monday); false if there is
 * no such week in that year. */
static bool days_from_week(uint32_t year, uint32_t week, uint32_t weekday, int64_t *days)
{
    int64_t jan1 = days_from_civil(year, 1, 1);
    unsigned jan1_weekday = (unsigned)(((jan1 % 7) + 7 + 3) % 7);   /* 0 = Monday; 1970-01-01 a Thursday */
    bool long_year = jan1_weekday == 3 || (jan1_weekday == 2 && leap_year(year));
    if (year < 1 || week < 1 || week > (long_year ? 53u : 52u) || weekday < 1 || weekday > 7) {
        return false;
    }
    int64_t week1_monday = jan1 - jan1_weekday + (jan1_weekday > 3 ? 7 : 0);
    *days = week1_monday + (int64_t)(week - 1) * 7 + (weekday - 1);
    return true;
}

/* YYYY-MM-DD, YYYYMMDD, YYYY-Www[-D] or YYYYWww[D]: days since 1970. */
static bool read_date(struct reader *r, int64_t *days)
{
    uint32_t year, month, day, week, weekday = 1;
    if (!read_digits(r, 4, &year)) return false;
    bool extended = take(r, '-');
    if (take(r, 'W')) {
        if (!read_digits(r, 2, &week)) return false;
        if (extended ? take(r, '-') : is_digit(peek(r))) {
            if (!read_digits(r, 1, &weekday)) return false;
        }
        return days_from_week(year, week, weekday, days);
    }
    if (!read_digits(r, 2, &month) || (extended && !take(r, '-')) || !read_digits(r, 2, &day) ||
        !days_in_month_ok(year, month, day)) {
        return false;
    }
    *days = days_from_civil(year, month, day);
    return true;
}

/* HH, HH:MM, HH:MM:SS, HHMM, HHMMSS; seconds may have a fraction (. or , and digits, those
 * past the sixth dropped). Microseconds since midnight; `limit_hours` bounds the hour. */
static bool read_clock_time(struct reader *r, uint32_t limit_hours, int64_t *us)
{
    uint32_t hour, minute = 0, second = 0, micros = 0;
    if (!read_digits(r, 2, &hour) || hour >= limit_hours) return false;
    bool extended = take(r, ':');
    if (extended || is_digit(peek(r))) {
        if (!read_digits(r, 2, &minute)) return false;
        if (extended ? take(r, ':') : is_digit(peek(r))) {
            if (!read_digits(r, 2, &second)) return false;
            if (take(r, '.') || take(r, ',')) {
                unsigned digits_read = 0;
                for (; is_digit(peek(r)); r->at++, digits_read++) {
                    if (digits_read < 6) micros = micros * 10 + (uint32_t)(r->text[r->at] - '0');
                }
                if (digits_read == 0) return false;
                for (; digits_read < 6; digits_read++) micros *= 10;
            }
        }
    }
    if (minute > 59 || second > 59) return false;
    *us = (int64_t)(hour * 3600u + minute * 60u + second) * US_PER_SECOND + micros;
    return true;
}

/* Z, or +/- an offset below 24 hours: microseconds to subtract for UTC. */
static bool read_zone(struct reader *r, int64_t *offset_us)
{
    if (take(r, 'Z')) {
        *offset_us = 0;
        return true;
    }
    bool negative = take(r, '-');
    if (!negative && !take(r, '+')) return false;
    if (!read_clock_time(r, 24, offset_us)) return false;
    if (negative) *offset_us = -*offset_us;
    return true;
}

bool isotime_parse(const char *text, unsigned length, bool zone_required, int64_t *wall_us)
{
    struct reader r = {text, length, 0};
    int64_t days, time_us = 0, offset_us = 0;
    if (!read_date(&r, &days)) return false;
    bool has_zone = false;
    if (!at_end(&r)) {
        char separator = r.text[r.at++];
        if (separator & 0x80 || !read_clock_time(&r, 24, &time_us)) return false;
        if (!at_end(&r)) {
            if (!read_zone(&r, &offset_us)) return false;
            has_zone = true;
        }
    }
    if (!at_end(&r) || (zone_required && !has_zone)) return false;
    int64_t us = days * US_PER_DAY + time_us - offset_us;
    if (us < ISOTIME_MIN_US || us > ISOTIME_MAX_US) return false;
    *wall_us = us;
    return true;
}
