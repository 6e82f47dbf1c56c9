/*
 * A write-back cache of cluster-sized qcow2 tables (L2 tables, refcount
 * blocks), least recently used out.  Crash safety lives here: before a
 * dirty table is written, the cache it depends on is written and synced
 * (refcounts before the L2 entries that use them), or the file is synced
 * (data before the L2 entries that point to it).  Callers hold s->lock.
 */
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

typedef struct CacheEntry {
    uint64_t offset; /* 0: empty */
    uint64_t lru;
    int pins;
    bool dirty;
} CacheEntry;

struct Qcow2Cache {
    Qcow2State *s;
    Qcow2MetaKind kind;
    int size;
    CacheEntry *entries;
    uint8_t *tables;   /* size clusters, one per entry */
    GHashTable *index; /* offset -> entry number + 1 */
    uint64_t lru_clock;
    int dirty_count;
    Qcow2Cache *depends;   /* write and sync this one first */
    bool depends_on_flush; /* sync the file first */
};

Qcow2Cache *qcow2_cache_new(Qcow2State *s, int entries, Qcow2MetaKind kind)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);

    c->s = s;
    c->kind = kind;
    c->size = entries;
    c->entries = g_new0(CacheEntry, entries);
    /* Not zeroed: pages are only touched as tables are loaded. */
    if (posix_memalign((void **)&c->tables, 4096, (size_t)entries * s->cluster_size) !=
        0) {
        g_error("qcow2: out of memory for a %d-table cache", entries);
    }
    c->index = g_hash_table_new(g_int64_hash, g_int64_equal);
    return c;
}

void qcow2_cache_free(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    g_hash_table_destroy(c->index);
    free(c->tables);
    g_free(c->entries);
    g_free(c);
}

static void *entry_table(Qcow2Cache *c, int i)
{
    return c->tables + (size_t)i * c->s->cluster_size;
}

static int entry_of_table(Qcow2Cache *c, void *table)
{
    return ((uint8_t *)table - c->tables) / c->s->cluster_size;
}

static int write_entry(Qcow2Cache *c, int i)
{
    CacheEntry *e = &c->entries[i];
    int ret = 0;

    if (!e->dirty) {
        return 0;
    }
    if (c->depends) {
        ret = qcow2_cache_flush(c->depends);
        c->depends = NULL;
        c->depends_on_flush = false;
    } else if (c->depends_on_flush) {
        ret = qcow2_barrier(c->s);
        c->depends_on_flush = false;
    }
    if (ret == 0) {
        ret = block_file_pwrite(c->s->file, e->offset, entry_table(c, i),
                                c->s->cluster_size);
    }
    if (ret == 0) {
        e->dirty = false;
        c->dirty_count--;
    }
    return ret;
}

/* The entry for offset, or a free slot for it (writing a victim back). */
static int find_slot(Qcow2Cache *c, uint64_t offset, bool *hit)
{
    gpointer found = g_hash_table_lookup(c->index, &offset);
    int victim = -1;
    int ret;

    if (found) {
        *hit = true;
        return GPOINTER_TO_INT(found) - 1;
    }
    *hit = false;
    for (int i = 0; i < c->size; i++) {
        CacheEntry *e = &c->entries[i];

        if (e->pins == 0 &&
            (victim < 0 || e->offset == 0 || e->lru < c->entries[victim].lru)) {
            victim = i;
            if (e->offset == 0) {
                break;
            }
        }
    }
    if (victim < 0) {
        return -ENOSPC; /* every table pinned: a bug */
    }
    ret = write_entry(c, victim);
    if (ret < 0) {
        return ret;
    }
    if (c->entries[victim].offset) {
        g_hash_table_remove(c->index, &c->entries[victim].offset);
    }
    c->entries[victim].offset = 0;
    return victim;
}

static int cache_get(Qcow2Cache *c, uint64_t offset, void **table, bool read)
{
    bool hit;
    int i = find_slot(c, offset, &hit);
    int ret;

    if (i < 0) {
        return i;
    }
    if (!hit || !read) {
        if (read) {
            ret = block_file_pread(c->s->file, offset, entry_table(c, i),
                                   c->s->cluster_size);
            if (ret < 0) {
                return ret;
            }
        } else {
            memset(entry_table(c, i), 0, c->s->cluster_size);
        }
    }
    if (!hit) {
        c->entries[i].offset = offset;
        g_hash_table_insert(c->index, &c->entries[i].offset, GINT_TO_POINTER(i + 1));
    }
    c->entries[i].pins++;
    c->entries[i].lru = ++c->lru_clock;
    *table = entry_table(c, i);
    return 0;
}

int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, void **table)
{
    return cache_get(c, offset, table, true);
}

int qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset, void **table)
{
    return cache_get(c, offset, table, false);
}

void qcow2_cache_put(Qcow2Cache *c, void **table)
{
    c->entries[entry_of_table(c, *table)].pins--;
    *table = NULL;
}

void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table)
{
    CacheEntry *e = &c->entries[entry_of_table(c, table)];

    if (!e->dirty) {
        e->dirty = true;
        c->dirty_count++;
    }
}

void qcow2_cache_depends_on(Qcow2Cache *c, Qcow2Cache *dependency)
{
    c->depends = dependency;
}

void qcow2_cache_depends_on_flush(Qcow2Cache *c)
{
    c->depends_on_flush = true;
}

int qcow2_cache_write(Qcow2Cache *c)
{
    int ret = 0;

    for (int i = 0; i < c->size && c->dirty_count > 0; i++) {
        int r = write_entry(c, i);

        ret = ret < 0 ? ret : r;
    }
    return ret;
}

int qcow2_cache_flush(Qcow2Cache *c)
{
    int ret = qcow2_cache_write(c);

    return ret < 0 ? ret : qcow2_barrier(c->s);
}

void qcow2_cache_forget(Qcow2Cache *c, uint64_t offset)
{
    gpointer found = g_hash_table_lookup(c->index, &offset);
    CacheEntry *e;

    if (!found) {
        return;
    }
    e = &c->entries[GPOINTER_TO_INT(found) - 1];
    if (e->pins > 0) {
        return;
    }
    g_hash_table_remove(c->index, &e->offset);
    if (e->dirty) {
        c->dirty_count--;
    }
    e->dirty = false;
    e->offset = 0;
    e->lru = 0;
}
