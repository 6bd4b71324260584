/* digests: the core's SHA-256 and CRC-32 over inputs from stdin, for tests/board to compare
 * with hashlib and zlib. Built with the platform's CPU instructions (BOARD_PLAT_ACCEL=1, as
 * the native agent) and without (the portable C, as the firmware).
 *
 * Input: records, each a u32 little-endian length and that many bytes. Output: first the line
 * `sha256 accel|portable crc32 accel|portable` (what this build and CPU use), then one line
 * per record: `SHA256 SHA256 CRC32 CRC32` in hex, each pair the whole record in one call, then
 * fed in pieces of pseudo-random sizes (a fixed sequence per record length). */
#include <stdio.h>
#include <stdlib.h>

#include "../core/crc32.h"
#include "../core/platform.h"
#include "../core/sha256.h"

/* The pieces' sizes: 1 .. `bound` from a small LCG, so runs are repeatable. */
static size_t next_piece(uint32_t *seed, size_t bound)
{
    *seed = *seed * 1664525u + 1013904223u;
    return 1u + (size_t)(*seed >> 8) % bound;
}

static void print_sha(const uint8_t digest[SHA256_SIZE])
{
    for (unsigned i = 0; i < SHA256_SIZE; i++) printf("%02x", digest[i]);
}

static void one_record(const uint8_t *data, size_t n)
{
    uint8_t whole[SHA256_SIZE], pieces[SHA256_SIZE];
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, data, n);
    sha256_final(&h, whole);
    sha256_init(&h);
    uint32_t crc = CRC32_INIT, seed = (uint32_t)n;
    /* Pieces up to 200 bytes for short records, so every block boundary falls inside one;
     * up to 100,000 for long ones. */
    size_t bound = n < 4096u ? 200u : 100000u;
    for (size_t done = 0; done < n;) {
        size_t step = next_piece(&seed, bound);
        if (step > n - done) step = n - done;
        sha256_update(&h, data + done, step);
        crc = crc32_update(crc, data + done, step);
        done += step;
    }
    sha256_final(&h, pieces);
    print_sha(whole);
    putchar(' ');
    print_sha(pieces);
    printf(" %08x %08x\n", (unsigned)crc32_update(CRC32_INIT, data, n), (unsigned)crc);
}

/* Whether the CPU's instructions are in use (the platform says so by doing the work). */
static void print_paths(void)
{
#if BOARD_PLAT_ACCEL
    static const uint8_t zeros[64];
    uint32_t state[8] = {0}, crc = 0;
    bool sha = plat_sha256_blocks(state, zeros, 1) == 1;
    bool clmul = plat_crc32(&crc, zeros, sizeof zeros) == sizeof zeros;
#else
    bool sha = false, clmul = false;
#endif
    printf("sha256 %s crc32 %s\n", sha ? "accel" : "portable", clmul ? "accel" : "portable");
}

int main(void)
{
    print_paths();
    for (uint8_t head[4]; fread(head, 1, 4, stdin) == 4;) {
        size_t n = head[0] | (size_t)head[1] << 8 | (size_t)head[2] << 16 | (size_t)head[3] << 24;
        uint8_t *data = malloc(n ? n : 1);
        if (data == NULL || fread(data, 1, n, stdin) != n) {
            fprintf(stderr, "digests: error: a record of %zu bytes ends early\n", n);
            return 2;
        }
        one_record(data, n);
        free(data);
    }
    return ferror(stdin) ? 2 : 0;
}
