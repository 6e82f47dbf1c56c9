/*
 * The migration stream's framing (migration/stream.c, checksum.c): XXH64
 * against known values (zstd's frame checksum is XXH64's low 32 bits; the
 * empty input's value is XXH64's published one), the same value however
 * the bytes are split or copied, and sections written and read back over
 * a socket pair: intact, with a byte changed, cut short.
 */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/migration-int.h"
#include "unit.h"

static uint8_t pattern[100003];

static void fill(void)
{
    for (size_t i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (uint8_t)(i * 7 + (i >> 12));
    }
}

UNIT_TEST(xxh64_known_values)
{
    fill();
    CHECK(mig_hash("", 0) == 0xef46db3751d8e999ULL);
    /* low 32 bits as `zstd -C` wrote them for the same bytes */
    CHECK_EQ(mig_hash(pattern, sizeof(pattern)) & 0xffffffffu, 0xc893e753u);
    CHECK_EQ(mig_hash(pattern, 31) & 0xffffffffu, 0xb1e722b7u);
}

UNIT_TEST(xxh64_same_value_however_split_or_copied)
{
    static uint8_t copy[sizeof(pattern)];
    uint64_t want;

    fill();
    want = mig_hash(pattern, sizeof(pattern));
    for (size_t first = 0; first < 70; first += 3) {
        for (size_t piece = 1; piece < 5000; piece = piece * 3 + 1) {
            MigHash h;
            size_t pos = first;
            mig_hash_init(&h);
            mig_hash_update(&h, pattern, first);
            while (pos < sizeof(pattern)) {
                size_t n = MIN(piece, sizeof(pattern) - pos);
                if (piece % 2) {
                    mig_hash_copy(&h, copy + pos, pattern + pos, n);
                } else {
                    mig_hash_update(&h, pattern + pos, n);
                    memcpy(copy + pos, pattern + pos, n);
                }
                pos += n;
            }
            CHECK(mig_hash_final(&h) == want);
            CHECK(memcmp(copy + first, pattern + first, sizeof(pattern) - first) == 0);
        }
    }
}

/*
 * A page a vCPU writes while it is copied: the hash must be the hash of
 * the bytes the copy got (those are what is sent), with the hash's
 * partial stripe at the start (a section's records come first, so pages
 * rarely start on a stripe) and end of the page read from the copy, not a
 * second time from the page.
 */
static uint8_t racing_page[4096 + 64];
static volatile int racing_stop;

static void *race_writer(void *opaque)
{
    uint64_t n = 0;

    (void)opaque;
    while (!racing_stop) {
        /* both ends and the middle, where the stripes are partial or whole */
        __atomic_store_n(&racing_page[3], (uint8_t)n, __ATOMIC_RELAXED);
        __atomic_store_n(&racing_page[2048], (uint8_t)(n >> 1), __ATOMIC_RELAXED);
        __atomic_store_n(&racing_page[4094], (uint8_t)(n >> 2), __ATOMIC_RELAXED);
        n++;
    }
    return NULL;
}

UNIT_TEST(hash_copy_hashes_what_it_copied_while_the_page_changes)
{
    static uint8_t copy[4096];
    pthread_t writer;
    unsigned bad = 0;

    racing_stop = 0;
    CHECK(pthread_create(&writer, NULL, race_writer, NULL) == 0);
    for (unsigned i = 0; i < 600000; i++) {
        MigHash h;
        size_t head = 8 + 8 * (i % 4); /* a count and 0-3 records: 8-32 bytes */
        uint8_t rec[32] = { 0 };

        mig_hash_init(&h);
        mig_hash_update(&h, rec, head);
        mig_hash_copy(&h, copy, racing_page, sizeof(copy));

        MigHash want;
        mig_hash_init(&want);
        mig_hash_update(&want, rec, head);
        mig_hash_update(&want, copy, sizeof(copy));
        bad += mig_hash_final(&h) != mig_hash_final(&want);
    }
    racing_stop = 1;
    pthread_join(writer, NULL);
    CHECK_EQ(bad, 0u);
}

/* Write sections into one end of a socket pair; the bytes written. */
static GByteArray *written(void (*write_fn)(int fd))
{
    GByteArray *out = g_byte_array_new();
    uint8_t buf[65536];
    int sv[2];
    ssize_t n;

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    write_fn(sv[0]);
    close(sv[0]);
    while ((n = read(sv[1], buf, sizeof(buf))) > 0) {
        g_byte_array_append(out, buf, n);
    }
    close(sv[1]);
    return out;
}

/* A section read back from bytes; NULL with *msg set when refused. */
static MigSection *read_back(const GByteArray *bytes, char **msg)
{
    GError *err = NULL;
    MigSection *s;
    int sv[2];

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(write(sv[0], bytes->data, bytes->len) == (ssize_t)bytes->len);
    close(sv[0]);
    s = mig_read_section(sv[1], &err);
    close(sv[1]);
    *msg = err ? g_strdup(err->message) : NULL;
    g_clear_error(&err);
    return s;
}

static void write_two_pieces(int fd)
{
    struct iovec iov[2] = { { pattern, 1000 }, { pattern + 5000, 3333 } };

    CHECK(mig_write_sectionv(fd, SEC_DEVICE, "dev0", 3, iov, 2, NULL));
}

UNIT_TEST(section_reads_back_and_a_changed_byte_is_refused)
{
    GByteArray *bytes;
    MigSection *s;
    char *msg;

    fill();
    bytes = written(write_two_pieces);
    CHECK_EQ(bytes->len, 3 + 4 + 12 + 1000 + 3333 + 8);
    s = read_back(bytes, &msg);
    CHECK(s && !msg);
    if (s) {
        CHECK_EQ(s->type, SEC_DEVICE);
        CHECK_STR(s->name, "dev0");
        CHECK_EQ(s->version, 3);
        CHECK_EQ(s->payload->len, 4333);
        CHECK(memcmp(s->payload->data, pattern, 1000) == 0);
        CHECK(memcmp(s->payload->data + 1000, pattern + 5000, 3333) == 0);
    }
    mig_section_free(s);
    /* every byte of the section counts: the name, the payload, the sum */
    for (size_t at = 3; at < bytes->len; at += 997) {
        bytes->data[at] ^= 0x10;
        s = read_back(bytes, &msg);
        CHECK(!s);
        CHECK(msg && strstr(msg, "checksum mismatch"));
        g_free(msg);
        bytes->data[at] ^= 0x10;
    }
    /* cut short anywhere: refused, never a section */
    for (size_t len = 0; len < bytes->len; len += 331) {
        GByteArray *cut = g_byte_array_new();
        g_byte_array_append(cut, bytes->data, len);
        s = read_back(cut, &msg);
        CHECK(!s && msg);
        g_free(msg);
        g_byte_array_free(cut, TRUE);
    }
    g_byte_array_free(bytes, TRUE);
}

static void write_empty(int fd)
{
    CHECK(mig_write_section(fd, SEC_END, "end", 1, NULL, 0, NULL));
}

UNIT_TEST(empty_section_has_a_checksum_too)
{
    GByteArray *bytes = written(write_empty);
    MigSection *s;
    char *msg;

    CHECK_EQ(bytes->len, 3 + 3 + 12 + 8);
    CHECK(mig_hash(bytes->data, bytes->len - 8) != 0);
    s = read_back(bytes, &msg);
    CHECK(s && !msg && s->payload->len == 0);
    mig_section_free(s);
    bytes->data[bytes->len - 1] ^= 1;
    s = read_back(bytes, &msg);
    CHECK(!s && msg && strstr(msg, "checksum mismatch in section 'end'"));
    g_free(msg);
    g_byte_array_free(bytes, TRUE);
}

UNIT_MAIN()
