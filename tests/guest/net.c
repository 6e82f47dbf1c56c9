/* net.c: a virtio-net driver and the net scenarios. `net` answers ARP, ICMP
 * echo and UDP echo (port 7) for testos.ip until the VM is stopped;
 * `net-blast` sends UDP frames and counts received ones as fast as it can
 * for testos.seconds (`net-hostile`, which hands the device broken rings,
 * is nethostile.c).
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
#include "net.h"

Net net;

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
const char *net_init(Net *n, int post_rx)
{
    u64 wanted = 1UL << VIRTIO_F_NET_MAC;
    const char *err;

    if (boot_info.evidx) {
        wanted |= 1UL << VIRTIO_F_EVENT_IDX;
    }
    if (boot_info.standby) {
        wanted |= 1UL << VIRTIO_F_NET_STANDBY;
    }
    if (boot_info.netctl) {
        wanted |= 1UL << VIRTIO_F_NET_STATUS | 1UL << VIRTIO_F_NET_CTRL_VQ |
                  1UL << VIRTIO_F_NET_CTRL_RX | 1UL << VIRTIO_F_NET_CTRL_VLAN |
                  1UL << VIRTIO_F_NET_CTRL_RX_EXTRA;
    }
    if ((err = virtio_negotiate(&n->dev, wanted)) ||
        (err = virtq_setup(&n->dev, &n->rx, 0, VIRTQ_MAX_QSIZE, 0)) ||
        (err = virtq_setup(&n->dev, &n->tx, 1, VIRTQ_MAX_QSIZE, 0))) {
        return err;
    }
    if (boot_info.netctl) {
        if (!virtio_has(&n->dev, VIRTIO_F_NET_CTRL_VQ)) {
            return "testos.netctl: the device offers no control queue";
        }
        if ((err = virtq_setup(&n->dev, &n->ctl, 2, 64, 0))) {
            return err;
        }
        if (!n->ctlbuf && !(n->ctlbuf = dma_alloc(4096, 4096))) {
            return "DMA pool too small";
        }
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

const char *net_reinit(Net *n)
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
const char *net_open(Net *n, const char *who)
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
void net_tx_put(Net *n, u32 id, u32 len)
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
    net_tx_put(n, id, 42);
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
    net_tx_put(n, id, 34 + plen);
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
    u16 sum =
        csum_fold(csum_add(pseudo_sum(r + 26, r + 30, IPPROTO_UDP, ulen), rudp, ulen));
    put16(rudp + 6, sum ? sum : 0xFFFF);
    net_tx_put(n, id, 34 + ulen);
}

static void net_frame(Net *n, u8 *frame, u32 len)
{
    u32 total;

    if (len < 14 || !for_us(n, frame)) {
        return;
    }
    u16 type = get16(frame + 12);
    if (type == ETH_P_ARP) {
        arp_answer(n, frame, len);
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
    } else if (frame[14 + 9] == IPPROTO_UDP) {
        udp_answer(n, frame, len, ihl, total);
    }
}

/* ---- the control queue and the link (testos.netctl) ---- */

/* One command: class, command, len bytes of data; the device's ack. */
static const char *ctl_command(Net *n, u8 cls, u8 cmd, const u8 *data, u32 len)
{
    u8 *b = n->ctlbuf;
    volatile u8 *ack = b + 2048;
    u32 id, used_len;
    u64 start = rdtsc();

    b[0] = cls;
    b[1] = cmd;
    memcpy(b + 2, data, len);
    *ack = 0xEE;
    n->ctl.desc[0] = (VirtqDesc){(u64)b, 2 + len, VIRTQ_DESC_F_NEXT, 1};
    n->ctl.desc[1] = (VirtqDesc){(u64)ack, 1, VIRTQ_DESC_F_WRITE, 0};
    virtq_publish(&n->ctl, 0);
    virtq_kick(&n->ctl);
    while (virtq_reap(&n->ctl, &id, &used_len) != 0) {
        if (rdtsc() - start > 1000 * boot_info.tsc_khz) {
            return "a control command got no answer within 1 s";
        }
        cpu_relax();
    }
    return *ack == 0 ? NULL : "the device refused a control command";
}

const char *net_set_filters(Net *n)
{
    static const u8 off[1] = {0}, vlan5[2] = {5, 0}, vlan100[2] = {100, 0};
    /* two unicast, then two multicast addresses */
    static const u8 table[] = {2, 0, 0, 0, 0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb,
                               2, 0, 0, 0, 0x01, 0, 0x5e, 0, 0, 1, 0x33, 0x33, 0, 0, 0, 1};
    const char *err;

    if ((err = ctl_command(n, 0, 0, off, 1)) ||       /* RX PROMISC off */
        (err = ctl_command(n, 0, 1, off, 1)) ||       /* RX ALLMULTI off */
        (err = ctl_command(n, 1, 0, table, sizeof(table))) || /* MAC_TABLE_SET */
        (err = ctl_command(n, 2, 0, vlan5, 2)) ||     /* VLAN ADD 5 */
        (err = ctl_command(n, 2, 0, vlan100, 2))) {   /* VLAN ADD 100 */
        return err;
    }
    return NULL;
}

int net_link_up(Net *n)
{
    return (*(volatile u8 *)(n->dev.devcfg + NETCFG_STATUS) & 1) != 0;
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
    int link = 1;
    u64 link_checked = rdtsc();
    if (boot_info.netctl) {
        err = net_set_filters(n);
        uprintf(err ? "net filters FAIL %s" : "net filters set%s", err ? err : "");
        link = net_link_up(n);
        uprintf("net link %s", link ? "up" : "down");
    }
    for (;;) {
        if (rx_poll(n, net_frame, 64)) {
            virtq_kick(&n->tx);
        }
        tx_reap(n);
        /* the link bit, every 10 ms (each read is an exit) */
        if (boot_info.netctl && rdtsc() - link_checked > 10 * boot_info.tsc_khz) {
            link_checked = rdtsc();
            if (net_link_up(n) != link) {
                link = !link;
                uprintf("net link %s", link ? "up" : "down");
            }
        }
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
 * testos.dst_ip:9 at dst_mac, frame bytes long; the payload starts
 * with a 64-bit big-endian sequence number, then bytes (i * 7) & 0xff. The
 * checksums' sums without the sequence-dependent fields go to *ip_base and
 * *udp_base. */
void net_blast_build(Net *n, u8 *f, u32 frame, const u8 *dst_mac, u64 *ip_base,
                     u64 *udp_base)
{
    u32 plen = frame - 34; /* UDP header + payload */
    u8 *ip = f + 14, *udp = f + 34;

    memcpy(f, dst_mac, 6);
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
void net_blast_stamp(u8 *f, u64 seq, u64 ip_base, u64 udp_base)
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
        net_blast_build(n, n->txbuf + (u64)i * NET_BUF + NET_HDR, frame,
                        boot_info.dst_mac, &ip_base[i], &udp_base[i]);
    }
    mac_text(n->mac, mac);
    mac_text(boot_info.dst_mac, dmac);
    ip_text(boot_info.ip, ip);
    ip_text(boot_info.dst_ip, dip);
    uprintf("net-blast up mac=%s ip=%s dst_mac=%s dst_ip=%s frame=%u seconds=%lu", mac,
            ip, dmac, dip, frame, secs);

    u64 khz = boot_info.tsc_khz;
    u64 seq = 0, tx0 = n->tx_done, rx0 = n->rx_frames;
    u64 start = rdtsc(), end = start + secs * 1000 * khz, now;
    while ((now = rdtsc()) < end) {
        tx_reap(n);
        u32 queued = 0;
        while (n->tx_nfree) {
            u32 id = n->tx_free[--n->tx_nfree];
            net_blast_stamp(n->txbuf + (u64)id * NET_BUF + NET_HDR, seq++, ip_base[id],
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
