/*
 * HMP's networking commands, over the typed calls their QMP twins use
 * (hw/machine-net.h), printed as QEMU 7.2's HMP prints them: set_link,
 * netdev_add, netdev_del, info network.  Main thread only.
 */
#include <string.h>

#include "hw/machine-net.h"
#include "monitor-int.h"
#include "util/error.h"

static void hmp_try_help(Monitor *mon, const char *cmd, const char *why)
{
    if (why) {
        monitor_printf(mon, "%s\n", why);
    }
    monitor_printf(mon, "Try \"help %s\" for more information\n", cmd);
}

static void hmp_net_check(Monitor *mon, bool ok, GError **errp)
{
    if (!ok) {
        monitor_printf(mon, "Error: %s\n", (*errp)->message);
        g_clear_error(errp);
    }
}

void hmp_set_link(Monitor *mon, const char *args)
{
    char **words = g_strsplit_set(args, " \t", -1);
    const char *name = NULL, *value = NULL;
    GError *err = NULL;

    for (char **w = words; *w; w++) {
        if (!**w) {
            continue;
        }
        if (!name) {
            name = *w;
        } else if (!value) {
            value = *w;
        }
    }
    if (!name) {
        hmp_try_help(mon, "set_link", "set_link: string expected");
    } else if (!value) {
        hmp_try_help(mon, "set_link", "Expected 'on' or 'off'");
    } else if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
        hmp_try_help(mon, "set_link", "Expected 'on' or 'off'");
    } else if (!g_utf8_validate(name, -1, NULL)) {
        monitor_printf(mon, "set_link: the name is not valid UTF-8\n");
    } else {
        hmp_net_check(
            mon,
            machine_set_link(mon->set->machine, name, strcmp(value, "on") == 0, &err),
            &err);
    }
    g_strfreev(words);
}

void hmp_netdev_add(Monitor *mon, const char *args)
{
    GError *err = NULL;

    if (!*args || !g_utf8_validate(args, -1, NULL)) {
        monitor_printf(mon, "Error: Parameter 'id' is missing\n");
        return;
    }
    if (!monitor_netdev_add(mon->set->machine, args, false, &err)) {
        if (g_str_has_prefix(err->message, "Duplicate ID '")) {
            /* QEMU's option parser says this on stderr, HMP the rest */
            error_report("%s", err->message);
            g_clear_error(&err);
            hmp_try_help(mon, "netdev_add", NULL);
            return;
        }
        hmp_net_check(mon, false, &err);
    }
}

void hmp_netdev_del(Monitor *mon, const char *args)
{
    GError *err = NULL;

    if (!*args) {
        hmp_try_help(mon, "netdev_del", "netdev_del: string expected");
        return;
    }
    if (!g_utf8_validate(args, -1, NULL)) {
        monitor_printf(mon, "netdev_del: the id is not valid UTF-8\n");
        return;
    }
    hmp_net_check(mon, machine_netdev_del(mon->set->machine, args, &err), &err);
}

void hmp_info_network(Monitor *mon, const char *args)
{
    GArray *list = machine_query_network(mon->set->machine);

    for (guint i = 0; i < list->len; i++) {
        const MachineNetClientInfo *c = &g_array_index(list, MachineNetClientInfo, i);

        monitor_printf(mon, "%s%s: index=0,type=%s,%s\n", c->peer ? " \\ " : "", c->name,
                       c->type, c->info);
    }
    machine_network_info_free(list);
}
