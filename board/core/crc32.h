/* CRC-32 (IEEE 802.3, zlib): reflected 0xEDB88320, init and final XOR 0xFFFFFFFF. */
#ifndef BOARD_CRC32_H
#define BOARD_CRC32_H

#include <stddef.h>
#include <stdint.h>

#define CRC32_INIT 0u

/* Continues `crc` (CRC32_INIT to start) over `n` bytes; crc32_update(0, "123456789", 9) is
 * 0xCBF43926, and crc32_update(crc32_update(0, a), b) is the CRC of a || b. */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t n);

#endif
