/*
 * -drive and -device: open the images (inactive on a migration
 * destination, as QEMU does, until the source lets go), create the
 * virtio-blk devices, and hand the image locks over at switch-over.
 * Main thread only.
 */
#include <string.h>
#include <sys/stat.h>

#include "block/block.h"
#include "hw/devices.h"
#include "hw/i386/pc.h"
#include "hw/machine-info.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "hw/virtio.h"
#include "block/drive.h"
#include "util/error.h"
#include "util/subopt.h"

typedef struct MachineDrive {
    DriveConfig cfg; /* the -drive's, parsed; its strings are the VmConfig's */
    BlockDriverState *bs;
    bool attached;
} MachineDrive;

static void drive_free(gpointer p)
{
    MachineDrive *d = p;

    if (d->bs) {
        bdrv_close(d->bs);
    }
    g_free(d);
}

static BlockDriverState *lookup_drive(void *opaque, const char *id, GError **errp)
{
    Machine *m = opaque;

    for (guint i = 0; m->drives && i < m->drives->len; i++) {
        MachineDrive *d = g_ptr_array_index(m->drives, i);
        if (strcmp(d->cfg.id, id) == 0) {
            if (d->attached) {
                error_setg(errp, "Drive '%s' is already in use by another device", id);
                return NULL;
            }
            d->attached = true;
            return d->bs;
        }
    }
    error_setg(errp, "Property 'drive' can't find value '%s'", id);
    return NULL;
}

static bool open_drives(Machine *m, GError **errp)
{
    const VmConfig *cfg = m->cfg;

    m->drives = g_ptr_array_new_with_free_func(drive_free);
    for (guint i = 0; i < cfg->drives->len; i++) {
        const DriveConfig *drive = g_ptr_array_index(cfg->drives, i);
        MachineDrive *d = g_new0(MachineDrive, 1);
        BlockOptions opts;

        g_ptr_array_add(m->drives, d);
        d->cfg = *drive;
        opts = drive_block_options(&d->cfg);
        opts.inactive = cfg->incoming != NULL;
        d->bs = bdrv_open(&opts, errp);
        if (!d->bs) {
            g_prefix_error(errp, "-drive %s: ", drive->arg);
            return false;
        }
    }
    return true;
}

/*
 * Every -device's options against the drives just opened, with no VM: the
 * errors create_devices would give, on a machine without KVM too.
 */
static bool check_devices(Machine *m, GError **errp)
{
    const VmConfig *cfg = m->cfg;
    bool ok = true;

    for (guint i = 0; i < m->drives->len; i++) {
        MachineDrive *d = g_ptr_array_index(m->drives, i);
        d->attached = !d->cfg.if_none;
    }
    /* split when read (driver given, ids unique); the models check the rest */
    for (guint i = 0; ok && i < cfg->devices->len; i++) {
        const DeviceOpt *dev = g_ptr_array_index(cfg->devices, i);

        if (!pci_device_check(dev->driver, dev->props, lookup_drive, m, errp)) {
            g_prefix_error(errp, "-device %s: ", dev->arg);
            ok = false;
        }
    }
    for (guint i = 0; i < m->drives->len; i++) {
        ((MachineDrive *)g_ptr_array_index(m->drives, i))->attached = false;
    }
    return ok;
}

static bool create_devices(Machine *m, GError **errp)
{
    const VmConfig *cfg = m->cfg;

    for (guint i = 0; i < m->drives->len; i++) {
        MachineDrive *d = g_ptr_array_index(m->drives, i);
        if (d->cfg.if_none) {
            continue;
        }
        if (!virtio_blk_pci_create(m->pci, d->bs, NULL, d->cfg.serial, errp)) {
            return false;
        }
        d->attached = true;
    }
    for (guint i = 0; i < cfg->devices->len; i++) {
        const DeviceOpt *dev = g_ptr_array_index(cfg->devices, i);

        if (!pci_device_create(m->pci, dev->driver, dev->props, lookup_drive, m, errp)) {
            g_prefix_error(errp, "-device %s: ", dev->arg);
            return false;
        }
    }
    return true;
}

bool machine_devices_prepare(Machine *m, GError **errp)
{
    return open_drives(m, errp) && check_devices(m, errp);
}

bool machine_devices_init(Machine *m, GError **errp)
{
    if (!pci_pc_init(m, errp) || !create_devices(m, errp)) {
        return false;
    }
    if (m->cfg->kernel) {
        /* no firmware to place the BARs: do what SeaBIOS would */
        pci_pc_assign_resources(m->pci);
    }
    return true;
}

bool machine_device_del(Machine *m, const char *id, GError **errp)
{
    PciDevice *dev = pci_find_device_by_id(m->pci, id);

    if (!dev) {
        g_set_error(errp, VMM_ERROR, ERROR_CLASS_DEVICE_NOT_FOUND,
                    "Device '%s' not found", id);
        return false;
    }
    /* a request already pending is made again (QEMU 7.2's pc: no error) */
    machine_lock(m);
    pc_board_unplug_request(m, PCI_DEVFN_SLOT(dev->devfn));
    machine_unlock(m);
    return true;
}

bool machine_device_add(Machine *m, SubOpts *opts, GError **errp)
{
    const char *driver = subopts_get(opts, "driver");
    const char *id = subopts_get(opts, "id");
    GArray *attached = g_array_new(FALSE, FALSE, sizeof(bool));
    PciDevice *dev = NULL;

    for (guint i = 0; i < m->drives->len; i++) {
        g_array_append_val(attached,
                           ((MachineDrive *)g_ptr_array_index(m->drives, i))->attached);
    }
    if (!driver) {
        error_setg(errp, "Parameter 'driver' is missing");
    } else if (id && pci_find_device_by_id(m->pci, id)) {
        error_setg(errp, "Duplicate device ID '%s'", id);
    } else {
        machine_lock(m);
        dev = pci_device_create(m->pci, driver, opts, lookup_drive, m, errp);
        if (dev) {
            pc_board_plug(m, PCI_DEVFN_SLOT(dev->devfn));
        }
        machine_unlock(m);
    }
    for (guint i = 0; !dev && i < m->drives->len; i++) {
        /* a device that was not made holds no drive */
        ((MachineDrive *)g_ptr_array_index(m->drives, i))->attached = g_array_index(
            attached, bool, i);
    }
    g_array_free(attached, TRUE);
    subopts_free(opts);
    return dev != NULL;
}

typedef struct SlotDevices {
    unsigned slot;
    GPtrArray *devices;
} SlotDevices;

static void collect_slot(PciDevice *dev, void *opaque)
{
    SlotDevices *s = opaque;

    if (PCI_DEVFN_SLOT(dev->devfn) == s->slot) {
        g_ptr_array_add(s->devices, dev);
    }
}

void machine_devices_remove_slot(Machine *m, unsigned slot)
{
    SlotDevices s = { slot, g_ptr_array_new() };
    GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
    GArray *virtio = g_array_new(FALSE, FALSE, sizeof(bool));

    machine_lock(m);
    pci_foreach_device(m->pci, collect_slot, &s);
    for (guint i = 0; i < s.devices->len; i++) {
        PciDevice *dev = g_ptr_array_index(s.devices, i);

        bool is_virtio = g_str_has_prefix(dev->name, "virtio-");

        g_ptr_array_add(ids, g_strdup(dev->qdev_id));
        g_array_append_val(virtio, is_virtio);
        /* BARs off first, then the model stops its I/O and goes */
        pci_device_free(dev);
    }
    machine_unlock(m);
    for (guint i = 0; i < ids->len; i++) {
        machine_device_deleted(m, g_ptr_array_index(ids, i),
                               g_array_index(virtio, bool, i));
    }
    g_array_free(virtio, TRUE);
    g_ptr_array_free(s.devices, TRUE);
    g_ptr_array_free(ids, TRUE);
}

void machine_devices_cleanup(Machine *m)
{
    if (m->pci) {
        pci_pc_cleanup(m);
    }
    if (m->drives) {
        g_ptr_array_free(m->drives, TRUE);
        m->drives = NULL;
    }
}

void machine_drives_release(Machine *m)
{
    for (guint i = 0; m->drives && i < m->drives->len; i++) {
        MachineDrive *d = g_ptr_array_index(m->drives, i);
        bdrv_flush(d->bs);
        bdrv_unlock(d->bs);
    }
}

bool machine_drives_acquire(Machine *m, GError **errp)
{
    for (guint i = 0; m->drives && i < m->drives->len; i++) {
        MachineDrive *d = g_ptr_array_index(m->drives, i);
        if (!bdrv_lock(d->bs, errp)) {
            return false;
        }
    }
    return true;
}

GArray *machine_query_drives(Machine *m)
{
    GArray *list = g_array_new(FALSE, TRUE, sizeof(MachineDriveInfo));

    for (guint i = 0; m->drives && i < m->drives->len; i++) {
        MachineDrive *d = g_ptr_array_index(m->drives, i);
        BlockDriverState *bs = d->bs;
        struct stat st;
        MachineDriveInfo info = {
            .id = d->cfg.id,
            .attached = d->attached,
            .filename = bdrv_filename(bs),
            .format = bdrv_format_name(bs),
            .backing_file = bdrv_backing_filename(bs),
            .read_only = bdrv_is_read_only(bs),
            .cache = bdrv_cache_mode(bs),
            .virtual_size = bdrv_getlength(bs),
        };

        g_snprintf(info.node_name, sizeof(info.node_name), "#block%u", 100 + i);
        if (stat(info.filename, &st) == 0) {
            info.actual_size = (uint64_t)st.st_blocks * 512;
        }
        g_array_append_val(list, info);
    }
    return list;
}
