/*
 * Little-endian writers and a bounds-checked reader for the device-state
 * blobs that PCI and virtio devices hand to migration.  No locking: the
 * caller owns the buffer.  A read past the end sets `error` and yields 0,
 * so a parser checks once at the end.
 */
#ifndef HW_PCI_STATE_BLOB_H
#define HW_PCI_STATE_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <glib.h>

static inline void blob_put_u8(GByteArray *out, uint8_t v)
{
    g_byte_array_append(out, &v, 1);
}

static inline void blob_put_u16(GByteArray *out, uint16_t v)
{
    uint8_t b[2] = { v, v >> 8 };

    g_byte_array_append(out, b, 2);
}

static inline void blob_put_u32(GByteArray *out, uint32_t v)
{
    blob_put_u16(out, v);
    blob_put_u16(out, v >> 16);
}

static inline void blob_put_u64(GByteArray *out, uint64_t v)
{
    blob_put_u32(out, v);
    blob_put_u32(out, v >> 32);
}

static inline void blob_put_bytes(GByteArray *out, const void *p, size_t len)
{
    g_byte_array_append(out, p, len);
}

typedef struct StateReader {
    const uint8_t *buf;
    size_t len, pos;
    bool error;
} StateReader;

static inline void state_reader_init(StateReader *r, const uint8_t *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->error = false;
}

/* The next len bytes, or NULL (and error set) when fewer remain. */
static inline const uint8_t *blob_take(StateReader *r, size_t len)
{
    const uint8_t *p;

    if (r->error || len > r->len - r->pos) {
        r->error = true;
        return NULL;
    }
    p = r->buf + r->pos;
    r->pos += len;
    return p;
}

static inline uint8_t blob_get_u8(StateReader *r)
{
    const uint8_t *p = blob_take(r, 1);

    return p ? p[0] : 0;
}

static inline uint16_t blob_get_u16(StateReader *r)
{
    const uint8_t *p = blob_take(r, 2);

    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

static inline uint32_t blob_get_u32(StateReader *r)
{
    uint32_t lo = blob_get_u16(r);

    return lo | (uint32_t)blob_get_u16(r) << 16;
}

static inline uint64_t blob_get_u64(StateReader *r)
{
    uint64_t lo = blob_get_u32(r);

    return lo | (uint64_t)blob_get_u32(r) << 32;
}

static inline bool blob_get_bytes(StateReader *r, void *dst, size_t len)
{
    const uint8_t *p = blob_take(r, len);

    if (p) {
        memcpy(dst, p, len);
    }
    return p != NULL;
}

/* True when every byte was consumed and no read overran. */
static inline bool blob_done(const StateReader *r)
{
    return !r->error && r->pos == r->len;
}

#endif
