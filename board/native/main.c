/* board-agent: the board side of the serial protocol on a POSIX host (pty or loopback TCP),
 * with the command line and exit codes of `python -m hal.emulator` (policy/cli.py): errors
 * are one line on stderr, `board-agent: error: TEXT`. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/agent.h"
#include "../core/isotime.h"
#include "../core/proto.h"
#include "devfiles.h"
#include "exitcode.h"
#include "line.h"

#define WHY_SIZE 1024
#define PROG "board-agent"

static const char usage[] =
    "usage: board-agent --flash PATH (--pty | --tcp 127.0.0.1:PORT) [--size N] [--sector-size N]\n"
    "                   [--page-size N] [--otp-words N] [--max-payload N] [--window N]\n"
    "                   [--wait SECONDS] [--at DATETIME] [--exit-with-parent]\n"
    "\n"
    "Serve a device (FLASH and FLASH.otp, .reset, .clock beside it) as a board over the serial\n"
    "protocol. The first stdout line ends with the port to open.\n"
    "\n"
    "  --wait SECONDS      wait this long for a device another process holds (default: refuse\n"
    "                      at once, exit 5)\n"
    "  --at DATETIME       set the device's wall clock first (ISO 8601; UTC unless it names a\n"
    "                      zone); otherwise it goes on from FLASH.clock\n"
    "  --exit-with-parent  stop when stdin (a pipe the launcher keeps open) reaches its end\n"
    "\n"
    "exit codes:\n"
    "  0    stopped by SIGTERM or SIGINT, or (--exit-with-parent) at the end of stdin\n"
    "  2    bad usage, or a flash or state file that cannot be used: nothing is created\n"
    "  4    the port cannot be opened, or fails\n"
    "  5    another process holds the flash file\n"
    "  130  interrupted (SIGTERM or SIGINT) before serving: nothing is created\n"
    "errors are one line on stderr.\n";

struct options {
    const char *flash_path;
    bool pty, exit_with_parent, at_given;
    struct tcp_address tcp;
    bool tcp_given;
    struct device_geometry geometry;
    uint32_t max_payload, window;
    double wait_s;
    int64_t at_us;
};

/* `board-agent: error: TEXT` with every run of white space in TEXT one space; returns `code`. */
static int fail(int code, const char *format, ...)
{
    char text[WHY_SIZE], line[WHY_SIZE];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    size_t used = 0;
    bool space = true;   /* drops leading white space */
    for (const char *p = text; *p && used + 1 < sizeof line; p++) {
        bool white = *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == '\v' || *p == '\f';
        if (white && space) continue;
        line[used++] = white ? ' ' : *p;
        space = white;
    }
    while (used > 0 && line[used - 1] == ' ') used--;
    line[used] = '\0';
    fprintf(stderr, "%s: error: %s\n", PROG, line);
    return code;
}

static int bad_usage(const char *text) { return fail(EXIT_BAD_INPUT, "%s (see --help)", text); }

/* A whole decimal number within [low, high]. */
static bool parse_number(const char *text, uint64_t low, uint64_t high, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || *end || end == text || text[0] == '-' || value < low || value > high) return false;
    *out = (uint32_t)value;
    return true;
}

static bool parse_seconds(const char *text, double *out)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || *end || end == text || !isfinite(value) || value < 0) return false;
    *out = value;
    return true;
}

static bool geometry_ok(const struct device_geometry *g)
{
    return g->sector_size > 0 && g->page_size > 0 && g->flash_size % g->sector_size == 0 &&
           g->sector_size % g->page_size == 0;
}

enum option_id { OPT_FLASH = 1, OPT_PTY, OPT_TCP, OPT_SIZE, OPT_SECTOR, OPT_PAGE, OPT_OTP,
                 OPT_PAYLOAD, OPT_WINDOW, OPT_PARENT, OPT_WAIT, OPT_AT, OPT_HELP };

/* Stores one numeric option; false if it is out of its range. */
static bool number_option(struct options *o, int id, const char *arg)
{
    switch (id) {
    case OPT_SIZE: return parse_number(arg, 1, 0xFFFFFFFFu, &o->geometry.flash_size);
    case OPT_SECTOR: return parse_number(arg, 1, 0xFFFFFFFFu, &o->geometry.sector_size);
    case OPT_PAGE: return parse_number(arg, 1, 0xFFFFFFFFu, &o->geometry.page_size);
    case OPT_OTP: return parse_number(arg, 1, 1u << 20, &o->geometry.otp_words);
    case OPT_PAYLOAD: return parse_number(arg, MIN_PAYLOAD, MAX_PAYLOAD, &o->max_payload);
    case OPT_WINDOW: return parse_number(arg, 1, 16, &o->window);
    case OPT_WAIT: return parse_seconds(arg, &o->wait_s);
    default: return false;
    }
}

/* True unless --exit-with-parent was given and stdin is something whose end of file does not
 * say that the parent has gone (a file or /dev/null would end at once). */
static bool stdin_can_close(void)
{
    struct stat st;
    if (fstat(STDIN_FILENO, &st) != 0) return false;
    return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDIN_FILENO);
}

/* One option with its value; 0, or the exit code for bad usage after one line on stderr. */
static int store_option(struct options *o, int id, const char *arg, const char *name)
{
    char why[WHY_SIZE];
    switch (id) {
    case OPT_FLASH: o->flash_path = arg; return 0;
    case OPT_PTY: o->pty = true; return 0;
    case OPT_PARENT: o->exit_with_parent = true; return 0;
    case OPT_TCP:
        o->tcp_given = true;
        return line_parse_tcp(arg, &o->tcp, why, sizeof why) ? 0 : fail(EXIT_BAD_INPUT, "%s", why);
    case OPT_AT:
        o->at_given = true;
        if (isotime_parse(arg, (unsigned)strlen(arg), false, &o->at_us)) return 0;
        snprintf(why, sizeof why, "argument --at: '%s' is not an ISO 8601 date or date-time", arg);
        return bad_usage(why);
    default:
        if (number_option(o, id, arg)) return 0;
        snprintf(why, sizeof why, "argument %s: bad value '%s'", name, arg);
        return bad_usage(why);
    }
}

/* Returns 0, or the exit code for bad usage (2) after one line on stderr, or -1 for --help. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {
        {"flash", required_argument, 0, OPT_FLASH}, {"pty", no_argument, 0, OPT_PTY},
        {"tcp", required_argument, 0, OPT_TCP}, {"size", required_argument, 0, OPT_SIZE},
        {"sector-size", required_argument, 0, OPT_SECTOR},
        {"page-size", required_argument, 0, OPT_PAGE},
        {"otp-words", required_argument, 0, OPT_OTP},
        {"max-payload", required_argument, 0, OPT_PAYLOAD},
        {"window", required_argument, 0, OPT_WINDOW}, {"wait", required_argument, 0, OPT_WAIT},
        {"at", required_argument, 0, OPT_AT},
        {"exit-with-parent", no_argument, 0, OPT_PARENT}, {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    opterr = 0;
    char name[32];
    for (int id, at = -1; (id = getopt_long(argc, argv, ":", longs, &at)) != -1; at = -1) {
        if (id == OPT_HELP) return -1;
        if (id == ':') return bad_usage("an option is missing its value");
        if (id == '?') return bad_usage("unrecognized option");
        snprintf(name, sizeof name, "--%s", at >= 0 ? longs[at].name : "?");
        int code = store_option(o, id, optarg, name);
        if (code != 0) return code;
    }
    if (optind < argc) return bad_usage("unrecognized arguments");
    if (!o->flash_path) return bad_usage("the following arguments are required: --flash");
    if (o->pty == o->tcp_given) return bad_usage("give exactly one of --pty and --tcp");
    if (!geometry_ok(&o->geometry)) {
        return fail(EXIT_BAD_INPUT, "bad flash geometry: size %u, sector %u, page %u (each must "
                    "be positive and divide the one before)", o->geometry.flash_size,
                    o->geometry.sector_size, o->geometry.page_size);
    }
    if (o->exit_with_parent && !stdin_can_close()) {
        return fail(EXIT_BAD_INPUT, "--exit-with-parent: stdin must be a pipe (or a socket or "
                    "terminal) the parent keeps open; a file or /dev/null would end at once");
    }
    return 0;
}

static uint32_t new_session(void)
{
    uint32_t session = 0;
    if (getrandom(&session, sizeof session, 0) != (ssize_t)sizeof session) session = (uint32_t)getpid();
    return session;
}

static int interrupted(void)
{
    devfiles_discard_new();
    fprintf(stderr, "%s: interrupted\n", PROG);
    return EXIT_INTERRUPTED;
}

static uint8_t frame_buffer[FRAME_OVERHEAD + MAX_PAYLOAD];
static struct board_persist persist;
static struct agent agent;

/* Opens the device and the port, powers the board up, serves; the exit code. */
static int run(const struct options *o)
{
    char why[WHY_SIZE], where[256];
    int64_t wall_us;
    if (!line_catch_signals(why, sizeof why)) return fail(EXIT_HARDWARE, "%s", why);
    enum exit_code code = devfiles_check(o->flash_path, &o->geometry, why, sizeof why);
    if (code == EXIT_OK) {
        code = devfiles_open(o->flash_path, &o->geometry, o->wait_s, &line_stop, &wall_us, why,
                             sizeof why);
    }
    if (code == EXIT_INTERRUPTED) return interrupted();
    if (code != EXIT_OK) return fail(code, "%s", why);
    if (o->at_given) wall_us = o->at_us;
    bool open = o->pty ? line_open_pty(where, sizeof where, why, sizeof why)
                       : line_open_tcp(&o->tcp, where, sizeof where, why, sizeof why);
    if (!open) {
        devfiles_discard_new();   /* nothing was served: leave no new file behind */
        return fail(EXIT_HARDWARE, "%s", why);
    }
    if (line_stop) return interrupted();
    const struct board_config config = {
        .max_payload = o->max_payload, .window = (uint16_t)o->window, .baud = 0,
        .flash_size = o->geometry.flash_size, .sector_size = o->geometry.sector_size,
        .page_size = o->geometry.page_size, .otp_words = o->geometry.otp_words,
        .banner = "sphere-fwmodel board agent (native)",
    };
    agent_init(&agent, &config, &persist, frame_buffer);
    agent_power_up(&agent, new_session(), wall_us);   /* FLASH.reset: POWER_ON, before serving */
    printf("board-agent: %s served on %s\n", o->flash_path, where);
    fflush(stdout);
    line_flush();
    code = line_serve(&agent, o->exit_with_parent, why, sizeof why);
    if (code != EXIT_OK) fail(code, "%s", why);
    if (!devfiles_save_clock(agent_wall_us(&agent)) && code == EXIT_OK) {
        code = (enum exit_code)fail(EXIT_HARDWARE, "%s.clock: cannot save the wall clock: %s",
                                    o->flash_path, strerror(errno));
    }
    return code;
}

int main(int argc, char **argv)
{
    struct options o = {.geometry = {16u << 20, 4096, 256, 64}, .max_payload = MAX_PAYLOAD,
                        .window = 16};
    int status = parse_options(argc, argv, &o);
    if (status < 0) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    return status != 0 ? status : run(&o);
}
