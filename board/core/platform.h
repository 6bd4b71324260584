/* What the portable agent needs from a board. Each platform (native, qemu, mt3620) provides
 * these functions; the core calls them only from agent_* functions, never from interrupts. */
#ifndef BOARD_PLATFORM_H
#define BOARD_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Transmits `n` bytes, in order, after everything sent before. May block until the line takes
 * them; a line that stays stalled may lose them (the protocol recovers from loss). */
void plat_send(const uint8_t *bytes, size_t n);

/* Persistent flash, `flash_size` bytes. The core checks ranges and NOR rules first: these only
 * move bytes, and return false if the storage failed (the request then gets INTERNAL). */
bool plat_flash_read(uint32_t offset, uint8_t *out, uint32_t n);
bool plat_flash_write(uint32_t offset, const uint8_t *data, uint32_t n);
bool plat_flash_erase(uint32_t offset, uint32_t n);   /* sets the bytes to 0xFF */

/* Persistent fuse words (index < otp_words). */
bool plat_otp_read(uint32_t index, uint32_t *value);
bool plat_otp_write(uint32_t index, uint32_t value);

/* Microseconds since this boot on a clock that runs on its own; always 0 on a board whose
 * clocks move only in CLOCK_SLEEP. Starts again from 0 after plat_reset. */
int64_t plat_uptime_us(void);

/* The last reset cause changed (FLASH.reset), or the wall clock jumped (FLASH.clock). */
void plat_cause_changed(uint8_t cause);
void plat_wall_changed(int64_t wall_us);

/* Resets the board after a REBOOTED reply (or a watchdog bite). The core has recorded the
 * cause and the clocks. Either never returns (a real reset: the platform later calls
 * agent_boot from its start-up code), or returns once the reboot silence is over and the
 * input that arrived meanwhile is dropped; the core then boots in place. */
void plat_reset(uint8_t cause);

#if BOARD_PLAT_ACCEL
/* Optional: a build that defines BOARD_PLAT_ACCEL=1 lends the core the CPU's instructions for
 * its two hot loops. Each does what it can and returns how much it did (0: nothing, the CPU
 * lacks them); the core's portable code does the rest, so no result depends on them.
 * plat_sha256_blocks: compresses up to `count` 64-byte blocks into the SHA-256 state; returns
 * the blocks done (a prefix: the core compresses the rest). plat_crc32: continues the reflected CRC-32 register `*crc`
 * (the value the byte loop keeps, already inverted) over a prefix of `data`; returns its
 * length. */
size_t plat_sha256_blocks(uint32_t state[8], const uint8_t *blocks, size_t count);
size_t plat_crc32(uint32_t *crc, const uint8_t *data, size_t n);
#endif

#endif
