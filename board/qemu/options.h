/* The firmware's settings, from the semihosting command line run_qemu.py builds:
 * "board-agent key=value ..." with flash= percent-encoded. */
#ifndef QEMU_OPTIONS_H
#define QEMU_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#define OPTION_PATH_MAX 512

struct qemu_options {
    char flash[OPTION_PATH_MAX];
    uint32_t size, sector, page, otp, payload, window, session;
    int64_t wall_us;
};

/* Fills `o` from `line` (modified in place); false if a key is missing or malformed. */
bool options_parse(char *line, struct qemu_options *o);

#endif
