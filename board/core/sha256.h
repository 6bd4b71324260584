/* SHA-256 (FIPS 180-4), streaming, no heap. */
#ifndef BOARD_SHA256_H
#define BOARD_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_SIZE 32u

struct sha256 {
    uint32_t state[8];
    uint64_t length;      /* bytes hashed so far */
    uint8_t block[64];
    uint32_t used;        /* bytes waiting in block */
};

/* FIPS 180-4's K: the 64 round constants (also read by a platform's accelerated rounds). */
extern const uint32_t sha256_round_constants[64];

void sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const uint8_t *data, size_t n);
/* Writes the 32-byte digest; `h` must be initialised again before reuse. */
void sha256_final(struct sha256 *h, uint8_t digest[SHA256_SIZE]);

#endif
