/*
 * The migration stream's section checksum: XXH64 (seed 0), fed in pieces.
 * Written from the algorithm's description (four 64-bit lanes, 32-byte
 * stripes, multiply-rotate rounds): plain 64-bit loads and multiplies, with
 * no table and no vector unit, so that it stays cheap where the VMM itself
 * runs under instruction emulation (the nested rig's TCG L1), where zlib's
 * table-driven CRC-32 cost more per byte than the copy it protected.
 */
#include <string.h>

#include "migration-int.h"

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return GUINT64_FROM_LE(v);
}

static inline uint32_t load32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return GUINT32_FROM_LE(v);
}

static inline uint64_t round64(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static inline uint64_t merge64(uint64_t acc, uint64_t v)
{
    acc ^= round64(0, v);
    return acc * P1 + P4;
}

void mig_hash_init(MigHash *h)
{
    memset(h, 0, sizeof(*h));
    h->v[0] = P1 + P2;
    h->v[1] = P2;
    h->v[2] = 0;
    h->v[3] = -P1;
}

/* Whole stripes from p; returns the bytes consumed (a multiple of 32). */
static size_t stripes(MigHash *h, const uint8_t *p, size_t len)
{
    uint64_t v0 = h->v[0], v1 = h->v[1], v2 = h->v[2], v3 = h->v[3];
    size_t done = 0;

    for (; len - done >= 32; done += 32) {
        v0 = round64(v0, load64(p + done));
        v1 = round64(v1, load64(p + done + 8));
        v2 = round64(v2, load64(p + done + 16));
        v3 = round64(v3, load64(p + done + 24));
    }
    h->v[0] = v0;
    h->v[1] = v1;
    h->v[2] = v2;
    h->v[3] = v3;
    return done;
}

void mig_hash_update(MigHash *h, const void *data, size_t len)
{
    const uint8_t *p = data;

    if (!len) {
        return;
    }
    h->total += len;
    if (h->buffered) {
        size_t take = MIN(len, 32 - h->buffered);
        memcpy(h->buf + h->buffered, p, take);
        h->buffered += take;
        p += take;
        len -= take;
        if (h->buffered < 32) {
            return;
        }
        stripes(h, h->buf, 32);
        h->buffered = 0;
    }
    if (len >= 32) {
        size_t done = stripes(h, p, len);
        p += done;
        len -= done;
    }
    memcpy(h->buf, p, len);
    h->buffered = len;
}

/*
 * Copy and hash in one pass over src (a plain loop of 64-bit loads and
 * stores: under TCG, glibc's memcpy ran at a third of this loop's speed).
 * src is guest memory a vCPU may be writing: every byte of it is read
 * once, and what is hashed is what was stored in dst.  The partial stripes
 * at either end are hashed from dst; in the loop, the empty asm makes the
 * four loaded words opaque, so the compiler cannot load them from src a
 * second time for the hash.
 */
void mig_hash_copy(MigHash *h, void *dst, const void *src, size_t len)
{
    const uint8_t *s = src;
    uint8_t *d = dst;
    uint64_t v0, v1, v2, v3;

    if (h->buffered) {
        size_t take = MIN(len, 32 - h->buffered);
        memcpy(d, s, take);
        mig_hash_update(h, d, take);
        s += take;
        d += take;
        len -= take;
        if (h->buffered) {
            return; /* len is 0 */
        }
    }
    v0 = h->v[0];
    v1 = h->v[1];
    v2 = h->v[2];
    v3 = h->v[3];
    h->total += len & ~(size_t)31;
    for (; len >= 32; s += 32, d += 32, len -= 32) {
        uint64_t w0, w1, w2, w3;
        memcpy(&w0, s, 8);
        memcpy(&w1, s + 8, 8);
        memcpy(&w2, s + 16, 8);
        memcpy(&w3, s + 24, 8);
        __asm__("" : "+r"(w0), "+r"(w1), "+r"(w2), "+r"(w3));
        memcpy(d, &w0, 8);
        memcpy(d + 8, &w1, 8);
        memcpy(d + 16, &w2, 8);
        memcpy(d + 24, &w3, 8);
        v0 = round64(v0, GUINT64_FROM_LE(w0));
        v1 = round64(v1, GUINT64_FROM_LE(w1));
        v2 = round64(v2, GUINT64_FROM_LE(w2));
        v3 = round64(v3, GUINT64_FROM_LE(w3));
    }
    h->v[0] = v0;
    h->v[1] = v1;
    h->v[2] = v2;
    h->v[3] = v3;
    memcpy(d, s, len);
    mig_hash_update(h, d, len);
}

uint64_t mig_hash_final(const MigHash *h)
{
    const uint8_t *p = h->buf;
    size_t left = h->buffered;
    uint64_t acc;

    if (h->total >= 32) {
        acc = rotl64(h->v[0], 1) + rotl64(h->v[1], 7) + rotl64(h->v[2], 12) +
              rotl64(h->v[3], 18);
        for (int i = 0; i < 4; i++) {
            acc = merge64(acc, h->v[i]);
        }
    } else {
        acc = P5;
    }
    acc += h->total;
    for (; left >= 8; p += 8, left -= 8) {
        acc ^= round64(0, load64(p));
        acc = rotl64(acc, 27) * P1 + P4;
    }
    if (left >= 4) {
        acc ^= (uint64_t)load32(p) * P1;
        acc = rotl64(acc, 23) * P2 + P3;
        p += 4;
        left -= 4;
    }
    for (; left; p++, left--) {
        acc ^= *p * P5;
        acc = rotl64(acc, 11) * P1;
    }
    acc ^= acc >> 33;
    acc *= P2;
    acc ^= acc >> 29;
    acc *= P3;
    acc ^= acc >> 32;
    return acc;
}

uint64_t mig_hash(const void *data, size_t len)
{
    MigHash h;

    mig_hash_init(&h);
    mig_hash_update(&h, data, len);
    return mig_hash_final(&h);
}
