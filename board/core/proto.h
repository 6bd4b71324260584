/* The serial board protocol, version 1 (docs/serial-protocol.md): numbers only. */
#ifndef BOARD_PROTO_H
#define BOARD_PROTO_H

#define PROTO_VERSION 1u
#define HEADER_SIZE 9u        /* version, opcode, flags, u16 seq, u32 length */
#define CRC_SIZE 4u
#define FRAME_OVERHEAD 13u    /* HEADER_SIZE + CRC_SIZE */

#define MIN_PAYLOAD 512u      /* §3.1: the smallest max_payload a board may announce */
#define MAX_PAYLOAD 65600u    /* §3.1: the largest */
#define MAX_DATA 65536u       /* §3.1: FLASH_PROGRAM data / FLASH_READ length cap */
#define MAX_LOG_TEXT 61440u   /* §3.1: CONSOLE_LOG text cap */
#define HELLO_SIZE 46u       /* §6.1: 38 bytes, then f64 boot_monotonic */

enum slip_byte { SLIP_END = 0xC0, SLIP_ESC = 0xDB, SLIP_ESC_END = 0xDC, SLIP_ESC_ESC = 0xDD };

enum frame_flag {
    FLAG_REPLY = 0x01,
    FLAG_ERROR = 0x02,
    FLAG_UNSOLICITED = 0x04,
    FLAG_REBOOTED = 0x08,
};

enum opcode {
    OP_HELLO = 0x01, OP_PING = 0x02, OP_QUERY = 0x03, OP_STATS = 0x04,
    OP_FLASH_GEOMETRY = 0x10, OP_FLASH_READ = 0x11, OP_FLASH_PROGRAM = 0x12,
    OP_FLASH_ERASE = 0x13, OP_FLASH_HASH = 0x14,
    OP_OTP_WORD_COUNT = 0x20, OP_OTP_READ = 0x21, OP_OTP_BLOW = 0x22,
    OP_RESET_REQUEST = 0x30, OP_RESET_LAST_CAUSE = 0x31,
    OP_CLOCK_WALL = 0x40, OP_CLOCK_MONOTONIC = 0x41, OP_CLOCK_SLEEP = 0x42,
    OP_CONSOLE_LOG = 0x50, OP_CONSOLE_LINES = 0x51,
    OP_WATCHDOG_START = 0x60, OP_WATCHDOG_KICK = 0x61, OP_WATCHDOG_STOP = 0x62,
    OP_BOOT_BANNER = 0x70, OP_CONSOLE_LINE = 0x71,
};

enum error_code {
    ERR_NONE = 0x00,
    ERR_BAD_VERSION = 0x01, ERR_UNKNOWN_OPCODE = 0x02, ERR_BAD_LENGTH = 0x03,
    ERR_FLASH_RULE = 0x04, ERR_OUT_OF_RANGE = 0x05, ERR_BUSY = 0x06,
    ERR_POWER_LOSS = 0x07, ERR_BAD_ARGUMENT = 0x08, ERR_INTERNAL = 0x09,
};

enum reset_cause { CAUSE_POWER_ON = 0, CAUSE_SOFTWARE = 1, CAUSE_WATCHDOG = 2, CAUSE_POWER_LOSS = 3 };

enum query_answer { QUERY_NONE = 0, QUERY_KEPT = 1, QUERY_NOT_KEPT = 2 };

#define BOARD_FLAG_VIRTUAL_CLOCK 0x01u

#endif
