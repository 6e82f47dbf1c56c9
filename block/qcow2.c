/*
 * The qcow2 format driver (versions 2 and 3): open and close, the driver
 * table, flush, write-zeroes and discard, and migration's metadata
 * hand-over.  Locking: see block/qcow2.h (s->lock for metadata, free_lock
 * for unlocked data I/O); open/close/activate run on the main thread.
 */
#include <string.h>

#include "qcow2.h"
#include "util/error.h"

#define L2_CACHE_MAX_BYTES  (32u * 1024 * 1024)
#define L2_CACHE_MAX_TABLES 1024
#define ZERO_CHUNK          (1024 * 1024)

static void qcow2_free_state(Qcow2State *s)
{
    if (!s) {
        return;
    }
    qcow2_cache_free(s->l2_cache);
    qcow2_cache_free(s->refblock_cache);
    if (s->meta) {
        g_hash_table_destroy(s->meta);
    }
    g_free(s->l1_table);
    g_free(s->reftable);
    g_free(s->backing_file);
    g_free(s->backing_format);
    g_free(s->zcache_data);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->zcache_lock);
    pthread_rwlock_destroy(&s->free_lock);
    g_free(s);
}

static void qcow2_create_caches(Qcow2State *s)
{
    uint64_t per_table = s->cluster_size << s->l2_bits;
    uint64_t needed = s->size / per_table + 1;
    uint64_t max = MIN(L2_CACHE_MAX_TABLES, L2_CACHE_MAX_BYTES / s->cluster_size);
    int l2_tables = CLAMP(needed, MIN(16, max), max);

    s->l2_cache = qcow2_cache_new(s, l2_tables, QCOW2_META_L2);
    s->refblock_cache = qcow2_cache_new(s, CLAMP(l2_tables / 4, 8, 256),
                                        QCOW2_META_REFBLOCK);
}

/* Read and check everything; on success s is ready for I/O. */
static Qcow2State *qcow2_load(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = g_new0(Qcow2State, 1);
    int ret;

    s->bs = bs;
    s->file = bs->file;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->zcache_lock, NULL);
    pthread_rwlock_init(&s->free_lock, NULL);
    s->meta = g_hash_table_new(g_direct_hash, g_direct_equal);
    if (!qcow2_read_header(s, errp)) {
        goto fail;
    }
    s->refblock_bits = s->cluster_bits + 3 - s->refcount_order;
    s->csize_shift = 62 - (s->cluster_bits - 8);
    s->csize_mask = (1ull << (s->cluster_bits - 8)) - 1;
    s->coffset_mask = (1ull << s->csize_shift) - 1;
    if (!qcow2_load_tables(s, errp)) {
        goto fail;
    }
    qcow2_create_caches(s);
    if (!bs->read_only && !bs->inactive) {
        ret = qcow2_clear_autoclear(s);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            goto fail;
        }
    }
    return s;

fail:
    qcow2_free_state(s);
    return NULL;
}

static bool qcow2_open(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s = qcow2_load(bs, errp);

    if (!s) {
        return false;
    }
    bs->opaque = s;
    bs->total_size = s->size;
    bs->backing_file = g_strdup(s->backing_file);
    bs->backing_format = g_strdup(s->backing_format);
    return true;
}

/* Write every dirty table, refcounts first, then sync the file. */
static int qcow2_flush_locked(Qcow2State *s)
{
    int ret = qcow2_cache_write(s->l2_cache);
    int ret2 = qcow2_cache_write(s->refblock_cache);

    if (ret == 0) {
        ret = ret2;
    }
    return ret < 0 ? ret : qcow2_barrier(s);
}

static int qcow2_flush(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;
    int ret;

    pthread_mutex_lock(&s->lock);
    ret = qcow2_flush_locked(s);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static void qcow2_close(BlockDriverState *bs)
{
    Qcow2State *s = bs->opaque;

    if (s && !bs->read_only && !bs->inactive) {
        qcow2_flush(bs);
    }
    qcow2_free_state(s);
    bs->opaque = NULL;
}

static int qcow2_preadv(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                        const struct iovec *iov, int iovcnt)
{
    return qcow2_read(bs->opaque, offset, bytes, iov, iovcnt);
}

static int qcow2_pwritev(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                         const struct iovec *iov, int iovcnt)
{
    return qcow2_write(bs->opaque, offset, bytes, iov, iovcnt);
}

/* Write real zero bytes through the normal write path. */
static int write_zero_bytes(Qcow2State *s, uint64_t offset, uint64_t bytes)
{
    uint8_t *zeroes = g_malloc0(MIN(MAX(bytes, 1), ZERO_CHUNK));
    int ret = 0;

    while (bytes > 0 && ret == 0) {
        uint64_t chunk = MIN(bytes, ZERO_CHUNK);
        struct iovec iov = { zeroes, chunk };

        ret = qcow2_write(s, offset, chunk, &iov, 1);
        offset += chunk;
        bytes -= chunk;
    }
    g_free(zeroes);
    return ret;
}

/* The whole clusters of a request; a request that runs to the end of the
 * disk also covers the last, partial cluster. */
static void whole_clusters(Qcow2State *s, uint64_t offset, uint64_t bytes,
                           uint64_t *start, uint64_t *end)
{
    *start = ROUND_UP(offset, s->cluster_size);
    *end = offset + bytes == s->size ? ROUND_UP(s->size, s->cluster_size)
                                     : ROUND_DOWN(offset + bytes, s->cluster_size);
    if (*end < *start) {
        *end = *start;
    }
}

static int zero_clusters(Qcow2State *s, uint64_t start, uint64_t end, bool may_unmap)
{
    int ret;

    if (s->version < 3 && (s->bs->backing || !may_unmap)) {
        return write_zero_bytes(s, start, MIN(end, s->size) - start);
    }
    pthread_mutex_lock(&s->lock);
    /* v2 without a backing file: unallocated clusters read as zeros. */
    ret = qcow2_zero_or_discard(s, start, end - start, s->version < 3, may_unmap);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static int qcow2_write_zeroes(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                              bool may_unmap)
{
    Qcow2State *s = bs->opaque;
    uint64_t start, end;
    int ret = 0;

    whole_clusters(s, offset, bytes, &start, &end);
    if (start >= end) {
        return write_zero_bytes(s, offset, bytes);
    }
    if (offset < start) {
        ret = write_zero_bytes(s, offset, start - offset);
    }
    if (ret == 0) {
        ret = zero_clusters(s, start, end, may_unmap);
    }
    if (ret == 0 && end < offset + bytes) {
        ret = write_zero_bytes(s, end, offset + bytes - end);
    }
    return ret;
}

static int qcow2_discard(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    Qcow2State *s = bs->opaque;
    uint64_t start, end;
    int ret;

    whole_clusters(s, offset, bytes, &start, &end);
    if (start >= end) {
        return 0; /* partial clusters: nothing to free */
    }
    pthread_mutex_lock(&s->lock);
    ret = qcow2_zero_or_discard(s, start, end - start, true, true);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static int qcow2_inactivate(BlockDriverState *bs)
{
    return bs->read_only ? 0 : qcow2_flush(bs);
}

/* Another process may have written the image while we were inactive:
 * forget every cached table and read the image again. */
static bool qcow2_activate(BlockDriverState *bs, GError **errp)
{
    Qcow2State *s;

    bs->inactive = false;
    s = qcow2_load(bs, errp);
    if (!s) {
        bs->inactive = true;
        return false;
    }
    qcow2_free_state(bs->opaque);
    bs->opaque = s;
    bs->total_size = s->size;
    return true;
}

const BlockDriver bdrv_qcow2 = {
    .format_name = "qcow2",
    .open = qcow2_open,
    .close = qcow2_close,
    .preadv = qcow2_preadv,
    .pwritev = qcow2_pwritev,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .inactivate = qcow2_inactivate,
    .activate = qcow2_activate,
};
