/* The native board's line: a pseudo-terminal or a loopback TCP port, and the serve loop. */
#ifndef NATIVE_LINE_H
#define NATIVE_LINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/agent.h"
#include "exitcode.h"

/* A --tcp address: a host the emulator also listens on (127.0.0.1, localhost, ::1) and a
 * port (0: any free one). */
struct tcp_address {
    char host[16];
    uint16_t port;
};

/* Set once SIGTERM or SIGINT has arrived (after line_catch_signals). */
extern volatile sig_atomic_t line_stop;

/* From now on SIGTERM and SIGINT set line_stop (and wake line_serve); SIGPIPE is ignored. */
bool line_catch_signals(char *why, unsigned why_size);

/* Reads `spec` as the emulator does (HOST:PORT, HOST loopback, an empty HOST 127.0.0.1, PORT
 * 0..65535); false with one line in `why` (bad usage). */
bool line_parse_tcp(const char *spec, struct tcp_address *out, char *why, unsigned n);

/* Opens a new pty (raw, its slave held open so hosts may come and go) and writes its path
 * into `where`. */
bool line_open_pty(char *where, unsigned where_size, char *why, unsigned why_size);

/* Listens on `spec` and writes "socket://HOST:PORT" into `where` (HOST in brackets for ::1). */
bool line_open_tcp(const struct tcp_address *spec, char *where, unsigned where_size, char *why,
                   unsigned why_size);

/* Sends what plat_send has buffered. */
void line_flush(void);

/* Serves `a` until SIGTERM/SIGINT, or (watch_stdin) the end of stdin: EXIT_OK, or
 * EXIT_HARDWARE after the port failed (one line in `why`). */
enum exit_code line_serve(struct agent *a, bool watch_stdin, char *why, unsigned why_size);

#endif
