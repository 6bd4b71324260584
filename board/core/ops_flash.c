/* FLASH_* (§6.4): NOR rules over the platform's storage. */
#include <string.h>

#include "agent_ops.h"
#include "platform.h"
#include "sha256.h"
#include "wire.h"

static uint32_t min_u32(uint32_t x, uint32_t y) { return x < y ? x : y; }

enum error_code op_flash_geometry(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)rq;
    put_u32(rp->payload, a->config->flash_size);
    put_u32(rp->payload + 4, a->config->sector_size);
    put_u32(rp->payload + 8, a->config->page_size);
    rp->length = 12;
    return ERR_NONE;
}

enum error_code op_flash_read(struct agent *a, const struct request *rq, struct reply *rp)
{
    uint32_t offset = get_u32(rq->payload), length = get_u32(rq->payload + 4);
    if (length > min_u32(MAX_DATA, a->config->max_payload - 3u)) {
        return refuse(rp, ERR_BAD_LENGTH, "read over the limit");
    }
    if (!range_fits(offset, length, a->config->flash_size)) {
        return refuse(rp, ERR_OUT_OF_RANGE, "past the end");
    }
    if (length > 0 && !plat_flash_read(offset, rp->payload, length)) {
        return refuse(rp, ERR_INTERNAL, "storage read");
    }
    rp->length = length;
    return ERR_NONE;
}

/* The bits `data` would set over `old` (0 -> 1), ORed together: 0 if there are none. Eight
 * bytes a step, with no early exit, so compilers can vectorize it. */
static uint32_t bits_set(const uint8_t *data, const uint8_t *old, uint32_t n)
{
    uint64_t stray = 0;
    uint32_t i = 0;
    for (; n - i >= 8u; i += 8u) {
        uint64_t d, o;
        memcpy(&d, data + i, 8);
        memcpy(&o, old + i, 8);
        stray |= d & ~o;
    }
    for (; i < n; i++) stray |= (uint64_t)(data[i] & (uint8_t)~old[i]);
    return (uint32_t)(stray | stray >> 32);
}

/* True if programming `data` at `offset` only clears bits (no 0 -> 1). */
static bool only_clears(uint32_t offset, const uint8_t *data, uint32_t length, bool *failed)
{
    uint8_t old[BOARD_FLASH_CHUNK];
    for (uint32_t done = 0; done < length;) {
        uint32_t step = min_u32(length - done, BOARD_FLASH_CHUNK);
        if (!plat_flash_read(offset + done, old, step)) {
            *failed = true;
            return false;
        }
        if (bits_set(data + done, old, step) != 0) return false;
        done += step;
    }
    return true;
}

enum error_code op_flash_program(struct agent *a, const struct request *rq, struct reply *rp)
{
    uint32_t offset = get_u32(rq->payload), length = rq->length - 4u;
    const uint8_t *data = rq->payload + 4;
    if (length > min_u32(MAX_DATA, a->config->max_payload - 4u)) {
        return refuse(rp, ERR_BAD_LENGTH, "data over the limit");
    }
    if (!range_fits(offset, length, a->config->flash_size)) {
        return refuse(rp, ERR_OUT_OF_RANGE, "past the end");
    }
    if (length == 0) return ERR_NONE;
    bool failed = false;
    if (!only_clears(offset, data, length, &failed)) {
        if (failed) return refuse(rp, ERR_INTERNAL, "storage read");
        return refuse(rp, ERR_FLASH_RULE, "0 -> 1 bit");
    }
    if (!plat_flash_write(offset, data, length)) return refuse(rp, ERR_INTERNAL, "storage write");
    return ERR_NONE;
}

enum error_code op_flash_erase(struct agent *a, const struct request *rq, struct reply *rp)
{
    uint32_t offset = get_u32(rq->payload), length = get_u32(rq->payload + 4);
    uint32_t sector = a->config->sector_size;
    if (!range_fits(offset, length, a->config->flash_size)) {
        return refuse(rp, ERR_OUT_OF_RANGE, "past the end");
    }
    if (length == 0) return ERR_NONE;
    if (offset % sector != 0 || length % sector != 0) {
        return refuse(rp, ERR_FLASH_RULE, "misaligned");
    }
    if (!plat_flash_erase(offset, length)) return refuse(rp, ERR_INTERNAL, "storage erase");
    return ERR_NONE;
}

enum error_code op_flash_hash(struct agent *a, const struct request *rq, struct reply *rp)
{
    uint32_t offset = get_u32(rq->payload), length = get_u32(rq->payload + 4);
    if (!range_fits(offset, length, a->config->flash_size)) {
        return refuse(rp, ERR_OUT_OF_RANGE, "past the end");
    }
    struct sha256 h;
    uint8_t chunk[BOARD_FLASH_CHUNK];
    sha256_init(&h);
    for (uint32_t done = 0; done < length;) {
        uint32_t step = min_u32(length - done, BOARD_FLASH_CHUNK);
        if (!plat_flash_read(offset + done, chunk, step)) {
            return refuse(rp, ERR_INTERNAL, "storage read");
        }
        sha256_update(&h, chunk, step);
        done += step;
    }
    sha256_final(&h, rp->payload);
    rp->length = SHA256_SIZE;
    return ERR_NONE;
}
