#include "agent.h"

#include <string.h>

#include "agent_ops.h"
#include "crc32.h"
#include "dispatch.h"
#include "platform.h"
#include "proto.h"
#include "utf8.h"
#include "wire.h"

static const char *const cause_names[] = {"POWER_ON", "SOFTWARE", "WATCHDOG", "POWER_LOSS"};

void agent_init(struct agent *a, const struct board_config *config,
                struct board_persist *persist, uint8_t *frame_buffer)
{
    a->config = config;
    a->persist = persist;
    slip_rx_init(&a->rx, frame_buffer, config->max_payload);
    cache_clear(&a->cache);
    a->dog.armed = false;
    a->booted = false;
}

int64_t agent_monotonic_us(const struct agent *a)
{
    return a->persist->mono_base_us + plat_uptime_us();
}

int64_t agent_wall_us(const struct agent *a)
{
    return a->persist->wall_minus_mono_us + agent_monotonic_us(a);
}

/* Frames the payload at frame + 9 and sends it: header, CRC, SLIP. */
static void send_frame(struct agent *a, uint8_t opcode, uint8_t flags, uint16_t seq,
                       uint32_t length)
{
    uint8_t *f = a->rx.frame;
    f[0] = PROTO_VERSION;
    f[1] = opcode;
    f[2] = flags;
    put_u16(f + 3, seq);
    put_u32(f + 5, length);
    put_u32(f + HEADER_SIZE + length, crc32_update(CRC32_INIT, f, HEADER_SIZE + length));
    slip_send(plat_send, f, FRAME_OVERHEAD + length);
    if (flags & FLAG_ERROR) a->persist->stats.errors++;
}

/* CONSOLE_LINE for every line logged since the last one sent (§9), oldest kept first: u32 index
 * and the text, cut between characters to P - 7 bytes so the payload stays within P - 3 (§6.3). */
static void send_console_lines(struct agent *a)
{
    struct console *c = &a->persist->console;
    uint32_t first = console_oldest(c);
    if (c->sent < first) c->sent = first;
    for (; c->sent < c->total; c->sent++) {
        const struct console_line *line = console_line(c, c->sent);
        uint32_t length = utf8_cut(line->text, line->length, a->config->max_payload - 7u);
        uint8_t *payload = a->rx.frame + HEADER_SIZE;
        put_u32(payload, c->sent);
        memcpy(payload + 4, line->text, length);
        send_frame(a, OP_CONSOLE_LINE, FLAG_UNSOLICITED, 0, 4u + length);
    }
}

void agent_log(struct agent *a, const uint8_t *text, uint32_t length)
{
    uint32_t start = 0;
    for (uint32_t i = 0; i <= length; i++) {
        if (i == length || text[i] == '\n') {
            console_append(&a->persist->console, text + start, i - start);
            start = i + 1;
        }
    }
}

/* "boot N CAUSE": the console line a boot leaves. */
static void log_boot(struct agent *a)
{
    char line[32] = "boot ";
    size_t at = 5;
    char digits[10];
    unsigned count = 0;
    uint32_t n = a->persist->boot_count;
    do {
        digits[count++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    while (count > 0) line[at++] = digits[--count];
    line[at++] = ' ';
    const char *name = cause_names[a->persist->last_cause & 3u];
    size_t name_length = strlen(name);
    memcpy(line + at, name, name_length);
    agent_log(a, (const uint8_t *)line, (uint32_t)(at + name_length));
}

static void send_banner(struct agent *a)
{
    const struct board_persist *p = a->persist;
    uint8_t *payload = a->rx.frame + HEADER_SIZE;
    size_t text = strlen(a->config->banner);
    if (text > a->config->max_payload - 9u) text = a->config->max_payload - 9u;
    put_u32(payload, p->boot_count);
    payload[4] = p->last_cause;
    put_u32(payload + 5, p->session);
    memcpy(payload + 9, a->config->banner, text);
    send_frame(a, OP_BOOT_BANNER, FLAG_UNSOLICITED, 0, 9u + (uint32_t)text);
}

void agent_boot(struct agent *a)
{
    a->persist->boot_count++;
    a->persist->boot_mono_us = agent_monotonic_us(a);
    cache_clear(&a->cache);
    slip_rx_reset(&a->rx);
    a->dog.armed = false;
    log_boot(a);
    send_banner(a);
    send_console_lines(a);
    a->booted = true;
}

void agent_power_up(struct agent *a, uint32_t session, int64_t wall_us)
{
    struct board_persist *p = a->persist;
    memset(p, 0, sizeof *p);
    p->session = session;
    p->last_cause = CAUSE_POWER_ON;
    p->mono_base_us = -plat_uptime_us();
    p->wall_minus_mono_us = wall_us;
    console_clear(&p->console);
    plat_cause_changed(CAUSE_POWER_ON);
    agent_boot(a);
}

/* Records why, keeps the monotonic clock going across the reset, resets, boots. */
static void reboot(struct agent *a, uint8_t cause)
{
    a->persist->mono_base_us = agent_monotonic_us(a);
    a->persist->last_cause = cause;
    plat_cause_changed(cause);
    plat_reset(cause);
    agent_boot(a);
}

/* Writes the error payload (u16 code, text) over the reply. */
static void error_payload(struct reply *rp, enum error_code code)
{
    const char *text = rp->error_text ? rp->error_text : "";
    size_t length = strlen(text);
    if (length > BOARD_CACHE_KEEP - 2u) length = BOARD_CACHE_KEEP - 2u;
    put_u16(rp->payload, (uint16_t)code);
    memcpy(rp->payload + 2, text, length);
    rp->length = 2u + (uint32_t)length;
    rp->flags |= FLAG_ERROR;
}

/* §7 steps 2 and 3 (opcode, payload size for the opcode), then the handler. */
static enum error_code carry_out(struct agent *a, const struct request *rq, struct reply *rp)
{
    const struct op_entry *op = dispatch_find(rq->opcode);
    if (op == NULL) return refuse(rp, ERR_UNKNOWN_OPCODE, "unknown opcode");
    if (rq->length < op->min_length || rq->length > op->max_length) {
        return refuse(rp, ERR_BAD_LENGTH, "payload size");
    }
    if (rq->opcode == OP_HELLO) cache_clear(&a->cache);
    return op->handler(a, rq, rp);
}

/* Answers a duplicate from its cache entry; false if the payload was not kept (the request
 * is then carried out again, §5). */
static bool answer_from_cache(struct agent *a, const struct cache_entry *e, uint16_t seq)
{
    a->persist->stats.duplicates++;
    if (!e->kept) return false;
    memcpy(a->rx.frame + HEADER_SIZE, e->payload, e->length);
    send_frame(a, e->print.opcode, e->flags, seq, e->length);
    return true;
}

/* One request that passed §4: answered exactly once, in order (§5). */
static void handle_request(struct agent *a, struct request *rq, const struct fingerprint *print)
{
    struct reply rp = {
        .payload = a->rx.frame + HEADER_SIZE,
        .capacity = a->config->max_payload - 3u,
        .length = 0,
        .flags = FLAG_REPLY,
        .reboot = NO_REBOOT,
        .error_text = NULL,
    };
    if (rq->opcode != OP_HELLO) {
        const struct cache_entry *e = cache_find(&a->cache, rq->seq);
        if (e != NULL && cache_matches(e, print) && answer_from_cache(a, e, rq->seq)) return;
    }
    enum error_code code = carry_out(a, rq, &rp);
    if (code != ERR_NONE) error_payload(&rp, code);
    cache_store(&a->cache, rq->seq, print, rp.flags, rp.payload, rp.length);
    send_frame(a, rq->opcode, rp.flags, rq->seq, rp.length);
    send_console_lines(a);
    if (rp.reboot != NO_REBOOT) reboot(a, rp.reboot);
}

/* A frame that passed §4: ignored if it is a reply or unsolicited (§5). */
static void handle_frame(struct agent *a)
{
    const uint8_t *f = a->rx.frame;
    uint32_t length = a->rx.length - FRAME_OVERHEAD;
    a->persist->stats.received++;
    if (f[2] & (FLAG_REPLY | FLAG_UNSOLICITED)) return;
    struct request rq = {f[1], get_u16(f + 3), f + HEADER_SIZE, length};
    struct fingerprint print = {f[1], length, get_u32(f + HEADER_SIZE + length)};
    if (f[0] != PROTO_VERSION) {
        struct reply rp = {.payload = a->rx.frame + HEADER_SIZE, .flags = FLAG_REPLY,
                           .error_text = "protocol version"};
        error_payload(&rp, ERR_BAD_VERSION);  /* not cached (§5) */
        send_frame(a, rq.opcode, rp.flags, rq.seq, rp.length);
        return;
    }
    handle_request(a, &rq, &print);
}

static void count_drop(struct agent *a, enum slip_event event)
{
    a->persist->stats.dropped++;
    if (event == SLIP_DROP_CRC) a->persist->stats.bad_crc++;
}

bool agent_receive(struct agent *a, const uint8_t *bytes, size_t n)
{
    a->booted = false;
    for (size_t i = 0; i < n;) {
        size_t run = slip_rx_run(&a->rx, bytes + i, n - i);
        if (run > 0) {
            i += run;
            continue;
        }
        enum slip_event event = slip_rx_byte(&a->rx, bytes[i++]);
        if (event == SLIP_FRAME) {
            handle_frame(a);
            if (a->booted) return false;
        } else if (event != SLIP_MORE && event != SLIP_IGNORED) {
            count_drop(a, event);
        }
    }
    return true;
}

bool agent_tick(struct agent *a)
{
    if (!a->dog.armed || agent_monotonic_us(a) < a->dog.deadline_us) return true;
    reboot(a, CAUSE_WATCHDOG);
    return false;
}

bool agent_wake_at(const struct agent *a, int64_t *uptime_us)
{
    if (!a->dog.armed) return false;
    *uptime_us = a->dog.deadline_us - a->persist->mono_base_us;
    return true;
}
