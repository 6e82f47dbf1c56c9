/* net.h: testos's virtio-net driver (net.c), shared by the net scenarios
 * (net.c) and net-hostile (nethostile.c). Ring 3, BSP only, polled. */
#ifndef TESTOS_NET_H
#define TESTOS_NET_H

#include "virtio.h"

#define VIRTIO_F_NET_MAC 5
#define VIRTIO_F_NET_STANDBY 62 /* failover: a primary NIC may come and go */
#define NET_HDR 12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define NET_BUF 10240
#define NET_MAX_FRAME (NET_BUF - NET_HDR)
#define ETH_MIN 60 /* a frame's minimum without the FCS: shorter ones are padded */
#define NETCFG_MAC 0
#define NETCFG_STATUS 6
#define VIRTIO_F_NET_STATUS 16
#define VIRTIO_F_NET_CTRL_VQ 17
#define VIRTIO_F_NET_CTRL_RX 18
#define VIRTIO_F_NET_CTRL_VLAN 19
#define VIRTIO_F_NET_CTRL_RX_EXTRA 20

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define IPPROTO_ICMP 1
#define IPPROTO_UDP 17
#define UDP_ECHO_PORT 7
#define UDP_DISCARD_PORT 9

typedef struct Net {
    VirtioDev dev;
    Virtq rx, tx;
    Virtq ctl;  /* testos.netctl: the control queue (2) */
    u8 *ctlbuf; /* one command and its ack byte */
    u8 mac[6];
    u8 *rxbuf, *txbuf; /* VIRTQ_MAX_QSIZE buffers of NET_BUF bytes each */
    u16 tx_free[VIRTQ_MAX_QSIZE];
    u8 tx_busy[VIRTQ_MAX_QSIZE];
    u32 tx_nfree;
    u64 tx_done, rx_frames, bogus_used;
} Net;

extern Net net;

/* Reset and initialise: features, both queues, every rx buffer posted
 * (unless !post_rx), DRIVER_OK. net_reinit: with the rx buffers. */
const char *net_init(Net *n, int post_rx);
const char *net_reinit(Net *n);
/* Finds the first virtio-net function on bus 0, initialises it and prints
 * the `WHO device ...` line. */
const char *net_open(Net *n, const char *who);
/* Makes tx buffer id available with a frame of len bytes (padded to 60). */
void net_tx_put(Net *n, u32 id, u32 len);
/* net-blast's UDP frame of `frame` bytes at f, and its sequence stamp. */
void net_blast_build(Net *n, u8 *f, u32 frame, const u8 *dst_mac, u64 *ip_base,
                     u64 *udp_base);
void net_blast_stamp(u8 *f, u64 seq, u64 ip_base, u64 udp_base);
/* testos.netctl: set a receive filter through the control queue (NULL on
 * success), and the link bit of the config's status (1 up, 0 down). */
const char *net_set_filters(Net *n);
int net_link_up(Net *n);

#endif
