#define _GNU_SOURCE
#include "devfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/isotime.h"
#include "../core/platform.h"

#define DEFAULT_WALL_US (1738368000LL * 1000000)   /* 2025-02-01T00:00:00Z */
#define PATH_SIZE 4096
#define LOCK_POLL_NS 50000000L                     /* 50 ms, as the software machine polls */

enum device_file { FILE_FLASH, FILE_OTP, FILE_RESET, FILE_CLOCK, FILE_COUNT };
static const char *const suffixes[FILE_COUNT] = {"", ".otp", ".reset", ".clock"};

static char paths[FILE_COUNT][PATH_SIZE];
static bool made[FILE_COUNT];   /* absent when the device was opened: removed if never served */
static int flash_fd = -1, otp_fd = -1;

static const char *const cause_names[] = {"POWER_ON", "SOFTWARE", "WATCHDOG", "POWER_LOSS"};
#define CAUSE_COUNT (sizeof cause_names / sizeof cause_names[0])

static bool set_paths(const char *flash_path)
{
    for (unsigned i = 0; i < FILE_COUNT; i++) {
        if ((unsigned)snprintf(paths[i], PATH_SIZE, "%s%s", flash_path, suffixes[i]) >= PATH_SIZE) {
            return false;
        }
    }
    return true;
}

static bool present(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* An existing file: regular, readable and writable, and (if `size` is not 0) empty or `size`
 * bytes. An absent one is fine. */
static enum exit_code check_file(const char *path, uint64_t size, char *why, unsigned n)
{
    struct stat st;
    if (!present(path)) return EXIT_OK;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, n, "%s: not a regular file", path);
        return EXIT_BAD_INPUT;
    }
    if (access(path, R_OK | W_OK) != 0) {
        snprintf(why, n, "%s: cannot be read and written", path);
        return EXIT_BAD_INPUT;
    }
    if (size != 0 && st.st_size != 0 && (uint64_t)st.st_size != size) {
        snprintf(why, n, "%s: holds %lld bytes, %llu expected", path, (long long)st.st_size,
                 (unsigned long long)size);
        return EXIT_BAD_INPUT;
    }
    return EXIT_OK;
}

enum exit_code devfiles_check(const char *flash_path, const struct device_geometry *g,
                              char *why, unsigned why_size)
{
    if (!set_paths(flash_path)) {
        snprintf(why, why_size, "%.200s...: the flash path is too long", flash_path);
        return EXIT_BAD_INPUT;
    }
    const uint64_t sizes[FILE_RESET + 1] = {g->flash_size, (uint64_t)g->otp_words * 4u, 0};
    for (unsigned i = FILE_FLASH; i <= FILE_RESET; i++) {
        enum exit_code code = check_file(paths[i], sizes[i], why, why_size);
        if (code != EXIT_OK) return code;
    }
    if (present(flash_path)) return EXIT_OK;
    char folder_buffer[PATH_SIZE];
    snprintf(folder_buffer, sizeof folder_buffer, "%s", flash_path);
    const char *folder = dirname(folder_buffer);
    struct stat st;
    if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, why_size, "%s: no directory %s to create it in", flash_path, folder);
        return EXIT_BAD_INPUT;
    }
    if (access(folder, W_OK | X_OK) != 0) {
        snprintf(why, why_size, "%s: cannot create files in %s", flash_path, folder);
        return EXIT_BAD_INPUT;
    }
    return EXIT_OK;
}

/* Opens `path` read-write, creating it if absent (and noting that in *created). */
static int open_or_create(const char *path, bool *created)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = open(path, O_RDWR | O_CLOEXEC);
    return fd;
}

static enum exit_code io_failure(const char *path, char *why, unsigned n)
{
    snprintf(why, n, "%s: %s", path, strerror(errno));
    return EXIT_BAD_INPUT;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The exclusive lock on FLASH, waiting up to `wait_s` seconds. */
static enum exit_code lock_flash(double wait_s, volatile const sig_atomic_t *stop, char *why,
                                 unsigned n)
{
    const double deadline = now_s() + wait_s;
    while (flock(flash_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) return io_failure(paths[FILE_FLASH], why, n);
        if (*stop) return EXIT_INTERRUPTED;
        if (now_s() >= deadline) {
            snprintf(why, n, "%s: device busy (another process is using it)", paths[FILE_FLASH]);
            return EXIT_BUSY;
        }
        struct timespec pause = {0, LOCK_POLL_NS};
        nanosleep(&pause, NULL);
    }
    return EXIT_OK;
}

/* Up to `size - 1` bytes of `path` with surrounding white space stripped (NUL-terminated);
 * false if absent. */
static bool read_text(const char *path, char *text, unsigned size, unsigned *length)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t got = read(fd, text, size - 1);
    close(fd);
    unsigned end = got > 0 ? (unsigned)got : 0, start = 0;
    while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' ' ||
                       text[end - 1] == '\t')) {
        end--;
    }
    while (start < end && (text[start] == ' ' || text[start] == '\t' || text[start] == '\n')) {
        start++;
    }
    memmove(text, text + start, end - start);
    *length = end - start;
    text[*length] = '\0';
    return true;
}

static enum exit_code read_clock(int64_t *wall_us, char *why, unsigned n)
{
    char text[64];
    unsigned length;
    *wall_us = DEFAULT_WALL_US;
    if (!read_text(paths[FILE_CLOCK], text, sizeof text, &length)) {
        return errno == ENOENT ? EXIT_OK : io_failure(paths[FILE_CLOCK], why, n);
    }
    if (!isotime_parse(text, length, true, wall_us)) {
        snprintf(why, n, "%s: '%.40s' is not an ISO 8601 time with a time zone", paths[FILE_CLOCK],
                 text);
        return EXIT_BAD_INPUT;
    }
    return EXIT_OK;
}

static enum exit_code check_cause(char *why, unsigned n)
{
    char text[64];
    unsigned length;
    if (!read_text(paths[FILE_RESET], text, sizeof text, &length)) {
        return errno == ENOENT ? EXIT_OK : io_failure(paths[FILE_RESET], why, n);
    }
    for (unsigned i = 0; i < CAUSE_COUNT; i++) {
        if (strcmp(text, cause_names[i]) == 0) return EXIT_OK;
    }
    snprintf(why, n, "%s: '%.40s' is not a reset cause", paths[FILE_RESET], text);
    return EXIT_BAD_INPUT;
}

/* Fills an empty file to `size` bytes of `fill`; refuses another size. */
static enum exit_code fill_sized(int fd, const char *path, uint64_t size, uint8_t fill, char *why,
                                 unsigned n)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return io_failure(path, why, n);
    if (st.st_size != 0) {
        if ((uint64_t)st.st_size == size) return EXIT_OK;
        snprintf(why, n, "%s: holds %lld bytes, %llu expected", path, (long long)st.st_size,
                 (unsigned long long)size);
        return EXIT_BAD_INPUT;
    }
    static uint8_t block[65536];
    memset(block, fill, sizeof block);
    for (uint64_t done = 0; done < size;) {
        size_t step = size - done < sizeof block ? (size_t)(size - done) : sizeof block;
        if (pwrite(fd, block, step, (off_t)done) != (ssize_t)step) return io_failure(path, why, n);
        done += step;
    }
    return EXIT_OK;
}

/* Everything after the lock; the files made are removed by the caller on a failure. */
static enum exit_code open_locked(const struct device_geometry *g, int64_t *wall_us, char *why,
                                  unsigned n)
{
    enum exit_code code = read_clock(wall_us, why, n);
    if (code == EXIT_OK) code = check_cause(why, n);
    if (code == EXIT_OK) code = fill_sized(flash_fd, paths[FILE_FLASH], g->flash_size, 0xFF, why, n);
    if (code != EXIT_OK) return code;
    otp_fd = open_or_create(paths[FILE_OTP], &made[FILE_OTP]);
    if (otp_fd < 0) return io_failure(paths[FILE_OTP], why, n);
    return fill_sized(otp_fd, paths[FILE_OTP], (uint64_t)g->otp_words * 4u, 0x00, why, n);
}

enum exit_code devfiles_open(const char *flash_path, const struct device_geometry *g,
                             double wait_s, volatile const sig_atomic_t *stop, int64_t *wall_us,
                             char *why, unsigned why_size)
{
    if (!set_paths(flash_path)) {
        snprintf(why, why_size, "%.200s...: the flash path is too long", flash_path);
        return EXIT_BAD_INPUT;
    }
    flash_fd = open_or_create(paths[FILE_FLASH], &made[FILE_FLASH]);
    if (flash_fd < 0) return io_failure(paths[FILE_FLASH], why, why_size);
    enum exit_code code = lock_flash(wait_s, stop, why, why_size);
    if (code != EXIT_OK) {
        /* a FLASH made here and not locked is one another process opened and locked since:
         * it is that process's now, never removed */
        made[FILE_FLASH] = false;
        return code;
    }
    made[FILE_RESET] = !present(paths[FILE_RESET]);
    made[FILE_CLOCK] = !present(paths[FILE_CLOCK]);
    code = open_locked(g, wall_us, why, why_size);
    if (code != EXIT_OK) devfiles_discard_new();
    return code;
}

void devfiles_discard_new(void)
{
    for (unsigned i = 0; i < FILE_COUNT; i++) {
        if (made[i]) unlink(paths[i]);
        made[i] = false;
    }
}

bool devfiles_save_clock(int64_t wall_us)
{
    char text[ISOTIME_MAX + 1], folder_buffer[PATH_SIZE], name_buffer[PATH_SIZE], temp[PATH_SIZE];
    unsigned length = isotime_format(wall_us, text);
    text[length++] = '\n';
    snprintf(folder_buffer, sizeof folder_buffer, "%s", paths[FILE_CLOCK]);
    snprintf(name_buffer, sizeof name_buffer, "%s", paths[FILE_CLOCK]);
    if ((unsigned)snprintf(temp, sizeof temp, "%s/.%s.%ld.tmp", dirname(folder_buffer),
                           basename(name_buffer), (long)getpid()) >= sizeof temp) {
        errno = ENAMETOOLONG;
        return false;
    }
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool written = write(fd, text, length) == (ssize_t)length;
    int saved = errno;
    if (close(fd) != 0 && written) {
        written = false;
        saved = errno;
    }
    if (written && rename(temp, paths[FILE_CLOCK]) == 0) return true;
    unlink(temp);
    errno = written ? errno : saved;
    return false;
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

/* FLASH.reset: the cause name left-justified to 15 characters and a newline, written in place
 * (as the software machine writes it). */
void plat_cause_changed(uint8_t cause)
{
    char text[17];
    snprintf(text, sizeof text, "%-15s\n", cause_names[cause % CAUSE_COUNT]);
    int fd = open(paths[FILE_RESET], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;   /* best effort: the board serves on */
    if (pwrite(fd, text, 16, 0) == 16 && ftruncate(fd, 16) == 0) { /* written */ }
    close(fd);
}

void plat_wall_changed(int64_t wall_us) { (void)devfiles_save_clock(wall_us); }

int64_t plat_uptime_us(void) { return 0; }
