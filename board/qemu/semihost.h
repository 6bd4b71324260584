/* ARM semihosting (the host's files, through QEMU's -semihosting-config target=native). */
#ifndef SEMIHOST_H
#define SEMIHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum semihost_mode { SH_READ_BINARY = 1, SH_UPDATE_BINARY = 3, SH_WRITE_BINARY = 5 };

/* A host file handle, or -1. */
int sh_open(const char *path, enum semihost_mode mode);
void sh_close(int handle);
/* Reads/writes exactly `n` bytes at `offset`; false on any shortfall. */
bool sh_read_at(int handle, uint32_t offset, void *out, size_t n);
bool sh_write_at(int handle, uint32_t offset, const void *data, size_t n);
/* Writes `text` (NUL-terminated) on the debug console: QEMU's stderr. */
void sh_write0(const char *text);
/* Renames host file `from` to `to`, replacing it (the host's rename(2): atomic). */
bool sh_rename(const char *from, const char *to);
/* The command line QEMU was given (-semihosting-config arg=...), NUL-terminated. */
bool sh_command_line(char *out, size_t size);

#endif
