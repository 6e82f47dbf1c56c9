/*
 * QMP command handlers (one per command declared in qapi/ schema files).  Each
 * returns a new JSON reference, or NULL with errp set.  Main thread only;
 * never called with the machine lock held.
 */
#include <string.h>

#include "qapi-commands.h"
#include "config-host.h"
#include "hw/machine.h"
#include "monitor-int.h"
#include "util/error.h"

json_t *qmp_qmp_capabilities(QmpContext *ctx, json_t *args, GError **errp)
{
    json_t *enable = json_object_get(args, "enable");
    size_t i;
    json_t *cap;

    /* the dispatcher checked each element against QMPCapability; the one
     * capability there is, out-of-band execution, is not offered here */
    json_array_foreach(enable, i, cap) {
        error_setg(errp, "Capability '%s' is not supported by this monitor",
                   json_string_value(cap));
        return NULL;
    }
    return json_object();
}

json_t *qmp_query_version(QmpContext *ctx, json_t *args, GError **errp)
{
    return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "micro", 0, "minor", 2,
                     "major", 4, "package", "directvisor " DIRECTVISOR_VERSION);
}

json_t *qmp_query_commands(QmpContext *ctx, json_t *args, GError **errp)
{
    json_t *list = json_array();

    for (size_t i = 0; i < qmp_command_count; i++) {
        json_array_append_new(list, json_pack("{s:s}", "name",
                                              qmp_command_table[i].name));
    }
    return list;
}

json_t *qmp_query_status(QmpContext *ctx, json_t *args, GError **errp)
{
    RunState state = ctx->machine->runstate;

    return json_pack("{s:b,s:b,s:s}", "running", state == RUN_STATE_RUNNING,
                     "singlestep", 0, "status", runstate_name(state));
}

json_t *qmp_query_name(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *name = ctx->machine->cfg->name;

    return name ? json_pack("{s:s}", "name", name) : json_object();
}

json_t *qmp_query_uuid(QmpContext *ctx, json_t *args, GError **errp)
{
    return json_pack("{s:s}", "UUID", "00000000-0000-0000-0000-000000000000");
}

json_t *qmp_query_kvm(QmpContext *ctx, json_t *args, GError **errp)
{
    return json_pack("{s:b,s:b}", "enabled", 1, "present", 1);
}

json_t *qmp_query_target(QmpContext *ctx, json_t *args, GError **errp)
{
    return json_pack("{s:s}", "arch", "x86_64");
}

/* socket/core/thread ids of vCPU index, from the -smp topology */
static json_t *cpu_props(const Machine *m, unsigned index)
{
    const SmpConfig *smp = &m->cfg->smp;

    return json_pack("{s:i,s:i,s:i}", "core-id",
                     (int)((index / smp->threads) % smp->cores), "thread-id",
                     (int)(index % smp->threads), "socket-id",
                     (int)(index / (smp->threads * smp->cores)));
}

static char *cpu_qom_path(unsigned index)
{
    return g_strdup_printf("/machine/unattached/device[%u]", index);
}

json_t *qmp_query_cpus(QmpContext *ctx, json_t *args, GError **errp)
{
    Machine *m = ctx->machine;
    json_t *list = json_array();

    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        VCpu *cpu = m->vcpus[i];
        VCpuSnapshot snap;
        char *path = cpu_qom_path(i);

        vcpu_snapshot(cpu, &snap);
        json_array_append_new(
            list, json_pack("{s:i,s:b,s:b,s:s,s:i,s:o,s:s,s:I}", "CPU", (int)i,
                            "current", i == 0, "halted",
                            snap.valid && snap.mp_state.mp_state != KVM_MP_STATE_RUNNABLE,
                            "qom_path", path, "thread_id", (int)cpu->tid, "props",
                            cpu_props(m, i), "arch", "x86",
                            "pc", (json_int_t)(snap.regs.rip + snap.sregs.cs.base)));
        g_free(path);
    }
    return list;
}

json_t *qmp_query_cpus_fast(QmpContext *ctx, json_t *args, GError **errp)
{
    Machine *m = ctx->machine;
    json_t *list = json_array();

    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        char *path = cpu_qom_path(i);

        json_array_append_new(
            list, json_pack("{s:i,s:s,s:i,s:o,s:s}", "cpu-index", (int)i, "qom-path",
                            path, "thread-id", (int)m->vcpus[i]->tid, "props",
                            cpu_props(m, i), "target", "x86_64"));
        g_free(path);
    }
    return list;
}

static void add_chardev_info(Chardev *chr, void *opaque)
{
    json_t *list = opaque;

    json_array_append_new(list, json_pack("{s:b,s:s,s:s}", "frontend-open",
                                          chardev_is_connected(chr), "filename",
                                          chardev_filename(chr), "label",
                                          chardev_id(chr)));
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
    return machine_vm_cont(ctx->machine, errp) ? json_object() : NULL;
}

json_t *qmp_system_reset(QmpContext *ctx, json_t *args, GError **errp)
{
    machine_system_reset(ctx->machine, SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
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
