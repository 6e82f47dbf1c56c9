/*
 * virtio-net failover (include/hw/failover.h): the primaries kept off the
 * bus, their options for (re)creating them, and their plug state.  Main
 * thread, machine lock taken around the bus; the standbys' negotiation
 * arrives from vCPU threads and is handed to the main loop.
 */
#include <string.h>

#include "hw/failover.h"
#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "hw/machine-net.h"
#include "hw/pci.h"
#include "hw/vfio.h"
#include "hw/virtio-net.h"
#include "util/error.h"
#include "util/subopt.h"

#define PCI_CLASS_NETWORK_ETHERNET 0x0200 /* class and subclass, at 0x0a */

typedef enum PrimaryState {
    PRIMARY_HIDDEN,     /* never plugged: STANDBY not negotiated yet */
    PRIMARY_PLUGGED,    /* on the bus */
    PRIMARY_UNPLUGGING, /* the guest was asked to eject it (migration) */
    PRIMARY_UNPLUGGED,  /* ejected for the migration; plugged on failure */
} PrimaryState;

typedef struct FailoverPrimary {
    char *id, *standby_id, *driver;
    SubOpts *opts;  /* a copy of the -device options, to create it again */
    PciDevice *dev; /* while on the bus */
    PrimaryState state;
    bool announced; /* the standby's RARPs sent for this unplug */
} FailoverPrimary;

typedef struct FailoverState FailoverState;

struct FailoverState {
    GPtrArray *primaries; /* of FailoverPrimary */
    unsigned pending;     /* UNPLUGGING primaries; read from any thread */
    bool migrating;       /* between unplug_all and replug_all */
};

static SubOpts *subopts_copy(SubOpts *opts)
{
    SubOpts *copy = g_new0(SubOpts, 1);

    copy->items = g_array_new(FALSE, TRUE, sizeof(SubOpt));
    for (guint i = 0; i < opts->items->len; i++) {
        SubOpt *o = &g_array_index(opts->items, SubOpt, i);
        SubOpt c = { g_strdup(o->key), g_strdup(o->value), false };
        g_array_append_val(copy->items, c);
    }
    return copy;
}

static void primary_free(gpointer p)
{
    FailoverPrimary *fp = p;

    g_free(fp->id);
    g_free(fp->standby_id);
    g_free(fp->driver);
    subopts_free(fp->opts);
    g_free(fp);
}

static void failover_event(Machine *m, MachineEvent event, const char *id)
{
    m->event_device_id = id;
    if (m->event_fn) {
        m->event_fn(m->event_opaque, event, SHUTDOWN_CAUSE_NONE);
    }
    m->event_device_id = NULL;
}

/* The standby virtio-net named id, or NULL. */
static VirtioNet *standby_find(Machine *m, const char *id)
{
    PciDevice *dev = m->pci ? pci_find_device_by_id(m->pci, id) : NULL;

    return dev ? virtio_net_from_pci(dev) : NULL;
}

/* Create fp's device from its options and tell the guest (ACPI hot-plug). */
static bool primary_plug(Machine *m, FailoverPrimary *fp, GError **errp)
{
    SubOpts *opts = subopts_copy(fp->opts);
    PciDevice *dev;

    machine_lock(m);
    machine_pci_slow_section(m, true);
    dev = pci_device_create(m->pci, fp->driver, opts, NULL, NULL, errp);
    machine_pci_slow_section(m, false);
    if (dev && (pci_get_word(dev->config + 0x0a)) != PCI_CLASS_NETWORK_ETHERNET) {
        pci_device_free(dev);
        dev = NULL;
        error_setg(errp, "failover primary device is not an Ethernet device");
    }
    if (dev) {
        fp->dev = dev;
        fp->state = PRIMARY_PLUGGED;
        pc_board_plug(m, PCI_DEVFN_SLOT(dev->devfn));
    }
    machine_unlock(m);
    subopts_free(opts);
    return dev != NULL;
}

/* Plug the hidden primaries of standby_id. */
static void primaries_plug(Machine *m, const char *standby_id)
{
    FailoverState *fs = m->failover;

    for (guint i = 0; i < fs->primaries->len; i++) {
        FailoverPrimary *fp = g_ptr_array_index(fs->primaries, i);
        GError *err = NULL;

        if (fp->state == PRIMARY_HIDDEN && strcmp(fp->standby_id, standby_id) == 0 &&
            !primary_plug(m, fp, &err)) {
            error_report_err(err, "failover: cannot plug the primary device");
        }
    }
}

/* STANDBY negotiated by standby_id's driver: the event, its primaries plugged. */
static void standby_negotiated(Machine *m, const char *standby_id, const char *name)
{
    failover_event(m, MACHINE_EVENT_FAILOVER_NEGOTIATED, name);
    primaries_plug(m, standby_id);
}

typedef struct Negotiated {
    Machine *m;
    char *standby_id, *name;
} Negotiated;

static gboolean negotiated_idle(gpointer opaque)
{
    Negotiated *n = opaque;

    if (n->m->failover) {
        standby_negotiated(n->m, n->standby_id, n->name);
    }
    g_free(n->standby_id);
    g_free(n->name);
    g_free(n);
    return G_SOURCE_REMOVE;
}

/* A vCPU thread: a driver set FEATURES_OK with STANDBY. */
static void standby_notify(void *opaque, VirtioNet *vn)
{
    Negotiated *n;

    if (!virtio_net_qdev_id(vn)) {
        return; /* no primary can name it */
    }
    n = g_new0(Negotiated, 1);
    n->m = opaque;
    n->standby_id = g_strdup(virtio_net_qdev_id(vn));
    n->name = g_strdup(virtio_net_name(vn));
    g_idle_add(negotiated_idle, n);
}

static void failover_master_off(void *opaque, PciDevice *dev);

/* After the PCI bus exists: its Bus Master hook is set once, before any
 * vCPU runs (they read it under the machine lock in pci_config_write). */
void machine_failover_init(Machine *m)
{
    m->failover = g_new0(FailoverState, 1);
    m->failover->primaries = g_ptr_array_new_with_free_func(primary_free);
    virtio_net_set_standby_notifier(standby_notify, m);
    pci_bus_set_master_off(m->pci, failover_master_off, m);
}

void machine_failover_cleanup(Machine *m)
{
    if (!m->failover) {
        return;
    }
    virtio_net_set_standby_notifier(NULL, NULL);
    g_ptr_array_free(m->failover->primaries, TRUE);
    g_free(m->failover);
    m->failover = NULL;
}

bool machine_failover_hide(Machine *m, const char *driver, SubOpts *opts, GError **errp)
{
    const char *id = subopts_get(opts, "id");
    const char *addr = subopts_get(opts, "addr");
    FailoverPrimary *fp;
    VirtioNet *standby;

    if (!id) {
        error_setg(errp, "Device with failover_pair_id needs to have id");
        return false;
    }
    if (addr && strchr(addr, '.') && strtoul(strchr(addr, '.') + 1, NULL, 0) != 0) {
        error_setg(errp, "failover: primary device must be in its own PCI slot");
        return false;
    }
    fp = g_new0(FailoverPrimary, 1);
    fp->id = g_strdup(id);
    fp->standby_id = g_strdup(subopts_get(opts, "failover_pair_id"));
    fp->driver = g_strdup(driver);
    fp->opts = subopts_copy(opts);
    fp->state = PRIMARY_HIDDEN;
    standby = standby_find(m, fp->standby_id);
    if (standby && virtio_net_standby_negotiated(standby)) {
        /* device_add after the negotiation: plugged now, or refused */
        if (!primary_plug(m, fp, errp)) {
            primary_free(fp);
            return false;
        }
    }
    g_ptr_array_add(m->failover->primaries, fp);
    return true;
}

bool machine_failover_has_id(Machine *m, const char *id)
{
    for (guint i = 0; m->failover && i < m->failover->primaries->len; i++) {
        FailoverPrimary *fp = g_ptr_array_index(m->failover->primaries, i);

        if (!fp->dev && strcmp(fp->id, id) == 0) {
            return true;
        }
    }
    return false;
}

static FailoverPrimary *primary_of(Machine *m, PciDevice *dev)
{
    for (guint i = 0; m->failover && i < m->failover->primaries->len; i++) {
        FailoverPrimary *fp = g_ptr_array_index(m->failover->primaries, i);

        if (fp->dev == dev) {
            return fp;
        }
    }
    return NULL;
}

/* Main loop: a primary the guest ejected with no migration wanting it. */
static gboolean replug_idle(gpointer opaque)
{
    Machine *m = opaque;

    if (m->failover && !m->failover->migrating) {
        machine_failover_replug_all(m);
    }
    return G_SOURCE_REMOVE;
}

/* Main loop: the standby named opaque announces the guest's MAC (below). */
static gboolean ejected_announce_idle(gpointer opaque)
{
    Negotiated *n = opaque;
    const char *names[] = { n->name, NULL };
    MachineAnnounceParams p = { .initial = 50,
                                .max = 550,
                                .rounds = 3,
                                .step = 100,
                                .interfaces = names,
                                .id = "failover" };

    if (n->m->failover) {
        machine_announce_self(n->m, &p);
    }
    g_free(n->standby_id);
    g_free(n->name);
    g_free(n);
    return G_SOURCE_REMOVE;
}

/*
 * The guest's traffic moves to the standby once its driver let go of the
 * primary, with the same MAC, but nothing tells the switches: under
 * net_failover the guest announces nothing (its virtio-net slave holds no
 * address), and frames for the guest went on to the primary's port until
 * the peer's ARP entry aged (seconds of a 10 ms stream lost in the rig).
 * RARPs from the standby's MAC, as after a migration (QEMU sends none
 * here), once per unplug.  Main loop.
 */
static void primary_gone_announce(Machine *m, FailoverPrimary *fp)
{
    VirtioNet *standby = standby_find(m, fp->standby_id);

    if (standby && !fp->announced) {
        Negotiated *n = g_new0(Negotiated, 1);

        fp->announced = true;
        n->m = m;
        n->name = g_strdup(virtio_net_name(standby));
        g_idle_add(ejected_announce_idle, n);
    }
}

typedef struct MasterOff {
    Machine *m;
    PciDevice *dev; /* compared, never dereferenced: it may be gone */
} MasterOff;

/* Main loop: a primary being unplugged lost Bus Master Enable (below). */
static gboolean master_off_idle(gpointer opaque)
{
    MasterOff *mo = opaque;
    FailoverState *fs = mo->m->failover;

    for (guint i = 0; fs && i < fs->primaries->len; i++) {
        FailoverPrimary *fp = g_ptr_array_index(fs->primaries, i);

        if (fp->dev == mo->dev && fp->state == PRIMARY_UNPLUGGING) {
            primary_gone_announce(mo->m, fp);
        }
    }
    g_free(mo);
    return G_SOURCE_REMOVE;
}

/*
 * vCPU thread, machine lock held: the guest's driver cleared a device's
 * Bus Master Enable.  Linux does it at the end of the driver's remove,
 * after the netdev is unregistered, so net_failover already sends and
 * takes frames on the standby; the eject itself comes later (the rest of
 * the ACPI hot-plug, then the device's removal on this side: hundreds of
 * ms nested), and every frame meanwhile went to the primary's port.  The
 * announce goes now when the device is a primary being unplugged.
 */
static void failover_master_off(void *opaque, PciDevice *dev)
{
    Machine *m = opaque;
    MasterOff *mo;

    if (!m->failover || !machine_failover_unplug_pending(m)) {
        return;
    }
    mo = g_new0(MasterOff, 1);
    mo->m = m;
    mo->dev = dev;
    g_idle_add(master_off_idle, mo);
}

bool machine_failover_ejected(Machine *m, PciDevice *dev)
{
    FailoverState *fs = m->failover;
    FailoverPrimary *fp = primary_of(m, dev);

    if (!fp) {
        return false;
    }
    if (fp->state == PRIMARY_UNPLUGGING) {
        __atomic_sub_fetch(&fs->pending, 1, __ATOMIC_SEQ_CST);
        primary_gone_announce(m, fp);
    }
    fp->dev = NULL;
    fp->state = PRIMARY_UNPLUGGED;
    if (!fs->migrating) {
        /* device_del, or an eject that came after a cancel: it comes back */
        g_idle_add(replug_idle, m);
    }
    return true;
}

unsigned machine_failover_unplug_all(Machine *m)
{
    FailoverState *fs = m->failover;
    unsigned asked = 0;

    if (!fs) {
        return 0;
    }
    fs->migrating = true;
    for (guint i = 0; i < fs->primaries->len; i++) {
        FailoverPrimary *fp = g_ptr_array_index(fs->primaries, i);

        if (fp->state != PRIMARY_PLUGGED) {
            continue;
        }
        fp->state = PRIMARY_UNPLUGGING;
        fp->announced = false;
        __atomic_add_fetch(&fs->pending, 1, __ATOMIC_SEQ_CST);
        machine_lock(m);
        pc_board_unplug_request(m, PCI_DEVFN_SLOT(fp->dev->devfn));
        machine_unlock(m);
        failover_event(m, MACHINE_EVENT_UNPLUG_PRIMARY, fp->id);
        asked++;
    }
    return asked;
}

unsigned machine_failover_unplug_pending(Machine *m)
{
    return m->failover ? __atomic_load_n(&m->failover->pending, __ATOMIC_SEQ_CST) : 0;
}

bool machine_failover_releasing(Machine *m)
{
    return m->failover && m->vfio && vfio_context_closing(m->vfio) > 0;
}

void machine_failover_replug_all(Machine *m)
{
    FailoverState *fs = m->failover;

    if (!fs) {
        return;
    }
    fs->migrating = false;
    for (guint i = 0; i < fs->primaries->len; i++) {
        FailoverPrimary *fp = g_ptr_array_index(fs->primaries, i);
        GError *err = NULL;

        if (fp->state == PRIMARY_UNPLUGGING) {
            /* not ejected yet: the request is withdrawn, the device stays */
            machine_lock(m);
            pc_board_unplug_withdraw(m, PCI_DEVFN_SLOT(fp->dev->devfn));
            machine_unlock(m);
            fp->state = PRIMARY_PLUGGED;
            __atomic_sub_fetch(&fs->pending, 1, __ATOMIC_SEQ_CST);
        } else if (fp->state == PRIMARY_UNPLUGGED && !primary_plug(m, fp, &err)) {
            error_report_err(err, "failover: cannot plug the primary device back");
        }
    }
}

/* Main loop, once the incoming guest runs: the loaded standbys' primaries. */
static gboolean loaded_plug_idle(gpointer opaque)
{
    Negotiated *n = opaque;

    if (n->m->failover) {
        primaries_plug(n->m, n->standby_id);
    }
    g_free(n->standby_id);
    g_free(n->name);
    g_free(n);
    return G_SOURCE_REMOVE;
}

/*
 * The event now, before RESUME, as QEMU; the plug from the main loop just
 * after the guest runs (QEMU plugs while loading): creating a vfio-pci pins
 * all of guest RAM for DMA, seconds in a nested rig, and the guest stood
 * stopped for all of it.  It runs on its standby meanwhile, as it did
 * through the pre-copy.
 */
void machine_failover_loaded(Machine *m)
{
    FailoverState *fs = m->failover;
    GHashTable *done = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; fs && i < fs->primaries->len; i++) {
        FailoverPrimary *fp = g_ptr_array_index(fs->primaries, i);
        VirtioNet *standby = standby_find(m, fp->standby_id);
        Negotiated *n;

        if (fp->state == PRIMARY_HIDDEN && standby &&
            virtio_net_standby_negotiated(standby) &&
            !g_hash_table_contains(done, fp->standby_id)) {
            g_hash_table_add(done, fp->standby_id);
            failover_event(m, MACHINE_EVENT_FAILOVER_NEGOTIATED,
                           virtio_net_name(standby));
            n = g_new0(Negotiated, 1);
            n->m = m;
            n->standby_id = g_strdup(fp->standby_id);
            g_idle_add(loaded_plug_idle, n);
        }
    }
    g_hash_table_destroy(done);
}
