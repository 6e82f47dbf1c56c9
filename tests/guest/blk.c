/* blk.c: the virtio-blk scenarios. `blk` checks the host's pattern, writes
 * its own, flushes and reads it back; `blk-perf` measures 4 KiB random and
 * 1 MiB sequential I/O; `blk-hostile` hands the device malformed requests.
 * All of it runs in ring 3 (the driver is virtio.c); interrupts arrive in
 * ring 0 (blk_irq_entry) and are only counted. Patterns (README.md):
 *   image before boot: byte i of sector S = (S * 31 + i * 7 + 1) & 0xff
 *   written by testos: byte i of sector S = (S * 13 + i * 3 + 5) & 0xff */
#include "virtio.h"

volatile u64 blk_irqs;

static Blk blk;

static u8 pattern_host(u64 sector, u32 i)
{
    return (u8)(sector * 31 + i * 7 + 1);
}

static u8 pattern_guest(u64 sector, u32 i)
{
    return (u8)(sector * 13 + i * 3 + 5);
}

static const char *status_name(int st)
{
    switch (st) {
    case VIRTIO_BLK_S_OK:
        return "ok";
    case VIRTIO_BLK_S_IOERR:
        return "ioerr";
    case VIRTIO_BLK_S_UNSUPP:
        return "unsupp";
    case 0xFF:
        return "unwritten";
    case -1:
        return "timeout";
    case -2:
        return "bogus-used-id";
    case -3:
        return "needs-reset";
    case -4:
        return "too-many-segments";
    default:
        return "bad-status-byte";
    }
}

static void bdf_text(u32 bdf, char *out)
{
    snformat(out, 8, "%x%x:%x%x.%x", bdf >> 12 & 0xF, bdf >> 8 & 0xF, bdf >> 7 & 1,
             bdf >> 3 & 0xF, bdf & 7);
}

/* True if the device holds the testos boot image (testos.img): sector 1
 * begins with the command-line magic. Uses (and clobbers) scratch. */
static int is_boot_disk(Blk *b, u8 *scratch)
{
    BlkSeg seg = {(u64)scratch, 512};
    static const char magic[] = BOOTDISK_MAGIC;

    if (blk_sync(b, VIRTIO_BLK_T_IN, 1, &seg, 1, 0) != VIRTIO_BLK_S_OK) {
        return 0;
    }
    return !strncmp((const char *)scratch, magic, sizeof(magic) - 1);
}

/* Opens the device the scenario uses: testos.blkdev=N (the Nth virtio-blk
 * function on bus 0), else the first one that is not the testos boot disk. */
static const char *blk_select(Blk *b, int irq, const char *who)
{
    u32 bdfs[16];
    u32 n = blk_find(bdfs, ARRAY_SIZE(bdfs));
    u8 *scratch = dma_alloc(4096, 4096);
    const char *err = NULL;
    char where[8];

    if (!scratch) {
        return "DMA pool too small";
    }
    if (!n) {
        return "no virtio-blk device (1af4:1042 or 1af4:1001) on PCI bus 0";
    }
    if (boot_info.blkdev != PARAM_UNSET) {
        if (boot_info.blkdev >= n) {
            return "testos.blkdev is past the last virtio-blk device";
        }
        err = blk_open(b, bdfs[boot_info.blkdev], irq);
    } else {
        u32 i;
        for (i = 0; i < n; i++) {
            err = blk_open(b, bdfs[i], irq);
            if (err || !is_boot_disk(b, scratch)) {
                break;
            }
            blk_reset(b);
        }
        if (i == n) {
            return "every virtio-blk device holds the testos boot image "
                   "(testos.blkdev=N uses one anyway)";
        }
    }
    if (err) {
        return err;
    }
    int by_testos = 0;
    for (u32 i = 0; i < 6; i++) {
        by_testos |= b->dev.bars[i].assigned_by_testos;
    }
    bdf_text(b->dev.bdf, where);
    uprintf("%s device %s 1af4:%x capacity=%lu features=0x%lx queue=%u slots=%u "
            "seg_max=%u msix=%s indirect=%s event-idx=%s bars=%s",
            who, where, b->dev.device_id, b->capacity, b->dev.features, b->vq.qsize,
            b->nslots, b->seg_max, b->vq.msix_ok ? "on" : "off",
            blk_has(b, VIRTIO_F_INDIRECT_DESC) ? "yes" : "no",
            blk_has(b, VIRTIO_F_EVENT_IDX) ? "yes" : "no",
            by_testos ? "testos" : "firmware");
    return NULL;
}

/* Splits [addr, addr + bytes) into segments of at most seg_bytes. */
static u32 segs_make(BlkSeg *segs, u64 addr, u64 bytes, u64 seg_bytes)
{
    u32 n = 0;

    for (u64 off = 0; off < bytes; off += seg_bytes) {
        u64 len = bytes - off < seg_bytes ? bytes - off : seg_bytes;
        segs[n++] = (BlkSeg){addr + off, (u32)len};
    }
    return n;
}

/* Transfers nsect sectors from sector first (data at buf, consecutive) in
 * requests of per_req sectors, with every slot in flight; each request's
 * data in segments of seg_bytes. Returns NULL or what failed (in err). */
static const char *blk_batch(Blk *b, u32 type, u64 first, u8 *buf, u64 nsect, u32 per_req,
                             u32 seg_bytes, int indirect, char *err, u32 err_size)
{
    const char *rw = type == VIRTIO_BLK_T_IN ? "read" : "write";
    u64 next = 0, done = 0;
    u64 slot_sector[BLK_MAX_SLOTS];
    u32 slot_count[BLK_MAX_SLOTS];
    BlkSeg segs[BLK_ITABLE_ENTRIES];
    u32 len;

    while (done < nsect) {
        for (u32 s = 0; s < b->nslots && next < nsect; s++) {
            if (b->slots[s].busy) {
                continue;
            }
            u32 cnt = nsect - next < per_req ? (u32)(nsect - next) : per_req;
            u32 n = segs_make(segs, (u64)buf + next * 512, cnt * 512UL, seg_bytes);
            if (blk_submit(b, s, type, first + next, segs, n, indirect) < 0) {
                snformat(err, err_size, "%s of %u segments refused (seg_max %u)", rw, n,
                         b->seg_max);
                return err;
            }
            slot_sector[s] = first + next;
            slot_count[s] = cnt;
            next += cnt;
        }
        blk_kick(b);
        int r = blk_wait(b, &len, 10000);
        if (r < 0) {
            snformat(err, err_size, "%s: %s", rw, status_name(r));
            return err;
        }
        u8 st = *b->slots[r].status;
        if (st != VIRTIO_BLK_S_OK) {
            snformat(err, err_size, "%s at sector %lu: status %s", rw, slot_sector[r],
                     status_name(st));
            return err;
        }
        done += slot_count[r];
    }
    return NULL;
}

/* Verifies sectors [first, first + n) in buf against pattern; 0 or -1 with
 * the first difference in err. */
static int verify(const u8 *buf, u64 first, u64 n, u8 (*pattern)(u64, u32),
                  const char *what, char *err, u32 err_size)
{
    for (u64 s = 0; s < n; s++) {
        for (u32 i = 0; i < 512; i++) {
            u8 want = pattern(first + s, i);
            if (buf[s * 512 + i] != want) {
                snformat(err, err_size, "%s: sector %lu byte %u is 0x%x, want 0x%x", what,
                         first + s, i, buf[s * 512 + i], want);
                return -1;
            }
        }
    }
    return 0;
}

/* Segment size for multi-segment requests: 1 KiB where the slot's
 * descriptors or an indirect table hold 16 sectors' worth, else bigger. */
static u32 seg_bytes_for(Blk *b, u32 per_req_sectors)
{
    u32 max_data = blk_has(b, VIRTIO_F_INDIRECT_DESC) ? BLK_ITABLE_ENTRIES - 2
                                                      : b->descs_per_slot - 2;
    if (b->seg_max && b->seg_max < max_data) {
        max_data = b->seg_max;
    }
    u32 bytes = per_req_sectors * 512;
    u32 seg = 1024;
    while (seg < bytes && (bytes + seg - 1) / seg > max_data) {
        seg *= 2;
    }
    return seg;
}

static u64 blk_user(u64 unused)
{
    static char err[160];
    Blk *b = &blk;
    u64 sectors = boot_info.sectors, wstart = boot_info.wstart;
    int irq = boot_info.irq == PARAM_UNSET ? 1 : (int)boot_info.irq;

    dma_init();
    const char *e = blk_select(b, irq, "blk");
    if (e) {
        uprintf("blk FAIL %s", e);
        return 0;
    }
    u64 irqs0 = blk_irqs;
    if (!sectors || wstart + sectors > b->capacity || sectors > b->capacity) {
        uprintf("blk FAIL capacity %lu sectors is too small for testos.sectors=%lu "
                "testos.wstart=%lu",
                b->capacity, sectors, wstart);
        return 0;
    }
    if (blk_has(b, VIRTIO_F_BLK_RO)) {
        uprintf("blk FAIL the device is read-only (VIRTIO_BLK_F_RO)");
        return 0;
    }
    u8 *buf = dma_alloc(sectors * 512, 4096);
    if (!buf) {
        uprintf("blk FAIL DMA pool too small for %lu sectors", sectors);
        return 0;
    }

    /* 1: the host's pattern, one single-descriptor request per sector. */
    memset(buf, 0xA5, sectors * 512);
    for (u64 s = 0; s < sectors; s++) {
        BlkSeg seg = {(u64)buf + s * 512, 512};
        int st = blk_sync(b, VIRTIO_BLK_T_IN, s, &seg, 1, 0);
        if (st != VIRTIO_BLK_S_OK) {
            uprintf("blk FAIL read of sector %lu: %s", s, status_name(st));
            return 0;
        }
    }
    if (verify(buf, 0, sectors, pattern_host, "read", err, sizeof(err))) {
        uprintf("blk FAIL %s", err);
        return 0;
    }
    /* 2: again, 16 sectors per request in 1 KiB segments (indirect tables
     * where negotiated), all slots in flight. */
    memset(buf, 0x5A, sectors * 512);
    if ((e = blk_batch(b, VIRTIO_BLK_T_IN, 0, buf, sectors, 16, seg_bytes_for(b, 16), 1,
                       err, sizeof(err))) ||
        verify(buf, 0, sectors, pattern_host, "multi-sector read", err, sizeof(err))) {
        uprintf("blk FAIL %s", err);
        return 0;
    }
    u64 read_ok = sectors;

    /* 3: testos's pattern at wstart, 4 sectors per request in 512-byte
     * segments (direct chains), all slots in flight; then FLUSH. */
    for (u64 s = 0; s < sectors; s++) {
        for (u32 i = 0; i < 512; i++) {
            buf[s * 512 + i] = pattern_guest(wstart + s, i);
        }
    }
    u32 wseg = (b->descs_per_slot >= 6 || blk_has(b, VIRTIO_F_INDIRECT_DESC)) &&
                       (!b->seg_max || b->seg_max >= 4)
                   ? 512
                   : seg_bytes_for(b, 4);
    if ((e = blk_batch(b, VIRTIO_BLK_T_OUT, wstart, buf, sectors, 4, wseg, 0, err,
                       sizeof(err)))) {
        uprintf("blk FAIL %s", e);
        return 0;
    }
    const char *flush = "none";
    if (blk_has(b, VIRTIO_F_BLK_FLUSH)) {
        int st = blk_sync(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0);
        if (st != VIRTIO_BLK_S_OK) {
            uprintf("blk FAIL flush: %s", status_name(st));
            return 0;
        }
        flush = "ok";
    }
    /* 4: read it back (as in 2) and check. */
    memset(buf, 0x3C, sectors * 512);
    if ((e = blk_batch(b, VIRTIO_BLK_T_IN, wstart, buf, sectors, 16, seg_bytes_for(b, 16),
                       1, err, sizeof(err))) ||
        verify(buf, wstart, sectors, pattern_guest, "read back", err, sizeof(err))) {
        uprintf("blk FAIL %s", err);
        return 0;
    }
    uprintf("blk capacity=%lu read-ok=%lu write-ok=%lu flush=%s irqs=%lu", b->capacity,
            read_ok, sectors, flush, blk_irqs - irqs0);
    return 0;
}

void scenario_blk(Cpu *bsp)
{
    run_user(bsp, blk_user, 0);
}

/* ---- blk-perf ---- */

static u64 rng_state = 0x9E3779B97F4A7C15UL;

static u64 rng_next(void)
{
    u64 x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* ops 4 KiB requests at random 4 KiB-aligned offsets in the first nblocks
 * blocks, qd in flight; returns TSC ticks, 0 on failure (printed). */
static u64 perf_random(Blk *b, u32 type, u64 ops, u32 qd, u64 nblocks, u8 *bufs)
{
    const char *rw = type == VIRTIO_BLK_T_IN ? "randread" : "randwrite";
    u64 submitted = 0, completed = 0;
    u32 len;
    u64 start = rdtsc();

    while (completed < ops) {
        for (u32 s = 0; s < qd && submitted < ops; s++) {
            if (b->slots[s].busy) {
                continue;
            }
            BlkSeg seg = {(u64)bufs + 4096UL * s, 4096};
            blk_submit(b, s, type, rng_next() % nblocks * 8, &seg, 1, 0);
            submitted++;
        }
        blk_kick(b);
        int r = blk_wait(b, &len, 10000);
        if (r < 0 || *b->slots[r].status != VIRTIO_BLK_S_OK) {
            uprintf("blk-perf FAIL rw=%s qd=%u: %s", rw, qd,
                    status_name(r < 0 ? r : *b->slots[r].status));
            return 0;
        }
        completed++;
        /* take every other completion already there before resubmitting */
        while (completed < ops && (r = blk_reap(b, &len)) >= 0) {
            if (*b->slots[r].status != VIRTIO_BLK_S_OK) {
                uprintf("blk-perf FAIL rw=%s qd=%u: %s", rw, qd,
                        status_name(*b->slots[r].status));
                return 0;
            }
            completed++;
        }
    }
    u64 ticks = rdtsc() - start;
    return ticks ? ticks : 1;
}

static u64 perf_sequential(Blk *b, u32 type, u64 mib, u8 *buf)
{
    BlkSeg seg = {(u64)buf, (u32)MIB};
    u64 start = rdtsc();

    for (u64 i = 0; i < mib; i++) {
        int st = blk_sync(b, type, i * 2048, &seg, 1, 0);
        if (st != VIRTIO_BLK_S_OK) {
            uprintf("blk-perf FAIL rw=%s at MiB %lu: %s",
                    type == VIRTIO_BLK_T_IN ? "read" : "write", i, status_name(st));
            return 0;
        }
    }
    u64 ticks = rdtsc() - start;
    return ticks ? ticks : 1;
}

static u64 blk_perf_user(u64 unused)
{
    Blk *b = &blk;
    int irq = boot_info.irq == PARAM_UNSET ? 0 : (int)boot_info.irq;
    u64 ops = boot_info.ops ? boot_info.ops : 2000;

    dma_init();
    const char *e = blk_select(b, irq, "blk-perf");
    if (e) {
        uprintf("blk-perf FAIL %s", e);
        return 0;
    }
    u64 mib = boot_info.mib ? boot_info.mib : 64;
    if (mib > b->capacity / 2048) {
        mib = b->capacity / 2048;
    }
    if (!mib) {
        uprintf("blk-perf FAIL capacity %lu sectors is below 1 MiB", b->capacity);
        return 0;
    }
    u8 *seqbuf = dma_alloc(MIB, 4096);
    u8 *bufs = dma_alloc(4096UL * BLK_MAX_SLOTS, 4096);
    if (!seqbuf || !bufs) {
        uprintf("blk-perf FAIL DMA pool too small");
        return 0;
    }
    for (u64 i = 0; i < MIB; i++) {
        seqbuf[i] = (u8)(i * 7 + i / 4096);
    }
    for (u64 i = 0; i < 4096UL * BLK_MAX_SLOTS; i++) {
        bufs[i] = (u8)(i * 13 + 1);
    }
    u64 khz = boot_info.tsc_khz;
    u64 irqs0 = blk_irqs;
    u64 ticks;

    /* Sequential first: the write also fills the region the random I/O uses. */
    if (!(ticks = perf_sequential(b, VIRTIO_BLK_T_OUT, mib, seqbuf))) {
        return 0;
    }
    uprintf("blk-perf rw=write bs=1048576 qd=1 mbps=%lu", mib * MIB * khz / ticks / 1000);
    if (!(ticks = perf_sequential(b, VIRTIO_BLK_T_IN, mib, seqbuf))) {
        return 0;
    }
    uprintf("blk-perf rw=read bs=1048576 qd=1 mbps=%lu", mib * MIB * khz / ticks / 1000);

    u32 qd32 = b->nslots < 32 ? b->nslots : 32;
    u64 nblocks = mib * 256;
    static const u32 types[2] = {VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
    for (u32 t = 0; t < 2; t++) {
        u32 qds[2] = {1, qd32};
        for (u32 q = 0; q < 2; q++) {
            if (!(ticks = perf_random(b, types[t], ops, qds[q], nblocks, bufs))) {
                return 0;
            }
            uprintf("blk-perf rw=%s bs=4096 qd=%u iops=%lu",
                    types[t] == VIRTIO_BLK_T_IN ? "randread" : "randwrite", qds[q],
                    ops * khz * 1000 / ticks);
        }
    }
    if (blk_has(b, VIRTIO_F_BLK_FLUSH)) {
        int st = blk_sync(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0);
        if (st != VIRTIO_BLK_S_OK) {
            uprintf("blk-perf FAIL flush: %s", status_name(st));
            return 0;
        }
    }
    uprintf("blk-perf mib=%lu ops=%lu irqs=%lu", mib, ops, blk_irqs - irqs0);
    return 0;
}

void scenario_blk_perf(Cpu *bsp)
{
    run_user(bsp, blk_perf_user, 0);
}

/* ---- blk-hostile ---- */

#define HOSTILE_TIMEOUT_MS 1000
#define HIGH_ADDR 0x7FFFFFFFF000UL

typedef struct Hostile {
    Blk *b;
    u8 *buf;        /* 8 KiB of valid RAM */
    VirtqDesc *it1; /* two indirect tables */
    VirtqDesc *it2;
} Hostile;

enum { H_PUBLISH, H_RAW }; /* H_RAW: the case made the avail ring changes itself */

static void hdr_set(Blk *b, u32 type, u64 sector)
{
    BlkSlot *s = &b->slots[0];
    memcpy(s->hdr, &type, 4);
    memset(s->hdr + 4, 0, 4);
    memcpy(s->hdr + 8, &sector, 8);
    *s->status = 0xFF;
    s->busy = 1;
}

/* The usual three descriptors at slot 0's head (flags for each). */
static void chain3(Hostile *h, u64 data, u32 len, u16 hdr_flags, u16 data_flags,
                   u16 status_flags, u16 status_next)
{
    Blk *b = h->b;
    BlkSlot *s = &b->slots[0];
    u16 d = s->head;

    b->vq.desc[d] =
        (VirtqDesc){(u64)s->hdr, 16, (u16)(hdr_flags | VIRTQ_DESC_F_NEXT), (u16)(d + 1)};
    b->vq.desc[d + 1] =
        (VirtqDesc){data, len, (u16)(data_flags | VIRTQ_DESC_F_NEXT), (u16)(d + 2)};
    b->vq.desc[d + 2] = (VirtqDesc){(u64)s->status, 1, status_flags, status_next};
}

static int c_bad_type(Hostile *h)
{
    Blk *b = h->b;
    BlkSlot *s = &b->slots[0];
    hdr_set(b, 0x7F, 0);
    b->vq.desc[s->head] =
        (VirtqDesc){(u64)s->hdr, 16, VIRTQ_DESC_F_NEXT, (u16)(s->head + 1)};
    b->vq.desc[s->head + 1] = (VirtqDesc){(u64)s->status, 1, VIRTQ_DESC_F_WRITE, 0};
    return H_PUBLISH;
}

static int c_read_past_end(Hostile *h)
{
    hdr_set(h->b, VIRTIO_BLK_T_IN, h->b->capacity);
    chain3(h, (u64)h->buf, 512, 0, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE, 0);
    return H_PUBLISH;
}

static int c_write_past_end(Hostile *h)
{
    hdr_set(h->b, VIRTIO_BLK_T_OUT, h->b->capacity);
    chain3(h, (u64)h->buf, 512, 0, 0, VIRTQ_DESC_F_WRITE, 0);
    return H_PUBLISH;
}

static int c_write_straddle_end(Hostile *h)
{
    hdr_set(h->b, VIRTIO_BLK_T_OUT, h->b->capacity - 1);
    chain3(h, (u64)h->buf, 1024, 0, 0, VIRTQ_DESC_F_WRITE, 0);
    return H_PUBLISH;
}

static int c_odd_len(Hostile *h)
{
    hdr_set(h->b, VIRTIO_BLK_T_IN, 0);
    chain3(h, (u64)h->buf, 100, 0, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE, 0);
    return H_PUBLISH;
}

static int c_zero_len(Hostile *h)
{
    hdr_set(h->b, VIRTIO_BLK_T_IN, 0);
    chain3(h, (u64)h->buf, 0, 0, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE, 0);
    return H_PUBLISH;
}

static int c_huge_len(Hostile *h)
{
    /* at the last page of the pool's RAM region: a device that writes where
     * it may not tramples only memory testos does not use */
    hdr_set(h->b, VIRTIO_BLK_T_IN, 0);
    chain3(h, dma_pool_end() - 4096, 0xFFFFFFFF, 0, VIRTQ_DESC_F_WRITE,
           VIRTQ_DESC_F_WRITE, 0);
    return H_PUBLISH;
}

static int c_addr_outside(Hostile *h)
{
    hdr_set(h->b, VIRTIO_BLK_T_IN, 0);
    chain3(h, HIGH_ADDR, 4096, 0, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE, 0);
    return H_PUBLISH;
}

static int c_addr_past_ram(Hostile *h)
{
    hdr_set(h->b, VIRTIO_BLK_T_IN, 0);
    chain3(h, e820_ram_top(), 4096, 0, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE, 0);
    return H_PUBLISH;
}

static int c_loop(Hostile *h)
{
    Blk *b = h->b;
    BlkSlot *s = &b->slots[0];
    u16 d = s->head;

    /* header -> data -> header -> ...: all device-readable (a write), so
     * only loop detection stops it, not the readable-before-writable rule */
    hdr_set(b, VIRTIO_BLK_T_OUT, 0);
    b->vq.desc[d] = (VirtqDesc){(u64)s->hdr, 16, VIRTQ_DESC_F_NEXT, (u16)(d + 1)};
    b->vq.desc[d + 1] = (VirtqDesc){(u64)h->buf, 512, VIRTQ_DESC_F_NEXT, d};
    return H_PUBLISH;
}

static int c_nested_indirect(Hostile *h)
{
    Blk *b = h->b;
    BlkSlot *s = &b->slots[0];
    hdr_set(b, VIRTIO_BLK_T_IN, 0);
    h->it2[0] = (VirtqDesc){(u64)s->hdr, 16, VIRTQ_DESC_F_NEXT, 1};
    h->it2[1] = (VirtqDesc){(u64)h->buf, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2};
    h->it2[2] = (VirtqDesc){(u64)s->status, 1, VIRTQ_DESC_F_WRITE, 0};
    h->it1[0] = (VirtqDesc){(u64)h->it2, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0};
    b->vq.desc[s->head] = (VirtqDesc){(u64)h->it1, 16, VIRTQ_DESC_F_INDIRECT, 0};
    return H_PUBLISH;
}

static int c_writable_header(Hostile *h)
{
    hdr_set(h->b, VIRTIO_BLK_T_IN, 0);
    chain3(h, (u64)h->buf, 512, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE,
           VIRTQ_DESC_F_WRITE, 0);
    return H_PUBLISH;
}

static int c_next_oob(Hostile *h)
{
    Blk *b = h->b;
    hdr_set(b, VIRTIO_BLK_T_IN, 0);
    chain3(h, (u64)h->buf, 512, 0, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE, 0);
    b->vq.desc[b->slots[0].head].next = (u16)(b->vq.qsize + 3);
    return H_PUBLISH;
}

static int c_head_oob(Hostile *h)
{
    Blk *b = h->b;
    hdr_set(b, VIRTIO_BLK_T_IN, 0);
    blk_publish(b, (u16)(b->vq.qsize + 1));
    return H_RAW;
}

static int c_avail_jump(Hostile *h)
{
    Blk *b = h->b;
    hdr_set(b, VIRTIO_BLK_T_IN, 0);
    chain3(h, (u64)h->buf, 512, 0, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE, 0);
    for (u32 i = 0; i <= b->vq.qsize; i++) {
        b->vq.avail[2 + (b->vq.avail_idx + i) % b->vq.qsize] = b->slots[0].head;
    }
    b->vq.avail_idx = (u16)(b->vq.avail_idx + b->vq.qsize + 1);
    __asm__ volatile("" ::: "memory");
    b->vq.avail[1] = b->vq.avail_idx;
    return H_RAW;
}

static const struct {
    const char *name;
    int (*build)(Hostile *h);
    int needs_indirect;
} cases[] = {
    {"bad-type", c_bad_type, 0},
    {"read-past-end", c_read_past_end, 0},
    {"write-past-end", c_write_past_end, 0},
    {"write-straddle-end", c_write_straddle_end, 0},
    {"odd-len", c_odd_len, 0},
    {"zero-len", c_zero_len, 0},
    {"huge-len", c_huge_len, 0},
    {"addr-outside", c_addr_outside, 0},
    {"addr-past-ram", c_addr_past_ram, 0},
    {"loop", c_loop, 0},
    {"nested-indirect", c_nested_indirect, 1},
    {"writable-header", c_writable_header, 0},
    {"next-oob", c_next_oob, 0},
    {"head-oob", c_head_oob, 0},
    {"avail-jump", c_avail_jump, 0},
};

static u64 blk_hostile_user(u64 unused)
{
    Blk *b = &blk;
    int irq = boot_info.irq == PARAM_UNSET ? 1 : (int)boot_info.irq;
    Hostile h = {b, NULL, NULL, NULL};

    dma_init();
    const char *e = blk_select(b, irq, "blk-hostile");
    if (e) {
        uprintf("blk-hostile FAIL %s", e);
        return 0;
    }
    h.buf = dma_alloc(8192, 4096);
    h.it1 = dma_alloc(4096, 4096);
    h.it2 = dma_alloc(4096, 4096);
    if (!h.buf || !h.it1 || !h.it2) {
        uprintf("blk-hostile FAIL DMA pool too small");
        return 0;
    }
    for (u32 c = 0; c < ARRAY_SIZE(cases); c++) {
        const char *name = cases[c].name;
        if (cases[c].needs_indirect && !blk_has(b, VIRTIO_F_INDIRECT_DESC)) {
            uprintf("blk-hostile %s skipped (no VIRTIO_RING_F_INDIRECT_DESC)", name);
            continue;
        }
        memset(h.buf, 0xEE, 8192);
        int raw = cases[c].build(&h) == H_RAW;
        if (!raw) {
            blk_publish(b, b->slots[0].head);
        }
        blk_kick(b);
        u32 len = 0;
        int r = blk_wait(b, &len, HOSTILE_TIMEOUT_MS);
        u8 st = *b->slots[0].status;
        int needs_reset = r == -3 || (blk_status(b) & VIRTIO_STATUS_NEEDS_RESET);
        int reinit = raw || needs_reset;
        if (r == 0 && st != 0xFF) {
            uprintf("blk-hostile %s status=%u%s", name, st,
                    needs_reset ? " needs-reset" : "");
        } else if (r >= 0 || r == -2) {
            uprintf("blk-hostile %s status=none used len=%u%s", name, len,
                    needs_reset ? " needs-reset" : "");
            reinit = 1;
        } else {
            uprintf("blk-hostile %s status=none %s", name,
                    needs_reset ? "needs-reset" : "timeout");
            reinit = 1;
        }
        b->slots[0].busy = 0;
        if (reinit && (e = blk_reinit(b))) {
            uprintf("blk-hostile FAIL re-initialising after %s: %s", name, e);
            return 0;
        }
    }
    BlkSeg seg = {(u64)h.buf, 512};
    int st = blk_sync(b, VIRTIO_BLK_T_IN, 0, &seg, 1, 0);
    if (st == VIRTIO_BLK_S_OK) {
        uprintf("blk-hostile survived");
    } else {
        uprintf("blk-hostile FAIL a normal read after the cases: %s", status_name(st));
    }
    return 0;
}

void scenario_blk_hostile(Cpu *bsp)
{
    run_user(bsp, blk_hostile_user, 0);
}
