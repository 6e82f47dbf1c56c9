/*
 * Command-line parsing: the option table, sub-options, sizes and -smp
 * topology rules with QEMU's error texts.
 */
#include "system/config.h"
#include "block/drive.h"
#include "unit.h"
#include "util/error.h"
#include "util/subopt.h"

/* Parse a NULL-terminated argument list; return the error text or NULL. */
static char *parse(VmConfig *cfg, const char *const *args)
{
    char *argv[32] = { "qemu-system-x86_64" };
    int argc = 1;
    GError *err = NULL;
    bool exit_now;
    char *msg = NULL;

    while (*args && argc < 31) {
        argv[argc++] = (char *)*args++;
    }
    if (!vm_config_parse_argv(cfg, argc, argv, &exit_now, &err)) {
        msg = g_strdup(err->message);
        g_error_free(err);
    }
    return msg;
}

static char *parse_one(const char *const *args)
{
    VmConfig *cfg = vm_config_new();
    char *msg = parse(cfg, args);

    vm_config_free(cfg);
    return msg;
}

UNIT_TEST(seed_command_line)
{
    static const char *const args[] = { "-enable-kvm",
                                        "-cpu",
                                        "host,host-cache-info=on",
                                        "-smp",
                                        "cpus=2,sockets=1,threads=1,maxcpus=2",
                                        "-m",
                                        "2G",
                                        "-serial",
                                        "telnet:127.0.0.1:7000,server,nowait",
                                        "-parallel",
                                        "none",
                                        "-serial",
                                        "none",
                                        "-net",
                                        "none",
                                        "-vga",
                                        "none",
                                        "-nographic",
                                        "-nodefaults",
                                        NULL };
    VmConfig *cfg = vm_config_new();
    char *msg = parse(cfg, args);

    CHECK(msg == NULL);
    CHECK(cfg->accel_kvm_seen);
    CHECK(cfg->host_cache_info);
    CHECK_EQ(cfg->smp.cpus, 2);
    CHECK_EQ(cfg->smp.cores, 2);
    CHECK_EQ(cfg->smp.sockets, 1);
    CHECK_EQ(cfg->ram_size, 2ULL << 30);
    CHECK_EQ(cfg->serials->len, 2);
    CHECK_STR(g_ptr_array_index(cfg->serials, 1), "none");
    CHECK(cfg->nographic && cfg->nodefaults);
    g_free(msg);
    vm_config_free(cfg);
}

UNIT_TEST(unknown_option_uses_qemu_wording)
{
    static const char *const args[] = { "-foo", NULL };
    char *msg = parse_one(args);

    CHECK_STR(msg, "-foo: invalid option");
    g_free(msg);
}

UNIT_TEST(missing_argument)
{
    static const char *const args[] = { "-m", NULL };
    char *msg = parse_one(args);

    CHECK_STR(msg, "-m: requires an argument");
    g_free(msg);
}

UNIT_TEST(tcg_is_refused_with_reason)
{
    static const char *const a1[] = { "-accel", "tcg", NULL };
    static const char *const a2[] = { "-machine", "pc,accel=tcg", NULL };
    static const char *const a3[] = { "-machine", "type=pc,accel=kvm", NULL };
    char *m1 = parse_one(a1), *m2 = parse_one(a2), *m3 = parse_one(a3);

    CHECK(m1 && strstr(m1, "needs KVM"));
    CHECK(m2 && strstr(m2, "needs KVM"));
    CHECK(m3 == NULL);
    g_free(m1);
    g_free(m2);
    g_free(m3);
}

UNIT_TEST(memory_sizes)
{
    static const struct {
        const char *arg;
        uint64_t bytes;
    } ok[] = {
        { "64M", 64ULL << 20 },    { "4G", 4ULL << 30 },   { "128", 128ULL << 20 },
        { "size=1G", 1ULL << 30 }, { "1.5G", 3ULL << 29 }, { "2048k", 2ULL << 20 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        const char *args[] = { "-m", ok[i].arg, NULL };
        VmConfig *cfg = vm_config_new();
        char *msg = parse(cfg, args);
        CHECK(msg == NULL);
        CHECK_EQ(cfg->ram_size, ok[i].bytes);
        g_free(msg);
        vm_config_free(cfg);
    }
    static const char *const bad[] = { "2X", "", "-1", "G", "1GG", "slots=2", "0" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        const char *args[] = { "-m", bad[i], NULL };
        char *msg = parse_one(args);
        CHECK(msg != NULL);
        CHECK(msg && g_str_has_prefix(msg, "-m "));
        g_free(msg);
    }
}

static char *smp_error(const char *arg, SmpConfig *out)
{
    GError *err = NULL;
    char *msg = NULL;

    *out = (SmpConfig){ 0 };
    if (!smp_parse(out, arg, &err)) {
        msg = g_strdup(err->message);
        g_error_free(err);
    }
    return msg;
}

UNIT_TEST(smp_topology_computed_like_qemu)
{
    SmpConfig s;
    char *msg;

    msg = smp_error("4", &s);
    CHECK(msg == NULL);
    CHECK_EQ(s.cpus, 4);
    CHECK_EQ(s.cores, 4); /* cores preferred over sockets */
    CHECK_EQ(s.sockets, 1);
    CHECK_EQ(s.threads, 1);
    msg = smp_error("cpus=4,sockets=2", &s);
    CHECK(msg == NULL);
    CHECK_EQ(s.cores, 2);
    msg = smp_error("sockets=2,cores=2,threads=2", &s);
    CHECK(msg == NULL);
    CHECK_EQ(s.cpus, 8);
    CHECK_EQ(s.maxcpus, 8);
}

UNIT_TEST(smp_errors_match_qemu)
{
    SmpConfig s;
    char *msg;

    msg = smp_error("4,sockets=1,cores=2,threads=1", &s);
    CHECK_STR(msg, "Invalid CPU topology: product of the hierarchy must match "
                   "maxcpus: sockets (1) * dies (1) * cores (2) * threads (1) != "
                   "maxcpus (4)");
    g_free(msg);
    msg = smp_error("cpus=2,maxcpus=1", &s);
    CHECK_STR(msg, "Invalid CPU topology: maxcpus must be equal to or greater "
                   "than smp: sockets (1) * dies (1) * cores (1) * threads (1) == "
                   "maxcpus (1) < smp_cpus (2)");
    g_free(msg);
    msg = smp_error("foo", &s);
    CHECK_STR(msg, "Parameter 'smp.cpus' expects integer");
    g_free(msg);
    msg = smp_error("2,bogus=1", &s);
    CHECK_STR(msg, "Parameter 'smp.bogus' is unexpected");
    g_free(msg);
    msg = smp_error("300", &s);
    CHECK_STR(msg, "Invalid SMP CPUs 300. The max CPUs supported by machine "
                   "'pc' is 255");
    g_free(msg);
}

UNIT_TEST(smp_syntax_named_when_read_topology_after_the_line)
{
    static const char *const a1[] = { "-smp", "4,=b", NULL };
    static const char *const a2[] = { "-smp", "2", "-smp", "foo", NULL };
    static const char *const a3[] = { "-smp", "foo", "-smp", "3", NULL };
    static const char *const a4[] = { "-smp", "foo", "-m", "2X", NULL };
    VmConfig *cfg = vm_config_new();
    char *m1 = parse_one(a1), *m2 = parse_one(a2), *m3 = parse(cfg, a3);
    char *m4 = parse_one(a4);

    CHECK_STR(m1, "-smp 4,=b: Invalid parameter ''");
    CHECK_STR(m2, "Parameter 'smp.cpus' expects integer");
    CHECK(m3 == NULL);
    CHECK_EQ(cfg->smp.cpus, 3);
    CHECK(m4 && g_str_has_prefix(m4, "-m 2X: "));
    g_free(m1);
    g_free(m2);
    g_free(m3);
    g_free(m4);
    vm_config_free(cfg);
}

UNIT_TEST(mon_parsed_when_read)
{
    static const char *const args[] = { "-mon", "chardev=c0,mode=control",
                                        "-qmp", "unix:/tmp/q,server=on,wait=off",
                                        "-mon", "c1",
                                        NULL };
    static const char *const bad[] = { "-mon", "chardev=a,pretty=maybe", NULL };
    VmConfig *cfg = vm_config_new();
    char *msg = parse(cfg, args), *m2 = parse_one(bad);
    const MonitorOpt *o0, *o1, *o2;

    CHECK(msg == NULL);
    CHECK_EQ(cfg->monitor_opts->len, 3);
    o0 = g_ptr_array_index(cfg->monitor_opts, 0);
    o1 = g_ptr_array_index(cfg->monitor_opts, 1);
    o2 = g_ptr_array_index(cfg->monitor_opts, 2);
    CHECK(o0->kind == MONITOR_OPT_MON && o0->control);
    CHECK_STR(o0->chardev, "c0");
    CHECK(o1->kind == MONITOR_OPT_QMP && o1->control);
    CHECK_STR(o1->arg, "unix:/tmp/q,server=on,wait=off");
    CHECK(o2->kind == MONITOR_OPT_MON && !o2->control);
    CHECK_STR(o2->chardev, "c1");
    CHECK_STR(m2,
              "-mon chardev=a,pretty=maybe: Parameter 'pretty' expects 'on' or 'off'");
    g_free(msg);
    g_free(m2);
    vm_config_free(cfg);
}

UNIT_TEST(cpumap_and_overcommit_parsed_when_read)
{
    static const char *const args[] = {
        "-osnet_cpumap", "map.txt,did=on", "-overcommit", "cpu-pm=on",
        "-overcommit",   "cpu-pm=off",     NULL
    };
    static const char *const b1[] = { "-osnet_cpumap", "did=on", NULL };
    static const char *const b2[] = { "-overcommit", "mem-lock=maybe", NULL };
    VmConfig *cfg = vm_config_new();
    char *msg = parse(cfg, args), *m1 = parse_one(b1), *m2 = parse_one(b2);

    CHECK(msg == NULL);
    CHECK_STR(cfg->cpumap, "map.txt");
    CHECK(cfg->cpumap_did && cfg->overcommit_cpu_pm);
    CHECK_STR(m1, "-osnet_cpumap did=on: Parameter 'path' is missing");
    CHECK_STR(m2,
              "-overcommit mem-lock=maybe: Parameter 'mem-lock' expects 'on' or 'off'");
    g_free(msg);
    g_free(m1);
    g_free(m2);
    vm_config_free(cfg);
}

/* What libvirt's domain command line leaves in the VmConfig. */
UNIT_TEST(libvirt_domain_options)
{
    static const char *const args[] = {
        "-object",
        "{\"qom-type\":\"secret\",\"id\":\"k0\",\"format\":\"base64\","
        "\"data\":\"a2V5\"}",
        "-machine",
        "pc-i440fx-4.2,usb=off,dump-guest-core=off,memory-backend=pc.ram",
        "-object",
        "memory-backend-ram,id=pc.ram,size=256M",
        "-uuid",
        "6BA7B810-9DAD-11D1-80B4-00C04FD430C8",
        "-overcommit",
        "mem-lock=on",
        "-blockdev",
        "driver=file,filename=/x.img,node-name=n1,read-only=on",
        "-device",
        "{\"driver\":\"virtio-blk-pci\",\"drive\":\"n1\",\"bootindex\":1}",
        NULL,
    };
    static const char *const bare[] = { "-rtc", "driftfix=foo", NULL };
    VmConfig *cfg = vm_config_new();
    char *msg = parse(cfg, args), *m1 = parse_one(bare);
    const ObjectOpt *key;
    const DeviceOpt *dev;

    CHECK(msg == NULL);
    key = g_ptr_array_index(cfg->objects, 0);
    CHECK(key->secret && key->secret->len == 3 &&
          memcmp(key->secret->data, "key", 3) == 0);
    CHECK(cfg->ram_size == 256ULL << 20); /* from the backend, -m not given */
    CHECK_STR(cfg->uuid, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    CHECK(cfg->mem_lock && cfg->blockdevs->len == 1);
    dev = g_ptr_array_index(cfg->devices, 0);
    CHECK_STR(dev->driver, "virtio-blk-pci");
    CHECK_STR(subopts_get(dev->props, "bootindex"), "1");
    CHECK_STR(m1, "invalid option value 'foo'"); /* QEMU's, without the prefix */
    g_free(msg);
    g_free(m1);
    vm_config_free(cfg);
}

UNIT_TEST(device_split_when_read)
{
    static const char *const args[] = { "-device", "virtio-blk-pci,drive=d0,id=vb0",
                                        "-device", "driver=x,id=vb1", NULL };
    static const char *const b1[] = { "-device", "id=x", NULL };
    static const char *const b2[] = { "-device", "a,id=x", "-device", "b,id=x", NULL };
    VmConfig *cfg = vm_config_new();
    char *msg = parse(cfg, args), *m1 = parse_one(b1), *m2 = parse_one(b2);
    const DeviceOpt *d0, *d1;

    CHECK(msg == NULL);
    CHECK_EQ(cfg->devices->len, 2);
    d0 = g_ptr_array_index(cfg->devices, 0);
    d1 = g_ptr_array_index(cfg->devices, 1);
    CHECK_STR(d0->driver, "virtio-blk-pci");
    CHECK_STR(d0->arg, "virtio-blk-pci,drive=d0,id=vb0");
    CHECK_STR(subopts_get(d0->props, "drive"), "d0");
    CHECK_STR(d1->driver, "x");
    CHECK_STR(m1, "-device id=x: Parameter 'driver' is missing");
    CHECK_STR(m2, "-device b,id=x: Duplicate ID 'x' for device");
    g_free(msg);
    g_free(m1);
    g_free(m2);
    vm_config_free(cfg);
}

UNIT_TEST(subopts_quirks)
{
    GError *err = NULL;
    SubOpts *o = subopts_parse("pc,accel=kvm,server,nowait,path=a,,b", "type", &err);
    bool b = false;

    CHECK(o != NULL);
    CHECK_STR(subopts_get(o, "type"), "pc");
    CHECK_STR(subopts_get(o, "accel"), "kvm");
    CHECK_STR(subopts_get(o, "server"), "on");
    CHECK_STR(subopts_get(o, "wait"), "off");
    CHECK_STR(subopts_get(o, "path"), "a,b");
    CHECK(subopts_get_bool(o, "server", &b, &err) && b);
    CHECK(subopts_check_unused(o, &err));
    subopts_free(o);

    o = subopts_parse("x=1,y=2", NULL, &err);
    subopts_get(o, "x");
    CHECK(!subopts_check_unused(o, &err));
    CHECK(err && strcmp(err->message, "Invalid parameter 'y'") == 0);
    g_clear_error(&err);
    subopts_free(o);

    o = subopts_parse("flag=maybe", NULL, &err);
    CHECK(!subopts_get_bool(o, "flag", &b, &err));
    CHECK(err != NULL);
    g_clear_error(&err);
    subopts_free(o);
}

UNIT_TEST(option_table_spellings)
{
    static const char *const args[] = {
        "--enable-kvm", "-machine", "pc",       "-display", "none",    "-no-reboot",
        "-name",        "vm0",      "-kernel",  "k",        "-initrd", "i",
        "-append",      "a b",      "-pidfile", "/tmp/p",   "-S",      NULL
    };
    VmConfig *cfg = vm_config_new();
    char *msg = parse(cfg, args);

    CHECK(msg == NULL);
    CHECK(cfg->no_reboot && cfg->display_none && cfg->start_paused);
    CHECK_STR(cfg->name, "vm0");
    CHECK_STR(cfg->kernel, "k");
    CHECK_STR(cfg->append, "a b");
    g_free(msg);
    vm_config_free(cfg);
}

UNIT_TEST(only_none_values)
{
    static const char *const a1[] = { "-vga", "std", NULL };
    static const char *const a2[] = { "-parallel", "stdio", NULL };
    static const char *const a3[] = { "-cpu", "qemu64", NULL };
    char *m1 = parse_one(a1), *m2 = parse_one(a2), *m3 = parse_one(a3);

    CHECK(m1 && g_str_has_prefix(m1, "-vga std: "));
    CHECK(m2 && g_str_has_prefix(m2, "-parallel stdio: "));
    CHECK(m3 && strstr(m3, "qemu64"));
    g_free(m1);
    g_free(m2);
    g_free(m3);
}

static char *drive_error(const char *arg, DriveConfig *d)
{
    GError *err = NULL;
    char *msg = NULL;

    if (!drive_parse(arg, 0, d, &err)) {
        msg = g_strdup(err->message);
        g_error_free(err);
    }
    return msg;
}

UNIT_TEST(drive_seed_spelling)
{
    DriveConfig d;
    char *msg = drive_error("file=vm.qcow2,if=virtio", &d);

    CHECK(msg == NULL);
    CHECK_STR(d.file, "vm.qcow2");
    CHECK(d.format == NULL); /* probed */
    CHECK_STR(d.id, "virtio0");
    CHECK_EQ(d.cache, BLOCK_CACHE_WRITEBACK);
    drive_config_clear(&d);
    msg = drive_error("file=a,,b.img,if=virtio,format=raw,cache=none,readonly=on,"
                      "id=disk1,discard=unmap,serial=S1",
                      &d);
    CHECK(msg == NULL);
    CHECK_STR(d.file, "a,b.img");
    CHECK_STR(d.format, "raw");
    CHECK_EQ(d.cache, BLOCK_CACHE_NONE);
    CHECK(d.read_only && d.discard_unmap);
    CHECK_STR(d.id, "disk1");
    CHECK_STR(d.serial, "S1");
    drive_config_clear(&d);
}

UNIT_TEST(drive_errors)
{
    static const struct {
        const char *arg, *error;
    } cases[] = {
        { "file=x", "add if=virtio" },
        { "file=x,if=ide", "if=ide is not supported" },
        { "if=virtio", "must be specified for \"file\"" },
        { "file=x,if=virtio,format=vmdk", "Unknown driver 'vmdk'" },
        { "file=x,if=virtio,cache=fast", "invalid cache option" },
        { "file=x,if=virtio,readonly=maybe", "expects 'on' or 'off'" },
        { "file=x,if=virtio,media=cdrom", "media=cdrom" },
        { "file=x,if=virtio,bogus=1", "Invalid parameter 'bogus'" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        DriveConfig d;
        char *msg = drive_error(cases[i].arg, &d);
        CHECK(msg && strstr(msg, cases[i].error));
        if (!msg || !strstr(msg, cases[i].error)) {
            fprintf(stderr, "  %s -> %s\n", cases[i].arg, msg ? msg : "(ok)");
        }
        g_free(msg);
    }
}

UNIT_MAIN()
