/* Compile-time sizes of the agent's static memory. A platform overrides them with -D. */
#ifndef BOARD_CONFIG_H
#define BOARD_CONFIG_H

/* The largest max_payload this build can announce: the receive buffer holds 13 + this. */
#ifndef BOARD_PAYLOAD_CAPACITY
#define BOARD_PAYLOAD_CAPACITY 65600u
#endif

/* Reply cache entries (§5: at least 64 and at least 4 × window). */
#ifndef BOARD_CACHE_ENTRIES
#define BOARD_CACHE_ENTRIES 64u
#endif

/* Reply payload bytes a cache entry keeps: enough for every error reply this agent sends;
 * longer replies (all of idempotent requests, the 46-byte HELLO among them) are not kept (§5). */
#ifndef BOARD_CACHE_KEEP
#define BOARD_CACHE_KEEP 40u
#endif

/* Console lines kept (§6.3: at least 64) and the bytes kept of each line. */
#ifndef BOARD_CONSOLE_LINES
#define BOARD_CONSOLE_LINES 64u
#endif
#ifndef BOARD_CONSOLE_LINE_MAX
#define BOARD_CONSOLE_LINE_MAX 96u
#endif

/* CRC-32 table: 8 (1 KiB, one look-up per byte) or 4 (64 bytes, two look-ups per byte). */
#ifndef BOARD_CRC32_TABLE_BITS
#define BOARD_CRC32_TABLE_BITS 8
#endif

/* 1: the platform lends the CPU's instructions for SHA-256 and CRC-32 (platform.h). */
#ifndef BOARD_PLAT_ACCEL
#define BOARD_PLAT_ACCEL 0
#endif

/* Flash bytes handled per step when a request walks a range (stack buffer). */
#ifndef BOARD_FLASH_CHUNK
#define BOARD_FLASH_CHUNK 256u
#endif

#endif
