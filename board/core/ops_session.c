/* HELLO, PING, QUERY, STATS (§6.1, §6.2, §6.7). */
#include <string.h>

#include "agent_ops.h"
#include "wire.h"

enum error_code op_hello(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)rq;
    const struct board_config *c = a->config;
    const struct board_persist *p = a->persist;
    uint8_t *out = rp->payload;
    put_u16(out, PROTO_VERSION);
    put_u32(out + 2, c->max_payload);
    put_u16(out + 6, c->window);
    put_u32(out + 8, c->baud);
    put_u32(out + 12, c->flash_size);
    put_u32(out + 16, c->sector_size);
    put_u32(out + 20, c->page_size);
    put_u32(out + 24, c->otp_words);
    put_u32(out + 28, p->boot_count);
    out[32] = p->last_cause;
    put_u32(out + 33, p->session);
    out[37] = BOARD_FLAG_VIRTUAL_CLOCK;
    put_f64(out + 38, (double)p->boot_mono_us / 1e6);
    rp->length = HELLO_SIZE;
    return ERR_NONE;
}

enum error_code op_ping(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)a;
    if (rq->length > rp->capacity) return refuse(rp, ERR_BAD_LENGTH, "ping over P - 3");
    rp->length = rq->length;   /* the payload is already in place */
    return ERR_NONE;
}

enum error_code op_query(struct agent *a, const struct request *rq, struct reply *rp)
{
    const struct cache_entry *e = cache_find(&a->cache, get_u16(rq->payload));
    uint8_t *out = rp->payload;
    if (e == NULL) {
        out[0] = QUERY_NONE;
        rp->length = 1;
        return ERR_NONE;
    }
    /* about a QUERY the answer is always 2 (§6.2): its reply may be P bytes, too long to repeat */
    bool kept = e->kept && e->print.opcode != OP_QUERY;
    out[0] = kept ? QUERY_KEPT : QUERY_NOT_KEPT;
    out[1] = e->flags;
    out[2] = e->print.opcode;
    rp->length = 3;
    if (kept) {
        memcpy(out + 3, e->payload, e->length);
        rp->length += e->length;
    }
    return ERR_NONE;
}

enum error_code op_stats(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)rq;
    const struct board_persist *p = a->persist;
    const uint32_t values[6] = {p->stats.received, p->stats.dropped, p->stats.bad_crc,
                                p->stats.duplicates, p->stats.errors, p->boot_count};
    for (unsigned i = 0; i < 6; i++) put_u32(rp->payload + 4 * i, values[i]);
    rp->length = 24;
    return ERR_NONE;
}
