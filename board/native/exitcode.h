/* The project's exit codes (policy/cli.py) as the board agent uses them, and its one-line
 * errors: `board-agent: error: TEXT` on stderr. */
#ifndef NATIVE_EXITCODE_H
#define NATIVE_EXITCODE_H

enum exit_code {
    EXIT_OK = 0,            /* stopped by SIGTERM/SIGINT, or the end of stdin */
    EXIT_BAD_INPUT = 2,     /* bad usage, or a device file that cannot be used */
    EXIT_HARDWARE = 4,      /* the port cannot be opened or fails; a runtime failure */
    EXIT_BUSY = 5,          /* another process holds the device */
    EXIT_INTERRUPTED = 130, /* SIGTERM/SIGINT before the agent served */
};

#endif
