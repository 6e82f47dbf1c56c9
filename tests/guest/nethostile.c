/* nethostile.c: the net-hostile scenario: broken descriptor chains and
 * buffers on virtio-net's transmit and receive queues, and a used ring the
 * driver keeps overwriting, one case at a time from a reset device; then a
 * check that the device works after a reset (README.md lists the cases). */
#include "net.h"

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
    static const u8 bcast[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    net_blast_build(n, p + NET_HDR, len, bcast, &ib, &ub);
    net_blast_stamp(p + NET_HDR, 0, ib, ub);
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
        if (testos_skipped(net_cases[c].name)) {
            uprintf("net-hostile %s skipped (testos.skip)", net_cases[c].name);
            continue;
        }
        if ((err = hostile_case(&h, c))) {
            uprintf("net-hostile FAIL re-initialising before %s: %s", net_cases[c].name,
                    err);
            return 0;
        }
    }
    if (testos_skipped("used-rewrite")) {
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
    net_tx_put(n, 0, 60);
    virtq_kick(&n->tx);
    int r = hostile_wait(n, &n->tx, &id, &len, HOSTILE_TIMEOUT_MS);
    if (r != 1 || id != 0) {
        uprintf("net-hostile FAIL a valid frame after a reset: %s",
                r == -3   ? "needs-reset"
                : r == -1 ? "not sent in 1 s"
                          : "wrong used id");
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
