#include "sha256.h"

#include "config.h"
#include "platform.h"
#include "wire.h"

const uint32_t sha256_round_constants[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u,
};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* One round: the working variables rotate by renaming (the caller passes them shifted by
 * one each round), so nothing moves in memory. */
#define ROUND(a, b, c, d, e, f, g, h, k, w)                                                     \
    do {                                                                                        \
        uint32_t t1 = (h) + (rotr((e), 6) ^ rotr((e), 11) ^ rotr((e), 25)) +                    \
                      (((e) & (f)) ^ (~(e) & (g))) + (k) + (w);                                  \
        uint32_t t2 = (rotr((a), 2) ^ rotr((a), 13) ^ rotr((a), 22)) +                          \
                      (((a) & (b)) ^ ((a) & (c)) ^ ((b) & (c)));                                 \
        (d) += t1;                                                                              \
        (h) = t1 + t2;                                                                          \
    } while (0)

static void compress(uint32_t state[8], const uint8_t block[64])
{
    uint32_t w[64];
    for (unsigned i = 0; i < 16; i++) w[i] = get_be32(block + 4 * i);
    for (unsigned i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (unsigned i = 0; i < 64; i += 8) {
        ROUND(a, b, c, d, e, f, g, h, sha256_round_constants[i], w[i]);
        ROUND(h, a, b, c, d, e, f, g, sha256_round_constants[i + 1], w[i + 1]);
        ROUND(g, h, a, b, c, d, e, f, sha256_round_constants[i + 2], w[i + 2]);
        ROUND(f, g, h, a, b, c, d, e, sha256_round_constants[i + 3], w[i + 3]);
        ROUND(e, f, g, h, a, b, c, d, sha256_round_constants[i + 4], w[i + 4]);
        ROUND(d, e, f, g, h, a, b, c, sha256_round_constants[i + 5], w[i + 5]);
        ROUND(c, d, e, f, g, h, a, b, sha256_round_constants[i + 6], w[i + 6]);
        ROUND(b, c, d, e, f, g, h, a, sha256_round_constants[i + 7], w[i + 7]);
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

/* `count` whole blocks: the CPU's instructions where the platform lends them, else C. */
static void compress_blocks(uint32_t state[8], const uint8_t *blocks, size_t count)
{
#if BOARD_PLAT_ACCEL
    size_t done = plat_sha256_blocks(state, blocks, count);   /* the rest in C, if any */
    blocks += 64u * done;
    count -= done;
#endif
    for (; count > 0; count--, blocks += 64) compress(state, blocks);
}

void sha256_init(struct sha256 *h)
{
    static const uint32_t initial[8] = {
        0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
        0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
    };
    memcpy(h->state, initial, sizeof initial);
    h->length = 0;
    h->used = 0;
}

void sha256_update(struct sha256 *h, const uint8_t *data, size_t n)
{
    h->length += n;
    while (n > 0) {
        if (h->used == 0 && n >= 64u) {   /* whole blocks straight from the input */
            size_t whole = n & ~(size_t)63;
            compress_blocks(h->state, data, whole / 64u);
            data += whole;
            n -= whole;
            continue;
        }
        size_t take = 64u - h->used;
        if (take > n) take = n;
        memcpy(h->block + h->used, data, take);
        h->used += (uint32_t)take;
        data += take;
        n -= take;
        if (h->used == 64u) {
            compress_blocks(h->state, h->block, 1);
            h->used = 0;
        }
    }
}

void sha256_final(struct sha256 *h, uint8_t digest[SHA256_SIZE])
{
    uint64_t bits = h->length * 8u;
    static const uint8_t pad = 0x80;
    static const uint8_t zeros[64] = {0};
    sha256_update(h, &pad, 1);
    size_t fill = (h->used <= 56u) ? 56u - h->used : 120u - h->used;
    sha256_update(h, zeros, fill);
    uint8_t length_be[8];
    for (unsigned i = 0; i < 8; i++) length_be[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(h, length_be, 8);
    for (unsigned i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(h->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(h->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(h->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)h->state[i];
    }
}
