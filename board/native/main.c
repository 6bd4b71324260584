/* board-agent: the board side of the serial protocol on a POSIX host (pty or loopback TCP),
 * with the same command line as `python -m hal.emulator`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../core/agent.h"
#include "../core/proto.h"
#include "devfiles.h"
#include "line.h"

#define WHY_SIZE 512

static const char usage[] =
    "usage: board-agent --flash PATH (--pty | --tcp 127.0.0.1:PORT) [--size N] [--sector-size N]\n"
    "                   [--page-size N] [--otp-words N] [--max-payload N] [--window N]\n"
    "                   [--exit-with-parent]\n"
    "exit codes: 0 stopped (SIGTERM, SIGINT, end of stdin with --exit-with-parent),\n"
    "            1 runtime error, 2 bad usage or an unusable device file\n";

struct options {
    const char *flash_path, *tcp;
    bool pty, exit_with_parent;
    struct device_geometry geometry;
    uint32_t max_payload, window;
};

static int bad_usage(const char *text)
{
    fprintf(stderr, "board-agent: %s\n", text);
    return 2;
}

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

static bool geometry_ok(const struct device_geometry *g)
{
    return g->sector_size > 0 && g->page_size > 0 && g->flash_size % g->sector_size == 0 &&
           g->sector_size % g->page_size == 0;
}

enum option_id { OPT_FLASH = 1, OPT_PTY, OPT_TCP, OPT_SIZE, OPT_SECTOR, OPT_PAGE, OPT_OTP,
                 OPT_PAYLOAD, OPT_WINDOW, OPT_PARENT, OPT_HELP };

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
    default: return false;
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
        {"window", required_argument, 0, OPT_WINDOW},
        {"exit-with-parent", no_argument, 0, OPT_PARENT}, {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    opterr = 0;
    for (int id; (id = getopt_long(argc, argv, "", longs, NULL)) != -1;) {
        if (id == OPT_HELP) return -1;
        if (id == OPT_FLASH) o->flash_path = optarg;
        else if (id == OPT_PTY) o->pty = true;
        else if (id == OPT_TCP) o->tcp = optarg;
        else if (id == OPT_PARENT) o->exit_with_parent = true;
        else if (id == '?' || id == ':') return bad_usage("unknown option or missing value (see --help)");
        else if (!number_option(o, id, optarg)) {
            char text[128];
            snprintf(text, sizeof text, "bad value for %s: %s", argv[optind - 1], optarg);
            return bad_usage(text);
        }
    }
    if (optind < argc) return bad_usage("unexpected argument");
    if (!o->flash_path) return bad_usage("--flash PATH is required");
    if (o->pty == (o->tcp != NULL)) return bad_usage("give exactly one of --pty and --tcp");
    if (!geometry_ok(&o->geometry)) {
        return bad_usage("bad geometry: sectors must divide the flash and pages the sectors");
    }
    return 0;
}

static uint32_t new_session(void)
{
    uint32_t session = 0;
    if (getrandom(&session, sizeof session, 0) != (ssize_t)sizeof session) session = (uint32_t)getpid();
    return session;
}

static uint8_t frame_buffer[FRAME_OVERHEAD + MAX_PAYLOAD];
static struct board_persist persist;
static struct agent agent;

int main(int argc, char **argv)
{
    struct options o = {.geometry = {16u << 20, 4096, 256, 64}, .max_payload = MAX_PAYLOAD,
                        .window = 16};
    int status = parse_options(argc, argv, &o);
    if (status != 0) {
        if (status < 0) fputs(usage, stdout);
        return status < 0 ? 0 : status;
    }
    char why[WHY_SIZE], where[256];
    int64_t wall_us;
    if (!devfiles_check(o.flash_path, &o.geometry, &wall_us, why, sizeof why)) return bad_usage(why);
    status = o.pty ? (line_open_pty(where, sizeof where, why, sizeof why) ? 0 : 1)
                   : line_open_tcp(o.tcp, where, sizeof where, why, sizeof why);
    if (status == 2) return bad_usage(why);
    if (status == 0 && !devfiles_open(o.flash_path, &o.geometry, why, sizeof why)) status = 1;
    if (status != 0) {
        fprintf(stderr, "board-agent: %s\n", why);
        return 1;
    }
    const struct board_config config = {
        .max_payload = o.max_payload, .window = (uint16_t)o.window, .baud = 0,
        .flash_size = o.geometry.flash_size, .sector_size = o.geometry.sector_size,
        .page_size = o.geometry.page_size, .otp_words = o.geometry.otp_words,
        .banner = "sphere-fwmodel board agent (native)",
    };
    agent_init(&agent, &config, &persist, frame_buffer);
    printf("board-agent serving on %s\n", where);
    fflush(stdout);
    agent_power_up(&agent, new_session(), wall_us);
    line_flush();
    status = line_serve(&agent, o.exit_with_parent, why, sizeof why);
    devfiles_save_clock(agent_wall_us(&agent));
    if (status != 0) fprintf(stderr, "board-agent: %s\n", why);
    return status;
}
