/*
 * Block layer internals shared by the block/ sources: the BlockDriverState, the
 * format driver table, the host file layer (file.c), QEMU-compatible image
 * locking (lock.c), format probing (probe.c) and scatter/gather helpers.
 */
#ifndef BLOCK_BLOCK_INT_H
#define BLOCK_BLOCK_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block/block.h"
#include "util/iov.h"

#define BDRV_SECTOR_SIZE 512

/* Rounding for power-of-two (ROUND_*) and any (DIV_ROUND_UP) divisors. */
#define ROUND_DOWN(n, d)   ((n) & -(uint64_t)(d))
#define ROUND_UP(n, d)     ROUND_DOWN((n) + (d)-1, (d))
#define DIV_ROUND_UP(n, d) (((n) + (d)-1) / (d))
/* Images in a chain, top included; more is refused (QEMU has no limit). */
#define BDRV_MAX_BACKING_DEPTH 32
/* How much of an image probing looks at (QEMU's BLOCK_PROBE_BUF_SIZE). */
#define BDRV_PROBE_BUF_SIZE 512

/* ---- host files (file.c); all I/O helpers are thread-safe ---- */

typedef struct BlockFile {
    int fd;
    char *filename;
    bool read_only;
    bool direct;   /* opened with O_DIRECT */
    bool no_flush; /* cache=unsafe: flushes are no-ops */
    bool is_blockdev;
    size_t align;               /* request and memory alignment, 1 when buffered */
    pthread_mutex_t rmw_lock;   /* serialises read-modify-write of partial blocks */
    int discard_ok;             /* 1 until PUNCH_HOLE is known not to work */
    int zero_range_ok;          /* 1 until ZERO_RANGE is known not to work */
    uint64_t wr_highest_offset; /* end of the highest write (atomic) */
    /* Image locking (lock.c): the permission bits whose bytes we hold. */
    uint64_t locked_perm;
    uint64_t locked_unshared;
} BlockFile;

/*
 * Open a host file for an image; errors read "Could not open 'F': why".
 * auto_read_only: QEMU opens such a file read-only first (a writer reopens
 * it), so through "/dev/fdset/N" a writable one needs a read-only member too.
 */
BlockFile *block_file_open(const char *filename, bool read_only, bool auto_read_only,
                           BlockCacheMode cache, GError **errp);
void block_file_close(BlockFile *file);
/* File size in bytes (block devices through BLKGETSIZE64), or -errno. */
int64_t block_file_length(BlockFile *file);
/* Full reads (short reads past end of file are zero-filled) and writes. */
int block_file_preadv(BlockFile *file, uint64_t offset, const struct iovec *iov,
                      int iovcnt);
int block_file_pwritev(BlockFile *file, uint64_t offset, const struct iovec *iov,
                       int iovcnt);
int block_file_pread(BlockFile *file, uint64_t offset, void *buf, size_t len);
int block_file_pwrite(BlockFile *file, uint64_t offset, const void *buf, size_t len);
/* fdatasync, unless cache=unsafe. */
int block_file_flush(BlockFile *file);
/* Deallocate a range (reads back as zeros); -ENOTSUP when impossible. */
int block_file_discard(BlockFile *file, uint64_t offset, uint64_t len);
/* Make a range read as zeros, by the cheapest means that works. */
int block_file_write_zeroes(BlockFile *file, uint64_t offset, uint64_t len,
                            bool may_unmap);
/* A zeroed buffer aligned for this file's I/O (and for O_DIRECT). */
void *block_file_alloc_buffer(BlockFile *file, size_t len);
void block_file_free_buffer(void *buf);

/* ---- image locking (lock.c), main thread only ---- */

/* Take QEMU's lock bytes for this file: read, plus write (and resize when
 * resizable) for a writer; refuse others' writers (and resizers). */
bool block_lock_take(BlockFile *file, bool writable, bool resizable, GError **errp);
void block_lock_release(BlockFile *file);

/* ---- format probing (probe.c) ---- */

/* The format the first bytes of an image look like: "qcow2", "raw", or
 * the name of a format this VMM does not support ("vmdk", "qcow", ...). */
const char *block_probe_format(const uint8_t *buf, size_t len);

/* ---- format drivers ---- */

typedef struct BlockDriver {
    const char *format_name;
    /* Set up bs->opaque, bs->total_size and bs->backing_file/format. */
    bool (*open)(BlockDriverState *bs, GError **errp);
    void (*close)(BlockDriverState *bs);
    int (*preadv)(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                  const struct iovec *iov, int iovcnt);
    int (*pwritev)(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                   const struct iovec *iov, int iovcnt);
    int (*flush)(BlockDriverState *bs);
    int (*discard)(BlockDriverState *bs, uint64_t offset, uint64_t bytes);
    int (*write_zeroes)(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                        bool may_unmap);
    /* Write back cached metadata before the lock is dropped (migration). */
    int (*inactivate)(BlockDriverState *bs);
    /* Re-read metadata another process may have changed while unlocked. */
    bool (*activate)(BlockDriverState *bs, GError **errp);
} BlockDriver;

extern const BlockDriver bdrv_raw;
extern const BlockDriver bdrv_qcow2;

struct BlockDriverState {
    const BlockDriver *drv;
    void *opaque; /* the driver's state */
    BlockFile *file;
    char *filename; /* as given (backing files: as resolved) */
    BlockCacheMode cache;
    bool read_only;
    bool discard_unmap;
    bool probed_raw; /* raw was guessed: guard sector 0 */
    bool inactive;   /* unlocked for migration: no writes */
    uint64_t total_size;
    char *backing_file;   /* as stored in the image, or NULL */
    char *backing_format; /* from the image's header, or NULL */
    BlockDriverState *backing;
    pthread_mutex_t sector0_lock; /* serialises the probed-raw check */
    pthread_mutex_t stats_lock;   /* guards stats */
    BlockStats stats;             /* idle_time_ns unused: last_access_ns */
    int64_t last_access_ns;       /* CLOCK_MONOTONIC; 0 before any request */
};

/* Raise *highest to end if below it (thread-safe). */
static inline void block_note_write_end(uint64_t *highest, uint64_t end)
{
    uint64_t cur = __atomic_load_n(highest, __ATOMIC_RELAXED);

    while (cur < end &&
           !__atomic_compare_exchange_n(highest, &cur, end, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
    }
}

/* True when cached metadata must reach the disk in order (not unsafe). */
static inline bool bdrv_barriers_enabled(BlockDriverState *bs)
{
    return bs->cache != BLOCK_CACHE_UNSAFE;
}

/* scatter/gather helpers: util/iov.h */

#endif
