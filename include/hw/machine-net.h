/*
 * The machine's NICs and network backends as the monitor sees them:
 * set_link, query-rx-filter, announce-self, netdev_add/netdev_del and
 * HMP's info network, as typed calls (QEMU 7.2's names and errors).
 * Main thread only, without the machine lock (these take it).
 */
#ifndef HW_MACHINE_NET_H
#define HW_MACHINE_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "hw/machine.h"
#include "hw/virtio-net.h"

/* Every virtio-net NIC on the PCI bus, in slot order (g_ptr_array_unref). */
GPtrArray *machine_nics(Machine *m);

/*
 * set_link: name is a NIC's name (its id, or "virtio-net-pci.N") or a
 * netdev's id (then the NIC using it, and the backend's own link, which
 * only its id turns back on, as in QEMU).  The guest sees STATUS change;
 * frames stop while either link is down.  DeviceNotFound "Device 'NAME' not found".
 */
bool machine_set_link(Machine *m, const char *name, bool up, GError **errp);

/*
 * query-rx-filter: every NIC's filter (name NULL) or the one named; QEMU's
 * errors for a netdev's id ("net client(ID) isn't a NIC") and an unknown
 * name ("invalid net client name: NAME").  Re-arms NIC_RX_FILTER_CHANGED
 * for the NICs reported.  A GArray of VirtioNetRxFilter: free with
 * machine_rx_filters_free.
 */
GArray *machine_query_rx_filter(Machine *m, const char *name, GError **errp);
void machine_rx_filters_free(GArray *filters);

/*
 * QOM path of a NIC's virtio backend, as NIC_RX_FILTER_CHANGED names it:
 * "/machine/peripheral/ID/virtio-backend"; without an id, the
 * peripheral-anon path with the NIC's number.
 */
char *machine_nic_backend_path(VirtioNet *n);

/*
 * announce-self: a RARP frame from every NIC (and GUEST_ANNOUNCE where the
 * driver negotiated it) now, then rounds - 1 more from the main loop after
 * initial, initial + step, ... ms (at most max), as QEMU's announce timer.
 * Each id (NULL: the unnamed one) has its own rounds, as QEMU's named
 * timers: a new call for an id replaces the rounds still pending for it.
 * interfaces (NULL-ended NIC names; NULL or empty: every NIC) limits it.
 */
typedef struct MachineAnnounceParams {
    int64_t initial, max, rounds, step;
    const char *const *interfaces;
    const char *id;
} MachineAnnounceParams;
void machine_announce_self(Machine *m, const MachineAnnounceParams *p);

/*
 * netdev_add: opts as -netdev takes it ("tap,id=ID,..."), QEMU's errors
 * ("Duplicate ID 'ID' for netdev", other types refused by name).
 * netdev_del: DeviceNotFound "Device 'ID' not found"; a netdev a NIC uses
 * stays until the NIC goes, with the NIC's link down, as in QEMU 7.2.
 */
bool machine_netdev_add(Machine *m, const char *opts, GError **errp);
bool machine_netdev_del(Machine *m, const char *id, GError **errp);

/* One net client line of HMP's info network. */
typedef struct MachineNetClientInfo {
    char *name;
    const char *type; /* "nic" or "tap" */
    char *info;       /* "model=virtio-net-pci,macaddr=..." or the tap's */
    bool peer;        /* a NIC's netdev, printed under it */
} MachineNetClientInfo;
/* In QEMU's order: each NIC then its netdev, then lone netdevs. */
GArray *machine_query_network(Machine *m);
void machine_network_info_free(GArray *list);

#endif
