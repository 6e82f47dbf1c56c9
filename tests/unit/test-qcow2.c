/*
 * qcow2 tests on images this file writes itself: every header check gives
 * one clear line and leaves the file alone, round trips in v2 and v3 at
 * several cluster sizes and refcount widths, allocation across L2 tables
 * and refcount table growth, zero clusters, discard, backing chains with
 * relative names (and loops refused), compressed clusters (read and
 * copy-on-write), hostile L1/L2 entries, and concurrent I/O threads.
 * qemu-img, when installed, double-checks the images we wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "block/block.h"
#include "unit.h"

/* ---- writing images ---- */

typedef struct ImageSpec {
    int version;
    int cluster_bits;
    uint64_t size;
    int refcount_order;
    const char *backing;
    const char *backing_format;
} ImageSpec;

static void put_be32(uint8_t *p, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    memcpy(p, &v, 4);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(p, &v, 8);
}

static void put_refcount(uint8_t *block, uint64_t i, int order, uint64_t v)
{
    int bits = 1 << order;

    if (bits < 8) {
        block[i * bits / 8] |= v << (i * bits % 8);
        return;
    }
    for (int b = 0; b < bits / 8; b++) {
        block[i * bits / 8 + b] = v >> (bits - 8 - 8 * b);
    }
}

/* Header ends at 72/104 + extensions; layout: header, refcount table,
 * refcount block, L1 table (the way qemu-img lays images out). */
static uint8_t *build_qcow2(const ImageSpec *spec, size_t *len)
{
    uint64_t cs = 1ull << spec->cluster_bits, l2_span = cs * (cs / 8);
    uint32_t l1_size = (spec->size + l2_span - 1) / l2_span;
    uint64_t l1_clusters = MAX(1, (l1_size * 8 + cs - 1) / cs);
    uint64_t clusters = 3 + l1_clusters, ext;
    uint8_t *img = g_malloc0(clusters * cs);
    int order = spec->version == 2 ? 4 : spec->refcount_order;

    put_be32(img, 0x514649fb);
    put_be32(img + 4, spec->version);
    put_be32(img + 20, spec->cluster_bits);
    put_be64(img + 24, spec->size);
    put_be32(img + 36, l1_size);
    put_be64(img + 40, 3 * cs);
    put_be64(img + 48, cs);
    put_be32(img + 56, 1);
    ext = 72;
    if (spec->version == 3) {
        put_be32(img + 96, order);
        put_be32(img + 100, 104);
        ext = 104;
    }
    if (spec->backing_format) {
        put_be32(img + ext, 0xe2792aca);
        put_be32(img + ext + 4, strlen(spec->backing_format));
        memcpy(img + ext + 8, spec->backing_format, strlen(spec->backing_format));
        ext += 8 + ((strlen(spec->backing_format) + 7) & ~7ull);
    }
    ext += 8; /* end of extensions */
    if (spec->backing) {
        put_be64(img + 8, ext);
        put_be32(img + 16, strlen(spec->backing));
        memcpy(img + ext, spec->backing, strlen(spec->backing));
    }
    put_be64(img + cs, 2 * cs);
    for (uint64_t c = 0; c < clusters; c++) {
        put_refcount(img + 2 * cs, c, order, 1);
    }
    *len = clusters * cs;
    return img;
}

static char *create_image(const char *dir, const char *name, const ImageSpec *spec)
{
    char *path = g_build_filename(dir, name, NULL);
    size_t len;
    uint8_t *img = build_qcow2(spec, &len);

    CHECK(g_file_set_contents(path, (char *)img, len, NULL));
    g_free(img);
    return path;
}

static const ImageSpec v3_64k = { 3, 16, 64 << 20, 4, NULL, NULL };

static void poke(const char *path, uint64_t offset, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY);

    CHECK(fd >= 0 && pwrite(fd, data, len, offset) == (ssize_t)len);
    close(fd);
}

static void poke_be32(const char *path, uint64_t offset, uint32_t v)
{
    uint8_t b[4];

    put_be32(b, v);
    poke(path, offset, b, 4);
}

static void poke_be64(const char *path, uint64_t offset, uint64_t v)
{
    uint8_t b[8];

    put_be64(b, v);
    poke(path, offset, b, 8);
}

static BlockDriverState *open_qcow2(const char *path, bool read_only, GError **errp)
{
    BlockOptions opts = {
        .filename = path, .format = "qcow2", .read_only = read_only, .discard_unmap = true
    };

    return bdrv_open(&opts, errp);
}

static uint8_t pattern(uint64_t offset, uint64_t seed)
{
    return (offset * 2654435761u + seed * 40503u + (offset >> 13)) >> 7;
}

static void fill(uint8_t *buf, uint64_t offset, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = pattern(offset + i, seed);
    }
}

static bool matches(const uint8_t *buf, uint64_t offset, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != (seed ? pattern(offset + i, seed) : 0)) {
            return false;
        }
    }
    return true;
}

static bool write_pattern(BlockDriverState *bs, uint64_t off, size_t len, uint64_t seed)
{
    uint8_t *buf = g_malloc(len);
    int ret;

    fill(buf, off, len, seed);
    ret = bdrv_pwrite(bs, off, buf, len);
    g_free(buf);
    return ret == 0;
}

/* Does [off, off + len) read as the pattern (or zeros for seed 0)? */
static bool read_matches(BlockDriverState *bs, uint64_t off, size_t len, uint64_t seed)
{
    uint8_t *buf = g_malloc(len);
    bool ok = bdrv_pread(bs, off, buf, len) == 0 && matches(buf, off, len, seed);

    g_free(buf);
    return ok;
}

/* qemu-img check, the oracle, finds no errors and no leaks.  A missing
 * qemu-img is a failure, said once: the check cannot pass unchecked. */
static bool qemu_img_check(const char *path)
{
    g_autofree char *qemu_img = g_find_program_in_path("qemu-img");
    g_autofree char *cmd = g_strdup_printf("qemu-img check -q '%s'", path);
    static bool said;

    if (!qemu_img) {
        if (!said) {
            fprintf(stderr, "qemu-img (Debian's qemu-utils), the oracle of these "
                            "checks, is not installed\n");
            said = true;
        }
        return false;
    }
    return system(cmd) == 0;
}

static void rm_rf(const char *dir)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);

    CHECK(system(cmd) == 0);
}

/* ---- header checks ---- */

typedef struct Corruption {
    uint64_t offset;
    int width; /* 4 or 8 */
    uint64_t value;
    const char *error;
    uint64_t offset2; /* a second 32-bit field to set, or 0 */
    uint32_t value2;
} Corruption;

static const Corruption corruptions[] = {
    { 0, 4, 0x514649fa, "Image is not in qcow2 format" },
    { 4, 4, 1, "Unsupported qcow2 version 1" },
    { 4, 4, 4, "Unsupported qcow2 version 4" },
    { 20, 4, 8, "Unsupported cluster size: 2^8" },
    { 20, 4, 22, "Unsupported cluster size: 2^22" },
    { 24, 8, 1ull << 62, "Image is too big" },
    { 32, 4, 1,
      "Use of AES-CBC encrypted qcow2 images is no longer supported in "
      "system emulators" },
    { 32, 4, 2, "LUKS encrypted qcow2 images are not supported" },
    { 36, 4, 0x7fffffff, "Active L1 table too large" },
    { 36, 4, 0, "L1 table is too small" },
    { 40, 8, 0x30001, "Active L1 table offset invalid" },
    { 40, 8, 1ull << 40, "Active L1 table extends past the end of the file" },
    { 40, 8, 0x10000, "Active L1 table overlaps the reference count table" },
    { 40, 8, 0, "Active L1 table overlaps the qcow2 header" },
    { 48, 8, 0x10008, "Reference count table offset invalid" },
    { 48, 8, 1ull << 40, "Reference count table extends past the end of the file" },
    { 56, 4, 0, "Image does not contain a reference count table" },
    { 56, 4, 0x7fffffff, "Reference count table too large" },
    { 60, 4, 100000, "Snapshot table too large" },
    { 72, 8, 1ull << 20,
      "Unsupported qcow2 feature(s): Unknown incompatible "
      "feature: 100000" },
    { 72, 8, 1ull << 2, "Unsupported qcow2 feature(s): external data file" },
    { 72, 8, 1ull << 4, "Unsupported qcow2 feature(s): extended L2 entries" },
    { 72, 8, 1ull << 3,
      "qcow2: Compression type incompatible feature bit must "
      "not be set" },
    { 72, 8, 2, "qcow2: Image is corrupt; cannot be opened read/write" },
    { 96, 4, 7, "Reference count entry width too large; may not exceed 64 bits" },
    { 100, 4, 50, "qcow2 header too short" },
    { 100, 4, 0x7ffff, "qcow2 header exceeds cluster size" },
    { 8, 8, 1ull << 20, "Invalid backing file offset", 16, 16 },
    { 8, 8, 0x200, "Backing file name too long", 16, 1100 },
    { 104, 4, 0x12345678, NULL }, /* unknown extension: fine */
    { 108, 4, 0xfffff,
      "Invalid qcow2 header extension 0x12345678: length 1048575 "
      "exceeds the header area",
      104, 0x12345678 },
};

UNIT_TEST(corrupt_headers_give_one_clear_error)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    g_autofree char *good = create_image(dir, "good.qcow2", &v3_64k);
    g_autofree char *path = g_build_filename(dir, "bad.qcow2", NULL);
    g_autofree char *orig = NULL;
    gsize orig_len;

    CHECK(g_file_get_contents(good, &orig, &orig_len, NULL));
    for (size_t i = 0; i < G_N_ELEMENTS(corruptions); i++) {
        const Corruption *c = &corruptions[i];
        g_autofree char *before = NULL, *after = NULL;
        gsize len;
        GError *err = NULL;
        BlockDriverState *bs;

        CHECK(g_file_set_contents(path, orig, orig_len, NULL));
        if (c->width == 4) {
            poke_be32(path, c->offset, c->value);
        } else {
            poke_be64(path, c->offset, c->value);
        }
        if (c->offset2) {
            poke_be32(path, c->offset2, c->value2);
        }
        g_file_get_contents(path, &before, &len, NULL);
        bs = open_qcow2(path, false, &err);
        if (c->error) {
            CHECK(!bs);
            CHECK_STR(err ? err->message : NULL, c->error);
        } else {
            CHECK(bs);
        }
        bdrv_close(bs);
        g_clear_error(&err);
        g_file_get_contents(path, &after, &len, NULL);
        CHECK(memcmp(before, after, len) == 0);
    }
    rm_rf(dir);
}

UNIT_TEST(dirty_and_corrupt_images_open_read_only)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    g_autofree char *path = create_image(dir, "x.qcow2", &v3_64k);
    GError *err = NULL;
    BlockDriverState *bs;

    poke_be64(path, 72, 1);
    CHECK(!open_qcow2(path, false, &err));
    CHECK(err && strstr(err->message, "dirty") && !strchr(err->message, '\n'));
    g_clear_error(&err);
    bs = open_qcow2(path, true, NULL);
    CHECK(bs && read_matches(bs, 0, 65536, 0));
    bdrv_close(bs);
    poke_be64(path, 72, 2);
    bs = open_qcow2(path, true, NULL);
    CHECK(bs);
    bdrv_close(bs);
    rm_rf(dir);
}

UNIT_TEST(autoclear_bits_are_cleared_before_writing)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    g_autofree char *path = create_image(dir, "x.qcow2", &v3_64k);
    g_autofree char *data = NULL;
    BlockDriverState *bs;

    poke_be64(path, 88, 3);
    bs = open_qcow2(path, true, NULL);
    bdrv_close(bs);
    g_file_get_contents(path, &data, NULL, NULL);
    CHECK_EQ(data[95], 3);
    g_free(g_steal_pointer(&data));
    bs = open_qcow2(path, false, NULL);
    bdrv_close(bs);
    g_file_get_contents(path, &data, NULL, NULL);
    CHECK_EQ(data[95], 0);
    rm_rf(dir);
}

/* ---- reads and writes ---- */

static void roundtrip(const char *dir, const ImageSpec *spec, BlockCacheMode cache)
{
    g_autofree char *path = create_image(dir, "rt.qcow2", spec);
    BlockOptions opts = { .filename = path, .format = "qcow2", .cache = cache };
    BlockDriverState *bs = bdrv_open(&opts, NULL);
    uint64_t cs = 1ull << spec->cluster_bits, len = 2 * cs + 3;
    const uint64_t offs[] = { 0, 3 * cs - 1, 6 * cs + 17, 10 * cs + cs / 2,
                              spec->size - 3 * cs - 5 };

    CHECK(bs);
    for (size_t i = 0; bs && i < G_N_ELEMENTS(offs); i++) {
        CHECK(write_pattern(bs, offs[i], len, i + 1));
    }
    for (int pass = 0; bs && pass < 2; pass++) {
        for (size_t i = 0; i < G_N_ELEMENTS(offs); i++) {
            CHECK(read_matches(bs, offs[i], len, i + 1));
        }
        CHECK(read_matches(bs, 9 * cs, cs / 2, 0));
        CHECK(read_matches(bs, 14 * cs, cs, 0));
        bdrv_close(bs);
        bs = pass == 0 ? open_qcow2(path, true, NULL) : NULL;
    }
    CHECK(qemu_img_check(path));
}

UNIT_TEST(read_write_round_trips_v2_v3_cluster_sizes)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    const int bits[] = { 9, 12, 16, 21 };

    for (int v = 2; v <= 3; v++) {
        for (size_t b = 0; b < G_N_ELEMENTS(bits); b++) {
            ImageSpec spec = {
                v, bits[b], MAX(16 << 20, 32ull << bits[b]), 4, NULL, NULL
            };

            roundtrip(dir, &spec, b % 2 ? BLOCK_CACHE_NONE : BLOCK_CACHE_WRITEBACK);
        }
    }
    rm_rf(dir);
}

UNIT_TEST(refcount_widths_and_refcount_table_growth)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);

    for (int order = 0; order <= 6; order++) {
        ImageSpec spec = { 3, 9, 32 << 20, order, NULL, NULL };
        g_autofree char *path = create_image(dir, "rc.qcow2", &spec);
        BlockDriverState *bs = open_qcow2(path, false, NULL);

        /* 6 MiB of 512-byte clusters: many L2 tables and refcount blocks;
         * order 6 grows the refcount table several times. */
        for (uint64_t off = 0; bs && off < (6 << 20); off += 300000) {
            CHECK(write_pattern(bs, off, 300000, order + 1));
        }
        CHECK(bs && read_matches(bs, 0, 6 << 20, order + 1));
        CHECK(bs && read_matches(bs, 7 << 20, 1 << 20, 0));
        bdrv_close(bs);
        bs = open_qcow2(path, true, NULL);
        CHECK(bs && read_matches(bs, 0, 6 << 20, order + 1));
        bdrv_close(bs);
        CHECK(qemu_img_check(path));
    }
    rm_rf(dir);
}

static uint64_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : 0;
}

UNIT_TEST(zero_clusters_and_discard)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);

    for (int v = 2; v <= 3; v++) {
        ImageSpec spec = { v, 16, 16 << 20, 4, NULL, NULL };
        g_autofree char *path = create_image(dir, "z.qcow2", &spec);
        BlockDriverState *bs = open_qcow2(path, false, NULL);
        uint64_t size;

        CHECK(write_pattern(bs, 0, 4 << 20, 5));
        CHECK_EQ(bdrv_write_zeroes(bs, 1000, 300000, false), 0); /* partial ends */
        CHECK_EQ(bdrv_write_zeroes(bs, 1 << 20, 1 << 20, true), 0);
        CHECK_EQ(bdrv_discard(bs, 3 << 20, 1 << 20), 0);
        CHECK(read_matches(bs, 0, 1000, 5));
        CHECK(read_matches(bs, 1000, 300000, 0));
        CHECK(read_matches(bs, 301000, (1 << 20) - 301000, 5));
        CHECK(read_matches(bs, 1 << 20, 1 << 20, 0));
        CHECK(read_matches(bs, 2 << 20, 1 << 20, 5));
        CHECK(read_matches(bs, 3 << 20, 1 << 20, 0));
        CHECK_EQ(bdrv_flush(bs), 0);
        size = file_size(path);
        /* Freed clusters are used again before the file grows. */
        CHECK(write_pattern(bs, 8 << 20, 1 << 20, 6));
        CHECK_EQ(bdrv_flush(bs), 0);
        CHECK_EQ(file_size(path), size);
        CHECK(read_matches(bs, 3 << 20, 1 << 20, 0));
        bdrv_close(bs);
        CHECK(qemu_img_check(path));
    }
    rm_rf(dir);
}

/* ---- backing files ---- */

UNIT_TEST(backing_chain_with_relative_names)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    g_autofree char *sub = g_build_filename(dir, "sub", NULL);
    g_autofree char *base = g_build_filename(sub, "base.img", NULL);
    ImageSpec mid_spec = { 3, 16, 8 << 20, 4, "base.img", "raw" };
    ImageSpec top_spec = { 2, 12, 10 << 20, 4, "sub/mid.qcow2", "qcow2" };
    g_autofree char *mid = NULL, *top = NULL, *before = NULL, *after = NULL;
    uint8_t *data = g_malloc(4 << 20);
    BlockDriverState *bs;

    g_mkdir(sub, 0755);
    fill(data, 0, 4 << 20, 7);
    CHECK(g_file_set_contents(base, (char *)data, 4 << 20, NULL));
    mid = create_image(sub, "mid.qcow2", &mid_spec);
    top = create_image(dir, "top.qcow2", &top_spec);
    bs = open_qcow2(mid, false, NULL);
    CHECK(write_pattern(bs, 1 << 20, 100, 8)); /* COW within mid */
    bdrv_close(bs);
    g_file_get_contents(base, &before, NULL, NULL);
    bs = open_qcow2(top, false, NULL);
    CHECK(bs);
    CHECK_STR(bdrv_backing_filename(bs), "sub/mid.qcow2");
    CHECK(read_matches(bs, 0, 1 << 20, 7));
    CHECK(read_matches(bs, 1 << 20, 100, 8));
    CHECK(read_matches(bs, (1 << 20) + 100, (3 << 20) - 100, 7));
    CHECK(read_matches(bs, 4 << 20, 6 << 20, 0)); /* past base, past mid */
    CHECK(write_pattern(bs, 5000, 3, 9));         /* COW from the base */
    CHECK(read_matches(bs, 0, 5000, 7));
    CHECK(read_matches(bs, 5000, 3, 9));
    CHECK(read_matches(bs, 5003, 100000, 7));
    bdrv_close(bs);
    g_file_get_contents(base, &after, NULL, NULL);
    CHECK(memcmp(before, after, 4 << 20) == 0); /* never written */
    CHECK(qemu_img_check(top));
    g_free(data);
    rm_rf(dir);
}

UNIT_TEST(backing_loops_and_deep_chains_are_refused)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    ImageSpec a_spec = { 3, 16, 1 << 20, 4, "b.qcow2", "qcow2" };
    ImageSpec b_spec = { 3, 16, 1 << 20, 4, "a.qcow2", "qcow2" };
    ImageSpec self_spec = { 3, 16, 1 << 20, 4, "self.qcow2", NULL };
    g_autofree char *a = create_image(dir, "a.qcow2", &a_spec);
    g_autofree char *b = create_image(dir, "b.qcow2", &b_spec);
    g_autofree char *self = create_image(dir, "self.qcow2", &self_spec);
    g_autofree char *want = g_strdup_printf(
        "Could not open backing file: Backing chain loop: '%s/a.qcow2' is already "
        "in the chain",
        dir);
    GError *err = NULL;

    CHECK(!open_qcow2(a, false, &err));
    CHECK_STR(err ? err->message : NULL, want);
    g_clear_error(&err);
    CHECK(!open_qcow2(self, true, &err));
    CHECK(err && strstr(err->message, "loop") && !strchr(err->message, '\n'));
    g_clear_error(&err);
    for (int i = 0; i < 40; i++) {
        g_autofree char *name = g_strdup_printf("c%d.qcow2", i);
        g_autofree char *next = g_strdup_printf("c%d.qcow2", i + 1);
        ImageSpec spec = { 3, 16, 1 << 20, 4, i < 39 ? next : NULL, "qcow2" };
        g_autofree char *path = create_image(dir, name, &spec);
    }
    g_autofree char *c0 = g_build_filename(dir, "c0.qcow2", NULL);

    CHECK(!open_qcow2(c0, false, &err));
    CHECK_STR(err ? err->message : NULL,
              "Could not open backing file: Backing chain is longer than 32 images");
    g_clear_error(&err);
    rm_rf(dir);
}

/* ---- compressed clusters ---- */

static void set_refcount16(const char *path, uint64_t cluster)
{
    uint8_t one[2] = { 0, 1 };

    poke(path, 2 * 65536 + 2 * cluster, one, 2);
}

/* An image whose guest cluster 1 is a compressed copy of pattern seed 11;
 * max_sectors claims the largest size the descriptor can hold. */
static char *create_compressed(const char *dir, bool max_sectors, bool garbage)
{
    ImageSpec spec = { 3, 16, 4 << 20, 4, NULL, NULL };
    g_autofree char *path = create_image(dir, "c.qcow2", &spec);
    uint64_t cs = 65536, coff = 5 * cs + 100;
    uint8_t *data = g_malloc(cs), *z = g_malloc(2 * cs);
    z_stream strm = { 0 };
    uint64_t zlen, sectors;

    fill(data, cs, cs, 11);
    deflateInit2(&strm, Z_BEST_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY);
    strm.next_in = data;
    strm.avail_in = cs;
    strm.next_out = z;
    strm.avail_out = 2 * cs;
    CHECK_EQ(deflate(&strm, Z_FINISH), Z_STREAM_END);
    zlen = strm.total_out;
    deflateEnd(&strm);
    if (garbage) {
        memset(z, 0xff, zlen);
    }
    poke(path, coff, z, zlen);
    sectors = max_sectors ? 255 : (coff + zlen - 1) / 512 - coff / 512;
    poke_be64(path, 3 * cs, (4 * cs) | (1ull << 63)); /* L1 -> L2 */
    poke_be64(path, 4 * cs + 8, (1ull << 62) | (sectors << 54) | coff);
    set_refcount16(path, 4);
    for (uint64_t c = coff / cs; c <= (coff + zlen - 1) / cs; c++) {
        set_refcount16(path, c);
    }
    g_free(data);
    g_free(z);
    return g_steal_pointer(&path);
}

UNIT_TEST(compressed_clusters_read_and_copy_on_write)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    g_autofree char *path = create_compressed(dir, false, false);
    BlockDriverState *bs = open_qcow2(path, false, NULL);
    uint64_t cs = 65536;

    CHECK(bs);
    CHECK(read_matches(bs, cs, cs, 11));
    CHECK(read_matches(bs, cs + 4093, 7, 11));
    CHECK(read_matches(bs, 0, cs, 0));
    CHECK(write_pattern(bs, cs + 1000, 10, 12)); /* copy-on-write */
    CHECK(read_matches(bs, cs, 1000, 11));
    CHECK(read_matches(bs, cs + 1000, 10, 12));
    CHECK(read_matches(bs, cs + 1010, cs - 1010, 11));
    bdrv_close(bs);
    CHECK(qemu_img_check(path));
    bs = open_qcow2(path, true, NULL);
    CHECK(bs && read_matches(bs, cs + 1010, cs - 1010, 11));
    bdrv_close(bs);
    rm_rf(dir);
}

UNIT_TEST(bad_compressed_clusters_give_eio)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    uint8_t buf[512];

    for (int variant = 0; variant < 3; variant++) {
        g_autofree char *path = create_compressed(dir, variant == 1, variant == 0);
        BlockDriverState *bs;

        if (variant == 2) { /* compressed data past the end */
            poke_be64(path, 4 * 65536 + 8, (1ull << 62) | (1ull << 40));
        }
        bs = open_qcow2(path, false, NULL);
        CHECK(bs);
        if (variant == 1) { /* huge size: clamped, reads */
            CHECK(read_matches(bs, 65536, 65536, 11));
        } else {
            CHECK_EQ(bdrv_pread(bs, 65536, buf, sizeof(buf)), -EIO);
            CHECK_EQ(bdrv_pwrite(bs, 65536, buf, sizeof(buf)), -EIO);
        }
        CHECK_EQ(bdrv_pread(bs, 0, buf, sizeof(buf)), 0);
        bdrv_close(bs);
    }
    rm_rf(dir);
}

/* ---- hostile metadata ---- */

typedef struct BadEntry {
    uint64_t offset; /* in the file */
    uint64_t value;
} BadEntry;

UNIT_TEST(hostile_l1_and_l2_entries_give_eio_and_touch_nothing)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    const uint64_t cs = 65536, l1 = 3 * cs, l2 = 4 * cs;
    const BadEntry bad[] = {
        { l2, l1 | (1ull << 63) },           /* data in the L1 table */
        { l2, cs | (1ull << 63) },           /* in the refcount table */
        { l2, 2 * cs | (1ull << 63) },       /* in a refcount block */
        { l2, l2 | (1ull << 63) },           /* in its own L2 table */
        { l2, (1ull << 40) | (1ull << 63) }, /* past the end */
        { l2, 5 * cs + 512 },                /* unaligned */
        { l2, 5 * cs | (1ull << 2) },        /* reserved bit */
        { l2, 1ull << 63 },                  /* copied, no offset */
        { l1, cs | (1ull << 63) },           /* L2 table = refcount table */
        { l1, l2 + 512 },                    /* unaligned L2 table */
        { l1, (1ull << 45) | (1ull << 63) }, /* L2 table past the end */
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *path = create_image(dir, "h.qcow2", &v3_64k);
        g_autofree char *before = NULL, *after = NULL;
        gsize len_before, len_after;
        uint8_t buf[4096] = { 0 };
        BlockDriverState *bs;

        CHECK(truncate(path, 8 * cs) == 0);
        poke_be64(path, l1, l2 | (1ull << 63));
        poke_be64(path, 2 * cs + 8, 0x0001000100000000ull); /* L2 cluster */
        poke_be64(path, bad[i].offset, bad[i].value);
        if (bad[i].offset == l2) {
            poke_be64(path, l2 + 8 * 20, (6 * cs) | (1ull << 63)); /* sound */
            poke_be64(path, 2 * cs + 12, 0x0001000100000000ull);
        }
        g_file_get_contents(path, &before, &len_before, NULL);
        bs = open_qcow2(path, false, NULL);
        CHECK(bs);
        CHECK_EQ(bdrv_pread(bs, 100, buf, sizeof(buf)), -EIO);
        CHECK_EQ(bdrv_pwrite(bs, 100, buf, sizeof(buf)), -EIO);
        CHECK_EQ(bdrv_write_zeroes(bs, 0, cs, false), -EIO);
        CHECK_EQ(bdrv_discard(bs, 0, cs), -EIO);
        if (bad[i].offset == l2) {
            CHECK_EQ(bdrv_pread(bs, 20 * cs, buf, sizeof(buf)), 0);
        }
        bdrv_close(bs);
        g_file_get_contents(path, &after, &len_after, NULL);
        CHECK(len_before == len_after && memcmp(before, after, len_after) == 0);
    }
    rm_rf(dir);
}

/* ---- migration hand-over ---- */

UNIT_TEST(destination_rereads_metadata_when_it_takes_the_lock)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    g_autofree char *path = create_image(dir, "m.qcow2", &v3_64k);
    BlockOptions dst_opts = { .filename = path, .format = "qcow2", .inactive = true };
    BlockDriverState *src = open_qcow2(path, false, NULL);
    BlockDriverState *dst = bdrv_open(&dst_opts, NULL);

    CHECK(src && dst);
    /* The source allocates after the destination read the tables. */
    CHECK(write_pattern(src, 3 << 20, 200000, 17));
    bdrv_unlock(src);
    CHECK(bdrv_lock(dst, NULL));
    CHECK(read_matches(dst, 3 << 20, 200000, 17));
    CHECK(write_pattern(dst, 5 << 20, 100000, 18));
    bdrv_close(dst);
    bdrv_close(src);
    CHECK(qemu_img_check(path));
    rm_rf(dir);
}

/* ---- threads ---- */

typedef struct ThreadArgs {
    BlockDriverState *bs;
    int index;
    int failures;
} ThreadArgs;

static void *io_thread(void *opaque)
{
    ThreadArgs *t = opaque;

    for (int i = 0; i < 40; i++) {
        /* Neighbouring threads share clusters and L2 tables. */
        uint64_t off = ((uint64_t)i * 8 + t->index) * 20000;

        t->failures += !write_pattern(t->bs, off, 20000, 13);
        t->failures += !read_matches(t->bs, off, 20000, 13);
        if (i % 10 == 9) {
            t->failures += bdrv_flush(t->bs) != 0;
        }
    }
    return NULL;
}

UNIT_TEST(concurrent_io_threads)
{
    g_autofree char *dir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    ImageSpec spec = { 3, 12, 16 << 20, 4, NULL, NULL };
    g_autofree char *path = create_image(dir, "t.qcow2", &spec);
    BlockDriverState *bs = open_qcow2(path, false, NULL);
    pthread_t tid[8];
    ThreadArgs args[8];

    for (int i = 0; i < 8; i++) {
        args[i] = (ThreadArgs){ bs, i, 0 };
        pthread_create(&tid[i], NULL, io_thread, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(tid[i], NULL);
        CHECK_EQ(args[i].failures, 0);
    }
    CHECK(read_matches(bs, 0, 40 * 8 * 20000, 13));
    bdrv_close(bs);
    CHECK(qemu_img_check(path));
    rm_rf(dir);
}

UNIT_MAIN()
