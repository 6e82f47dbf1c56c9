/*
 * Scatter/gather helpers shared by the block layer and the virtio devices:
 * sizes, copies in and out of iovec arrays, and windows onto them.  Pure
 * functions, no locking.  A NULL base ends a walk (nothing is mapped there).
 */
#ifndef UTIL_IOV_H
#define UTIL_IOV_H

#include <stddef.h>
#include <sys/uio.h>
#include <glib.h>

size_t iov_total(const struct iovec *iov, int iovcnt);
void iov_memset(const struct iovec *iov, int iovcnt, size_t offset, int c, size_t bytes);
size_t iov_to_buf(const struct iovec *iov, int iovcnt, size_t offset, void *buf,
                  size_t bytes);
size_t iov_from_buf(const struct iovec *iov, int iovcnt, size_t offset, const void *buf,
                    size_t bytes);

/* A window [offset, offset + bytes) of an iovec array, as an iovec array. */
typedef struct IovSlice {
    struct iovec *iov;
    int iovcnt;
    struct iovec inline_iov[8];
} IovSlice;

void iov_slice_init(IovSlice *slice, const struct iovec *iov, int iovcnt, size_t offset,
                    size_t bytes);
void iov_slice_destroy(IovSlice *slice);

#endif
