/* net.c: a virtio-net driver and the net scenarios. `net` answers ARP, ICMP
 * echo and UDP echo (port 7) for testos.ip until the VM is stopped;
 * `net-blast` sends UDP frames and counts received ones as fast as it can
 * for testos.seconds; `net-hostile` hands the device broken rings.
 *
 * The driver runs in ring 3 on the generic virtio-pci and virtqueue code
 * (virtio.c), polled, no interrupts. Features: VERSION_1 (required), MAC,
 * EVENT_IDX (testos.evidx); no MRG_RXBUF, no checksum or segmentation
 * offloads, no control queue: every frame carries full checksums both ways.
 * Receive buffers are "big buffers": one device-writable descriptor of
 * NET_BUF bytes each (the 12-byte virtio_net_hdr, then frames up to
 * NET_MAX_FRAME = 10228 bytes, enough for a 9000-byte MTU plus headers).
 * Queue 0 receives, queue 1 transmits; descriptor i of each queue always
 * points at buffer i of that queue (rx: posted, reposted after use; tx: a
 * free list). */
#include "virtio.h"

#define VIRTIO_F_NET_MAC 5
#define NET_HDR 12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define NET_BUF 10240
#define NET_MAX_FRAME (NET_BUF - NET_HDR)
#define ETH_MIN 60 /* a frame's minimum without the FCS: shorter ones are padded */
#define NETCFG_MAC 0

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define IPPROTO_ICMP 1
#define IPPROTO_UDP 17
#define UDP_ECHO_PORT 7
#define UDP_DISCARD_PORT 9

typedef struct Net {
    VirtioDev dev;
    Virtq rx, tx;
    u8 mac[6];
    u8 *rxbuf, *txbuf; /* VIRTQ_MAX_QSIZE buffers of NET_BUF bytes each */
    u16 tx_free[VIRTQ_MAX_QSIZE];
    u8 tx_busy[VIRTQ_MAX_QSIZE];
    u32 tx_nfree;
    u64 tx_done, rx_frames, bogus_used;
} Net;

static Net net;

/* ---- byte order and checksums ---- */

static int same(const u8 *a, const u8 *b, u32 len)
{
    for (u32 i = 0; i < len; i++) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

static u16 get16(const u8 *p)
{
    return (u16)(p[0] << 8 | p[1]);
}

static u32 get32(const u8 *p)
{
    return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3];
}

static void put16(u8 *p, u16 v)
{
    p[0] = (u8)(v >> 8);
    p[1] = (u8)v;
}

static void put32(u8 *p, u32 v)
{
    p[0] = (u8)(v >> 24);
    p[1] = (u8)(v >> 16);
    p[2] = (u8)(v >> 8);
    p[3] = (u8)v;
}

/* The ones'-complement sum (RFC 1071) of len bytes, added to sum, not folded. */
static u64 csum_add(u64 sum, const u8 *p, u32 len)
{
    u32 i = 0;

    for (; i + 1 < len; i += 2) {
        sum += (u32)(p[i] << 8 | p[i + 1]);
    }
    if (i < len) {
        sum += (u32)p[i] << 8;
    }
    return sum;
}

static u16 csum_fold(u64 sum)
{
    while (sum >> 16) {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return (u16)~sum;
}

/* The UDP/TCP pseudo-header sum (RFC 768). */
static u64 pseudo_sum(const u8 *src, const u8 *dst, u8 proto, u32 len)
{
    u64 sum = csum_add(0, src, 4);
    sum = csum_add(sum, dst, 4);
    return sum + proto + len;
}

/* ---- the driver ---- */

static u32 net_find(u32 *bdfs, u32 max)
{
    static const u16 ids[] = {0x1041, 0x1000};

    return pci_find(0x1AF4, ids, ARRAY_SIZE(ids), bdfs, max);
}

static void tx_free_all(Net *n)
{
    n->tx_nfree = 0;
    for (u32 i = n->tx.qsize; i-- > 0;) {
        n->tx_busy[i] = 0;
        n->tx_free[n->tx_nfree++] = (u16)i;
    }
}

/* Reset and initialise: features, both queues, every rx buffer posted
 * (unless !post_rx), DRIVER_OK. */
static const char *net_init(Net *n, int post_rx)
{
    u64 wanted = 1UL << VIRTIO_F_NET_MAC;
    const char *err;

    if (boot_info.evidx) {
        wanted |= 1UL << VIRTIO_F_EVENT_IDX;
    }
    if ((err = virtio_negotiate(&n->dev, wanted)) ||
        (err = virtq_setup(&n->dev, &n->rx, 0, VIRTQ_MAX_QSIZE, 0)) ||
        (err = virtq_setup(&n->dev, &n->tx, 1, VIRTQ_MAX_QSIZE, 0))) {
        return err;
    }
    if (!n->rxbuf && !(n->rxbuf = dma_alloc((u64)VIRTQ_MAX_QSIZE * NET_BUF, 4096))) {
        return "DMA pool too small";
    }
    if (!n->txbuf && !(n->txbuf = dma_alloc((u64)VIRTQ_MAX_QSIZE * NET_BUF, 4096))) {
        return "DMA pool too small";
    }
    for (u32 i = 0; i < n->rx.qsize && post_rx; i++) {
        n->rx.desc[i] = (VirtqDesc){(u64)(n->rxbuf + (u64)i * NET_BUF), NET_BUF,
                                    VIRTQ_DESC_F_WRITE, 0};
        virtq_publish(&n->rx, (u16)i);
    }
    for (u32 i = 0; i < n->tx.qsize; i++) {
        n->tx.desc[i] = (VirtqDesc){(u64)(n->txbuf + (u64)i * NET_BUF), 0, 0, 0};
        memset(n->txbuf + (u64)i * NET_BUF, 0, NET_HDR); /* no offload asked */
    }
    tx_free_all(n);
    if (virtio_has(&n->dev, VIRTIO_F_NET_MAC)) {
        for (u32 i = 0; i < 6; i++) {
            n->mac[i] = *(volatile u8 *)(n->dev.devcfg + NETCFG_MAC + i);
        }
    } else {
        static const u8 fallback[6] = {0x52, 0x54, 0x00, 0x7e, 0x57, 0x05};
        memcpy(n->mac, fallback, 6);
    }
    if ((err = virtio_driver_ok(&n->dev))) {
        return err;
    }
    virtq_kick(&n->rx);
    return NULL;
}

static const char *net_reinit(Net *n)
{
    return net_init(n, 1);
}

static void mac_text(const u8 *mac, char *out)
{
    snformat(out, 18, "%x%x:%x%x:%x%x:%x%x:%x%x:%x%x", mac[0] >> 4, mac[0] & 15,
             mac[1] >> 4, mac[1] & 15, mac[2] >> 4, mac[2] & 15, mac[3] >> 4, mac[3] & 15,
             mac[4] >> 4, mac[4] & 15, mac[5] >> 4, mac[5] & 15);
}

static void ip_text(u32 ip, char *out)
{
    snformat(out, 16, "%u.%u.%u.%u", ip >> 24, ip >> 16 & 255, ip >> 8 & 255, ip & 255);
}

/* Finds the first virtio-net function on bus 0 and initialises it. */
static const char *net_open(Net *n, const char *who)
{
    u32 bdfs[4];
    char where[8], mac[18];

    dma_init();
    if (!net_find(bdfs, ARRAY_SIZE(bdfs))) {
        return "no virtio-net device (1af4:1041 or 1af4:1000) on PCI bus 0";
    }
    const char *err = virtio_open(&n->dev, bdfs[0], 6, VEC_BLK);
    if (err || (err = net_reinit(n))) {
        return err;
    }
    u32 bdf = n->dev.bdf;
    snformat(where, sizeof(where), "%x%x:%x%x.%x", bdf >> 12 & 0xF, bdf >> 8 & 0xF,
             bdf >> 7 & 1, bdf >> 3 & 0xF, bdf & 7);
    mac_text(n->mac, mac);
    int by_testos = 0;
    for (u32 i = 0; i < 6; i++) {
        by_testos |= n->dev.bars[i].assigned_by_testos;
    }
    uprintf("%s device %s 1af4:%x features=0x%lx rxq=%u txq=%u buf=%u event-idx=%s "
            "bars=%s",
            who, where, n->dev.device_id, n->dev.features, n->rx.qsize, n->tx.qsize,
            NET_BUF, virtio_has(&n->dev, VIRTIO_F_EVENT_IDX) ? "yes" : "no",
            by_testos ? "testos" : "firmware");
    return NULL;
}

/* Takes back the tx buffers the device is done with. */
static void tx_reap(Net *n)
{
    u32 id, len;

    while (virtq_reap(&n->tx, &id, &len) == 0) {
        if (id >= n->tx.qsize || !n->tx_busy[id]) {
            n->bogus_used++;
            continue;
        }
        n->tx_busy[id] = 0;
        n->tx_free[n->tx_nfree++] = (u16)id;
        n->tx_done++;
    }
}

/* A free tx buffer's frame area (its id in *id), or NULL if none within
 * wait_us (the queue full all that time). */
static u8 *tx_get(Net *n, u32 *id, u64 wait_us)
{
    u64 start = rdtsc();

    for (;;) {
        tx_reap(n);
        if (n->tx_nfree) {
            *id = n->tx_free[--n->tx_nfree];
            return n->txbuf + (u64)*id * NET_BUF + NET_HDR;
        }
        virtq_kick(&n->tx);
        if (rdtsc() - start > wait_us * boot_info.tsc_khz / 1000) {
            return NULL;
        }
        cpu_relax();
    }
}

/* Makes tx buffer id available with a frame of len bytes (padded to 60). */
static void tx_put(Net *n, u32 id, u32 len)
{
    u8 *frame = n->txbuf + (u64)id * NET_BUF + NET_HDR;

    if (len < ETH_MIN) {
        memset(frame + len, 0, ETH_MIN - len);
        len = ETH_MIN;
    }
    n->tx.desc[id].len = NET_HDR + len;
    n->tx_busy[id] = 1;
    virtq_publish(&n->tx, (u16)id);
}

/* Calls fn for each received frame, reposts its buffer; at most budget
 * frames. Returns how many. */
static u32 rx_poll(Net *n, void (*fn)(Net *n, u8 *frame, u32 len), u32 budget)
{
    u32 id, len, got = 0;

    while (got < budget && virtq_reap(&n->rx, &id, &len) == 0) {
        if (id >= n->rx.qsize) {
            n->bogus_used++;
            continue;
        }
        got++;
        n->rx_frames++;
        if (len >= NET_HDR && len <= NET_BUF) {
            fn(n, n->rxbuf + (u64)id * NET_BUF + NET_HDR, len - NET_HDR);
        }
        n->rx.desc[id] = (VirtqDesc){(u64)(n->rxbuf + (u64)id * NET_BUF), NET_BUF,
                                     VIRTQ_DESC_F_WRITE, 0};
        virtq_publish(&n->rx, (u16)id);
    }
    if (got) {
        virtq_kick(&n->rx);
    }
    return got;
}

/* ---- protocols (IPv4 over Ethernet) ---- */

static u64 drops_printed;

/* Notes a frame dropped as malformed (the first 16 get a line). */
static void drop(const char *why, u32 len)
{
    if (drops_printed++ < 16) {
        uprintf("net drop %s len=%u", why, len);
    }
}

static int for_us(Net *n, const u8 *frame)
{
    static const u8 bcast[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

    return same(frame, n->mac, 6) || same(frame, bcast, 6);
}

/* ARP request for our address: the reply. */
static void arp_answer(Net *n, const u8 *frame, u32 len)
{
    u8 ours[4];
    u32 id;

    put32(ours, boot_info.ip);
    if (len < 42 || get16(frame + 14) != 1 || get16(frame + 16) != ETH_P_IP ||
        frame[18] != 6 || frame[19] != 4 || get16(frame + 20) != 1 ||
        !same(frame + 38, ours, 4)) {
        return;
    }
    u8 *r = tx_get(n, &id, 10000);
    if (!r) {
        return;
    }
    memcpy(r, frame + 22, 6); /* to the sender's hardware address */
    memcpy(r + 6, n->mac, 6);
    put16(r + 12, ETH_P_ARP);
    put16(r + 14, 1);
    put16(r + 16, ETH_P_IP);
    r[18] = 6;
    r[19] = 4;
    put16(r + 20, 2); /* reply */
    memcpy(r + 22, n->mac, 6);
    memcpy(r + 28, ours, 4);
    memcpy(r + 32, frame + 22, 10); /* target: the sender's MAC and IP */
    tx_put(n, id, 42);
    virtq_kick(&n->tx);
}

/* Checks an IPv4 frame to us; returns the IP header's length (0: drop),
 * with the total length in *total. */
static u32 ip_check(Net *n, const u8 *frame, u32 len, u32 *total)
{
    const u8 *ip = frame + 14;

    if (len < 34 || ip[0] >> 4 != 4) {
        return 0;
    }
    u32 ihl = (ip[0] & 15) * 4u;
    *total = get16(ip + 2);
    if (ihl < 20 || *total < ihl || 14 + *total > len) {
        drop("ip-length", len);
        return 0;
    }
    if (csum_fold(csum_add(0, ip, ihl)) != 0) {
        drop("ip-checksum", len);
        return 0;
    }
    if (get32(ip + 16) != boot_info.ip) {
        return 0;
    }
    if (get16(ip + 6) & 0x3FFF) { /* MF or a fragment offset */
        drop("ip-fragment", len);
        return 0;
    }
    return ihl;
}

static u16 ip_id;

/* Writes the Ethernet and 20-byte IP headers of a reply to frame's sender
 * at r; the payload (plen bytes) goes at r + 34. */
static void reply_headers(Net *n, u8 *r, const u8 *frame, u8 proto, u32 plen)
{
    const u8 *ip = frame + 14;
    u8 *rip = r + 14;

    memcpy(r, frame + 6, 6);
    memcpy(r + 6, n->mac, 6);
    put16(r + 12, ETH_P_IP);
    rip[0] = 0x45;
    rip[1] = ip[1];
    put16(rip + 2, (u16)(20 + plen));
    put16(rip + 4, ip_id++);
    put16(rip + 6, 0);
    rip[8] = 64;
    rip[9] = proto;
    put16(rip + 10, 0);
    put32(rip + 12, boot_info.ip);
    memcpy(rip + 16, ip + 12, 4);
    put16(rip + 10, csum_fold(csum_add(0, rip, 20)));
}

static void icmp_answer(Net *n, const u8 *frame, u32 len, u32 ihl, u32 total)
{
    const u8 *icmp = frame + 14 + ihl;
    u32 plen = total - ihl, id;

    if (plen < 8 || icmp[0] != 8 || icmp[1] != 0) {
        return; /* not an echo request */
    }
    if (csum_fold(csum_add(0, icmp, plen)) != 0) {
        drop("icmp-checksum", len);
        return;
    }
    u8 *r = tx_get(n, &id, 10000);
    if (!r) {
        return;
    }
    reply_headers(n, r, frame, IPPROTO_ICMP, plen);
    u8 *ricmp = r + 34;
    memcpy(ricmp, icmp, plen);
    ricmp[0] = 0; /* echo reply */
    put16(ricmp + 2, 0);
    put16(ricmp + 2, csum_fold(csum_add(0, ricmp, plen)));
    tx_put(n, id, 34 + plen);
}

static void udp_answer(Net *n, const u8 *frame, u32 len, u32 ihl, u32 total)
{
    const u8 *ip = frame + 14, *udp = frame + 14 + ihl;
    u32 plen = total - ihl, id;

    if (plen < 8) {
        drop("udp-short", len);
        return;
    }
    u32 ulen = get16(udp + 4);
    if (ulen < 8 || ulen > plen) {
        drop("udp-length", len);
        return;
    }
    if (get16(udp + 6) &&
        csum_fold(csum_add(pseudo_sum(ip + 12, ip + 16, IPPROTO_UDP, ulen), udp, ulen))) {
        drop("udp-checksum", len);
        return;
    }
    if (get16(udp + 2) != UDP_ECHO_PORT) {
        return;
    }
    u8 *r = tx_get(n, &id, 10000);
    if (!r) {
        return;
    }
    reply_headers(n, r, frame, IPPROTO_UDP, ulen);
    u8 *rudp = r + 34;
    memcpy(rudp, udp, ulen);
    memcpy(rudp, udp + 2, 2); /* ports swapped */
    memcpy(rudp + 2, udp, 2);
    put16(rudp + 6, 0);
    u16 sum = csum_fold(csum_add(pseudo_sum(r + 26, r + 30, IPPROTO_UDP, ulen), rudp, ulen));
    put16(rudp + 6, sum ? sum : 0xFFFF);
    tx_put(n, id, 34 + ulen);
}

static u64 answered_arp, answered_icmp, answered_udp;

static void net_frame(Net *n, u8 *frame, u32 len)
{
    u32 total;

    if (len < 14 || !for_us(n, frame)) {
        return;
    }
    u16 type = get16(frame + 12);
    if (type == ETH_P_ARP) {
        arp_answer(n, frame, len);
        answered_arp++;
        return;
    }
    if (type != ETH_P_IP) {
        return;
    }
    u32 ihl = ip_check(n, frame, len, &total);
    if (!ihl) {
        return;
    }
    if (frame[14 + 9] == IPPROTO_ICMP) {
        icmp_answer(n, frame, len, ihl, total);
        answered_icmp++;
    } else if (frame[14 + 9] == IPPROTO_UDP) {
        udp_answer(n, frame, len, ihl, total);
        answered_udp++;
    }
}

/* ---- net ---- */

static u64 net_user(u64 unused)
{
    Net *n = &net;
    char mac[18], ip[16];

    const char *err = net_open(n, "net");
    if (err) {
        uprintf("net FAIL %s", err);
        return 0;
    }
    mac_text(n->mac, mac);
    ip_text(boot_info.ip, ip);
    uprintf("net up mac=%s ip=%s", mac, ip);
    for (;;) {
        if (rx_poll(n, net_frame, 64)) {
            virtq_kick(&n->tx);
        }
        tx_reap(n);
        cpu_relax();
    }
    return 0;
}

void scenario_net(Cpu *bsp)
{
    run_user(bsp, net_user, 0);
}

/* ---- net-blast ---- */

/* The frame net-blast sends from tx buffer id: UDP from testos.ip:9 to
 * testos.dst_ip:9 at testos.dst_mac, frame bytes long; the payload starts
 * with a 64-bit big-endian sequence number, then bytes (i * 7) & 0xff. The
 * checksums' sums without the sequence-dependent fields go to *ip_base and
 * *udp_base. */
static void blast_build(Net *n, u8 *f, u32 frame, u64 *ip_base, u64 *udp_base)
{
    u32 plen = frame - 34; /* UDP header + payload */
    u8 *ip = f + 14, *udp = f + 34;

    memcpy(f, boot_info.dst_mac, 6);
    memcpy(f + 6, n->mac, 6);
    put16(f + 12, ETH_P_IP);
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (u16)(20 + plen));
    put16(ip + 4, 0); /* the id: the sequence number's low 16 bits */
    put16(ip + 6, 0);
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    put16(ip + 10, 0);
    put32(ip + 12, boot_info.ip);
    put32(ip + 16, boot_info.dst_ip);
    put16(udp, UDP_DISCARD_PORT);
    put16(udp + 2, UDP_DISCARD_PORT);
    put16(udp + 4, (u16)plen);
    put16(udp + 6, 0);
    memset(udp + 8, 0, 8);
    for (u32 i = 16; i < plen; i++) {
        udp[i] = (u8)(i * 7);
    }
    *ip_base = csum_add(0, ip, 20);
    *udp_base = csum_add(pseudo_sum(ip + 12, ip + 16, IPPROTO_UDP, plen), udp, plen);
}

/* Stamps sequence number seq into a built frame and completes its checksums. */
static void blast_stamp(u8 *f, u64 seq, u64 ip_base, u64 udp_base)
{
    u8 *ip = f + 14, *udp = f + 34;

    put16(ip + 4, (u16)seq);
    put16(ip + 10, csum_fold(ip_base + (u16)seq));
    put32(udp + 8, (u32)(seq >> 32));
    put32(udp + 12, (u32)seq);
    u64 sum = udp_base + (seq >> 48) + (seq >> 32 & 0xFFFF) + (seq >> 16 & 0xFFFF) +
              (seq & 0xFFFF);
    u16 c = csum_fold(sum);
    put16(udp + 6, c ? c : 0xFFFF);
}

static void blast_frame(Net *n, u8 *frame, u32 len)
{
    /* counted by rx_poll; only ARP is answered, so a peer can resolve us */
    if (len >= 14 && for_us(n, frame) && get16(frame + 12) == ETH_P_ARP) {
        arp_answer(n, frame, len);
    }
}

static u64 net_blast_user(u64 unused)
{
    Net *n = &net;
    u64 secs = boot_info.seconds == PARAM_UNSET ? 5 : boot_info.seconds;
    u32 frame = (u32)boot_info.frame;
    char mac[18], dmac[18], ip[16], dip[16];
    static u64 ip_base[VIRTQ_MAX_QSIZE], udp_base[VIRTQ_MAX_QSIZE];

    if (!secs) {
        secs = 5;
    }
    if (frame < 60 || frame > 9014) {
        uprintf("net-blast FAIL testos.frame=%u is outside 60..9014", frame);
        return 0;
    }
    const char *err = net_open(n, "net-blast");
    if (err) {
        uprintf("net-blast FAIL %s", err);
        return 0;
    }
    for (u32 i = 0; i < n->tx.qsize; i++) {
        blast_build(n, n->txbuf + (u64)i * NET_BUF + NET_HDR, frame, &ip_base[i],
                    &udp_base[i]);
    }
    mac_text(n->mac, mac);
    mac_text(boot_info.dst_mac, dmac);
    ip_text(boot_info.ip, ip);
    ip_text(boot_info.dst_ip, dip);
    uprintf("net-blast up mac=%s ip=%s dst_mac=%s dst_ip=%s frame=%u seconds=%lu", mac, ip,
            dmac, dip, frame, secs);

    u64 khz = boot_info.tsc_khz;
    u64 seq = 0, tx0 = n->tx_done, rx0 = n->rx_frames;
    u64 start = rdtsc(), end = start + secs * 1000 * khz, now;
    while ((now = rdtsc()) < end) {
        tx_reap(n);
        u32 queued = 0;
        while (n->tx_nfree) {
            u32 id = n->tx_free[--n->tx_nfree];
            blast_stamp(n->txbuf + (u64)id * NET_BUF + NET_HDR, seq++, ip_base[id],
                        udp_base[id]);
            n->tx.desc[id].len = NET_HDR + frame;
            n->tx_busy[id] = 1;
            virtq_publish(&n->tx, (u16)id);
            queued++;
        }
        if (queued) {
            virtq_kick(&n->tx);
        }
        rx_poll(n, blast_frame, n->rx.qsize);
        cpu_relax();
    }
    u64 ticks = now - start;
    u64 tx = n->tx_done - tx0, rx = n->rx_frames - rx0;
    /* let the device finish what is queued (not counted), at most 1 s */
    for (u64 t0 = rdtsc(); n->tx_nfree < n->tx.qsize && rdtsc() - t0 < 1000 * khz;) {
        tx_reap(n);
        virtq_kick(&n->tx);
    }
    uprintf("net-blast frame=%u seconds=%lu tx=%lu rx=%lu tx_pps=%lu rx_pps=%lu", frame,
            secs, tx, rx, tx * khz * 1000 / ticks, rx * khz * 1000 / ticks);
    return 0;
}

void scenario_net_blast(Cpu *bsp)
{
    run_user(bsp, net_blast_user, 0);
}

/* ---- net-hostile ---- */

#define HOSTILE_TIMEOUT_MS 1000
#define HIGH_ADDR 0x7FFFFFFFF000UL
#define BIG_FRAME 65550 /* more than any tap or Ethernet takes */

typedef struct NetHostile {
    Net *n;
    u8 *buf; /* 128 KiB of valid RAM: a header and a frame to send, or room */
} NetHostile;

/* Puts a valid broadcast UDP frame of len bytes (after a zero virtio-net
 * header) at p: what the tx cases break. */
static void hostile_frame(Net *n, u8 *p, u32 len)
{
    u64 ib, ub;

    memset(p, 0, NET_HDR);
    u8 save[6];
    memcpy(save, boot_info.dst_mac, 6);
    memset(boot_info.dst_mac, 0xFF, 6);
    blast_build(n, p + NET_HDR, len, &ib, &ub);
    blast_stamp(p + NET_HDR, 0, ib, ub);
    memcpy(boot_info.dst_mac, save, 6);
}

static void d_set(Virtq *q, u16 i, u64 addr, u32 len, u16 flags, u16 next)
{
    q->desc[i] = (VirtqDesc){addr, len, flags, next};
}

/* Each case builds at descriptor 0 (and 1) of its queue and publishes,
 * or returns 1 if it made its avail ring changes itself. */
static int h_tx_loop(NetHostile *h)
{
    Virtq *q = &h->n->tx;
    hostile_frame(h->n, h->buf, 60);
    d_set(q, 0, (u64)h->buf, 36, VIRTQ_DESC_F_NEXT, 1);
    d_set(q, 1, (u64)h->buf + 36, 36, VIRTQ_DESC_F_NEXT, 0);
    return 0;
}

static int h_tx_next_oob(NetHostile *h)
{
    Virtq *q = &h->n->tx;
    hostile_frame(h->n, h->buf, 60);
    d_set(q, 0, (u64)h->buf, 36, VIRTQ_DESC_F_NEXT, (u16)(q->qsize + 3));
    return 0;
}

static int h_tx_zero_len(NetHostile *h)
{
    d_set(&h->n->tx, 0, (u64)h->buf, 0, 0, 0);
    return 0;
}

static int h_tx_short(NetHostile *h)
{
    memset(h->buf, 0, NET_HDR);
    d_set(&h->n->tx, 0, (u64)h->buf, 4, 0, 0); /* less than the header */
    return 0;
}

static int h_tx_header_only(NetHostile *h)
{
    memset(h->buf, 0, NET_HDR);
    d_set(&h->n->tx, 0, (u64)h->buf, NET_HDR, 0, 0); /* an empty frame */
    return 0;
}

static int h_tx_runt(NetHostile *h)
{
    hostile_frame(h->n, h->buf, 60);
    d_set(&h->n->tx, 0, (u64)h->buf, NET_HDR + 8, 0, 0); /* 8 bytes of frame */
    return 0;
}

static int h_tx_split_header(NetHostile *h)
{
    /* valid (VERSION_1 implies any layout): the header over two descriptors */
    Virtq *q = &h->n->tx;
    hostile_frame(h->n, h->buf, 60);
    d_set(q, 0, (u64)h->buf, 5, VIRTQ_DESC_F_NEXT, 1);
    d_set(q, 1, (u64)h->buf + 5, NET_HDR - 5 + 60, 0, 0);
    return 0;
}

static int h_tx_oversize(NetHostile *h)
{
    hostile_frame(h->n, h->buf, 60);
    d_set(&h->n->tx, 0, (u64)h->buf, NET_HDR + BIG_FRAME, 0, 0);
    return 0;
}

static int h_tx_writable(NetHostile *h)
{
    hostile_frame(h->n, h->buf, 60);
    d_set(&h->n->tx, 0, (u64)h->buf, NET_HDR + 60, VIRTQ_DESC_F_WRITE, 0);
    return 0;
}

static int h_tx_addr_outside(NetHostile *h)
{
    d_set(&h->n->tx, 0, HIGH_ADDR, NET_HDR + 60, 0, 0);
    return 0;
}

static int h_tx_addr_past_ram(NetHostile *h)
{
    d_set(&h->n->tx, 0, e820_ram_top(), NET_HDR + 60, 0, 0);
    return 0;
}

static int h_tx_huge_len(NetHostile *h)
{
    d_set(&h->n->tx, 0, dma_pool_end() - 4096, 0xFFFFFFFF, 0, 0);
    return 0;
}

static int h_tx_head_oob(NetHostile *h)
{
    virtq_publish(&h->n->tx, (u16)(h->n->tx.qsize + 1));
    return 1;
}

static int h_tx_avail_jump(NetHostile *h)
{
    Virtq *q = &h->n->tx;
    hostile_frame(h->n, h->buf, 60);
    d_set(q, 0, (u64)h->buf, NET_HDR + 60, 0, 0);
    for (u32 i = 0; i <= q->qsize; i++) {
        q->avail[2 + (q->avail_idx + i) % q->qsize] = 0;
    }
    q->avail_idx = (u16)(q->avail_idx + q->qsize + 1);
    __asm__ volatile("" ::: "memory");
    q->avail[1] = q->avail_idx;
    return 1;
}

/* Receive cases: only this buffer is posted; a frame from the host uses it. */
static int h_rx_short(NetHostile *h)
{
    d_set(&h->n->rx, 0, (u64)h->buf, 4, VIRTQ_DESC_F_WRITE, 0);
    return 0;
}

static int h_rx_zero_len(NetHostile *h)
{
    d_set(&h->n->rx, 0, (u64)h->buf, 0, VIRTQ_DESC_F_WRITE, 0);
    return 0;
}

static int h_rx_header_only(NetHostile *h)
{
    d_set(&h->n->rx, 0, (u64)h->buf, NET_HDR, VIRTQ_DESC_F_WRITE, 0);
    return 0;
}

static int h_rx_readonly(NetHostile *h)
{
    d_set(&h->n->rx, 0, (u64)h->buf, NET_BUF, 0, 0);
    return 0;
}

static int h_rx_loop(NetHostile *h)
{
    Virtq *q = &h->n->rx;
    d_set(q, 0, (u64)h->buf, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    d_set(q, 1, (u64)h->buf + 64, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
    return 0;
}

static int h_rx_addr_outside(NetHostile *h)
{
    d_set(&h->n->rx, 0, HIGH_ADDR, NET_BUF, VIRTQ_DESC_F_WRITE, 0);
    return 0;
}

static int h_rx_addr_past_ram(NetHostile *h)
{
    d_set(&h->n->rx, 0, e820_ram_top(), NET_BUF, VIRTQ_DESC_F_WRITE, 0);
    return 0;
}

static int h_rx_huge_len(NetHostile *h)
{
    d_set(&h->n->rx, 0, dma_pool_end() - 4096, 0xFFFFFFFF, VIRTQ_DESC_F_WRITE, 0);
    return 0;
}

static const struct {
    const char *name;
    int rx; /* a receive-queue case (needs a frame from the host) */
    int (*build)(NetHostile *h);
} net_cases[] = {
    {"tx-loop", 0, h_tx_loop},
    {"tx-next-oob", 0, h_tx_next_oob},
    {"tx-zero-len", 0, h_tx_zero_len},
    {"tx-short", 0, h_tx_short},
    {"tx-header-only", 0, h_tx_header_only},
    {"tx-runt", 0, h_tx_runt},
    {"tx-split-header", 0, h_tx_split_header},
    {"tx-oversize", 0, h_tx_oversize},
    {"tx-writable", 0, h_tx_writable},
    {"tx-addr-outside", 0, h_tx_addr_outside},
    {"tx-addr-past-ram", 0, h_tx_addr_past_ram},
    {"tx-huge-len", 0, h_tx_huge_len},
    {"tx-head-oob", 0, h_tx_head_oob},
    {"tx-avail-jump", 0, h_tx_avail_jump},
    {"rx-short", 1, h_rx_short},
    {"rx-zero-len", 1, h_rx_zero_len},
    {"rx-header-only", 1, h_rx_header_only},
    {"rx-readonly", 1, h_rx_readonly},
    {"rx-loop", 1, h_rx_loop},
    {"rx-addr-outside", 1, h_rx_addr_outside},
    {"rx-addr-past-ram", 1, h_rx_addr_past_ram},
    {"rx-huge-len", 1, h_rx_huge_len},
};

/* Waits for a used entry on q or NEEDS_RESET, at most timeout_ms: 1 with
 * the entry, -3 on NEEDS_RESET, -1 on timeout. */
static int hostile_wait(Net *n, Virtq *q, u32 *id, u32 *len, u64 timeout_ms)
{
    u64 start = rdtsc(), checked = start, ms = boot_info.tsc_khz;

    for (;;) {
        if (virtq_reap(q, id, len) == 0) {
            return 1;
        }
        u64 now = rdtsc();
        if (now - checked > ms) {
            checked = now;
            if (virtio_status(&n->dev) & VIRTIO_STATUS_NEEDS_RESET) {
                return -3;
            }
            if (now - start > timeout_ms * ms) {
                return -1;
            }
        }
        cpu_relax();
    }
}

static const char *hostile_case(NetHostile *h, u32 c)
{
    Net *n = h->n;
    const char *err = net_init(n, !net_cases[c].rx);
    if (err) {
        return err;
    }
    Virtq *q = net_cases[c].rx ? &n->rx : &n->tx;
    memset(h->buf, 0, 4096);
    if (!net_cases[c].build(h)) {
        virtq_publish(q, 0);
    }
    virtq_kick(q);
    u32 id = 0, len = 0;
    int r = hostile_wait(n, q, &id, &len, HOSTILE_TIMEOUT_MS);
    int needs_reset = r == -3 || (virtio_status(&n->dev) & VIRTIO_STATUS_NEEDS_RESET);
    if (r == 1) {
        uprintf("net-hostile %s used id=%u len=%u%s", net_cases[c].name, id, len,
                needs_reset ? " needs-reset" : "");
    } else {
        uprintf("net-hostile %s used=none %s", net_cases[c].name,
                needs_reset ? "needs-reset" : "timeout");
    }
    return NULL;
}

static u64 scribble = 0x243F6A8885A308D3UL;

/* Valid frames on the tx queue while the driver keeps overwriting the
 * used ring (flags, idx, entries, avail_event) with junk; notifies on every
 * round regardless of what the ring says. */
static const char *hostile_used_rewrite(NetHostile *h)
{
    Net *n = h->n;
    Virtq *q = &n->tx;
    const char *err = net_reinit(n);
    u32 half = q->qsize / 2, rounds = 50;
    u64 ms = boot_info.tsc_khz;

    if (err) {
        return err;
    }
    for (u32 i = 0; i < q->qsize; i++) {
        hostile_frame(n, n->txbuf + (u64)i * NET_BUF, 60);
        q->desc[i].len = NET_HDR + 60;
    }
    int needs_reset = 0;
    for (u32 r = 0; r < rounds && !needs_reset; r++) {
        for (u32 i = 0; i < half; i++) {
            virtq_publish(q, (u16)((r & 1) * half + i));
        }
        __asm__ volatile("mfence" ::: "memory");
        *q->notify = q->index;
        for (u64 t0 = rdtsc(); rdtsc() - t0 < 20 * ms;) {
            scribble = scribble * 6364136223846793005UL + 1442695040888963407UL;
            u32 words = (6 + 8 * q->qsize) / 2;
            volatile u16 *used = (volatile u16 *)q->used;
            used[(scribble >> 33) % words] = (u16)(scribble >> 17);
            used[1] = (u16)(scribble >> 40); /* idx above all */
        }
        needs_reset = virtio_status(&n->dev) & VIRTIO_STATUS_NEEDS_RESET;
    }
    uprintf("net-hostile used-rewrite rounds=%u frames=%u %s", rounds, rounds * half,
            needs_reset ? "needs-reset" : "ok");
    return NULL;
}

/* True if testos.skip (a comma-separated list) names this case. */
static int skipped(const char *name)
{
    size_t nlen = strlen(name);

    for (const char *p = boot_info.skip; *p;) {
        const char *e = p;
        while (*e && *e != ',') {
            e++;
        }
        if ((size_t)(e - p) == nlen && !strncmp(p, name, nlen)) {
            return 1;
        }
        p = *e ? e + 1 : e;
    }
    return 0;
}

static u64 net_hostile_user(u64 unused)
{
    Net *n = &net;
    NetHostile h = {n, NULL};

    const char *err = net_open(n, "net-hostile");
    if (err) {
        uprintf("net-hostile FAIL %s", err);
        return 0;
    }
    if (!(h.buf = dma_alloc(128 * 1024, 4096))) {
        uprintf("net-hostile FAIL DMA pool too small");
        return 0;
    }
    for (u32 c = 0; c < ARRAY_SIZE(net_cases); c++) {
        if (skipped(net_cases[c].name)) {
            uprintf("net-hostile %s skipped (testos.skip)", net_cases[c].name);
            continue;
        }
        if ((err = hostile_case(&h, c))) {
            uprintf("net-hostile FAIL re-initialising before %s: %s", net_cases[c].name,
                    err);
            return 0;
        }
    }
    if (skipped("used-rewrite")) {
        uprintf("net-hostile used-rewrite skipped (testos.skip)");
    } else if ((err = hostile_used_rewrite(&h))) {
        uprintf("net-hostile FAIL re-initialising: %s", err);
        return 0;
    }
    if ((err = net_reinit(n))) {
        uprintf("net-hostile FAIL re-initialising: %s", err);
        return 0;
    }
    /* the device works again: a frame goes out; one comes in if the host sends */
    u32 id, len;
    hostile_frame(n, n->txbuf, 60);
    n->tx_busy[0] = 1;
    tx_put(n, 0, 60);
    virtq_kick(&n->tx);
    int r = hostile_wait(n, &n->tx, &id, &len, HOSTILE_TIMEOUT_MS);
    if (r != 1 || id != 0) {
        uprintf("net-hostile FAIL a valid frame after a reset: %s",
                r == -3 ? "needs-reset" : r == -1 ? "not sent in 1 s" : "wrong used id");
        return 0;
    }
    r = hostile_wait(n, &n->rx, &id, &len, HOSTILE_TIMEOUT_MS);
    uprintf("net-hostile survived tx=ok rx=%s", r == 1 ? "ok" : "none");
    return 0;
}

void scenario_net_hostile(Cpu *bsp)
{
    run_user(bsp, net_hostile_user, 0);
}
