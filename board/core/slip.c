#include "slip.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "crc32.h"
#include "proto.h"
#include "wire.h"

void slip_rx_init(struct slip_rx *rx, uint8_t *buffer, uint32_t max_payload)
{
    rx->frame = buffer;
    rx->max_payload = max_payload;
    rx->capacity = FRAME_OVERHEAD + max_payload;
    slip_rx_reset(rx);
}

void slip_rx_reset(struct slip_rx *rx)
{
    rx->length = 0;
    rx->started = false;
    rx->escaped = false;
    rx->garbage = false;
    rx->oversize = false;
}

/* The §4 verdict on a complete candidate, in the order the document lists the checks. */
static enum slip_event judge(const struct slip_rx *rx)
{
    if (!rx->started) return SLIP_IGNORED;
    if (rx->oversize) return SLIP_DROP_OVERSIZE;
    if (rx->garbage || rx->escaped) return SLIP_DROP_GARBAGE;
    if (rx->length < FRAME_OVERHEAD) return SLIP_DROP_GARBAGE;
    uint32_t declared = get_u32(rx->frame + 5);
    if (declared > rx->max_payload) return SLIP_DROP_OVERSIZE;
    if (declared != rx->length - FRAME_OVERHEAD) return SLIP_DROP_LENGTH;
    uint32_t body = rx->length - CRC_SIZE;
    if (crc32_update(CRC32_INIT, rx->frame, body) != get_u32(rx->frame + body)) return SLIP_DROP_CRC;
    return SLIP_FRAME;
}

static void keep(struct slip_rx *rx, uint8_t byte)
{
    if (rx->length < rx->capacity) {
        rx->frame[rx->length++] = byte;
    } else {
        rx->oversize = true;
    }
}

enum slip_event slip_rx_byte(struct slip_rx *rx, uint8_t byte)
{
    if (byte == SLIP_END) {
        enum slip_event verdict = judge(rx);
        uint32_t length = rx->length;
        slip_rx_reset(rx);
        rx->length = (verdict == SLIP_FRAME) ? length : 0;
        return verdict;
    }
    if (!rx->started) rx->length = 0;  /* the previous frame is consumed now */
    rx->started = true;
    if (rx->oversize || rx->garbage) return SLIP_MORE;  /* dropped at the next END */
    if (rx->escaped) {
        rx->escaped = false;
        if (byte == SLIP_ESC_END) keep(rx, SLIP_END);
        else if (byte == SLIP_ESC_ESC) keep(rx, SLIP_ESC);
        else rx->garbage = true;
    } else if (byte == SLIP_ESC) {
        rx->escaped = true;
    } else {
        keep(rx, byte);
    }
    return SLIP_MORE;
}

/* How many bytes come before the first END or ESC (all `n` if none). */
static size_t plain_bytes(const uint8_t *bytes, size_t n)
{
    size_t run = 0;
#if defined(__SSE2__)   /* x86: 16 bytes a step; the loop below is the portable form */
    const __m128i end = _mm_set1_epi8((char)SLIP_END), esc = _mm_set1_epi8((char)SLIP_ESC);
    for (; n - run >= 16u; run += 16u) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(bytes + run));
        unsigned hits = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, end), _mm_cmpeq_epi8(v, esc)));
        if (hits != 0) return run + (size_t)__builtin_ctz(hits);
    }
#endif
    while (run < n && bytes[run] != SLIP_END && bytes[run] != SLIP_ESC) run++;
    return run;
}

size_t slip_rx_run(struct slip_rx *rx, const uint8_t *bytes, size_t n)
{
    if (rx->escaped) return 0;
    size_t run = plain_bytes(bytes, n);
    if (run == 0) return 0;
    if (!rx->started) rx->length = 0;  /* the previous frame is consumed now */
    rx->started = true;
    if (rx->oversize || rx->garbage) return run;  /* dropped at the next END */
    size_t room = rx->capacity - rx->length, kept = run < room ? run : room;
    memcpy(rx->frame + rx->length, bytes, kept);
    rx->length += (uint32_t)kept;
    if (kept < run) rx->oversize = true;
    return run;
}

enum { SEND_CHUNK = 64 };

void slip_send(slip_sink sink, const uint8_t *data, size_t n)
{
    uint8_t out[SEND_CHUNK + 2];
    size_t used = 0;
    out[used++] = SLIP_END;
    for (size_t i = 0; i < n; i++) {
        if (used >= SEND_CHUNK) {
            sink(out, used);
            used = 0;
        }
        uint8_t b = data[i];
        if (b == SLIP_END) {
            out[used++] = SLIP_ESC;
            out[used++] = SLIP_ESC_END;
        } else if (b == SLIP_ESC) {
            out[used++] = SLIP_ESC;
            out[used++] = SLIP_ESC_ESC;
        } else {
            out[used++] = b;
        }
    }
    out[used++] = SLIP_END;
    sink(out, used);
}
