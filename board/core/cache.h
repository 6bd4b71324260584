/* The reply cache of §5: the last BOARD_CACHE_ENTRIES requests by seq, with a fingerprint. */
#ifndef BOARD_CACHE_H
#define BOARD_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* What makes a re-sent request recognisable: it is byte-identical, so all of these match. */
struct fingerprint {
    uint8_t opcode;
    uint32_t length;   /* payload length */
    uint32_t crc;      /* the frame's CRC */
};

struct cache_entry {
    bool used;
    bool kept;                 /* the reply's payload is here (else: carried out, not kept) */
    uint16_t seq;
    uint8_t flags;             /* the reply's flags */
    struct fingerprint print;
    uint32_t age;              /* insertion stamp: the smallest goes first */
    uint16_t length;           /* reply payload bytes, when kept */
    uint8_t payload[BOARD_CACHE_KEEP];
};

struct reply_cache {
    uint32_t stamp;
    struct cache_entry entries[BOARD_CACHE_ENTRIES];
};

/* Empties the cache (boot, HELLO). */
void cache_clear(struct reply_cache *c);

/* The entry for `seq`, or NULL. */
const struct cache_entry *cache_find(const struct reply_cache *c, uint16_t seq);

/* True if `e` is the entry of exactly this request (a duplicate). */
bool cache_matches(const struct cache_entry *e, const struct fingerprint *print);

/* Records the reply to request `seq`: replaces that seq's entry, else takes a free one, else
 * the oldest. The payload is kept if it fits in BOARD_CACHE_KEEP bytes. */
void cache_store(struct reply_cache *c, uint16_t seq, const struct fingerprint *print,
                 uint8_t flags, const uint8_t *payload, uint32_t length);

#endif
