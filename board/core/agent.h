/* The board agent: decoding, the reply cache, every opcode, boot and the watchdog. */
#ifndef BOARD_AGENT_H
#define BOARD_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "console.h"
#include "slip.h"

/* What the board is: fixed at power-up, announced in HELLO. */
struct board_config {
    uint32_t max_payload;   /* P, MIN_PAYLOAD .. BOARD_PAYLOAD_CAPACITY */
    uint16_t window;        /* 1 .. 16 */
    uint32_t baud;          /* 0: a virtual line */
    uint32_t flash_size, sector_size, page_size;
    uint32_t otp_words;
    const char *banner;     /* BOOT_BANNER text */
};

struct board_stats {
    uint32_t received, dropped, bad_crc, duplicates, errors;
};

/* What survives a reset and is lost at power-up (§9). A platform that really resets keeps
 * it in RAM that start-up code does not clear. */
struct board_persist {
    uint32_t boot_count;
    uint32_t session;
    uint8_t last_cause;
    int64_t mono_base_us;    /* CLOCK_MONOTONIC when this boot's uptime was 0 */
    int64_t boot_mono_us;    /* CLOCK_MONOTONIC at this boot: HELLO's boot_monotonic (§6.1) */
    int64_t wall_minus_mono_us;
    struct board_stats stats;
    struct console console;
};

struct watchdog {
    bool armed;
    int64_t timeout_us;
    int64_t deadline_us;    /* in CLOCK_MONOTONIC microseconds */
};

struct agent {
    const struct board_config *config;
    struct board_persist *persist;
    struct slip_rx rx;
    struct reply_cache cache;
    struct watchdog dog;
    bool booted;            /* a boot happened while handling input: drop the rest */
};

/* Binds the agent to its configuration, persistent state and a receive buffer of
 * 13 + config->max_payload bytes. Sends nothing. */
void agent_init(struct agent *a, const struct board_config *config,
                struct board_persist *persist, uint8_t *frame_buffer);

/* A power-up: new persistent state (boot_count 0, cause POWER_ON, this session, the wall
 * clock at `wall_us`), then a boot. */
void agent_power_up(struct agent *a, uint32_t session, int64_t wall_us);

/* A boot with the persistent state kept (its last_cause says why): boot_count + 1, empty
 * cache and receiver, watchdog stopped, a console line, BOOT_BANNER and CONSOLE_LINEs sent. */
void agent_boot(struct agent *a);

/* Takes bytes off the line and answers every request among them, in order. Returns false if
 * the board rebooted meanwhile: the bytes after the rebooting request are dropped. */
bool agent_receive(struct agent *a, const uint8_t *bytes, size_t n);

/* On a running clock: lets the watchdog bite if its deadline has passed (a reset, then the
 * banner). Returns false if it did. */
bool agent_tick(struct agent *a);

/* When the next agent_tick has work, in plat_uptime_us() terms; false if never. */
bool agent_wake_at(const struct agent *a, int64_t *uptime_us);

/* The clocks, in microseconds. */
int64_t agent_monotonic_us(const struct agent *a);
int64_t agent_wall_us(const struct agent *a);

#endif
