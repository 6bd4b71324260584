#include "cache.h"

#include <string.h>

void cache_clear(struct reply_cache *c)
{
    for (uint32_t i = 0; i < BOARD_CACHE_ENTRIES; i++) c->entries[i].used = false;
    c->stamp = 0;
}

const struct cache_entry *cache_find(const struct reply_cache *c, uint16_t seq)
{
    for (uint32_t i = 0; i < BOARD_CACHE_ENTRIES; i++) {
        if (c->entries[i].used && c->entries[i].seq == seq) return &c->entries[i];
    }
    return NULL;
}

bool cache_matches(const struct cache_entry *e, const struct fingerprint *print)
{
    return e->print.opcode == print->opcode && e->print.length == print->length &&
           e->print.crc == print->crc;
}

/* The slot for a new reply to `seq`: its old entry, a free one, or the oldest. */
static struct cache_entry *slot_for(struct reply_cache *c, uint16_t seq)
{
    struct cache_entry *oldest = &c->entries[0];
    for (uint32_t i = 0; i < BOARD_CACHE_ENTRIES; i++) {
        struct cache_entry *e = &c->entries[i];
        if (e->used && e->seq == seq) return e;
    }
    for (uint32_t i = 0; i < BOARD_CACHE_ENTRIES; i++) {
        struct cache_entry *e = &c->entries[i];
        if (!e->used) return e;
        if (e->age < oldest->age) oldest = e;
    }
    return oldest;
}

void cache_store(struct reply_cache *c, uint16_t seq, const struct fingerprint *print,
                 uint8_t flags, const uint8_t *payload, uint32_t length)
{
    struct cache_entry *e = slot_for(c, seq);
    e->used = true;
    e->seq = seq;
    e->flags = flags;
    e->print = *print;
    e->age = c->stamp++;
    e->kept = length <= BOARD_CACHE_KEEP;
    e->length = e->kept ? (uint16_t)length : 0;
    if (e->kept && length > 0) memcpy(e->payload, payload, length);
}
