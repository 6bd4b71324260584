/* The device files a software machine keeps (byte-compatible with the Python one):
 * FLASH (raw bytes), FLASH.otp (u32 LE words), FLASH.reset (cause name), FLASH.clock (time). */
#ifndef NATIVE_DEVFILES_H
#define NATIVE_DEVFILES_H

#include <stdbool.h>
#include <stdint.h>

struct device_geometry {
    uint32_t flash_size, sector_size, page_size, otp_words;
};

/* Checks the files at `flash_path` without creating anything: an existing flash or fuse file
 * of another size, a non-regular file, or an unreadable FLASH.clock is refused with one line in
 * `why`. On success, *wall_us is FLASH.clock's time or 2025-02-01T00:00:00Z. */
bool devfiles_check(const char *flash_path, const struct device_geometry *g, int64_t *wall_us,
                    char *why, unsigned why_size);

/* Opens (creating as needed: flash 0xFF-filled, fuses zero-filled) the files checked above. */
bool devfiles_open(const char *flash_path, const struct device_geometry *g, char *why,
                   unsigned why_size);

/* Writes FLASH.clock now (on exit). */
void devfiles_save_clock(int64_t wall_us);

#endif
