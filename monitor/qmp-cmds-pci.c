/*
 * QMP query-pci (qapi/pci.json) in QEMU's shape, key order included, from
 * hw/pci's typed records (pci_query); device_add and device_del (refused
 * while a migration runs, as QEMU refuses them).  Main thread only.
 */
#include <string.h>

#include "hw/devices.h"
#include "hw/machine-info.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "migration/migration.h"
#include "monitor-int.h"
#include "qapi-commands.h"
#include "util/error.h"
#include "util/subopt.h"

static json_t *pci_class_json(const PciDeviceInfo *d)
{
    json_t *info = json_object();

    json_object_set_new(info, "class", json_integer(d->class_id));
    if (d->class_desc) {
        json_object_set_new(info, "desc", json_string(d->class_desc));
    }
    return info;
}

static json_t *pci_region_json(const PciRegionInfo *r)
{
    json_t *obj = json_object();
    json_int_t addr = r->address == PCI_BAR_UNMAPPED ? -1 : (json_int_t)r->address;

    if (r->kind != PCI_BAR_IO) {
        json_object_set_new(obj, "prefetch", json_boolean(r->prefetch));
        json_object_set_new(obj, "mem_type_64", json_boolean(r->kind == PCI_BAR_MEM64));
    }
    json_object_set_new(obj, "bar", json_integer(r->bar));
    json_object_set_new(obj, "size", json_integer(r->size));
    json_object_set_new(obj, "address", json_integer(addr));
    json_object_set_new(obj, "type",
                        json_string(r->kind == PCI_BAR_IO ? "io" : "memory"));
    return obj;
}

static json_t *pci_device_json(const PciDeviceInfo *d)
{
    json_t *info = json_object(), *id = json_object(), *regions = json_array();

    json_object_set_new(info, "irq_pin", json_integer(d->irq_pin));
    json_object_set_new(info, "bus", json_integer(d->bus));
    json_object_set_new(info, "qdev_id", json_string(d->qdev_id));
    if (d->irq_pin) {
        json_object_set_new(info, "irq", json_integer(d->irq_line));
    }
    json_object_set_new(info, "slot", json_integer(d->slot));
    json_object_set_new(info, "class_info", pci_class_json(d));
    json_object_set_new(id, "device", json_integer(d->device_id));
    json_object_set_new(id, "subsystem-vendor", json_integer(d->subsystem_vendor_id));
    json_object_set_new(id, "vendor", json_integer(d->vendor_id));
    json_object_set_new(id, "subsystem", json_integer(d->subsystem_id));
    json_object_set_new(info, "id", id);
    json_object_set_new(info, "function", json_integer(d->function));
    for (unsigned i = 0; i < d->nr_regions; i++) {
        json_array_append_new(regions, pci_region_json(&d->regions[i]));
    }
    json_object_set_new(info, "regions", regions);
    return info;
}

/* device_add's members as -device's option string (driver= first). */
static char *device_add_options(json_t *args, GError **errp)
{
    GString *out = g_string_new("driver=");
    const char *key;
    json_t *value;

    for (const char *c = json_string_value(json_object_get(args, "driver")); *c; c++) {
        g_string_append(out, *c == ',' ? ",," : (char[]){ *c, 0 });
    }
    json_object_foreach(args, key, value)
    {
        char *text;

        if (strcmp(key, "driver") == 0) {
            continue;
        }
        if (json_is_string(value)) {
            text = g_strdup(json_string_value(value));
        } else if (json_is_integer(value)) {
            text = g_strdup_printf("%" JSON_INTEGER_FORMAT, json_integer_value(value));
        } else if (json_is_boolean(value)) {
            text = g_strdup(json_is_true(value) ? "on" : "off");
        } else {
            error_setg(errp, "Invalid parameter type for '%s', expected: string", key);
            g_string_free(out, TRUE);
            return NULL;
        }
        g_string_append_printf(out, ",%s=", key);
        for (const char *c = text; *c; c++) {
            g_string_append(out, *c == ',' ? ",," : (char[]){ *c, 0 });
        }
        g_free(text);
    }
    return g_string_free(out, FALSE);
}

bool monitor_migration_idle(Machine *m, const char *command, GError **errp)
{
    MigrationInfo info;
    bool idle;

    migration_query(m->migration, &info);
    idle = info.status == MIGRATION_STATUS_NONE ||
           info.status == MIGRATION_STATUS_COMPLETED ||
           info.status == MIGRATION_STATUS_FAILED ||
           info.status == MIGRATION_STATUS_CANCELLED;
    migration_info_clear(&info);
    if (!idle) {
        error_setg(errp, "%s not allowed while migrating", command);
    }
    return idle;
}

json_t *qmp_device_add(QmpContext *ctx, json_t *args, GError **errp)
{
    char *text;
    SubOpts *opts;
    bool ok;

    if (!monitor_migration_idle(ctx->machine, "device_add", errp)) {
        return NULL;
    }
    text = device_add_options(args, errp);
    opts = text ? subopts_parse(text, "driver", errp) : NULL;
    ok = opts && machine_device_add(ctx->machine, opts, errp);

    g_free(text);
    return ok ? json_object() : NULL;
}

json_t *qmp_device_del(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *id = json_string_value(json_object_get(args, "id"));

    if (!monitor_migration_idle(ctx->machine, "device_del", errp)) {
        return NULL;
    }
    return machine_device_del(ctx->machine, id, errp) ? json_object() : NULL;
}

json_t *qmp_query_pci(QmpContext *ctx, json_t *args, GError **errp)
{
    GArray *list = machine_query_pci(ctx->machine);
    json_t *devices = json_array();

    for (guint i = 0; i < list->len; i++) {
        json_array_append_new(devices,
                              pci_device_json(&g_array_index(list, PciDeviceInfo, i)));
    }
    g_array_unref(list);
    return json_pack("[{s:i,s:o}]", "bus", 0, "devices", devices);
}
