/*
 * Command-line parsing driven by the option table in system/options.def.
 * Fills a VmConfig; reports errors the way QEMU words them.  Runs once on
 * the main thread before anything else exists.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "block/drive.h"
#include "config-host.h"
#include "net/net.h"
#include "options-int.h"
#include "system/config.h"
#include "util/error.h"
#include "util/subopt.h"
#include "sandbox-int.h"

typedef bool (*OptHandler)(VmConfig *cfg, const char *arg, GError **errp);

/* How a row of options.def stores its value (see there). */
typedef enum OptKind {
    OPT_KIND_FLAG,
    OPT_KIND_STRING,
    OPT_KIND_LIST,
    OPT_KIND_PARSE,
    OPT_KIND_ACTION,
} OptKind;

typedef struct OptionDef {
    const char *name;
    OptKind kind;
    size_t offset;      /* FLAG, STRING, LIST: the VmConfig field */
    OptHandler handler; /* PARSE, ACTION */
    const char *help;
} OptionDef;

static bool set_string(char **slot, const char *arg);

/* Set by -help / -version: print, then exit 0. */
static bool opt_exit_now;

static bool opt_help(VmConfig *cfg, const char *arg, GError **errp)
{
    vm_config_print_help();
    opt_exit_now = true;
    return true;
}

static bool opt_version(VmConfig *cfg, const char *arg, GError **errp)
{
    printf("QEMU emulator version 4.2.0 (directvisor %s)\n"
           "Directvisor VMM: a KVM virtual machine monitor compatible with "
           "qemu-system-x86_64\n",
           DIRECTVISOR_VERSION);
    opt_exit_now = true;
    return true;
}

static bool check_accel(const char *accel, GError **errp)
{
    if (strcmp(accel, "kvm") == 0) {
        return true;
    }
    if (strcmp(accel, "tcg") == 0 || strcmp(accel, "qtest") == 0 ||
        strcmp(accel, "xen") == 0) {
        error_setg(errp,
                   "accelerator '%s' is not available: this VMM needs "
                   "KVM (/dev/kvm) and has no emulator",
                   accel);
        return false;
    }
    error_setg(errp, "invalid accelerator %s", accel);
    return false;
}

static bool opt_accel(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "accel", errp);
    const char *accel;
    bool ok;

    if (!o) {
        return false;
    }
    accel = subopts_get(o, "accel");
    ok = accel && check_accel(accel, errp) && subopts_check_unused(o, errp);
    if (!accel) {
        error_setg(errp, "Parameter 'accel' is missing");
    }
    cfg->accel_kvm_seen |= ok;
    subopts_free(o);
    return ok;
}

/* -no-user-config: this VMM reads no configuration file to begin with. */
static bool opt_no_user_config(VmConfig *cfg, const char *arg, GError **errp)
{
    return true;
}

/*
 * accel=LIST of machine none: QEMU tries each of the ':'-separated list in
 * turn.  Only KVM is here; where nothing runs (machine none, which
 * libvirt probes with accel=kvm:tcg, then accel=tcg) tcg is accepted and
 * means "carry on without KVM".
 */
static bool machine_none_accel(VmConfig *cfg, const char *accel, GError **errp)
{
    char **list = g_strsplit(accel, ":", -1);
    bool ok = true, kvm = false;

    cfg->accel_tcg = false;
    for (char **a = list; *a && ok; a++) {
        if (strcmp(*a, "tcg") == 0) {
            cfg->accel_tcg = true;
        } else {
            ok = check_accel(*a, errp);
            kvm |= ok;
        }
    }
    g_strfreev(list);
    cfg->accel_no_kvm = !kvm;
    return ok;
}

/*
 * The board's properties libvirt sets; QEMU reports their errors when it
 * creates the machine, without the option's name.
 */
static bool machine_board_options(VmConfig *cfg, SubOpts *o, GError **errp)
{
    static const char *const flags[] = {
        "usb", "dump-guest-core", "mem-merge", "graphics", "hpet", NULL,
    };
    const char *backend = subopts_get(o, "memory-backend");

    for (int i = 0; flags[i]; i++) {
        bool on = false;

        if (!subopts_get_bool(o, flags[i], &on, errp)) {
            opt_bare_error = true;
            return false;
        }
        if (on && strcmp(flags[i], "usb") == 0) {
            error_setg(errp, "usb=on is not supported: this VMM has no USB controller");
            return false;
        }
        if (on && strcmp(flags[i], "hpet") == 0) {
            error_setg(errp, "hpet=on is not supported: this VMM has no HPET");
            return false;
        }
    }
    /* dump-guest-core and mem-merge: no core dumps are taken, no KSM asked */
    if (backend) {
        set_string(&cfg->memory_backend, backend);
    }
    return true;
}

static bool opt_machine(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "type", errp);
    const char *type, *accel;
    bool ok = false;

    if (!o) {
        return false;
    }
    type = subopts_get(o, "type");
    accel = subopts_get(o, "accel");
    if (type && strcmp(type, "pc") != 0 && strcmp(type, "pc-i440fx-4.2") != 0 &&
        strcmp(type, "q35") != 0 && strcmp(type, "none") != 0) {
        error_setg(errp, "unsupported machine type '%s': this VMM offers 'pc'", type);
        goto out;
    }
    if (type && strcmp(type, "q35") == 0) {
        error_setg(errp, "machine type 'q35' is not supported yet: use 'pc'");
        goto out;
    }
    if (accel && type && strcmp(type, "none") == 0) {
        if (!machine_none_accel(cfg, accel, errp)) {
            goto out;
        }
    } else if (accel) {
        /* QEMU allows a ':'-separated fallback list; kvm must be first. */
        char **list = g_strsplit(accel, ":", -1);
        ok = check_accel(list[0], errp);
        g_strfreev(list);
        if (!ok) {
            goto out;
        }
        cfg->accel_kvm_seen = true;
    }
    ok = machine_board_options(cfg, o, errp) && subopts_check_unused(o, errp);
    if (ok && type) {
        g_free(cfg->machine_type);
        cfg->machine_type = g_strdup(type);
    }
out:
    subopts_free(o);
    return ok;
}

static bool opt_cpu(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "model", errp);
    const char *model;
    bool ok = false, migratable = true;

    if (!o) {
        return false;
    }
    model = subopts_get(o, "model");
    if (!model || (strcmp(model, "host") != 0 && strcmp(model, "max") != 0)) {
        error_setg(errp,
                   "unable to find CPU model '%s': this VMM offers "
                   "'host' (and 'max', the same)",
                   model ? model : "");
        goto out;
    }
    /* migratable=on (libvirt's default for host-passthrough): nothing to hide */
    if (!subopts_get_bool(o, "host-cache-info", &cfg->host_cache_info, errp) ||
        !subopts_get_bool(o, "migratable", &migratable, errp)) {
        goto out;
    }
    ok = subopts_check_unused(o, errp);
    g_free(cfg->cpu_model);
    cfg->cpu_model = g_strdup("host");
out:
    subopts_free(o);
    return ok;
}

/*
 * -smp's topology error, reported after the whole command line is read and
 * without the option's prefix, as QEMU does; the last -smp counts.
 */
static GError *smp_error;

/* Split when read (a syntax error names the option, as in QEMU). */
static bool opt_smp(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "cpus", errp);

    if (!o) {
        return false;
    }
    g_clear_error(&smp_error);
    smp_parse_opts(&cfg->smp, o, &smp_error);
    subopts_free(o);
    return true;
}

static bool opt_memory(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "size", errp);
    const char *size;
    uint64_t bytes;
    bool ok = false;

    if (!o) {
        return false;
    }
    size = subopts_get(o, "size");
    if (subopts_has(o, "slots") || subopts_has(o, "maxmem")) {
        error_setg(errp, "memory hotplug (slots, maxmem) is not supported");
        goto out;
    }
    if (!size) {
        error_setg(errp, "missing 'size' option value");
        goto out;
    }
    if (!parse_size_value("size", size, 'M', &bytes, errp) ||
        !subopts_check_unused(o, errp)) {
        goto out;
    }
    if (bytes < (1 << 20)) {
        error_setg(errp, "ram size too small (at least 1 MiB)");
        goto out;
    }
    /* 1 TiB: well beyond what the memory map below handles today */
    if (bytes > (1ULL << 40)) {
        error_setg(errp, "ram size too large (at most 1T)");
        goto out;
    }
    cfg->ram_size = bytes & ~0xfffULL;
    cfg->ram_size_given = true;
    ok = true;
out:
    subopts_free(o);
    return ok;
}

static bool set_string(char **slot, const char *arg)
{
    g_free(*slot);
    *slot = g_strdup(arg);
    return true;
}

static bool opt_serial(VmConfig *cfg, const char *arg, GError **errp)
{
    if (cfg->serials->len >= 4) {
        error_setg(errp, "too many serial ports (at most 4)");
        return false;
    }
    g_ptr_array_add(cfg->serials, g_strdup(arg));
    return true;
}

/* Options whose only supported value is "none". */
static bool only_none(const char *what, const char *arg, GError **errp)
{
    if (strcmp(arg, "none") == 0) {
        return true;
    }
    error_setg(errp, "'%s' is not supported: this VMM has no %s (use 'none')", arg, what);
    return false;
}

static bool opt_parallel(VmConfig *cfg, const char *arg, GError **errp)
{
    return only_none("parallel port", arg, errp);
}

static bool opt_net(VmConfig *cfg, const char *arg, GError **errp)
{
    if (strcmp(arg, "none") == 0) {
        return true;
    }
    error_setg(errp,
               "legacy -net '%s' is not supported: use -netdev and "
               "-device virtio-net-pci",
               arg);
    return false;
}

static bool opt_vga(VmConfig *cfg, const char *arg, GError **errp)
{
    return only_none("display adapter", arg, errp);
}

static bool opt_display(VmConfig *cfg, const char *arg, GError **errp)
{
    if (strcmp(arg, "none") == 0 || g_str_has_prefix(arg, "none,")) {
        cfg->display_none = true;
        return true;
    }
    return only_none("display", arg, errp);
}

static bool opt_name(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "guest", errp);
    bool debug_threads = false, ok;

    if (!o) {
        return false;
    }
    set_string(&cfg->name, subopts_get(o, "guest"));
    ok = subopts_get_bool(o, "debug-threads", &debug_threads, errp) &&
         subopts_check_unused(o, errp);
    subopts_free(o);
    return ok;
}

static bool opt_drive(VmConfig *cfg, const char *arg, GError **errp)
{
    DriveConfig *d = g_new0(DriveConfig, 1);

    /* the index numbers the drives, as QEMU's default ids "virtio0"... do */
    if (!drive_parse(arg, cfg->drives->len, d, errp)) {
        g_free(d);
        return false;
    }
    g_ptr_array_add(cfg->drives, d);
    return true;
}

static void device_opt_free(gpointer p)
{
    DeviceOpt *dev = p;

    g_free(dev->arg);
    g_free(dev->driver);
    subopts_free(dev->props);
    g_free(dev);
}

/* QEMU refuses a second device of the same id when the option is read. */
static bool device_id_taken(const VmConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->devices->len; i++) {
        const DeviceOpt *dev = g_ptr_array_index(cfg->devices, i);
        const char *other = subopts_get(dev->props, "id");
        if (other && strcmp(other, id) == 0) {
            return true;
        }
    }
    return false;
}

static bool opt_device(VmConfig *cfg, const char *arg, GError **errp)
{
    g_autofree char *keyval = NULL;
    SubOpts *o;
    const char *driver, *id;
    DeviceOpt *dev;

    /* libvirt's JSON spelling: the same properties */
    if (arg[0] == '{' && !(keyval = option_json_to_keyval(arg, "driver", errp))) {
        return false;
    }
    o = subopts_parse(keyval ? keyval : arg, "driver", errp);
    if (!o) {
        return false;
    }
    driver = subopts_get(o, "driver");
    id = subopts_get(o, "id");
    if (!driver) {
        error_setg(errp, "Parameter 'driver' is missing");
    } else if (id && device_id_taken(cfg, id)) {
        error_setg(errp, "Duplicate ID '%s' for device", id);
    } else {
        dev = g_new0(DeviceOpt, 1);
        dev->arg = g_strdup(arg);
        dev->driver = g_strdup(driver);
        dev->props = o;
        g_ptr_array_add(cfg->devices, dev);
        return true;
    }
    subopts_free(o);
    return false;
}

static void netdev_opt_free(gpointer p)
{
    NetdevOpt *opt = p;

    netdev_config_clear(opt->cfg);
    g_free(opt->cfg);
    g_free(opt->arg);
    g_free(opt);
}

/* -netdev: parsed now (QEMU's texts), opened at machine set-up; "help" lists. */
static bool opt_netdev(VmConfig *cfg, const char *arg, GError **errp)
{
    g_autofree char *keyval = NULL;
    NetdevOpt *opt;
    NetdevConfig *nc;

    if (strcmp(arg, "help") == 0) {
        printf("Available netdev backend types:\ntap\n");
        opt_exit_now = true;
        return true;
    }
    if (arg[0] == '{' && !(keyval = option_json_to_keyval(arg, "type", errp))) {
        return false;
    }
    nc = g_new0(NetdevConfig, 1);
    if (!netdev_parse(keyval ? keyval : arg, nc, errp)) {
        g_free(nc);
        return false;
    }
    for (guint i = 0; i < cfg->netdevs->len; i++) {
        const NetdevOpt *other = g_ptr_array_index(cfg->netdevs, i);
        if (strcmp(other->cfg->id, nc->id) == 0) {
            error_setg(errp, "Duplicate ID '%s' for netdev", nc->id);
            netdev_config_clear(nc);
            g_free(nc);
            return false;
        }
    }
    opt = g_new0(NetdevOpt, 1);
    opt->arg = g_strdup(arg);
    opt->cfg = nc;
    g_ptr_array_add(cfg->netdevs, opt);
    return true;
}

static void monitor_opt_free(gpointer p)
{
    MonitorOpt *opt = p;

    g_free(opt->arg);
    g_free(opt->chardev);
    g_free(opt);
}

static MonitorOpt *add_monitor_opt(VmConfig *cfg, MonitorOptKind kind, const char *arg)
{
    MonitorOpt *opt = g_new0(MonitorOpt, 1);

    opt->kind = kind;
    opt->arg = g_strdup(arg);
    opt->control = kind == MONITOR_OPT_QMP;
    g_ptr_array_add(cfg->monitor_opts, opt);
    return opt;
}

/* -monitor and -qmp name a chardev spec, which the chardevs' set parses. */
static bool opt_monitor(VmConfig *cfg, const char *arg, GError **errp)
{
    add_monitor_opt(cfg, MONITOR_OPT_HMP, arg);
    return true;
}

static bool opt_qmp(VmConfig *cfg, const char *arg, GError **errp)
{
    add_monitor_opt(cfg, MONITOR_OPT_QMP, arg);
    return true;
}

/* -mon chardev=ID[,mode=readline|control][,pretty=on|off]; pretty is ignored. */
static bool opt_mon(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "chardev", errp);
    const char *id, *mode;
    bool pretty = false, ok = false;
    MonitorOpt *opt;

    if (!o) {
        return false;
    }
    id = subopts_get(o, "chardev");
    mode = subopts_get(o, "mode");
    subopts_get(o, "id"); /* the monitor's name: QEMU keeps it, nothing reads it */
    if (!subopts_get_bool(o, "pretty", &pretty, errp) || !subopts_check_unused(o, errp)) {
        goto out;
    }
    if (!id) {
        error_setg(errp, "Parameter 'chardev' is missing");
        goto out;
    }
    if (mode && strcmp(mode, "control") && strcmp(mode, "readline")) {
        error_setg(errp, "Parameter 'mode' does not accept value '%s'", mode);
        goto out;
    }
    opt = add_monitor_opt(cfg, MONITOR_OPT_MON, arg);
    opt->chardev = g_strdup(id);
    opt->control = mode && strcmp(mode, "control") == 0;
    ok = true;
out:
    subopts_free(o);
    return ok;
}

/* -osnet_cpumap path=FILE[,did=on]: the file is read at machine set-up. */
static bool opt_osnet_cpumap(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "path", errp);
    const char *path;
    bool did = false, ok;

    if (!o) {
        return false;
    }
    path = subopts_get(o, "path");
    ok = subopts_get_bool(o, "did", &did, errp) && subopts_check_unused(o, errp);
    if (ok && (!path || !*path)) {
        error_setg(errp, "Parameter 'path' is missing");
        ok = false;
    }
    if (ok) {
        set_string(&cfg->cpumap, path);
        cfg->cpumap_did = did;
    }
    subopts_free(o);
    return ok;
}

static bool opt_overcommit(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, NULL, errp);
    bool cpu_pm = false, mem_lock = false, ok;

    if (!o) {
        return false;
    }
    ok = subopts_get_bool(o, "cpu-pm", &cpu_pm, errp) &&
         subopts_get_bool(o, "mem-lock", &mem_lock, errp) &&
         subopts_check_unused(o, errp);
    cfg->overcommit_cpu_pm |= ok && cpu_pm;
    cfg->mem_lock = ok ? mem_lock : cfg->mem_lock;
    subopts_free(o);
    return ok;
}

/* A FLAG, STRING or LIST row's field must have the type its kind stores. */
#define FIELD_IS(field, type) _Generic(((VmConfig *)0)->field, type : 1, default : 0)
#define OPT_CHECK_FLAG(f)     _Static_assert(FIELD_IS(f, bool), "FLAG " #f " is not bool");
#define OPT_CHECK_STRING(f)                                                              \
    _Static_assert(FIELD_IS(f, char *), "STRING " #f " is not char *");
#define OPT_CHECK_LIST(f)                                                                \
    _Static_assert(FIELD_IS(f, GPtrArray *), "LIST " #f " is not GPtrArray *");
#define OPT_CHECK_PARSE(h)
#define OPT_CHECK_ACTION(h)
#define OPT(name, kind, where, help) OPT_CHECK_##kind(where)
#include "options.def"
#undef OPT

#define OPT_AT_FLAG(f)   offsetof(VmConfig, f), NULL
#define OPT_AT_STRING(f) offsetof(VmConfig, f), NULL
#define OPT_AT_LIST(f)   offsetof(VmConfig, f), NULL
#define OPT_AT_PARSE(h)  0, opt_##h
#define OPT_AT_ACTION(h) 0, opt_##h
static const OptionDef option_table[] = {
#define OPT(name, kind, where, help)                                                     \
    { name, OPT_KIND_##kind, OPT_AT_##kind(where), help },
#include "options.def"
#undef OPT
};

static void *option_field(const OptionDef *def, VmConfig *cfg)
{
    return (char *)cfg + def->offset;
}

static bool option_takes_argument(const OptionDef *def)
{
    return def->kind != OPT_KIND_FLAG && def->kind != OPT_KIND_ACTION;
}

/* Store arg (NULL for FLAG and ACTION rows) as def's kind says. */
static bool option_store(const OptionDef *def, VmConfig *cfg, const char *arg,
                         GError **errp)
{
    switch (def->kind) {
    case OPT_KIND_FLAG:
        *(bool *)option_field(def, cfg) = true;
        return true;
    case OPT_KIND_STRING:
        return set_string(option_field(def, cfg), arg);
    case OPT_KIND_LIST:
        g_ptr_array_add(*(GPtrArray **)option_field(def, cfg), g_strdup(arg));
        return true;
    case OPT_KIND_PARSE:
    case OPT_KIND_ACTION:
        return def->handler(cfg, arg, errp);
    }
    return false;
}

void vm_config_print_help(void)
{
    printf("usage: qemu-system-x86_64 [options]\n"
           "Directvisor VMM %s: KVM virtual machines on dedicated cores\n\n",
           DIRECTVISOR_VERSION);
    for (size_t i = 0; i < G_N_ELEMENTS(option_table); i++) {
        const OptionDef *o = &option_table[i];
        printf("-%-14s %s\n", o->name, o->help);
    }
}

VmConfig *vm_config_new(void)
{
    VmConfig *cfg = g_new0(VmConfig, 1);

    cfg->smp = (SmpConfig){ 1, 1, 1, 1, 1, 1 };
    cfg->ram_size = 128ULL << 20;
    cfg->serials = g_ptr_array_new_with_free_func(g_free);
    cfg->drives = g_ptr_array_new_with_free_func(drive_config_free);
    cfg->devices = g_ptr_array_new_with_free_func(device_opt_free);
    cfg->netdevs = g_ptr_array_new_with_free_func(netdev_opt_free);
    cfg->monitor_opts = g_ptr_array_new_with_free_func(monitor_opt_free);
    cfg->objects = object_opts_new();
    cfg->blockdevs = blockdev_opts_new();
    for (size_t i = 0; i < G_N_ELEMENTS(option_table); i++) {
        const OptionDef *def = &option_table[i];

        if (def->kind == OPT_KIND_LIST) {
            GPtrArray **list = option_field(def, cfg);
            if (!*list) {
                *list = g_ptr_array_new_with_free_func(g_free);
            }
        }
    }
    return cfg;
}

void vm_config_free(VmConfig *cfg)
{
    if (!cfg) {
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(option_table); i++) {
        const OptionDef *def = &option_table[i];

        if (def->kind == OPT_KIND_STRING) {
            g_clear_pointer((char **)option_field(def, cfg), g_free);
        } else if (def->kind == OPT_KIND_LIST) {
            GPtrArray **list = option_field(def, cfg);
            if (*list) {
                g_ptr_array_free(*list, TRUE);
                *list = NULL;
            }
        }
    }
    g_free(cfg->cpu_model);
    g_free(cfg->machine_type);
    g_free(cfg->name);
    g_free(cfg->cpumap);
    g_free(cfg->memory_backend);
    g_free(cfg->uuid);
    g_ptr_array_free(cfg->objects, TRUE);
    g_ptr_array_free(cfg->blockdevs, TRUE);
    g_ptr_array_free(cfg->serials, TRUE);
    g_ptr_array_free(cfg->drives, TRUE);
    g_ptr_array_free(cfg->devices, TRUE);
    g_ptr_array_free(cfg->netdevs, TRUE);
    g_ptr_array_free(cfg->monitor_opts, TRUE);
    sandbox_config_clear(cfg);
    g_free(cfg);
}

static const OptionDef *option_lookup(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(option_table); i++) {
        if (strcmp(option_table[i].name, name) == 0) {
            return &option_table[i];
        }
    }
    return NULL;
}

bool vm_config_parse_argv(VmConfig *cfg, int argc, char **argv, bool *exit_now,
                          GError **errp)
{
    opt_exit_now = false;
    g_clear_error(&smp_error);
    for (int i = 1; i < argc; i++) {
        const char *word = argv[i];
        const char *name;
        const OptionDef *def;
        GError *err = NULL;
        const char *arg = NULL;

        if (word[0] != '-') {
            /* QEMU treats a bare word as the disk image (-hda) */
            error_setg(errp,
                       "%s: a bare disk image is not supported: use "
                       "-drive file=%s,if=virtio",
                       word, word);
            return false;
        }
        /* QEMU accepts --opt as -opt */
        name = word + 1 + (word[1] == '-');
        def = option_lookup(name);
        if (!def) {
            error_setg(errp, "%s: invalid option", word);
            return false;
        }
        if (option_takes_argument(def)) {
            if (i + 1 >= argc) {
                error_setg(errp, "%s: requires an argument", word);
                return false;
            }
            arg = argv[++i];
        }
        /* the one place an option's error gets QEMU's "-opt arg: " */
        opt_bare_error = false;
        if (!option_store(def, cfg, arg, &err)) {
            if (opt_bare_error) {
                g_propagate_error(errp, err);
                err = NULL;
            } else if (arg) {
                g_set_error(errp, err->domain, err->code, "%s %s: %s", word, arg,
                            err->message);
            } else {
                g_set_error(errp, err->domain, err->code, "%s: %s", word, err->message);
            }
            g_clear_error(&err);
            g_clear_error(&smp_error);
            return false;
        }
        if (opt_exit_now) {
            *exit_now = true;
            g_clear_error(&smp_error);
            return true;
        }
    }
    *exit_now = false;
    if (smp_error) {
        g_propagate_error(errp, g_steal_pointer(&smp_error));
        return false;
    }
    return vm_config_create_objects(cfg, errp);
}
