/*
 * QMP command handlers (one per command declared in qapi/ schema files).  Each
 * returns a new JSON reference, or NULL with errp set.  Main thread only;
 * never called with the machine lock held.
 */
#include <string.h>

#include "qapi-commands.h"
#include "config-host.h"
#include "hw/machine-info.h"
#include "hw/machine.h"
#include "migration/migration.h"
#include "monitor-int.h"
#include "util/error.h"

json_t *qmp_qmp_capabilities(QmpContext *ctx, json_t *args, GError **errp)
{
    json_t *enable = json_object_get(args, "enable");
    size_t i;
    json_t *cap;

    /* the dispatcher checked each element against QMPCapability; the one
     * capability there is, out-of-band execution, is not offered here */
    json_array_foreach(enable, i, cap)
    {
        error_setg(errp, "Capability '%s' is not supported by this monitor",
                   json_string_value(cap));
        return NULL;
    }
    return json_object();
}

void monitor_query_version(MonitorVersionInfo *info)
{
    /* the QEMU version Debian's libvirt and tools expect of this VMM */
    *info = (MonitorVersionInfo){
        .major = 4,
        .minor = 2,
        .micro = 0,
        .package = "directvisor " DIRECTVISOR_VERSION,
    };
}

json_t *qmp_query_version(QmpContext *ctx, json_t *args, GError **errp)
{
    MonitorVersionInfo v;

    monitor_query_version(&v);
    return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "micro", v.micro, "minor", v.minor,
                     "major", v.major, "package", v.package);
}

json_t *qmp_query_commands(QmpContext *ctx, json_t *args, GError **errp)
{
    json_t *list = json_array();

    for (size_t i = 0; i < qmp_command_count; i++) {
        json_array_append_new(list,
                              json_pack("{s:s}", "name", qmp_command_table[i].name));
    }
    return list;
}

json_t *qmp_query_status(QmpContext *ctx, json_t *args, GError **errp)
{
    MachineStatusInfo status;

    machine_query_status(ctx->machine, &status);
    return json_pack("{s:b,s:b,s:s}", "running", status.running, "singlestep", 0,
                     "status", runstate_name(status.state));
}

json_t *qmp_query_name(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *name = ctx->machine->cfg->name;

    return name ? json_pack("{s:s}", "name", name) : json_object();
}

json_t *qmp_query_uuid(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *uuid = ctx->machine->cfg->uuid;

    return json_pack("{s:s}", "UUID",
                     uuid ? uuid : "00000000-0000-0000-0000-000000000000");
}

json_t *qmp_query_kvm(QmpContext *ctx, json_t *args, GError **errp)
{
    MachineKvmInfo kvm;

    machine_query_kvm(ctx->machine, &kvm);
    return json_pack("{s:b,s:b}", "enabled", kvm.enabled, "present", kvm.present);
}

json_t *qmp_query_target(QmpContext *ctx, json_t *args, GError **errp)
{
    return json_pack("{s:s}", "arch", "x86_64");
}

/* socket/core/thread ids of a vCPU in the -smp topology */
static json_t *cpu_props(const MachineCpuInfo *cpu)
{
    return json_pack("{s:i,s:i,s:i}", "core-id", (int)cpu->core_id, "thread-id",
                     (int)cpu->thread_index, "socket-id", (int)cpu->socket_id);
}

static char *cpu_qom_path(unsigned index)
{
    return g_strdup_printf("/machine/unattached/device[%u]", index);
}

json_t *qmp_query_cpus(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *cpus = machine_query_cpus(ctx->machine, true);
    json_t *list = json_array();

    for (guint i = 0; i < cpus->len; i++) {
        const MachineCpuInfo *cpu = &g_array_index(cpus, MachineCpuInfo, i);
        char *path = cpu_qom_path(cpu->index);

        json_array_append_new(
            list, json_pack("{s:i,s:b,s:b,s:s,s:i,s:o,s:s,s:I}", "CPU", (int)cpu->index,
                            "current", cpu->index == 0, "halted", cpu->halted, "qom_path",
                            path, "thread_id", (int)cpu->thread_id, "props",
                            cpu_props(cpu), "arch", "x86", "pc", (json_int_t)cpu->pc));
        g_free(path);
    }
    g_array_unref(cpus);
    return list;
}

json_t *qmp_query_cpus_fast(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *cpus = machine_query_cpus(ctx->machine, false);
    json_t *list = json_array();

    for (guint i = 0; i < cpus->len; i++) {
        const MachineCpuInfo *cpu = &g_array_index(cpus, MachineCpuInfo, i);
        char *path = cpu_qom_path(cpu->index);

        json_array_append_new(list, json_pack("{s:i,s:s,s:i,s:o,s:s}", "cpu-index",
                                              (int)cpu->index, "qom-path", path,
                                              "thread-id", (int)cpu->thread_id, "props",
                                              cpu_props(cpu), "target", "x86_64"));
        g_free(path);
    }
    g_array_unref(cpus);
    return list;
}

static void add_chardev_info(Chardev *chr, void *opaque)
{
    json_t *list = opaque;

    json_array_append_new(
        list, json_pack("{s:b,s:s,s:s}", "frontend-open", chardev_is_connected(chr),
                        "filename", chardev_filename(chr), "label", chardev_id(chr)));
}

json_t *qmp_query_chardev(QmpContext *ctx, json_t *args, GError **errp)
{
    json_t *list = json_array();

    chardev_set_foreach(ctx->machine->chardevs, add_chardev_info, list);
    return list;
}

json_t *qmp_stop(QmpContext *ctx, json_t *args, GError **errp)
{
    machine_vm_stop(ctx->machine);
    return json_object();
}

json_t *qmp_cont(QmpContext *ctx, json_t *args, GError **errp)
{
    return migration_activate_drives(ctx->machine->migration, errp) &&
                   machine_vm_cont(ctx->machine, errp)
               ? json_object()
               : NULL;
}

json_t *qmp_system_reset(QmpContext *ctx, json_t *args, GError **errp)
{
    machine_system_reset(ctx->machine, SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
    return json_object();
}

json_t *qmp_system_powerdown(QmpContext *ctx, json_t *args, GError **errp)
{
    machine_system_powerdown(ctx->machine);
    return json_object();
}

json_t *qmp_quit(QmpContext *ctx, json_t *args, GError **errp)
{
    /* SHUTDOWN is sent first and the main loop ends after this reply */
    machine_shutdown(ctx->machine, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
    return json_object();
}

json_t *qmp_human_monitor_command(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *line = json_string_value(json_object_get(args, "command-line"));
    char *out = hmp_run_command(ctx->monitors, ctx->mon, line);
    json_t *ret = json_string(out);

    g_free(out);
    return ret;
}
