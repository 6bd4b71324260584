/* The CPU's help for the core (platform.h, BOARD_PLAT_ACCEL): SHA-256 with the x86 SHA
 * extensions and CRC-32 by carry-less multiplication (PCLMULQDQ folding), each chosen at run
 * time from CPUID. Where the CPU lacks the instructions (or the host is not x86), each
 * function does nothing and says so; the core's portable C then does the work. The results
 * never differ: tests/board/test_board_digests.py checks both against hashlib and zlib. */
#include <stddef.h>
#include <stdint.h>

#include "../core/platform.h"
#include "../core/sha256.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

enum { HAVE_SHA = 1, HAVE_CLMUL = 2, KNOWN = 4 };

static unsigned features(void)
{
    static unsigned found;   /* 0 until asked; set once (only the main thread calls the core) */
    if (found == 0) {
        unsigned a, b, c, d;
        unsigned sse = __get_cpuid(1, &a, &b, &c, &d) ? c : 0u;
        bool ssse3_41 = (sse & bit_SSSE3) && (sse & bit_SSE4_1);
        bool sha = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
        found = KNOWN | (ssse3_41 && sha ? HAVE_SHA : 0u) |
                (ssse3_41 && (sse & bit_PCLMUL) ? HAVE_CLMUL : 0u);
    }
    return found;
}

/* The round constants K[4g..4g+3] (core/sha256.c's table). */
#define K4(g) _mm_loadu_si128((const __m128i *)(sha256_round_constants + 4 * (g)))
/* Four rounds on message words `m` (W[4g..4g+3]): two SHA256RNDS2, each two rounds. */
#define ROUNDS4(m, g)                                                                          \
    do {                                                                                       \
        __m128i wk = _mm_add_epi32((m), K4(g));                                                \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                                          \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));                 \
    } while (0)
/* The schedule: `next` (four words back, after MSG1) becomes the four words after `cur`. */
#define MSG2(next, cur, prev)                                                                  \
    next = _mm_sha256msg2_epu32(_mm_add_epi32((next), _mm_alignr_epi8((cur), (prev), 4)), (cur))
#define MSG1(prev, cur) prev = _mm_sha256msg1_epu32((prev), (cur))

__attribute__((target("sha,sse4.1,ssse3")))
static void sha256_ni(uint32_t state[8], const uint8_t *data, size_t count)
{
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)state);         /* a b c d (low first) */
    __m128i hgfe = _mm_loadu_si128((const __m128i *)(state + 4));   /* e f g h */
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    for (; count > 0; count--, data += 64) {
        __m128i abef_in = abef, cdgh_in = cdgh;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)data), swap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), swap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), swap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), swap);
        ROUNDS4(m0, 0);
        ROUNDS4(m1, 1); MSG1(m0, m1);
        ROUNDS4(m2, 2); MSG1(m1, m2);
        ROUNDS4(m3, 3); MSG2(m0, m3, m2); MSG1(m2, m3);
        ROUNDS4(m0, 4); MSG2(m1, m0, m3); MSG1(m3, m0);
        ROUNDS4(m1, 5); MSG2(m2, m1, m0); MSG1(m0, m1);
        ROUNDS4(m2, 6); MSG2(m3, m2, m1); MSG1(m1, m2);
        ROUNDS4(m3, 7); MSG2(m0, m3, m2); MSG1(m2, m3);
        ROUNDS4(m0, 8); MSG2(m1, m0, m3); MSG1(m3, m0);
        ROUNDS4(m1, 9); MSG2(m2, m1, m0); MSG1(m0, m1);
        ROUNDS4(m2, 10); MSG2(m3, m2, m1); MSG1(m1, m2);
        ROUNDS4(m3, 11); MSG2(m0, m3, m2); MSG1(m2, m3);
        ROUNDS4(m0, 12); MSG2(m1, m0, m3); MSG1(m3, m0);
        ROUNDS4(m1, 13); MSG2(m2, m1, m0);
        ROUNDS4(m2, 14); MSG2(m3, m2, m1);
        ROUNDS4(m3, 15);
        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)state, _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)(state + 4), _mm_alignr_epi8(dchg, feba, 8));
}

size_t plat_sha256_blocks(uint32_t state[8], const uint8_t *blocks, size_t count)
{
    if (!(features() & HAVE_SHA)) return 0;
    sha256_ni(state, blocks, count);
    return count;
}

/* CRC-32 folding (Intel, "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ",
 * 2009), the constants of its bit-reflected form for 0xEDB88320: x^(512+32) and x^(512-32)
 * mod P (four lanes of 128 bits), x^(128+32) and x^(128-32) (one lane), x^64, then P and
 * Barrett's mu. `crc` is the register (already inverted); `n` >= 64, a multiple of 16. */
__attribute__((target("pclmul,sse4.1")))
static uint32_t crc32_clmul(uint32_t crc, const uint8_t *p, size_t n)
{
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
    const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124LL);
    const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
    const __m128i low32 = _mm_setr_epi32(-1, 0, -1, 0);
    __m128i x1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)crc));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(p + 48));
    for (p += 64, n -= 64; n >= 64; p += 64, n -= 64) {   /* four lanes, 64 bytes a step */
        __m128i y1 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
        __m128i y2 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        __m128i y3 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
        __m128i y4 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
        x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, k1k2, 0x11), y1);
        x2 = _mm_xor_si128(_mm_clmulepi64_si128(x2, k1k2, 0x11), y2);
        x3 = _mm_xor_si128(_mm_clmulepi64_si128(x3, k1k2, 0x11), y3);
        x4 = _mm_xor_si128(_mm_clmulepi64_si128(x4, k1k2, 0x11), y4);
        x1 = _mm_xor_si128(x1, _mm_loadu_si128((const __m128i *)p));
        x2 = _mm_xor_si128(x2, _mm_loadu_si128((const __m128i *)(p + 16)));
        x3 = _mm_xor_si128(x3, _mm_loadu_si128((const __m128i *)(p + 32)));
        x4 = _mm_xor_si128(x4, _mm_loadu_si128((const __m128i *)(p + 48)));
    }
    /* Four lanes into one, then 16 bytes a step. */
    __m128i lanes[3] = {x2, x3, x4};
    for (unsigned i = 0; i < 3; i++) {
        __m128i lo = _mm_clmulepi64_si128(x1, k3k4, 0x00);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), lanes[i]), lo);
    }
    for (; n >= 16; p += 16, n -= 16) {
        __m128i lo = _mm_clmulepi64_si128(x1, k3k4, 0x00);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11),
                                         _mm_loadu_si128((const __m128i *)p)), lo);
    }
    /* 128 bits to 64, then 64 to 32 by Barrett reduction. */
    __m128i t = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), t);
    t = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k5, 0x00), t);
    t = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), poly, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), poly, 0x00);
    return (uint32_t)_mm_extract_epi32(_mm_xor_si128(x1, t), 1);
}

size_t plat_crc32(uint32_t *crc, const uint8_t *data, size_t n)
{
    size_t bulk = n & ~(size_t)15;
    if (bulk < 64 || !(features() & HAVE_CLMUL)) return 0;
    *crc = crc32_clmul(*crc, data, bulk);
    return bulk;
}

#else   /* not x86: nothing to offer, the core's portable code does it all */

size_t plat_sha256_blocks(uint32_t state[8], const uint8_t *blocks, size_t count)
{
    (void)state, (void)blocks, (void)count;
    return 0;
}

size_t plat_crc32(uint32_t *crc, const uint8_t *data, size_t n)
{
    (void)crc, (void)data, (void)n;
    return 0;
}

#endif
