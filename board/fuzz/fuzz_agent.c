/* libFuzzer target: the frame decoder and the dispatch of the agent, on the native core.
 *
 * Input byte 0 picks the board (bits 0-1: max_payload 512, 4096, 65,600 or 1,000) and the mode
 * (bit 7). Raw mode: the rest is what arrives on the line. Request mode: the rest is records
 * [opcode, flags, seq lo, version-or-0, len lo, len hi, payload...] that the harness frames
 * with a correct CRC (so the fuzzer reaches the handlers), some of them sent twice. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../core/agent.h"
#include "../core/crc32.h"
#include "../core/proto.h"
#include "../core/wire.h"
#include "fuzz_platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t frame_buffer[FRAME_OVERHEAD + MAX_PAYLOAD];
static uint8_t line[2 * (FRAME_OVERHEAD + MAX_PAYLOAD) + 2];
static uint8_t plain[FRAME_OVERHEAD + MAX_PAYLOAD];
static struct board_persist persist;
static struct agent agent;
static struct board_config config;

static size_t escape_into(uint8_t *out, const uint8_t *in, size_t n)
{
    size_t used = 0;
    out[used++] = SLIP_END;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == SLIP_END || in[i] == SLIP_ESC) {
            out[used++] = SLIP_ESC;
            out[used++] = in[i] == SLIP_END ? SLIP_ESC_END : SLIP_ESC_ESC;
        } else {
            out[used++] = in[i];
        }
    }
    out[used++] = SLIP_END;
    return used;
}

/* Frames one record; returns the bytes of input it used (0: no record left). */
static size_t one_request(const uint8_t *data, size_t size)
{
    if (size < 6) return 0;
    size_t length = get_u16(data + 4);
    if (length > size - 6) length = size - 6;
    if (length > MAX_PAYLOAD) length = MAX_PAYLOAD;
    plain[0] = data[3] ? data[3] : PROTO_VERSION;
    plain[1] = data[0];
    plain[2] = data[1] & 0x0F ? 0 : data[1];   /* mostly requests */
    put_u16(plain + 3, (uint16_t)(data[2] | (data[1] & 0x30u) << 4));
    put_u32(plain + 5, (uint32_t)length);
    memcpy(plain + HEADER_SIZE, data + 6, length);
    put_u32(plain + HEADER_SIZE + length, crc32_update(CRC32_INIT, plain, HEADER_SIZE + length));
    size_t wire = escape_into(line, plain, FRAME_OVERHEAD + length);
    agent_receive(&agent, line, wire);
    if (data[1] & 0x40) agent_receive(&agent, line, wire);   /* a re-sent request */
    return 6 + length;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t payloads[4] = {512, 4096, MAX_PAYLOAD, 1000};
    if (size < 1) return 0;
    config = (struct board_config){
        .max_payload = payloads[data[0] & 3u], .window = 4, .baud = 0,
        .flash_size = FUZZ_FLASH_SIZE, .sector_size = FUZZ_SECTOR_SIZE,
        .page_size = FUZZ_PAGE_SIZE, .otp_words = FUZZ_OTP_WORDS, .banner = "fuzz",
    };
    fuzz_platform_reset(config.max_payload);
    agent_init(&agent, &config, &persist, frame_buffer);
    agent_power_up(&agent, 0x12345678u, 1738368000LL * 1000000);
    bool requests = data[0] & 0x80u;
    data++;
    size--;
    if (!requests) {
        agent_receive(&agent, data, size);
        return 0;
    }
    for (size_t used; (used = one_request(data, size)) > 0;) {
        data += used;
        size -= used;
    }
    return 0;
}
