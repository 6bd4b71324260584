/* The platform under the fuzzer: flash and fuses in RAM, time standing still, and every
 * transmitted byte decoded again and checked (each frame the board sends passes §4). */
#include "fuzz_platform.h"

#include <stdlib.h>
#include <string.h>

#include "../core/platform.h"
#include "../core/proto.h"
#include "../core/wire.h"

uint8_t fuzz_flash[FUZZ_FLASH_SIZE];
uint32_t fuzz_otp[FUZZ_OTP_WORDS];

static uint8_t echo_buffer[FRAME_OVERHEAD + MAX_PAYLOAD];
static struct slip_rx echo;
static uint32_t echo_max_payload;

void fuzz_platform_reset(uint32_t max_payload)
{
    memset(fuzz_flash, 0xFF, sizeof fuzz_flash);
    memset(fuzz_otp, 0, sizeof fuzz_otp);
    echo_max_payload = max_payload;
    slip_rx_init(&echo, echo_buffer, max_payload);
}

/* A frame the board sent: well formed, and a reply within P - 3 (QUERY within P). */
static void check_sent_frame(void)
{
    const uint8_t *f = echo.frame;
    uint32_t length = get_u32(f + 5);
    if (f[0] != PROTO_VERSION || (f[2] & 0xF0) != 0) abort();
    if (f[2] & FLAG_UNSOLICITED) {
        if (get_u16(f + 3) != 0 || (f[1] != OP_BOOT_BANNER && f[1] != OP_CONSOLE_LINE)) abort();
    } else if (!(f[2] & FLAG_REPLY) || (f[1] != OP_QUERY && length > echo_max_payload - 3u)) {
        abort();
    }
}

void plat_send(const uint8_t *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        enum slip_event event = slip_rx_byte(&echo, bytes[i]);
        if (event == SLIP_FRAME) check_sent_frame();
        else if (event != SLIP_MORE && event != SLIP_IGNORED) abort();  /* we sent a bad frame */
    }
}

static void check_range(uint32_t offset, uint32_t n)
{
    if (offset > FUZZ_FLASH_SIZE || n > FUZZ_FLASH_SIZE - offset) abort();
}

bool plat_flash_read(uint32_t offset, uint8_t *out, uint32_t n)
{
    check_range(offset, n);
    memcpy(out, fuzz_flash + offset, n);
    return true;
}

bool plat_flash_write(uint32_t offset, const uint8_t *data, uint32_t n)
{
    check_range(offset, n);
    for (uint32_t i = 0; i < n; i++) {
        if (data[i] & (uint8_t)~fuzz_flash[offset + i]) abort();   /* a 0 -> 1 got through */
    }
    memcpy(fuzz_flash + offset, data, n);
    return true;
}

bool plat_flash_erase(uint32_t offset, uint32_t n)
{
    check_range(offset, n);
    memset(fuzz_flash + offset, 0xFF, n);
    return true;
}

bool plat_otp_read(uint32_t index, uint32_t *value)
{
    if (index >= FUZZ_OTP_WORDS) abort();
    *value = fuzz_otp[index];
    return true;
}

bool plat_otp_write(uint32_t index, uint32_t value)
{
    if (index >= FUZZ_OTP_WORDS || (fuzz_otp[index] & ~value) != 0) abort();  /* a bit cleared */
    fuzz_otp[index] = value;
    return true;
}

int64_t plat_uptime_us(void) { return 0; }
void plat_cause_changed(uint8_t cause) { (void)cause; }
void plat_wall_changed(int64_t wall_us) { (void)wall_us; }
void plat_reset(uint8_t cause) { (void)cause; }
