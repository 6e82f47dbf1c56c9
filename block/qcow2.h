/*
 * qcow2 internals shared by block/qcow2*.c: on-disk constants, the image
 * state, the metadata table cache, refcounts and cluster mapping.
 * Locking: s->lock (a mutex) guards all metadata and allocation; data I/O
 * to clusters already mapped runs unlocked under s->free_lock (read side),
 * which code that frees clusters takes for writing.
 */
#ifndef BLOCK_QCOW2_H
#define BLOCK_QCOW2_H

#include <string.h>

#include "block-int.h"

#define QCOW2_MAGIC              0x514649fbu /* "QFI\xfb" */
#define QCOW2_V2_HEADER_SIZE     72
#define QCOW2_V3_HEADER_SIZE     104
#define QCOW2_MIN_CLUSTER_BITS   9
#define QCOW2_MAX_CLUSTER_BITS   21
#define QCOW2_MAX_L1_BYTES       (32u * 1024 * 1024) /* QEMU's limits */
#define QCOW2_MAX_REFTABLE_BYTES (8u * 1024 * 1024)
#define QCOW2_MAX_SNAPSHOTS      65536
#define QCOW2_MAX_BACKING_NAME   1023
#define QCOW2_MAX_FORMAT_NAME    15

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY       (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ull << 4)

/* Header extension types. */
#define QCOW2_EXT_END            0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE  0x6803f857u

/* Table entries. */
#define QCOW2_OFFSET_MASK      0x00fffffffffffe00ull /* bits 9-55 */
#define QCOW2_L1E_RESERVED     0x7f000000000001ffull
#define QCOW2_L2E_RESERVED     0x3f000000000001feull
#define QCOW2_REFT_RESERVED    0x00000000000001ffull
#define QCOW2_OFLAG_COPIED     (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO       (1ull << 0)

/* What a cluster of the image file holds, for the overlap checks. */
typedef enum Qcow2MetaKind {
    QCOW2_META_NONE,
    QCOW2_META_HEADER,
    QCOW2_META_L1,
    QCOW2_META_REFTABLE,
    QCOW2_META_REFBLOCK,
    QCOW2_META_L2,
    QCOW2_META_SNAPSHOT_TABLE,
    QCOW2_META_SNAPSHOT_L1,
    QCOW2_META_SNAPSHOT_L2,
    QCOW2_META_CONFLICT, /* claimed twice: any use is -EIO */
} Qcow2MetaKind;

typedef enum Qcow2ClusterType {
    QCOW2_CLUSTER_UNALLOCATED,
    QCOW2_CLUSTER_ZERO_PLAIN, /* reads zeros, no host cluster */
    QCOW2_CLUSTER_ZERO_ALLOC, /* reads zeros, host cluster preallocated */
    QCOW2_CLUSTER_NORMAL,
    QCOW2_CLUSTER_COMPRESSED,
} Qcow2ClusterType;

typedef struct Qcow2Cache Qcow2Cache;

typedef struct Qcow2State {
    BlockDriverState *bs;
    BlockFile *file;
    pthread_mutex_t lock;
    pthread_rwlock_t free_lock;

    int version;
    int cluster_bits;
    uint64_t cluster_size;
    int l2_bits; /* log2 of entries per L2 table */
    uint64_t size;
    uint64_t incompatible, compatible, autoclear;
    uint32_t header_length;
    uint32_t compression_type;

    uint32_t l1_size;
    uint64_t l1_offset;
    uint64_t *l1_table; /* host byte order */

    int refcount_order;
    int refblock_bits; /* log2 of entries per refcount block */
    uint64_t reftable_offset;
    uint32_t reftable_size; /* entries */
    uint64_t *reftable;     /* host byte order */
    uint64_t free_hint;     /* no free cluster below this index */

    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    char *backing_file;   /* from the header, or NULL */
    char *backing_format; /* from the header extension, or NULL */

    int csize_shift; /* compressed descriptors */
    uint64_t csize_mask;
    uint64_t coffset_mask;

    GHashTable *meta;   /* cluster index -> Qcow2MetaKind */
    uint64_t file_size; /* bytes; grows as clusters are written */
    Qcow2Cache *l2_cache;
    Qcow2Cache *refblock_cache;

    pthread_mutex_t zcache_lock; /* the last decompressed cluster */
    uint64_t zcache_entry;
    uint8_t *zcache_data;
} Qcow2State;

/* One run of guest clusters mapped alike, from qcow2_get_mapping(). */
typedef struct Qcow2Mapping {
    Qcow2ClusterType type;
    uint64_t bytes;       /* from the guest offset asked for */
    uint64_t host_offset; /* NORMAL/ZERO_ALLOC: of that guest offset */
    uint64_t l2_entry;    /* COMPRESSED: the descriptor */
    bool copied;          /* refcount 1: may be written in place */
} Qcow2Mapping;

static inline uint32_t qcow2_be32(const void *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT32_FROM_BE(v);
}

static inline uint64_t qcow2_be64(const void *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return GUINT64_FROM_BE(v);
}

static inline uint64_t qcow2_offset_into_cluster(Qcow2State *s, uint64_t off)
{
    return off & (s->cluster_size - 1);
}

static inline uint64_t qcow2_l2_entries(Qcow2State *s)
{
    return 1ull << s->l2_bits;
}

static inline uint64_t qcow2_file_size(Qcow2State *s)
{
    return __atomic_load_n(&s->file_size, __ATOMIC_ACQUIRE);
}

void qcow2_note_file_end(Qcow2State *s, uint64_t end);

/* qcow2-header.c: parsing and validation at open; header updates. */
bool qcow2_read_header(Qcow2State *s, GError **errp);
bool qcow2_load_tables(Qcow2State *s, GError **errp);
int qcow2_write_reftable_location(Qcow2State *s, uint64_t offset, uint32_t clusters);
int qcow2_clear_autoclear(Qcow2State *s);

/* qcow2-meta.c: the map of metadata clusters. */
void qcow2_meta_add(Qcow2State *s, uint64_t offset, uint64_t bytes, Qcow2MetaKind kind);
void qcow2_meta_remove(Qcow2State *s, uint64_t offset, uint64_t bytes);
Qcow2MetaKind qcow2_meta_kind(Qcow2State *s, uint64_t offset);
bool qcow2_meta_overlaps(Qcow2State *s, uint64_t offset, uint64_t bytes);
bool qcow2_add_snapshot_metadata(Qcow2State *s, GError **errp);

/* qcow2-cache.c: cluster-sized tables, written back in dependency order. */
Qcow2Cache *qcow2_cache_new(Qcow2State *s, int entries, Qcow2MetaKind kind);
void qcow2_cache_free(Qcow2Cache *c);
int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, void **table);
int qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset, void **table);
void qcow2_cache_put(Qcow2Cache *c, void **table);
void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table);
void qcow2_cache_depends_on(Qcow2Cache *c, Qcow2Cache *dependency);
void qcow2_cache_depends_on_flush(Qcow2Cache *c);
int qcow2_cache_write(Qcow2Cache *c);
int qcow2_cache_flush(Qcow2Cache *c);
void qcow2_cache_forget(Qcow2Cache *c, uint64_t offset);

/* qcow2-refcount.c: refcounts and host cluster allocation. */
int qcow2_get_refcount(Qcow2State *s, uint64_t cluster, uint64_t *refcount);
/* Up to count contiguous new clusters (at least one): *allocated says how many. */
int64_t qcow2_alloc_clusters(Qcow2State *s, uint64_t count, uint64_t *allocated);
int qcow2_free_clusters(Qcow2State *s, uint64_t offset, uint64_t bytes);
int qcow2_free_l2_entry(Qcow2State *s, uint64_t l2_entry);
int qcow2_barrier(Qcow2State *s);

/* qcow2-cluster.c: guest-to-host mapping and L2 updates. */
Qcow2ClusterType qcow2_entry_type(Qcow2State *s, uint64_t l2_entry);
int qcow2_get_mapping(Qcow2State *s, uint64_t offset, uint64_t bytes, Qcow2Mapping *map);
int qcow2_get_l2_for_write(Qcow2State *s, uint64_t offset, uint64_t **l2,
                           unsigned *index);
int qcow2_check_data_range(Qcow2State *s, uint64_t host_offset, uint64_t bytes);
int qcow2_zero_or_discard(Qcow2State *s, uint64_t offset, uint64_t bytes, bool discard,
                          bool may_unmap);

/* qcow2-io.c: guest reads and writes. */
int qcow2_read(Qcow2State *s, uint64_t offset, uint64_t bytes, const struct iovec *iov,
               int iovcnt);
int qcow2_write(Qcow2State *s, uint64_t offset, uint64_t bytes, const struct iovec *iov,
                int iovcnt);
int qcow2_read_compressed(Qcow2State *s, uint64_t l2_entry, uint8_t *out);

#endif
