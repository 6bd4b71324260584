/* The agent on the MT3620's real-time Cortex-M4F core (an RTApp): the ISU0 UART (16550
 * family) on interrupts, wired to an external 3.3 V USB-serial adapter; the flash and fuse
 * models in RAM (an RTApp has no writable flash), so they last until the app restarts; GPT3's
 * free-running microsecond counter as the clock; a soft reset in place. Builds and links
 * here; it has not run on a board. */
#include <string.h>

#include "../core/agent.h"
#include "../core/platform.h"
#include "../core/proto.h"
#include "../cortexm/board.h"
#include "../cortexm/cortexm.h"
#include "../cortexm/uart16550.h"

#define ISU0_UART_BASE 0x38070500u
#define ISU0_UART_IRQ 47u
#define GPT3_CTRL REG32(0x21030050u)
#define GPT3_INIT REG32(0x21030054u)
#define GPT3_COUNT REG32(0x21030058u)
#define GPT3_ENABLE_1US ((0x19u << 16) | 1u)   /* OSC_CNT_1US (default), enable */
#define REBOOT_SILENCE_US 50000

#define MODEL_FLASH_SIZE (64u * 1024u)
#define MODEL_SECTOR_SIZE 4096u
#define MODEL_PAGE_SIZE 256u
#define MODEL_OTP_WORDS 16u

/* The flash model fills SYSRAM (64 KiB); everything else lives in TCM. */
__attribute__((section(".sysram"))) static uint8_t model_flash[MODEL_FLASH_SIZE];
static uint32_t model_otp[MODEL_OTP_WORDS];

static const struct board_config config = {
    .max_payload = BOARD_PAYLOAD_CAPACITY, .window = 1, .baud = 115200,
    .flash_size = MODEL_FLASH_SIZE, .sector_size = MODEL_SECTOR_SIZE,
    .page_size = MODEL_PAGE_SIZE, .otp_words = MODEL_OTP_WORDS,
    .banner = "sphere-fwmodel board agent (mt3620 rt core)",
};
static struct board_persist persist;
static struct agent agent;
static uint8_t frame_buffer[FRAME_OVERHEAD + BOARD_PAYLOAD_CAPACITY];
static uint32_t gpt_last, gpt_wraps;
static int64_t uptime_origin;

void board_uart_isr(void) { uart_isr(); }

/* GPT3 wraps every 71 minutes: reading it at least every SysTick (85 ms) catches each wrap. */
static uint64_t gpt_microseconds(void)
{
    irq_disable();
    uint32_t now = GPT3_COUNT;
    if (now < gpt_last) gpt_wraps++;
    gpt_last = now;
    uint64_t us = ((uint64_t)gpt_wraps << 32) | now;
    irq_enable();
    return us;
}

void board_tick_isr(void) { (void)gpt_microseconds(); }

int64_t plat_uptime_us(void) { return (int64_t)gpt_microseconds() - uptime_origin; }

void plat_send(const uint8_t *bytes, size_t n) { uart_send(bytes, n); }

bool plat_flash_read(uint32_t offset, uint8_t *out, uint32_t n)
{
    memcpy(out, model_flash + offset, n);
    return true;
}

bool plat_flash_write(uint32_t offset, const uint8_t *data, uint32_t n)
{
    memcpy(model_flash + offset, data, n);
    return true;
}

bool plat_flash_erase(uint32_t offset, uint32_t n)
{
    memset(model_flash + offset, 0xFF, n);
    return true;
}

bool plat_otp_read(uint32_t index, uint32_t *value)
{
    *value = model_otp[index];
    return true;
}

bool plat_otp_write(uint32_t index, uint32_t value)
{
    model_otp[index] = value;
    return true;
}

void plat_cause_changed(uint8_t cause) { (void)cause; }   /* no device files on the board */
void plat_wall_changed(int64_t wall_us) { (void)wall_us; }

static void idle(void)
{
    irq_disable();
    if (!uart_pending()) wait_for_interrupt();
    irq_enable();
}

/* A soft reset: the reply is out, 50 ms of silence with the input dropped, the uptime starts
 * from 0 again; the core then boots in place (the RAM models survive, as flash would). */
void plat_reset(uint8_t cause)
{
    (void)cause;
    uint8_t scrap[64];
    uart_drain_tx();
    int64_t until = plat_uptime_us() + REBOOT_SILENCE_US;
    while (plat_uptime_us() < until) {
        while (uart_take(scrap, sizeof scrap) > 0) {}
        idle();
    }
    while (uart_take(scrap, sizeof scrap) > 0) {}
    uptime_origin += plat_uptime_us();
}

/* 115,200 bit/s 8N1 on the ISU UART's 26 MHz clock (MT3620 UART registers: LCR 0xBF opens
 * EFR, HIGHSPEED 3 with SAMPLE_COUNT/SAMPLE_POINT and the fractional divider). */
static void isu0_set_baud(void)
{
    REG32(ISU0_UART_BASE + 0x0Cu) = 0xBF;  /* LCR: divisor latch and enhanced registers */
    REG32(ISU0_UART_BASE + 0x08u) = 0x10;  /* EFR: enhanced features */
    REG32(ISU0_UART_BASE + 0x24u) = 0x3;   /* HIGHSPEED */
    REG32(ISU0_UART_BASE + 0x04u) = 0;     /* DLM */
    REG32(ISU0_UART_BASE + 0x00u) = 1;     /* DLL */
    REG32(ISU0_UART_BASE + 0x28u) = 224;   /* SAMPLE_COUNT */
    REG32(ISU0_UART_BASE + 0x2Cu) = 110;   /* SAMPLE_POINT */
    REG32(ISU0_UART_BASE + 0x58u) = 0;     /* FRACDIV_M */
    REG32(ISU0_UART_BASE + 0x54u) = 223;   /* FRACDIV_L */
}

/* No hardware entropy on the RT core's side: the counters at start-up are what varies. */
static uint32_t new_session(void)
{
    return GPT3_COUNT * 2654435761u ^ SYST_CVR ^ (uint32_t)(uintptr_t)&agent;
}

_Noreturn void board_main(void)
{
    GPT3_INIT = 0;
    GPT3_CTRL = GPT3_ENABLE_1US;
    SYST_RVR = (1u << 24) - 1u;
    SYST_CVR = 0;
    SYST_CSR = SYST_ENABLE_TICKINT_CPUCLK;
    uptime_origin = (int64_t)gpt_microseconds();
    memset(model_flash, 0xFF, sizeof model_flash);
    isu0_set_baud();
    uart_start(ISU0_UART_BASE, 0x97);   /* FIFOs on and cleared, RX trigger 12, TX trigger 4 */
    nvic_enable(ISU0_UART_IRQ);
    irq_enable();
    agent_init(&agent, &config, &persist, frame_buffer);
    agent_power_up(&agent, new_session(), 1738368000LL * 1000000);
    uint8_t chunk[128];
    for (;;) {
        agent_tick(&agent);
        size_t n = uart_take(chunk, sizeof chunk);
        if (n > 0) agent_receive(&agent, chunk, n);
        else idle();
    }
}
