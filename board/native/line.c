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
#include "rx.h"

enum line_kind { LINE_PTY, LINE_TCP };

static enum line_kind kind;
static int line_fd = -1;      /* pty master, or the connected TCP client (-1: none) */
static int listen_fd = -1;
static int signal_pipe[2] = {-1, -1};
static uint8_t tx_buffer[65536];
static size_t tx_used;
static bool tx_dead;          /* a TCP client that took nothing for STALL_MS: shut down */

#define REBOOT_SILENCE_NS 50000000L   /* 50 ms, like the emulator */
#define STALL_MS 2000                  /* a line that takes nothing this long loses the bytes */

static bool set_nonblocking(int fd) { return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0; }

bool line_open_pty(char *where, unsigned where_size, char *why, unsigned why_size)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        snprintf(why, why_size, "cannot open a pseudo-terminal: %s", strerror(errno));
        return false;
    }
    const char *name = ptsname(master);
    int slave = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
    struct termios raw;
    if (slave < 0 || tcgetattr(slave, &raw) != 0) {
        snprintf(why, why_size, "cannot open the pseudo-terminal's slave: %s", strerror(errno));
        return false;
    }
    cfmakeraw(&raw);
    tcsetattr(slave, TCSANOW, &raw);   /* the slave stays open: hosts may close and reopen */
    snprintf(where, where_size, "%s", name);
    kind = LINE_PTY;
    line_fd = master;
    if (!set_nonblocking(master) || !rx_start(master)) {
        snprintf(why, why_size, "cannot read the pseudo-terminal: %s", strerror(errno));
        return false;
    }
    return true;
}

/* The hosts the emulator listens on (policy/network.py's LOOPBACK_HOSTS). */
static const char *const loopback_hosts[] = {"127.0.0.1", "localhost", "::1"};

bool line_parse_tcp(const char *spec, struct tcp_address *out, char *why, unsigned n)
{
    const char *colon = strrchr(spec, ':');
    const char *port = colon ? colon + 1 : "";
    bool digits = *port != '\0';
    for (const char *p = port; *p; p++) digits = digits && *p >= '0' && *p <= '9';
    if (!digits) {
        snprintf(why, n, "--tcp '%s': expected HOST:PORT, e.g. 127.0.0.1:5555", spec);
        return false;
    }
    if (strlen(port) > 5 || strtol(port, NULL, 10) > 65535) {
        snprintf(why, n, "--tcp '%s': the port must be 0..65535", spec);
        return false;
    }
    const char *host = spec, *host_end = colon;   /* strip "[]" around the host, as Python's strip */
    while (host < host_end && (*host == '[' || *host == ']')) host++;
    while (host_end > host && (host_end[-1] == '[' || host_end[-1] == ']')) host_end--;
    size_t length = (size_t)(host_end - host);
    if (length == 0) host = "127.0.0.1", length = strlen(host);
    bool known = false;
    for (unsigned i = 0; i < sizeof loopback_hosts / sizeof loopback_hosts[0]; i++) {
        known = known || (strlen(loopback_hosts[i]) == length &&
                          memcmp(loopback_hosts[i], host, length) == 0);
    }
    if (!known) {
        snprintf(why, n, "--tcp '%s': the agent listens on loopback only (127.0.0.1, localhost, "
                 "::1)", spec);
        return false;
    }
    memcpy(out->host, host, length);
    out->host[length] = '\0';
    out->port = (uint16_t)strtol(port, NULL, 10);
    return true;
}

bool line_open_tcp(const struct tcp_address *spec, char *where, unsigned where_size, char *why,
                   unsigned why_size)
{
    bool v6 = strchr(spec->host, ':') != NULL;
    struct sockaddr_in6 addr6;
    struct sockaddr_in addr4;
    memset(&addr6, 0, sizeof addr6);
    memset(&addr4, 0, sizeof addr4);
    addr6.sin6_family = AF_INET6;
    addr6.sin6_addr = in6addr_loopback;
    addr6.sin6_port = htons(spec->port);
    addr4.sin_family = AF_INET;
    addr4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr4.sin_port = htons(spec->port);
    struct sockaddr *addr = v6 ? (struct sockaddr *)&addr6 : (struct sockaddr *)&addr4;
    socklen_t size = v6 ? sizeof addr6 : sizeof addr4;
    listen_fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (listen_fd < 0 || setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(listen_fd, addr, size) != 0 || listen(listen_fd, 1) != 0 ||
        getsockname(listen_fd, addr, &size) != 0) {
        snprintf(why, why_size, "cannot listen on %s:%u: %s", spec->host, spec->port,
                 strerror(errno));
        return false;
    }
    unsigned bound = ntohs(v6 ? addr6.sin6_port : addr4.sin_port);
    snprintf(where, where_size, v6 ? "socket://[%s]:%u" : "socket://%s:%u", spec->host, bound);
    kind = LINE_TCP;
    return true;
}

/* A TCP client the line is done with: shut down, so the reader sees its end (the main loop
 * then closes it). */
static void drop_client(void)
{
    if (kind == LINE_TCP && line_fd >= 0 && !tx_dead) {
        shutdown(line_fd, SHUT_RDWR);
        tx_dead = true;
    }
}

/* Writes all of `bytes`, waiting while the line is full, for at most STALL_MS at a time. */
static void write_all(const uint8_t *bytes, size_t n)
{
    while (n > 0 && line_fd >= 0 && !tx_dead) {
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
        drop_client();
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

void plat_reset(uint8_t cause)
{
    (void)cause;
    line_flush();
    struct timespec silence = {0, REBOOT_SILENCE_NS};
    while (nanosleep(&silence, &silence) != 0 && errno == EINTR) {}
    rx_drop();   /* what arrived during the silence, and after the rebooting request */
}

volatile sig_atomic_t line_stop;

static void on_signal(int number)
{
    (void)number;
    int saved = errno;
    line_stop = 1;
    if (write(signal_pipe[1], "x", 1) < 0) { /* the pipe is full: a stop is pending anyway */ }
    errno = saved;
}

bool line_catch_signals(char *why, unsigned why_size)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR ||
        sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) {
        snprintf(why, why_size, "cannot catch signals: %s", strerror(errno));
        return false;
    }
    return true;
}

/* Takes a new TCP client when none is connected, and starts reading it. */
static void accept_client(void)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    if (!rx_start(fd)) {
        close(fd);
        return;
    }
    line_fd = fd;
    tx_dead = false;
}

/* Hands what the line has brought to the agent, replies sent after each piece; false after
 * the pty failed (one line in `why`). A TCP client whose input ended is closed. */
static bool receive(struct agent *a, char *why, unsigned why_size)
{
    const uint8_t *bytes;
    for (size_t n; (n = rx_peek(&bytes, 65536)) > 0;) {
        agent_receive(a, bytes, n);
        rx_consume(n);
        line_flush();
    }
    int error;
    if (!rx_ended(&error)) return true;
    rx_join();
    if (kind == LINE_TCP) {
        close(line_fd);
        line_fd = -1;
        tx_dead = false;
        return true;
    }
    snprintf(why, why_size, "the pty failed: %s", error == 0 ? "end of file" : strerror(error));
    return false;
}

/* True when stdin has reached its end (data on it is read and ignored). */
static bool stdin_ended(void)
{
    char scrap[256];
    ssize_t got = read(STDIN_FILENO, scrap, sizeof scrap);
    return got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN);
}

enum exit_code line_serve(struct agent *a, bool watch_stdin, char *why, unsigned why_size)
{
    for (;;) {
        struct pollfd fds[3] = {
            {signal_pipe[0], POLLIN, 0},
            {watch_stdin ? STDIN_FILENO : -1, POLLIN, 0},
            {line_fd >= 0 ? rx_wakeup_fd() : listen_fd, POLLIN, 0},
        };
        if (line_stop) return EXIT_OK;
        bool busy = line_fd >= 0 && !rx_arm();   /* bytes wait: look at the rest, then take them */
        int ready = poll(fds, 3, busy ? 0 : -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            snprintf(why, why_size, "poll: %s", strerror(errno));
            return EXIT_HARDWARE;
        }
        if (fds[0].revents) return EXIT_OK;
        if (fds[1].revents && stdin_ended()) return EXIT_OK;
        if (!fds[2].revents && !busy) continue;
        if (line_fd < 0) accept_client();
        else if (!receive(a, why, why_size)) return EXIT_HARDWARE;
    }
}
