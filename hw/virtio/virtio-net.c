/*
 * virtio-net (virtio 1.x, 5.1) on a tap: a queue pair per tap queue
 * (VIRTIO_NET_F_MQ with mq=on; the driver picks how many it uses with
 * VQ_PAIRS_SET, and the tap queues of the others are detached) and a
 * control queue.  Pair i moves frames between its rings and tap queue i
 * on two I/O threads of the device (the core's): receive on thread 2i,
 * transmit on thread 2i + 1, so the pairs, and each pair's two
 * directions, run in parallel; thread 0 also runs the control queue.
 * With vhost=off the VMM moves the frames itself: each thread watches its
 * queue's kick and its tap queue (readable; writable again after the tap
 * refused a frame),
 * received frames go through a buffer of the device's own (the tap drops
 * a frame that does not fit the buffers it is given) into the guest's
 * receive buffers, merged when MRG_RXBUF is negotiated, and every
 * transmitted chain goes to the tap as it is (VERSION_1 headers and the
 * tap's are the same 12 bytes).  With vhost=on each pair's rings go to
 * its own vhost-net when the driver is ready (virtio-net-vhost.c); the
 * control queue stays here.
 *
 * A malformed chain (no buffer of the right kind, a buffer outside RAM, a
 * receive buffer shorter than the header) puts the device in NEEDS_RESET
 * as the spec says; a frame the guest's buffers cannot hold without
 * MRG_RXBUF is dropped, as QEMU does.
 *
 * Locking: a queue's data path belongs to its I/O thread while the driver
 * runs the device.  What the pairs share (the receive filter, the MAC,
 * the pairs in use, vhost_running) changes only with every I/O thread
 * between queues: the control queue, on thread 0, takes the other
 * threads' busy_locks around a command (virtio_device_lock_others);
 * status and link changes (offloads, vhost-net) come from vCPU or main
 * threads and take them all (virtio_device_lock); the main thread touches
 * the rest only with the device paused (migration) or reset (the core
 * takes every busy_lock and drains first).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hw/pci.h"
#include "hw/state-blob.h"
#include "hw/virtio.h"
#include "virtio-net-int.h"
#include "util/error.h"

#define VNET_STATE_MAGIC           0x564e4554u /* "VNET" */
#define VNET_STATE_VERSION         2           /* 2: the queue pairs in use */
#define VNET_CONFIG_LEN            10          /* mac, status, max_virtqueue_pairs */
#define VNET_BUDGET                256         /* frames per wake-up each way */
#define VNET_MIN_FRAME             14          /* an Ethernet header */
#define VNET_HDR_NUM_BUFFERS       10          /* offset of num_buffers */
#define PCI_CLASS_NETWORK_ETHERNET 0x020000
#define VNET_MAX_VECTORS           2048 /* MSI-X's table size limit */

/* What vhost-net must offer for us to offer it (the rest we do ourselves). */
#define VNET_VHOST_FEATURES                                                              \
    (VNET_F(VIRTIO_RING_F_INDIRECT_DESC) | VNET_F(VIRTIO_RING_F_EVENT_IDX) |             \
     VNET_F(VIRTIO_NET_F_MRG_RXBUF))

static unsigned vnet_instances;               /* for the default MACs */
static unsigned vnet_nics;                    /* for QEMU's "virtio-net-pci.N" names */
static VirtioNetRxFilterFn vnet_rx_filter_fn; /* NIC_RX_FILTER_CHANGED */
static void *vnet_rx_filter_opaque;
static VirtioNetStandbyFn vnet_standby_fn; /* failover (hw/core/failover.c) */
static void *vnet_standby_opaque;

bool virtio_net_parse_mac(const char *text, uint8_t mac[6])
{
    unsigned v[6];
    char end;

    if (!text || strlen(text) != 17 ||
        sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &end) != 6) {
        return false;
    }
    for (unsigned i = 0; i < 6; i++) {
        if (!g_ascii_isxdigit(text[3 * i]) || !g_ascii_isxdigit(text[3 * i + 1]) ||
            (i < 5 && text[3 * i + 2] != ':')) {
            return false;
        }
        mac[i] = v[i];
    }
    return true;
}

/* ---- the device config and the link ---- */

uint16_t virtio_net_config_status(VirtioNet *n)
{
    return pci_get_word(n->vdev.config + 6);
}

void virtio_net_set_config_status(VirtioNet *n, uint16_t status)
{
    pci_set_word(n->vdev.config + 6, status);
}

static void vnet_config_changed(VirtioNet *n)
{
    VirtioDevice *vdev = &n->vdev;

    vdev->config_generation++;
    if ((virtio_get_status(vdev) & VIRTIO_CONFIG_S_DRIVER_OK) && vdev->transport) {
        vdev->transport->notify_config(vdev);
    }
}

static void vnet_link_vhost(VirtioNet *n);

void virtio_net_set_link(VirtioNet *n, bool up)
{
    uint16_t status = virtio_net_config_status(n);
    uint16_t want = up ? status | VIRTIO_NET_S_LINK_UP : status & ~VIRTIO_NET_S_LINK_UP;

    __atomic_store_n(&n->link_down, !up, __ATOMIC_RELEASE);
    if (want != status) {
        virtio_net_set_config_status(n, want);
        if (n->vdev.host_features & VNET_F(VIRTIO_NET_F_STATUS)) {
            vnet_config_changed(n);
        }
    }
    vnet_link_vhost(n);
    virtio_device_wake(&n->vdev);
}

bool virtio_net_link_up(VirtioNet *n)
{
    return !__atomic_load_n(&n->link_down, __ATOMIC_ACQUIRE);
}

void virtio_net_set_backend_link(VirtioNet *n, bool up)
{
    __atomic_store_n(&n->backend_down, !up, __ATOMIC_RELEASE);
    vnet_link_vhost(n);
    virtio_device_wake(&n->vdev);
}

/* Frames move only while both the NIC's link and its backend's are up. */
static bool vnet_frames_pass(VirtioNet *n)
{
    return virtio_net_link_up(n) && !__atomic_load_n(&n->backend_down, __ATOMIC_ACQUIRE);
}

/* A RARP "reverse request" naming our MAC, padded to 60 bytes. */
static void vnet_send_rarp(VirtioNet *n)
{
    uint8_t hdr[NET_VNET_HDR_LEN] = { 0 }, f[60] = { 0 };
    struct iovec iov[2] = { { hdr, sizeof(hdr) }, { f, sizeof(f) } };

    if (!n->tap || n->vhost_running) {
        return;
    }
    memset(f, 0xff, 6);
    memcpy(f + 6, n->mac, 6);
    f[12] = 0x80, f[13] = 0x35; /* ETH_P_RARP */
    f[14] = 0, f[15] = 1;       /* Ethernet */
    f[16] = 0x08, f[17] = 0x00; /* IPv4 */
    f[18] = 6, f[19] = 4;
    f[20] = 0, f[21] = 3;      /* reverse request */
    memcpy(f + 22, n->mac, 6); /* sender: us, 0.0.0.0 */
    memcpy(f + 32, n->mac, 6); /* target: us, 0.0.0.0 */
    net_tap_send(n->tap, iov, 2);
}

void virtio_net_send_rarp(VirtioNet *n)
{
    vnet_send_rarp(n);
}

bool virtio_net_announce_guest(VirtioNet *n)
{
    if (virtio_net_has(n, VIRTIO_NET_F_GUEST_ANNOUNCE) &&
        virtio_net_has(n, VIRTIO_NET_F_CTRL_VQ) &&
        (virtio_get_status(&n->vdev) & VIRTIO_CONFIG_S_DRIVER_OK)) {
        virtio_net_set_config_status(n,
                                     virtio_net_config_status(n) | VIRTIO_NET_S_ANNOUNCE);
        vnet_config_changed(n);
        return true;
    }
    return false;
}

void virtio_net_set_standby_notifier(VirtioNetStandbyFn fn, void *opaque)
{
    vnet_standby_opaque = opaque;
    __atomic_store_n(&vnet_standby_fn, fn, __ATOMIC_RELEASE);
}

bool virtio_net_standby_negotiated(VirtioNet *n)
{
    return (virtio_get_status(&n->vdev) & VIRTIO_CONFIG_S_FEATURES_OK) &&
           virtio_net_has(n, VIRTIO_NET_F_STANDBY);
}

void virtio_net_announce(VirtioNet *n)
{
    if (!virtio_net_announce_guest(n)) {
        vnet_send_rarp(n);
    }
}

/* ---- the receive filter ---- */

void virtio_net_set_rx_filter_notifier(VirtioNetRxFilterFn fn, void *opaque)
{
    vnet_rx_filter_opaque = opaque;
    __atomic_store_n(&vnet_rx_filter_fn, fn, __ATOMIC_RELEASE);
}

/*
 * The driver changed the filter: tell the listener once, then not again
 * until query-rx-filter re-arms it (QEMU's rate for NIC_RX_FILTER_CHANGED).
 */
void virtio_net_rx_filter_changed(VirtioNet *n)
{
    VirtioNetRxFilterFn fn = __atomic_load_n(&vnet_rx_filter_fn, __ATOMIC_ACQUIRE);

    __atomic_store_n(&n->rx_filter_changed, true, __ATOMIC_RELEASE);
    if (fn && __atomic_exchange_n(&n->rx_notify_enabled, false, __ATOMIC_ACQ_REL)) {
        fn(vnet_rx_filter_opaque, n);
    }
}

static bool vlan_allowed(VirtioNet *n, uint16_t vid)
{
    return n->filter.vlans[vid / 32] & (1u << (vid % 32));
}

bool virtio_net_filter_accepts(VirtioNet *n, const uint8_t *frame, size_t len)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    VirtioNetFilter *f = &n->filter;

    if (len < VNET_MIN_FRAME) {
        return false;
    }
    if (f->promisc) {
        return true;
    }
    if (frame[12] == 0x81 && frame[13] == 0x00 && len >= 16 &&
        !vlan_allowed(n, ((frame[14] << 8) | frame[15]) & 0xfff)) {
        return false;
    }
    if (frame[0] & 1) {
        if (memcmp(frame, bcast, 6) == 0) {
            return !f->nobcast;
        }
        if (f->nomulti) {
            return false;
        }
        if (f->allmulti || f->multi_overflow) {
            return true;
        }
        for (unsigned i = f->nr_uni; i < f->nr_uni + f->nr_multi; i++) {
            if (memcmp(frame, f->macs[i], 6) == 0) {
                return true;
            }
        }
        return false;
    }
    if (f->nouni) {
        return false;
    }
    if (f->alluni || f->uni_overflow || memcmp(frame, n->mac, 6) == 0) {
        return true;
    }
    for (unsigned i = 0; i < f->nr_uni; i++) {
        if (memcmp(frame, f->macs[i], 6) == 0) {
            return true;
        }
    }
    return false;
}

/* Power-on filter: every VLAN passes unless the driver filters them. */
static void vnet_filter_reset(VirtioNet *n, bool vlan_filtering)
{
    memset(&n->filter, 0, sizeof(n->filter));
    memset(n->filter.vlans, vlan_filtering ? 0 : 0xff, sizeof(n->filter.vlans));
    n->filter.promisc = 1; /* as QEMU: until the driver says otherwise */
}

void virtio_net_rx_filter(VirtioNet *n, VirtioNetRxFilter *out)
{
    VirtioNetFilter copy;
    const VirtioNetFilter *f = &copy;

    virtio_device_lock(&n->vdev); /* the control queue is between commands */
    copy = n->filter;
    memset(out, 0, sizeof(*out));
    memcpy(out->mac, n->mac, 6);
    virtio_device_unlock(&n->vdev);
    out->name = g_strdup(virtio_net_name(n));
    out->promisc = f->promisc;
    out->allmulti = f->allmulti;
    out->alluni = f->alluni;
    out->nomulti = f->nomulti;
    out->nouni = f->nouni;
    out->nobcast = f->nobcast;
    out->uni_overflow = f->uni_overflow;
    out->multi_overflow = f->multi_overflow;
    out->nr_uni = f->nr_uni;
    out->nr_multi = f->nr_multi;
    memcpy(out->uni, f->macs, 6 * f->nr_uni);
    memcpy(out->multi, f->macs + f->nr_uni, 6 * f->nr_multi);
    out->vlan_filtering = virtio_net_has(n, VIRTIO_NET_F_CTRL_VLAN);
    for (unsigned vid = 0; vid < 4096; vid++) {
        if (f->vlans[vid / 32] & (1u << (vid % 32))) {
            out->vlans[out->nr_vlans++] = vid;
        }
    }
    __atomic_store_n(&n->rx_filter_changed, false, __ATOMIC_RELEASE);
    __atomic_store_n(&n->rx_notify_enabled, true, __ATOMIC_RELEASE);
}

const char *virtio_net_name(VirtioNet *n)
{
    return n->qdev_id ? n->qdev_id : n->nic_name;
}

const char *virtio_net_qdev_id(VirtioNet *n)
{
    return n->qdev_id;
}

Netdev *virtio_net_netdev(VirtioNet *n)
{
    return n->netdev;
}

void virtio_net_mac(VirtioNet *n, uint8_t mac[6])
{
    memcpy(mac, n->mac, 6);
}

/* ---- receive: tap -> guest ---- */

typedef enum RxResult {
    RX_DONE,       /* delivered, or dropped for good */
    RX_NO_BUFFERS, /* keep the frame until the driver adds buffers */
} RxResult;

/* The device needs a reset: give back what was popped, unwritten. */
static RxResult rx_fail(VirtioNet *n, VirtioNetPair *p, VirtQueue *vq, unsigned popped,
                        const char *why)
{
    virtio_error(&n->vdev, vq, "receive queue: %s", why);
    for (unsigned i = 0; i < popped; i++) {
        p->rx_lens[i] = 0;
    }
    virtio_queue_complete_many(vq, p->rx_elems, p->rx_lens, popped);
    p->rx_dropped++;
    return RX_DONE;
}

/*
 * One frame (header included) into the guest's buffers: one buffer that
 * holds it all, or with MRG_RXBUF as many as it takes, published together
 * with num_buffers in the first.
 */
static RxResult rx_deliver(VirtioNet *n, VirtioNetPair *p, const uint8_t *buf, size_t len)
{
    VirtQueue *vq = &n->vdev.vqs[VNET_RXQ(p->index)];
    bool mergeable = virtio_net_has(n, VIRTIO_NET_F_MRG_RXBUF);
    unsigned count = 0;
    size_t off = 0;
    uint16_t nb;

    while (off < len) {
        VirtQueueElement *e = &p->rx_elems[count];
        size_t take;

        if (count == vq->size) {
            return rx_fail(n, p, vq, count,
                           "a frame needs more buffers than the ring has");
        }
        if (!virtio_queue_pop(vq, e)) { /* e keeps its arrays for the next */
            if (virtio_get_status(&n->vdev) & VIRTIO_CONFIG_S_NEEDS_RESET) {
                return rx_fail(n, p, vq, count, "malformed ring");
            }
            virtio_queue_unpop(vq, count);
            return RX_NO_BUFFERS;
        }
        count++;
        if (e->out_num || !e->in_num) {
            return rx_fail(n, p, vq, count, "a buffer the device may not write");
        }
        if (e->bad_address) {
            return rx_fail(n, p, vq, count, "a buffer outside guest RAM");
        }
        if (count == 1 && e->in_len < NET_VNET_HDR_LEN) {
            return rx_fail(n, p, vq, count,
                           "a buffer shorter than the virtio-net header");
        }
        if (!mergeable && e->in_len < len) {
            /* QEMU's way: the frame is dropped, the buffer stays the driver's */
            virtio_queue_unpop(vq, count);
            p->rx_dropped++;
            return RX_DONE;
        }
        take = MIN(len - off, e->in_len);
        iov_from_buf(e->iov, e->in_num, 0, buf + off, take);
        p->rx_lens[count - 1] = take;
        off += take;
    }
    nb = GUINT16_TO_LE(count);
    iov_from_buf(p->rx_elems[0].iov, p->rx_elems[0].in_num, VNET_HDR_NUM_BUFFERS, &nb,
                 sizeof(nb));
    virtio_queue_complete_many(vq, p->rx_elems, p->rx_lens, count);
    p->rx_frames++;
    return RX_DONE;
}

static bool rx_queue_ready(VirtioNet *n, VirtioNetPair *p)
{
    VirtQueue *vq = &n->vdev.vqs[VNET_RXQ(p->index)];

    return vq->enabled && !(virtio_get_status(&n->vdev) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* Frames from the tap until it is empty, the budget is spent or buffers run out. */
static void vnet_receive(VirtioNet *n, VirtioNetPair *p)
{
    struct iovec iov = { p->rx_buf, NET_TAP_MAX_FRAME };

    if (!p->tap || n->vhost_running) {
        return;
    }
    for (unsigned budget = VNET_BUDGET; budget; budget--) {
        if (p->rx_len <= 0) {
            ssize_t r = net_tap_receive(p->tap, &iov, 1);
            if (r == -EAGAIN) {
                return;
            }
            if (r < 0) {
                p->rx_dropped++;
                continue;
            }
            p->rx_len = r;
        }
        if (!vnet_frames_pass(n) || !rx_queue_ready(n, p) ||
            p->rx_len < NET_VNET_HDR_LEN + VNET_MIN_FRAME ||
            !virtio_net_filter_accepts(n, p->rx_buf + NET_VNET_HDR_LEN,
                                       p->rx_len - NET_VNET_HDR_LEN)) {
            p->rx_dropped++;
            p->rx_len = 0;
            continue;
        }
        if (rx_deliver(n, p, p->rx_buf, p->rx_len) == RX_NO_BUFFERS) {
            p->rx_wait_buffers = true;
            return;
        }
        p->rx_len = 0;
    }
}

/* ---- transmit: guest -> tap ---- */

/*
 * Transmit chains to the tap in batches of up to VNET_TX_BATCH: popped,
 * sent with one net_tap_send_batch (one system call where io_uring is
 * there), completed together (one used-index update and at most one
 * interrupt).  A tap that refuses a frame gets it again, and the ones
 * after it, once it is writable.
 */
static void vnet_transmit(VirtioNet *n, VirtioNetPair *p)
{
    VirtQueue *vq = &n->vdev.vqs[VNET_TXQ(p->index)];
    NetTapFrame frames[VNET_TX_BATCH];
    ssize_t results[VNET_TX_BATCH];
    int frame_of[VNET_TX_BATCH]; /* chain i went out as frames[frame_of[i]], or -1 */
    unsigned total = 0;

    while (total < VNET_BUDGET) {
        unsigned popped = 0, nframes = 0, done;
        bool bad = false;

        while (popped < VNET_TX_BATCH && total + popped < VNET_BUDGET) {
            VirtQueueElement *e = &p->tx_elems[popped];
            if (!virtio_queue_pop(vq, e)) {
                break;
            }
            p->tx_lens[popped] = 0;
            frame_of[popped++] = -1;
            if (e->bad_address || e->out_len < NET_VNET_HDR_LEN) {
                virtio_error(&n->vdev, vq, "transmit queue: %s",
                             e->bad_address
                                 ? "a buffer outside guest RAM"
                                 : "a chain shorter than the virtio-net header");
                bad = true;
                break;
            }
            /* link down, no tap or oversized: dropped */
            if (p->tap && vnet_frames_pass(n) && e->out_len <= NET_TAP_MAX_FRAME) {
                frames[nframes] = (NetTapFrame){ e->iov, e->out_num };
                frame_of[popped - 1] = nframes++;
            }
        }
        if (!popped) {
            return;
        }
        if (nframes) {
            net_tap_send_batch(p->tap, frames, nframes, results);
        }
        for (done = 0; done < popped; done++) {
            int f = frame_of[done];
            if (f >= 0 && results[f] == -EAGAIN) {
                p->tx_wait_writable = true; /* this chain and the rest wait */
                break;
            }
            if (f >= 0 && results[f] > 0) {
                p->tx_frames++;
            } else if (!(bad && done == popped - 1)) {
                p->tx_dropped++;
            }
        }
        if (done < popped) {
            virtio_queue_unpop(vq, popped - done);
        }
        if (done) {
            virtio_queue_complete_many(vq, p->tx_elems, p->tx_lens, done);
        }
        total += done;
        if (bad || p->tx_wait_writable) {
            return;
        }
    }
    virtio_queue_kick(vq); /* more later: let the rest have a turn */
}

/* TUNSETOFFLOAD from the GUEST_* bits in force, on every tap queue. */
bool virtio_net_apply_offloads(VirtioNet *n, uint64_t offloads)
{
    GError *err = NULL;
    bool csum = offloads & VNET_F(VIRTIO_NET_F_GUEST_CSUM);

    if (!n->tap || !net_tap_has_vnet_hdr(n->tap)) {
        return offloads == 0;
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (!net_tap_set_offload(n->pairs[i].tap, csum,
                                 csum && (offloads & VNET_F(VIRTIO_NET_F_GUEST_TSO4)),
                                 csum && (offloads & VNET_F(VIRTIO_NET_F_GUEST_TSO6)),
                                 csum && (offloads & VNET_F(VIRTIO_NET_F_GUEST_ECN)),
                                 csum && (offloads & VNET_F(VIRTIO_NET_F_GUEST_UFO)),
                                 &err)) {
            warn_report("%s: %s", n->vdev.name, err->message);
            g_error_free(err);
            return false;
        }
    }
    n->guest_offloads = offloads;
    return true;
}

/* ---- queue pairs in use ---- */

/*
 * Attach the tap queues of the pairs in use and detach the others, so the
 * kernel steers no frame to a queue nobody reads (a tap with one queue has
 * nothing to detach).
 */
static void vnet_attach_taps(VirtioNet *n)
{
    GError *err = NULL;

    if (!n->netdev || netdev_queues(n->netdev) < 2) {
        return;
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (!net_tap_set_enabled(n->pairs[i].tap, i < n->curr_pairs, &err)) {
            warn_report("%s: %s", n->vdev.name, err->message);
            g_clear_error(&err);
        }
    }
}

/*
 * The driver uses pairs queue pairs from now on (VQ_PAIRS_SET, reset,
 * migration): vhost-net gets the new set, and a pair left out keeps no
 * half-received frame.  On the I/O thread (control queue) or with the
 * device paused or drained.
 */
void virtio_net_use_pairs(VirtioNet *n, unsigned pairs)
{
    bool restart;

    if (pairs == n->curr_pairs) {
        return;
    }
    pthread_mutex_lock(&n->vhost_lock);
    restart = n->vhost_running;
    virtio_net_vhost_stop(n);
    for (unsigned i = pairs; i < n->curr_pairs; i++) {
        n->pairs[i].rx_len = 0;
        n->pairs[i].rx_wait_buffers = n->pairs[i].tx_wait_writable = false;
    }
    n->curr_pairs = pairs;
    vnet_attach_taps(n);
    if (restart) {
        virtio_net_vhost_start(n);
    }
    pthread_mutex_unlock(&n->vhost_lock);
    virtio_device_wake(&n->vdev);
}

/* Where the control queue is: after the last pair with MQ, else number 2. */
static unsigned vnet_ctrl_queue(VirtioNet *n)
{
    return virtio_net_has(n, VIRTIO_NET_F_MQ) ? 2 * n->max_pairs : VNET_CTRL_QUEUE;
}

/* ---- the core's hooks ---- */

static void vnet_handle_queue(VirtioDevice *vdev, VirtQueue *vq)
{
    VirtioNet *n = (VirtioNet *)vdev;
    VirtioNetPair *p;

    if (vq->index == vnet_ctrl_queue(n)) {
        virtio_device_lock_others(vdev, 0); /* it changes what the pairs share */
        virtio_net_control(n, vq);
        virtio_device_unlock_others(vdev, 0);
        return;
    }
    if (vq->index >= 2 * n->curr_pairs || n->vhost_running) {
        return; /* a pair not in use, or vhost-net's */
    }
    p = &n->pairs[vq->index / 2];
    if (vq->index % 2 == 0) {
        p->rx_wait_buffers = false;
        vnet_receive(n, p);
    } else if (!p->tx_wait_writable) {
        vnet_transmit(n, p);
    }
}

/*
 * Queue q is I/O thread q's (receiveq of pair i on 2i, its transmitq on
 * 2i + 1); the control queue is thread 0's.
 */
static unsigned vnet_queue_thread(VirtioDevice *vdev, unsigned index)
{
    VirtioNet *n = (VirtioNet *)vdev;

    return index < 2 * n->max_pairs ? index : 0;
}

static void watch_add(VirtioNetWatch *w, struct pollfd *fds, unsigned *count,
                      unsigned max, int fd, short events, VirtioNetWatchKind kind,
                      unsigned pair)
{
    if (*count < max) {
        fds[*count] = (struct pollfd){ .fd = fd, .events = events };
        w[(*count)++] = (VirtioNetWatch){ kind, pair };
    }
}

/*
 * For I/O thread thread, if its pair is in use: the tap, or with
 * vhost-net its ring's interrupt unless KVM takes it (and on thread 0
 * vhost's log).
 */
static unsigned vnet_watch_fds(VirtioDevice *vdev, unsigned thread, struct pollfd *fds,
                               unsigned max)
{
    VirtioNet *n = (VirtioNet *)vdev;
    VirtioNetPair *p = &n->pairs[thread / 2];
    bool tx = thread % 2;
    VirtioNetWatch *w = p->watching[tx];
    bool in_use = p->index < n->curr_pairs;
    unsigned count = 0;

    max = MIN(max, G_N_ELEMENTS(p->watching[tx]));
    if (n->vhost_running) {
        if (in_use && p->call_irqfd[tx ? VHOST_NET_RING_TX : VHOST_NET_RING_RX] < 0) {
            watch_add(w, fds, &count, max,
                      p->call_fd[tx ? VHOST_NET_RING_TX : VHOST_NET_RING_RX], POLLIN,
                      tx ? VNET_WATCH_CALL_TX : VNET_WATCH_CALL_RX, p->index);
        }
        if (thread == 0) {
            watch_add(w, fds, &count, max, n->log_fd, POLLIN, VNET_WATCH_LOG, 0);
        }
        return count;
    }
    if (p->tap && in_use && (tx ? p->tx_wait_writable : !p->rx_wait_buffers)) {
        watch_add(w, fds, &count, max, net_tap_fd(p->tap), tx ? POLLOUT : POLLIN,
                  VNET_WATCH_TAP, p->index);
    }
    return count;
}

static void vnet_handle_fd(VirtioDevice *vdev, unsigned thread, unsigned index,
                           short revents)
{
    VirtioNet *n = (VirtioNet *)vdev;
    VirtioNetPair *p = &n->pairs[thread / 2];
    bool tx = thread % 2;

    switch (p->watching[tx][index].kind) {
    case VNET_WATCH_CALL_RX:
        virtio_net_vhost_call(n, p, VHOST_NET_RING_RX);
        break;
    case VNET_WATCH_CALL_TX:
        virtio_net_vhost_call(n, p, VHOST_NET_RING_TX);
        break;
    case VNET_WATCH_LOG: {
        uint64_t count;
        if (read(n->log_fd, &count, sizeof(count)) == sizeof(count)) {
            pthread_mutex_lock(&n->vhost_lock);
            virtio_net_vhost_log_sync(n);
            pthread_mutex_unlock(&n->vhost_lock);
        }
        break;
    }
    case VNET_WATCH_TAP:
        if (n->vhost_running || p->index >= n->curr_pairs) {
            break;
        }
        if (tx) { /* writable again (or an error: the send will say) */
            p->tx_wait_writable = false;
            vnet_transmit(n, p);
        } else if (revents) {
            vnet_receive(n, p);
        }
        break;
    }
}

/* FEATURES_OK: offloads, the VLAN filter, failover's listener told of
 * STANDBY; DRIVER_OK: vhost-net. */
static void vnet_status_changed(VirtioDevice *vdev, uint8_t old_status,
                                uint8_t new_status)
{
    VirtioNet *n = (VirtioNet *)vdev;
    uint8_t added = new_status & ~old_status;

    virtio_device_lock(vdev);
    if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
        virtio_net_apply_offloads(n, vdev->guest_features & VNET_GUEST_OFFLOADS);
        vnet_filter_reset(n, virtio_net_has(n, VIRTIO_NET_F_CTRL_VLAN));
    }
    if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && n->vhost && !vdev->paused &&
        vnet_frames_pass(n)) {
        pthread_mutex_lock(&n->vhost_lock);
        if (!n->vhost_running) {
            virtio_net_vhost_start(n);
        }
        pthread_mutex_unlock(&n->vhost_lock);
    }
    virtio_device_unlock(vdev);
    if ((added & VIRTIO_CONFIG_S_FEATURES_OK) &&
        virtio_net_has(n, VIRTIO_NET_F_STANDBY)) {
        VirtioNetStandbyFn fn = __atomic_load_n(&vnet_standby_fn, __ATOMIC_ACQUIRE);
        if (fn) {
            fn(vnet_standby_opaque, n);
        }
    }
}

static void vnet_reset(VirtioDevice *vdev)
{
    VirtioNet *n = (VirtioNet *)vdev;

    pthread_mutex_lock(&n->vhost_lock);
    virtio_net_vhost_stop(n);
    pthread_mutex_unlock(&n->vhost_lock);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        n->pairs[i].rx_len = 0;
        n->pairs[i].rx_wait_buffers = n->pairs[i].tx_wait_writable = false;
    }
    virtio_net_use_pairs(n, 1); /* MQ starts with one pair (5.1.6.5.5) */
    virtio_net_apply_offloads(n, 0);
    vnet_filter_reset(n, false);
    virtio_net_set_config_status(n, virtio_net_config_status(n) & ~VIRTIO_NET_S_ANNOUNCE);
}

/* The VM stops: vhost-net lets go of the rings; it runs: they go back. */
static void vnet_pause(VirtioDevice *vdev, bool paused)
{
    VirtioNet *n = (VirtioNet *)vdev;

    pthread_mutex_lock(&n->vhost_lock);
    if (paused) {
        virtio_net_vhost_stop(n);
        pthread_mutex_unlock(&n->vhost_lock);
        return;
    }
    /* first, while nothing else uses the tap: the RARP goes out now */
    if (n->announce_pending) {
        n->announce_pending = false;
        virtio_net_announce(n);
    }
    if (n->vhost && !n->vhost_running && vnet_frames_pass(n) &&
        (virtio_get_status(vdev) & VIRTIO_CONFIG_S_DRIVER_OK) &&
        !(virtio_get_status(vdev) & VIRTIO_CONFIG_S_NEEDS_RESET)) {
        virtio_net_vhost_start(n);
    }
    pthread_mutex_unlock(&n->vhost_lock);
}

/*
 * A link went down: vhost-net lets go of the rings (as QEMU stops vhost),
 * so the VMM's own path drops the frames; both up again: they go back.
 */
static void vnet_link_vhost(VirtioNet *n)
{
    VirtioDevice *vdev = &n->vdev;

    if (!n->vhost) {
        return;
    }
    virtio_device_lock(vdev);
    pthread_mutex_lock(&n->vhost_lock);
    if (!vnet_frames_pass(n)) {
        virtio_net_vhost_stop(n);
    } else if (!n->vhost_running && !vdev->paused &&
               (virtio_get_status(vdev) & VIRTIO_CONFIG_S_DRIVER_OK) &&
               !(virtio_get_status(vdev) & VIRTIO_CONFIG_S_NEEDS_RESET)) {
        virtio_net_vhost_start(n);
    }
    pthread_mutex_unlock(&n->vhost_lock);
    virtio_device_unlock(vdev);
}

static void vnet_save(VirtioDevice *vdev, GByteArray *out)
{
    VirtioNet *n = (VirtioNet *)vdev;
    const VirtioNetFilter *f = &n->filter;

    blob_put_u32(out, VNET_STATE_MAGIC);
    blob_put_u32(out, VNET_STATE_VERSION);
    blob_put_bytes(out, n->mac, 6);
    blob_put_u16(out, virtio_net_config_status(n));
    blob_put_u8(out, !virtio_net_link_up(n));
    blob_put_u64(out, n->guest_offloads);
    blob_put_u8(out, f->promisc);
    blob_put_u8(out, f->allmulti);
    blob_put_u8(out, f->alluni);
    blob_put_u8(out, f->nomulti);
    blob_put_u8(out, f->nouni);
    blob_put_u8(out, f->nobcast);
    blob_put_u8(out, f->uni_overflow);
    blob_put_u8(out, f->multi_overflow);
    blob_put_u32(out, f->nr_uni);
    blob_put_u32(out, f->nr_multi);
    blob_put_bytes(out, f->macs, 6 * (f->nr_uni + f->nr_multi));
    for (unsigned i = 0; i < VNET_VLAN_WORDS; i++) {
        blob_put_u32(out, f->vlans[i]);
    }
    blob_put_u16(out, n->curr_pairs); /* version 2 */
}

static bool vnet_load_check(VirtioDevice *vdev, StateReader *r, GError **errp)
{
    VirtioNet *n = (VirtioNet *)vdev;
    VirtioNetSnapshot s;
    uint32_t magic = blob_get_u32(r), version = blob_get_u32(r);

    memset(&s, 0, sizeof(s));
    if (r->error || magic != VNET_STATE_MAGIC) {
        error_setg(errp, "%s: bad virtio-net state", vdev->name);
        return false;
    }
    if (version < 1 || version > VNET_STATE_VERSION) {
        error_setg(errp, "%s: virtio-net state version %u, this VMM reads 1 to %u",
                   vdev->name, version, VNET_STATE_VERSION);
        return false;
    }
    blob_get_bytes(r, s.mac, 6);
    s.config_status = blob_get_u16(r);
    s.link_down = blob_get_u8(r);
    s.guest_offloads = blob_get_u64(r);
    s.filter.promisc = blob_get_u8(r);
    s.filter.allmulti = blob_get_u8(r);
    s.filter.alluni = blob_get_u8(r);
    s.filter.nomulti = blob_get_u8(r);
    s.filter.nouni = blob_get_u8(r);
    s.filter.nobcast = blob_get_u8(r);
    s.filter.uni_overflow = blob_get_u8(r);
    s.filter.multi_overflow = blob_get_u8(r);
    s.filter.nr_uni = blob_get_u32(r);
    s.filter.nr_multi = blob_get_u32(r);
    if (!r->error &&
        (s.filter.nr_uni > VIRTIO_NET_MAC_TABLE_ENTRIES ||
         s.filter.nr_multi > VIRTIO_NET_MAC_TABLE_ENTRIES - s.filter.nr_uni)) {
        error_setg(errp, "%s: virtio-net state has a MAC table of %u + %u entries",
                   vdev->name, s.filter.nr_uni, s.filter.nr_multi);
        return false;
    }
    blob_get_bytes(r, s.filter.macs, 6 * (s.filter.nr_uni + s.filter.nr_multi));
    for (unsigned i = 0; i < VNET_VLAN_WORDS; i++) {
        s.filter.vlans[i] = blob_get_u32(r);
    }
    s.curr_pairs = version >= 2 ? blob_get_u16(r) : 1; /* version 1: one pair */
    if (r->error) {
        error_setg(errp, "%s: virtio-net state is truncated", vdev->name);
        return false;
    }
    if (s.curr_pairs < 1 || s.curr_pairs > n->max_pairs) {
        error_setg(errp,
                   "%s: the source used %u queue pairs, this device has %u "
                   "(the netdev's queues=)",
                   vdev->name, s.curr_pairs, n->max_pairs);
        return false;
    }
    if (s.guest_offloads & ~VNET_GUEST_OFFLOADS ||
        (s.guest_offloads &&
         !(n->vdev.host_features & VNET_F(VIRTIO_NET_F_GUEST_CSUM)))) {
        error_setg(errp,
                   "%s: the source had offloads 0x%" G_GINT64_MODIFIER "x that "
                   "this tap cannot take",
                   vdev->name, s.guest_offloads);
        return false;
    }
    n->loaded = s;
    return true;
}

static void vnet_load_apply(VirtioDevice *vdev)
{
    VirtioNet *n = (VirtioNet *)vdev;
    const VirtioNetSnapshot *s = &n->loaded;

    memcpy(n->mac, s->mac, 6);
    memcpy(vdev->config, s->mac, 6);
    n->filter = s->filter;
    virtio_net_set_config_status(n, s->config_status);
    __atomic_store_n(&n->link_down, s->link_down, __ATOMIC_RELEASE);
    virtio_net_apply_offloads(n, s->guest_offloads);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        n->pairs[i].rx_len = 0;
        n->pairs[i].rx_wait_buffers = n->pairs[i].tx_wait_writable = false;
    }
    virtio_net_use_pairs(n, s->curr_pairs);
    n->announce_pending = (virtio_get_status(vdev) & VIRTIO_CONFIG_S_DRIVER_OK) != 0;
}

static void vnet_destroy(VirtioDevice *vdev)
{
    virtio_net_free((VirtioNet *)vdev);
}

static const VirtioDeviceOps virtio_net_ops = {
    .handle_queue = vnet_handle_queue,
    .queue_thread = vnet_queue_thread,
    .reset = vnet_reset,
    .save = vnet_save,
    .load_check = vnet_load_check,
    .load_apply = vnet_load_apply,
    .destroy = vnet_destroy,
    .status_changed = vnet_status_changed,
    .watch_fds = vnet_watch_fds,
    .handle_fd = vnet_handle_fd,
    .pause = vnet_pause,
    .dirty_log = virtio_net_vhost_dirty_log,
};

/* ---- creation ---- */

static uint64_t vnet_features(VirtioNet *n)
{
    uint64_t f = VNET_F(VIRTIO_NET_F_MAC) | VNET_F(VIRTIO_NET_F_STATUS) |
                 VNET_F(VIRTIO_NET_F_MRG_RXBUF) | VNET_F(VIRTIO_NET_F_CTRL_VQ) |
                 VNET_F(VIRTIO_NET_F_CTRL_RX) | VNET_F(VIRTIO_NET_F_CTRL_VLAN) |
                 VNET_F(VIRTIO_NET_F_CTRL_RX_EXTRA) |
                 VNET_F(VIRTIO_NET_F_GUEST_ANNOUNCE) |
                 VNET_F(VIRTIO_NET_F_CTRL_MAC_ADDR) | VNET_F(VIRTIO_RING_F_EVENT_IDX) |
                 VNET_F(VIRTIO_RING_F_INDIRECT_DESC);

    if (n->tap && net_tap_has_vnet_hdr(n->tap)) {
        f |= VNET_F(VIRTIO_NET_F_CSUM) | VNET_F(VIRTIO_NET_F_GUEST_CSUM) |
             VNET_F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | VNET_F(VIRTIO_NET_F_GUEST_TSO4) |
             VNET_F(VIRTIO_NET_F_GUEST_TSO6) | VNET_F(VIRTIO_NET_F_GUEST_ECN) |
             VNET_F(VIRTIO_NET_F_HOST_TSO4) | VNET_F(VIRTIO_NET_F_HOST_TSO6) |
             VNET_F(VIRTIO_NET_F_HOST_ECN);
    }
    if (n->failover) {
        f |= VNET_F(VIRTIO_NET_F_STANDBY);
    }
    if (n->mq) {
        f |= VNET_F(VIRTIO_NET_F_MQ);
    }
    if (n->vhost) {
        f &= ~VNET_VHOST_FEATURES | vhost_net_get_features(n->vhost);
    }
    return f;
}

static void vnet_pair_free(VirtioNetPair *p)
{
    for (unsigned i = 0; i < 2; i++) {
        if (p->call_fd[i] >= 0) {
            close(p->call_fd[i]);
        }
    }
    g_free(p->rx_buf);
    for (unsigned i = 0; p->rx_elems && i < VNET_QUEUE_SIZE; i++) {
        virtqueue_element_free(&p->rx_elems[i]);
    }
    for (unsigned i = 0; i < VNET_TX_BATCH; i++) {
        virtqueue_element_free(&p->tx_elems[i]);
    }
    g_free(p->rx_elems);
    g_free(p->rx_lens);
}

/* Pair i on the netdev's queue i; with vhost-net, its interrupt eventfds. */
static bool vnet_pair_init(VirtioNet *n, unsigned i, GError **errp)
{
    VirtioNetPair *p = &n->pairs[i];

    p->index = i;
    p->call_fd[0] = p->call_fd[1] = -1;
    p->call_irqfd[0] = p->call_irqfd[1] = -1;
    if (n->netdev) {
        p->tap = netdev_tap(n->netdev, i);
        p->vhost = netdev_vhost(n->netdev, i);
    }
    for (unsigned ring = 0; p->vhost && ring < 2; ring++) {
        p->call_fd[ring] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->call_fd[ring] < 0) {
            error_setg_errno(errp, errno, "virtio-net: cannot create an eventfd");
            return false;
        }
    }
    p->rx_buf = g_malloc(NET_TAP_MAX_FRAME);
    p->rx_elems = g_new0(VirtQueueElement, VNET_QUEUE_SIZE);
    p->rx_lens = g_new0(uint32_t, VNET_QUEUE_SIZE);
    return true;
}

void virtio_net_free(VirtioNet *n)
{
    if (!n) {
        return;
    }
    if (n->netdev) {
        netdev_release(n->netdev, n);
    }
    for (unsigned i = 0; n->pairs && i < n->max_pairs; i++) {
        vnet_pair_free(&n->pairs[i]);
    }
    g_free(n->pairs);
    if (n->log_fd >= 0) {
        close(n->log_fd);
    }
    pthread_mutex_destroy(&n->vhost_lock);
    g_free(n->qdev_id);
    g_free(n->nic_name);
    g_free(n);
}

VirtioNet *virtio_net_new(const GuestMemory *mem, const VirtioNetOptions *o,
                          GError **errp)
{
    VirtioNet *n;

    if (o->netdev && netdev_owner(o->netdev)) {
        error_setg(errp,
                   "Property 'virtio-net-device.netdev' can't take value '%s', it's "
                   "in use",
                   netdev_id(o->netdev));
        return NULL;
    }
    if (o->vectors && o->vectors > VNET_MAX_VECTORS) {
        error_setg(errp, "virtio-net: vectors=%u is more than MSI-X's %u", o->vectors,
                   VNET_MAX_VECTORS);
        return NULL;
    }
    n = g_new0(VirtioNet, 1);
    n->log_fd = -1;
    pthread_mutex_init(&n->vhost_lock, NULL);
    if (o->netdev) {
        netdev_claim(o->netdev, n);
        n->netdev = o->netdev;
        n->tap = netdev_tap(o->netdev, 0);
        n->vhost = netdev_vhost(o->netdev, 0);
    }
    n->max_pairs = o->netdev ? netdev_queues(o->netdev) : 1;
    n->curr_pairs = 1;
    n->mq = o->mq;
    n->qdev_id = g_strdup(o->id);
    n->nic_name = g_strdup_printf("virtio-net-pci.%u",
                                  __atomic_fetch_add(&vnet_nics, 1, __ATOMIC_RELAXED));
    n->rx_notify_enabled = true;
    n->failover = o->failover;
    memcpy(n->ram, o->ram, sizeof(n->ram));
    n->nr_ram = MIN(o->nr_ram, VIRTIO_NET_RAM_RANGES);
    if (o->has_mac) {
        memcpy(n->mac, o->mac, 6);
    } else {
        static const uint8_t base[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
        memcpy(n->mac, base, 6);
        n->mac[5] += __atomic_fetch_add(&vnet_instances, 1, __ATOMIC_RELAXED);
    }
    n->pairs = g_new0(VirtioNetPair, n->max_pairs);
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (!vnet_pair_init(n, i, errp)) {
            virtio_net_free(n);
            return NULL;
        }
    }
    if (n->vhost) {
        n->log_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (n->log_fd < 0) {
            error_setg_errno(errp, errno, "virtio-net: cannot create an eventfd");
            virtio_net_free(n);
            return NULL;
        }
    }
    virtio_device_init(&n->vdev, mem, "virtio-net", VIRTIO_ID_NET, 2 * n->max_pairs + 1,
                       VNET_QUEUE_SIZE, vnet_features(n), VNET_CONFIG_LEN,
                       &virtio_net_ops);
    /* a thread per queue of each pair: its tap, or with vhost-net its interrupt */
    virtio_device_set_io_threads(&n->vdev, 2 * n->max_pairs);
    n->vdev.msix_vectors = o->vectors; /* 0: one per queue and the config */
    memcpy(n->vdev.config, n->mac, 6);
    virtio_net_set_config_status(n, VIRTIO_NET_S_LINK_UP);
    pci_set_word(n->vdev.config + 8, n->max_pairs); /* max_virtqueue_pairs */
    vnet_filter_reset(n, false);
    vnet_attach_taps(n);
    return n;
}

PciDevice *virtio_net_pci_create(PciBus *bus, const VirtioNetOptions *o, GError **errp)
{
    VirtioNet *n;
    PciDevice *pci;

    if (!bus) {
        error_setg(errp, "virtio-net-pci: this machine has no PCI bus");
        return NULL;
    }
    n = virtio_net_new(pci_bus_memory(bus), o, errp);
    if (!n) {
        return NULL;
    }
    pci = virtio_pci_create(bus, &n->vdev, "virtio-net-pci", PCI_CLASS_NETWORK_ETHERNET,
                            o->id, o->devfn, errp);
    if (!pci) {
        virtio_device_cleanup(&n->vdev);
        virtio_net_free(n);
    }
    return pci;
}

VirtioNet *virtio_net_from_pci(PciDevice *pci)
{
    VirtioDevice *vdev = virtio_pci_device(pci);

    return vdev && vdev->device_id == VIRTIO_ID_NET ? (VirtioNet *)vdev : NULL;
}
