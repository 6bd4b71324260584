/* RESET_*, CLOCK_*, WATCHDOG_* (§6.1 clocks, §6.6) and CONSOLE_* (§6.3). */
#include <math.h>
#include <string.h>

#include "agent_ops.h"
#include "isotime.h"
#include "platform.h"
#include "utf8.h"
#include "wire.h"

/* Seconds as microseconds, rounded to the nearest; `seconds` is finite, >= 0, and below
 * 9.2e12 (the caller checks). */
static int64_t to_us(double seconds) { return (int64_t)(seconds * 1e6 + 0.5); }

/* The longest sleep taken as a number (about 290,000 years; a longer one is refused), and the
 * longest watchdog timeout (a longer one is taken as this, 31,000 years: it never bites). */
#define MAX_SECONDS 9.2e12
#define MAX_TIMEOUT_SECONDS 1e12

enum error_code op_reset_request(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)a;
    uint8_t cause = rq->payload[0];
    if (cause == CAUSE_POWER_ON || cause > CAUSE_POWER_LOSS) {
        return refuse(rp, ERR_BAD_ARGUMENT, "reset cause");
    }
    rp->flags |= FLAG_REBOOTED;
    rp->reboot = cause;
    return ERR_NONE;
}

enum error_code op_reset_last_cause(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)rq;
    rp->payload[0] = a->persist->last_cause;
    rp->length = 1;
    return ERR_NONE;
}

static void put_seconds(struct reply *rp, int64_t us)
{
    put_f64(rp->payload, (double)us / 1e6);
    rp->length = 8;
}

enum error_code op_clock_wall(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)rq;
    put_seconds(rp, agent_wall_us(a));
    return ERR_NONE;
}

enum error_code op_clock_monotonic(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)rq;
    put_seconds(rp, agent_monotonic_us(a));
    return ERR_NONE;
}

/* A virtual sleep: both clocks jump at once; a watchdog whose deadline falls within the
 * sleep bites there (the clocks stop at the deadline, the reply carries REBOOTED). */
enum error_code op_clock_sleep(struct agent *a, const struct request *rq, struct reply *rp)
{
    double seconds = get_f64(rq->payload);
    if (!isfinite(seconds) || seconds < 0.0) return refuse(rp, ERR_BAD_ARGUMENT, "sleep seconds");
    int64_t now = agent_monotonic_us(a);
    int64_t room = ISOTIME_MAX_US - agent_wall_us(a);
    if (seconds > MAX_SECONDS || to_us(seconds) > room) {
        return refuse(rp, ERR_BAD_ARGUMENT, "sleep past year 9999");
    }
    int64_t step = to_us(seconds);
    if (a->dog.armed && now + step >= a->dog.deadline_us) {
        step = a->dog.deadline_us > now ? a->dog.deadline_us - now : 0;
        rp->flags |= FLAG_REBOOTED;
        rp->reboot = CAUSE_WATCHDOG;
    }
    a->persist->mono_base_us += step;
    plat_wall_changed(agent_wall_us(a));
    return ERR_NONE;
}

enum error_code op_watchdog_start(struct agent *a, const struct request *rq, struct reply *rp)
{
    double seconds = get_f64(rq->payload);
    if (!isfinite(seconds) || !(seconds > 0.0)) return refuse(rp, ERR_BAD_ARGUMENT, "timeout");
    int64_t timeout = to_us(seconds > MAX_TIMEOUT_SECONDS ? MAX_TIMEOUT_SECONDS : seconds);
    a->dog.armed = true;
    a->dog.timeout_us = timeout > 0 ? timeout : 1;
    a->dog.deadline_us = agent_monotonic_us(a) + a->dog.timeout_us;
    return ERR_NONE;
}

enum error_code op_watchdog_kick(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)rq;
    (void)rp;
    if (a->dog.armed) a->dog.deadline_us = agent_monotonic_us(a) + a->dog.timeout_us;
    return ERR_NONE;
}

enum error_code op_watchdog_stop(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)rq;
    (void)rp;
    a->dog.armed = false;
    return ERR_NONE;
}

enum error_code op_console_log(struct agent *a, const struct request *rq, struct reply *rp)
{
    uint32_t limit = a->config->max_payload < MAX_LOG_TEXT ? a->config->max_payload : MAX_LOG_TEXT;
    if (rq->length > limit) return refuse(rp, ERR_BAD_LENGTH, "text over the limit");
    if (!utf8_valid(rq->payload, rq->length)) return refuse(rp, ERR_BAD_ARGUMENT, "not UTF-8");
    agent_log(a, rq->payload, rq->length);
    return ERR_NONE;
}

/* The first line a CONSOLE_LINES reply starts at, for `first` (§6.3). */
static uint32_t lines_start(const struct console *c, uint32_t first)
{
    if (first >= c->total) return c->total;
    uint32_t oldest = console_oldest(c);
    return first < oldest ? oldest : first;
}

enum error_code op_console_lines(struct agent *a, const struct request *rq, struct reply *rp)
{
    const struct console *c = &a->persist->console;
    uint32_t start = lines_start(c, get_u32(rq->payload));
    uint8_t *out = rp->payload;
    uint32_t used = 10, count = 0;
    for (uint32_t i = start; i < c->total && count < 0xFFFFu; i++, count++) {
        const struct console_line *line = console_line(c, i);
        uint32_t length = line->length;
        if (used + 2u + length > rp->capacity) {
            if (count > 0) break;
            /* the first line is cut to fit, between characters */
            length = utf8_cut(line->text, length, rp->capacity - used - 2u);
        }
        put_u16(out + used, (uint16_t)length);
        memcpy(out + used + 2, line->text, length);
        used += 2u + length;
    }
    put_u32(out, c->total);
    put_u32(out + 4, start);
    put_u16(out + 8, (uint16_t)count);
    rp->length = used;
    return ERR_NONE;
}
