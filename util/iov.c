/*
 * Scatter/gather helpers (include/util/iov.h) for the block layer and the
 * virtio devices.  Pure functions, no locking.
 */
#include <stdint.h>
#include <string.h>

#include "util/iov.h"

size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t total = 0;

    for (int i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len;
    }
    return total;
}

/*
 * Walk the bytes [offset, offset + bytes) of an iovec array, calling fn on
 * each contiguous piece with the number of bytes already walked.
 */
typedef void (*IovPieceFn)(void *base, size_t len, size_t done, void *opaque);

static size_t iov_walk(const struct iovec *iov, int iovcnt, size_t offset, size_t bytes,
                       IovPieceFn fn, void *opaque)
{
    size_t done = 0;

    for (int i = 0; i < iovcnt && done < bytes; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t len = MIN(iov[i].iov_len - offset, bytes - done);
        if (!iov[i].iov_base) {
            break;
        }
        fn((uint8_t *)iov[i].iov_base + offset, len, done, opaque);
        done += len;
        offset = 0;
    }
    return done;
}

static void piece_memset(void *base, size_t len, size_t done, void *opaque)
{
    memset(base, *(int *)opaque, len);
}

void iov_memset(const struct iovec *iov, int iovcnt, size_t offset, int c, size_t bytes)
{
    iov_walk(iov, iovcnt, offset, bytes, piece_memset, &c);
}

static void piece_to_buf(void *base, size_t len, size_t done, void *opaque)
{
    memcpy((uint8_t *)opaque + done, base, len);
}

size_t iov_to_buf(const struct iovec *iov, int iovcnt, size_t offset, void *buf,
                  size_t bytes)
{
    return iov_walk(iov, iovcnt, offset, bytes, piece_to_buf, buf);
}

static void piece_from_buf(void *base, size_t len, size_t done, void *opaque)
{
    memcpy(base, (const uint8_t *)opaque + done, len);
}

size_t iov_from_buf(const struct iovec *iov, int iovcnt, size_t offset, const void *buf,
                    size_t bytes)
{
    return iov_walk(iov, iovcnt, offset, bytes, piece_from_buf, (void *)buf);
}

void iov_slice_init(IovSlice *slice, const struct iovec *iov, int iovcnt, size_t offset,
                    size_t bytes)
{
    int first = 0, n = 0;

    while (first < iovcnt && offset >= iov[first].iov_len) {
        offset -= iov[first++].iov_len;
    }
    slice->iov = slice->inline_iov;
    if (iovcnt - first > (int)G_N_ELEMENTS(slice->inline_iov)) {
        slice->iov = g_new(struct iovec, iovcnt - first);
    }
    for (int i = first; i < iovcnt && bytes > 0; i++) {
        size_t len = MIN(iov[i].iov_len - offset, bytes);

        if (len > 0) {
            slice->iov[n].iov_base = (uint8_t *)iov[i].iov_base + offset;
            slice->iov[n++].iov_len = len;
        }
        bytes -= len;
        offset = 0;
    }
    slice->iovcnt = n;
}

void iov_slice_destroy(IovSlice *slice)
{
    if (slice->iov != slice->inline_iov) {
        g_free(slice->iov);
    }
    slice->iov = NULL;
}
