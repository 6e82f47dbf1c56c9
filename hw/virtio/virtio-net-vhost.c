/*
 * virtio-net's queue pairs on vhost-net: each pair in use hands its two
 * rings to its own vhost-net instance (memory table, ring addresses, the
 * ioeventfd kicks and the interrupt eventfds), takes them back where
 * vhost-net left them, and runs vhost-net's dirty log while migration
 * wants it.  A ring's interrupt eventfd is bound by KVM to its MSI-X
 * vector (an irqfd, as QEMU does), so vhost-net interrupts the guest
 * without the VMM; where the transport cannot (INTx, no vector, MSI-X
 * off) the pair's I/O thread relays it.
 *
 * Locking: every function here runs with the device's vhost_lock held
 * (see virtio-net.c), except virtio_net_vhost_dirty_log, which takes it.
 */
#include <errno.h>
#include <linux/vhost.h>
#include <string.h>
#include <unistd.h>

#include "hw/virtio.h"
#include "util/error.h"
#include "virtio-net-int.h"

static bool vhost_ring(VirtioNet *n, VirtioNetPair *p, unsigned ring, GError **errp)
{
    VirtQueue *vq =
        &n->vdev.vqs[ring == VHOST_NET_RING_RX ? VNET_RXQ(p->index) : VNET_TXQ(p->index)];
    VhostRing r;

    pthread_mutex_lock(&vq->lock);
    r = (VhostRing){ .num = vq->size,
                     .desc = vq->desc,
                     .avail = vq->avail,
                     .used = vq->used,
                     .used_gpa = vq->used_gpa,
                     .last_avail_idx = vq->last_avail_idx,
                     .kick_fd = vq->kick_fd,
                     .call_fd = p->call_fd[ring] };
    pthread_mutex_unlock(&vq->lock);
    if (!vq->enabled || !r.desc) {
        error_setg(errp, "queue %u is not enabled", vq->index);
        return false;
    }
    return vhost_net_set_ring(p->vhost, ring, &r, errp);
}

/* vhost-net logged writes: they go to migration's bitmap as DMA does. */
static void vhost_log_mark(void *opaque, uint64_t gpa, uint64_t len)
{
    VirtioNet *n = opaque;

    if (n->vdev.transport && n->vdev.transport->mark_dirty) {
        n->vdev.transport->mark_dirty(&n->vdev, gpa, len);
    }
}

static uint64_t vnet_ram_end(VirtioNet *n)
{
    uint64_t end = 0;

    for (unsigned i = 0; i < n->nr_ram; i++) {
        end = MAX(end, n->ram[i].gpa + n->ram[i].size);
    }
    return end;
}

/* Every logging pair's writes since the last sync; vhost_lock. */
void virtio_net_vhost_log_sync(VirtioNet *n)
{
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (n->pairs[i].log_active) {
            vhost_net_log_sync(n->pairs[i].vhost, vhost_log_mark, n);
        }
    }
}

/* vhost-net's log as migration wants it, on each running pair; vhost_lock. */
static void vhost_log_update(VirtioNet *n)
{
    GError *err = NULL;

    for (unsigned i = 0; i < n->max_pairs; i++) {
        VirtioNetPair *p = &n->pairs[i];

        if (n->dirty_logging && p->vhost_on && !p->log_active) {
            if (!vhost_net_log_start(p->vhost, vnet_ram_end(n), n->log_fd, &err)) {
                virtio_error(&n->vdev, NULL, "vhost-net dirty log: %s", err->message);
                g_error_free(err);
                return;
            }
            p->log_active = true;
        } else if ((!n->dirty_logging || !p->vhost_on) && p->log_active) {
            vhost_net_log_sync(p->vhost, vhost_log_mark, n);
            if (!vhost_net_log_stop(p->vhost, &err)) {
                warn_report("%s: vhost-net dirty log: %s", n->vdev.name, err->message);
                g_clear_error(&err);
            }
            p->log_active = false;
        }
    }
    n->log_active = false;
    for (unsigned i = 0; i < n->max_pairs; i++) {
        n->log_active |= n->pairs[i].log_active;
    }
}

static void vhost_pair_kicks_elsewhere(VirtioNet *n, VirtioNetPair *p, bool elsewhere)
{
    __atomic_store_n(&n->vdev.vqs[VNET_RXQ(p->index)].kick_elsewhere, elsewhere,
                     __ATOMIC_RELEASE);
    __atomic_store_n(&n->vdev.vqs[VNET_TXQ(p->index)].kick_elsewhere, elsewhere,
                     __ATOMIC_RELEASE);
}

static VirtQueue *vhost_pair_vq(VirtioNet *n, VirtioNetPair *p, unsigned ring)
{
    return &n->vdev
                .vqs[ring == VHOST_NET_RING_RX ? VNET_RXQ(p->index) : VNET_TXQ(p->index)];
}

/* Each ring's interrupt eventfd straight to KVM where the transport can. */
static void vhost_pair_irqfds_use(VirtioNet *n, VirtioNetPair *p)
{
    const VirtioTransportOps *t = n->vdev.transport;

    for (unsigned ring = 0; ring < 2; ring++) {
        p->call_irqfd[ring] = -1;
        if (t && t->queue_irqfd_use) {
            p->call_irqfd[ring] = t->queue_irqfd_use(&n->vdev, vhost_pair_vq(n, p, ring),
                                                     p->call_fd[ring]);
        }
    }
}

/*
 * Back to relaying: unbind, and an interrupt vhost-net signalled but KVM
 * did not deliver (a masked vector) goes out the transport's way.
 */
static void vhost_pair_irqfds_release(VirtioNet *n, VirtioNetPair *p)
{
    const VirtioTransportOps *t = n->vdev.transport;

    for (unsigned ring = 0; ring < 2; ring++) {
        uint64_t count;
        if (p->call_irqfd[ring] < 0) {
            continue;
        }
        t->queue_irqfd_release(&n->vdev, p->call_irqfd[ring], p->call_fd[ring]);
        p->call_irqfd[ring] = -1;
        if (read(p->call_fd[ring], &count, sizeof(count)) == sizeof(count)) {
            t->notify_queue(&n->vdev, vhost_pair_vq(n, p, ring));
        }
    }
}

/* One pair's rings to its vhost-net. */
static bool vhost_start_pair(VirtioNet *n, VirtioNetPair *p, GError **errp)
{
    uint64_t features = n->vdev.guest_features;

    if (!net_tap_has_vnet_hdr(p->tap)) {
        features |= 1ULL << VHOST_NET_F_VIRTIO_NET_HDR;
    }
    vhost_pair_kicks_elsewhere(n, p, true);
    if (!vhost_net_set_features(p->vhost, features, errp) ||
        !vhost_net_set_mem_table(p->vhost, n->ram, n->nr_ram, errp) ||
        !vhost_ring(n, p, VHOST_NET_RING_RX, errp) ||
        !vhost_ring(n, p, VHOST_NET_RING_TX, errp) ||
        !vhost_net_set_backend(p->vhost, net_tap_fd(p->tap), errp)) {
        vhost_pair_kicks_elsewhere(n, p, false);
        return false;
    }
    vhost_pair_irqfds_use(n, p);
    p->vhost_on = true;
    return true;
}

/* Take one pair's rings back where vhost-net left them. */
static void vhost_stop_pair(VirtioNet *n, VirtioNetPair *p)
{
    GError *err = NULL;

    if (!vhost_net_set_backend(p->vhost, -1, &err)) {
        warn_report("%s: vhost-net: %s", n->vdev.name, err->message);
        g_clear_error(&err);
    }
    for (unsigned ring = 0; ring < 2; ring++) {
        VirtQueue *vq = &n->vdev.vqs[ring == VHOST_NET_RING_RX ? VNET_RXQ(p->index)
                                                               : VNET_TXQ(p->index)];
        uint16_t base;
        if (vhost_net_get_ring_base(p->vhost, ring, &base, &err)) {
            pthread_mutex_lock(&vq->lock);
            if (vq->ready) {
                vq->last_avail_idx = base;
                vq->used_idx = GUINT16_FROM_LE(
                    __atomic_load_n((uint16_t *)(vq->used + 2), __ATOMIC_ACQUIRE));
                vq->signalled_used_valid = false;
            }
            pthread_mutex_unlock(&vq->lock);
        } else {
            warn_report("%s: vhost-net: %s", n->vdev.name, err->message);
            g_clear_error(&err);
        }
    }
    vhost_pair_irqfds_release(n, p);
    vhost_pair_kicks_elsewhere(n, p, false);
    if (p->log_active) {
        vhost_net_log_sync(p->vhost, vhost_log_mark, n); /* its last writes */
    }
    p->vhost_on = false;
}

/* Take every pair's rings back.  vhost_lock held. */
void virtio_net_vhost_stop(VirtioNet *n)
{
    if (!n->vhost_running) {
        return;
    }
    for (unsigned i = 0; i < n->max_pairs; i++) {
        if (n->pairs[i].vhost_on) {
            vhost_stop_pair(n, &n->pairs[i]);
        }
    }
    vhost_log_update(n);
    n->vhost_running = false;
    virtio_device_wake(&n->vdev);
}

/* The driver is ready: the pairs in use go to vhost-net.  vhost_lock held. */
void virtio_net_vhost_start(VirtioNet *n)
{
    GError *err = NULL;

    for (unsigned i = 0; i < n->curr_pairs; i++) {
        if (!vhost_start_pair(n, &n->pairs[i], &err)) {
            n->vhost_running = true; /* so that stop takes back the started ones */
            virtio_net_vhost_stop(n);
            virtio_error(&n->vdev, NULL, "vhost-net: %s", err->message);
            g_error_free(err);
            return;
        }
    }
    n->vhost_running = true;
    vhost_log_update(n);
    /* kicks the I/O thread may have eaten before it let go of them */
    for (unsigned i = 0; i < n->curr_pairs; i++) {
        virtio_queue_kick(&n->vdev.vqs[VNET_RXQ(i)]);
        virtio_queue_kick(&n->vdev.vqs[VNET_TXQ(i)]);
    }
    virtio_device_wake(&n->vdev);
}

void virtio_net_vhost_dirty_log(VirtioDevice *vdev, bool on)
{
    VirtioNet *n = (VirtioNet *)vdev;

    if (!n->vhost) {
        return;
    }
    pthread_mutex_lock(&n->vhost_lock);
    n->dirty_logging = on;
    vhost_log_update(n);
    pthread_mutex_unlock(&n->vhost_lock);
}

/* vhost-net signalled a ring's interrupt: raise it the transport's way. */
void virtio_net_vhost_call(VirtioNet *n, VirtioNetPair *p, unsigned ring)
{
    VirtioDevice *vdev = &n->vdev;
    uint64_t count;

    if (read(p->call_fd[ring], &count, sizeof(count)) == sizeof(count) &&
        vdev->transport) {
        vdev->transport->notify_queue(
            vdev, &vdev->vqs[ring == VHOST_NET_RING_RX ? VNET_RXQ(p->index)
                                                       : VNET_TXQ(p->index)]);
    }
}
