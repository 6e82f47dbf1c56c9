/*
 * virtio-net's state, shared with its unit test, which creates the model
 * without the PCI transport and drives its handlers directly.
 * Locking: see virtio-net.c.
 */
#ifndef HW_VIRTIO_VIRTIO_NET_INT_H
#define HW_VIRTIO_VIRTIO_NET_INT_H

#include <linux/virtio_net.h>

#include "hw/virtio-net.h"
#include "hw/virtio.h"

/*
 * Queue layout: receiveq1, transmitq1, ..., receiveqN, transmitqN, then
 * the control queue (5.1.2).  Without VIRTIO_NET_F_MQ negotiated the
 * control queue is number 2 whatever N is; the single-pair numbers below
 * are the ones a device without MQ uses.
 */
#define VNET_RX_QUEUE   0
#define VNET_TX_QUEUE   1
#define VNET_CTRL_QUEUE 2
#define VNET_NR_QUEUES  3
#define VNET_RXQ(pair)  (2 * (pair))
#define VNET_TXQ(pair)  (2 * (pair) + 1)
#define VNET_MAX_PAIRS  NET_TAP_MAX_QUEUES
#define VNET_QUEUE_SIZE 256
#define VNET_VLAN_WORDS (4096 / 32)
#define VNET_TX_BATCH   64 /* transmitted chains completed at once */

/* The receive filter: the control queue's RX, MAC and VLAN classes. */
typedef struct VirtioNetFilter {
    uint8_t promisc, allmulti, alluni, nomulti, nouni, nobcast;
    uint8_t uni_overflow, multi_overflow;
    uint32_t nr_uni, nr_multi; /* the table holds uni first, then multi */
    uint8_t macs[VIRTIO_NET_MAC_TABLE_ENTRIES][6];
    uint32_t vlans[VNET_VLAN_WORDS];
} VirtioNetFilter;

/* What watch_fds handed one of a pair's I/O threads, entry by entry. */
typedef enum VirtioNetWatchKind {
    VNET_WATCH_TAP,
    VNET_WATCH_CALL_RX,
    VNET_WATCH_CALL_TX,
    VNET_WATCH_LOG,
} VirtioNetWatchKind;

typedef struct VirtioNetWatch {
    VirtioNetWatchKind kind;
    unsigned pair;
} VirtioNetWatch;

/*
 * One queue pair: its tap queue (and vhost-net), and the VMM's data path
 * for it: the rx_* fields are I/O thread 2i's (receive, which for pair 0
 * also runs the control queue), the tx_* fields thread 2i + 1's
 * (transmit).  Pair i uses tap queue i.
 */
typedef struct VirtioNetPair {
    unsigned index;
    NetTap *tap;
    VhostNet *vhost;            /* vhost=on */
    uint8_t *rx_buf;            /* one frame from the tap, header first */
    ssize_t rx_len;             /* > 0: a frame waits for guest buffers */
    bool rx_wait_buffers;       /* the tap is not watched until a kick */
    bool tx_wait_writable;      /* the tap refused a frame: wait for POLLOUT */
    VirtQueueElement *rx_elems; /* scratch for one merged frame (kept allocated) */
    uint32_t *rx_lens;
    VirtQueueElement tx_elems[VNET_TX_BATCH]; /* popped, sent, to complete */
    uint32_t tx_lens[VNET_TX_BATCH];
    int call_fd[2];    /* vhost's interrupts: irqfds, or relayed by the I/O thread */
    int call_irqfd[2]; /* the transport's handle while call_fd is an irqfd, or -1 */
    bool vhost_on;     /* [vhost_lock] vhost-net has this pair's rings */
    bool log_active;   /* [vhost_lock] vhost-net logs this pair's writes */
    VirtioNetWatch watching[2][VIRTIO_MAX_WATCH_FDS]; /* watch_fds', receive/transmit */
    uint64_t rx_dropped, tx_dropped, rx_frames, tx_frames;
} VirtioNetPair;

/* The migration state of the model, parsed before it is applied. */
typedef struct VirtioNetSnapshot {
    uint8_t mac[6];
    uint16_t config_status;
    uint8_t link_down;
    uint64_t guest_offloads;
    VirtioNetFilter filter;
    uint16_t curr_pairs; /* version 2 on; 1 in version 1 streams */
} VirtioNetSnapshot;

struct VirtioNet {
    VirtioDevice vdev;  /* first: the core hands this back */
    Netdev *netdev;     /* NULL: no backend */
    NetTap *tap;        /* pair 0's, for the RARP and the offload probe */
    VhostNet *vhost;    /* pair 0's: non-NULL with vhost=on */
    unsigned max_pairs; /* the netdev's queues (max_virtqueue_pairs) */
    bool mq;            /* offer VIRTIO_NET_F_MQ (mq=on) */
    VirtioNetPair *pairs;
    char *qdev_id;
    bool failover;
    VhostMemRegion ram[VIRTIO_NET_RAM_RANGES];
    unsigned nr_ram;

    /*
     * [machine lock, or I/O thread 0 while it runs the control queue; the
     * other pairs' threads read them, and the control queue holds their
     * busy_locks (virtio_device_lock_others) while it changes them]
     */
    uint8_t mac[6];          /* the current address (CTRL_MAC_ADDR_SET) */
    bool link_down;          /* atomic */
    bool backend_down;       /* atomic: set_link off on the netdev's id */
    uint64_t guest_offloads; /* GUEST_* bits in force (CTRL_GUEST_OFFLOADS) */
    VirtioNetFilter filter;  /* [the same; main thread when paused] */
    bool rx_filter_changed;  /* atomic: for NIC_RX_FILTER_CHANGED */
    bool rx_notify_enabled;  /* atomic: the next change is announced */
    char *nic_name;          /* QEMU's name without an id: virtio-net-pci.N */

    /*
     * Queue pairs in use: 1 after reset, VQ_PAIRS_SET's count with MQ
     * [the same; main thread when paused].
     */
    unsigned curr_pairs;

    /* vhost-net [vhost_lock] */
    pthread_mutex_t vhost_lock;
    bool vhost_running; /* the pairs in use are vhost's; set with every busy_lock
                           held (or paused), read by the I/O threads */
    int log_fd;         /* vhost's "I logged a write" eventfd, shared by the pairs */
    bool dirty_logging; /* migration wants DMA logged */
    bool log_active;    /* vhost-net's log is on */

    /* migration */
    VirtioNetSnapshot loaded; /* what load_check accepted last */
    bool announce_pending;    /* after an incoming migration */
};

/*
 * The model without a transport, on guest memory mem (unit tests; the
 * transport's notify hooks stay NULL).  Frees with virtio_net_free.
 */
VirtioNet *virtio_net_new(const GuestMemory *mem, const VirtioNetOptions *opts,
                          GError **errp);
void virtio_net_free(VirtioNet *n);

/* A feature bit as a mask; the GUEST_* offloads CTRL_GUEST_OFFLOADS sets. */
#define VNET_F(bit) (1ULL << (bit))
#define VNET_GUEST_OFFLOADS                                                              \
    (VNET_F(VIRTIO_NET_F_GUEST_CSUM) | VNET_F(VIRTIO_NET_F_GUEST_TSO4) |                 \
     VNET_F(VIRTIO_NET_F_GUEST_TSO6) | VNET_F(VIRTIO_NET_F_GUEST_ECN) |                  \
     VNET_F(VIRTIO_NET_F_GUEST_UFO))

/* Did the driver negotiate feature bit? */
static inline bool virtio_net_has(VirtioNet *n, unsigned bit)
{
    return n->vdev.guest_features & VNET_F(bit);
}

/* The config's status field (LINK_UP, ANNOUNCE). */
uint16_t virtio_net_config_status(VirtioNet *n);
void virtio_net_set_config_status(VirtioNet *n, uint16_t status);
/* The driver changed the receive filter (NIC_RX_FILTER_CHANGED's rate). */
void virtio_net_rx_filter_changed(VirtioNet *n);
/* TUNSETOFFLOAD on every tap queue from the GUEST_* bits in force. */
bool virtio_net_apply_offloads(VirtioNet *n, uint64_t offloads);
/*
 * The driver uses pairs queue pairs from now on (VQ_PAIRS_SET, reset,
 * migration); on the I/O thread or with the device paused or drained.
 */
void virtio_net_use_pairs(VirtioNet *n, unsigned pairs);
/* Run the control queue's commands (virtio-net-ctrl.c); I/O thread. */
void virtio_net_control(VirtioNet *n, VirtQueue *vq);

/*
 * vhost-net (virtio-net-vhost.c), with vhost_lock held: start hands the
 * pairs in use to their vhost-net instances, stop takes every pair back;
 * log_sync passes vhost-net's logged writes to migration; call relays a
 * ring's interrupt (on the I/O thread); dirty_log is the core's hook.
 */
void virtio_net_vhost_start(VirtioNet *n);
void virtio_net_vhost_stop(VirtioNet *n);
void virtio_net_vhost_log_sync(VirtioNet *n);
void virtio_net_vhost_call(VirtioNet *n, VirtioNetPair *p, unsigned ring);
void virtio_net_vhost_dirty_log(VirtioDevice *vdev, bool on);

/* Is a frame (Ethernet header first) for this NIC under its rx filter? */
bool virtio_net_filter_accepts(VirtioNet *n, const uint8_t *frame, size_t len);

#endif
