#include "devfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/isotime.h"
#include "../core/platform.h"

#define DEFAULT_WALL_US (1738368000LL * 1000000)   /* 2025-02-01T00:00:00Z */
#define PATH_SIZE 4096

static int flash_fd = -1, otp_fd = -1;
static char reset_path[PATH_SIZE], clock_path[PATH_SIZE];

static const char *const cause_names[] = {"POWER_ON", "SOFTWARE", "WATCHDOG", "POWER_LOSS"};

static bool side_path(char *out, const char *flash_path, const char *suffix)
{
    return (unsigned)snprintf(out, PATH_SIZE, "%s%s", flash_path, suffix) < PATH_SIZE;
}

/* An existing file must be regular and 0 or `size` bytes; an absent one is fine. */
static bool check_size(const char *path, uint64_t size, const char *what, char *why, unsigned n)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return true;
        snprintf(why, n, "%s %s: %s", what, path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, n, "%s %s is not a regular file", what, path);
        return false;
    }
    if (st.st_size != 0 && (uint64_t)st.st_size != size) {
        snprintf(why, n, "%s %s is %lld bytes, not %llu", what, path, (long long)st.st_size,
                 (unsigned long long)size);
        return false;
    }
    return true;
}

static bool read_clock(const char *path, int64_t *wall_us, char *why, unsigned n)
{
    *wall_us = DEFAULT_WALL_US;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT) return true;
        snprintf(why, n, "clock file %s: %s", path, strerror(errno));
        return false;
    }
    char text[64];
    ssize_t got = read(fd, text, sizeof text);
    close(fd);
    unsigned length = got > 0 ? (unsigned)got : 0;
    while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == '\r')) length--;
    if (!isotime_parse(text, length, wall_us)) {
        snprintf(why, n, "clock file %s does not hold an ISO 8601 UTC time", path);
        return false;
    }
    return true;
}

bool devfiles_check(const char *flash_path, const struct device_geometry *g, int64_t *wall_us,
                    char *why, unsigned why_size)
{
    char otp_path[PATH_SIZE];
    if (!side_path(otp_path, flash_path, ".otp") || !side_path(reset_path, flash_path, ".reset") ||
        !side_path(clock_path, flash_path, ".clock")) {
        snprintf(why, why_size, "flash path too long");
        return false;
    }
    return check_size(flash_path, g->flash_size, "flash file", why, why_size) &&
           check_size(otp_path, (uint64_t)g->otp_words * 4u, "fuse file", why, why_size) &&
           read_clock(clock_path, wall_us, why, why_size);
}

/* Opens `path` read-write, growing an empty file to `size` bytes of `fill`. */
static int open_sized(const char *path, uint64_t size, uint8_t fill, char *why, unsigned n)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, n, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (st.st_size != 0) return fd;
    uint8_t block[65536];
    memset(block, fill, sizeof block);
    for (uint64_t done = 0; done < size;) {
        size_t step = size - done < sizeof block ? (size_t)(size - done) : sizeof block;
        if (pwrite(fd, block, step, (off_t)done) != (ssize_t)step) {
            snprintf(why, n, "%s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        done += step;
    }
    return fd;
}

bool devfiles_open(const char *flash_path, const struct device_geometry *g, char *why,
                   unsigned why_size)
{
    char otp_path[PATH_SIZE];
    side_path(otp_path, flash_path, ".otp");
    flash_fd = open_sized(flash_path, g->flash_size, 0xFF, why, why_size);
    if (flash_fd < 0) return false;
    otp_fd = open_sized(otp_path, (uint64_t)g->otp_words * 4u, 0x00, why, why_size);
    return otp_fd >= 0;
}

/* Replaces `path`'s content with `text`. */
static void rewrite(const char *path, const char *text, size_t length)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (write(fd, text, length) != (ssize_t)length) { /* best effort: the board serves on */ }
    close(fd);
}

void devfiles_save_clock(int64_t wall_us)
{
    char text[ISOTIME_MAX + 1];
    unsigned length = isotime_format(wall_us, text);
    text[length++] = '\n';
    rewrite(clock_path, text, length);
}

bool plat_flash_read(uint32_t offset, uint8_t *out, uint32_t n)
{
    return pread(flash_fd, out, n, offset) == (ssize_t)n;
}

bool plat_flash_write(uint32_t offset, const uint8_t *data, uint32_t n)
{
    return pwrite(flash_fd, data, n, offset) == (ssize_t)n;
}

bool plat_flash_erase(uint32_t offset, uint32_t n)
{
    static uint8_t erased[65536];
    if (erased[0] != 0xFF) memset(erased, 0xFF, sizeof erased);
    for (uint32_t done = 0; done < n;) {
        uint32_t step = n - done < sizeof erased ? n - done : (uint32_t)sizeof erased;
        if (!plat_flash_write(offset + done, erased, step)) return false;
        done += step;
    }
    return true;
}

bool plat_otp_read(uint32_t index, uint32_t *value)
{
    uint8_t b[4];
    if (pread(otp_fd, b, 4, (off_t)index * 4) != 4) return false;
    *value = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

bool plat_otp_write(uint32_t index, uint32_t value)
{
    uint8_t b[4] = {(uint8_t)value, (uint8_t)(value >> 8), (uint8_t)(value >> 16),
                    (uint8_t)(value >> 24)};
    return pwrite(otp_fd, b, 4, (off_t)index * 4) == 4;
}

void plat_cause_changed(uint8_t cause)
{
    char text[17];
    snprintf(text, sizeof text, "%-15s\n", cause_names[cause & 3u]);
    rewrite(reset_path, text, 16);
}

void plat_wall_changed(int64_t wall_us) { devfiles_save_clock(wall_us); }

int64_t plat_uptime_us(void) { return 0; }
