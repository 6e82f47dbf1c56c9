/*
 * osnet: map.txt validation (every error names FILE:LINE), CPU list
 * parsing, and the KVM binary-stats reader on a synthetic stats file.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "accel/kvm/kvm-stats.h"
#include "hw/osnet.h"
#include "unit.h"

static cpu_set_t cpus_0_3;

static void init_sets(void)
{
    CPU_ZERO(&cpus_0_3);
    for (int i = 0; i < 4; i++) {
        CPU_SET(i, &cpus_0_3);
    }
}

/* Parse text for nr vCPUs on CPUs 0-3; return the error or NULL. */
static char *map_error(const char *text, unsigned nr, OsnetCpuMap *map, GString *warnings)
{
    GError *err = NULL;
    char *msg = NULL;

    init_sets();
    memset(map, 0, sizeof(*map));
    if (!osnet_cpumap_parse_text("map.txt", text, nr, &cpus_0_3, &cpus_0_3, map, warnings,
                                 &err)) {
        msg = g_strdup(err->message);
        g_error_free(err);
    }
    return msg;
}

UNIT_TEST(seed_map_is_accepted)
{
    OsnetCpuMap map;
    char *msg = map_error("0 1\n1 2\n", 2, &map, NULL);

    CHECK(msg == NULL);
    CHECK_EQ(map.nr_vcpus, 2);
    CHECK_EQ(map.pcpu[0], 1);
    CHECK_EQ(map.pcpu[1], 2);
    osnet_cpumap_clear(&map);
}

UNIT_TEST(comments_blank_lines_and_crlf)
{
    OsnetCpuMap map;
    char *msg = map_error("# the first VM\r\n\r\n1\t3   # vcpu 1\r\n  0 2\r\n", 2, &map,
                          NULL);

    CHECK(msg == NULL);
    CHECK_EQ(map.pcpu[0], 2);
    CHECK_EQ(map.pcpu[1], 3);
    osnet_cpumap_clear(&map);
}

UNIT_TEST(every_bad_map_names_file_and_line)
{
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        { "0 1\n1\n", "map.txt:2: expected two numbers, 'vcpu pcpu'" },
        { "0 1\n1 2 3\n", "map.txt:2: expected two numbers, 'vcpu pcpu'" },
        { "0 x\n", "map.txt:1: expected two numbers, 'vcpu pcpu'" },
        { "-1 2\n", "map.txt:1: expected two numbers, 'vcpu pcpu'" },
        { "0 1\n\n2 3\n", "map.txt:3: vCPU 2 does not exist (the VM has 2: 0-1)" },
        { "0 1\n0 2\n", "map.txt:2: vCPU 0 is listed twice (first on line 1)" },
        { "0 1\n1 9\n", "map.txt:2: pCPU 9 is not online" },
        { "0 1\n", "map.txt: vCPU 1 has no pCPU (every vCPU must be mapped)" },
        { "", "map.txt: vCPU 0 has no pCPU (every vCPU must be mapped)" },
        { "0 99999999999\n", "map.txt:1: expected two numbers, 'vcpu pcpu'" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        OsnetCpuMap map;
        char *msg = map_error(cases[i].text, 2, &map, NULL);
        CHECK_STR(msg, cases[i].error);
        g_free(msg);
    }
}

UNIT_TEST(disallowed_pcpu_is_refused)
{
    OsnetCpuMap map;
    cpu_set_t allowed, online;
    GError *err = NULL;

    CPU_ZERO(&allowed);
    CPU_SET(0, &allowed);
    CPU_ZERO(&online);
    CPU_SET(0, &online);
    CPU_SET(1, &online);
    memset(&map, 0, sizeof(map));
    CHECK(!osnet_cpumap_parse_text("m", "0 1\n", 1, &allowed, &online, &map, NULL, &err));
    CHECK(err && strstr(err->message, "m:1: pCPU 1 is outside the CPUs this process"));
    g_clear_error(&err);
}

UNIT_TEST(shared_pcpu_only_warns)
{
    OsnetCpuMap map;
    GString *warnings = g_string_new(NULL);
    char *msg = map_error("0 2\n1 2\n", 2, &map, warnings);

    CHECK(msg == NULL);
    CHECK(strstr(warnings->str, "vCPUs 0 and 1 share pCPU 2") != NULL);
    osnet_cpumap_clear(&map);
    g_string_free(warnings, TRUE);
}

UNIT_TEST(unreadable_and_binary_files)
{
    OsnetCpuMap map = { 0 };
    GError *err = NULL;
    char path[] = "/tmp/osnet-test-XXXXXX";
    int fd = mkstemp(path);

    init_sets();
    CHECK(!osnet_cpumap_parse("/nonexistent/map.txt", 1, &cpus_0_3, &cpus_0_3, &map, NULL,
                              &err));
    CHECK(err && strstr(err->message, "/nonexistent/map.txt: cannot read"));
    g_clear_error(&err);
    CHECK(write(fd, "0 1\n\0\n", 6) == 6);
    close(fd);
    CHECK(!osnet_cpumap_parse(path, 1, &cpus_0_3, &cpus_0_3, &map, NULL, &err));
    CHECK(err && strstr(err->message, "NUL"));
    g_clear_error(&err);
    unlink(path);
}

UNIT_TEST(cpu_lists)
{
    cpu_set_t set;

    CHECK(osnet_parse_cpu_list("0-3,5\n", &set));
    CHECK_EQ(CPU_COUNT(&set), 5);
    CHECK(CPU_ISSET(5, &set) && !CPU_ISSET(4, &set));
    CHECK(osnet_parse_cpu_list("0", &set));
    CHECK_EQ(CPU_COUNT(&set), 1);
    CHECK(!osnet_parse_cpu_list("3-1", &set));
    CHECK(!osnet_parse_cpu_list("a", &set));
}

/* A stats file laid out as KVM lays out a vCPU's: header, descriptors, data. */
static int make_stats_fd(void)
{
    const uint32_t name_size = 48;
    size_t desc_size = sizeof(struct kvm_stats_desc) + name_size;
    struct kvm_stats_header hdr = {
        .name_size = name_size,
        .num_desc = 3,
        .id_offset = sizeof(hdr),
        .desc_offset = sizeof(hdr) + 64,
    };
    hdr.data_offset = hdr.desc_offset + 3 * desc_size;
    static const struct {
        const char *name;
        uint32_t flags;
        uint16_t size;
        int16_t exponent;
    } d[] = {
        { "exits", KVM_STATS_TYPE_CUMULATIVE, 1, 0 },
        { "guest_mode", KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BOOLEAN, 1, 0 },
        { "halt_wait_hist", KVM_STATS_TYPE_LOG_HIST | KVM_STATS_UNIT_SECONDS, 4, -9 },
    };
    uint64_t data[6] = { 12345, 1, 1, 2, 3, 4 };
    uint8_t *buf = g_malloc0(hdr.data_offset + sizeof(data));
    int fd = memfd_create("stats", 0);
    uint32_t offset = 0;

    memcpy(buf, &hdr, sizeof(hdr));
    for (int i = 0; i < 3; i++) {
        struct kvm_stats_desc *desc = (void *)(buf + hdr.desc_offset + i * desc_size);
        desc->flags = d[i].flags;
        desc->exponent = d[i].exponent;
        desc->size = d[i].size;
        desc->offset = offset;
        strcpy(desc->name, d[i].name);
        offset += d[i].size * 8;
    }
    memcpy(buf + hdr.data_offset, data, sizeof(data));
    if (write(fd, buf, hdr.data_offset + sizeof(data)) < 0) {
        fd = -1;
    }
    g_free(buf);
    return fd;
}

UNIT_TEST(stats_reader)
{
    KvmStatsFd s;
    const KvmStatDesc *desc;
    const uint64_t *v;

    CHECK(kvm_stats_open_fd(&s, make_stats_fd(), NULL));
    CHECK_EQ(s.nr_descs, 3);
    CHECK_EQ(kvm_stats_get(&s, "exits"), 12345);
    v = kvm_stats_find(&s, "halt_wait_hist", &desc);
    CHECK(v != NULL);
    CHECK_EQ(desc->size, 4);
    CHECK_EQ(v[3], 4);
    CHECK_STR(kvm_stat_type_name(desc->flags), "log2-histogram");
    CHECK_STR(kvm_stat_unit_name(desc->flags), "seconds");
    CHECK(kvm_stats_find(&s, "nope", NULL) == NULL);
    kvm_stats_close(&s);
}

UNIT_TEST(stats_reader_refuses_garbage)
{
    int fd = memfd_create("junk", 0);
    KvmStatsFd s;
    GError *err = NULL;
    char junk[64];

    memset(junk, 0xff, sizeof(junk));
    CHECK(write(fd, junk, sizeof(junk)) == sizeof(junk));
    CHECK(!kvm_stats_open_fd(&s, fd, &err));
    CHECK(err != NULL);
    g_clear_error(&err);
}

UNIT_TEST(kvm_extension_abi)
{
    /* the Directvisor module's struct: 1024 ints, unsigned, bool, char[100] */
    CHECK_EQ(sizeof(struct osnet_kvm_cpumap), 4204);
    CHECK_EQ(OSNET_KVM_SET_CPUMAP, 0x506CBE00);
}

/* The "osnet" migration state of a VM: DID asked for at start, or not. */
static void state_vm(OsnetState *os, DeviceStateList *list, bool requested)
{
    memset(os, 0, sizeof(*os));
    os->did.requested = requested;
    os->incoming = true;
    os->incoming_did = -1;
    device_state_list_init(list);
    CHECK(osnet_register_state(os, list, NULL));
}

UNIT_TEST(migration_state_round_trip)
{
    OsnetState src, dst;
    DeviceStateList ls, ld;
    DeviceStateEntry *es, *ed;
    GByteArray *blob = g_byte_array_new();
    GError *err = NULL;

    state_vm(&src, &ls, true);
    state_vm(&dst, &ld, true);
    es = device_state_find(&ls, "osnet");
    ed = device_state_find(&ld, "osnet");
    CHECK(es && ed && es->ops->needed && es->version == OSNET_STATE_VERSION);
    /* sent by a source started with DID, whatever its state */
    CHECK(es->ops->needed(es->opaque));
    src.did.off_for_migration = true;
    CHECK(es->ops->save(es->opaque, blob, &err));
    CHECK_EQ(blob->len, 4);
    CHECK(ed->ops->load(ed->opaque, blob->data, blob->len, es->version, &err));
    CHECK_EQ(dst.incoming_did, 1);
    /* DID off at the source's stop (osnet-did-disable before migrate) */
    src.did.off_for_migration = false;
    g_byte_array_set_size(blob, 0);
    CHECK(es->ops->save(es->opaque, blob, &err));
    CHECK(ed->ops->load(ed->opaque, blob->data, blob->len, es->version, &err));
    CHECK_EQ(dst.incoming_did, 0);
    CHECK(err == NULL);
    /* a source without DID has nothing to say */
    src.did.requested = false;
    CHECK(!es->ops->needed(es->opaque));
    g_byte_array_free(blob, TRUE);
    device_state_list_destroy(&ls);
    device_state_list_destroy(&ld);
}

/* Each bad blob is refused with a message and leaves the state as it was. */
UNIT_TEST(migration_state_bad_blobs_change_nothing)
{
    static const struct {
        uint8_t bytes[8];
        size_t len;
        uint32_t version;
        const char *says;
    } bad[] = {
        { { 1, 0, 0, 0 }, 3, 1, "3 bytes" },
        { { 1, 0, 0, 0, 0 }, 5, 1, "5 bytes" },
        { { 0 }, 0, 1, "0 bytes" },
        { { 2, 0, 0, 0 }, 4, 1, "unknown flags 0x2" },
        { { 1, 0, 0, 0x80 }, 4, 1, "unknown flags 0x80000000" },
        { { 1, 0, 0, 0 }, 4, 2, "version 2" },
        { { 1, 0, 0, 0 }, 4, 0, "version 0" },
    };
    OsnetState os;
    DeviceStateList list;
    DeviceStateEntry *e;
    OsnetMigState st = { .flags = 0xdead };

    state_vm(&os, &list, true);
    e = device_state_find(&list, "osnet");
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        GError *err = NULL;
        CHECK(!osnet_state_parse(bad[i].bytes, bad[i].len, bad[i].version, &st, &err));
        CHECK(err && strstr(err->message, bad[i].says));
        CHECK_EQ(st.flags, 0xdead); /* the output is untouched too */
        g_clear_error(&err);
        CHECK(!e->ops->load(e->opaque, bad[i].bytes, bad[i].len, bad[i].version, &err));
        CHECK(err != NULL);
        g_clear_error(&err);
        CHECK_EQ(os.incoming_did, -1);
    }
    device_state_list_destroy(&list);
}

/* DID on at the source, a destination started without it: refused, as a
 * machine that differs; DID off at the source loads anywhere. */
UNIT_TEST(migration_state_needs_did_at_the_destination)
{
    OsnetState os;
    DeviceStateList list;
    OsnetMigState on = { .flags = OSNET_STATE_DID_ON }, off = { 0 };
    GError *err = NULL;

    state_vm(&os, &list, false);
    CHECK(!osnet_state_apply(&os, &on, &err));
    CHECK(err && strstr(err->message, "did=on") && strstr(err->message, "cpu-pm=on"));
    g_clear_error(&err);
    CHECK_EQ(os.incoming_did, -1);
    CHECK(osnet_state_apply(&os, &off, &err));
    CHECK_EQ(os.incoming_did, 0);
    device_state_list_destroy(&list);
}

UNIT_TEST(did_reason_names)
{
    /* as qapi/osnet.json's OsnetDidReason, in order */
    static const char *const want[] = { "not-requested",   "start",
                                        "command",         "incoming-wait",
                                        "migration-stop",  "migration-failed",
                                        "incoming-source", "incoming-own" };

    CHECK_EQ(G_N_ELEMENTS(want), OSNET_DID_REASON__MAX);
    for (int r = 0; r < OSNET_DID_REASON__MAX; r++) {
        CHECK_STR(osnet_did_reason_name(r), want[r]);
    }
}

UNIT_MAIN()
