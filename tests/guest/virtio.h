/* virtio.h: testos's PCI access (pci.c) and its virtio-blk driver (virtio.c),
 * used by the blk scenarios (blk.c). Everything here runs in ring 3: config
 * space through ports 0xCF8/0xCFC (the TSS I/O bitmap allows them), BARs as
 * MMIO, the virtqueue in guest RAM testos owns (the "DMA pool"), completions
 * by polling the used ring. Nothing here is reentrant: the BSP alone uses it. */
#ifndef TESTOS_VIRTIO_H
#define TESTOS_VIRTIO_H

#include "testos.h"

/* ---- pci.c ---- */

#define PCI_BDF(bus, dev, fn) ((u32)(bus) << 8 | (u32)(dev) << 3 | (u32)(fn))
#define PCI_COMMAND 0x04
#define PCI_CMD_IO 0x0001
#define PCI_CMD_MEMORY 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_CMD_INTX_DISABLE 0x0400
#define PCI_CAP_VENDOR 0x09
#define PCI_CAP_MSIX 0x11

typedef struct PciBar {
    u64 addr; /* where it decodes (after pci_enable) */
    u64 size; /* 0: no BAR */
    int io;   /* an I/O BAR (testos leaves those alone) */
    int is64; /* a 64-bit memory BAR (takes the next slot too) */
    int assigned_by_testos;
} PciBar;

u32 pci_read(u32 bdf, u32 off, int size); /* size 1, 2 or 4 */
void pci_write(u32 bdf, u32 off, int size, u32 value);
/* Bus 0 functions with this vendor and one of the device ids, in bus order. */
u32 pci_find(u16 vendor, const u16 *ids, u32 nids, u32 *bdfs, u32 max);
/* The capability with this id after offset `after` (0: the first); 0 if none. */
u32 pci_find_cap(u32 bdf, u8 id, u32 after);
/* Sizes the function's BARs, places the memory BARs that are unassigned (0)
 * or above 4 GiB (testos maps only the low 4 GiB) in the PCI hole from
 * 0xE0000000 clear of every other bus-0 BAR, then enables memory decode and
 * bus mastering (and disables INTx). Returns 0, or -1 if no room. */
int pci_enable(u32 bdf, PciBar bars[6]);

/* ---- virtio.c: a virtio 1.x (modern virtio-pci) block device ---- */

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTIO_STATUS_NEEDS_RESET 0x40

#define VIRTIO_F_BLK_SEG_MAX 2
#define VIRTIO_F_BLK_RO 5
#define VIRTIO_F_BLK_BLK_SIZE 6
#define VIRTIO_F_BLK_FLUSH 9
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define BLK_MAX_SLOTS 32      /* requests in flight at most */
#define BLK_ITABLE_ENTRIES 64 /* per-slot indirect table */

typedef struct VirtqDesc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
} VirtqDesc;

typedef struct BlkSeg {
    u64 addr;
    u32 len;
} BlkSeg;

typedef struct BlkSlot {
    u8 *hdr; /* 16-byte request header */
    volatile u8 *status;
    VirtqDesc *itable; /* BLK_ITABLE_ENTRIES entries */
    u16 head;          /* first descriptor of the slot's range (the chain head) */
    u8 busy;
} BlkSlot;

/* One modern virtio-pci function: its BARs, capabilities and features. */
typedef struct VirtioDev {
    u32 bdf;
    u16 device_id;
    PciBar bars[6];
    volatile u8 *common, *notify_base, *devcfg;
    u32 notify_mult;
    volatile u32 *msix_table; /* NULL: no MSI-X */
    u32 msix_cap;
    u64 offered, features;
} VirtioDev;

/* One split virtqueue of a VirtioDev, polled (completions interrupt only
 * with irq and a vector the device took). */
typedef struct Virtq {
    VirtioDev *dev;
    u16 index;
    u16 qsize;
    volatile u16 *notify;
    VirtqDesc *desc;
    volatile u16 *avail; /* [0] flags, [1] idx, [2..] ring, [2 + qsize] used_event */
    volatile u8 *used;   /* flags, idx, ring of {u32 id, u32 len}, avail_event */
    u16 avail_idx;       /* next avail index to publish */
    u16 kicked_idx;      /* avail index at the last notification decision */
    u16 used_idx;        /* next used entry to consume */
    int irq;             /* completions should interrupt */
    int msix_ok;         /* the device took MSI-X vector 0 for this queue */
    void *ring_mem;      /* desc, avail, used: 3 pages, allocated once */
} Virtq;

#define VIRTQ_MAX_QSIZE 256 /* the queue size testos asks for at most */

typedef struct Blk {
    VirtioDev dev;
    Virtq vq;     /* queue 0 */
    u64 capacity; /* 512-byte sectors */
    u32 seg_max;  /* data descriptors per request the device takes (0 = no limit) */
    u32 blk_size;
    u32 nslots, descs_per_slot;
    int irq; /* completions interrupt (MSI-X vector 0 -> VEC_BLK) */
    BlkSlot slots[BLK_MAX_SLOTS];
    u8 *slot_mem; /* headers, status bytes, indirect tables, allocated once */
} Blk;

/* The DMA pool: guest RAM above testos's image, from the e820 map. */
void dma_init(void);
void *dma_alloc(u64 size, u64 align); /* NULL when the pool is used up */
u64 dma_pool_end(void);               /* end of the usable region the pool is in */
u64 e820_ram_top(void); /* first address past low RAM (and adjacent reserved) */

/* Generic modern virtio-pci (virtio 1.x 4.1) and split-virtqueue code. */
/* BARs placed and enabled, capabilities mapped (device config at least
 * devcfg_min bytes), MSI-X table entry 0 -> the BSP at vector (if any). */
const char *virtio_open(VirtioDev *d, u32 bdf, u32 devcfg_min, u8 vector);
void virtio_reset(VirtioDev *d); /* status 0, waits (at most 1 s) for it to read 0 */
u8 virtio_status(VirtioDev *d);
int virtio_has(const VirtioDev *d, u32 feature_bit);
/* Reset, ACKNOWLEDGE, DRIVER, features = offered & wanted (VERSION_1
 * required), FEATURES_OK checked. */
const char *virtio_negotiate(VirtioDev *d, u64 wanted);
/* Queue index: size a power of 2, at most the device's and max_qsize (<=
 * VIRTQ_MAX_QSIZE); rings from the DMA pool (once per q); irq: MSI-X vector
 * 0 for it (q->msix_ok says if the device took it); enabled. */
const char *virtq_setup(VirtioDev *d, Virtq *q, u16 index, u32 max_qsize, int irq);
/* DRIVER_OK; an error if the device answers with NEEDS_RESET. */
const char *virtio_driver_ok(VirtioDev *d);
/* Publishes head at the next avail slot (no notification yet). */
void virtq_publish(Virtq *q, u16 head);
/* Notifies the device if the event index (or NO_NOTIFY) says it wants it. */
void virtq_kick(Virtq *q);
/* One used entry: 0 with its id and len, -1 if none is there. */
int virtq_reap(Virtq *q, u32 *id, u32 *len);
/* The number of used entries not reaped yet (what the device says). */
u16 virtq_used_pending(Virtq *q);

/* Finds the virtio-blk functions on bus 0 (modern 0x1042, transitional 0x1001). */
u32 blk_find(u32 *bdfs, u32 max);
/* Probes and initialises b for the function bdf: BARs, capabilities, feature
 * negotiation, queue 0, DRIVER_OK. irq: ask for an MSI-X interrupt per
 * completion. Returns NULL on success, else what went wrong. */
const char *blk_open(Blk *b, u32 bdf, int irq);
/* Resets and initialises the device again (after NEEDS_RESET). */
const char *blk_reinit(Blk *b);
void blk_reset(Blk *b); /* status 0, waits (at most 1 s) for it to read 0 */
u8 blk_status(Blk *b);
int blk_has(const Blk *b, u32 feature_bit);

/* Builds slot's request and makes it available (no notification yet).
 * indirect: through the slot's indirect table (if negotiated). Returns 0, or
 * -1 if the data needs more descriptors than the slot or seg_max allow. */
int blk_submit(Blk *b, u32 slot, u32 type, u64 sector, const BlkSeg *segs, u32 nsegs,
               int indirect);
/* Publishes head at the next avail slot (a raw chain built by the caller). */
void blk_publish(Blk *b, u16 head);
/* Notifies the device if the event index (or NO_NOTIFY) says it wants it. */
void blk_kick(Blk *b);
/* One completion: returns its slot (and len), -1 if none is there, -2 if the
 * device put a head testos never made available. */
int blk_reap(Blk *b, u32 *len);
/* Waits for one completion: slot >= 0, -1 after timeout_ms, -2 as above, -3
 * when the device sets NEEDS_RESET. */
int blk_wait(Blk *b, u32 *len, u64 timeout_ms);
/* One request, synchronous (slot 0): the status byte, or a negative blk_wait
 * result, or -4 if blk_submit refused it. */
int blk_sync(Blk *b, u32 type, u64 sector, const BlkSeg *segs, u32 nsegs, int indirect);

#endif
