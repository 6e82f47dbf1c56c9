/*
 * virtio-net's control queue (5.1.6.5): receive mode, MAC address and
 * tables, VLAN filter, announce acknowledgement, guest offloads and the
 * number of queue pairs in use.  Each command is answered VIRTIO_NET_OK or
 * VIRTIO_NET_ERR as the spec says; a malformed chain needs a reset.
 *
 * Locking: on the device's I/O thread, which owns the receive filter while
 * the driver runs the device (see virtio-net.c).
 */
#include <string.h>

#include "hw/pci.h"
#include "hw/virtio.h"
#include "util/error.h"
#include "virtio-net-int.h"

#define VNET_CTRL_MAX (64 * 1024) /* the longest command we read */

static uint8_t ctrl_rx(VirtioNet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    uint8_t *flag;

    if (len != 1 || !virtio_net_has(n, VIRTIO_NET_F_CTRL_RX)) {
        return VIRTIO_NET_ERR;
    }
    switch (cmd) {
    case VIRTIO_NET_CTRL_RX_PROMISC:
        flag = &n->filter.promisc;
        break;
    case VIRTIO_NET_CTRL_RX_ALLMULTI:
        flag = &n->filter.allmulti;
        break;
    case VIRTIO_NET_CTRL_RX_ALLUNI:
        flag = &n->filter.alluni;
        break;
    case VIRTIO_NET_CTRL_RX_NOMULTI:
        flag = &n->filter.nomulti;
        break;
    case VIRTIO_NET_CTRL_RX_NOUNI:
        flag = &n->filter.nouni;
        break;
    case VIRTIO_NET_CTRL_RX_NOBCAST:
        flag = &n->filter.nobcast;
        break;
    default:
        return VIRTIO_NET_ERR;
    }
    if (cmd > VIRTIO_NET_CTRL_RX_ALLMULTI &&
        !virtio_net_has(n, VIRTIO_NET_F_CTRL_RX_EXTRA)) {
        return VIRTIO_NET_ERR;
    }
    *flag = data[0] != 0;
    virtio_net_rx_filter_changed(n);
    return VIRTIO_NET_OK;
}

/*
 * MAC_TABLE_SET: two tables (unicast, then multicast), each a 32-bit count
 * and that many addresses, filling the whole command.  More than the table
 * holds turns the filter for that kind off (overflow), as QEMU does.
 */
static uint8_t ctrl_mac_table(VirtioNet *n, const uint8_t *data, size_t len)
{
    VirtioNetFilter f = n->filter;
    uint32_t entries[2];
    size_t off = 0;

    f.nr_uni = f.nr_multi = 0;
    f.uni_overflow = f.multi_overflow = 0;
    for (unsigned t = 0; t < 2; t++) {
        if (len - off < 4) {
            return VIRTIO_NET_ERR;
        }
        entries[t] = pci_get_long(data + off);
        off += 4;
        if (entries[t] > (len - off) / 6) {
            return VIRTIO_NET_ERR;
        }
        if (f.nr_uni + f.nr_multi + entries[t] <= VIRTIO_NET_MAC_TABLE_ENTRIES) {
            memcpy(f.macs[f.nr_uni + f.nr_multi], data + off, 6 * (size_t)entries[t]);
            *(t == 0 ? &f.nr_uni : &f.nr_multi) = entries[t];
        } else {
            *(t == 0 ? &f.uni_overflow : &f.multi_overflow) = 1;
        }
        off += 6 * (size_t)entries[t];
    }
    if (off != len) {
        return VIRTIO_NET_ERR;
    }
    n->filter = f;
    virtio_net_rx_filter_changed(n);
    return VIRTIO_NET_OK;
}

static uint8_t ctrl_mac(VirtioNet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
        if (len != 6 || !virtio_net_has(n, VIRTIO_NET_F_CTRL_MAC_ADDR)) {
            return VIRTIO_NET_ERR;
        }
        memcpy(n->mac, data, 6);
        memcpy(n->vdev.config, data, 6);
        virtio_net_rx_filter_changed(n);
        return VIRTIO_NET_OK;
    }
    if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET && virtio_net_has(n, VIRTIO_NET_F_CTRL_RX)) {
        return ctrl_mac_table(n, data, len);
    }
    return VIRTIO_NET_ERR;
}

static uint8_t ctrl_vlan(VirtioNet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    uint16_t vid;

    if (len != 2 || !virtio_net_has(n, VIRTIO_NET_F_CTRL_VLAN)) {
        return VIRTIO_NET_ERR;
    }
    vid = pci_get_word(data);
    if (vid >= 4096) {
        return VIRTIO_NET_ERR;
    }
    if (cmd == VIRTIO_NET_CTRL_VLAN_ADD) {
        n->filter.vlans[vid / 32] |= 1u << (vid % 32);
    } else if (cmd == VIRTIO_NET_CTRL_VLAN_DEL) {
        n->filter.vlans[vid / 32] &= ~(1u << (vid % 32));
    } else {
        return VIRTIO_NET_ERR;
    }
    virtio_net_rx_filter_changed(n);
    return VIRTIO_NET_OK;
}

static uint8_t ctrl_guest_offloads(VirtioNet *n, uint8_t cmd, const uint8_t *data,
                                   size_t len)
{
    uint64_t offloads;

    if (cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || len != 8 ||
        !virtio_net_has(n, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS)) {
        return VIRTIO_NET_ERR;
    }
    offloads = pci_get_long(data) | (uint64_t)pci_get_long(data + 4) << 32;
    if (offloads & ~(n->vdev.guest_features & VNET_GUEST_OFFLOADS)) {
        return VIRTIO_NET_ERR;
    }
    return virtio_net_apply_offloads(n, offloads) ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
}

/*
 * VQ_PAIRS_SET (5.1.6.5.5): a 16-bit count from 1 to max_virtqueue_pairs,
 * with MQ negotiated; anything else is VIRTIO_NET_ERR and changes nothing.
 */
static uint8_t ctrl_mq(VirtioNet *n, uint8_t cmd, const uint8_t *data, size_t len)
{
    uint16_t pairs;

    if (cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || len != 2 ||
        !virtio_net_has(n, VIRTIO_NET_F_MQ)) {
        return VIRTIO_NET_ERR;
    }
    pairs = pci_get_word(data);
    if (pairs < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || pairs > n->max_pairs) {
        return VIRTIO_NET_ERR;
    }
    virtio_net_use_pairs(n, pairs);
    return VIRTIO_NET_OK;
}

static uint8_t ctrl_dispatch(VirtioNet *n, uint8_t cls, uint8_t cmd, const uint8_t *data,
                             size_t len)
{
    switch (cls) {
    case VIRTIO_NET_CTRL_RX:
        return ctrl_rx(n, cmd, data, len);
    case VIRTIO_NET_CTRL_MAC:
        return ctrl_mac(n, cmd, data, len);
    case VIRTIO_NET_CTRL_VLAN:
        return ctrl_vlan(n, cmd, data, len);
    case VIRTIO_NET_CTRL_ANNOUNCE:
        if (cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK ||
            !virtio_net_has(n, VIRTIO_NET_F_GUEST_ANNOUNCE)) {
            return VIRTIO_NET_ERR;
        }
        virtio_net_set_config_status(n, virtio_net_config_status(n) &
                                            ~VIRTIO_NET_S_ANNOUNCE);
        return VIRTIO_NET_OK;
    case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
        return ctrl_guest_offloads(n, cmd, data, len);
    case VIRTIO_NET_CTRL_MQ:
        return ctrl_mq(n, cmd, data, len);
    default:
        return VIRTIO_NET_ERR; /* RSS, hash reports and the rest are not offered */
    }
}

/* Each command: class and command bytes, data, then a writable ack byte. */
void virtio_net_control(VirtioNet *n, VirtQueue *vq)
{
    for (;;) {
        VirtQueueElement e;
        uint8_t hdr[2], ack, *data;
        size_t len;

        virtqueue_element_init(&e);
        if (!virtio_queue_pop(vq, &e)) {
            virtqueue_element_free(&e);
            return;
        }
        if (e.bad_address || e.out_len < sizeof(hdr) || e.in_len < 1 ||
            e.out_len - sizeof(hdr) > VNET_CTRL_MAX) {
            virtio_error(&n->vdev, vq, "control queue: %s",
                         e.bad_address ? "a buffer outside guest RAM"
                         : e.out_len - MIN(e.out_len, sizeof(hdr)) > VNET_CTRL_MAX
                             ? "a command longer than 64 KiB"
                             : "a command without its header or ack byte");
            virtio_queue_complete(vq, &e, 0);
            virtqueue_element_free(&e);
            return;
        }
        len = e.out_len - sizeof(hdr);
        data = g_malloc(len ? len : 1);
        iov_to_buf(e.iov, e.out_num, 0, hdr, sizeof(hdr));
        iov_to_buf(e.iov, e.out_num, sizeof(hdr), data, len);
        ack = ctrl_dispatch(n, hdr[0], hdr[1], data, len);
        g_free(data);
        iov_from_buf(e.iov + e.out_num, e.in_num, 0, &ack, sizeof(ack));
        virtio_queue_complete(vq, &e, sizeof(ack));
        virtqueue_element_free(&e);
    }
}
