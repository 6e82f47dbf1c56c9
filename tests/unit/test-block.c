/*
 * Block layer tests: opening (errors, probing, QEMU's raw warning), raw
 * I/O in every cache mode, the probed-raw sector 0 guard, discard and
 * write-zeroes, image locking and its migration hand-over.  The binary is
 * also the test driver of tests/functional/test_block_images.py (--io);
 * see usage() below.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "block/block.h"
#include "unit.h"

/* ---- helpers ---- */

/* The test pattern: a byte for each guest offset, whatever the chunking. */
static uint8_t pattern_byte(uint64_t offset, uint64_t seed)
{
    uint64_t z = (offset >> 3) * 0x9e3779b97f4a7c15ull + seed * 0xbf58476d1ce4e5b9ull;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z >> ((offset & 7) * 8);
}

static void fill_pattern(uint8_t *buf, uint64_t offset, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = pattern_byte(offset + i, seed);
    }
}

static bool check_pattern(const uint8_t *buf, uint64_t offset, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != pattern_byte(offset + i, seed)) {
            return false;
        }
    }
    return true;
}

static bool all_zero(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i]) {
            return false;
        }
    }
    return true;
}

static char *make_file(const char *dir, const char *name, uint64_t size)
{
    char *path = g_build_filename(dir, name, NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

    CHECK(fd >= 0);
    CHECK(ftruncate(fd, size) == 0);
    close(fd);
    return path;
}

static BlockDriverState *open_image(const char *path, const char *format,
                                    BlockCacheMode cache, bool read_only, GError **errp)
{
    BlockOptions opts = {
        .filename = path,
        .format = format,
        .cache = cache,
        .read_only = read_only,
        .discard_unmap = true,
    };

    return bdrv_open(&opts, errp);
}

/* Run fn with stderr captured into the returned string. */
static char *capture_stderr(void (*fn)(void *), void *opaque)
{
    char tmpl[] = "/tmp/test-block-stderr-XXXXXX";
    int fd = mkstemp(tmpl), saved = dup(2);
    char *out = NULL;

    fflush(stderr);
    dup2(fd, 2);
    fn(opaque);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    g_file_get_contents(tmpl, &out, NULL, NULL);
    unlink(tmpl);
    return out;
}

static void rm_rf(const char *dir)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);

    CHECK(system(cmd) == 0);
}

/* ---- opening ---- */

UNIT_TEST(open_errors_are_one_line)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *raw = make_file(dir, "x.img", 1 << 20);
    g_autofree char *missing = g_build_filename(dir, "nope.img", NULL);
    g_autofree char *want = g_strdup_printf("Could not open '%s': No such file or "
                                            "directory",
                                            missing);
    GError *err = NULL;

    CHECK(!open_image(missing, NULL, BLOCK_CACHE_WRITEBACK, false, &err));
    CHECK_STR(err->message, want);
    g_clear_error(&err);
    CHECK(!open_image(raw, "foo", BLOCK_CACHE_WRITEBACK, false, &err));
    CHECK_STR(err->message, "Unknown driver 'foo'");
    g_clear_error(&err);
    CHECK(!open_image(raw, "qcow2", BLOCK_CACHE_WRITEBACK, false, &err));
    CHECK_STR(err->message, "Image is not in qcow2 format");
    g_clear_error(&err);
    CHECK(!open_image(dir, "raw", BLOCK_CACHE_WRITEBACK, true, &err));
    CHECK(err && strstr(err->message, "Could not open") && !strchr(err->message, '\n'));
    g_clear_error(&err);
    rm_rf(dir);
}

typedef struct OpenJob {
    const char *path;
    const char *format;
    bool read_only;
    BlockDriverState *bs;
    GError *err;
} OpenJob;

static void open_job(void *opaque)
{
    OpenJob *job = opaque;

    job->bs = open_image(job->path, job->format, BLOCK_CACHE_WRITEBACK, job->read_only,
                         &job->err);
}

UNIT_TEST(probing_warns_like_qemu_when_raw_is_guessed)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *raw = make_file(dir, "x.img", 1 << 20);
    g_autofree char *want = g_strdup_printf(
        "WARNING: Image format was not specified for '%s' and probing guessed raw.\n"
        "         Automatically detecting the format is dangerous for raw images, "
        "write operations on block 0 will be restricted.\n"
        "         Specify the 'raw' format explicitly to remove the restrictions.\n",
        raw);
    OpenJob job = { .path = raw };
    g_autofree char *out = capture_stderr(open_job, &job);

    CHECK(job.bs);
    CHECK_STR(bdrv_format_name(job.bs), "raw");
    CHECK_STR(out, want);
    bdrv_close(job.bs);
    /* Read-only or explicit: QEMU says nothing. */
    job = (OpenJob){ .path = raw, .read_only = true };
    g_free(out);
    out = capture_stderr(open_job, &job);
    CHECK(job.bs && out && out[0] == 0);
    bdrv_close(job.bs);
    job = (OpenJob){ .path = raw, .format = "raw" };
    g_free(out);
    out = capture_stderr(open_job, &job);
    CHECK(job.bs && out && out[0] == 0);
    bdrv_close(job.bs);
    rm_rf(dir);
}

UNIT_TEST(probing_refuses_formats_we_do_not_support)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *path = make_file(dir, "x.vmdk", 1 << 20);
    GError *err = NULL;

    CHECK(g_file_set_contents(path, "KDMV\1\0\0\0", 8, NULL));
    CHECK(!open_image(path, NULL, BLOCK_CACHE_WRITEBACK, false, &err));
    CHECK_STR(err->message, "Image format 'vmdk' (probed) is not supported");
    g_clear_error(&err);
    CHECK(g_file_set_contents(path, "QFI\xfb\0\0\0\1", 8, NULL));
    CHECK(!open_image(path, NULL, BLOCK_CACHE_WRITEBACK, false, &err));
    CHECK_STR(err->message, "Image format 'qcow' (probed) is not supported");
    g_clear_error(&err);
    rm_rf(dir);
}

/* ---- raw I/O ---- */

static void raw_roundtrip(const char *path, BlockCacheMode cache)
{
    GError *err = NULL;
    BlockDriverState *bs = open_image(path, "raw", cache, false, &err);
    uint8_t *a = g_malloc(70000), *b = g_malloc0(70001);
    struct iovec iov[3] = { { a + 1, 999 }, { a + 1000, 1 }, { a + 1001, 60000 } };

    CHECK(bs);
    if (!bs) {
        fprintf(stderr, "%s\n", err->message);
        return;
    }
    CHECK_EQ(bdrv_cache_mode(bs), cache);
    CHECK_EQ(bdrv_getlength(bs), 1 << 20);
    fill_pattern(a + 1, 4097, 61000, cache + 1);
    CHECK_EQ(bdrv_pwritev(bs, 4097, iov, 3), 0); /* unaligned everything */
    CHECK_EQ(bdrv_pread(bs, 4097, b + 1, 61000), 0);
    CHECK(check_pattern(b + 1, 4097, 61000, cache + 1));
    CHECK_EQ(bdrv_pread(bs, 0, b, 4097), 0);
    CHECK(all_zero(b, 4097));
    CHECK_EQ(bdrv_flush(bs), 0);
    CHECK_EQ(bdrv_pread(bs, (1 << 20) - 10, b, 11), -EINVAL);
    CHECK_EQ(bdrv_pwrite(bs, UINT64_MAX - 1, a, 4), -EINVAL);
    CHECK_EQ(bdrv_pread(bs, (1 << 20) - 10, b, 10), 0);
    bdrv_close(bs);
    g_free(a);
    g_free(b);
}

UNIT_TEST(raw_read_write_in_every_cache_mode)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    BlockCacheMode modes[] = { BLOCK_CACHE_WRITEBACK, BLOCK_CACHE_NONE,
                               BLOCK_CACHE_WRITETHROUGH, BLOCK_CACHE_DIRECTSYNC,
                               BLOCK_CACHE_UNSAFE };

    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        g_autofree char *path = make_file(dir, "x.img", 1 << 20);

        raw_roundtrip(path, modes[i]);
    }
    rm_rf(dir);
}

UNIT_TEST(read_only_images_refuse_writes)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *path = make_file(dir, "x.img", 65536);
    BlockDriverState *bs = open_image(path, "raw", BLOCK_CACHE_WRITEBACK, true, NULL);
    uint8_t buf[512] = { 1 };

    CHECK(bs && bdrv_is_read_only(bs));
    CHECK_EQ(bdrv_pwrite(bs, 0, buf, 512), -EPERM);
    CHECK_EQ(bdrv_write_zeroes(bs, 0, 512, false), -EPERM);
    CHECK_EQ(bdrv_discard(bs, 0, 512), -EPERM);
    CHECK_EQ(bdrv_pread(bs, 0, buf, 512), 0);
    CHECK_EQ(bdrv_flush(bs), 0);
    bdrv_close(bs);
    rm_rf(dir);
}

UNIT_TEST(probed_raw_guards_sector_zero)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *path = make_file(dir, "x.img", 65536);
    OpenJob job = { .path = path };
    g_autofree char *out = capture_stderr(open_job, &job);
    uint8_t sector[512] = "QFI\xfb\0\0\0\3", buf[512];

    CHECK(job.bs);
    CHECK_EQ(bdrv_pwrite(job.bs, 0, sector, 512), -EPERM);
    CHECK_EQ(bdrv_pwrite(job.bs, 0, "QFI", 3), 0); /* still raw */
    CHECK_EQ(bdrv_pwrite(job.bs, 3, "\xfb\0\0\0\3", 5), -EPERM);
    CHECK_EQ(bdrv_pwrite(job.bs, 0, "KDMV", 4), -EPERM);
    CHECK_EQ(bdrv_pwrite(job.bs, 512, sector, 512), 0); /* sector 1 is free */
    CHECK_EQ(bdrv_pread(job.bs, 0, buf, 8), 0);
    CHECK(memcmp(buf, "QFI\0\0\0\0\0", 8) == 0);
    bdrv_close(job.bs);
    /* With format=raw the guest may write anything. */
    job.bs = open_image(path, "raw", BLOCK_CACHE_WRITEBACK, false, NULL);
    CHECK_EQ(bdrv_pwrite(job.bs, 0, sector, 512), 0);
    bdrv_close(job.bs);
    rm_rf(dir);
}

static uint64_t allocated_bytes(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

UNIT_TEST(raw_write_zeroes_and_discard)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *path = make_file(dir, "x.img", 4 << 20);
    BlockDriverState *bs = open_image(path, "raw", BLOCK_CACHE_WRITEBACK, false, NULL);
    uint8_t *buf = g_malloc(4 << 20);
    BlockOptions opts = { .filename = path, .format = "raw" };

    fill_pattern(buf, 0, 4 << 20, 9);
    CHECK_EQ(bdrv_pwrite(bs, 0, buf, 4 << 20), 0);
    CHECK_EQ(bdrv_flush(bs), 0);
    CHECK(allocated_bytes(path) >= (4 << 20));
    CHECK_EQ(bdrv_write_zeroes(bs, 1000, 70000, false), 0);
    CHECK_EQ(bdrv_discard(bs, 1 << 20, 1 << 20), 0);
    CHECK_EQ(bdrv_write_zeroes(bs, 3 << 20, 1 << 20, true), 0);
    CHECK_EQ(bdrv_pread(bs, 0, buf, 4 << 20), 0);
    CHECK(check_pattern(buf, 0, 1000, 9));
    CHECK(all_zero(buf + 1000, 70000));
    CHECK(check_pattern(buf + 71000, 71000, (2 << 20) - 71000, 9) ||
          all_zero(buf + (1 << 20), 1 << 20));
    CHECK(all_zero(buf + (3 << 20), 1 << 20));
    CHECK(allocated_bytes(path) <= (3 << 20)); /* holes punched */
    bdrv_close(bs);
    /* Without discard=unmap, discards are ignored. */
    bs = bdrv_open(&opts, NULL);
    CHECK_EQ(bdrv_pwrite(bs, 0, buf, 65536), 0);
    CHECK_EQ(bdrv_discard(bs, 0, 65536), 0);
    CHECK_EQ(bdrv_pread(bs, 0, buf + 65536, 65536), 0);
    CHECK(memcmp(buf, buf + 65536, 65536) == 0);
    bdrv_close(bs);
    g_free(buf);
    rm_rf(dir);
}

typedef struct WriterArgs {
    BlockDriverState *bs;
    uint64_t base;
    int failures;
} WriterArgs;

static void *writer_thread(void *opaque)
{
    WriterArgs *w = opaque;
    uint8_t buf[12288], back[12288];

    for (int i = 0; i < 64; i++) {
        uint64_t off = w->base + i * 12288 + (i % 3) * 512;

        fill_pattern(buf, off, sizeof(buf), 3);
        w->failures += bdrv_pwrite(w->bs, off, buf, sizeof(buf) - 512) != 0;
        w->failures += bdrv_pread(w->bs, off, back, sizeof(buf) - 512) != 0;
        w->failures += !check_pattern(back, off, sizeof(buf) - 512, 3);
    }
    return NULL;
}

/* Several I/O threads at once (format given by the caller). */
static void concurrent_writers(BlockDriverState *bs, int threads)
{
    pthread_t tid[8];
    WriterArgs args[8];

    for (int i = 0; i < threads; i++) {
        args[i] = (WriterArgs){ .bs = bs, .base = (uint64_t)i * (1 << 20) };
        pthread_create(&tid[i], NULL, writer_thread, &args[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        CHECK_EQ(args[i].failures, 0);
    }
}

UNIT_TEST(raw_concurrent_io_threads)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *path = make_file(dir, "x.img", 8 << 20);
    BlockDriverState *bs = open_image(path, "raw", BLOCK_CACHE_NONE, false, NULL);

    CHECK(bs);
    concurrent_writers(bs, 8);
    bdrv_close(bs);
    rm_rf(dir);
}

/* ---- locking ---- */

UNIT_TEST(second_writer_is_refused_with_qemus_message)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *path = make_file(dir, "x.img", 65536);
    g_autofree char *want = g_strdup_printf(
        "Failed to get \"write\" lock: Is another process using the image [%s]?", path);
    g_autofree char *want_shared = g_strdup_printf(
        "Failed to get shared \"write\" lock: Is another process using the image "
        "[%s]?",
        path);
    BlockDriverState *a = open_image(path, "raw", BLOCK_CACHE_WRITEBACK, false, NULL);
    BlockDriverState *b;
    GError *err = NULL;

    CHECK(a);
    CHECK(!open_image(path, "raw", BLOCK_CACHE_WRITEBACK, false, &err));
    CHECK_STR(err ? err->message : NULL, want);
    g_clear_error(&err);
    CHECK(!open_image(path, "raw", BLOCK_CACHE_WRITEBACK, true, &err));
    CHECK_STR(err ? err->message : NULL, want_shared);
    g_clear_error(&err);
    bdrv_close(a);
    /* Readers share; a writer can't join them. */
    a = open_image(path, "raw", BLOCK_CACHE_WRITEBACK, true, NULL);
    b = open_image(path, "raw", BLOCK_CACHE_WRITEBACK, true, NULL);
    CHECK(a && b);
    CHECK(!open_image(path, "raw", BLOCK_CACHE_WRITEBACK, false, &err));
    CHECK_STR(err ? err->message : NULL, want);
    g_clear_error(&err);
    bdrv_close(a);
    bdrv_close(b);
    rm_rf(dir);
}

UNIT_TEST(unlock_hands_the_image_over_for_migration)
{
    g_autofree char *dir = g_dir_make_tmp("test-block-XXXXXX", NULL);
    g_autofree char *path = make_file(dir, "x.img", 65536);
    BlockDriverState *src = open_image(path, "raw", BLOCK_CACHE_WRITEBACK, false, NULL);
    BlockOptions dst_opts = { .filename = path, .format = "raw", .inactive = true };
    BlockDriverState *dst = bdrv_open(&dst_opts, NULL);
    GError *err = NULL;

    CHECK(src && dst);
    CHECK_EQ(bdrv_pwrite(dst, 0, "x", 1), -EPERM); /* inactive */
    CHECK(!bdrv_lock(dst, &err));                  /* src holds it */
    CHECK(err && strstr(err->message, "Failed to get \"write\" lock"));
    g_clear_error(&err);
    CHECK_EQ(bdrv_pwrite(src, 0, "src", 3), 0);
    bdrv_unlock(src);
    CHECK_EQ(bdrv_pwrite(src, 0, "x", 1), -EPERM);
    CHECK(bdrv_lock(dst, &err));
    CHECK_EQ(bdrv_pwrite(dst, 3, "dst", 3), 0);
    CHECK(!bdrv_lock(src, &err)); /* dst holds it now */
    g_clear_error(&err);
    bdrv_close(dst);
    CHECK(bdrv_lock(src, NULL)); /* migration failed */
    CHECK_EQ(bdrv_pwrite(src, 0, "S", 1), 0);
    bdrv_close(src);
    rm_rf(dir);
}

/* ---- driver modes for the functional tests ---- */

static void usage(void)
{
    fprintf(
        stderr,
        "usage: test-block [CASE...]         run unit tests (--list names them)\n"
        "       test-block --io [--format=F] [--cache=MODE] [--readonly]\n"
        "                  [--discard] IMAGE COMMAND...\n"
        "         write OFF LEN SEED | verify OFF LEN SEED | read OFF LEN |\n"
        "         zero OFF LEN UNMAP | discard OFF LEN | flush | info |\n"
        "         writeloop OFF LEN BS SEED | hold SECONDS | unlock | lock |\n"
        "         bench randread|randwrite|seqread|seqwrite BS SECONDS THREADS SPAN\n");
}

static bool parse_cache(const char *name, BlockCacheMode *mode)
{
    const char *names[] = { "writeback", "none", "writethrough", "directsync", "unsafe" };

    for (int i = 0; i < 5; i++) {
        if (strcmp(name, names[i]) == 0) {
            *mode = i;
            return true;
        }
    }
    return false;
}

static int io_write_pattern(BlockDriverState *bs, uint64_t off, uint64_t len,
                            uint64_t seed, bool verify)
{
    size_t chunk_max = 1 << 20;
    uint8_t *buf = g_malloc(chunk_max);
    int ret = 0;

    for (uint64_t done = 0; done < len && ret == 0; done += chunk_max) {
        size_t chunk = MIN(chunk_max, len - done);

        if (verify) {
            ret = bdrv_pread(bs, off + done, buf, chunk);
            if (ret == 0 && !check_pattern(buf, off + done, chunk, seed)) {
                fprintf(stderr, "verify: mismatch in [%" PRIu64 ", +%zu)\n", off + done,
                        chunk);
                ret = -EILSEQ;
            }
        } else {
            fill_pattern(buf, off + done, chunk, seed);
            ret = bdrv_pwrite(bs, off + done, buf, chunk);
        }
    }
    g_free(buf);
    return ret;
}

static int io_read_crc(BlockDriverState *bs, uint64_t off, uint64_t len)
{
    uint8_t *buf = g_malloc(1 << 20);
    uLong crc = crc32(0, NULL, 0);
    int ret = 0;

    for (uint64_t done = 0; done < len && ret == 0; done += 1 << 20) {
        size_t chunk = MIN(1 << 20, len - done);

        ret = bdrv_pread(bs, off + done, buf, chunk);
        crc = crc32(crc, buf, chunk);
    }
    if (ret == 0) {
        printf("crc32=%08lx\n", crc);
    }
    g_free(buf);
    return ret;
}

static uint64_t xorshift(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Write random blocks forever (until killed), for crash tests. */
static int io_writeloop(BlockDriverState *bs, uint64_t off, uint64_t len, uint64_t bs_len,
                        uint64_t seed)
{
    uint8_t *buf = g_malloc(bs_len);
    uint64_t state = seed | 1;

    for (uint64_t n = 0;; n++) {
        uint64_t pos = off + (xorshift(&state) % (len - bs_len)) / 512 * 512;
        int ret;

        fill_pattern(buf, pos, bs_len, seed);
        ret = n % 7 == 3 ? bdrv_write_zeroes(bs, pos, bs_len, n % 2)
                         : bdrv_pwrite(bs, pos, buf, bs_len);
        if (ret == 0 && n % 5 == 4) {
            ret = bdrv_discard(bs, pos, bs_len);
        }
        if (ret < 0) {
            fprintf(stderr, "writeloop: %s\n", g_strerror(-ret));
            return ret;
        }
        if (n % 64 == 0) {
            bdrv_flush(bs);
        }
        if (n == 32) {
            printf("running\n");
            fflush(stdout);
        }
    }
}

typedef struct BenchThread {
    BlockDriverState *bs;
    const char *kind;
    uint64_t block, span, ops;
    double deadline;
    uint64_t seed;
    int errors;
} BenchThread;

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *bench_thread(void *opaque)
{
    BenchThread *t = opaque;
    bool rand = t->kind[0] == 'r', write = strstr(t->kind, "write") != NULL;
    uint8_t *buf;
    uint64_t pos = (t->seed * 7919 * t->block) % t->span;

    if (posix_memalign((void **)&buf, 4096, t->block) != 0) {
        return NULL;
    }
    memset(buf, 0x5a, t->block);
    while (now_seconds() < t->deadline) {
        for (int i = 0; i < 16; i++) {
            uint64_t off = rand ? xorshift(&t->seed) % (t->span / t->block) * t->block
                                : pos;
            int ret = write ? bdrv_pwrite(t->bs, off, buf, t->block)
                            : bdrv_pread(t->bs, off, buf, t->block);

            t->errors += ret != 0;
            t->ops++;
            pos = (pos + t->block) % (t->span / t->block * t->block);
        }
    }
    free(buf);
    return NULL;
}

static int io_bench(BlockDriverState *bs, char **args)
{
    int threads = atoi(args[3]);
    uint64_t block = g_ascii_strtoull(args[1], NULL, 0);
    uint64_t span = MIN(g_ascii_strtoull(args[4], NULL, 0), bdrv_getlength(bs));
    double seconds = g_ascii_strtod(args[2], NULL), start = now_seconds();
    BenchThread t[64];
    pthread_t tid[64];
    uint64_t ops = 0;
    int errors = 0;

    threads = CLAMP(threads, 1, 64);
    if (block == 0 || span < block) {
        fprintf(stderr, "bench: SPAN (%" PRIu64 " bytes here) must hold one BS block\n",
                span);
        return -EINVAL;
    }
    for (int i = 0; i < threads; i++) {
        t[i] = (BenchThread){
            bs, args[0], block, span, 0, start + seconds, 0x1234567ull * (i + 1), 0
        };
        pthread_create(&tid[i], NULL, bench_thread, &t[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        ops += t[i].ops;
        errors += t[i].errors;
    }
    seconds = now_seconds() - start;
    printf("%s bs=%" PRIu64 " threads=%d iops=%.0f mbps=%.1f errors=%d\n", args[0], block,
           threads, ops / seconds, ops * block / seconds / 1e6, errors);
    return errors ? -EIO : 0;
}

/* One command; returns how many arguments it used, or -1 on failure. */
static int io_command(BlockDriverState *bs, char **a, int n)
{
    const char *cmd = a[0];
    uint64_t x = n > 1 ? g_ascii_strtoull(a[1], NULL, 0) : 0;
    uint64_t y = n > 2 ? g_ascii_strtoull(a[2], NULL, 0) : 0;
    uint64_t z = n > 3 ? g_ascii_strtoull(a[3], NULL, 0) : 0;
    int ret = 0, used = 1;
    GError *err = NULL;

    if (!strcmp(cmd, "write") || !strcmp(cmd, "verify")) {
        ret = n < 4 ? -EINVAL : io_write_pattern(bs, x, y, z, cmd[0] == 'v');
        used = 4;
    } else if (!strcmp(cmd, "read")) {
        ret = n < 3 ? -EINVAL : io_read_crc(bs, x, y);
        used = 3;
    } else if (!strcmp(cmd, "zero")) {
        ret = n < 4 ? -EINVAL : bdrv_write_zeroes(bs, x, y, z);
        used = 4;
    } else if (!strcmp(cmd, "discard")) {
        ret = n < 3 ? -EINVAL : bdrv_discard(bs, x, y);
        used = 3;
    } else if (!strcmp(cmd, "flush")) {
        ret = bdrv_flush(bs);
    } else if (!strcmp(cmd, "info")) {
        printf("format=%s size=%" PRIu64 " backing=%s\n", bdrv_format_name(bs),
               bdrv_getlength(bs), bdrv_backing_filename(bs) ?: "");
    } else if (!strcmp(cmd, "writeloop")) {
        ret = n < 5 ? -EINVAL
                    : io_writeloop(bs, x, y, z, g_ascii_strtoull(a[4], NULL, 0));
        used = 5;
    } else if (!strcmp(cmd, "hold")) {
        printf("locked\n");
        fflush(stdout);
        sleep(n > 1 ? x : 3600);
        used = 2;
    } else if (!strcmp(cmd, "unlock")) {
        bdrv_unlock(bs);
    } else if (!strcmp(cmd, "lock")) {
        ret = bdrv_lock(bs, &err) ? 0 : -EBUSY;
    } else if (!strcmp(cmd, "bench")) {
        ret = n < 6 ? -EINVAL : io_bench(bs, a + 1);
        used = 6;
    } else {
        ret = -EINVAL;
    }
    if (err) {
        fprintf(stderr, "test-block: %s\n", err->message);
        g_error_free(err);
    } else if (ret < 0) {
        fprintf(stderr, "test-block: %s: %s\n", cmd, g_strerror(-ret));
    }
    return ret < 0 ? -1 : used;
}

static int io_main(int argc, char **argv)
{
    BlockOptions opts = { .cache = BLOCK_CACHE_WRITEBACK };
    BlockDriverState *bs;
    GError *err = NULL;
    int i = 1, status = 0;

    for (; i < argc && g_str_has_prefix(argv[i], "--"); i++) {
        if (g_str_has_prefix(argv[i], "--format=")) {
            opts.format = argv[i] + strlen("--format=");
        } else if (g_str_has_prefix(argv[i], "--cache=")) {
            if (!parse_cache(argv[i] + strlen("--cache="), &opts.cache)) {
                usage();
                return 1;
            }
        } else if (!strcmp(argv[i], "--readonly")) {
            opts.read_only = true;
        } else if (!strcmp(argv[i], "--discard")) {
            opts.discard_unmap = true;
        }
    }
    if (i >= argc) {
        usage();
        return 1;
    }
    opts.filename = argv[i++];
    bs = bdrv_open(&opts, &err);
    if (!bs) {
        fprintf(stderr, "test-block: %s\n", err->message);
        g_error_free(err);
        return 1;
    }
    while (i < argc && status == 0) {
        int used = io_command(bs, argv + i, argc - i);

        status = used < 0;
        i += used < 0 ? 0 : used;
    }
    bdrv_close(bs);
    return status;
}

#define main unit_main
UNIT_MAIN()
#undef main

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--io")) {
        return io_main(argc - 1, argv + 1);
    }
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage();
        return 0;
    }
    return unit_main(argc, argv);
}
