/*
 * QMP commands libvirt sends while it starts a domain: the vCPU slots
 * (query-hotpluggable-cpus, whose qom-paths match query-cpus-fast's), the
 * I/O threads, and the part of the QOM tree this VMM models
 * (/machine/peripheral, the type of /machine and of its devices, and the
 * vCPUs' type and unavailable features).
 * Main thread only.
 */
#include <string.h>

#include "hw/devices.h"
#include "hw/machine-info.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "monitor-int.h"
#include "qapi-commands.h"
#include "system/config.h"
#include "util/error.h"

#define PERIPHERAL       "/machine/peripheral"
#define PERIPHERAL_ANON  "/machine/peripheral-anon"
#define MACHINE_QOM_TYPE "pc-i440fx-4.2-machine"
#define CPU_QOM_TYPE     "host-x86_64-cpu"

/* The socket/core/thread of vCPU index in the -smp topology (QEMU's rule). */
static json_t *slot_props(const SmpConfig *smp, unsigned index)
{
    unsigned threads = smp->threads, cores = smp->cores * smp->dies;

    return json_pack("{s:i,s:i,s:i}", "core-id", (int)((index / threads) % smp->cores),
                     "thread-id", (int)(index % threads), "socket-id",
                     (int)(index / (threads * cores)));
}

static char *cpu_qom_path(unsigned index)
{
    return g_strdup_printf("/machine/unattached/device[%u]", index);
}

json_t *qmp_query_hotpluggable_cpus(QmpContext *ctx, json_t *args, GError **errp)
{
    const SmpConfig *smp = &ctx->machine->cfg->smp;
    GArray *cpus = machine_query_cpus(ctx->machine, false);
    json_t *list = json_array();

    /* the highest slot first, as QEMU lists them */
    for (unsigned i = smp->maxcpus; i-- > 0;) {
        json_t *slot = json_pack("{s:s,s:i,s:o}", "type", CPU_QOM_TYPE, "vcpus-count", 1,
                                 "props", slot_props(smp, i));

        for (guint k = 0; k < cpus->len; k++) {
            if (g_array_index(cpus, MachineCpuInfo, k).index == i) {
                char *path = cpu_qom_path(i);
                json_object_set_new(slot, "qom-path", json_string(path));
                g_free(path);
            }
        }
        json_array_append_new(list, slot);
    }
    g_array_unref(cpus);
    return list;
}

json_t *qmp_query_iothreads(QmpContext *ctx, json_t *args, GError **errp)
{
    return json_array();
}

/* One device with an id under /machine/peripheral. */
typedef struct PeripheralDevice {
    char *id, *type;
} PeripheralDevice;

static void peripheral_clear(gpointer p)
{
    PeripheralDevice *dev = p;

    g_free(dev->id);
    g_free(dev->type);
}

/* The PCI devices with an id, then the -device isa-serial ports with one. */
static GArray *peripheral_devices(Machine *m)
{
    GArray *list = g_array_new(FALSE, TRUE, sizeof(PeripheralDevice));
    GArray *pci = machine_query_pci(m);
    const VmConfig *cfg = m->cfg;

    g_array_set_clear_func(list, peripheral_clear);
    for (guint i = 0; i < pci->len; i++) {
        const PciDeviceInfo *info = &g_array_index(pci, PciDeviceInfo, i);
        if (info->qdev_id[0]) {
            PeripheralDevice dev = { g_strdup(info->qdev_id), g_strdup(info->model) };
            g_array_append_val(list, dev);
        }
    }
    g_array_unref(pci);
    for (guint i = 0; i < cfg->devices->len; i++) {
        const DeviceOpt *opt = g_ptr_array_index(cfg->devices, i);
        const char *id = subopts_get(opt->props, "id");
        if (strcmp(opt->driver, "isa-serial") == 0 && id) {
            PeripheralDevice dev = { g_strdup(id), g_strdup(opt->driver) };
            g_array_append_val(list, dev);
        }
    }
    return list;
}

static json_t *property(const char *name, const char *type)
{
    return json_pack("{s:s,s:s}", "name", name, "type", type);
}

static void device_not_found(const char *path, GError **errp)
{
    g_set_error(errp, VMM_ERROR, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found",
                path);
}

/* Is path a plugged vCPU's QOM path (as query-cpus-fast gives it)? */
static bool is_vcpu_path(Machine *m, const char *path)
{
    GArray *cpus = machine_query_cpus(m, false);
    bool found = false;

    for (guint i = 0; i < cpus->len && !found; i++) {
        char *cpu = cpu_qom_path(g_array_index(cpus, MachineCpuInfo, i).index);
        found = strcmp(cpu, path) == 0;
        g_free(cpu);
    }
    g_array_unref(cpus);
    return found;
}

/* The type of /machine/peripheral-anon/device[N], or NULL. */
static char *anon_device_type(Machine *m, const char *path)
{
    GPtrArray *types = machine_query_anon_devices(m);
    char *type = NULL;

    for (guint i = 0; i < types->len && !type; i++) {
        char *name = g_strdup_printf(PERIPHERAL_ANON "/device[%u]", i);

        if (g_ptr_array_index(types, i) && strcmp(name, path) == 0) {
            type = g_strdup(g_ptr_array_index(types, i));
        }
        g_free(name);
    }
    g_ptr_array_unref(types);
    return type;
}

/* The devices made without id: device[N] as QEMU names them. */
static json_t *anon_device_list(Machine *m)
{
    GPtrArray *types = machine_query_anon_devices(m);
    json_t *list = json_array();

    json_array_append_new(list, property("type", "string"));
    for (guint i = 0; i < types->len; i++) {
        const char *type = g_ptr_array_index(types, i);

        if (type) {
            char *name = g_strdup_printf("device[%u]", i);
            char *child = g_strdup_printf("child<%s>", type);

            json_array_append_new(list, property(name, child));
            g_free(name);
            g_free(child);
        }
    }
    g_ptr_array_unref(types);
    return list;
}

json_t *qmp_qom_list(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *path = json_string_value(json_object_get(args, "path"));
    GArray *devices;
    json_t *list;

    /*
     * A vCPU: its type and the features the host could not give (none:
     * -cpu host asks for what the host has), which libvirt reads after
     * the start; no feature-words, so libvirt takes the CPU as it is.
     */
    if (is_vcpu_path(ctx->machine, path)) {
        return json_pack("[o,o]", property("type", "string"),
                         property("unavailable-features", "strList"));
    }
    if (strcmp(path, PERIPHERAL_ANON) == 0) {
        return anon_device_list(ctx->machine);
    }
    if (strcmp(path, PERIPHERAL) != 0) {
        device_not_found(path, errp);
        return NULL;
    }
    devices = peripheral_devices(ctx->machine);
    list = json_array();
    json_array_append_new(list, property("type", "string"));
    for (guint i = 0; i < devices->len; i++) {
        const PeripheralDevice *dev = &g_array_index(devices, PeripheralDevice, i);
        char *child = g_strdup_printf("child<%s>", dev->type);
        json_array_append_new(list, property(dev->id, child));
        g_free(child);
    }
    g_array_unref(devices);
    return list;
}

json_t *qmp_qom_get(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *path = json_string_value(json_object_get(args, "path"));
    const char *prop = json_string_value(json_object_get(args, "property"));
    g_autofree char *type = NULL;

    if (strcmp(path, "/machine") == 0) {
        type = g_strdup(MACHINE_QOM_TYPE);
    } else if (is_vcpu_path(ctx->machine, path)) {
        type = g_strdup(CPU_QOM_TYPE);
        if (strcmp(prop, "unavailable-features") == 0) {
            return json_array();
        }
    } else if (g_str_has_prefix(path, PERIPHERAL_ANON "/")) {
        type = anon_device_type(ctx->machine, path);
    } else if (g_str_has_prefix(path, PERIPHERAL "/")) {
        GArray *devices = peripheral_devices(ctx->machine);
        for (guint i = 0; i < devices->len; i++) {
            const PeripheralDevice *dev = &g_array_index(devices, PeripheralDevice, i);
            if (strcmp(dev->id, path + strlen(PERIPHERAL "/")) == 0) {
                type = g_strdup(dev->type);
            }
        }
        g_array_unref(devices);
    }
    if (!type) {
        device_not_found(path, errp);
        return NULL;
    }
    if (strcmp(prop, "type") != 0) {
        error_setg(errp, "Property '%s.%s' not found", type, prop);
        return NULL;
    }
    return json_string(type);
}
