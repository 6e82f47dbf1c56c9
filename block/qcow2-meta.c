/*
 * Which clusters of a qcow2 file hold metadata (header, L1/L2 tables,
 * refcount structures, snapshots), so that no data cluster, compressed
 * cluster or table an image points to can overlap them.  Built at open
 * from the tables, kept up to date as tables are allocated and freed.
 * Callers hold s->lock (or are opening the image).
 */
#include <string.h>

#include "qcow2.h"
#include "util/error.h"

/* Snapshot L1 tables read at open, in all: more is refused. */
#define MAX_SNAPSHOT_L1_BYTES (256ull * 1024 * 1024)
/* QEMU's bound on the snapshot table's size. */
#define MAX_SNAPSHOT_TABLE_BYTES (64ull * 1024 * 1024)

static Qcow2MetaKind merge_kinds(Qcow2MetaKind old, Qcow2MetaKind new)
{
    if (old == QCOW2_META_NONE || old == new) {
        return new;
    }
    /* A table shared by the active L1 and a snapshot's is both. */
    if ((old == QCOW2_META_L2 && new == QCOW2_META_SNAPSHOT_L2) ||
        (old == QCOW2_META_SNAPSHOT_L2 && new == QCOW2_META_L2)) {
        return QCOW2_META_L2;
    }
    return QCOW2_META_CONFLICT;
}

void qcow2_meta_add(Qcow2State *s, uint64_t offset, uint64_t bytes, Qcow2MetaKind kind)
{
    if (bytes == 0) {
        return;
    }
    for (uint64_t c = offset >> s->cluster_bits;
         c <= (offset + bytes - 1) >> s->cluster_bits; c++) {
        gpointer key = GSIZE_TO_POINTER(c);
        Qcow2MetaKind old = GPOINTER_TO_INT(g_hash_table_lookup(s->meta, key));

        g_hash_table_insert(s->meta, key, GINT_TO_POINTER(merge_kinds(old, kind)));
    }
}

void qcow2_meta_remove(Qcow2State *s, uint64_t offset, uint64_t bytes)
{
    if (bytes == 0) {
        return;
    }
    for (uint64_t c = offset >> s->cluster_bits;
         c <= (offset + bytes - 1) >> s->cluster_bits; c++) {
        g_hash_table_remove(s->meta, GSIZE_TO_POINTER(c));
    }
}

Qcow2MetaKind qcow2_meta_kind(Qcow2State *s, uint64_t offset)
{
    gpointer key = GSIZE_TO_POINTER(offset >> s->cluster_bits);

    return GPOINTER_TO_INT(g_hash_table_lookup(s->meta, key));
}

bool qcow2_meta_overlaps(Qcow2State *s, uint64_t offset, uint64_t bytes)
{
    if (bytes == 0) {
        return false;
    }
    for (uint64_t c = offset >> s->cluster_bits;
         c <= (offset + bytes - 1) >> s->cluster_bits; c++) {
        if (g_hash_table_contains(s->meta, GSIZE_TO_POINTER(c))) {
            return true;
        }
    }
    return false;
}

/* Register one snapshot's L1 table and the L2 tables it points to. */
static bool add_snapshot_l1(Qcow2State *s, uint32_t n, uint64_t l1_offset,
                            uint32_t l1_size, uint64_t *budget, GError **errp)
{
    uint64_t bytes = (uint64_t)l1_size * 8;
    uint64_t *l1;
    int ret;

    if (qcow2_offset_into_cluster(s, l1_offset) || bytes > QCOW2_MAX_L1_BYTES ||
        l1_offset > s->file_size || bytes > s->file_size - l1_offset ||
        (bytes && l1_offset < s->cluster_size)) {
        error_setg(errp, "Snapshot %u: L1 table offset invalid", n);
        return false;
    }
    if (bytes > *budget) {
        error_setg(errp, "Snapshot L1 tables too large");
        return false;
    }
    *budget -= bytes;
    qcow2_meta_add(s, l1_offset, bytes, QCOW2_META_SNAPSHOT_L1);
    l1 = g_malloc(MAX(bytes, 1));
    ret = block_file_pread(s->file, l1_offset, l1, bytes);
    for (uint32_t i = 0; ret == 0 && i < l1_size; i++) {
        uint64_t off = GUINT64_FROM_BE(l1[i]) & QCOW2_OFFSET_MASK;

        if (off && !qcow2_offset_into_cluster(s, off) && off < s->file_size) {
            qcow2_meta_add(s, off, s->cluster_size, QCOW2_META_SNAPSHOT_L2);
        }
    }
    g_free(l1);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read snapshot %u's L1 table", n);
        return false;
    }
    return true;
}

/* Walk the snapshot table, with every length checked against its bounds. */
static bool parse_snapshot_table(Qcow2State *s, const uint8_t *table, uint64_t len,
                                 uint64_t *used, GError **errp)
{
    uint64_t off = 0, budget = MAX_SNAPSHOT_L1_BYTES;

    for (uint32_t n = 0; n < s->nb_snapshots; n++) {
        uint64_t entry_len;

        if (len - off < 40) {
            error_setg(errp, "Snapshot table is truncated");
            return false;
        }
        entry_len = 40ull + qcow2_be32(table + off + 36) +
                    (table[off + 12] << 8 | table[off + 13]) +
                    (table[off + 14] << 8 | table[off + 15]);
        if (entry_len > len - off) {
            error_setg(errp, "Snapshot table is truncated");
            return false;
        }
        if (!add_snapshot_l1(s, n, qcow2_be64(table + off), qcow2_be32(table + off + 8),
                             &budget, errp)) {
            return false;
        }
        *used = off + entry_len;
        /* Entries are padded to 8 bytes; the file may end before the last
         * entry's padding. */
        off = MIN(len, off + ROUND_UP(entry_len, 8));
    }
    return true;
}

bool qcow2_add_snapshot_metadata(Qcow2State *s, GError **errp)
{
    uint64_t len, used = 0;
    uint8_t *table;
    bool ok;
    int ret;

    if (s->nb_snapshots == 0) {
        return true;
    }
    len = MIN(s->file_size - s->snapshots_offset, MAX_SNAPSHOT_TABLE_BYTES);
    table = g_try_malloc(len);
    if (!table) {
        error_setg(errp, "Could not allocate the snapshot table");
        return false;
    }
    ret = block_file_pread(s->file, s->snapshots_offset, table, len);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the snapshot table");
        ok = false;
    } else {
        ok = parse_snapshot_table(s, table, len, &used, errp);
    }
    g_free(table);
    if (ok) {
        qcow2_meta_add(s, s->snapshots_offset, used, QCOW2_META_SNAPSHOT_TABLE);
    }
    return ok;
}
