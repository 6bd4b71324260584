#include "dispatch.h"

#include <stddef.h>

static const struct op_entry table[] = {
    {OP_HELLO, op_hello, 0, 0},
    {OP_PING, op_ping, 0, ANY_LENGTH},
    {OP_QUERY, op_query, 2, 2},
    {OP_STATS, op_stats, 0, 0},
    {OP_FLASH_GEOMETRY, op_flash_geometry, 0, 0},
    {OP_FLASH_READ, op_flash_read, 8, 8},
    {OP_FLASH_PROGRAM, op_flash_program, 4, ANY_LENGTH},
    {OP_FLASH_ERASE, op_flash_erase, 8, 8},
    {OP_FLASH_HASH, op_flash_hash, 8, 8},
    {OP_OTP_WORD_COUNT, op_otp_word_count, 0, 0},
    {OP_OTP_READ, op_otp_read, 4, 4},
    {OP_OTP_BLOW, op_otp_blow, 8, 8},
    {OP_RESET_REQUEST, op_reset_request, 1, 1},
    {OP_RESET_LAST_CAUSE, op_reset_last_cause, 0, 0},
    {OP_CLOCK_WALL, op_clock_wall, 0, 0},
    {OP_CLOCK_MONOTONIC, op_clock_monotonic, 0, 0},
    {OP_CLOCK_SLEEP, op_clock_sleep, 8, 8},
    {OP_CONSOLE_LOG, op_console_log, 0, ANY_LENGTH},
    {OP_CONSOLE_LINES, op_console_lines, 4, 4},
    {OP_WATCHDOG_START, op_watchdog_start, 8, 8},
    {OP_WATCHDOG_KICK, op_watchdog_kick, 0, 0},
    {OP_WATCHDOG_STOP, op_watchdog_stop, 0, 0},
};

const struct op_entry *dispatch_find(uint8_t opcode)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].opcode == opcode) return &table[i];
    }
    return NULL;
}
