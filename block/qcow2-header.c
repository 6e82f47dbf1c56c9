/*
 * qcow2 header parsing with strict checks (each failure one line, QEMU's
 * wording where QEMU has one), header extensions, the backing file name,
 * loading the L1 and refcount tables, and the few header updates we make.
 * Called at open (single-threaded) or under s->lock.
 */
#include <inttypes.h>
#include <string.h>

#include "qcow2.h"
#include "util/error.h"

/* The header cluster as read from the file, zero-filled past its end. */
typedef struct HeaderBuf {
    uint8_t *data;
    size_t len;
} HeaderBuf;

static const char *const known_incompat_names[] = {
    "dirty bit",        "corrupt bit",         "external data file",
    "compression type", "extended L2 entries",
};

static bool parse_fixed_fields(Qcow2State *s, const uint8_t *h, GError **errp)
{
    if (qcow2_be32(h) != QCOW2_MAGIC) {
        error_setg(errp, "Image is not in qcow2 format");
        return false;
    }
    s->version = qcow2_be32(h + 4);
    if (s->version < 2 || s->version > 3) {
        /* unsigned, as QEMU prints it: 0xffffffff is 4294967295 */
        error_setg(errp, "Unsupported qcow2 version %u", qcow2_be32(h + 4));
        return false;
    }
    s->cluster_bits = qcow2_be32(h + 20);
    if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        s->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        error_setg(errp, "Unsupported cluster size: 2^%d", s->cluster_bits);
        return false;
    }
    s->cluster_size = 1ull << s->cluster_bits;
    s->l2_bits = s->cluster_bits - 3;
    s->size = qcow2_be64(h + 24);
    s->l1_size = qcow2_be32(h + 36);
    s->l1_offset = qcow2_be64(h + 40);
    s->reftable_offset = qcow2_be64(h + 48);
    s->reftable_size = qcow2_be32(h + 56); /* clusters, for now */
    s->nb_snapshots = qcow2_be32(h + 60);
    s->snapshots_offset = qcow2_be64(h + 64);
    s->refcount_order = 4;
    s->header_length = QCOW2_V2_HEADER_SIZE;
    if (s->version == 3) {
        s->incompatible = qcow2_be64(h + 72);
        s->compatible = qcow2_be64(h + 80);
        s->autoclear = qcow2_be64(h + 88);
        s->refcount_order = qcow2_be32(h + 96);
        s->header_length = qcow2_be32(h + 100);
    }
    return true;
}

static bool check_header_length(Qcow2State *s, const uint8_t *h, GError **errp)
{
    if (s->version == 2) {
        return true;
    }
    if (s->header_length < QCOW2_V3_HEADER_SIZE) {
        error_setg(errp, "qcow2 header too short");
        return false;
    }
    if (s->header_length > s->cluster_size) {
        error_setg(errp, "qcow2 header exceeds cluster size");
        return false;
    }
    if (s->header_length > QCOW2_V3_HEADER_SIZE) {
        s->compression_type = h[104];
    }
    if ((uint32_t)s->refcount_order > 6) {
        error_setg(errp, "Reference count entry width too large; may not "
                         "exceed 64 bits");
        return false;
    }
    return true;
}

/* Name unsupported incompatible features, from the image's table if any. */
static char *feature_names(uint64_t bits, const uint8_t *table, size_t len)
{
    GString *names = g_string_new(NULL);

    for (int bit = 0; bit < 64; bit++) {
        const char *name = NULL;
        char buf[47];

        if (!(bits & (1ull << bit))) {
            continue;
        }
        for (size_t i = 0; table && i + 48 <= len; i += 48) {
            if (table[i] == 0 && table[i + 1] == bit) {
                g_strlcpy(buf, (const char *)table + i + 2, sizeof(buf));
                name = buf;
            }
        }
        if (!name && bit < (int)G_N_ELEMENTS(known_incompat_names)) {
            name = known_incompat_names[bit];
        }
        if (names->len) {
            g_string_append(names, ", ");
        }
        if (name) {
            g_string_append(names, name);
        } else {
            g_string_append_printf(names, "Unknown incompatible feature: %" PRIx64,
                                   (uint64_t)1 << bit);
        }
    }
    return g_string_free(names, FALSE);
}

static bool check_features(Qcow2State *s, const uint8_t *table, size_t len, GError **errp)
{
    uint64_t unsupported = s->incompatible &
                           ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
                             QCOW2_INCOMPAT_COMPRESSION);

    if (unsupported) {
        g_autofree char *names = feature_names(unsupported, table, len);

        error_setg(errp, "Unsupported qcow2 feature(s): %s", names);
        return false;
    }
    if (s->incompatible & QCOW2_INCOMPAT_COMPRESSION) {
        if (s->compression_type == 0) {
            error_setg(errp, "qcow2: Compression type incompatible feature bit "
                             "must not be set");
        } else {
            error_setg(errp,
                       "Unsupported qcow2 compression type %u (only zlib "
                       "is supported)",
                       s->compression_type);
        }
        return false;
    }
    if (s->compression_type != 0) {
        error_setg(errp,
                   "qcow2: Invalid compression type %u without the "
                   "compression type feature bit",
                   s->compression_type);
        return false;
    }
    if (!s->bs->read_only && (s->incompatible & QCOW2_INCOMPAT_CORRUPT)) {
        error_setg(errp, "qcow2: Image is corrupt; cannot be opened read/write");
        return false;
    }
    if (!s->bs->read_only && (s->incompatible & QCOW2_INCOMPAT_DIRTY)) {
        error_setg(errp, "qcow2: Image is dirty (lazy refcounts); repair it with "
                         "'qemu-img check -r all' before opening it read/write");
        return false;
    }
    return true;
}

static bool check_crypt_and_size(Qcow2State *s, const uint8_t *h, GError **errp)
{
    uint32_t crypt = qcow2_be32(h + 32);
    uint64_t per_l1 = s->cluster_size << s->l2_bits;
    uint64_t l1_needed = s->size / per_l1 + (s->size % per_l1 != 0);

    if (crypt == 1) {
        error_setg(errp, "Use of AES-CBC encrypted qcow2 images is no longer "
                         "supported in system emulators");
        return false;
    }
    if (crypt == 2) {
        error_setg(errp, "LUKS encrypted qcow2 images are not supported");
        return false;
    }
    if (crypt != 0) {
        error_setg(errp, "Unsupported encryption method: %u", crypt);
        return false;
    }
    if (s->size > INT64_MAX || l1_needed > QCOW2_MAX_L1_BYTES / 8) {
        error_setg(errp, "Image is too big");
        return false;
    }
    if (s->l1_size > QCOW2_MAX_L1_BYTES / 8) {
        error_setg(errp, "Active L1 table too large");
        return false;
    }
    if (s->l1_size < l1_needed) {
        error_setg(errp, "L1 table is too small");
        return false;
    }
    return true;
}

/* A table [offset, offset + bytes) must be aligned and inside the file. */
static bool check_table(Qcow2State *s, uint64_t offset, uint64_t bytes, const char *what,
                        GError **errp)
{
    if (qcow2_offset_into_cluster(s, offset) || offset >= (1ull << 56)) {
        error_setg(errp, "%s offset invalid", what);
        return false;
    }
    if (offset + bytes > s->file_size) {
        error_setg(errp, "%s extends past the end of the file", what);
        return false;
    }
    if (bytes > 0 && offset < s->cluster_size) {
        error_setg(errp, "%s overlaps the qcow2 header", what);
        return false;
    }
    return true;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

static bool check_tables(Qcow2State *s, GError **errp)
{
    uint64_t reftable_clusters = s->reftable_size;
    uint64_t l1_bytes = (uint64_t)s->l1_size * 8;
    uint64_t reftable_bytes = reftable_clusters << s->cluster_bits;

    if (reftable_clusters == 0) {
        error_setg(errp, "Image does not contain a reference count table");
        return false;
    }
    if (reftable_bytes > QCOW2_MAX_REFTABLE_BYTES) {
        error_setg(errp, "Reference count table too large");
        return false;
    }
    if (!check_table(s, s->l1_offset, l1_bytes, "Active L1 table", errp) ||
        !check_table(s, s->reftable_offset, reftable_bytes, "Reference count table",
                     errp)) {
        return false;
    }
    if (ranges_overlap(s->l1_offset, l1_bytes, s->reftable_offset, reftable_bytes)) {
        error_setg(errp, "Active L1 table overlaps the reference count table");
        return false;
    }
    if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        error_setg(errp, "Snapshot table too large");
        return false;
    }
    if (s->nb_snapshots &&
        !check_table(s, s->snapshots_offset, 40, "Snapshot table", errp)) {
        return false;
    }
    s->reftable_size = reftable_bytes / 8;
    return true;
}

static bool read_backing_format(Qcow2State *s, const uint8_t *data, uint32_t len,
                                GError **errp)
{
    if (len > QCOW2_MAX_FORMAT_NAME || memchr(data, 0, len)) {
        error_setg(errp, "Invalid backing format header extension");
        return false;
    }
    g_free(s->backing_format);
    s->backing_format = g_strndup((const char *)data, len);
    return true;
}

/* Walk the header extensions in [start, end); remember the feature table. */
static bool read_extensions(Qcow2State *s, HeaderBuf *hb, uint64_t start, uint64_t end,
                            const uint8_t **features, size_t *features_len, GError **errp)
{
    uint64_t off = start;

    while (off + 8 <= end) {
        uint32_t type = qcow2_be32(hb->data + off);
        uint32_t len = qcow2_be32(hb->data + off + 4);

        off += 8;
        if (type == QCOW2_EXT_END) {
            break;
        }
        if (len > end - off) {
            error_setg(errp,
                       "Invalid qcow2 header extension 0x%08x: length %u "
                       "exceeds the header area",
                       type, len);
            return false;
        }
        if (type == QCOW2_EXT_BACKING_FORMAT &&
            !read_backing_format(s, hb->data + off, len, errp)) {
            return false;
        }
        if (type == QCOW2_EXT_FEATURE_TABLE) {
            *features = hb->data + off;
            *features_len = len;
        }
        off += ROUND_UP((uint64_t)len, 8);
    }
    return true;
}

static bool read_backing_name(Qcow2State *s, HeaderBuf *hb, uint64_t offset, uint32_t len,
                              GError **errp)
{
    if (offset == 0 || len == 0) {
        return true;
    }
    if (offset < s->header_length || offset > s->cluster_size ||
        len > s->cluster_size - offset) {
        error_setg(errp, "Invalid backing file offset");
        return false;
    }
    if (len > QCOW2_MAX_BACKING_NAME) {
        error_setg(errp, "Backing file name too long");
        return false;
    }
    if (memchr(hb->data + offset, 0, len)) {
        error_setg(errp, "Invalid backing file name: it contains a NUL byte");
        return false;
    }
    s->backing_file = g_strndup((const char *)hb->data + offset, len);
    return true;
}

static bool parse_header_cluster(Qcow2State *s, HeaderBuf *hb, GError **errp)
{
    const uint8_t *h = hb->data, *features = NULL;
    size_t features_len = 0;
    uint64_t backing_offset = qcow2_be64(h + 8);
    uint32_t backing_len = qcow2_be32(h + 16);
    uint64_t ext_end = s->cluster_size;

    if (backing_offset > s->header_length && backing_offset < ext_end) {
        ext_end = backing_offset;
    }
    if (!read_extensions(s, hb, s->header_length, ext_end, &features, &features_len,
                         errp) ||
        !check_features(s, features, features_len, errp) ||
        !check_crypt_and_size(s, h, errp) || !check_tables(s, errp)) {
        return false;
    }
    return read_backing_name(s, hb, backing_offset, backing_len, errp);
}

bool qcow2_read_header(Qcow2State *s, GError **errp)
{
    uint8_t fixed[QCOW2_V3_HEADER_SIZE + 8] = { 0 };
    int64_t file_size = block_file_length(s->file);
    HeaderBuf hb = { NULL, 0 };
    bool ok;
    int ret;

    if (file_size < 0) {
        error_setg_errno(errp, (int)-file_size, "Could not get the image size");
        return false;
    }
    s->file_size = file_size;
    ret = block_file_pread(s->file, 0, fixed, sizeof(fixed));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        return false;
    }
    if (!parse_fixed_fields(s, fixed, errp) || !check_header_length(s, fixed, errp)) {
        return false;
    }
    hb.len = s->cluster_size;
    hb.data = block_file_alloc_buffer(s->file, hb.len);
    ret = block_file_pread(s->file, 0, hb.data, MIN(hb.len, (uint64_t)file_size));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        ok = false;
    } else {
        ok = parse_header_cluster(s, &hb, errp);
    }
    block_file_free_buffer(hb.data);
    return ok;
}

static uint64_t *read_table(Qcow2State *s, uint64_t offset, uint64_t entries,
                            const char *what, GError **errp)
{
    uint64_t *table = g_try_new(uint64_t, MAX(entries, 1));
    int ret;

    if (!table) {
        error_setg(errp, "Could not allocate the %s", what);
        return NULL;
    }
    ret = block_file_pread(s->file, offset, table, entries * 8);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the %s", what);
        g_free(table);
        return NULL;
    }
    for (uint64_t i = 0; i < entries; i++) {
        table[i] = GUINT64_FROM_BE(table[i]);
    }
    return table;
}

/* Register the tables the L1 and refcount tables point to. */
static void add_table_metadata(Qcow2State *s)
{
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t off = s->l1_table[i] & QCOW2_OFFSET_MASK;

        if (off && !qcow2_offset_into_cluster(s, off) && off < s->file_size) {
            qcow2_meta_add(s, off, s->cluster_size, QCOW2_META_L2);
        }
    }
    for (uint32_t i = 0; i < s->reftable_size; i++) {
        uint64_t off = s->reftable[i] & ~QCOW2_REFT_RESERVED;

        if (off && !qcow2_offset_into_cluster(s, off) && off < s->file_size) {
            qcow2_meta_add(s, off, s->cluster_size, QCOW2_META_REFBLOCK);
        }
    }
}

bool qcow2_load_tables(Qcow2State *s, GError **errp)
{
    s->l1_table = read_table(s, s->l1_offset, s->l1_size, "L1 table", errp);
    if (!s->l1_table) {
        return false;
    }
    s->reftable = read_table(s, s->reftable_offset, s->reftable_size,
                             "reference count table", errp);
    if (!s->reftable) {
        return false;
    }
    qcow2_meta_add(s, 0, s->cluster_size, QCOW2_META_HEADER);
    qcow2_meta_add(s, s->l1_offset, (uint64_t)s->l1_size * 8, QCOW2_META_L1);
    qcow2_meta_add(s, s->reftable_offset, (uint64_t)s->reftable_size * 8,
                   QCOW2_META_REFTABLE);
    if (!qcow2_add_snapshot_metadata(s, errp)) {
        return false;
    }
    add_table_metadata(s);
    return true;
}

int qcow2_write_reftable_location(Qcow2State *s, uint64_t offset, uint32_t clusters)
{
    uint8_t buf[12];
    uint64_t off_be = GUINT64_TO_BE(offset);
    uint32_t clusters_be = GUINT32_TO_BE(clusters);

    memcpy(buf, &off_be, 8);
    memcpy(buf + 8, &clusters_be, 4);
    return block_file_pwrite(s->file, 48, buf, sizeof(buf));
}

/* We don't maintain any auto-clear feature (bitmaps): clear them before
 * the first write, as the specification asks. */
int qcow2_clear_autoclear(Qcow2State *s)
{
    uint64_t zero = 0;
    int ret;

    if (s->version < 3 || s->autoclear == 0) {
        return 0;
    }
    ret = block_file_pwrite(s->file, 88, &zero, sizeof(zero));
    if (ret == 0) {
        ret = qcow2_barrier(s);
    }
    if (ret == 0) {
        s->autoclear = 0;
    }
    return ret;
}
