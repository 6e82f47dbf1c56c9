/*
 * The raw format: guest bytes are file bytes.  When raw was guessed by
 * probing, a guest write that would make sector 0 look like another format
 * is refused with -EPERM, as QEMU does.  Thread-safe: positional I/O; the
 * sector-0 check holds bs->sector0_lock across its read and write.
 */
#include <string.h>

#include "block-int.h"
#include "util/error.h"

static bool raw_open(BlockDriverState *bs, GError **errp)
{
    int64_t size = block_file_length(bs->file);

    if (size < 0) {
        error_setg_errno(errp, (int)-size, "Could not get the size of '%s'",
                         bs->filename);
        return false;
    }
    bs->total_size = size;
    return true;
}

static void raw_close(BlockDriverState *bs)
{
}

static int raw_preadv(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                      const struct iovec *iov, int iovcnt)
{
    return block_file_preadv(bs->file, offset, iov, iovcnt);
}

/* Would sector 0, after this write, still probe as raw?  Caller holds
 * sector0_lock. */
static int raw_check_sector0(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                             const struct iovec *iov, int iovcnt)
{
    uint8_t sector[BDRV_PROBE_BUF_SIZE] = { 0 };
    size_t have = MIN(sizeof(sector), bs->total_size);
    size_t len = MIN(bytes, have - offset);
    int ret = 0;

    if (offset != 0 || len < have) {
        ret = block_file_pread(bs->file, 0, sector, have);
    }
    if (ret < 0) {
        return ret;
    }
    iov_to_buf(iov, iovcnt, 0, sector + offset, len);
    if (strcmp(block_probe_format(sector, have), "raw") != 0) {
        return -EPERM;
    }
    return 0;
}

static int raw_pwritev(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                       const struct iovec *iov, int iovcnt)
{
    int ret;

    if (!bs->probed_raw || offset >= BDRV_PROBE_BUF_SIZE) {
        return block_file_pwritev(bs->file, offset, iov, iovcnt);
    }
    pthread_mutex_lock(&bs->sector0_lock);
    ret = raw_check_sector0(bs, offset, bytes, iov, iovcnt);
    if (ret == 0) {
        ret = block_file_pwritev(bs->file, offset, iov, iovcnt);
    }
    pthread_mutex_unlock(&bs->sector0_lock);
    return ret;
}

static int raw_flush(BlockDriverState *bs)
{
    return block_file_flush(bs->file);
}

static int raw_discard(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    int ret = block_file_discard(bs->file, offset, bytes);

    /* Discard is a hint: a file system that cannot punch holes ignores it. */
    return ret == -ENOTSUP ? 0 : ret;
}

static int raw_write_zeroes(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                            bool may_unmap)
{
    return block_file_write_zeroes(bs->file, offset, bytes, may_unmap);
}

static int raw_inactivate(BlockDriverState *bs)
{
    return block_file_flush(bs->file);
}

static bool raw_activate(BlockDriverState *bs, GError **errp)
{
    return raw_open(bs, errp);
}

const BlockDriver bdrv_raw = {
    .format_name = "raw",
    .open = raw_open,
    .close = raw_close,
    .preadv = raw_preadv,
    .pwritev = raw_pwritev,
    .flush = raw_flush,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .inactivate = raw_inactivate,
    .activate = raw_activate,
};
