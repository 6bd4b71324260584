/* The device files a software machine keeps (byte-compatible with the Python one):
 * FLASH (raw bytes), FLASH.otp (u32 LE words), FLASH.reset (cause name), FLASH.clock (time).
 *
 * One device, one user: FLASH is locked (flock, exclusive) before any device file is read or
 * written, and stays locked until the process ends; the lock covers the other files too. */
#ifndef NATIVE_DEVFILES_H
#define NATIVE_DEVFILES_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "exitcode.h"

struct device_geometry {
    uint32_t flash_size, sector_size, page_size, otp_words;
};

/* Checks what can be checked without opening a device file: FLASH, FLASH.otp and FLASH.reset
 * each absent, or a regular file that can be read and written (FLASH empty or flash_size
 * bytes, FLASH.otp empty or 4 bytes a word); if FLASH is absent, its folder takes new files.
 * EXIT_OK, or EXIT_BAD_INPUT with one line in `why`. */
enum exit_code devfiles_check(const char *flash_path, const struct device_geometry *g,
                              char *why, unsigned why_size);

/* Opens FLASH (creating it if absent) and takes its lock, waiting up to `wait_s` seconds while
 * another process holds it (EXIT_BUSY after that; EXIT_INTERRUPTED once *stop is set). Then
 * reads FLASH.clock (*wall_us: its time, else 2025-02-01T00:00:00Z) and FLASH.reset, refusing
 * either if it does not hold a time with a zone or a cause (EXIT_BAD_INPUT), and fills an empty
 * FLASH (0xFF) and FLASH.otp (zeros), creating the latter. On a failure the files made here
 * are removed again. */
enum exit_code devfiles_open(const char *flash_path, const struct device_geometry *g,
                             double wait_s, volatile const sig_atomic_t *stop, int64_t *wall_us, char *why,
                             unsigned why_size);

/* Removes the device files devfiles_open made (and FLASH.reset, FLASH.clock if made since):
 * the device was never served. */
void devfiles_discard_new(void);

/* Writes FLASH.clock: a file beside it, renamed over it, so it is never seen half written.
 * False (errno set) if it could not be written. */
bool devfiles_save_clock(int64_t wall_us);

#endif
