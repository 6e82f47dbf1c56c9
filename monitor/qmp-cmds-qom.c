/*
 * QMP commands a management tool (libvirt) probes a binary with: the
 * schema (query-qmp-schema), the QOM types and their properties
 * (hw/device-catalog.h), the machine types, the CPU models and the
 * command line's sub-options.  Main thread only.
 */
#include <string.h>

#include "qapi-commands.h"
#include "hw/device-catalog.h"
#include "hw/machine-info.h"
#include "monitor-int.h"
#include "util/error.h"

json_t *qmp_query_qmp_schema(QmpContext *ctx, json_t *args, GError **errp)
{
    static json_t *schema; /* parsed once, handed out by reference */
    json_error_t jerr;

    if (!schema) {
        schema = json_loads(qapi_introspection_json, 0, &jerr);
        if (!schema) {
            error_setg(errp, "introspection data: %s", jerr.text);
            return NULL;
        }
    }
    return json_incref(schema);
}

json_t *qmp_qom_list_types(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *implements = json_string_value(json_object_get(args, "implements"));
    bool abstract = json_is_true(json_object_get(args, "abstract"));
    json_t *list = json_array();
    size_t count;
    const QomTypeInfo *types = qom_types(&count);

    for (size_t i = 0; i < count; i++) {
        const QomTypeInfo *t = &types[i];
        json_t *info;

        if ((t->abstract && !abstract) ||
            (implements && !qom_type_implements(t, implements))) {
            continue;
        }
        info = json_pack("{s:s}", "name", t->name);
        if (t->abstract) {
            json_object_set_new(info, "abstract", json_true());
        }
        if (t->parent) {
            json_object_set_new(info, "parent", json_string(t->parent));
        }
        json_array_append_new(list, info);
    }
    return list;
}

static json_t *property_list(const QomTypeInfo *type)
{
    const QomPropertyInfo *props[64];
    size_t n = qom_type_properties(type, props, G_N_ELEMENTS(props));
    json_t *list = json_array();

    for (size_t i = 0; i < n; i++) {
        json_t *p = json_pack("{s:s,s:s}", "name", props[i]->name, "type",
                              props[i]->type);

        if (props[i]->description) {
            json_object_set_new(p, "description", json_string(props[i]->description));
        }
        if (props[i]->default_value) {
            json_object_set_new(
                p, "default-value",
                json_loads(props[i]->default_value, JSON_DECODE_ANY, NULL));
        }
        json_array_append_new(list, p);
    }
    return list;
}

json_t *qmp_device_list_properties(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *name = json_string_value(json_object_get(args, "typename"));
    const QomTypeInfo *type = qom_type_find(name);

    if (!type) {
        error_set_class(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found",
                        name);
        return NULL;
    }
    if (type->abstract || !qom_type_implements(type, "device")) {
        error_setg(errp, "Parameter 'typename' expects a non-abstract device type");
        return NULL;
    }
    return property_list(type);
}

json_t *qmp_qom_list_properties(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *name = json_string_value(json_object_get(args, "typename"));
    const QomTypeInfo *type = qom_type_find(name);

    /* QEMU answers DeviceNotFound; libvirt 9.0 crashes on that */
    return type ? property_list(type) : json_array();
}

json_t *qmp_query_machines(QmpContext *ctx, json_t *args, GError **errp)
{
    /* no CPU hotplug and no NUMA here, whatever QEMU's pc-i440fx-4.2 has */
    return json_pack("[{s:s,s:s,s:b,s:i,s:b,s:b,s:b,s:s,s:s},"
                     "{s:s,s:i,s:b,s:b,s:b,s:s}]",
                     "name", "pc-i440fx-4.2", "alias", "pc", "is-default", 1, "cpu-max",
                     MACHINE_MAX_CPUS, "hotpluggable-cpus", 0, "numa-mem-supported", 0,
                     "deprecated", 0, "default-cpu-type", "host-x86_64-cpu",
                     "default-ram-id", "pc.ram", "name", "none", "cpu-max", 1,
                     "hotpluggable-cpus", 0, "numa-mem-supported", 0, "deprecated", 0,
                     "default-ram-id", "ram");
}

json_t *qmp_query_cpu_definitions(QmpContext *ctx, json_t *args, GError **errp)
{
    MachineKvmInfo kvm;
    json_t *unavailable = json_array();

    /* the one model -cpu takes; QEMU without KVM marks it so too */
    machine_query_kvm(ctx->machine, &kvm);
    if (!kvm.enabled) {
        json_array_append_new(unavailable, json_string("kvm"));
    }
    return json_pack("[{s:s,s:s,s:o,s:b,s:b,s:b}]", "name", "host", "typename",
                     "host-x86_64-cpu", "unavailable-features", unavailable, "static", 0,
                     "migration-safe", 0, "deprecated", 0);
}

/*
 * The sub-options of the options that take key=value lists, by QEMU's
 * option-list names; an empty list is an option whose keys depend on its
 * driver (QEMU shows those empty too).
 */
static const struct {
    const char *option;
    const char *params[8]; /* "name:type", NULL-terminated */
} cmdline_options[] = {
    { "machine", { "type:string", "accel:string" } },
    { "accel", { NULL } }, /* its keys are the accelerator's properties */
    { "smp-opts",
      { "cpus:number", "maxcpus:number", "sockets:number", "dies:number", "cores:number",
        "threads:number" } },
    { "name", { "guest:string", "debug-threads:boolean" } },
    { "overcommit", { "cpu-pm:boolean" } },
    /* libvirt adds -sandbox when it finds elevateprivileges here */
    { "sandbox",
      { "resourcecontrol:string", "spawn:string", "elevateprivileges:string",
        "obsolete:string", "enable:boolean" } },
    { "mon", { "chardev:string", "mode:string" } },
    { "chardev", { NULL } },
    { "netdev", { NULL } },
    { "device", { NULL } },
};

json_t *qmp_query_command_line_options(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *only = json_string_value(json_object_get(args, "option"));
    json_t *list = json_array();

    for (size_t i = 0; i < G_N_ELEMENTS(cmdline_options); i++) {
        json_t *params = json_array();

        if (only && strcmp(only, cmdline_options[i].option) != 0) {
            continue;
        }
        for (const char *const *p = cmdline_options[i].params; *p; p++) {
            const char *colon = strchr(*p, ':');
            char *name = g_strndup(*p, colon - *p);

            json_array_append_new(
                params, json_pack("{s:s,s:s}", "name", name, "type", colon + 1));
            g_free(name);
        }
        json_array_append_new(list,
                              json_pack("{s:s,s:o}", "option", cmdline_options[i].option,
                                        "parameters", params));
    }
    if (only && json_array_size(list) == 0) {
        json_decref(list);
        error_setg(errp, "invalid option name: %s", only);
        return NULL;
    }
    return list;
}
