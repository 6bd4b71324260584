#include "semihost.h"

#include <string.h>

enum semihost_op {
    SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE0 = 0x04, SYS_WRITE = 0x05, SYS_READ = 0x06, SYS_SEEK = 0x0A,
    SYS_RENAME = 0x0F, SYS_GET_CMDLINE = 0x15,
};

/* One semihosting call: `op` in r0, a pointer to its argument block in r1, result in r0. */
static int32_t semihost_call(uint32_t op, void *args)
{
    register uint32_t r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

int sh_open(const char *path, enum semihost_mode mode)
{
    uintptr_t args[3] = {(uintptr_t)path, (uintptr_t)mode, (uintptr_t)strlen(path)};
    return semihost_call(SYS_OPEN, args);
}

void sh_close(int handle)
{
    uintptr_t args[1] = {(uintptr_t)handle};
    semihost_call(SYS_CLOSE, args);
}

static bool seek(int handle, uint32_t offset)
{
    uintptr_t args[2] = {(uintptr_t)handle, offset};
    return semihost_call(SYS_SEEK, args) == 0;
}

bool sh_read_at(int handle, uint32_t offset, void *out, size_t n)
{
    uintptr_t args[3] = {(uintptr_t)handle, (uintptr_t)out, n};
    return seek(handle, offset) && semihost_call(SYS_READ, args) == 0;  /* 0: none missing */
}

bool sh_write_at(int handle, uint32_t offset, const void *data, size_t n)
{
    uintptr_t args[3] = {(uintptr_t)handle, (uintptr_t)data, n};
    return seek(handle, offset) && semihost_call(SYS_WRITE, args) == 0;
}

void sh_write0(const char *text) { semihost_call(SYS_WRITE0, (void *)(uintptr_t)text); }

bool sh_rename(const char *from, const char *to)
{
    uintptr_t args[4] = {(uintptr_t)from, (uintptr_t)strlen(from), (uintptr_t)to,
                         (uintptr_t)strlen(to)};
    return semihost_call(SYS_RENAME, args) == 0;
}

bool sh_command_line(char *out, size_t size)
{
    uintptr_t args[2] = {(uintptr_t)out, size};
    return semihost_call(SYS_GET_CMDLINE, args) == 0;
}
