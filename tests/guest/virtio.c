/* virtio.c: a modern (virtio 1.x) virtio-pci block driver, all in ring 3:
 * capabilities, feature negotiation, one split virtqueue in guest RAM from the
 * DMA pool, requests as descriptor chains (direct or indirect), completions
 * by polling the used ring, MSI-X vector 0 -> VEC_BLK when asked for. Also
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

/* ---- device ---- */

u32 blk_find(u32 *bdfs, u32 max)
{
    static const u16 ids[] = {0x1042, 0x1001};

    return pci_find(0x1AF4, ids, ARRAY_SIZE(ids), bdfs, max);
}

int blk_has(const Blk *b, u32 feature_bit)
{
    return (b->features >> feature_bit) & 1;
}

u8 blk_status(Blk *b)
{
    return rd8(b->common, CC_DEVICE_STATUS);
}

void blk_reset(Blk *b)
{
    u64 start = rdtsc();

    wr8(b->common, CC_DEVICE_STATUS, 0);
    while (rd8(b->common, CC_DEVICE_STATUS) != 0 &&
           rdtsc() - start < 1000 * boot_info.tsc_khz) {
        cpu_relax();
    }
}

static void status_set(Blk *b, u8 bits)
{
    wr8(b->common, CC_DEVICE_STATUS, rd8(b->common, CC_DEVICE_STATUS) | bits);
}

/* Maps the virtio vendor capabilities onto the BARs. */
static const char *caps_map(Blk *b)
{
    volatile u8 *isr = NULL;

    for (u32 cap = pci_find_cap(b->bdf, PCI_CAP_VENDOR, 0); cap;
         cap = pci_find_cap(b->bdf, PCI_CAP_VENDOR, cap)) {
        u32 type = pci_read(b->bdf, cap + 3, 1);
        u32 bar = pci_read(b->bdf, cap + 4, 1);
        u32 offset = pci_read(b->bdf, cap + 8, 4);
        u32 length = pci_read(b->bdf, cap + 12, 4);
        if (bar > 5 || b->bars[bar].io || !b->bars[bar].size ||
            (u64)offset + length > b->bars[bar].size) {
            continue;
        }
        volatile u8 *at = phys(b->bars[bar].addr + offset);
        if (type == CAP_COMMON && !b->common && length >= 0x38) {
            b->common = at;
        } else if (type == CAP_NOTIFY && !b->notify_base && length >= 2) {
            b->notify_base = at;
            b->notify_mult = pci_read(b->bdf, cap + 16, 4);
        } else if (type == CAP_ISR && !isr) {
            isr = at;
        } else if (type == CAP_DEVICE && !b->devcfg && length >= 0x18) {
            b->devcfg = at;
        }
    }
    if (!b->common || !b->notify_base || !b->devcfg) {
        return "no modern virtio-pci capabilities (common, notify, device config)";
    }
    return NULL;
}

/* MSI-X: table entry 0 -> this CPU's LAPIC, VEC_BLK; MSI-X enabled. */
static void msix_setup(Blk *b)
{
    u32 cap = pci_find_cap(b->bdf, PCI_CAP_MSIX, 0);

    b->msix_table = NULL;
    if (!cap) {
        return;
    }
    u32 table = pci_read(b->bdf, cap + 4, 4);
    u32 bir = table & 7;
    if (bir > 5 || b->bars[bir].io || !b->bars[bir].size) {
        return;
    }
    b->msix_cap = cap;
    b->msix_table = phys(b->bars[bir].addr + (table & ~7u));
    u32 apic_id = boot_info.apic_ids[0];
    b->msix_table[0] = 0xFEE00000u | apic_id << 12; /* address: fixed, physical */
    b->msix_table[1] = 0;
    b->msix_table[2] = VEC_BLK; /* data: edge, fixed delivery */
    b->msix_table[3] = 0;       /* unmasked */
    u32 ctrl = pci_read(b->bdf, cap + 2, 2);
    pci_write(b->bdf, cap + 2, 2, (ctrl | MSIX_CTRL_ENABLE) & ~MSIX_CTRL_MASKALL);
}

static u64 capacity_read(Blk *b)
{
    u32 lo, hi;
    u8 gen;

    do {
        gen = rd8(b->common, CC_CONFIG_GENERATION);
        lo = rd32(b->devcfg, BLKCFG_CAPACITY);
        hi = rd32(b->devcfg, BLKCFG_CAPACITY + 4);
    } while (gen != rd8(b->common, CC_CONFIG_GENERATION));
    return (u64)hi << 32 | lo;
}

const char *blk_reinit(Blk *b)
{
    u64 wanted = 1UL << VIRTIO_F_VERSION_1 | 1UL << VIRTIO_F_BLK_SEG_MAX |
                 1UL << VIRTIO_F_BLK_BLK_SIZE | 1UL << VIRTIO_F_BLK_FLUSH |
                 1UL << VIRTIO_F_BLK_RO;

    if (boot_info.indirect) {
        wanted |= 1UL << VIRTIO_F_INDIRECT_DESC;
    }
    if (boot_info.evidx) {
        wanted |= 1UL << VIRTIO_F_EVENT_IDX;
    }
    blk_reset(b);
    if (blk_status(b) != 0) {
        return "device status does not read 0 after reset";
    }
    status_set(b, STATUS_ACKNOWLEDGE);
    status_set(b, STATUS_DRIVER);
    wr32(b->common, CC_DEVICE_FEATURE_SELECT, 0);
    b->offered = rd32(b->common, CC_DEVICE_FEATURE);
    wr32(b->common, CC_DEVICE_FEATURE_SELECT, 1);
    b->offered |= (u64)rd32(b->common, CC_DEVICE_FEATURE) << 32;
    if (!(b->offered >> VIRTIO_F_VERSION_1 & 1)) {
        status_set(b, STATUS_FAILED);
        return "device does not offer VIRTIO_F_VERSION_1";
    }
    b->features = b->offered & wanted;
    wr32(b->common, CC_DRIVER_FEATURE_SELECT, 0);
    wr32(b->common, CC_DRIVER_FEATURE, (u32)b->features);
    wr32(b->common, CC_DRIVER_FEATURE_SELECT, 1);
    wr32(b->common, CC_DRIVER_FEATURE, (u32)(b->features >> 32));
    status_set(b, STATUS_FEATURES_OK);
    if (!(blk_status(b) & STATUS_FEATURES_OK)) {
        status_set(b, STATUS_FAILED);
        return "device did not keep FEATURES_OK";
    }

    wr16(b->common, CC_MSIX_CONFIG, NO_VECTOR);
    if (rd16(b->common, CC_NUM_QUEUES) < 1) {
        return "device has no queues";
    }
    wr16(b->common, CC_QUEUE_SELECT, 0);
    u32 qmax = rd16(b->common, CC_QUEUE_SIZE);
    if (qmax < 4) {
        return "queue 0 size below 4";
    }
    u32 qsize = 4;
    while (qsize * 2 <= qmax && qsize * 2 <= BLK_MAX_QSIZE) {
        qsize *= 2; /* a power of 2, at most the device's and ours */
    }
    b->qsize = (u16)qsize;
    wr16(b->common, CC_QUEUE_SIZE, b->qsize);

    /* desc (16 * qsize), avail (6 + 2 * qsize), used (6 + 8 * qsize): one
     * 4 KiB page each at BLK_MAX_QSIZE = 256. */
    if (!b->ring_mem && !(b->ring_mem = dma_alloc(3 * 4096, 4096))) {
        return "DMA pool too small";
    }
    memset(b->ring_mem, 0, 3 * 4096);
    b->desc = b->ring_mem;
    b->avail = (volatile u16 *)((u8 *)b->ring_mem + 4096);
    b->used = (volatile u8 *)b->ring_mem + 8192;
    wr64(b->common, CC_QUEUE_DESC, (u64)b->desc);
    wr64(b->common, CC_QUEUE_DRIVER, (u64)b->avail);
    wr64(b->common, CC_QUEUE_DEVICE, (u64)b->used);
    b->msix_ok = 0;
    if (b->msix_table && b->irq) {
        wr16(b->common, CC_QUEUE_MSIX_VECTOR, 0);
        b->msix_ok = rd16(b->common, CC_QUEUE_MSIX_VECTOR) == 0;
    } else {
        wr16(b->common, CC_QUEUE_MSIX_VECTOR, NO_VECTOR);
    }
    u32 notify_off = rd16(b->common, CC_QUEUE_NOTIFY_OFF);
    b->notify = (volatile u16 *)(b->notify_base + notify_off * b->notify_mult);
    wr16(b->common, CC_QUEUE_ENABLE, 1);

    /* Request slots: each owns a range of descriptors, its head the first;
     * four each (header, two data, status) unless indirect tables take the
     * longer chains (blk_submit turns to one then). */
    u32 per = blk_has(b, VIRTIO_F_INDIRECT_DESC) ? 1 : 4;
    b->nslots = b->qsize / per < BLK_MAX_SLOTS ? b->qsize / per : BLK_MAX_SLOTS;
    b->descs_per_slot = b->qsize / b->nslots;
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
    b->avail_idx = b->kicked_idx = b->used_idx = 0;
    /* Interrupt suppression: none wanted unless irq (with EVENT_IDX the
     * used_event field says it, else the NO_INTERRUPT flag). */
    b->avail[0] = b->irq ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT;
    b->avail[2 + b->qsize] = b->irq ? 0 : 0xFFFF;

    status_set(b, STATUS_DRIVER_OK);
    if (blk_status(b) & VIRTIO_STATUS_NEEDS_RESET) {
        return "device set NEEDS_RESET at DRIVER_OK";
    }
    b->capacity = capacity_read(b);
    b->seg_max = blk_has(b, VIRTIO_F_BLK_SEG_MAX) ? rd32(b->devcfg, BLKCFG_SEG_MAX) : 0;
    b->blk_size =
        blk_has(b, VIRTIO_F_BLK_BLK_SIZE) ? rd32(b->devcfg, BLKCFG_BLK_SIZE) : 512;
    return NULL;
}

const char *blk_open(Blk *b, u32 bdf, int irq)
{
    b->bdf = bdf;
    b->device_id = (u16)(pci_read(bdf, 0, 4) >> 16);
    b->irq = irq;
    b->common = b->notify_base = b->devcfg = NULL;
    if (pci_enable(bdf, b->bars) < 0) {
        return "no room for its BARs in 0xE0000000-0xFEC00000";
    }
    const char *err = caps_map(b);
    if (err) {
        return err;
    }
    msix_setup(b);
    return blk_reinit(b);
}

/* ---- requests ---- */

void blk_publish(Blk *b, u16 head)
{
    b->avail[2 + b->avail_idx % b->qsize] = head;
    barrier(); /* x86 keeps stores in order: the entry before the index */
    b->avail[1] = ++b->avail_idx;
}

int blk_submit(Blk *b, u32 slot, u32 type, u64 sector, const BlkSeg *segs, u32 nsegs,
               int indirect)
{
    BlkSlot *s = &b->slots[slot];
    u32 n = nsegs + 2;
    u32 itable_max = b->qsize < BLK_ITABLE_ENTRIES ? b->qsize : BLK_ITABLE_ENTRIES;
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

    VirtqDesc *chain = indirect ? s->itable : &b->desc[s->head];
    u16 base = indirect ? 0 : s->head;
    chain[0] = (VirtqDesc){(u64)s->hdr, 16, VIRTQ_DESC_F_NEXT, (u16)(base + 1)};
    for (u32 i = 0; i < nsegs; i++) {
        chain[1 + i] =
            (VirtqDesc){segs[i].addr, segs[i].len, (u16)(data_flags | VIRTQ_DESC_F_NEXT),
                        (u16)(base + 2 + i)};
    }
    chain[n - 1] = (VirtqDesc){(u64)s->status, 1, VIRTQ_DESC_F_WRITE, 0};
    if (indirect) {
        b->desc[s->head] = (VirtqDesc){(u64)s->itable, 16 * n, VIRTQ_DESC_F_INDIRECT, 0};
    }
    s->busy = 1;
    blk_publish(b, s->head);
    return 0;
}

void blk_kick(Blk *b)
{
    u16 old = b->kicked_idx, now = b->avail_idx;
    int need;

    mb(); /* the avail index before reading the device's suppression state */
    if (old == now) {
        return;
    }
    b->kicked_idx = now;
    if (blk_has(b, VIRTIO_F_EVENT_IDX)) {
        u16 event = *(volatile u16 *)(b->used + 4 + 8 * b->qsize);
        need = (u16)(now - event - 1) < (u16)(now - old);
    } else {
        need = !(*(volatile u16 *)b->used & VIRTQ_USED_F_NO_NOTIFY);
    }
    if (need) {
        *b->notify = 0; /* queue 0 */
    }
}

int blk_reap(Blk *b, u32 *len)
{
    u16 idx = *(volatile u16 *)(b->used + 2);

    if (idx == b->used_idx) {
        return -1;
    }
    barrier(); /* x86 keeps loads in order: the entry after the index */
    volatile u8 *elem = b->used + 4 + 8 * (b->used_idx % b->qsize);
    u32 id = *(volatile u32 *)elem;
    *len = *(volatile u32 *)(elem + 4);
    b->used_idx++;
    if (blk_has(b, VIRTIO_F_EVENT_IDX)) {
        /* the next completion interrupts (irq), or practically never */
        b->avail[2 + b->qsize] = b->irq ? b->used_idx : (u16)(b->used_idx - 1);
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
