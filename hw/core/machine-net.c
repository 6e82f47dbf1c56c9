/*
 * The machine's NICs and netdevs for the monitor (hw/machine-net.h).
 * Main thread only; device state is touched under the machine lock.
 */
#include <string.h>

#include "hw/machine-net.h"
#include "hw/pci.h"
#include "net/net.h"
#include "util/error.h"

static void collect_nic(PciDevice *dev, void *opaque)
{
    VirtioNet *n = virtio_net_from_pci(dev);

    if (n) {
        g_ptr_array_add(opaque, n);
    }
}

GPtrArray *machine_nics(Machine *m)
{
    GPtrArray *list = g_ptr_array_new();

    if (m->pci) {
        pci_foreach_device(m->pci, collect_nic, list);
    }
    return list;
}

static VirtioNet *find_nic(Machine *m, const char *name)
{
    GPtrArray *nics = machine_nics(m);
    VirtioNet *found = NULL;

    for (guint i = 0; i < nics->len && !found; i++) {
        if (strcmp(virtio_net_name(nics->pdata[i]), name) == 0) {
            found = nics->pdata[i];
        }
    }
    g_ptr_array_unref(nics);
    return found;
}

/* The NIC whose netdev is nd, or NULL. */
static VirtioNet *nic_of_netdev(Machine *m, Netdev *nd)
{
    GPtrArray *nics = machine_nics(m);
    VirtioNet *found = NULL;

    for (guint i = 0; i < nics->len && !found; i++) {
        if (virtio_net_netdev(nics->pdata[i]) == nd) {
            found = nics->pdata[i];
        }
    }
    g_ptr_array_unref(nics);
    return found;
}

static Netdev *find_netdev(Machine *m, const char *id)
{
    return m->netdevs ? netdev_find(m->netdevs, id) : NULL;
}

bool machine_set_link(Machine *m, const char *name, bool up, GError **errp)
{
    VirtioNet *n = find_nic(m, name);
    Netdev *nd = n ? NULL : find_netdev(m, name);

    if (!n && !nd) {
        error_set_class(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found",
                        name);
        return false;
    }
    if (nd) {
        n = nic_of_netdev(m, nd); /* a lone netdev: nothing to tell */
    }
    if (n) {
        machine_lock(m);
        if (nd) {
            virtio_net_set_backend_link(n, up);
        }
        virtio_net_set_link(n, up);
        machine_unlock(m);
    }
    return true;
}

GArray *machine_query_rx_filter(Machine *m, const char *name, GError **errp)
{
    GArray *out = g_array_new(FALSE, TRUE, sizeof(VirtioNetRxFilter));
    GPtrArray *nics;

    if (name && !find_nic(m, name)) {
        if (find_netdev(m, name)) {
            error_setg(errp, "net client(%s) isn't a NIC", name);
        } else {
            error_setg(errp, "invalid net client name: %s", name);
        }
        g_array_unref(out);
        return NULL;
    }
    nics = machine_nics(m);
    machine_lock(m);
    for (guint i = 0; i < nics->len; i++) {
        VirtioNet *n = nics->pdata[i];
        VirtioNetRxFilter *f;

        if (name && strcmp(virtio_net_name(n), name) != 0) {
            continue;
        }
        g_array_set_size(out, out->len + 1);
        f = &g_array_index(out, VirtioNetRxFilter, out->len - 1);
        virtio_net_rx_filter(n, f);
    }
    machine_unlock(m);
    g_ptr_array_unref(nics);
    return out;
}

void machine_rx_filters_free(GArray *filters)
{
    for (guint i = 0; filters && i < filters->len; i++) {
        g_free(g_array_index(filters, VirtioNetRxFilter, i).name);
    }
    if (filters) {
        g_array_unref(filters);
    }
}

char *machine_nic_backend_path(VirtioNet *n)
{
    const char *id = virtio_net_qdev_id(n);
    const char *name = virtio_net_name(n);

    if (id) {
        return g_strdup_printf("/machine/peripheral/%s/virtio-backend", id);
    }
    /* "virtio-net-pci.N": the NIC's number stands for QEMU's anon index */
    return g_strdup_printf("/machine/peripheral-anon/device[%s]/virtio-backend",
                           strrchr(name, '.') + 1);
}

/* ---- announce-self: QEMU's announce timer ---- */

typedef struct AnnounceTimer {
    Machine *m;
    MachineAnnounceParams p;
    char **interfaces; /* NULL: every NIC */
    int64_t round;     /* rounds left, counting the one about to go */
    guint source;
} AnnounceTimer;

static GHashTable *announce_timers; /* id ("" without one) -> AnnounceTimer */

static bool announce_skips(AnnounceTimer *t, VirtioNet *n)
{
    return t->interfaces && t->interfaces[0] &&
           !g_strv_contains((const char *const *)t->interfaces, virtio_net_name(n));
}

static void announce_once(AnnounceTimer *t)
{
    Machine *m = t->m;
    GPtrArray *nics = machine_nics(m);

    machine_lock(m);
    for (guint i = 0; i < nics->len; i++) {
        if (announce_skips(t, nics->pdata[i])) {
            continue;
        }
        virtio_net_send_rarp(nics->pdata[i]);
        virtio_net_announce_guest(nics->pdata[i]);
    }
    machine_unlock(m);
    g_ptr_array_unref(nics);
}

static gboolean announce_tick(gpointer opaque);

/* After a round: the next one, initial + step * rounds done so far, capped. */
static void announce_step(AnnounceTimer *t)
{
    int64_t done = t->p.rounds - t->round - 1;
    int64_t delay = t->p.initial + done * t->p.step;

    delay = MIN(delay, t->p.max);
    t->source = g_timeout_add((guint)MAX(delay, 0), announce_tick, t);
}

static gboolean announce_tick(gpointer opaque)
{
    AnnounceTimer *t = opaque;

    t->source = 0;
    announce_once(t);
    if (--t->round > 0) {
        announce_step(t);
    }
    return G_SOURCE_REMOVE;
}

void machine_announce_self(Machine *m, const MachineAnnounceParams *p)
{
    const char *id = p->id ? p->id : "";
    AnnounceTimer *t;

    if (!announce_timers) {
        announce_timers = g_hash_table_new(g_str_hash, g_str_equal);
    }
    t = g_hash_table_lookup(announce_timers, id);
    if (!t) {
        t = g_new0(AnnounceTimer, 1);
        g_hash_table_insert(announce_timers, g_strdup(id), t);
    }
    if (t->source) {
        g_source_remove(t->source);
        t->source = 0;
    }
    g_strfreev(t->interfaces);
    t->m = m;
    t->p = *p;
    t->p.id = NULL;
    t->p.interfaces = NULL;
    t->interfaces = g_strdupv((char **)p->interfaces);
    t->round = p->rounds;
    if (t->round <= 0) {
        return;
    }
    announce_once(t);
    if (--t->round > 0) {
        announce_step(t);
    }
}

/* ---- netdev_add, netdev_del ---- */

bool machine_netdev_add(Machine *m, const char *opts, GError **errp)
{
    NetdevConfig cfg;
    Netdev *nd;

    if (!netdev_parse(opts, &cfg, errp)) {
        return false;
    }
    if (!m->netdevs) {
        m->netdevs = netdev_set_new();
    }
    nd = netdev_open(m->netdevs, &cfg, errp);
    if (nd) {
        cfg.fd = cfg.vhostfd = -1; /* the netdev owns them now */
    }
    netdev_config_clear(&cfg);
    return nd != NULL;
}

bool machine_netdev_del(Machine *m, const char *id, GError **errp)
{
    Netdev *nd = find_netdev(m, id);
    VirtioNet *n;

    if (!nd) {
        error_set_class(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device '%s' not found", id);
        return false;
    }
    n = nic_of_netdev(m, nd);
    if (n) {
        /* QEMU keeps a NIC's backend until the NIC goes, its link down */
        machine_lock(m);
        virtio_net_set_backend_link(n, false);
        virtio_net_set_link(n, false);
        machine_unlock(m);
        return true;
    }
    netdev_close(m->netdevs, nd);
    return true;
}

/* ---- info network ---- */

static void add_client(GArray *list, char *name, const char *type, char *info, bool peer)
{
    MachineNetClientInfo c = { name, type, info, peer };

    g_array_append_val(list, c);
}

/* A lone netdev has a line per queue, as QEMU's net clients (all index=0). */
static void add_netdev(GArray *list, Netdev *nd, bool peer)
{
    for (unsigned q = 0; q < (peer ? 1 : netdev_queues(nd)); q++) {
        add_client(list, g_strdup(netdev_id(nd)), "tap", g_strdup(netdev_info(nd)), peer);
    }
}

GArray *machine_query_network(Machine *m)
{
    GArray *list = g_array_new(FALSE, TRUE, sizeof(MachineNetClientInfo));
    GPtrArray *nics = machine_nics(m);
    GPtrArray *netdevs = m->netdevs ? netdev_list(m->netdevs) : NULL;

    for (guint i = 0; i < nics->len; i++) {
        VirtioNet *n = nics->pdata[i];
        uint8_t mac[6];

        virtio_net_mac(n, mac);
        add_client(
            list, g_strdup(virtio_net_name(n)), "nic",
            g_strdup_printf("model=virtio-net-pci,macaddr=%02x:%02x:%02x:%02x:%02x:%02x",
                            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]),
            false);
        if (virtio_net_netdev(n)) {
            add_netdev(list, virtio_net_netdev(n), true);
        }
    }
    for (guint i = 0; netdevs && i < netdevs->len; i++) {
        if (!nic_of_netdev(m, netdevs->pdata[i])) {
            add_netdev(list, netdevs->pdata[i], false);
        }
    }
    g_ptr_array_unref(nics);
    return list;
}

void machine_network_info_free(GArray *list)
{
    for (guint i = 0; i < list->len; i++) {
        MachineNetClientInfo *c = &g_array_index(list, MachineNetClientInfo, i);
        g_free(c->name);
        g_free(c->info);
    }
    g_array_unref(list);
}
