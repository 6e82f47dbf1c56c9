/*
 * The machine's block backends: -drive images opened at start, drives
 * added with drive_add, nodes with blockdev-add; which device uses which,
 * what goes when a device goes (QEMU's blockdev auto-del for drives), the
 * image locks (hot-added ones held only while a device uses them) and
 * their hand-over around migration; query-block's records.  Main thread.
 */
#include <string.h>
#include <sys/stat.h>

#include "block/block.h"
#include "block/drive.h"
#include "devices-int.h"
#include "hw/drives.h"
#include "hw/machine-info.h"
#include "hw/machine.h"
#include "util/error.h"
#include "util/subopt.h"

#define NODE_NAME_MAX 31 /* QEMU's node names fit 32 bytes with the NUL */

static void drive_free(gpointer p)
{
    MachineDrive *d = p;

    if (d->file) {
        d->file->file_users--;
    }
    bdrv_close(d->bs);
    drive_config_clear(&d->cfg);
    g_free(d->node_name);
    g_free(d->device_path);
    g_free(d);
}

static MachineDrive *drive_at(Machine *m, guint i)
{
    return g_ptr_array_index(m->drives, i);
}

/* A -drive or drive_add drive by its id. */
static MachineDrive *drive_by_id(Machine *m, const char *id)
{
    for (guint i = 0; m->drives && i < m->drives->len; i++) {
        if (drive_at(m, i)->id && strcmp(drive_at(m, i)->id, id) == 0) {
            return drive_at(m, i);
        }
    }
    return NULL;
}

/* A blockdev-add node by its node-name. */
static MachineDrive *node_by_name(Machine *m, const char *name)
{
    for (guint i = 0; m->drives && i < m->drives->len; i++) {
        MachineDrive *d = drive_at(m, i);
        if (!d->id && strcmp(d->node_name, name) == 0) {
            return d;
        }
    }
    return NULL;
}

/* query-block lists backends in the order they were made. */
static unsigned next_backend_order(Machine *m)
{
    unsigned last = 0;

    for (guint i = 0; i < m->drives->len; i++) {
        last = MAX(last, drive_at(m, i)->backend_order);
    }
    return last + 1;
}

/* A drive's own node name, "#block100" onwards, never reused. */
static char *next_drive_node_name(Machine *m)
{
    unsigned last = 99;

    for (guint i = 0; i < m->drives->len; i++) {
        const char *name = drive_at(m, i)->node_name;
        if (drive_at(m, i)->id && g_str_has_prefix(name, "#block")) {
            last = MAX(last, (unsigned)g_ascii_strtoull(name + 6, NULL, 10));
        }
    }
    return g_strdup_printf("#block%u", last + 1);
}

/* The lowest unit no if=none drive has (QEMU numbers them for ids). */
static unsigned next_none_unit(Machine *m)
{
    for (unsigned unit = 0;; unit++) {
        guint i = 0;
        while (i < m->drives->len &&
               !(drive_at(m, i)->id && drive_at(m, i)->cfg.if_none &&
                 drive_at(m, i)->unit == unit)) {
            i++;
        }
        if (i == m->drives->len) {
            return unit;
        }
    }
}

/*
 * QEMU locks a hot-added image at once when its format writes metadata
 * (qcow2, writable), and a raw one only while a device uses it.
 */
static bool hot_added_lock(MachineDrive *d, GError **errp)
{
    if (strcmp(bdrv_format_name(d->bs), "qcow2") == 0 && !bdrv_is_read_only(d->bs)) {
        d->lock_while_used = false;
        return bdrv_lock(d->bs, errp);
    }
    d->lock_while_used = true;
    return true;
}

/*
 * A destination's nodes (-blockdev with -incoming) take no lock until the
 * migration hands the images over (machine_drives_acquire), as its -drive
 * images: the source still holds them.
 */
static bool machine_drives_wait_incoming(Machine *m)
{
    return m->cfg->incoming &&
           (m->runstate == RUN_STATE_PRELAUNCH || m->runstate == RUN_STATE_INMIGRATE);
}

/* hot_added_lock's rule for a node, the lock itself left for later there. */
static bool node_lock(Machine *m, MachineDrive *d, GError **errp)
{
    if (machine_drives_wait_incoming(m)) {
        d->lock_while_used = strcmp(bdrv_format_name(d->bs), "qcow2") != 0 ||
                             bdrv_is_read_only(d->bs);
        return true;
    }
    return hot_added_lock(d, errp);
}

static MachineDrive *drive_add_open(Machine *m, const DriveConfig *cfg, bool hot_added,
                                    GError **errp)
{
    MachineDrive *d = g_new0(MachineDrive, 1);
    BlockOptions opts;

    d->cfg = (DriveConfig){ .arg = g_strdup(cfg->arg),
                            .id = g_strdup(cfg->id),
                            .file = g_strdup(cfg->file),
                            .format = g_strdup(cfg->format),
                            .serial = g_strdup(cfg->serial),
                            .cache = cfg->cache,
                            .read_only = cfg->read_only,
                            .discard_unmap = cfg->discard_unmap,
                            .has_media = cfg->has_media,
                            .if_none = cfg->if_none };
    d->id = d->cfg.id;
    opts = drive_block_options(&d->cfg);
    /* a hot-added drive locks its image once a device uses it (QEMU's) */
    opts.inactive = hot_added || m->cfg->incoming != NULL;
    d->bs = bdrv_open(&opts, errp);
    if (!d->bs || (hot_added && !hot_added_lock(d, errp))) {
        drive_free(d);
        return NULL;
    }
    d->node_name = next_drive_node_name(m);
    d->backend_order = next_backend_order(m);
    d->unit = d->cfg.if_none ? next_none_unit(m) : 0;
    g_ptr_array_add(m->drives, d);
    return d;
}

bool machine_drives_open(Machine *m, GError **errp)
{
    const VmConfig *cfg = m->cfg;

    m->drives = g_ptr_array_new_with_free_func(drive_free);
    for (guint i = 0; i < cfg->drives->len; i++) {
        const DriveConfig *drive = g_ptr_array_index(cfg->drives, i);

        if (!drive_add_open(m, drive, false, errp)) {
            g_prefix_error(errp, "-drive %s: ", drive->arg);
            return false;
        }
    }
    /* -blockdev: nodes as blockdev-add makes them, before any -device */
    for (guint i = 0; i < cfg->blockdevs->len; i++) {
        const BlockdevOpt *node = g_ptr_array_index(cfg->blockdevs, i);

        if (!machine_blockdev_add(m, node->opts, errp)) {
            g_prefix_error(errp, "-blockdev %s: ", node->arg);
            return false;
        }
    }
    return true;
}

BlockDriverState *machine_drive_claim(void *machine, const char *name, GError **errp)
{
    Machine *m = machine;
    MachineDrive *d = drive_by_id(m, name);

    if (!d) {
        d = node_by_name(m, name);
    }
    if (!d) {
        error_setg(errp, "Property 'virtio-blk-device.drive' can't find value '%s'",
                   name);
        return NULL;
    }
    if (d->claimed || d->device) {
        if (d->id) {
            error_setg(errp, "Drive '%s' is already in use by another device", name);
        } else {
            error_setg(errp, "Node '%s' is already in use by block device '%s'", name,
                       d->device ? d->device_path : "being created");
        }
        return NULL;
    }
    if (d->lock_while_used && !machine_drives_wait_incoming(m) &&
        !bdrv_lock(d->bs, errp)) {
        return NULL;
    }
    d->claimed = true;
    return d->bs;
}

void machine_drives_commit(Machine *m, PciDevice *dev, const char *path)
{
    for (guint i = 0; i < m->drives->len; i++) {
        MachineDrive *d = drive_at(m, i);

        if (!d->claimed) {
            continue;
        }
        d->claimed = false;
        if (!dev) {
            if (d->lock_while_used) {
                bdrv_unlock(d->bs);
            }
            continue;
        }
        d->device = dev;
        d->device_path = g_strdup(path);
        if (!d->id) {
            d->backend_order = next_backend_order(m); /* a new BlockBackend */
        }
    }
}

void machine_drives_device_gone(Machine *m, PciDevice *dev)
{
    for (guint i = m->drives->len; i-- > 0;) {
        MachineDrive *d = drive_at(m, i);

        if (d->device != dev) {
            continue;
        }
        bdrv_flush_unaccounted(d->bs);
        if (d->id) {
            /* QEMU deletes a -drive/drive_add drive with its device */
            g_ptr_array_remove_index(m->drives, i);
            continue;
        }
        d->device = NULL;
        g_clear_pointer(&d->device_path, g_free);
        d->backend_order = 0;
        if (d->lock_while_used) {
            bdrv_unlock(d->bs);
        }
    }
}

void machine_drives_free(Machine *m)
{
    if (m->drives) {
        /* nodes before the file nodes they hold */
        for (guint i = m->drives->len; i-- > 0;) {
            if (drive_at(m, i)->file) {
                g_ptr_array_remove_index(m->drives, i);
            }
        }
        g_ptr_array_free(m->drives, TRUE);
        m->drives = NULL;
    }
}

/* Does the image lock go with this drive now (not a hot-added idle one)? */
static bool drive_holds_lock(const MachineDrive *d)
{
    return !d->lock_while_used || d->device;
}

void machine_drives_release(Machine *m)
{
    for (guint i = 0; m->drives && i < m->drives->len; i++) {
        MachineDrive *d = drive_at(m, i);
        bdrv_flush_unaccounted(d->bs);
        if (drive_holds_lock(d)) {
            bdrv_unlock(d->bs);
        }
    }
}

bool machine_drives_acquire(Machine *m, GError **errp)
{
    for (guint i = 0; m->drives && i < m->drives->len; i++) {
        MachineDrive *d = drive_at(m, i);
        if (drive_holds_lock(d) && !bdrv_lock(d->bs, errp)) {
            return false;
        }
    }
    return true;
}

static gint by_backend_order(gconstpointer a, gconstpointer b)
{
    const MachineDriveInfo *x = a, *y = b;

    return (x->order > y->order) - (x->order < y->order);
}

/*
 * A driver=file node's counters: QEMU counts a node's own requests only
 * for its user's backend, so all that shows here is the highest write
 * that reached the file through the format node over it.
 */
static BlockStats file_node_stats(Machine *m, MachineDrive *file)
{
    BlockStats stats = { .idle_time_ns = -1 };

    for (guint i = 0; i < m->drives->len; i++) {
        MachineDrive *d = drive_at(m, i);
        BlockStats user;

        if (d->file == file) {
            bdrv_get_stats(d->bs, &user);
            stats.wr_highest_offset = MAX(stats.wr_highest_offset,
                                          user.file_wr_highest_offset);
        }
    }
    return stats;
}

/* every_node: nodes without a backend too, in the order they were made. */
static GArray *query_drives(Machine *m, bool every_node)
{
    GArray *list = g_array_new(FALSE, TRUE, sizeof(MachineDriveInfo));

    for (guint i = 0; m->drives && i < m->drives->len; i++) {
        MachineDrive *d = drive_at(m, i);
        BlockDriverState *bs = d->bs;
        MachineDriveInfo info = {
            .id = d->id ? d->id : "",
            .attached = d->device != NULL,
            .qdev = d->device_path,
            .filename = bdrv_filename(bs),
            .format = d->file_node ? "file" : bdrv_format_name(bs),
            .backing_file = bdrv_backing_filename(bs),
            .read_only = bdrv_is_read_only(bs),
            .cache = bdrv_cache_mode(bs),
            .virtual_size = bdrv_getlength(bs),
            .order = d->backend_order,
        };

        if (!every_node && !d->id && !d->device) {
            continue; /* a node without a backend: not in query-block */
        }
        g_strlcpy(info.node_name, d->node_name, sizeof(info.node_name));
        if (d->file) {
            g_strlcpy(info.file_node_name, d->file->node_name,
                      sizeof(info.file_node_name));
        }
        if (bdrv_actual_size(bs) >= 0) {
            info.actual_size = bdrv_actual_size(bs);
        }
        bdrv_get_stats(bs, &info.stats);
        if (d->file_node) {
            info.stats = file_node_stats(m, d);
        }
        g_array_append_val(list, info);
    }
    if (!every_node) {
        g_array_sort(list, by_backend_order);
    }
    return list;
}

GArray *machine_query_drives(Machine *m)
{
    return query_drives(m, false);
}

GArray *machine_query_nodes(Machine *m)
{
    return query_drives(m, true);
}

bool block_id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *c = id + 1; *c; c++) {
        if (!g_ascii_isalnum(*c) && !strchr("-._", *c)) {
            return false;
        }
    }
    return true;
}

/* QEMU's BlockInterfaceType numbers, which drive_add names in its error. */
static int interface_number(const char *iface)
{
    static const char *const names[] = { "none", "ide", "scsi",   "floppy", "pflash",
                                         "mtd",  "sd",  "virtio", "xen" };

    for (int i = 0; i < (int)G_N_ELEMENTS(names); i++) {
        if (strcmp(iface, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* drive_add's checks before -drive's own: the interface and the id. */
static bool drive_add_precheck(Machine *m, const char *options, char **default_id,
                               GError **errp)
{
    SubOpts *o = subopts_parse(options, NULL, errp);
    const char *iface, *id;
    bool ok = false;
    int type;

    if (!o) {
        return false;
    }
    iface = subopts_get(o, "if");
    type = iface ? interface_number(iface) : 1; /* pc's default: IDE */
    id = subopts_get(o, "id");
    if (type > 0) {
        error_setg(errp, "Can't hot-add drive to type %d", type);
    } else if (id && !block_id_wellformed(id)) {
        error_setg(errp, "Parameter 'id' expects an identifier\nIdentifiers consist of "
                         "letters, digits, '-', '.', '_', starting with a letter.");
    } else {
        /* QEMU's default id of an if=none drive: "none" and its unit */
        *default_id = id ? NULL : g_strdup_printf("none%u", next_none_unit(m));
        ok = true;
    }
    subopts_free(o);
    return ok;
}

bool machine_drive_add(Machine *m, const char *options, GError **errp)
{
    char *default_id = NULL;
    DriveConfig cfg;
    bool ok = false;

    if (!drive_add_precheck(m, options, &default_id, errp) ||
        !drive_parse(options, 0, &cfg, errp)) {
        g_free(default_id);
        return false;
    }
    if (default_id) {
        g_free(cfg.id);
        cfg.id = default_id;
    }
    if (drive_by_id(m, cfg.id)) {
        error_setg(errp, "Duplicate ID '%s' for drive", cfg.id);
    } else if (node_by_name(m, cfg.id)) {
        error_setg(errp, "Device name '%s' conflicts with an existing node name", cfg.id);
    } else {
        ok = drive_add_open(m, &cfg, true, errp) != NULL;
    }
    drive_config_clear(&cfg);
    return ok;
}

bool machine_drive_del(Machine *m, const char *id, GError **errp)
{
    MachineDrive *d = drive_by_id(m, id);

    if (!d) {
        if (node_by_name(m, id)) {
            return machine_blockdev_del(m, id, errp);
        }
        error_setg(errp, "Device '%s' not found", id);
        return false;
    }
    if (d->device) {
        error_setg(errp,
                   "Drive '%s' is in use by %s: device_del it first (this VMM "
                   "cannot take the medium out of a device)",
                   id, d->device_path);
        return false;
    }
    g_ptr_array_remove(m->drives, d);
    return true;
}

/* blockdev-add's name rules, in QEMU's order and words. */
static bool node_name_check(Machine *m, const char *name, GError **errp)
{
    if (!name) {
        error_setg(errp, "'node-name' must be specified for the root node");
    } else if (!block_id_wellformed(name)) {
        error_setg(errp, "Invalid node-name: '%s'", name);
    } else if (strlen(name) > NODE_NAME_MAX) {
        error_setg(errp, "Node name too long");
    } else if (node_by_name(m, name)) {
        error_setg(errp, "Duplicate nodes with node-name='%s'", name);
    } else if (drive_by_id(m, name)) {
        error_setg(errp, "node-name=%s is conflicting with a device id", name);
    } else {
        return true;
    }
    return false;
}

bool machine_blockdev_add(Machine *m, const BlockdevAddOptions *o, GError **errp)
{
    bool file_node = strcmp(o->driver, "file") == 0;
    MachineDrive *file = NULL, *d;
    BlockOptions opts = {
        .filename = o->filename,
        .format = file_node ? "raw" : o->driver,
        .read_only = o->read_only,
        .cache = o->cache,
        .discard_unmap = o->discard_unmap,
        .auto_read_only = o->auto_read_only,
        .inactive = true, /* hot_added_lock: now or once a device uses it */
    };

    if (!node_name_check(m, o->node_name, errp)) {
        return false;
    }
    if (o->file_node) {
        file = node_by_name(m, o->file_node);
        if (!file && !drive_by_id(m, o->file_node)) {
            error_setg(errp, "Cannot find device='%s' nor node-name='%s'", o->file_node,
                       o->file_node);
            return false;
        }
        if (!file || !file->file_node) {
            error_setg(errp,
                       "'%s' is not a driver=file node: this VMM opens %s images "
                       "only over one",
                       o->file_node, o->driver);
            return false;
        }
        opts.filename = bdrv_filename(file->bs);
        opts.auto_read_only = file->auto_read_only;
    }
    d = g_new0(MachineDrive, 1);
    d->bs = bdrv_open(&opts, errp);
    if (!d->bs || !node_lock(m, d, errp)) {
        drive_free(d);
        return false;
    }
    d->node_name = g_strdup(o->node_name);
    d->file_node = file_node;
    d->auto_read_only = opts.auto_read_only;
    d->file = file;
    if (file) {
        file->file_users++;
    }
    g_ptr_array_add(m->drives, d);
    return true;
}

bool machine_blockdev_del(Machine *m, const char *node_name, GError **errp)
{
    MachineDrive *d = node_by_name(m, node_name);

    if (!d) {
        error_setg(errp, "Failed to find node with node-name='%s'", node_name);
        return false;
    }
    if (d->device || d->claimed) {
        error_setg(errp, "Node %s is in use", node_name);
        return false;
    }
    if (d->file_users) {
        error_setg(errp, "Block device %s is in use", node_name);
        return false;
    }
    g_ptr_array_remove(m->drives, d);
    return true;
}
