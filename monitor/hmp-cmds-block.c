/*
 * HMP's block commands over the typed calls their QMP twins use
 * (hw/drives.h, machine_query_drives), printed as QEMU 7.2's HMP prints
 * them: drive_add, drive_del, info block.  Main thread only.
 */
#include <string.h>

#include "hw/drives.h"
#include "hw/machine-info.h"
#include "monitor-int.h"
#include "util/error.h"

/* drive_add and drive_del print errors bare, as QEMU's error_report does. */
static void hmp_block_check(Monitor *mon, bool ok, GError **errp)
{
    if (!ok) {
        monitor_printf(mon, "%s\n", (*errp)->message);
        g_clear_error(errp);
    }
}

/* drive_add [-n] [[<domain>:]<bus>:]<slot> OPTIONS: the address only parses. */
void hmp_drive_add(Monitor *mon, const char *args)
{
    char **words = g_strsplit_set(args, " \t", -1);
    const char *word[3] = { NULL };
    unsigned n = 0;
    bool node = false;
    GError *err = NULL;

    for (char **w = words; *w; w++) {
        if (!**w) {
            continue;
        }
        if (n == 0 && !node && strcmp(*w, "-n") == 0) {
            node = true;
        } else if (n < G_N_ELEMENTS(word)) {
            word[n++] = *w;
        }
    }
    if (n < 2) {
        monitor_printf(mon, "drive_add: string expected\n"
                            "Try \"help drive_add\" for more information\n");
    } else if (n > 2) {
        monitor_printf(mon, "drive_add: extraneous characters at the end of line\n"
                            "Try \"help drive_add\" for more information\n");
    } else if (node) {
        monitor_printf(mon, "drive_add -n is not supported by this VMM: use QMP "
                            "blockdev-add\n");
    } else if (machine_drive_add(mon->set->machine, word[1], &err)) {
        monitor_printf(mon, "OK\n");
    } else {
        hmp_block_check(mon, false, &err);
    }
    g_strfreev(words);
}

void hmp_drive_del(Monitor *mon, const char *args)
{
    GError *err = NULL;

    if (!*args) {
        monitor_printf(mon, "drive_del: block device name expected\n"
                            "Try \"help drive_del\" for more information\n");
    } else if (strpbrk(args, " \t")) {
        monitor_printf(mon, "drive_del: extraneous characters at the end of line\n"
                            "Try \"help drive_del\" for more information\n");
    } else {
        hmp_block_check(mon, machine_drive_del(mon->set->machine, args, &err), &err);
    }
}

static const char *cache_mode_text(BlockCacheMode mode)
{
    BlockCacheFlags f = monitor_block_cache_flags(mode);

    if (f.no_flush) {
        return "writeback, ignore flushes";
    }
    if (f.direct) {
        return f.writeback ? "writeback, direct" : "writethrough, direct";
    }
    return f.writeback ? "writeback" : "writethrough";
}

/* QEMU's layout: a drive by "id (node):", a node's backend by "node:". */
void hmp_info_block(Monitor *mon, const char *args)
{
    GArray *drives = machine_query_drives(mon->set->machine);

    for (guint i = 0; i < drives->len; i++) {
        const MachineDriveInfo *d = &g_array_index(drives, MachineDriveInfo, i);

        if (i > 0) {
            monitor_printf(mon, "\n");
        }
        if (*d->id) {
            monitor_printf(mon, "%s (%s): ", d->id, d->node_name);
        } else {
            monitor_printf(mon, "%s: ", d->node_name);
        }
        monitor_printf(mon, "%s (%s%s)\n", d->filename, d->format,
                       d->read_only ? ", read-only" : "");
        if (d->attached) {
            monitor_printf(mon, "    Attached to:      %s\n", d->qdev);
        } else {
            monitor_printf(mon, "    Removable device: not locked, tray closed\n");
        }
        monitor_printf(mon, "    Cache mode:       %s\n", cache_mode_text(d->cache));
        if (d->backing_file) {
            monitor_printf(mon, "    Backing file:     %s (chain depth: 1)\n",
                           d->backing_file);
        }
    }
    g_array_unref(drives);
}
