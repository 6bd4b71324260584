#define _GNU_SOURCE
#include "line.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../core/platform.h"

enum line_kind { LINE_PTY, LINE_TCP };

static enum line_kind kind;
static int line_fd = -1;      /* pty master, or the connected TCP client (-1: none) */
static int listen_fd = -1;
static int signal_pipe[2] = {-1, -1};
static uint8_t tx_buffer[65536];
static size_t tx_used;

#define REBOOT_SILENCE_NS 50000000L   /* 50 ms, like the emulator */
#define STALL_MS 2000                  /* a line that takes nothing this long loses the bytes */

static bool set_nonblocking(int fd) { return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0; }

bool line_open_pty(char *where, unsigned where_size, char *why, unsigned why_size)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        snprintf(why, why_size, "cannot open a pty: %s", strerror(errno));
        return false;
    }
    const char *name = ptsname(master);
    int slave = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
    struct termios raw;
    if (slave < 0 || tcgetattr(slave, &raw) != 0) {
        snprintf(why, why_size, "cannot open the pty's slave: %s", strerror(errno));
        return false;
    }
    cfmakeraw(&raw);
    tcsetattr(slave, TCSANOW, &raw);   /* the slave stays open: hosts may close and reopen */
    snprintf(where, where_size, "%s", name);
    kind = LINE_PTY;
    line_fd = master;
    return set_nonblocking(master);
}

/* Parses "HOST:PORT" with HOST a loopback IPv4 address or "localhost". */
static bool parse_loopback(const char *spec, struct sockaddr_in *addr, char *why, unsigned n)
{
    const char *colon = strrchr(spec, ':');
    char host[64];
    if (!colon || (size_t)(colon - spec) >= sizeof host) {
        snprintf(why, n, "--tcp wants 127.0.0.1:PORT, not %s", spec);
        return false;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535) {
        snprintf(why, n, "--tcp port must be 0..65535: %s", colon + 1);
        return false;
    }
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1 ||
        (ntohl(addr->sin_addr.s_addr) >> 24) != 127) {
        snprintf(why, n, "--tcp serves on a loopback address only, not %s", host);
        return false;
    }
    return true;
}

int line_open_tcp(const char *spec, char *where, unsigned where_size, char *why,
                  unsigned why_size)
{
    struct sockaddr_in addr;
    if (!parse_loopback(spec, &addr, why, why_size)) return 2;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t size = sizeof addr;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listen_fd, 1) != 0 || getsockname(listen_fd, (struct sockaddr *)&addr, &size) != 0) {
        snprintf(why, why_size, "cannot listen on %s: %s", spec, strerror(errno));
        return 1;
    }
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host);
    snprintf(where, where_size, "socket://%s:%u", host, ntohs(addr.sin_port));
    kind = LINE_TCP;
    return 0;
}

static void drop_client(void)
{
    if (kind == LINE_TCP && line_fd >= 0) {
        close(line_fd);
        line_fd = -1;
    }
}

/* Writes all of `bytes`, waiting while the line is full, for at most STALL_MS at a time. */
static void write_all(const uint8_t *bytes, size_t n)
{
    while (n > 0 && line_fd >= 0) {
        ssize_t done = kind == LINE_TCP ? send(line_fd, bytes, n, MSG_NOSIGNAL)
                                        : write(line_fd, bytes, n);
        if (done > 0) {
            bytes += done;
            n -= (size_t)done;
            continue;
        }
        if (done < 0 && errno == EINTR) continue;
        struct pollfd p = {line_fd, POLLOUT, 0};
        if (done < 0 && errno == EAGAIN && poll(&p, 1, STALL_MS) > 0) continue;
        if (kind == LINE_TCP) drop_client();
        return;   /* a stalled pty: these bytes are lost, as on a line */
    }
}

void line_flush(void)
{
    write_all(tx_buffer, tx_used);
    tx_used = 0;
}

void plat_send(const uint8_t *bytes, size_t n)
{
    if (tx_used + n > sizeof tx_buffer) line_flush();
    if (n > sizeof tx_buffer) {
        write_all(bytes, n);
        return;
    }
    memcpy(tx_buffer + tx_used, bytes, n);
    tx_used += n;
}

/* Reads and forgets whatever the line holds now. */
static void drain_input(void)
{
    uint8_t scrap[4096];
    while (line_fd >= 0) {
        ssize_t got = read(line_fd, scrap, sizeof scrap);
        if (got > 0) continue;
        if (got == 0 && kind == LINE_TCP) drop_client();
        return;
    }
}

void plat_reset(uint8_t cause)
{
    (void)cause;
    line_flush();
    struct timespec silence = {0, REBOOT_SILENCE_NS};
    while (nanosleep(&silence, &silence) != 0 && errno == EINTR) {}
    drain_input();
}

static void on_signal(int number)
{
    (void)number;
    int saved = errno;
    if (write(signal_pipe[1], "x", 1) < 0) { /* the pipe is full: a stop is pending anyway */ }
    errno = saved;
}

static bool catch_signals(void)
{
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return false;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    signal(SIGPIPE, SIG_IGN);
    return sigaction(SIGTERM, &action, NULL) == 0 && sigaction(SIGINT, &action, NULL) == 0;
}

/* Takes a new TCP client when none is connected. */
static void accept_client(void)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) line_fd = fd;
}

/* Reads what the line has and hands it to the agent; false on a pty failure. */
static bool receive(struct agent *a, char *why, unsigned why_size)
{
    static uint8_t chunk[65536];
    ssize_t got = read(line_fd, chunk, sizeof chunk);
    if (got > 0) {
        agent_receive(a, chunk, (size_t)got);
        line_flush();
        return true;
    }
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (kind == LINE_TCP) {
        drop_client();
        return true;
    }
    snprintf(why, why_size, "the pty failed: %s", got == 0 ? "end of file" : strerror(errno));
    return false;
}

/* True when stdin has reached its end (data on it is read and ignored). */
static bool stdin_ended(void)
{
    char scrap[256];
    ssize_t got = read(STDIN_FILENO, scrap, sizeof scrap);
    return got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN);
}

int line_serve(struct agent *a, bool watch_stdin, char *why, unsigned why_size)
{
    if (!catch_signals()) {
        snprintf(why, why_size, "cannot catch signals: %s", strerror(errno));
        return 1;
    }
    for (;;) {
        struct pollfd fds[3] = {
            {signal_pipe[0], POLLIN, 0},
            {watch_stdin ? STDIN_FILENO : -1, POLLIN, 0},
            {line_fd >= 0 ? line_fd : listen_fd, POLLIN, 0},
        };
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            snprintf(why, why_size, "poll: %s", strerror(errno));
            return 1;
        }
        if (fds[0].revents) return 0;
        if (fds[1].revents && stdin_ended()) return 0;
        if (!fds[2].revents) continue;
        if (line_fd < 0) accept_client();
        else if (!receive(a, why, why_size)) return 1;
    }
}
