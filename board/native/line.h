/* The native board's line: a pseudo-terminal or a loopback TCP port, and the serve loop. */
#ifndef NATIVE_LINE_H
#define NATIVE_LINE_H

#include <stdbool.h>

#include "../core/agent.h"

/* Opens a new pty (raw, its slave held open so hosts may come and go) and writes its path
 * into `where`. */
bool line_open_pty(char *where, unsigned where_size, char *why, unsigned why_size);

/* Listens on `spec` ("127.0.0.1:PORT", PORT 0 for any free one; loopback only) and writes
 * "socket://127.0.0.1:PORT" into `where`. Returns 0, or 2 (bad usage) / 1 (cannot listen). */
int line_open_tcp(const char *spec, char *where, unsigned where_size, char *why,
                  unsigned why_size);

/* Sends what plat_send has buffered. */
void line_flush(void);

/* Serves `a` until SIGTERM/SIGINT, or (watch_stdin) the end of stdin: returns 0, or 1 after a
 * runtime error (one line in `why`). */
int line_serve(struct agent *a, bool watch_stdin, char *why, unsigned why_size);

#endif
