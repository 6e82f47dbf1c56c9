/*
 * qcow2 reference counts: reading and updating refcount blocks of any
 * width (refcount_order 0-6), allocating runs of free host clusters
 * (creating refcount blocks and growing the refcount table as needed, each
 * step ordered so a crash leaks clusters at worst) and freeing them.
 * Callers hold s->lock.
 */
#include <string.h>

#include "qcow2.h"

static uint64_t refblock_entries(Qcow2State *s)
{
    return 1ull << s->refblock_bits;
}

static uint64_t refcount_read(const uint8_t *block, uint64_t i, int order)
{
    switch (order) {
    case 3:
        return block[i];
    case 4:
        return (uint64_t)block[2 * i] << 8 | block[2 * i + 1];
    case 5:
        return qcow2_be32(block + 4 * i);
    case 6:
        return qcow2_be64(block + 8 * i);
    default: {
        int bits = 1 << order;
        uint64_t bit = i << order;

        return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    }
}

static void refcount_write(uint8_t *block, uint64_t i, int order, uint64_t value)
{
    uint32_t v32 = GUINT32_TO_BE((uint32_t)value);
    uint64_t v64 = GUINT64_TO_BE(value);

    switch (order) {
    case 3:
        block[i] = value;
        break;
    case 4:
        block[2 * i] = value >> 8;
        block[2 * i + 1] = value;
        break;
    case 5:
        memcpy(block + 4 * i, &v32, 4);
        break;
    case 6:
        memcpy(block + 8 * i, &v64, 8);
        break;
    default: {
        int bits = 1 << order;
        uint64_t bit = i << order;
        uint8_t mask = ((1u << bits) - 1) << (bit % 8);

        block[bit / 8] = (block[bit / 8] & ~mask) | ((value << (bit % 8)) & mask);
    }
    }
}

static bool refblock_missing(Qcow2State *s, uint64_t table_index)
{
    return table_index >= s->reftable_size ||
           (s->reftable[table_index] & ~QCOW2_REFT_RESERVED) == 0;
}

/* The refcount block for a table index: 0 when there is none yet. */
static int refblock_lookup(Qcow2State *s, uint64_t table_index, uint64_t *offset)
{
    uint64_t entry;

    *offset = 0;
    if (table_index >= s->reftable_size) {
        return 0;
    }
    entry = s->reftable[table_index];
    if (entry & QCOW2_REFT_RESERVED) {
        return -EIO;
    }
    if (entry && (qcow2_offset_into_cluster(s, entry) || entry >= qcow2_file_size(s) ||
                  qcow2_meta_kind(s, entry) != QCOW2_META_REFBLOCK)) {
        return -EIO;
    }
    *offset = entry;
    return 0;
}

int qcow2_get_refcount(Qcow2State *s, uint64_t cluster, uint64_t *refcount)
{
    uint64_t block_offset;
    void *block;
    int ret = refblock_lookup(s, cluster >> s->refblock_bits, &block_offset);

    *refcount = 0;
    if (ret < 0 || block_offset == 0) {
        return ret;
    }
    ret = qcow2_cache_get(s->refblock_cache, block_offset, &block);
    if (ret < 0) {
        return ret;
    }
    *refcount = refcount_read(block, cluster & (refblock_entries(s) - 1),
                              s->refcount_order);
    qcow2_cache_put(s->refblock_cache, &block);
    return 0;
}

/* Set a refcount whose block exists; returns the old value in *old. */
static int set_refcount(Qcow2State *s, uint64_t cluster, uint64_t value, uint64_t *old)
{
    uint64_t block_offset, index = cluster & (refblock_entries(s) - 1);
    void *block;
    int ret = refblock_lookup(s, cluster >> s->refblock_bits, &block_offset);

    if (ret < 0 || block_offset == 0) {
        return ret < 0 ? ret : -EIO;
    }
    ret = qcow2_cache_get(s->refblock_cache, block_offset, &block);
    if (ret < 0) {
        return ret;
    }
    *old = refcount_read(block, index, s->refcount_order);
    refcount_write(block, index, s->refcount_order, value);
    qcow2_cache_mark_dirty(s->refblock_cache, block);
    qcow2_cache_put(s->refblock_cache, &block);
    return 0;
}

/*
 * The first free cluster at or after the hint and how many free ones follow
 * it (at most count).  Accepting short runs keeps allocation from chasing
 * a long run past refcount blocks it creates itself.
 */
static int64_t find_free_run(Qcow2State *s, uint64_t count, uint64_t *found)
{
    uint64_t limit = (1ull << 56) >> s->cluster_bits, run = 0, start = 0;

    for (uint64_t c = s->free_hint; c < limit; c++) {
        uint64_t refcount;
        int ret = qcow2_get_refcount(s, c, &refcount);

        if (ret < 0) {
            return ret;
        }
        if (refcount || qcow2_meta_kind(s, c << s->cluster_bits)) {
            if (run) {
                break;
            }
            continue;
        }
        if (run++ == 0) {
            start = c;
            s->free_hint = c;
        }
        if (run == count) {
            break;
        }
    }
    *found = run;
    return run ? (int64_t)start : -ENOSPC;
}

/* Write one refcount table entry in place. */
static int write_reftable_entry(Qcow2State *s, uint64_t index, uint64_t value)
{
    uint64_t be = GUINT64_TO_BE(value);

    return block_file_pwrite(s->file, s->reftable_offset + index * 8, &be, 8);
}

/* Where the refcount table grows to: a new table at the end, followed by
 * the refcount blocks that cover the table and themselves. */
typedef struct GrowPlan {
    uint64_t start; /* first cluster of the new region */
    uint64_t table_clusters;
    uint64_t new_blocks;
    uint64_t new_size; /* entries */
} GrowPlan;

static uint64_t count_missing_blocks(Qcow2State *s, uint64_t first, uint64_t end)
{
    uint64_t missing = 0;

    for (uint64_t ti = first >> s->refblock_bits; ti <= (end - 1) >> s->refblock_bits;
         ti++) {
        missing += refblock_missing(s, ti);
    }
    return missing;
}

static int plan_growth(Qcow2State *s, uint64_t needed, GrowPlan *p)
{
    uint64_t per_cluster = s->cluster_size / 8;
    uint64_t file_end = DIV_ROUND_UP(qcow2_file_size(s), s->cluster_size);

    p->start = MAX(file_end, (uint64_t)s->reftable_size << s->refblock_bits);
    p->new_size = ROUND_UP(MAX(needed + 1, (uint64_t)s->reftable_size * 2), per_cluster);
    for (;;) {
        uint64_t n, last_index;

        p->table_clusters = p->new_size / per_cluster;
        p->new_blocks = 0;
        while ((n = count_missing_blocks(s, p->start,
                                         p->start + p->table_clusters + p->new_blocks)) !=
               p->new_blocks) {
            p->new_blocks = n;
        }
        last_index = (p->start + p->table_clusters + p->new_blocks - 1) >>
                     s->refblock_bits;
        if (last_index < p->new_size) {
            break;
        }
        p->new_size = ROUND_UP(last_index + 1, per_cluster);
    }
    if (p->new_size * 8 > QCOW2_MAX_REFTABLE_BYTES ||
        (p->start + p->table_clusters + p->new_blocks) > (1ull << 56) >>
            s->cluster_bits) {
        return -EFBIG;
    }
    return 0;
}

/* Fill the new refcount blocks of a growth plan into the cache and table. */
static int fill_new_blocks(Qcow2State *s, const GrowPlan *p, uint64_t *table)
{
    uint64_t end = p->start + p->table_clusters + p->new_blocks;
    uint64_t next = p->start + p->table_clusters, entries = refblock_entries(s);

    for (uint64_t ti = p->start >> s->refblock_bits; ti <= (end - 1) >> s->refblock_bits;
         ti++) {
        uint64_t first = ti << s->refblock_bits, offset = next++ << s->cluster_bits;
        void *block;
        int ret;

        if (!refblock_missing(s, ti)) {
            return -EIO; /* the region is past every block */
        }
        ret = qcow2_cache_get_empty(s->refblock_cache, offset, &block);
        if (ret < 0) {
            return ret;
        }
        for (uint64_t c = MAX(p->start, first); c < MIN(end, first + entries); c++) {
            refcount_write(block, c - first, s->refcount_order, 1);
        }
        qcow2_cache_mark_dirty(s->refblock_cache, block);
        qcow2_cache_put(s->refblock_cache, &block);
        qcow2_meta_add(s, offset, s->cluster_size, QCOW2_META_REFBLOCK);
        table[ti] = GUINT64_TO_BE(offset);
    }
    return 0;
}

/* Switch to the new table once it and its blocks are on disk. */
static int commit_new_reftable(Qcow2State *s, const GrowPlan *p, uint64_t *table)
{
    uint64_t offset = p->start << s->cluster_bits;
    uint64_t old_offset = s->reftable_offset;
    uint64_t old_bytes = ROUND_UP((uint64_t)s->reftable_size * 8, s->cluster_size);
    int ret = block_file_pwrite(s->file, offset, table,
                                p->table_clusters << s->cluster_bits);

    if (ret == 0) {
        ret = qcow2_cache_flush(s->refblock_cache);
    }
    if (ret == 0) {
        ret = qcow2_write_reftable_location(s, offset, p->table_clusters);
    }
    if (ret == 0) {
        ret = qcow2_barrier(s);
    }
    if (ret < 0) {
        return ret;
    }
    g_free(s->reftable);
    s->reftable = g_new(uint64_t, p->new_size);
    for (uint64_t i = 0; i < p->new_size; i++) {
        s->reftable[i] = GUINT64_FROM_BE(table[i]);
    }
    s->reftable_size = p->new_size;
    s->reftable_offset = offset;
    qcow2_meta_remove(s, old_offset, old_bytes);
    qcow2_meta_add(s, offset, p->new_size * 8, QCOW2_META_REFTABLE);
    return qcow2_free_clusters(s, old_offset, old_bytes);
}

static int grow_reftable(Qcow2State *s, uint64_t needed)
{
    GrowPlan p;
    uint64_t *table;
    int ret = plan_growth(s, needed, &p);
    uint64_t region = p.table_clusters + p.new_blocks;

    if (ret < 0) {
        return ret;
    }
    if (qcow2_meta_overlaps(s, p.start << s->cluster_bits, region << s->cluster_bits)) {
        return -EIO;
    }
    qcow2_note_file_end(s, (p.start + region) << s->cluster_bits);
    table = block_file_alloc_buffer(s->file, p.new_size * 8);
    for (uint32_t i = 0; i < s->reftable_size; i++) {
        table[i] = GUINT64_TO_BE(s->reftable[i]);
    }
    ret = fill_new_blocks(s, &p, table);
    if (ret == 0) {
        ret = commit_new_reftable(s, &p, table);
    }
    block_file_free_buffer(table);
    return ret < 0 ? ret : 1;
}

/* A new refcount block that counts itself, inside the range it covers. */
static int create_refblock(Qcow2State *s, uint64_t table_index)
{
    uint64_t first = table_index << s->refblock_bits, c = first, offset;
    void *block;
    int ret;

    while (c < first + refblock_entries(s) &&
           qcow2_meta_kind(s, c << s->cluster_bits) != QCOW2_META_NONE) {
        c++;
    }
    if (c == first + refblock_entries(s) || c >= (1ull << 56) >> s->cluster_bits) {
        return -EIO;
    }
    offset = c << s->cluster_bits;
    qcow2_note_file_end(s, offset + s->cluster_size);
    ret = qcow2_cache_get_empty(s->refblock_cache, offset, &block);
    if (ret < 0) {
        return ret;
    }
    refcount_write(block, c - first, s->refcount_order, 1);
    qcow2_cache_mark_dirty(s->refblock_cache, block);
    qcow2_cache_put(s->refblock_cache, &block);
    qcow2_meta_add(s, offset, s->cluster_size, QCOW2_META_REFBLOCK);
    ret = qcow2_cache_flush(s->refblock_cache);
    if (ret == 0) {
        ret = write_reftable_entry(s, table_index, offset);
    }
    if (ret < 0) {
        qcow2_cache_forget(s->refblock_cache, offset);
        qcow2_meta_remove(s, offset, s->cluster_size);
        return ret;
    }
    s->reftable[table_index] = offset;
    return 1;
}

/* 0 when the block exists, 1 when it (or a larger table) was made. */
static int ensure_refblock(Qcow2State *s, uint64_t table_index)
{
    uint64_t offset;
    int ret;

    if (table_index >= s->reftable_size) {
        return grow_reftable(s, table_index);
    }
    ret = refblock_lookup(s, table_index, &offset);
    if (ret < 0 || offset) {
        return ret;
    }
    return create_refblock(s, table_index);
}

int64_t qcow2_alloc_clusters(Qcow2State *s, uint64_t count, uint64_t *allocated)
{
    int64_t start;
    uint64_t old, found = 0;
    int ret = 1;

    while (ret > 0) {
        start = find_free_run(s, count, &found);
        if (start < 0) {
            return start;
        }
        ret = 0;
        for (uint64_t ti = start >> s->refblock_bits;
             ret == 0 && ti <= (start + found - 1) >> s->refblock_bits; ti++) {
            ret = ensure_refblock(s, ti);
        }
        if (ret < 0) {
            return ret;
        }
    }
    for (uint64_t c = start; c < start + found; c++) {
        ret = set_refcount(s, c, 1, &old);
        if (ret < 0) {
            return ret;
        }
    }
    if (s->free_hint == (uint64_t)start) {
        s->free_hint = start + found;
    }
    qcow2_note_file_end(s, (start + found) << s->cluster_bits);
    qcow2_cache_depends_on(s->l2_cache, s->refblock_cache);
    *allocated = found;
    return start << s->cluster_bits;
}

/*
 * Drop one reference from each cluster in [offset, offset + bytes).  The
 * caller has already written the tables that stopped referring to them;
 * the next refcount write waits for a sync so that order holds on disk.
 */
int qcow2_free_clusters(Qcow2State *s, uint64_t offset, uint64_t bytes)
{
    uint64_t first = offset >> s->cluster_bits, refcount, old;
    uint64_t last = (offset + bytes - 1) >> s->cluster_bits;
    int ret;

    for (uint64_t c = first; bytes && c <= last; c++) {
        ret = qcow2_get_refcount(s, c, &refcount);
        if (ret < 0 || refcount == 0) {
            return ret < 0 ? ret : -EIO;
        }
    }
    for (uint64_t c = first; bytes && c <= last; c++) {
        ret = qcow2_get_refcount(s, c, &refcount);
        if (ret == 0) {
            ret = set_refcount(s, c, refcount - 1, &old);
        }
        if (ret < 0) {
            return ret;
        }
        if (refcount == 1) {
            s->free_hint = MIN(s->free_hint, c);
            qcow2_cache_forget(s->l2_cache, c << s->cluster_bits);
            qcow2_meta_remove(s, c << s->cluster_bits, s->cluster_size);
        }
    }
    qcow2_cache_depends_on_flush(s->refblock_cache);
    return 0;
}

int qcow2_free_l2_entry(Qcow2State *s, uint64_t l2_entry)
{
    uint64_t coffset, sectors;

    switch (qcow2_entry_type(s, l2_entry)) {
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return qcow2_free_clusters(s, l2_entry & QCOW2_OFFSET_MASK, s->cluster_size);
    case QCOW2_CLUSTER_COMPRESSED:
        coffset = l2_entry & s->coffset_mask;
        sectors = ((l2_entry >> s->csize_shift) & s->csize_mask) + 1;
        return qcow2_free_clusters(s, coffset & ~511ull, sectors * 512);
    default:
        return 0;
    }
}

int qcow2_barrier(Qcow2State *s)
{
    return block_file_flush(s->file);
}

void qcow2_note_file_end(Qcow2State *s, uint64_t end)
{
    if (end > s->file_size) {
        __atomic_store_n(&s->file_size, end, __ATOMIC_RELEASE);
    }
}
