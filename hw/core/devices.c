/*
 * -device and the hot-plugged devices: create them (their drives claimed
 * through drives.c), name them by QOM path as QEMU does (peripheral/ID,
 * or peripheral-anon/device[N] for a device without id), ask the guest to
 * eject one and take it away once ejected.  Main thread only.
 */
#include <string.h>

#include "block/block.h"
#include "devices-int.h"
#include "hw/devices.h"
#include "hw/failover.h"
#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "hw/vfio.h"
#include "hw/virtio.h"
#include "util/error.h"
#include "util/subopt.h"

#define PERIPHERAL      "/machine/peripheral/"
#define PERIPHERAL_ANON "/machine/peripheral-anon/device["

/* A device without id gets the lowest free device[N], as QEMU's "[*]". */
static void anon_register(Machine *m, PciDevice *dev)
{
    if (dev->qdev_id) {
        return;
    }
    for (guint i = 0; i < m->anon_devices->len; i++) {
        if (!g_ptr_array_index(m->anon_devices, i)) {
            g_ptr_array_index(m->anon_devices, i) = dev;
            return;
        }
    }
    g_ptr_array_add(m->anon_devices, dev);
}

static void anon_unregister(Machine *m, PciDevice *dev)
{
    for (guint i = 0; i < m->anon_devices->len; i++) {
        if (g_ptr_array_index(m->anon_devices, i) == dev) {
            g_ptr_array_index(m->anon_devices, i) = NULL;
        }
    }
}

/* The device's QOM path, or NULL for a device of the board. */
static char *device_path(Machine *m, PciDevice *dev)
{
    if (dev->qdev_id) {
        return g_strconcat(PERIPHERAL, dev->qdev_id, NULL);
    }
    for (guint i = 0; i < m->anon_devices->len; i++) {
        if (g_ptr_array_index(m->anon_devices, i) == dev) {
            return g_strdup_printf(PERIPHERAL_ANON "%u]", i);
        }
    }
    return NULL;
}

GPtrArray *machine_query_anon_devices(Machine *m)
{
    GPtrArray *types = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; m->anon_devices && i < m->anon_devices->len; i++) {
        PciDevice *dev = g_ptr_array_index(m->anon_devices, i);
        g_ptr_array_add(types, dev ? g_strdup(dev->name) : NULL);
    }
    return types;
}

static bool device_is_virtio(PciDevice *dev)
{
    return g_str_has_prefix(dev->name, "virtio-");
}

/* Name a device just made and hand it the drives it claimed. */
static void device_created(Machine *m, PciDevice *dev)
{
    char *path, *backend;

    anon_register(m, dev);
    path = device_path(m, dev);
    backend = g_strconcat(path, "/virtio-backend", NULL);
    machine_drives_commit(m, dev, backend);
    g_free(backend);
    g_free(path);
}

/* device_del's id or QOM path (QEMU takes either), to a user's device. */
static PciDevice *device_find(Machine *m, const char *id)
{
    if (!m->pci) {
        return NULL; /* machine none */
    }
    if (g_str_has_prefix(id, PERIPHERAL)) {
        return pci_find_device_by_id(m->pci, id + strlen(PERIPHERAL));
    }
    for (guint i = 0; id[0] == '/' && i < m->anon_devices->len; i++) {
        PciDevice *dev = g_ptr_array_index(m->anon_devices, i);
        char *path = dev ? device_path(m, dev) : NULL;
        bool same = path && strcmp(path, id) == 0;

        g_free(path);
        if (same) {
            return dev;
        }
    }
    return id[0] == '/' ? NULL : pci_find_device_by_id(m->pci, id);
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
        d->claimed = d->id && !d->cfg.if_none; /* -drive if=virtio's own device */
    }
    /* split when read (driver given, ids unique); the models check the rest */
    for (guint i = 0; ok && i < cfg->devices->len; i++) {
        const DeviceOpt *dev = g_ptr_array_index(cfg->devices, i);

        if (strcmp(dev->driver, "isa-serial") == 0) {
            continue; /* a COM port: the board's (pc_isa_serial_prepare) */
        }
        if (!pci_device_check(dev->driver, dev->props, machine_drive_claim, m, errp)) {
            g_prefix_error(errp, "-device %s: ", dev->arg);
            ok = false;
        }
    }
    machine_drives_commit(m, NULL, NULL);
    return ok;
}

static bool create_devices(Machine *m, GError **errp)
{
    const VmConfig *cfg = m->cfg;
    GPtrArray *drive_devices = g_ptr_array_new();
    bool ok = true;

    for (guint i = 0; ok && i < m->drives->len; i++) {
        MachineDrive *d = g_ptr_array_index(m->drives, i);
        PciDevice *dev;

        if (!d->id || d->cfg.if_none) {
            continue; /* a node (-blockdev), or a drive for a -device */
        }
        dev = virtio_blk_pci_create(m->pci, d->bs, NULL, d->cfg.serial, errp);
        ok = dev != NULL;
        if (ok) {
            d->device = dev; /* named below, after the -device ones */
            g_ptr_array_add(drive_devices, dev);
        }
    }
    for (guint i = 0; ok && i < cfg->devices->len; i++) {
        const DeviceOpt *opt = g_ptr_array_index(cfg->devices, i);
        PciDevice *dev;

        if (strcmp(opt->driver, "isa-serial") == 0) {
            continue;
        }
        if (subopts_has(opt->props, "failover_pair_id")) {
            /* a failover primary: off the bus until its standby negotiates */
            ok = machine_failover_hide(m, opt->driver, opt->props, errp);
            if (!ok) {
                g_prefix_error(errp, "-device %s: ", opt->arg);
            }
            continue;
        }
        dev = pci_device_create(m->pci, opt->driver, opt->props, machine_drive_claim, m,
                                errp);
        if (!dev) {
            machine_drives_commit(m, NULL, NULL);
            g_prefix_error(errp, "-device %s: ", opt->arg);
            ok = false;
        } else {
            device_created(m, dev);
        }
    }
    /* QEMU makes an if=virtio drive's device after every -device */
    for (guint i = 0; ok && i < drive_devices->len; i++) {
        PciDevice *dev = g_ptr_array_index(drive_devices, i);

        for (guint j = 0; j < m->drives->len; j++) {
            MachineDrive *d = g_ptr_array_index(m->drives, j);
            d->claimed = d->device == dev;
            d->device = d->claimed ? NULL : d->device;
        }
        device_created(m, dev);
    }
    g_ptr_array_free(drive_devices, TRUE);
    return ok;
}

bool machine_devices_prepare(Machine *m, GError **errp)
{
    m->anon_devices = g_ptr_array_new();
    return machine_drives_open(m, errp) && check_devices(m, errp);
}

bool machine_devices_init(Machine *m, GError **errp)
{
    if (!pci_pc_init(m, errp)) {
        return false;
    }
    machine_failover_init(m);
    if (!create_devices(m, errp)) {
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
    PciDevice *dev = device_find(m, id);

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

static void slow_leave(void *opaque)
{
    machine_unlock(opaque);
}

static void slow_enter(void *opaque)
{
    machine_lock(opaque);
}

void machine_pci_slow_section(Machine *m, bool on)
{
    if (on) {
        pci_bus_set_slow_section(m->pci, slow_leave, slow_enter, m);
    } else {
        pci_bus_set_slow_section(m->pci, NULL, NULL, NULL);
    }
}

bool machine_device_add(Machine *m, SubOpts *opts, GError **errp)
{
    const char *driver = subopts_get(opts, "driver");
    const char *id = subopts_get(opts, "id");
    PciDevice *dev = NULL;
    bool ok = false; /* a failover primary kept (dev stays NULL) */

    if (!driver) {
        error_setg(errp, "Parameter 'driver' is missing");
    } else if (!m->pci) {
        error_setg(errp, "No 'PCI' bus found for device '%s'", driver); /* machine none */
    } else if (id &&
               (pci_find_device_by_id(m->pci, id) || machine_failover_has_id(m, id))) {
        error_setg(errp, "Duplicate device ID '%s'", id);
    } else if (subopts_has(opts, "failover_pair_id")) {
        ok = machine_failover_hide(m, driver, opts, errp);
    } else {
        machine_lock(m);
        machine_pci_slow_section(m, true);
        dev = pci_device_create(m->pci, driver, opts, machine_drive_claim, m, errp);
        machine_pci_slow_section(m, false);
        if (dev) {
            device_created(m, dev);
            pc_board_plug(m, PCI_DEVFN_SLOT(dev->devfn));
        } else {
            machine_drives_commit(m, NULL, NULL); /* it holds no drive */
        }
        machine_unlock(m);
    }
    subopts_free(opts);
    return dev != NULL || ok;
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

typedef struct DeletedDevice {
    char *id, *path;
    bool virtio;
} DeletedDevice;

static void deleted_device_free(gpointer p)
{
    DeletedDevice *d = p;

    g_free(d->id);
    g_free(d->path);
    g_free(d);
}

static void deleted_emit(Machine *m, GPtrArray *gone)
{
    for (guint i = 0; i < gone->len; i++) {
        DeletedDevice *d = g_ptr_array_index(gone, i);
        machine_device_deleted(m, d->id, d->path, d->virtio);
    }
}

void machine_devices_released(Machine *m)
{
    GPtrArray *later = m->deleted_later;

    if (later && (!m->vfio || vfio_context_closing(m->vfio) == 0)) {
        m->deleted_later = NULL;
        deleted_emit(m, later);
        g_ptr_array_free(later, TRUE);
    }
}

void machine_devices_remove_slot(Machine *m, unsigned slot)
{
    SlotDevices s = { slot, g_ptr_array_new() };
    GPtrArray *gone = g_ptr_array_new_with_free_func(deleted_device_free);

    machine_lock(m);
    pci_foreach_device(m->pci, collect_slot, &s);
    /* a vfio-pci lets go of guest RAM with the lock released (below) */
    machine_pci_slow_section(m, true);
    for (guint i = 0; i < s.devices->len; i++) {
        PciDevice *dev = g_ptr_array_index(s.devices, i);

        /* a failover primary is kept for its next plug: no DEVICE_DELETED */
        if (!machine_failover_ejected(m, dev)) {
            DeletedDevice *d = g_new0(DeletedDevice, 1);
            d->id = g_strdup(dev->qdev_id);
            d->path = device_path(m, dev);
            d->virtio = device_is_virtio(dev);
            g_ptr_array_add(gone, d);
        }
        /* BARs off first, then the model stops its I/O and goes */
        pci_device_free(dev);
        /* its drive goes too (or, a blockdev-add node, is let go) */
        machine_drives_device_gone(m, dev);
        anon_unregister(m, dev);
    }
    machine_pci_slow_section(m, false);
    machine_unlock(m);
    /*
     * A vfio-pci's host device closes in the background: DEVICE_DELETED
     * once it is let go, as QEMU (whose close is part of the removal), so
     * that what follows the event (binding it to a host driver, a
     * device_add elsewhere) finds it free.
     */
    if (gone->len && m->vfio && vfio_context_closing(m->vfio) > 0) {
        if (!m->deleted_later) {
            m->deleted_later = g_ptr_array_new_with_free_func(deleted_device_free);
        }
        while (gone->len) {
            g_ptr_array_add(m->deleted_later, g_ptr_array_steal_index(gone, 0));
        }
        machine_devices_released(m); /* the close may have finished already */
    }
    deleted_emit(m, gone);
    g_ptr_array_free(s.devices, TRUE);
    g_ptr_array_free(gone, TRUE);
}

void machine_devices_cleanup(Machine *m)
{
    if (m->pci) {
        pci_pc_cleanup(m);
    }
    machine_drives_free(m);
    machine_failover_cleanup(m);
    if (m->deleted_later) {
        g_ptr_array_free(m->deleted_later, TRUE);
        m->deleted_later = NULL;
    }
    if (m->anon_devices) {
        g_ptr_array_free(m->anon_devices, TRUE);
        m->anon_devices = NULL;
    }
}
