/* The agent on QEMU's ast1030-evb (Cortex-M4): UART5 (16550) on interrupts, storage in the
 * host's device files through semihosting, time from SysTick, reset through AIRCR with the
 * persistent state in .noinit RAM. */
#include <string.h>

#include "../core/agent.h"
#include "../core/crc32.h"
#include "../core/isotime.h"
#include "../core/platform.h"
#include "../core/proto.h"
#include "../cortexm/board.h"
#include "../cortexm/cortexm.h"
#include "../cortexm/uart16550.h"
#include "options.h"
#include "semihost.h"
#include "ast1030.h"

#define TICKS_PER_US (CPU_HZ / 1000000u)
#define REBOOT_SILENCE_US 50000
#define PERSIST_MAGIC 0x424F4152u    /* "BOAR" */

/* What survives a reset: valid when magic and check match (QEMU zeroes RAM at start). */
struct noinit_state {
    uint32_t magic;
    struct board_persist persist;
    uint32_t check;
};

__attribute__((section(".noinit"))) static struct noinit_state kept;

static struct qemu_options options;
static struct board_config config;
static struct agent agent;
static uint8_t frame_buffer[FRAME_OVERHEAD + BOARD_PAYLOAD_CAPACITY];
static int flash_file = -1, otp_file = -1;
static char side_path[OPTION_PATH_MAX + 8];   /* FLASH and the longest suffix, ".reset" */
static volatile uint32_t systick_wraps;

void board_uart_isr(void) { uart_isr(); }
void board_tick_isr(void) { systick_wraps = systick_wraps + 1; }

/* Microseconds since this boot's SysTick start; never less than an earlier reading (a
 * counter read at a wrap, before its interrupt counted it, could otherwise go back 84 ms). */
int64_t plat_uptime_us(void)
{
    static int64_t latest;
    uint32_t wraps, value;
    do {   /* a wrap between the two reads: read again */
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps || (SYST_CSR & SYST_COUNTFLAG && value > SYSTICK_SPAN / 2));
    uint64_t ticks = (uint64_t)wraps * SYSTICK_SPAN + (SYSTICK_SPAN - 1u - value);
    int64_t now = (int64_t)(ticks / TICKS_PER_US);
    if (now > latest) latest = now;
    return latest;
}

void plat_send(const uint8_t *bytes, size_t n) { uart_send(bytes, n); }

bool plat_flash_read(uint32_t offset, uint8_t *out, uint32_t n)
{
    return sh_read_at(flash_file, offset, out, n);
}

bool plat_flash_write(uint32_t offset, const uint8_t *data, uint32_t n)
{
    return sh_write_at(flash_file, offset, data, n);
}

bool plat_flash_erase(uint32_t offset, uint32_t n)
{
    uint8_t erased[256];
    memset(erased, 0xFF, sizeof erased);
    for (uint32_t done = 0; done < n; done += sizeof erased) {
        uint32_t step = n - done < sizeof erased ? n - done : (uint32_t)sizeof erased;
        if (!plat_flash_write(offset + done, erased, step)) return false;
    }
    return true;
}

bool plat_otp_read(uint32_t index, uint32_t *value)
{
    uint8_t b[4];
    if (!sh_read_at(otp_file, index * 4u, b, 4)) return false;
    *value = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

bool plat_otp_write(uint32_t index, uint32_t value)
{
    uint8_t b[4] = {(uint8_t)value, (uint8_t)(value >> 8), (uint8_t)(value >> 16),
                    (uint8_t)(value >> 24)};
    return sh_write_at(otp_file, index * 4u, b, 4);
}

/* side_path = FLASH<suffix>. */
static void set_side_path(const char *suffix)
{
    size_t base = strlen(options.flash);
    memcpy(side_path, options.flash, base);
    strcpy(side_path + base, suffix);
}

/* Replaces the side file FLASH<suffix> with `text`, in place. */
static void write_side_file(const char *suffix, const char *text, size_t n)
{
    set_side_path(suffix);
    int handle = sh_open(side_path, SH_WRITE_BINARY);
    if (handle < 0) return;
    sh_write_at(handle, 0, text, n);
    sh_close(handle);
}

void plat_cause_changed(uint8_t cause)
{
    static const char *const names[] = {"POWER_ON       \n", "SOFTWARE       \n",
                                        "WATCHDOG       \n", "POWER_LOSS     \n"};
    write_side_file(".reset", names[cause & 3u], 16);
}

/* FLASH.clock, as the software machine saves it: written to DIR/.NAME.clock.tmp beside it,
 * then renamed over it, so it is never seen half written. */
void plat_wall_changed(int64_t wall_us)
{
    static char temp_path[sizeof side_path + 8];
    char text[ISOTIME_MAX + 1];
    unsigned n = isotime_format(wall_us, text);
    text[n++] = '\n';
    set_side_path(".clock");
    const char *slash = strrchr(side_path, '/');
    size_t folder = slash ? (size_t)(slash - side_path) + 1 : 0;
    memcpy(temp_path, side_path, folder);
    temp_path[folder] = '.';
    strcpy(temp_path + folder + 1, side_path + folder);
    strcat(temp_path, ".tmp");
    int handle = sh_open(temp_path, SH_WRITE_BINARY);
    if (handle < 0) return;
    bool written = sh_write_at(handle, 0, text, n);
    sh_close(handle);
    if (written) sh_rename(temp_path, side_path);
}

static uint32_t persist_check(void)
{
    return crc32_update(CRC32_INIT, (const uint8_t *)&kept.persist, sizeof kept.persist);
}

/* The reply is out: seal the persistent state and reset the core. */
void plat_reset(uint8_t cause)
{
    (void)cause;
    uart_drain_tx();
    kept.magic = PERSIST_MAGIC;
    kept.check = persist_check();
    cortexm_system_reset();
}

/* Sleeps (WFI) until something arrives or the SysTick wraps; wakes at least every 84 ms. */
static void idle(void) { uart5_idle(); }

/* The reboot silence: 50 ms with everything received dropped (§9). */
static void reboot_silence(void)
{
    uint8_t scrap[64];
    int64_t until = plat_uptime_us() + REBOOT_SILENCE_US;
    while (plat_uptime_us() < until) {
        while (uart_take(scrap, sizeof scrap) > 0) {}
        idle();
    }
    while (uart_take(scrap, sizeof scrap) > 0) {}
}

/* Says why on QEMU's stderr (run_qemu.py reports it) and stops. */
static _Noreturn void cannot_start(const char *why)
{
    sh_write0("board-agent: error: ");
    sh_write0(why);
    sh_write0("\n");
    for (;;) wait_for_interrupt();
}

/* The settings and the device files, or cannot_start. */
static void load_options(void)
{
    static char line[OPTION_PATH_MAX * 3 + 256];
    if (!sh_command_line(line, sizeof line) || !options_parse(line, &options) ||
        options.payload < MIN_PAYLOAD || options.payload > BOARD_PAYLOAD_CAPACITY ||
        options.window < 1 || options.window > 16 || options.sector == 0) {
        cannot_start("bad settings on the semihosting command line");
    }
    flash_file = sh_open(options.flash, SH_UPDATE_BINARY);
    set_side_path(".otp");
    otp_file = sh_open(side_path, SH_UPDATE_BINARY);
    if (flash_file < 0 || otp_file < 0) cannot_start("cannot open the flash or fuse file");
}

_Noreturn void board_main(void)
{
    systick_start();
    uart5_start();
    irq_enable();
    load_options();
    config = (struct board_config){
        .max_payload = options.payload, .window = (uint16_t)options.window, .baud = 0,
        .flash_size = options.size, .sector_size = options.sector, .page_size = options.page,
        .otp_words = options.otp, .banner = "sphere-fwmodel board agent (qemu ast1030-evb)",
    };
    agent_init(&agent, &config, &kept.persist, frame_buffer);
    if (kept.magic == PERSIST_MAGIC && kept.check == persist_check()) {
        reboot_silence();
        agent_boot(&agent);
    } else {
        agent_power_up(&agent, options.session, options.wall_us);
        sh_write0(QEMU_READY_LINE);   /* run_qemu.py names the port only now (ast1030.h) */
    }
    kept.magic = 0;   /* a fault before the next orderly reset is a power-up */
    uint8_t chunk[128];
    for (;;) {
        agent_tick(&agent);
        size_t n = uart_take(chunk, sizeof chunk);
        if (n > 0) agent_receive(&agent, chunk, n);
        else idle();
    }
}
