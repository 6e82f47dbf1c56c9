/*
 * qcow2 guest-to-host mapping: L1/L2 lookups with every entry validated
 * (reserved bits, alignment, end of file, overlap with metadata: a bad
 * entry is -EIO for that request), L2 tables made writable (allocated or
 * copied when shared with a snapshot), and zeroing/discarding whole
 * clusters.  Callers hold s->lock.
 */
#include <string.h>

#include "qcow2.h"

#define L1E_RESERVED 0x7f000000000001ffull

Qcow2ClusterType qcow2_entry_type(Qcow2State *s, uint64_t l2_entry)
{
    if (l2_entry & QCOW2_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    if ((l2_entry & QCOW2_OFLAG_ZERO) && s->version >= 3) {
        return (l2_entry & QCOW2_OFFSET_MASK) ? QCOW2_CLUSTER_ZERO_ALLOC
                                              : QCOW2_CLUSTER_ZERO_PLAIN;
    }
    if (!(l2_entry & QCOW2_OFFSET_MASK)) {
        return QCOW2_CLUSTER_UNALLOCATED;
    }
    return QCOW2_CLUSTER_NORMAL;
}

/* Host bytes that data I/O may touch: cluster-aligned, before 2^56 and
 * clear of metadata. */
int qcow2_check_data_range(Qcow2State *s, uint64_t host_offset, uint64_t bytes)
{
    if (qcow2_offset_into_cluster(s, host_offset) || host_offset == 0 ||
        host_offset >= (1ull << 56) || bytes > (1ull << 56) - host_offset ||
        qcow2_meta_overlaps(s, host_offset, bytes)) {
        return -EIO;
    }
    return 0;
}

static int check_compressed(Qcow2State *s, uint64_t entry)
{
    uint64_t coffset = entry & s->coffset_mask;
    uint64_t sectors = ((entry >> s->csize_shift) & s->csize_mask) + 1;
    uint64_t start = coffset & ~511ull;

    if ((entry & QCOW2_OFLAG_COPIED) || coffset >= (1ull << 56) ||
        coffset < s->cluster_size || coffset >= qcow2_file_size(s) ||
        qcow2_meta_overlaps(s, start, sectors * 512)) {
        return -EIO;
    }
    return 0;
}

/* Is this L2 entry sound?  Data clusters must lie inside the file. */
static int check_l2_entry(Qcow2State *s, uint64_t entry)
{
    Qcow2ClusterType type = qcow2_entry_type(s, entry);
    uint64_t offset = entry & QCOW2_OFFSET_MASK;

    if (type == QCOW2_CLUSTER_COMPRESSED) {
        return check_compressed(s, entry);
    }
    if ((entry & QCOW2_L2E_RESERVED) || (s->version < 3 && (entry & QCOW2_OFLAG_ZERO))) {
        return -EIO;
    }
    switch (type) {
    case QCOW2_CLUSTER_UNALLOCATED:
    case QCOW2_CLUSTER_ZERO_PLAIN:
        return (entry & QCOW2_OFLAG_COPIED) ? -EIO : 0;
    case QCOW2_CLUSTER_NORMAL:
        if (offset >= qcow2_file_size(s)) {
            return -EIO;
        }
        /* fall through */
    default:
        return qcow2_check_data_range(s, offset, s->cluster_size);
    }
}

/* The L2 table an L1 entry points to: 0 when unallocated, -EIO if bad. */
static int l2_table_offset(Qcow2State *s, uint64_t l1_index, uint64_t *offset)
{
    uint64_t entry = s->l1_table[l1_index];

    *offset = entry & QCOW2_OFFSET_MASK;
    if (entry & L1E_RESERVED) {
        return -EIO;
    }
    if (*offset &&
        (qcow2_offset_into_cluster(s, *offset) || *offset >= qcow2_file_size(s) ||
         qcow2_meta_kind(s, *offset) != QCOW2_META_L2)) {
        return -EIO;
    }
    return 0;
}

/* Does entry continue a run that started with first, n clusters back? */
static bool same_run(Qcow2State *s, uint64_t first, uint64_t entry, uint64_t n)
{
    Qcow2ClusterType type = qcow2_entry_type(s, first);

    if (qcow2_entry_type(s, entry) != type) {
        return false;
    }
    switch (type) {
    case QCOW2_CLUSTER_COMPRESSED:
        return false;
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return (entry & QCOW2_OFFSET_MASK) ==
                   (first & QCOW2_OFFSET_MASK) + (n << s->cluster_bits) &&
               (entry & QCOW2_OFLAG_COPIED) == (first & QCOW2_OFLAG_COPIED);
    default:
        return true;
    }
}

static void fill_mapping(Qcow2State *s, uint64_t entry, uint64_t in_cluster,
                         uint64_t bytes, Qcow2Mapping *map)
{
    map->type = qcow2_entry_type(s, entry);
    map->bytes = bytes;
    map->l2_entry = entry;
    map->host_offset = (entry & QCOW2_OFFSET_MASK) + in_cluster;
    map->copied = entry & QCOW2_OFLAG_COPIED;
}

int qcow2_get_mapping(Qcow2State *s, uint64_t offset, uint64_t bytes, Qcow2Mapping *map)
{
    uint64_t in_cluster = qcow2_offset_into_cluster(s, offset);
    uint64_t l2_index = (offset >> s->cluster_bits) & (qcow2_l2_entries(s) - 1);
    uint64_t l2_offset, first, n = 1, *l2;
    uint64_t max = MIN(bytes, ((qcow2_l2_entries(s) - l2_index) << s->cluster_bits) -
                                  in_cluster);
    int ret = l2_table_offset(s, offset >> (s->cluster_bits + s->l2_bits), &l2_offset);

    if (ret < 0 || l2_offset == 0) {
        fill_mapping(s, 0, in_cluster, max, map);
        return ret;
    }
    ret = qcow2_cache_get(s->l2_cache, l2_offset, (void **)&l2);
    if (ret < 0) {
        return ret;
    }
    first = GUINT64_FROM_BE(l2[l2_index]);
    ret = check_l2_entry(s, first);
    while (ret == 0 && (n << s->cluster_bits) - in_cluster < max) {
        uint64_t entry = GUINT64_FROM_BE(l2[l2_index + n]);

        if (!same_run(s, first, entry, n) || check_l2_entry(s, entry) < 0) {
            break;
        }
        n++;
    }
    qcow2_cache_put(s->l2_cache, (void **)&l2);
    fill_mapping(s, first, in_cluster, MIN(max, (n << s->cluster_bits) - in_cluster),
                 map);
    return ret;
}

static int write_l1_entry(Qcow2State *s, uint64_t l1_index, uint64_t entry)
{
    uint64_t be = GUINT64_TO_BE(entry);
    int ret = block_file_pwrite(s->file, s->l1_offset + l1_index * 8, &be, 8);

    if (ret == 0) {
        s->l1_table[l1_index] = entry;
    }
    return ret;
}

/*
 * Give an L1 entry a fresh L2 table, empty or a copy of a shared one: the
 * table (and its refcount) reach the disk before the L1 entry points to
 * it; the shared original loses our reference afterwards.
 */
static int new_l2_table(Qcow2State *s, uint64_t l1_index, uint64_t old_offset)
{
    uint64_t allocated;
    int64_t offset = qcow2_alloc_clusters(s, 1, &allocated);
    void *table = NULL, *old;
    int ret;

    if (offset < 0) {
        return offset;
    }
    qcow2_meta_add(s, offset, s->cluster_size, QCOW2_META_L2);
    ret = qcow2_cache_get_empty(s->l2_cache, offset, &table);
    if (ret == 0 && old_offset) {
        ret = qcow2_cache_get(s->l2_cache, old_offset, &old);
        if (ret == 0) {
            memcpy(table, old, s->cluster_size);
            qcow2_cache_put(s->l2_cache, &old);
        }
    }
    if (ret < 0) {
        if (table) {
            qcow2_cache_put(s->l2_cache, &table);
        }
        qcow2_meta_remove(s, offset, s->cluster_size);
        qcow2_free_clusters(s, offset, s->cluster_size);
        return ret;
    }
    qcow2_cache_mark_dirty(s->l2_cache, table);
    qcow2_cache_put(s->l2_cache, &table);
    ret = qcow2_cache_flush(s->l2_cache);
    if (ret == 0) {
        ret = write_l1_entry(s, l1_index, offset | QCOW2_OFLAG_COPIED);
    }
    if (ret == 0 && old_offset) {
        ret = qcow2_free_clusters(s, old_offset, s->cluster_size);
    }
    return ret;
}

int qcow2_get_l2_for_write(Qcow2State *s, uint64_t offset, uint64_t **l2, unsigned *index)
{
    uint64_t l1_index = offset >> (s->cluster_bits + s->l2_bits);
    uint64_t l2_offset;
    int ret = l2_table_offset(s, l1_index, &l2_offset);

    if (ret < 0) {
        return ret;
    }
    if (l2_offset == 0 || !(s->l1_table[l1_index] & QCOW2_OFLAG_COPIED)) {
        ret = new_l2_table(s, l1_index, l2_offset);
        if (ret < 0) {
            return ret;
        }
        l2_offset = s->l1_table[l1_index] & QCOW2_OFFSET_MASK;
    }
    *index = (offset >> s->cluster_bits) & (qcow2_l2_entries(s) - 1);
    return qcow2_cache_get(s->l2_cache, l2_offset, (void **)l2);
}

/* The entry a cluster gets when zeroed or discarded; *drop says whether
 * its host cluster loses our reference. */
static uint64_t zeroed_entry(Qcow2State *s, uint64_t entry, bool discard, bool may_unmap,
                             bool *drop)
{
    Qcow2ClusterType type = qcow2_entry_type(s, entry);
    bool backing = s->bs->backing != NULL;

    *drop = type == QCOW2_CLUSTER_NORMAL || type == QCOW2_CLUSTER_COMPRESSED ||
            type == QCOW2_CLUSTER_ZERO_ALLOC;
    if (discard) {
        if (s->version < 3 && backing) {
            *drop = false; /* v2 can't hide the backing file */
            return entry;
        }
        return (s->version >= 3 && backing) ? QCOW2_OFLAG_ZERO : 0;
    }
    if (!may_unmap &&
        (type == QCOW2_CLUSTER_NORMAL || type == QCOW2_CLUSTER_ZERO_ALLOC) &&
        (entry & QCOW2_OFLAG_COPIED)) {
        *drop = false; /* keep the allocation, read zeros */
        return (entry & QCOW2_OFFSET_MASK) | QCOW2_OFLAG_COPIED | QCOW2_OFLAG_ZERO;
    }
    if (type == QCOW2_CLUSTER_ZERO_PLAIN) {
        return entry;
    }
    return QCOW2_OFLAG_ZERO;
}

/* Zero or discard the whole clusters of one L2 table's range. */
static int zero_in_l2(Qcow2State *s, uint64_t offset, uint64_t clusters, bool discard,
                      bool may_unmap, GArray *dropped)
{
    uint64_t *l2;
    unsigned index;
    bool drop;
    int ret = qcow2_get_l2_for_write(s, offset, &l2, &index);

    if (ret < 0) {
        return ret;
    }
    for (uint64_t i = 0; i < clusters && ret == 0; i++) {
        ret = check_l2_entry(s, GUINT64_FROM_BE(l2[index + i]));
    }
    for (uint64_t i = 0; i < clusters && ret == 0; i++) {
        uint64_t old = GUINT64_FROM_BE(l2[index + i]);
        uint64_t new = zeroed_entry(s, old, discard, may_unmap, &drop);

        if (new != old) {
            l2[index + i] = GUINT64_TO_BE(new);
            qcow2_cache_mark_dirty(s->l2_cache, l2);
        }
        if (drop) {
            g_array_append_val(dropped, old);
        }
    }
    qcow2_cache_put(s->l2_cache, (void **)&l2);
    return ret;
}

/* Does this chunk already read as zeros with nothing to free? */
static bool chunk_untouched(Qcow2State *s, uint64_t offset)
{
    uint64_t l1_index = offset >> (s->cluster_bits + s->l2_bits);

    return s->l1_table[l1_index] == 0 && !s->bs->backing;
}

int qcow2_zero_or_discard(Qcow2State *s, uint64_t offset, uint64_t bytes, bool discard,
                          bool may_unmap)
{
    GArray *dropped = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    uint64_t per_l2 = s->cluster_size << s->l2_bits;
    int ret = 0;

    if (discard && s->version < 3 && s->bs->backing) {
        bytes = 0; /* nothing we could do is a discard */
    }
    while (bytes > 0 && ret == 0) {
        uint64_t chunk = MIN(bytes, per_l2 - (offset & (per_l2 - 1)));

        if (!chunk_untouched(s, offset)) {
            ret = zero_in_l2(s, offset, chunk >> s->cluster_bits, discard, may_unmap,
                             dropped);
        }
        offset += chunk;
        bytes -= chunk;
    }
    if (dropped->len > 0) {
        int r = qcow2_cache_flush(s->l2_cache);

        pthread_rwlock_wrlock(&s->free_lock);
        for (guint i = 0; i < dropped->len && r == 0; i++) {
            r = qcow2_free_l2_entry(s, g_array_index(dropped, uint64_t, i));
        }
        pthread_rwlock_unlock(&s->free_lock);
        ret = ret < 0 ? ret : r;
    }
    g_array_free(dropped, TRUE);
    return ret;
}
