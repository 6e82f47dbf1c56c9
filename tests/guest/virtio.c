/* virtio.c: modern (virtio 1.x) virtio-pci, all in ring 3: capabilities,
 * feature negotiation, split virtqueues in guest RAM from the DMA pool,
 * completions by polling the used ring, MSI-X vector 0 when asked for (the
 * generic part, which net.c's virtio-net driver uses too); the virtio-blk
 * driver on top (requests as descriptor chains, direct or indirect). Also
 * the DMA pool itself (RAM above testos's image, from the e820 map). */
#include "virtio.h"

#define FOUR_GIB 0x100000000UL

/* virtio_pci_cap cfg_type */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4

/* struct virtio_pci_common_cfg */
#define CC_DEVICE_FEATURE_SELECT 0x00
#define CC_DEVICE_FEATURE 0x04
#define CC_DRIVER_FEATURE_SELECT 0x08
#define CC_DRIVER_FEATURE 0x0C
#define CC_MSIX_CONFIG 0x10
#define CC_NUM_QUEUES 0x12
#define CC_DEVICE_STATUS 0x14
#define CC_CONFIG_GENERATION 0x15
#define CC_QUEUE_SELECT 0x16
#define CC_QUEUE_SIZE 0x18
#define CC_QUEUE_MSIX_VECTOR 0x1A
#define CC_QUEUE_ENABLE 0x1C
#define CC_QUEUE_NOTIFY_OFF 0x1E
#define CC_QUEUE_DESC 0x20
#define CC_QUEUE_DRIVER 0x28
#define CC_QUEUE_DEVICE 0x30

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define STATUS_FAILED 0x80

/* struct virtio_blk_config */
#define BLKCFG_CAPACITY 0x00
#define BLKCFG_SEG_MAX 0x0C
#define BLKCFG_BLK_SIZE 0x14

#define NO_VECTOR 0xFFFF
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000

#define SLOT_BLOCK 64 /* header (16 bytes) + status byte, per slot */

/* ---- the DMA pool ---- */

extern u8 _end[];
static u64 pool_next, pool_end;

void dma_init(void)
{
    u64 start = ((u64)_end + 2 * MIB - 1) & ~(2 * MIB - 1);
    u64 best = 0;

    if (pool_end) {
        return;
    }
    /* The usable region holding the first 2 MiB boundary past the image, or
     * else the biggest usable region below 4 GiB above it. */
    for (u32 i = 0; i < boot_info.e820_count; i++) {
        const E820Entry *e = &boot_info.e820[i];
        u64 base = e->base, end = e->base + e->size;
        if (e->type != E820_USABLE || base >= FOUR_GIB) {
            continue;
        }
        end = end > FOUR_GIB ? FOUR_GIB : end;
        if (base <= start && start < end) {
            pool_next = start;
            pool_end = end;
            return;
        }
        if (base > start && end - base > best) {
            best = end - base;
            pool_next = (base + 4095) & ~4095UL;
            pool_end = end;
        }
    }
}

void *dma_alloc(u64 size, u64 align)
{
    u64 at = (pool_next + align - 1) & ~(align - 1);

    if (!pool_end || at + size > pool_end) {
        return NULL;
    }
    pool_next = at + size;
    memset(phys(at), 0, size);
    return phys(at);
}

u64 dma_pool_end(void)
{
    return pool_end;
}

u64 e820_ram_top(void)
{
    u64 top = 0;

    for (u32 i = 0; i < boot_info.e820_count; i++) {
        const E820Entry *e = &boot_info.e820[i];
        u64 end = e->base + e->size;
        if (e->type == E820_USABLE && e->base < FOUR_GIB && end > top) {
            top = end < FOUR_GIB ? end : FOUR_GIB;
        }
    }
    /* ...and past any region that follows it directly (firmware tables). */
    for (int moved = 1; moved;) {
        moved = 0;
        for (u32 i = 0; i < boot_info.e820_count; i++) {
            const E820Entry *e = &boot_info.e820[i];
            if (e->size && e->base <= top && e->base + e->size > top &&
                e->base + e->size <= FOUR_GIB) {
                top = e->base + e->size;
                moved = 1;
            }
        }
    }
    return top;
}

/* ---- MMIO ---- */

static inline void barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

static inline void mb(void)
{
    __asm__ volatile("mfence" ::: "memory");
}

static u8 rd8(volatile u8 *base, u32 off)
{
    return *(volatile u8 *)(base + off);
}

static u16 rd16(volatile u8 *base, u32 off)
{
    return *(volatile u16 *)(base + off);
}

static u32 rd32(volatile u8 *base, u32 off)
{
    return *(volatile u32 *)(base + off);
}

static void wr8(volatile u8 *base, u32 off, u8 v)
{
    *(volatile u8 *)(base + off) = v;
}

static void wr16(volatile u8 *base, u32 off, u16 v)
{
    *(volatile u16 *)(base + off) = v;
}

static void wr32(volatile u8 *base, u32 off, u32 v)
{
    *(volatile u32 *)(base + off) = v;
}

static void wr64(volatile u8 *base, u32 off, u64 v)
{
    wr32(base, off, (u32)v);
    wr32(base, off + 4, (u32)(v >> 32));
}

/* ---- generic modern virtio-pci ---- */

int virtio_has(const VirtioDev *d, u32 feature_bit)
{
    return (d->features >> feature_bit) & 1;
}

u8 virtio_status(VirtioDev *d)
{
    return rd8(d->common, CC_DEVICE_STATUS);
}

void virtio_reset(VirtioDev *d)
{
    u64 start = rdtsc();

    wr8(d->common, CC_DEVICE_STATUS, 0);
    while (rd8(d->common, CC_DEVICE_STATUS) != 0 &&
           rdtsc() - start < 1000 * boot_info.tsc_khz) {
        cpu_relax();
    }
}

static void status_set(VirtioDev *d, u8 bits)
{
    wr8(d->common, CC_DEVICE_STATUS, rd8(d->common, CC_DEVICE_STATUS) | bits);
}

/* Maps the virtio vendor capabilities onto the BARs. */
static const char *caps_map(VirtioDev *d, u32 devcfg_min)
{
    volatile u8 *isr = NULL;

    for (u32 cap = pci_find_cap(d->bdf, PCI_CAP_VENDOR, 0); cap;
         cap = pci_find_cap(d->bdf, PCI_CAP_VENDOR, cap)) {
        u32 type = pci_read(d->bdf, cap + 3, 1);
        u32 bar = pci_read(d->bdf, cap + 4, 1);
        u32 offset = pci_read(d->bdf, cap + 8, 4);
        u32 length = pci_read(d->bdf, cap + 12, 4);
        if (bar > 5 || d->bars[bar].io || !d->bars[bar].size ||
            (u64)offset + length > d->bars[bar].size) {
            continue;
        }
        volatile u8 *at = phys(d->bars[bar].addr + offset);
        if (type == CAP_COMMON && !d->common && length >= 0x38) {
            d->common = at;
        } else if (type == CAP_NOTIFY && !d->notify_base && length >= 2) {
            d->notify_base = at;
            d->notify_mult = pci_read(d->bdf, cap + 16, 4);
        } else if (type == CAP_ISR && !isr) {
            isr = at;
        } else if (type == CAP_DEVICE && !d->devcfg && length >= devcfg_min) {
            d->devcfg = at;
        }
    }
    if (!d->common || !d->notify_base || !d->devcfg) {
        return "no modern virtio-pci capabilities (common, notify, device config)";
    }
    return NULL;
}

/* MSI-X: table entry 0 -> the BSP's LAPIC, vector; MSI-X enabled. */
static void msix_setup(VirtioDev *d, u8 vector)
{
    u32 cap = pci_find_cap(d->bdf, PCI_CAP_MSIX, 0);

    d->msix_table = NULL;
    if (!cap) {
        return;
    }
    u32 table = pci_read(d->bdf, cap + 4, 4);
    u32 bir = table & 7;
    if (bir > 5 || d->bars[bir].io || !d->bars[bir].size) {
        return;
    }
    d->msix_cap = cap;
    d->msix_table = phys(d->bars[bir].addr + (table & ~7u));
    u32 apic_id = boot_info.apic_ids[0];
    d->msix_table[0] = 0xFEE00000u | apic_id << 12; /* address: fixed, physical */
    d->msix_table[1] = 0;
    d->msix_table[2] = vector; /* data: edge, fixed delivery */
    d->msix_table[3] = 0;      /* unmasked */
    u32 ctrl = pci_read(d->bdf, cap + 2, 2);
    pci_write(d->bdf, cap + 2, 2, (ctrl | MSIX_CTRL_ENABLE) & ~MSIX_CTRL_MASKALL);
}

const char *virtio_open(VirtioDev *d, u32 bdf, u32 devcfg_min, u8 vector)
{
    d->bdf = bdf;
    d->device_id = (u16)(pci_read(bdf, 0, 4) >> 16);
    d->common = d->notify_base = d->devcfg = NULL;
    if (pci_enable(bdf, d->bars) < 0) {
        return "no room for its BARs in 0xE0000000-0xFEC00000";
    }
    const char *err = caps_map(d, devcfg_min);
    if (err) {
        return err;
    }
    msix_setup(d, vector);
    return NULL;
}

const char *virtio_negotiate(VirtioDev *d, u64 wanted)
{
    virtio_reset(d);
    if (virtio_status(d) != 0) {
        return "device status does not read 0 after reset";
    }
    status_set(d, STATUS_ACKNOWLEDGE);
    status_set(d, STATUS_DRIVER);
    wr32(d->common, CC_DEVICE_FEATURE_SELECT, 0);
    d->offered = rd32(d->common, CC_DEVICE_FEATURE);
    wr32(d->common, CC_DEVICE_FEATURE_SELECT, 1);
    d->offered |= (u64)rd32(d->common, CC_DEVICE_FEATURE) << 32;
    if (!(d->offered >> VIRTIO_F_VERSION_1 & 1)) {
        status_set(d, STATUS_FAILED);
        return "device does not offer VIRTIO_F_VERSION_1";
    }
    d->features = d->offered & (wanted | 1UL << VIRTIO_F_VERSION_1);
    wr32(d->common, CC_DRIVER_FEATURE_SELECT, 0);
    wr32(d->common, CC_DRIVER_FEATURE, (u32)d->features);
    wr32(d->common, CC_DRIVER_FEATURE_SELECT, 1);
    wr32(d->common, CC_DRIVER_FEATURE, (u32)(d->features >> 32));
    status_set(d, STATUS_FEATURES_OK);
    if (!(virtio_status(d) & STATUS_FEATURES_OK)) {
        status_set(d, STATUS_FAILED);
        return "device did not keep FEATURES_OK";
    }
    wr16(d->common, CC_MSIX_CONFIG, NO_VECTOR);
    return NULL;
}

const char *virtq_setup(VirtioDev *d, Virtq *q, u16 index, u32 max_qsize, int irq)
{
    if (rd16(d->common, CC_NUM_QUEUES) <= index) {
        return "device has too few queues";
    }
    q->dev = d;
    q->index = index;
    q->irq = irq;
    wr16(d->common, CC_QUEUE_SELECT, index);
    u32 qmax = rd16(d->common, CC_QUEUE_SIZE);
    if (qmax < 4) {
        return "queue size below 4";
    }
    if (max_qsize > VIRTQ_MAX_QSIZE) {
        max_qsize = VIRTQ_MAX_QSIZE;
    }
    u32 qsize = 4;
    while (qsize * 2 <= qmax && qsize * 2 <= max_qsize) {
        qsize *= 2; /* a power of 2, at most the device's and ours */
    }
    q->qsize = (u16)qsize;
    wr16(d->common, CC_QUEUE_SIZE, q->qsize);

    /* desc (16 * qsize), avail (6 + 2 * qsize), used (6 + 8 * qsize): one
     * 4 KiB page each at VIRTQ_MAX_QSIZE = 256. */
    if (!q->ring_mem && !(q->ring_mem = dma_alloc(3 * 4096, 4096))) {
        return "DMA pool too small";
    }
    memset(q->ring_mem, 0, 3 * 4096);
    q->desc = q->ring_mem;
    q->avail = (volatile u16 *)((u8 *)q->ring_mem + 4096);
    q->used = (volatile u8 *)q->ring_mem + 8192;
    wr64(d->common, CC_QUEUE_DESC, (u64)q->desc);
    wr64(d->common, CC_QUEUE_DRIVER, (u64)q->avail);
    wr64(d->common, CC_QUEUE_DEVICE, (u64)q->used);
    q->msix_ok = 0;
    if (d->msix_table && irq) {
        wr16(d->common, CC_QUEUE_MSIX_VECTOR, 0);
        q->msix_ok = rd16(d->common, CC_QUEUE_MSIX_VECTOR) == 0;
    } else {
        wr16(d->common, CC_QUEUE_MSIX_VECTOR, NO_VECTOR);
    }
    u32 notify_off = rd16(d->common, CC_QUEUE_NOTIFY_OFF);
    q->notify = (volatile u16 *)(d->notify_base + notify_off * d->notify_mult);
    wr16(d->common, CC_QUEUE_ENABLE, 1);
    q->avail_idx = q->kicked_idx = q->used_idx = 0;
    /* Interrupt suppression: none wanted unless irq (with EVENT_IDX the
     * used_event field says it, else the NO_INTERRUPT flag). */
    q->avail[0] = irq ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT;
    q->avail[2 + q->qsize] = irq ? 0 : 0xFFFF;
    return NULL;
}

const char *virtio_driver_ok(VirtioDev *d)
{
    status_set(d, STATUS_DRIVER_OK);
    if (virtio_status(d) & VIRTIO_STATUS_NEEDS_RESET) {
        return "device set NEEDS_RESET at DRIVER_OK";
    }
    return NULL;
}

void virtq_publish(Virtq *q, u16 head)
{
    q->avail[2 + q->avail_idx % q->qsize] = head;
    barrier(); /* x86 keeps stores in order: the entry before the index */
    q->avail[1] = ++q->avail_idx;
}

void virtq_kick(Virtq *q)
{
    u16 old = q->kicked_idx, now = q->avail_idx;
    int need;

    mb(); /* the avail index before reading the device's suppression state */
    if (old == now) {
        return;
    }
    q->kicked_idx = now;
    if (virtio_has(q->dev, VIRTIO_F_EVENT_IDX)) {
        u16 event = *(volatile u16 *)(q->used + 4 + 8 * q->qsize);
        need = (u16)(now - event - 1) < (u16)(now - old);
    } else {
        need = !(*(volatile u16 *)q->used & VIRTQ_USED_F_NO_NOTIFY);
    }
    if (need) {
        *q->notify = q->index;
    }
}

int virtq_reap(Virtq *q, u32 *id, u32 *len)
{
    u16 idx = *(volatile u16 *)(q->used + 2);

    if (idx == q->used_idx) {
        return -1;
    }
    barrier(); /* x86 keeps loads in order: the entry after the index */
    volatile u8 *elem = q->used + 4 + 8 * (q->used_idx % q->qsize);
    *id = *(volatile u32 *)elem;
    *len = *(volatile u32 *)(elem + 4);
    q->used_idx++;
    if (virtio_has(q->dev, VIRTIO_F_EVENT_IDX)) {
        /* the next completion interrupts (irq), or practically never */
        q->avail[2 + q->qsize] = q->irq ? q->used_idx : (u16)(q->used_idx - 1);
    }
    return 0;
}

u16 virtq_used_pending(Virtq *q)
{
    return (u16)(*(volatile u16 *)(q->used + 2) - q->used_idx);
}

/* ---- virtio-blk ---- */

u32 blk_find(u32 *bdfs, u32 max)
{
    static const u16 ids[] = {0x1042, 0x1001};

    return pci_find(0x1AF4, ids, ARRAY_SIZE(ids), bdfs, max);
}

int blk_has(const Blk *b, u32 feature_bit)
{
    return virtio_has(&b->dev, feature_bit);
}

u8 blk_status(Blk *b)
{
    return virtio_status(&b->dev);
}

void blk_reset(Blk *b)
{
    virtio_reset(&b->dev);
}

static u64 capacity_read(Blk *b)
{
    u32 lo, hi;
    u8 gen;

    do {
        gen = rd8(b->dev.common, CC_CONFIG_GENERATION);
        lo = rd32(b->dev.devcfg, BLKCFG_CAPACITY);
        hi = rd32(b->dev.devcfg, BLKCFG_CAPACITY + 4);
    } while (gen != rd8(b->dev.common, CC_CONFIG_GENERATION));
    return (u64)hi << 32 | lo;
}

const char *blk_reinit(Blk *b)
{
    u64 wanted = 1UL << VIRTIO_F_VERSION_1 | 1UL << VIRTIO_F_BLK_SEG_MAX |
                 1UL << VIRTIO_F_BLK_BLK_SIZE | 1UL << VIRTIO_F_BLK_FLUSH |
                 1UL << VIRTIO_F_BLK_RO;
    const char *err;

    if (boot_info.indirect) {
        wanted |= 1UL << VIRTIO_F_INDIRECT_DESC;
    }
    if (boot_info.evidx) {
        wanted |= 1UL << VIRTIO_F_EVENT_IDX;
    }
    if ((err = virtio_negotiate(&b->dev, wanted)) ||
        (err = virtq_setup(&b->dev, &b->vq, 0, VIRTQ_MAX_QSIZE, b->irq))) {
        return err;
    }

    /* Request slots: each owns a range of descriptors, its head the first;
     * four each (header, two data, status) unless indirect tables take the
     * longer chains (blk_submit turns to one then). */
    u32 qsize = b->vq.qsize;
    u32 per = blk_has(b, VIRTIO_F_INDIRECT_DESC) ? 1 : 4;
    b->nslots = qsize / per < BLK_MAX_SLOTS ? qsize / per : BLK_MAX_SLOTS;
    b->descs_per_slot = qsize / b->nslots;
    if (!b->slot_mem &&
        !(b->slot_mem =
              dma_alloc(BLK_MAX_SLOTS * (SLOT_BLOCK + 16 * BLK_ITABLE_ENTRIES), 4096))) {
        return "DMA pool too small";
    }
    for (u32 i = 0; i < b->nslots; i++) {
        BlkSlot *s = &b->slots[i];
        s->itable = (VirtqDesc *)(b->slot_mem + 16 * BLK_ITABLE_ENTRIES * i);
        s->hdr = b->slot_mem + 16 * BLK_ITABLE_ENTRIES * BLK_MAX_SLOTS + SLOT_BLOCK * i;
        s->status = s->hdr + 16;
        s->head = (u16)(i * b->descs_per_slot);
        s->busy = 0;
    }
    if ((err = virtio_driver_ok(&b->dev))) {
        return err;
    }
    b->capacity = capacity_read(b);
    b->seg_max =
        blk_has(b, VIRTIO_F_BLK_SEG_MAX) ? rd32(b->dev.devcfg, BLKCFG_SEG_MAX) : 0;
    b->blk_size =
        blk_has(b, VIRTIO_F_BLK_BLK_SIZE) ? rd32(b->dev.devcfg, BLKCFG_BLK_SIZE) : 512;
    return NULL;
}

const char *blk_open(Blk *b, u32 bdf, int irq)
{
    b->irq = irq;
    const char *err = virtio_open(&b->dev, bdf, 0x18, VEC_BLK);
    if (err) {
        return err;
    }
    return blk_reinit(b);
}

/* ---- requests ---- */

void blk_publish(Blk *b, u16 head)
{
    virtq_publish(&b->vq, head);
}

int blk_submit(Blk *b, u32 slot, u32 type, u64 sector, const BlkSeg *segs, u32 nsegs,
               int indirect)
{
    BlkSlot *s = &b->slots[slot];
    u32 n = nsegs + 2;
    u32 itable_max = b->vq.qsize < BLK_ITABLE_ENTRIES ? b->vq.qsize : BLK_ITABLE_ENTRIES;
    int can_indirect = blk_has(b, VIRTIO_F_INDIRECT_DESC) && n <= itable_max;
    u16 data_flags = type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0;

    if (b->seg_max && nsegs > b->seg_max) {
        return -1;
    }
    if (!(indirect && can_indirect) && n > b->descs_per_slot) {
        if (!can_indirect) {
            return -1;
        }
        indirect = 1;
    }
    indirect = indirect && can_indirect;
    memcpy(s->hdr, &type, 4);
    memset(s->hdr + 4, 0, 4);
    memcpy(s->hdr + 8, &sector, 8);
    *s->status = 0xFF;

    VirtqDesc *chain = indirect ? s->itable : &b->vq.desc[s->head];
    u16 base = indirect ? 0 : s->head;
    chain[0] = (VirtqDesc){(u64)s->hdr, 16, VIRTQ_DESC_F_NEXT, (u16)(base + 1)};
    for (u32 i = 0; i < nsegs; i++) {
        chain[1 + i] =
            (VirtqDesc){segs[i].addr, segs[i].len, (u16)(data_flags | VIRTQ_DESC_F_NEXT),
                        (u16)(base + 2 + i)};
    }
    chain[n - 1] = (VirtqDesc){(u64)s->status, 1, VIRTQ_DESC_F_WRITE, 0};
    if (indirect) {
        b->vq.desc[s->head] =
            (VirtqDesc){(u64)s->itable, 16 * n, VIRTQ_DESC_F_INDIRECT, 0};
    }
    s->busy = 1;
    blk_publish(b, s->head);
    return 0;
}

void blk_kick(Blk *b)
{
    virtq_kick(&b->vq);
}

int blk_reap(Blk *b, u32 *len)
{
    u32 id;

    if (virtq_reap(&b->vq, &id, len) < 0) {
        return -1;
    }
    if (id % b->descs_per_slot || id / b->descs_per_slot >= b->nslots) {
        return -2;
    }
    u32 slot = id / b->descs_per_slot;
    if (!b->slots[slot].busy) {
        return -2;
    }
    b->slots[slot].busy = 0;
    return (int)slot;
}

int blk_wait(Blk *b, u32 *len, u64 timeout_ms)
{
    u64 start = rdtsc(), checked = start;
    u64 ms = boot_info.tsc_khz;

    for (;;) {
        int r = blk_reap(b, len);
        if (r != -1) {
            return r;
        }
        u64 now = rdtsc();
        if (now - checked > ms) { /* an MMIO read: once a millisecond */
            checked = now;
            if (blk_status(b) & VIRTIO_STATUS_NEEDS_RESET) {
                return -3;
            }
            if (now - start > timeout_ms * ms) {
                return -1;
            }
        }
        cpu_relax();
    }
}

int blk_sync(Blk *b, u32 type, u64 sector, const BlkSeg *segs, u32 nsegs, int indirect)
{
    u32 len;

    if (blk_submit(b, 0, type, sector, segs, nsegs, indirect) < 0) {
        return -4;
    }
    blk_kick(b);
    int r = blk_wait(b, &len, 10000);
    if (r < 0) {
        return r;
    }
    if (r != 0) {
        return -2;
    }
    return *b->slots[0].status;
}
