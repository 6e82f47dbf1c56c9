/*
 * virtio-net (virtio 1.x, 5.1) on a netdev (net/net.h): -device
 * virtio-net-pci and its alias virtio-net.  The device gets what it needs
 * at creation: the PCI bus (guest memory, device-state list), the netdev,
 * and guest RAM's ranges for vhost-net's memory table.
 *
 * Locking: the calls below run on the main thread with the machine lock
 * held (monitor commands, set-up).  The data path runs on the device's
 * I/O thread (include/hw/virtio.h).
 */
#ifndef HW_VIRTIO_NET_H
#define HW_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "net/net.h"

typedef struct PciBus PciBus;
typedef struct PciDevice PciDevice;
typedef struct VirtioNet VirtioNet;

#define VIRTIO_NET_MAC_TABLE_ENTRIES 64 /* QEMU's MAC_TABLE_ENTRIES */
#define VIRTIO_NET_RAM_RANGES        2  /* below and above 4 GiB */

typedef struct VirtioNetOptions {
    Netdev *netdev; /* NULL: no backend (frames are dropped) */
    const char *id; /* -device id= (qdev_id), or NULL */
    int devfn;      /* PCI_DEVFN_AUTO for the next free slot */
    bool has_mac;   /* else QEMU's default, 52:54:00:12:34:56 + n */
    uint8_t mac[6];
    bool failover;    /* offer VIRTIO_NET_F_STANDBY */
    bool mq;          /* offer VIRTIO_NET_F_MQ: a queue pair per netdev queue */
    unsigned vectors; /* MSI-X vectors; 0: QEMU's default, 2 * queues + 2 */
    /* guest RAM, for vhost-net's memory table (vhost=on only) */
    VhostMemRegion ram[VIRTIO_NET_RAM_RANGES];
    unsigned nr_ram;
} VirtioNetOptions;

/* Parse "52:54:00:12:34:56"; false for anything else. */
bool virtio_net_parse_mac(const char *text, uint8_t mac[6]);

/*
 * A virtio-net-pci NIC on bus.  The netdev is claimed (another device
 * already using it is an error); with vhost=on its rings go to vhost-net
 * once the driver is ready.
 */
PciDevice *virtio_net_pci_create(PciBus *bus, const VirtioNetOptions *opts,
                                 GError **errp);
/* The device's model, or NULL when pci is not a virtio-net. */
VirtioNet *virtio_net_from_pci(PciDevice *pci);

/* set_link: the link as the guest sees it (STATUS), and frames stop. */
void virtio_net_set_link(VirtioNet *n, bool up);
bool virtio_net_link_up(VirtioNet *n);
/*
 * set_link on the netdev's id also sets the backend's own link, which
 * only the netdev's id sets back (QEMU 7.2's net clients): while it is
 * down, no frame passes even with the NIC's link up.
 */
void virtio_net_set_backend_link(VirtioNet *n, bool up);
/*
 * announce-self and after migration: GUEST_ANNOUNCE when the driver
 * negotiated it, else a RARP frame from the VMM, as QEMU does.
 */
void virtio_net_announce(VirtioNet *n);

/*
 * announce-self: the RARP frame alone (QEMU sends it for every NIC and
 * then lets the device announce too: virtio_net_announce).
 */
void virtio_net_send_rarp(VirtioNet *n);
/* GUEST_ANNOUNCE alone, where negotiated (false: not negotiated). */
bool virtio_net_announce_guest(VirtioNet *n);

/* The NIC's net client name: its id, else QEMU's "virtio-net-pci.N". */
const char *virtio_net_name(VirtioNet *n);
const char *virtio_net_qdev_id(VirtioNet *n); /* NULL without id= */
Netdev *virtio_net_netdev(VirtioNet *n);      /* NULL without netdev= */
void virtio_net_mac(VirtioNet *n, uint8_t mac[6]);

/*
 * NIC_RX_FILTER_CHANGED: fn is called (from the device's I/O thread) when
 * the driver changes a NIC's receive filter, once, and again only after
 * virtio_net_rx_filter has been read for that NIC, as QEMU rates it.
 */
typedef void (*VirtioNetRxFilterFn)(void *opaque, VirtioNet *n);
void virtio_net_set_rx_filter_notifier(VirtioNetRxFilterFn fn, void *opaque);

/*
 * Failover: fn is called (from a vCPU thread) when a driver sets
 * FEATURES_OK with VIRTIO_NET_F_STANDBY on a NIC with failover=on.
 */
typedef void (*VirtioNetStandbyFn)(void *opaque, VirtioNet *n);
void virtio_net_set_standby_notifier(VirtioNetStandbyFn fn, void *opaque);
/* The driver negotiated STANDBY (FEATURES_OK set with it; after a load too). */
bool virtio_net_standby_negotiated(VirtioNet *n);

/* What query-rx-filter reports (and re-arms the notifier). */
typedef struct VirtioNetRxFilter {
    char *name; /* the qdev id, or the device's own name */
    uint8_t mac[6];
    bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
    bool uni_overflow, multi_overflow;
    unsigned nr_uni, nr_multi;
    uint8_t uni[VIRTIO_NET_MAC_TABLE_ENTRIES][6];
    uint8_t multi[VIRTIO_NET_MAC_TABLE_ENTRIES][6];
    bool vlan_filtering; /* CTRL_VLAN negotiated */
    unsigned nr_vlans;   /* the VLANs that pass, ascending */
    uint16_t vlans[4096];
} VirtioNetRxFilter;
/* Fill *out (free name with g_free). */
void virtio_net_rx_filter(VirtioNet *n, VirtioNetRxFilter *out);

#endif
