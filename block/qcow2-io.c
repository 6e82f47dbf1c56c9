/*
 * qcow2 guest reads and writes.  Each request is cut into runs of guest
 * clusters mapped alike; runs whose host clusters are ours alone move data
 * without s->lock (under s->free_lock's read side), everything else
 * (allocation, copy-on-write of compressed, shared or backing data, L2
 * updates) happens under s->lock.  Compressed clusters are raw deflate.
 */
#include <string.h>
#include <zlib.h>

#include "qcow2.h"

/* Guest bytes no cluster of ours holds: the backing file's, zeros past it. */
static int read_backing(Qcow2State *s, uint64_t offset, uint64_t bytes,
                        const struct iovec *iov, int iovcnt)
{
    BlockDriverState *backing = s->bs->backing;
    uint64_t avail = 0;
    int ret = 0;

    if (backing && offset < backing->total_size) {
        avail = MIN(bytes, backing->total_size - offset);
    }
    if (avail > 0) {
        IovSlice slice;

        iov_slice_init(&slice, iov, iovcnt, 0, avail);
        ret = bdrv_preadv(backing, offset, slice.iov, slice.iovcnt);
        iov_slice_destroy(&slice);
    }
    if (ret == 0 && avail < bytes) {
        iov_memset(iov, iovcnt, avail, 0, bytes - avail);
    }
    return ret;
}

static int inflate_cluster(Qcow2State *s, uint8_t *in, size_t in_len, uint8_t *out)
{
    z_stream z = { 0 };
    int ret;
    bool full;

    if (inflateInit2(&z, -15) != Z_OK) {
        return -ENOMEM;
    }
    z.next_in = in;
    z.avail_in = in_len;
    z.next_out = out;
    z.avail_out = s->cluster_size;
    ret = inflate(&z, Z_FINISH);
    full = z.avail_out == 0;
    inflateEnd(&z);
    /* Decompression stops once it has produced a whole cluster. */
    if ((ret == Z_STREAM_END || ret == Z_OK || ret == Z_BUF_ERROR) && full) {
        return 0;
    }
    return -EIO;
}

int qcow2_read_compressed(Qcow2State *s, uint64_t l2_entry, uint8_t *out)
{
    uint64_t coffset = l2_entry & s->coffset_mask;
    uint64_t sectors = ((l2_entry >> s->csize_shift) & s->csize_mask) + 1;
    uint64_t end = (coffset & ~511ull) + sectors * 512;
    uint64_t file_size = qcow2_file_size(s);
    uint64_t len;
    uint8_t *in;
    int ret;

    if (coffset >= file_size) {
        return -EIO;
    }
    len = MIN(end, file_size) - coffset;
    in = g_malloc(len);
    ret = block_file_pread(s->file, coffset, in, len);
    if (ret == 0) {
        ret = inflate_cluster(s, in, len, out);
    }
    g_free(in);
    return ret;
}

/* Copy part of a compressed cluster out, through a one-cluster cache. */
static int read_compressed_part(Qcow2State *s, uint64_t l2_entry, uint64_t in_cluster,
                                uint64_t bytes, const struct iovec *iov, int iovcnt)
{
    int ret = 0;

    pthread_mutex_lock(&s->zcache_lock);
    if (!s->zcache_data) {
        s->zcache_data = g_malloc(s->cluster_size);
    }
    if (s->zcache_entry != l2_entry) {
        ret = qcow2_read_compressed(s, l2_entry, s->zcache_data);
        s->zcache_entry = ret == 0 ? l2_entry : 0;
    }
    if (ret == 0) {
        iov_from_buf(iov, iovcnt, 0, s->zcache_data + in_cluster, bytes);
    }
    pthread_mutex_unlock(&s->zcache_lock);
    return ret;
}

static bool needs_free_lock(const Qcow2Mapping *map)
{
    return map->type == QCOW2_CLUSTER_NORMAL || map->type == QCOW2_CLUSTER_COMPRESSED;
}

static int read_mapped(Qcow2State *s, const Qcow2Mapping *map, uint64_t offset,
                       const struct iovec *iov, int iovcnt)
{
    switch (map->type) {
    case QCOW2_CLUSTER_NORMAL:
        return block_file_preadv(s->file, map->host_offset, iov, iovcnt);
    case QCOW2_CLUSTER_COMPRESSED:
        return read_compressed_part(s, map->l2_entry,
                                    qcow2_offset_into_cluster(s, offset), map->bytes, iov,
                                    iovcnt);
    case QCOW2_CLUSTER_UNALLOCATED:
        return read_backing(s, offset, map->bytes, iov, iovcnt);
    default:
        iov_memset(iov, iovcnt, 0, 0, map->bytes);
        return 0;
    }
}

int qcow2_read(Qcow2State *s, uint64_t offset, uint64_t bytes, const struct iovec *iov,
               int iovcnt)
{
    for (uint64_t done = 0; done < bytes;) {
        Qcow2Mapping map;
        IovSlice slice;
        int ret;

        pthread_mutex_lock(&s->lock);
        ret = qcow2_get_mapping(s, offset + done, bytes - done, &map);
        if (ret == 0 && needs_free_lock(&map)) {
            pthread_rwlock_rdlock(&s->free_lock);
        }
        pthread_mutex_unlock(&s->lock);
        if (ret < 0) {
            return ret;
        }
        iov_slice_init(&slice, iov, iovcnt, done, map.bytes);
        ret = read_mapped(s, &map, offset + done, slice.iov, slice.iovcnt);
        iov_slice_destroy(&slice);
        if (needs_free_lock(&map)) {
            pthread_rwlock_unlock(&s->free_lock);
        }
        if (ret < 0) {
            return ret;
        }
        done += map.bytes;
    }
    return 0;
}

/* The current contents of guest bytes [guest, guest + len) in a run that
 * is about to move to new clusters (copy-on-write). */
static int read_old(Qcow2State *s, const Qcow2Mapping *map, uint64_t map_offset,
                    uint64_t guest, uint8_t *buf, uint64_t len)
{
    struct iovec iov = { buf, len };

    switch (map->type) {
    case QCOW2_CLUSTER_UNALLOCATED:
        return read_backing(s, guest, len, &iov, 1);
    case QCOW2_CLUSTER_COMPRESSED:
        return read_compressed_part(s, map->l2_entry, qcow2_offset_into_cluster(s, guest),
                                    len, &iov, 1);
    case QCOW2_CLUSTER_NORMAL:
        return block_file_pread(s->file, map->host_offset + (guest - map_offset), buf,
                                len);
    default:
        memset(buf, 0, len);
        return 0;
    }
}

/* Point the run's L2 entries at its new clusters; the old ones (shared or
 * compressed) lose our reference once the L2 table is on disk. */
static int link_clusters(Qcow2State *s, uint64_t guest, uint64_t host, uint64_t clusters,
                         bool reuse)
{
    GArray *dropped = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    uint64_t *l2;
    unsigned index;
    int ret = qcow2_get_l2_for_write(s, guest, &l2, &index);

    for (uint64_t j = 0; ret == 0 && j < clusters; j++) {
        uint64_t old = GUINT64_FROM_BE(l2[index + j]);
        Qcow2ClusterType type = qcow2_entry_type(s, old);

        if (!reuse && type != QCOW2_CLUSTER_UNALLOCATED &&
            type != QCOW2_CLUSTER_ZERO_PLAIN) {
            g_array_append_val(dropped, old);
        }
        l2[index + j] = GUINT64_TO_BE((host + (j << s->cluster_bits)) |
                                      QCOW2_OFLAG_COPIED);
    }
    if (ret == 0) {
        qcow2_cache_mark_dirty(s->l2_cache, l2);
        qcow2_cache_depends_on_flush(s->l2_cache); /* data first */
        qcow2_cache_put(s->l2_cache, (void **)&l2);
    }
    if (ret == 0 && dropped->len > 0) {
        ret = qcow2_cache_flush(s->l2_cache);
        pthread_rwlock_wrlock(&s->free_lock);
        for (guint i = 0; ret == 0 && i < dropped->len; i++) {
            ret = qcow2_free_l2_entry(s, g_array_index(dropped, uint64_t, i));
        }
        pthread_rwlock_unlock(&s->free_lock);
    }
    g_array_free(dropped, TRUE);
    return ret;
}

/* Write guest data plus the old head and tail of its first and last
 * clusters to host clusters [host, ...). */
static int write_with_cow(Qcow2State *s, const Qcow2Mapping *map, uint64_t offset,
                          uint64_t host, const struct iovec *iov, int iovcnt)
{
    uint64_t in_cluster = qcow2_offset_into_cluster(s, offset);
    uint64_t end = offset + map->bytes;
    uint64_t tail = ROUND_UP(end, s->cluster_size) - end;
    uint8_t *head_buf = g_malloc(MAX(in_cluster, 1));
    uint8_t *tail_buf = g_malloc(MAX(tail, 1));
    GArray *vec = g_array_new(FALSE, FALSE, sizeof(struct iovec));
    struct iovec head_iov = { head_buf, in_cluster }, tail_iov = { tail_buf, tail };
    IovSlice slice;
    int ret = read_old(s, map, offset, offset - in_cluster, head_buf, in_cluster);

    if (ret == 0) {
        ret = read_old(s, map, offset, end, tail_buf, tail);
    }
    iov_slice_init(&slice, iov, iovcnt, 0, map->bytes);
    if (in_cluster) {
        g_array_append_val(vec, head_iov);
    }
    g_array_append_vals(vec, slice.iov, slice.iovcnt);
    if (tail) {
        g_array_append_val(vec, tail_iov);
    }
    if (ret == 0) {
        ret = block_file_pwritev(s->file, host, (struct iovec *)vec->data, vec->len);
    }
    iov_slice_destroy(&slice);
    g_array_free(vec, TRUE);
    g_free(head_buf);
    g_free(tail_buf);
    return ret;
}

/*
 * A run that needs new clusters (or has preallocated ones): data first,
 * then the L2 entries.  Returns how many guest bytes it wrote (fewer than
 * the run when only a shorter stretch of free clusters was found).
 * Called and returns with s->lock held.
 */
static int64_t allocating_write(Qcow2State *s, const Qcow2Mapping *run, uint64_t offset,
                                const struct iovec *iov, int iovcnt)
{
    uint64_t in_cluster = qcow2_offset_into_cluster(s, offset);
    uint64_t clusters = DIV_ROUND_UP(in_cluster + run->bytes, s->cluster_size);
    bool reuse = run->type == QCOW2_CLUSTER_ZERO_ALLOC && run->copied;
    int64_t host = run->host_offset - in_cluster;
    Qcow2Mapping map = *run;
    int ret;

    if (!reuse) {
        host = qcow2_alloc_clusters(s, clusters, &clusters);
        if (host < 0) {
            return host;
        }
        map.bytes = MIN(map.bytes, (clusters << s->cluster_bits) - in_cluster);
    }
    ret = write_with_cow(s, &map, offset, host, iov, iovcnt);
    if (ret < 0) {
        if (!reuse) {
            qcow2_free_clusters(s, host, clusters << s->cluster_bits);
        }
        return ret;
    }
    qcow2_note_file_end(s, host + (clusters << s->cluster_bits));
    ret = link_clusters(s, offset - in_cluster, host, clusters, reuse);
    return ret < 0 ? ret : (int64_t)map.bytes;
}

int qcow2_write(Qcow2State *s, uint64_t offset, uint64_t bytes, const struct iovec *iov,
                int iovcnt)
{
    for (uint64_t done = 0; done < bytes;) {
        Qcow2Mapping map;
        IovSlice slice;
        int ret;

        pthread_mutex_lock(&s->lock);
        ret = qcow2_get_mapping(s, offset + done, bytes - done, &map);
        iov_slice_init(&slice, iov, iovcnt, done, ret == 0 ? map.bytes : 0);
        if (ret == 0 && map.type == QCOW2_CLUSTER_NORMAL && map.copied) {
            pthread_rwlock_rdlock(&s->free_lock);
            pthread_mutex_unlock(&s->lock);
            ret = block_file_pwritev(s->file, map.host_offset, slice.iov, slice.iovcnt);
            pthread_rwlock_unlock(&s->free_lock);
        } else {
            if (ret == 0) {
                int64_t written = allocating_write(s, &map, offset + done, slice.iov,
                                                   slice.iovcnt);

                ret = written < 0 ? written : 0;
                map.bytes = written < 0 ? 0 : written;
            }
            pthread_mutex_unlock(&s->lock);
        }
        iov_slice_destroy(&slice);
        if (ret < 0) {
            return ret;
        }
        done += map.bytes;
    }
    return 0;
}
