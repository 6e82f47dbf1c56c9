/*
 * The HMP commands: each calls the typed query or action that its QMP
 * twin calls (hw/, migration/, the monitor's own) and prints the result as
 * QEMU's HMP prints it; the command tables.  Main thread only.
 */
#include <inttypes.h>
#include <string.h>

#include "hw/devices.h"
#include "hw/machine-info.h"
#include "hw/pci.h"
#include "hw/vfio-pci.h"
#include "migration/migration.h"
#include "monitor-int.h"
#include "util/error.h"
#include "util/subopt.h"

/*
 * After a call that returned ok and set *errp on failure: print the error
 * (freeing it) as QEMU's HMP does.  Returns ok.
 */
static bool hmp_check(Monitor *mon, bool ok, GError **errp)
{
    if (!ok) {
        monitor_printf(mon, "Error: %s\n", (*errp)->message);
        g_clear_error(errp);
    }
    return ok;
}

/*
 * A string argument QMP could carry too (UTF-8), else false, said to the
 * user: both monitors take the same values.
 */
static bool hmp_utf8_arg(Monitor *mon, const char *cmd, const char *key,
                         const char *value)
{
    if (!g_utf8_validate(value, -1, NULL)) {
        monitor_printf(mon, "%s: the %s is not valid UTF-8\n", cmd, key);
        return false;
    }
    return true;
}

static void hmp_info_status(Monitor *mon, const char *args)
{
    MachineStatusInfo status;

    machine_query_status(mon->set->machine, &status);
    if (status.running) {
        monitor_printf(mon, "VM status: running\n");
    } else if (status.state == RUN_STATE_PAUSED) {
        monitor_printf(mon, "VM status: paused\n");
    } else {
        monitor_printf(mon, "VM status: paused (%s)\n", runstate_name(status.state));
    }
}

static void hmp_info_cpus(Monitor *mon, const char *args)
{
    GArray *cpus = machine_query_cpus(mon->set->machine, true);

    for (guint i = 0; i < cpus->len; i++) {
        const MachineCpuInfo *cpu = &g_array_index(cpus, MachineCpuInfo, i);
        monitor_printf(mon, "%c CPU #%u: pc=0x%016" PRIx64 "%s thread_id=%d\n",
                       cpu->index == 0 ? '*' : ' ', cpu->index, cpu->pc,
                       cpu->halted ? " (halted)" : "", (int)cpu->thread_id);
    }
    g_array_unref(cpus);
}

static void hmp_info_kvm(Monitor *mon, const char *args)
{
    MachineKvmInfo kvm;

    machine_query_kvm(mon->set->machine, &kvm);
    monitor_printf(mon, "kvm support: %s\n", kvm.enabled ? "enabled" : "disabled");
}

static void hmp_info_version(Monitor *mon, const char *args)
{
    MonitorVersionInfo v;

    monitor_query_version(&v);
    monitor_printf(mon, "%d.%d.%d%s\n", v.major, v.minor, v.micro, v.package);
}

static void hmp_info_name(Monitor *mon, const char *args)
{
    const char *name = mon->set->machine->cfg->name;

    if (name) {
        monitor_printf(mon, "%s\n", name);
    }
}

static void print_chardev(Chardev *chr, void *opaque)
{
    monitor_printf(opaque, "%s: filename=%s\n", chardev_id(chr), chardev_filename(chr));
}

static void hmp_info_chardev(Monitor *mon, const char *args)
{
    chardev_set_foreach(mon->set->machine->chardevs, print_chardev, mon);
}

static void hmp_info_registers(Monitor *mon, const char *args)
{
    Machine *m = mon->set->machine;
    VCpuSnapshot s;
    const struct kvm_regs *r = &s.regs;

    vcpu_snapshot(m->vcpus[0], &s);
    if (!s.valid) {
        monitor_printf(mon, "Error: cannot read the registers of CPU 0\n");
        return;
    }
    monitor_printf(mon,
                   "CPU#0\n"
                   "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
                   "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
                   "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
                   "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
                   "RIP=%016llx RFL=%08llx CPL=%u HLT=%d\n"
                   "CS =%04x %016llx  SS =%04x %016llx\n"
                   "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx EFER=%016llx\n",
                   r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->rsp, r->r8,
                   r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, r->rip,
                   r->rflags, s.sregs.cs.dpl, s.mp_state.mp_state == KVM_MP_STATE_HALTED,
                   s.sregs.cs.selector, s.sregs.cs.base, s.sregs.ss.selector,
                   s.sregs.ss.base, s.sregs.cr0, s.sregs.cr2, s.sregs.cr3, s.sregs.cr4,
                   s.sregs.efer);
}

/* The passed-through devices' vectors: where their host IRQs go. */
static void hmp_info_osnet_vectors(Monitor *mon, Machine *m)
{
    GArray *list = machine_query_passthrough_vectors(m);

    for (guint i = 0; i < list->len; i++) {
        const VfioPciVectorInfo *v = &g_array_index(list, VfioPciVectorInfo, i);
        if (i == 0) {
            monitor_printf(mon, "passthrough vectors:\n");
        }
        monitor_printf(mon,
                       "  %s (%s) %s[%u]%s: vcpu %d, host irq %d, pcpu %d, "
                       "affinity %s, posted %s\n",
                       v->qdev_id ? v->qdev_id : "-", v->host, v->msix ? "msix" : "msi",
                       v->vector, v->enabled ? "" : " masked", v->vcpu, v->host_irq,
                       v->pcpu, v->affinity ? v->affinity : "-",
                       v->posted ? "yes" : "no");
    }
    g_array_unref(list);
}

static void hmp_info_osnet(Monitor *mon, const char *args)
{
    Machine *m = mon->set->machine;
    OsnetDidInfo did;
    GError *err = NULL;
    GArray *stats;

    osnet_query_did(&m->osnet, &did);
    stats = machine_query_osnet_stats(m, &err);
    if (!hmp_check(mon, stats != NULL, &err)) {
        return;
    }
    monitor_printf(mon, "DID: %s (mode %s, did at start: %s, reason %s), exits disabled:",
                   did.active ? "on" : "off",
                   did.kernel_extension ? "directvisor" : "kvm",
                   did.did_at_start ? "yes" : "no", osnet_did_reason_name(did.reason));
    for (const MonitorExitName *e = monitor_exit_names; e->name; e++) {
        if (did.exits_disabled & e->bit) {
            monitor_printf(mon, " %s", e->name);
        }
    }
    monitor_printf(mon, ", halt-poll-ns %" PRId64 "\n", did.halt_poll_ns);
    monitor_printf(mon, "vcpu pcpu thread_id  exits/s   halt/s    irq/s   mmio/s  "
                        "user/s   exits(total)\n");
    for (guint i = 0; i < stats->len; i++) {
        const OsnetVcpuStatsInfo *v = &g_array_index(stats, OsnetVcpuStatsInfo, i);
        monitor_printf(mon,
                       "%4u %4d %9d %8" PRId64 " %8" PRId64 " %8" PRId64 " %8" PRId64
                       " %7" PRId64 " %14" PRId64 "\n",
                       v->cpu_index, v->pcpu, (int)v->thread_id,
                       (int64_t)v->per_second.exits, (int64_t)v->per_second.halt,
                       (int64_t)v->per_second.irq, (int64_t)v->per_second.mmio,
                       (int64_t)v->per_second.userspace, (int64_t)v->total.exits);
    }
    g_array_unref(stats);
    hmp_info_osnet_vectors(mon, m);
}

static void hmp_osnet_set_cpumap(Monitor *mon, const char *args)
{
    GError *err = NULL;

    if (!*args) {
        monitor_printf(mon, "osnet_set_cpumap: a path is required\n");
        return;
    }
    if (hmp_utf8_arg(mon, "osnet_set_cpumap", "path", args)) {
        hmp_check(mon, machine_reload_cpumap(mon->set->machine, args, &err), &err);
    }
}

static void hmp_osnet_did(Monitor *mon, const char *args)
{
    OsnetState *os = &mon->set->machine->osnet;
    GError *err = NULL;

    if (strcmp(args, "on") == 0) {
        hmp_check(mon, osnet_did_enable(os, &err), &err);
    } else if (strcmp(args, "off") == 0) {
        hmp_check(mon, osnet_did_disable(os, &err), &err);
    } else {
        monitor_printf(mon, "osnet_did: expected 'on' or 'off'\n");
    }
}

static void hmp_migrate(Monitor *mon, const char *args)
{
    const char *uri = args;
    GError *err = NULL;

    /* -d (detach) is how QEMU's HMP always behaves now: return at once */
    if (g_str_has_prefix(uri, "-d ")) {
        uri = g_strchug((char *)uri + 3);
    }
    if (!*uri) {
        monitor_printf(mon, "migrate: a URI is required\n");
        return;
    }
    if (hmp_utf8_arg(mon, "migrate", "uri", uri)) {
        hmp_check(mon, migration_start(mon->set->machine->migration, uri, &err), &err);
    }
}

static void hmp_migrate_cancel(Monitor *mon, const char *args)
{
    migration_cancel(mon->set->machine->migration);
}

static void hmp_set_parameters(Monitor *mon, const MigrationParameters *p)
{
    GError *err = NULL;

    hmp_check(mon, migration_set_parameters(mon->set->machine->migration, p, &err), &err);
}

/* "32M", "1G", or a bare number of bytes per second, as QEMU's HMP takes */
static void hmp_migrate_set_speed(Monitor *mon, const char *args)
{
    uint64_t bytes;
    GError *err = NULL;

    if (!parse_size_value("speed", args, 'B', &bytes, &err)) {
        monitor_printf(mon, "%s\n", err->message);
        g_error_free(err);
        return;
    }
    hmp_set_parameters(mon, &(MigrationParameters){ .has_max_bandwidth = true,
                                                    .max_bandwidth = (int64_t)bytes });
}

static void hmp_migrate_set_downtime(Monitor *mon, const char *args)
{
    char *end;
    double seconds = g_ascii_strtod(args, &end);
    int64_t ms;

    if (end == args || *end || !(seconds >= 0)) { /* NaN too */
        monitor_printf(mon, "migrate_set_downtime: expected seconds, e.g. 0.3\n");
        return;
    }
    /* beyond the largest limit: converted only once it fits (1e300, inf) */
    ms = seconds < 1e12 ? (int64_t)(seconds * 1000 + 0.5) : (int64_t)1e15;
    hmp_set_parameters(
        mon, &(MigrationParameters){ .has_downtime_limit = true, .downtime_limit = ms });
}

/* QEMU's query-migrate "ram" members, in its order, with HMP's format. */
static void print_migration_ram(Monitor *mon, const MigrationRamInfo *r)
{
    const struct {
        const char *name;
        int64_t value;
    } counts[] = {
        { "transferred", (int64_t)r->transferred },
        { "remaining", (int64_t)r->remaining },
        { "total", (int64_t)r->total },
        { "duplicate", (int64_t)r->duplicate },
        { "skipped", 0 },
        { "normal", (int64_t)r->normal },
        { "normal-bytes", (int64_t)r->normal_bytes },
        { "dirty-pages-rate", (int64_t)r->dirty_pages_rate },
        { "mbps", 0 }, /* a number, printed apart */
        { "dirty-sync-count", (int64_t)r->dirty_sync_count },
        { "postcopy-requests", 0 },
        { "page-size", (int64_t)r->page_size },
        { "multifd-bytes", 0 },
        { "pages-per-second", (int64_t)r->pages_per_second },
        { "precopy-bytes", (int64_t)r->precopy_bytes },
        { "downtime-bytes", 0 },
        { "postcopy-bytes", 0 },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(counts); i++) {
        if (strcmp(counts[i].name, "mbps") == 0) {
            monitor_printf(mon, "mbps: %.2f\n", r->mbps);
        } else {
            monitor_printf(mon, "%s: %" PRId64 "\n", counts[i].name, counts[i].value);
        }
    }
}

static void hmp_info_migrate(Monitor *mon, const char *args)
{
    MigrationState *ms = mon->set->machine->migration;
    GArray *caps = migration_query_capabilities(ms);
    MigrationInfo info;

    migration_query(ms, &info);
    monitor_printf(mon, "capabilities:");
    for (guint i = 0; i < caps->len; i++) {
        const MigrationCapabilityInfo *c = &g_array_index(caps, MigrationCapabilityInfo,
                                                          i);
        monitor_printf(mon, " %s: %s", c->name, c->state ? "on" : "off");
    }
    monitor_printf(mon, "\n");
    if (info.status != MIGRATION_STATUS_NONE) {
        monitor_printf(mon, "Migration status: %s\n", migration_status_name(info.status));
    }
    if (info.has_stats) {
        monitor_printf(mon, "total-time: %" PRId64 " ms\n", info.total_time);
        monitor_printf(mon, "setup-time: %" PRId64 " ms\n", info.setup_time);
        if (info.has_wait_unplug_time) {
            monitor_printf(mon, "wait-unplug-time: %" PRId64 " ms\n",
                           info.wait_unplug_time);
        }
        if (info.has_downtime) {
            monitor_printf(mon, "downtime: %" PRId64 " ms\n", info.downtime);
        } else if (info.has_expected_downtime) {
            monitor_printf(mon, "expected-downtime: %" PRId64 " ms\n",
                           info.expected_downtime);
        }
    }
    if (info.error_desc) {
        monitor_printf(mon, "error-desc: %s\n", info.error_desc);
    }
    if (info.has_stats) {
        print_migration_ram(mon, &info.ram);
    }
    migration_info_clear(&info);
    g_array_unref(caps);
}

static void format_pci_region(GString *out, const PciRegionInfo *r)
{
    uint64_t end = r->address + r->size - 1;

    if (r->kind == PCI_BAR_IO) {
        g_string_append_printf(out,
                               "      BAR%d: I/O at 0x%04" PRIx64 " [0x%04" PRIx64 "].\n",
                               r->bar, r->address, end);
        return;
    }
    g_string_append_printf(
        out, "      BAR%d: %d bit%s memory at 0x%08" PRIx64 " [0x%08" PRIx64 "].\n",
        r->bar, r->kind == PCI_BAR_MEM64 ? 64 : 32, r->prefetch ? " prefetchable" : "",
        r->address, end);
}

char *hmp_format_pci(const GArray *devices)
{
    GString *out = g_string_new(NULL);

    for (guint i = 0; i < devices->len; i++) {
        const PciDeviceInfo *d = &g_array_index(devices, PciDeviceInfo, i);

        g_string_append_printf(out, "  Bus %2u, device %3u, function %u:\n", d->bus,
                               d->slot, d->function);
        if (d->class_desc) {
            g_string_append_printf(out, "    %s", d->class_desc);
        } else {
            /* decimal, as QEMU prints it */
            g_string_append_printf(out, "    Class %04u", d->class_id);
        }
        g_string_append_printf(out, ": PCI device %04x:%04x\n", d->vendor_id,
                               d->device_id);
        g_string_append_printf(out, "      PCI subsystem %04x:%04x\n",
                               d->subsystem_vendor_id, d->subsystem_id);
        if (d->irq_pin) {
            g_string_append_printf(out, "      IRQ %u, pin %c\n", d->irq_line,
                                   (char)('A' + d->irq_pin - 1));
        }
        for (unsigned r = 0; r < d->nr_regions; r++) {
            format_pci_region(out, &d->regions[r]);
        }
        g_string_append_printf(out, "      id \"%s\"\n", d->qdev_id);
    }
    return g_string_free(out, FALSE);
}

static void hmp_info_pci(Monitor *mon, const char *args)
{
    GArray *devices = machine_query_pci(mon->set->machine);
    char *text = hmp_format_pci(devices);

    monitor_printf(mon, "%s", text);
    g_free(text);
    g_array_unref(devices);
}

static void hmp_stop(Monitor *mon, const char *args)
{
    machine_vm_stop(mon->set->machine);
}

static void hmp_cont(Monitor *mon, const char *args)
{
    GError *err = NULL;

    hmp_check(mon,
              migration_activate_drives(mon->set->machine->migration, &err) &&
                  machine_vm_cont(mon->set->machine, &err),
              &err);
}

/* The causes are QMP's, as in QEMU, whose HMP calls the QMP commands. */
static void hmp_system_reset(Monitor *mon, const char *args)
{
    machine_system_reset(mon->set->machine, SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
}

static void hmp_system_powerdown(Monitor *mon, const char *args)
{
    machine_system_powerdown(mon->set->machine);
}

static void hmp_device_add(Monitor *mon, const char *args)
{
    GError *err = NULL;
    SubOpts *opts;

    if (!*args) {
        monitor_printf(mon, "device_add: string expected\n"
                            "Try \"help device_add\" for more information\n");
        return;
    }
    if (!hmp_check(mon, monitor_migration_idle(mon->set->machine, "device_add", &err),
                   &err)) {
        return;
    }
    opts = subopts_parse(args, "driver", &err);
    hmp_check(mon, opts && machine_device_add(mon->set->machine, opts, &err), &err);
}

static void hmp_device_del(Monitor *mon, const char *args)
{
    GError *err = NULL;

    if (!*args) {
        monitor_printf(mon, "device_del: string expected\n"
                            "Try \"help device_del\" for more information\n");
        return;
    }
    if (hmp_utf8_arg(mon, "device_del", "id", args) &&
        hmp_check(mon, monitor_migration_idle(mon->set->machine, "device_del", &err),
                  &err)) {
        hmp_check(mon, machine_device_del(mon->set->machine, args, &err), &err);
    }
}

static void hmp_quit(Monitor *mon, const char *args)
{
    machine_shutdown(mon->set->machine, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
}

const HmpCommand hmp_commands[] = {
    { "help|?", "[cmd]", "show the help", hmp_help, true },
    { "info", "[subcommand]", "show various information about the system state", hmp_info,
      true },
    { "stop|s", "", "stop emulation", hmp_stop, false },
    { "cont|c", "", "resume emulation", hmp_cont, false },
    { "system_reset", "", "reset the system", hmp_system_reset, false },
    { "system_powerdown", "", "send system power down event", hmp_system_powerdown,
      false },
    { "device_add", "driver[,prop=value][,...]",
      "add device, like -device on the command line", hmp_device_add, true },
    { "device_del", "device", "remove device", hmp_device_del, true },
    /* block: hmp-cmds-block.c */
    { "drive_add", "[-n] [[<domain>:]<bus>:]<slot> [file=file][,if=type][,bus=n]...",
      "add drive to PCI storage controller", hmp_drive_add, true },
    { "drive_del", "device", "remove host block device", hmp_drive_del, true },
    { "quit|q", "", "quit the emulator", hmp_quit, false },
    { "migrate", "[-d] uri", "migrate to uri (tcp:HOST:PORT, unix:PATH, exec:CMD)",
      hmp_migrate, true },
    { "migrate_cancel", "", "cancel the current migration", hmp_migrate_cancel, false },
    { "migrate_set_speed", "value",
      "set the migration speed limit (bytes/s, "
      "suffixes k M G)",
      hmp_migrate_set_speed, true },
    { "migrate_set_downtime", "seconds", "set the largest tolerated downtime",
      hmp_migrate_set_downtime, true },
    { "osnet_set_cpumap", "path", "load a new vCPU->pCPU map and move the vCPUs",
      hmp_osnet_set_cpumap, true },
    { "osnet_did", "on|off", "switch direct interrupt delivery on or off", hmp_osnet_did,
      true },
    /* networking: hmp-cmds-net.c */
    { "set_link", "name on|off", "change the link status of a network adapter",
      hmp_set_link, true },
    { "netdev_add", "tap,id=str[,prop=value][,...]", "add host network device",
      hmp_netdev_add, true },
    { "netdev_del", "id", "remove host network device", hmp_netdev_del, true },
    { NULL },
};

const HmpCommand hmp_info_commands[] = {
    { "block", "", "show the block devices", hmp_info_block, false },
    { "chardev", "", "show the character devices", hmp_info_chardev, false },
    { "cpus", "", "show infos for each CPU", hmp_info_cpus, false },
    { "kvm", "", "show KVM information", hmp_info_kvm, false },
    { "migrate", "", "show migration status", hmp_info_migrate, false },
    { "name", "", "show the current VM name", hmp_info_name, false },
    { "network", "", "show the network state", hmp_info_network, false },
    { "osnet", "", "show dedicated cores, DID state and exit rates", hmp_info_osnet,
      false },
    { "pci", "", "show PCI info", hmp_info_pci, false },
    { "registers", "", "show the cpu registers", hmp_info_registers, false },
    { "status", "", "show the current VM status (running|paused)", hmp_info_status,
      false },
    { "version", "", "show the version of QEMU", hmp_info_version, false },
    { NULL },
};
