/*
 * QMP networking commands (qapi/net.json) over hw's typed calls
 * (hw/machine-net.h): set_link, query-rx-filter, announce-self,
 * netdev_add, netdev_del, and the NIC_RX_FILTER_CHANGED event.  Main
 * thread only, except the notifier, which a NIC's I/O thread calls.
 */
#include <string.h>

#include "hw/machine-net.h"
#include "monitor-int.h"
#include "qapi-commands.h"
#include "util/error.h"
#include "util/subopt.h"

json_t *qmp_set_link(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *name = json_string_value(json_object_get(args, "name"));
    bool up = json_is_true(json_object_get(args, "up"));

    return machine_set_link(ctx->machine, name, up, errp) ? json_object() : NULL;
}

static const char *rx_state(bool none, bool all)
{
    return none ? "none" : all ? "all" : "normal";
}

static json_t *mac_json(const uint8_t *mac)
{
    char text[18];

    g_snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
               mac[2], mac[3], mac[4], mac[5]);
    return json_string(text);
}

/* QEMU lists the tables and the VLANs last to first. */
static json_t *mac_table_json(const uint8_t (*macs)[6], unsigned count)
{
    json_t *list = json_array();

    for (unsigned i = count; i-- > 0;) {
        json_array_append_new(list, mac_json(macs[i]));
    }
    return list;
}

/* RxFilterInfo in QEMU 7.2's meaning, broadcast-allowed included (it
 * reports the driver's NOBCAST flag under that name). */
static json_t *rx_filter_json(const VirtioNetRxFilter *f)
{
    json_t *info = json_object(), *vlans = json_array();
    const char *vlan;

    for (unsigned i = f->nr_vlans; i-- > 0;) {
        json_array_append_new(vlans, json_integer(f->vlans[i]));
    }
    vlan = !f->vlan_filtering ? "all" : f->nr_vlans ? "normal" : "none";
    json_object_set_new(info, "promiscuous", json_boolean(f->promisc));
    json_object_set_new(info, "name", json_string(f->name));
    json_object_set_new(info, "main-mac", mac_json(f->mac));
    json_object_set_new(info, "unicast", json_string(rx_state(f->nouni, f->alluni)));
    json_object_set_new(info, "vlan", json_string(vlan));
    json_object_set_new(info, "vlan-table", vlans);
    json_object_set_new(info, "unicast-table", mac_table_json(f->uni, f->nr_uni));
    json_object_set_new(info, "multicast-overflow", json_boolean(f->multi_overflow));
    json_object_set_new(info, "multicast",
                        json_string(rx_state(f->nomulti, f->allmulti)));
    json_object_set_new(info, "multicast-table", mac_table_json(f->multi, f->nr_multi));
    json_object_set_new(info, "unicast-overflow", json_boolean(f->uni_overflow));
    json_object_set_new(info, "broadcast-allowed", json_boolean(f->nobcast));
    return info;
}

json_t *qmp_query_rx_filter(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *name = json_string_value(json_object_get(args, "name"));
    GArray *filters = machine_query_rx_filter(ctx->machine, name, errp);
    json_t *list;

    if (!filters) {
        return NULL;
    }
    list = json_array();
    for (guint i = 0; i < filters->len; i++) {
        json_array_append_new(
            list, rx_filter_json(&g_array_index(filters, VirtioNetRxFilter, i)));
    }
    machine_rx_filters_free(filters);
    return list;
}

json_t *qmp_announce_self(QmpContext *ctx, json_t *args, GError **errp)
{
    json_t *list = json_object_get(args, "interfaces"), *item;
    GPtrArray *names = g_ptr_array_new();
    size_t i;
    MachineAnnounceParams p = {
        .initial = json_integer_value(json_object_get(args, "initial")),
        .max = json_integer_value(json_object_get(args, "max")),
        .rounds = json_integer_value(json_object_get(args, "rounds")),
        .step = json_integer_value(json_object_get(args, "step")),
        .id = json_string_value(json_object_get(args, "id")),
    };

    json_array_foreach(list, i, item)
    {
        g_ptr_array_add(names, (gpointer)json_string_value(item));
    }
    g_ptr_array_add(names, NULL);
    p.interfaces = list ? (const char *const *)names->pdata : NULL;
    machine_announce_self(ctx->machine, &p);
    g_ptr_array_free(names, TRUE);
    return json_object();
}

/* netdev_add's members as -netdev's option string (type first). */
static char *netdev_add_options(json_t *args)
{
    GString *out = g_string_new(json_string_value(json_object_get(args, "type")));
    const char *key;
    json_t *value;

    json_object_foreach(args, key, value)
    {
        if (strcmp(key, "type") == 0) {
            continue;
        }
        g_string_append_printf(out, ",%s=", key);
        if (json_is_string(value)) {
            for (const char *c = json_string_value(value); *c; c++) {
                g_string_append(out, *c == ',' ? ",," : (char[]){ *c, 0 });
            }
        } else if (json_is_integer(value)) {
            g_string_append_printf(out, "%" JSON_INTEGER_FORMAT,
                                   json_integer_value(value));
        } else {
            g_string_append(out, json_is_true(value) ? "on" : "off");
        }
    }
    return g_string_free(out, FALSE);
}

/*
 * A monitor's fd=, vhostfd=, fds= and vhostfds= (':'-separated) may name
 * descriptors passed with getfd; this VMM has no getfd, so every name is
 * unknown (QEMU's words).
 */
static bool fd_names_known(const char *opts, GError **errp)
{
    SubOpts *o = subopts_parse(opts, "type", NULL);
    static const char *const keys[] = { "fd", "vhostfd", "fds", "vhostfds" };
    bool ok = true;

    for (size_t i = 0; o && ok && i < G_N_ELEMENTS(keys); i++) {
        const char *v = subopts_get(o, keys[i]);
        g_auto(GStrv) names = v ? g_strsplit(v, ":", -1) : NULL;

        for (unsigned j = 0; ok && names && names[j]; j++) {
            if (*names[j] && !g_ascii_isdigit(*names[j])) {
                error_setg(errp, "File descriptor named '%s' has not been found",
                           names[j]);
                ok = false;
            }
        }
    }
    if (o) {
        subopts_free(o);
    }
    return ok;
}

/* QMP says "Duplicate ID 'ID'" where -netdev and HMP add " for netdev". */
bool monitor_netdev_add(Machine *m, const char *opts, bool qmp, GError **errp)
{
    GError *err = NULL;

    if (!fd_names_known(opts, errp)) {
        return false;
    }
    if (machine_netdev_add(m, opts, &err)) {
        return true;
    }
    if (qmp && g_str_has_suffix(err->message, "' for netdev") &&
        g_str_has_prefix(err->message, "Duplicate ID '")) {
        err->message[strlen(err->message) - strlen(" for netdev")] = 0;
    }
    g_propagate_error(errp, err);
    return false;
}

json_t *qmp_netdev_add(QmpContext *ctx, json_t *args, GError **errp)
{
    char *opts = netdev_add_options(args);
    bool ok = monitor_netdev_add(ctx->machine, opts, true, errp);

    g_free(opts);
    return ok ? json_object() : NULL;
}

json_t *qmp_netdev_del(QmpContext *ctx, json_t *args, GError **errp)
{
    const char *id = json_string_value(json_object_get(args, "id"));

    return machine_netdev_del(ctx->machine, id, errp) ? json_object() : NULL;
}

/* ---- NIC_RX_FILTER_CHANGED ---- */

static MonitorSet *net_monitors; /* where the event goes [main thread] */

/* The event's data, made on the NIC's I/O thread, sent from the main loop. */
static gboolean emit_rx_filter_changed(gpointer opaque)
{
    json_t *data = opaque;

    if (net_monitors) {
        monitor_emit_event(net_monitors, "NIC_RX_FILTER_CHANGED", data);
    } else {
        json_decref(data);
    }
    return G_SOURCE_REMOVE;
}

/* @name is the NIC's id where it has one (QEMU 7.2 leaves it out otherwise). */
static void rx_filter_changed(void *opaque, VirtioNet *n)
{
    char *path = machine_nic_backend_path(n);
    json_t *data = json_pack("{s:s}", "path", path);

    if (virtio_net_qdev_id(n)) {
        json_object_set_new(data, "name", json_string(virtio_net_qdev_id(n)));
    }
    g_free(path);
    g_idle_add(emit_rx_filter_changed, data);
}

void monitor_net_init(MonitorSet *set)
{
    net_monitors = set;
    virtio_net_set_rx_filter_notifier(rx_filter_changed, NULL);
}

void monitor_net_fini(MonitorSet *set)
{
    if (net_monitors == set) {
        virtio_net_set_rx_filter_notifier(NULL, NULL);
        net_monitors = NULL;
    }
}
