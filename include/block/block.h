/*
 * The block layer: disk images behind -drive (raw and qcow2), opened with
 * QEMU's options, format probing and image locking.  Thread-safe: device
 * models call bdrv_* from I/O worker threads concurrently; each image
 * serialises its own metadata updates.  Open/close on the main thread.
 */
#ifndef BLOCK_BLOCK_H
#define BLOCK_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <glib.h>

typedef struct BlockDriverState BlockDriverState;

typedef enum BlockCacheMode {
    BLOCK_CACHE_WRITEBACK,    /* default */
    BLOCK_CACHE_NONE,         /* O_DIRECT, writeback flushes */
    BLOCK_CACHE_WRITETHROUGH, /* flush after every write */
    BLOCK_CACHE_DIRECTSYNC,   /* O_DIRECT and writethrough */
    BLOCK_CACHE_UNSAFE,       /* flushes ignored */
} BlockCacheMode;

typedef struct BlockOptions {
    const char *filename;
    const char *format; /* "raw", "qcow2", or NULL to probe */
    bool read_only;
    BlockCacheMode cache;
    bool discard_unmap;  /* discard=unmap: pass guest discards down */
    bool auto_read_only; /* -drive's, or -blockdev auto-read-only=on */
    bool inactive;       /* -incoming: open unlocked and refuse writes
                            until bdrv_lock() (QEMU's inactive mode) */
} BlockOptions;

/*
 * Open an image (and its backing chain).  Errors are one line, e.g.
 * "Could not open 'x': No such file or directory", "Image is not in qcow2
 * format", "Failed to get \"write\" lock" with QEMU's hint.  A guessed raw
 * format prints QEMU's warning through warn_report.
 */
BlockDriverState *bdrv_open(const BlockOptions *opts, GError **errp);
void bdrv_close(BlockDriverState *bs);

/* Guest-visible size in bytes. */
uint64_t bdrv_getlength(BlockDriverState *bs);
/* I/O: 0 on success or -errno.  Ranges past the end give -EINVAL. */
int bdrv_preadv(BlockDriverState *bs, uint64_t offset, const struct iovec *iov,
                int iovcnt);
int bdrv_pwritev(BlockDriverState *bs, uint64_t offset, const struct iovec *iov,
                 int iovcnt);
int bdrv_pread(BlockDriverState *bs, uint64_t offset, void *buf, size_t len);
int bdrv_pwrite(BlockDriverState *bs, uint64_t offset, const void *buf, size_t len);
int bdrv_flush(BlockDriverState *bs);
int bdrv_discard(BlockDriverState *bs, uint64_t offset, uint64_t len);
int bdrv_write_zeroes(BlockDriverState *bs, uint64_t offset, uint64_t len,
                      bool may_unmap);

bool bdrv_is_read_only(BlockDriverState *bs);
const char *bdrv_format_name(BlockDriverState *bs); /* "raw", "qcow2" */
const char *bdrv_filename(BlockDriverState *bs);
/* The backing file's name as the image stores it, or NULL. */
const char *bdrv_backing_filename(BlockDriverState *bs);
BlockCacheMode bdrv_cache_mode(BlockDriverState *bs);

/*
 * What the requests of the node's user (the guest's device) did, as
 * QEMU's BlockAcctStats counts them: bytes, operations, failures and time
 * spent per kind (write zeroes count as writes, discards as unmaps).
 */
typedef struct BlockStats {
    uint64_t rd_bytes, wr_bytes, unmap_bytes;
    uint64_t rd_operations, wr_operations, flush_operations, unmap_operations;
    uint64_t failed_rd_operations, failed_wr_operations;
    uint64_t failed_flush_operations, failed_unmap_operations;
    uint64_t rd_total_time_ns, wr_total_time_ns, flush_total_time_ns;
    uint64_t unmap_total_time_ns;
    uint64_t wr_highest_offset;      /* end of the highest write to the node */
    uint64_t file_wr_highest_offset; /* the same in the host file below it */
    int64_t idle_time_ns;            /* since the last request ended; -1: none yet */
} BlockStats;

void bdrv_get_stats(BlockDriverState *bs, BlockStats *stats);
/* bdrv_flush for the VMM's own needs (a device going, migration): not counted. */
int bdrv_flush_unaccounted(BlockDriverState *bs);

/* The image file's allocated bytes (query-block's actual-size), or -errno. */
int64_t bdrv_actual_size(BlockDriverState *bs);

/*
 * Image locking, as QEMU does it (OFD locks on the image file): a writer
 * excludes other writers.  Migration drops the lock on the source at
 * switch-over and the destination takes it.
 */
bool bdrv_lock(BlockDriverState *bs, GError **errp);
void bdrv_unlock(BlockDriverState *bs);

#endif
