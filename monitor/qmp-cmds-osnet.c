/*
 * QMP commands of the osnet additions (qapi/osnet.json) and QEMU's
 * query-stats / query-stats-schemas over KVM's binary statistics
 * (qapi/stats.json), as JSON from osnet's and the machine's typed records.
 * Main thread only.
 */
#include <string.h>

#include "hw/machine-info.h"
#include "hw/vfio-pci.h"
#include "monitor-int.h"
#include "qapi-commands.h"
#include "util/error.h"

const MonitorExitName monitor_exit_names[] = {
    { KVM_X86_DISABLE_EXITS_HLT, "hlt" },
    { KVM_X86_DISABLE_EXITS_PAUSE, "pause" },
    { KVM_X86_DISABLE_EXITS_MWAIT, "mwait" },
    { KVM_X86_DISABLE_EXITS_CSTATE, "cstate" },
    { 0, NULL },
};

static json_t *affinity_list(const cpu_set_t *set)
{
    json_t *list = json_array();

    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, set)) {
            json_array_append_new(list, json_integer(c));
        }
    }
    return list;
}

json_t *qmp_query_osnet_cpumap(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *vcpus = machine_query_osnet_cpumap(ctx->machine);
    json_t *list = json_array();

    for (guint i = 0; i < vcpus->len; i++) {
        const OsnetVcpuMapInfo *v = &g_array_index(vcpus, OsnetVcpuMapInfo, i);
        json_array_append_new(list,
                              json_pack("{s:i,s:i,s:i,s:o}", "vcpu", (int)v->vcpu, "pcpu",
                                        v->pcpu, "thread-id", (int)v->thread_id,
                                        "affinity", affinity_list(&v->affinity)));
    }
    g_array_unref(vcpus);
    return list;
}

json_t *qmp_osnet_set_cpumap(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *path = json_string_value(json_object_get(args, "path"));

    return machine_reload_cpumap(ctx->machine, path, errp) ? json_object() : NULL;
}

json_t *qmp_osnet_did_enable(QmpContext *ctx, json_t *args, GError **errp)
{
    return osnet_did_enable(&ctx->machine->osnet, errp) ? json_object() : NULL;
}

json_t *qmp_osnet_did_disable(QmpContext *ctx, json_t *args, GError **errp)
{
    return osnet_did_disable(&ctx->machine->osnet, errp) ? json_object() : NULL;
}

static json_t *passthrough_vectors(Machine *m)
{
    GArray *list = machine_query_passthrough_vectors(m);
    json_t *out = json_array();

    for (guint i = 0; i < list->len; i++) {
        const VfioPciVectorInfo *v = &g_array_index(list, VfioPciVectorInfo, i);
        json_t *o = json_pack("{s:s,s:i,s:b,s:b,s:i,s:i,s:i,s:i,s:b}", "host", v->host,
                              "vector", (int)v->vector, "msix", v->msix, "enabled",
                              v->enabled, "dest-apic-id", (int)v->dest_apic, "vcpu",
                              v->vcpu, "pcpu", v->pcpu, "host-irq", v->host_irq, "posted",
                              v->posted);
        if (v->qdev_id) {
            json_object_set_new(o, "device", json_string(v->qdev_id));
        }
        if (v->affinity) {
            json_object_set_new(o, "affinity", json_string(v->affinity));
        }
        json_array_append_new(out, o);
    }
    g_array_unref(list);
    return out;
}

json_t *qmp_query_osnet_did(QmpContext *ctx, json_t *args, GError **errp)
{
    OsnetDidInfo did;
    json_t *supported = json_array();

    osnet_query_did(&ctx->machine->osnet, &did);
    for (const MonitorExitName *e = monitor_exit_names; e->name; e++) {
        if (did.exits_supported & e->bit) {
            json_array_append_new(supported, json_string(e->name));
        }
    }
    return json_pack(
        "{s:s,s:b,s:s,s:b,s:b,s:b,s:b,s:b,s:o,s:I,s:b,s:b,s:b,s:o}", "mode",
        did.kernel_extension ? "directvisor" : "kvm", "active", did.active, "reason",
        osnet_did_reason_name(did.reason), "did-at-start", did.did_at_start,
        "hlt-exits-disabled", (did.exits_disabled & KVM_X86_DISABLE_EXITS_HLT) != 0,
        "pause-exits-disabled", (did.exits_disabled & KVM_X86_DISABLE_EXITS_PAUSE) != 0,
        "mwait-exits-disabled", (did.exits_disabled & KVM_X86_DISABLE_EXITS_MWAIT) != 0,
        "cstate-exits-disabled", (did.exits_disabled & KVM_X86_DISABLE_EXITS_CSTATE) != 0,
        "exits-supported", supported, "halt-poll-ns", (json_int_t)did.halt_poll_ns,
        "posted-interrupts", did.posted_interrupts, "kernel-extension",
        did.kernel_extension, "cpumap-in-kernel", did.cpumap_in_kernel,
        "passthrough-vectors", passthrough_vectors(ctx->machine));
}

static json_t *exit_counts(const OsnetExitCounts *c)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "exits", (json_int_t)c->exits,
                     "halt-exits", (json_int_t)c->halt, "irq-exits", (json_int_t)c->irq,
                     "mmio-exits", (json_int_t)c->mmio, "io-exits", (json_int_t)c->io,
                     "userspace-exits", (json_int_t)c->userspace);
}

json_t *qmp_query_osnet_stats(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *vcpus = machine_query_osnet_stats(ctx->machine, errp);
    json_t *list;

    if (!vcpus) {
        return NULL;
    }
    list = json_array();
    for (guint i = 0; i < vcpus->len; i++) {
        const OsnetVcpuStatsInfo *v = &g_array_index(vcpus, OsnetVcpuStatsInfo, i);
        json_array_append_new(
            list,
            json_pack("{s:i,s:i,s:i,s:o,s:o,s:{s:I,s:I,s:I,s:I}}", "cpu-index",
                      (int)v->cpu_index, "thread-id", (int)v->thread_id, "pcpu", v->pcpu,
                      "total", exit_counts(&v->total), "per-second",
                      exit_counts(&v->per_second), "userspace", "io",
                      (json_int_t)v->user_io, "mmio", (json_int_t)v->user_mmio, "intr",
                      (json_int_t)v->user_intr, "other", (json_int_t)v->user_other));
    }
    g_array_unref(vcpus);
    return list;
}

/* ---- query-stats / query-stats-schemas (QEMU 7.x) ---- */

static bool name_wanted(json_t *names, const char *name)
{
    size_t i;
    json_t *n;

    if (!names) {
        return true;
    }
    json_array_foreach(names, i, n)
    {
        if (json_is_string(n) && strcmp(json_string_value(n), name) == 0) {
            return true;
        }
    }
    return false;
}

static json_t *stats_values(const KvmStatsFd *s, json_t *names)
{
    json_t *list = json_array();

    /* QEMU lists them last descriptor first */
    for (unsigned i = s->nr_descs; i-- > 0;) {
        const KvmStatDesc *d = &s->descs[i];
        const uint64_t *v = s->data + d->offset / sizeof(uint64_t);
        json_t *value;

        if (!name_wanted(names, d->name)) {
            continue;
        }
        if (d->size > 1) {
            value = json_array();
            for (unsigned k = 0; k < d->size; k++) {
                json_array_append_new(value, json_integer((json_int_t)v[k]));
            }
        } else if ((d->flags & KVM_STATS_UNIT_MASK) == KVM_STATS_UNIT_BOOLEAN) {
            value = json_boolean(v[0] != 0);
        } else {
            value = json_integer((json_int_t)v[0]);
        }
        json_array_append_new(list,
                              json_pack("{s:s,s:o}", "name", d->name, "value", value));
    }
    return list;
}

/* The "names" the request lists for the kvm provider; NULL = all. */
static bool requested_names(json_t *args, json_t **names, GError **errp)
{
    json_t *providers = json_object_get(args, "providers");
    size_t i;
    json_t *p;

    *names = NULL;
    if (!providers) {
        return true;
    }
    json_array_foreach(providers, i, p)
    {
        json_t *prov = json_object_get(p, "provider");
        if (!json_is_object(p) || !json_is_string(prov) ||
            strcmp(json_string_value(prov), "kvm") != 0) {
            error_setg(errp, "Parameter 'provider' does not accept this value: the "
                             "only provider is 'kvm'");
            return false;
        }
        *names = json_object_get(p, "names");
    }
    return true;
}

static bool vcpu_wanted(json_t *vcpus, unsigned index)
{
    char *path = g_strdup_printf("/machine/unattached/device[%u]", index);
    bool wanted = name_wanted(vcpus, path);

    g_free(path);
    return wanted;
}

json_t *qmp_query_stats(QmpContext *ctx, json_t *args, GError **errp)
{
    Machine *m = ctx->machine;
    OsnetState *os = &m->osnet;
    const char *target = json_string_value(json_object_get(args, "target"));
    json_t *names, *list = json_array();

    if (!requested_names(args, &names, errp)) {
        json_decref(list);
        return NULL;
    }
    if (strcmp(target, "vm") == 0) {
        KvmStatsFd *vm = osnet_vm_stats(os, m->kvm.vm_fd, true, errp);
        if (!vm) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, json_pack("{s:s,s:o}", "provider", "kvm", "stats",
                                              stats_values(vm, names)));
        return list;
    }
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        KvmStatsFd *s;
        char *path;

        if (!vcpu_wanted(json_object_get(args, "vcpus"), i)) {
            continue;
        }
        s = osnet_vcpu_stats(os, i, errp);
        if (!s) {
            json_decref(list);
            return NULL;
        }
        path = g_strdup_printf("/machine/unattached/device[%u]", i);
        json_array_append_new(list, json_pack("{s:s,s:o,s:s}", "provider", "kvm", "stats",
                                              stats_values(s, names), "qom-path", path));
        g_free(path);
    }
    return list;
}

static json_t *stats_schema(const KvmStatsFd *s, const char *target)
{
    json_t *list = json_array();

    for (unsigned i = s->nr_descs; i-- > 0;) {
        const KvmStatDesc *d = &s->descs[i];
        json_t *e = json_pack("{s:s}", "name", d->name);
        const char *unit = kvm_stat_unit_name(d->flags);

        if (unit) {
            json_object_set_new(e, "unit", json_string(unit));
        }
        if (d->exponent != 0) {
            json_object_set_new(e, "base", json_integer(kvm_stat_base(d->flags)));
        }
        json_object_set_new(e, "exponent", json_integer(d->exponent));
        json_object_set_new(e, "type", json_string(kvm_stat_type_name(d->flags)));
        if ((d->flags & KVM_STATS_TYPE_MASK) == KVM_STATS_TYPE_LINEAR_HIST) {
            json_object_set_new(e, "bucket-size", json_integer(d->bucket_size));
        }
        json_array_append_new(list, e);
    }
    return json_pack("{s:s,s:s,s:o}", "provider", "kvm", "target", target, "stats", list);
}

json_t *qmp_query_stats_schemas(QmpContext *ctx, json_t *args, GError **errp)
{
    Machine *m = ctx->machine;
    OsnetState *os = &m->osnet;
    KvmStatsFd *vcpu = osnet_vcpu_stats(os, 0, errp);
    KvmStatsFd *vm;
    json_t *list;

    if (!vcpu) {
        return NULL;
    }
    vm = osnet_vm_stats(os, m->kvm.vm_fd, false, errp);
    if (!vm) {
        return NULL;
    }
    list = json_array();
    json_array_append_new(list, stats_schema(vcpu, "vcpu"));
    json_array_append_new(list, stats_schema(vm, "vm"));
    return list;
}
