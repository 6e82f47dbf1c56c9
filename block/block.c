/*
 * The generic block layer: bdrv_open with QEMU's -drive semantics (format
 * probing, backing chains, locking), request checks, cache-mode flushes and
 * migration's lock hand-over.  Open/close/lock run on the main thread; the
 * I/O entry points are thread-safe and leave locking to the format drivers.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "block-int.h"
#include "util/error.h"
#include "util/fdset.h"

/* The images already open in one chain, to refuse loops. */
typedef struct BackingChain {
    dev_t dev[BDRV_MAX_BACKING_DEPTH];
    ino_t ino[BDRV_MAX_BACKING_DEPTH];
    int depth;
} BackingChain;

static BlockDriverState *open_node(const char *filename, const char *format,
                                   bool read_only, const BlockOptions *opts,
                                   BackingChain *chain, GError **errp);

static const BlockDriver *find_driver(const char *format)
{
    if (strcmp(format, "raw") == 0) {
        return &bdrv_raw;
    }
    if (strcmp(format, "qcow2") == 0) {
        return &bdrv_qcow2;
    }
    return NULL;
}

/* Pick the driver: the one named, or the one the first bytes suggest. */
static const BlockDriver *choose_driver(BlockFile *file, const char *format, bool *probed,
                                        GError **errp)
{
    uint8_t buf[BDRV_PROBE_BUF_SIZE] = { 0 };
    int64_t size;
    const char *guess;
    int ret;

    *probed = format == NULL;
    if (format) {
        const BlockDriver *drv = find_driver(format);

        if (!drv) {
            error_setg(errp, "Unknown driver '%s'", format);
        }
        return drv;
    }
    size = block_file_length(file);
    ret = size < 0 ? (int)size : block_file_pread(file, 0, buf, sizeof(buf));
    if (ret < 0) {
        error_setg_errno(errp, -ret,
                         "Could not read image for determining its "
                         "format");
        return NULL;
    }
    guess = block_probe_format(buf, MIN((uint64_t)size, sizeof(buf)));
    if (!find_driver(guess)) {
        error_setg(errp, "Image format '%s' (probed) is not supported", guess);
    }
    return find_driver(guess);
}

static void warn_probed_raw(const char *filename)
{
    /* QEMU 7.2 prints this with a plain fprintf, prefix and indent included. */
    fprintf(stderr,
            "WARNING: Image format was not specified for '%s' and probing "
            "guessed raw.\n"
            "         Automatically detecting the format is dangerous for raw "
            "images, write operations on block 0 will be restricted.\n"
            "         Specify the 'raw' format explicitly to remove the "
            "restrictions.\n",
            filename);
}

/*
 * Where a backing file name points: absolute names as they are, relative
 * ones against the directory of the image naming them (QEMU's rule); a
 * "file:" prefix is dropped and other protocols are refused.
 */
static char *resolve_backing_path(const char *image, const char *backing, GError **errp)
{
    const char *colon = strchr(backing, ':');
    const char *slash = strchr(backing, '/');
    g_autofree char *dir = NULL;

    if (g_str_has_prefix(backing, "file:")) {
        backing += strlen("file:");
    } else if (colon && (!slash || colon < slash)) {
        error_setg(errp, "Unsupported backing file protocol in '%s'", backing);
        return NULL;
    }
    if (backing[0] == '/' || !strchr(image, '/')) {
        return g_strdup(backing);
    }
    dir = g_path_get_dirname(image);
    return g_build_filename(dir, backing, NULL);
}

/* Refuse a backing file already in the chain, or a chain too deep. */
static bool chain_add(BackingChain *chain, const char *path, GError **errp)
{
    struct stat st;

    if (fdset_is_name(path)) {
        return true; /* a passed descriptor: opening it tells the rest */
    }
    if (stat(path, &st) < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", path);
        return false;
    }
    for (int i = 0; i < chain->depth; i++) {
        if (chain->dev[i] == st.st_dev && chain->ino[i] == st.st_ino) {
            error_setg(errp, "Backing chain loop: '%s' is already in the chain", path);
            return false;
        }
    }
    if (chain->depth == BDRV_MAX_BACKING_DEPTH) {
        error_setg(errp, "Backing chain is longer than %d images",
                   BDRV_MAX_BACKING_DEPTH);
        return false;
    }
    chain->dev[chain->depth] = st.st_dev;
    chain->ino[chain->depth++] = st.st_ino;
    return true;
}

static bool open_backing(BlockDriverState *bs, const BlockOptions *opts,
                         BackingChain *chain, GError **errp)
{
    GError *err = NULL;
    g_autofree char *path = resolve_backing_path(bs->filename, bs->backing_file, &err);

    if (path && chain_add(chain, path, &err)) {
        bs->backing = open_node(path, bs->backing_format, true, opts, chain, &err);
    }
    if (!bs->backing) {
        if (g_str_has_prefix(err->message, "Could not open backing file: ")) {
            g_propagate_error(errp, err);
        } else {
            g_propagate_prefixed_error(errp, err, "Could not open backing file: ");
        }
        return false;
    }
    return true;
}

static BlockDriverState *open_node(const char *filename, const char *format,
                                   bool read_only, const BlockOptions *opts,
                                   BackingChain *chain, GError **errp)
{
    BlockDriverState *bs = g_new0(BlockDriverState, 1);
    bool probed;

    bs->filename = g_strdup(filename);
    bs->read_only = read_only;
    bs->cache = opts->cache;
    bs->discard_unmap = opts->discard_unmap;
    bs->inactive = opts->inactive;
    pthread_mutex_init(&bs->sector0_lock, NULL);
    pthread_mutex_init(&bs->stats_lock, NULL);
    bs->file = block_file_open(filename, read_only, opts->auto_read_only, opts->cache,
                               errp);
    if (!bs->file) {
        goto fail;
    }
    bs->drv = choose_driver(bs->file, format, &probed, errp);
    if (!bs->drv) {
        goto fail;
    }
    bs->probed_raw = probed && bs->drv == &bdrv_raw;
    if (!bs->inactive &&
        !block_lock_take(bs->file, !read_only, bs->drv == &bdrv_qcow2, errp)) {
        goto fail;
    }
    if (!bs->drv->open(bs, errp)) {
        bs->drv = NULL;
        goto fail;
    }
    if (bs->probed_raw && !read_only) {
        warn_probed_raw(filename);
    }
    if (bs->backing_file && !open_backing(bs, opts, chain, errp)) {
        goto fail;
    }
    return bs;

fail:
    bdrv_close(bs);
    return NULL;
}

BlockDriverState *bdrv_open(const BlockOptions *opts, GError **errp)
{
    BackingChain chain = { .depth = 0 };

    if (!opts->filename || !opts->filename[0]) {
        error_setg(errp, "A block device must be specified for \"file\"");
        return NULL;
    }
    if (!chain_add(&chain, opts->filename, errp)) {
        return NULL;
    }
    return open_node(opts->filename, opts->format, opts->read_only, opts, &chain, errp);
}

void bdrv_close(BlockDriverState *bs)
{
    if (!bs) {
        return;
    }
    if (bs->drv) {
        bs->drv->close(bs);
    }
    bdrv_close(bs->backing);
    block_file_close(bs->file);
    pthread_mutex_destroy(&bs->sector0_lock);
    pthread_mutex_destroy(&bs->stats_lock);
    g_free(bs->filename);
    g_free(bs->backing_file);
    g_free(bs->backing_format);
    g_free(bs);
}

uint64_t bdrv_getlength(BlockDriverState *bs)
{
    return bs->total_size;
}

static int check_range(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    if (offset > bs->total_size || bytes > bs->total_size - offset) {
        return -EINVAL;
    }
    return 0;
}

static int check_write(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    if (bs->read_only || bs->inactive) {
        return -EPERM;
    }
    return check_range(bs, offset, bytes);
}

/* Writethrough and directsync: make every completed write stable. */
static int write_done(BlockDriverState *bs, int ret)
{
    if (ret == 0 &&
        (bs->cache == BLOCK_CACHE_WRITETHROUGH || bs->cache == BLOCK_CACHE_DIRECTSYNC)) {
        ret = bs->drv->flush(bs);
    }
    return ret;
}

/* ---- accounting (QEMU's block_acct_start/done/failed) ---- */

typedef enum BlockAcctKind {
    BLOCK_ACCT_READ,
    BLOCK_ACCT_WRITE,
    BLOCK_ACCT_FLUSH,
    BLOCK_ACCT_UNMAP,
} BlockAcctKind;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One request of kind that began at start_ns ended with ret. */
static int block_account(BlockDriverState *bs, BlockAcctKind kind, uint64_t bytes,
                         int64_t start_ns, int ret)
{
    int64_t end_ns = now_ns();
    uint64_t elapsed = end_ns > start_ns ? (uint64_t)(end_ns - start_ns) : 0;
    BlockStats *st = &bs->stats;
    uint64_t *ops[] = { &st->rd_operations, &st->wr_operations, &st->flush_operations,
                        &st->unmap_operations };
    uint64_t *failed[] = { &st->failed_rd_operations, &st->failed_wr_operations,
                           &st->failed_flush_operations, &st->failed_unmap_operations };
    uint64_t *time[] = { &st->rd_total_time_ns, &st->wr_total_time_ns,
                         &st->flush_total_time_ns, &st->unmap_total_time_ns };
    uint64_t *byte_count[] = { &st->rd_bytes, &st->wr_bytes, NULL, &st->unmap_bytes };

    pthread_mutex_lock(&bs->stats_lock);
    if (ret < 0) {
        (*failed[kind])++;
    } else {
        (*ops[kind])++;
        *time[kind] += elapsed;
        if (byte_count[kind]) {
            *byte_count[kind] += bytes;
        }
    }
    bs->last_access_ns = end_ns;
    pthread_mutex_unlock(&bs->stats_lock);
    return ret;
}

void bdrv_get_stats(BlockDriverState *bs, BlockStats *stats)
{
    pthread_mutex_lock(&bs->stats_lock);
    *stats = bs->stats;
    stats->idle_time_ns = bs->last_access_ns ? now_ns() - bs->last_access_ns : -1;
    pthread_mutex_unlock(&bs->stats_lock);
    stats->wr_highest_offset = __atomic_load_n(&bs->stats.wr_highest_offset,
                                               __ATOMIC_RELAXED);
    stats->file_wr_highest_offset = bs->file
                                        ? __atomic_load_n(&bs->file->wr_highest_offset,
                                                          __ATOMIC_RELAXED)
                                        : 0;
}

static int write_finished(BlockDriverState *bs, uint64_t offset, uint64_t bytes, int ret)
{
    if (ret == 0) {
        block_note_write_end(&bs->stats.wr_highest_offset, offset + bytes);
    }
    return ret;
}

int bdrv_preadv(BlockDriverState *bs, uint64_t offset, const struct iovec *iov,
                int iovcnt)
{
    uint64_t bytes = iov_total(iov, iovcnt);
    int64_t start = now_ns();
    int ret = check_range(bs, offset, bytes);

    if (ret < 0 || bytes == 0) {
        return ret;
    }
    ret = bs->drv->preadv(bs, offset, bytes, iov, iovcnt);
    return block_account(bs, BLOCK_ACCT_READ, bytes, start, ret);
}

int bdrv_pwritev(BlockDriverState *bs, uint64_t offset, const struct iovec *iov,
                 int iovcnt)
{
    uint64_t bytes = iov_total(iov, iovcnt);
    int64_t start = now_ns();
    int ret = check_write(bs, offset, bytes);

    if (ret < 0 || bytes == 0) {
        return ret;
    }
    ret = write_done(bs, bs->drv->pwritev(bs, offset, bytes, iov, iovcnt));
    write_finished(bs, offset, bytes, ret);
    return block_account(bs, BLOCK_ACCT_WRITE, bytes, start, ret);
}

int bdrv_pread(BlockDriverState *bs, uint64_t offset, void *buf, size_t len)
{
    struct iovec iov = { buf, len };

    return bdrv_preadv(bs, offset, &iov, 1);
}

int bdrv_pwrite(BlockDriverState *bs, uint64_t offset, const void *buf, size_t len)
{
    struct iovec iov = { (void *)buf, len };

    return bdrv_pwritev(bs, offset, &iov, 1);
}

int bdrv_flush_unaccounted(BlockDriverState *bs)
{
    if (bs->read_only || bs->inactive || bs->cache == BLOCK_CACHE_UNSAFE) {
        return 0;
    }
    return bs->drv->flush(bs);
}

int bdrv_flush(BlockDriverState *bs)
{
    int64_t start = now_ns();

    return block_account(bs, BLOCK_ACCT_FLUSH, 0, start, bdrv_flush_unaccounted(bs));
}

int bdrv_discard(BlockDriverState *bs, uint64_t offset, uint64_t len)
{
    int64_t start = now_ns();
    int ret = check_write(bs, offset, len);

    if (ret < 0 || len == 0) {
        return ret;
    }
    if (bs->discard_unmap) {
        ret = write_finished(bs, offset, len, bs->drv->discard(bs, offset, len));
    }
    return block_account(bs, BLOCK_ACCT_UNMAP, len, start, ret);
}

int bdrv_write_zeroes(BlockDriverState *bs, uint64_t offset, uint64_t len, bool may_unmap)
{
    int64_t start = now_ns();
    int ret = check_write(bs, offset, len);

    if (ret < 0 || len == 0) {
        return ret;
    }
    ret = bs->drv->write_zeroes(bs, offset, len, may_unmap && bs->discard_unmap);
    ret = write_finished(bs, offset, len, write_done(bs, ret));
    return block_account(bs, BLOCK_ACCT_WRITE, len, start, ret);
}

int64_t bdrv_actual_size(BlockDriverState *bs)
{
    struct stat st;

    if (fstat(bs->file->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

bool bdrv_is_read_only(BlockDriverState *bs)
{
    return bs->read_only;
}

const char *bdrv_format_name(BlockDriverState *bs)
{
    return bs->drv->format_name;
}

const char *bdrv_filename(BlockDriverState *bs)
{
    return bs->filename;
}

const char *bdrv_backing_filename(BlockDriverState *bs)
{
    return bs->backing_file;
}

BlockCacheMode bdrv_cache_mode(BlockDriverState *bs)
{
    return bs->cache;
}

bool bdrv_lock(BlockDriverState *bs, GError **errp)
{
    for (BlockDriverState *node = bs; node; node = node->backing) {
        bool qcow2 = node->drv == &bdrv_qcow2;

        if (!block_lock_take(node->file, !node->read_only, qcow2, errp)) {
            goto fail;
        }
        if (node->inactive && !node->drv->activate(node, errp)) {
            goto fail;
        }
        node->inactive = false;
    }
    return true;

fail:
    bdrv_unlock(bs);
    return false;
}

void bdrv_unlock(BlockDriverState *bs)
{
    for (BlockDriverState *node = bs; node; node = node->backing) {
        if (!node->inactive) {
            node->drv->inactivate(node);
            node->inactive = true;
        }
        block_lock_release(node->file);
    }
}
