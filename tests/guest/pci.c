/* pci.c: PCI configuration space through mechanism #1 (ports 0xCF8/0xCFC),
 * bus 0 only, from ring 3; BAR sizing and placement for a function whose
 * memory BARs the firmware left unassigned (a direct-kernel boot without
 * firmware may leave them 0). */
#include "virtio.h"

#define PCI_CONFIG_ADDRESS 0xCF8
#define PCI_CONFIG_DATA 0xCFC
#define PCI_VENDOR 0x00
#define PCI_STATUS 0x06
#define PCI_STATUS_CAPS 0x10
#define PCI_HEADER_TYPE 0x0E
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34

#define HOLE_START 0xE0000000UL /* where testos places BARs itself */
#define HOLE_END 0xFEC00000UL   /* IOAPIC, LAPIC, BIOS above */
#define FOUR_GIB 0x100000000UL

static void pci_address(u32 bdf, u32 off)
{
    outl(PCI_CONFIG_ADDRESS, 0x80000000u | bdf << 8 | (off & 0xFC));
}

u32 pci_read(u32 bdf, u32 off, int size)
{
    pci_address(bdf, off);
    switch (size) {
    case 1:
        return inb(PCI_CONFIG_DATA + (off & 3));
    case 2:
        return inw(PCI_CONFIG_DATA + (off & 2));
    default:
        return inl(PCI_CONFIG_DATA);
    }
}

void pci_write(u32 bdf, u32 off, int size, u32 value)
{
    pci_address(bdf, off);
    switch (size) {
    case 1:
        outb(PCI_CONFIG_DATA + (off & 3), (u8)value);
        break;
    case 2:
        outw(PCI_CONFIG_DATA + (off & 2), (u16)value);
        break;
    default:
        outl(PCI_CONFIG_DATA, value);
        break;
    }
}

static int pci_present(u32 bdf)
{
    return (pci_read(bdf, PCI_VENDOR, 2) & 0xFFFF) != 0xFFFF;
}

/* Calls fn for every function present on bus 0. */
static void pci_each(void (*visit)(u32 bdf, void *ctx), void *ctx)
{
    for (u32 dev = 0; dev < 32; dev++) {
        if (!pci_present(PCI_BDF(0, dev, 0))) {
            continue;
        }
        u32 nfn = pci_read(PCI_BDF(0, dev, 0), PCI_HEADER_TYPE, 1) & 0x80 ? 8 : 1;
        for (u32 fn = 0; fn < nfn; fn++) {
            if (pci_present(PCI_BDF(0, dev, fn))) {
                visit(PCI_BDF(0, dev, fn), ctx);
            }
        }
    }
}

typedef struct FindCtx {
    u16 vendor;
    const u16 *ids;
    u32 nids, *bdfs, max, n;
} FindCtx;

static void find_one(u32 bdf, void *ctx)
{
    FindCtx *f = ctx;
    u32 id = pci_read(bdf, PCI_VENDOR, 4);

    if ((id & 0xFFFF) != f->vendor) {
        return;
    }
    for (u32 i = 0; i < f->nids; i++) {
        if (id >> 16 == f->ids[i] && f->n < f->max) {
            f->bdfs[f->n++] = bdf;
        }
    }
}

u32 pci_find(u16 vendor, const u16 *ids, u32 nids, u32 *bdfs, u32 max)
{
    FindCtx f = {vendor, ids, nids, bdfs, max, 0};

    pci_each(find_one, &f);
    return f.n;
}

u32 pci_find_cap(u32 bdf, u8 id, u32 after)
{
    if (!(pci_read(bdf, PCI_STATUS, 2) & PCI_STATUS_CAPS)) {
        return 0;
    }
    u32 off = pci_read(bdf, PCI_CAP_PTR, 1) & 0xFC;
    int passed = !after;
    for (int guard = 0; off >= 0x40 && guard < 48; guard++) {
        if (passed && pci_read(bdf, off, 1) == id) {
            return off;
        }
        if (off == after) {
            passed = 1;
        }
        off = pci_read(bdf, off + 1, 1) & 0xFC;
    }
    return 0;
}

/* Reads the six BARs with their sizes. Memory decode must be off while the
 * all-ones pattern is in a BAR (the caller turns it off). */
static void bars_probe(u32 bdf, PciBar bars[6])
{
    for (u32 i = 0; i < 6; i++) {
        bars[i] = (PciBar){0};
    }
    if ((pci_read(bdf, PCI_HEADER_TYPE, 1) & 0x7F) != 0) {
        return; /* a bridge: only two BARs and other rules; not ours */
    }
    for (u32 i = 0; i < 6; i++) {
        u32 off = PCI_BAR0 + 4 * i;
        u32 lo = pci_read(bdf, off, 4);
        pci_write(bdf, off, 4, 0xFFFFFFFF);
        u32 lo_mask = pci_read(bdf, off, 4);
        pci_write(bdf, off, 4, lo);
        if (lo & 1) {
            u32 mask = lo_mask & ~3u;
            bars[i].io = 1;
            bars[i].addr = lo & ~3u;
            bars[i].size = mask ? (u64)((~mask & 0xFFFF) + 1) : 0;
            continue;
        }
        u64 mask = lo_mask & ~0xFu;
        u64 addr = lo & ~0xFu;
        if ((lo & 6) == 4 && i < 5) {
            u32 hi = pci_read(bdf, off + 4, 4);
            pci_write(bdf, off + 4, 4, 0xFFFFFFFF);
            u32 hi_mask = pci_read(bdf, off + 4, 4);
            pci_write(bdf, off + 4, 4, hi);
            mask |= (u64)hi_mask << 32;
            addr |= (u64)hi << 32;
            bars[i].is64 = 1;
        } else if (mask) {
            mask |= 0xFFFFFFFF00000000UL; /* a 32-bit BAR: the upper bits "are set" */
        }
        bars[i].addr = addr;
        bars[i].size = mask ? ~mask + 1 : 0; /* 0: not implemented */
        if (bars[i].is64) {
            i++; /* the upper half */
        }
    }
}

/* Memory ranges that other bus-0 functions decode (to place ours clear of). */
typedef struct Ranges {
    u32 self;
    u32 n;
    u64 base[64], end[64];
} Ranges;

static void ranges_add(Ranges *r, u64 base, u64 size)
{
    if (size && r->n < ARRAY_SIZE(r->base)) {
        r->base[r->n] = base;
        r->end[r->n] = base + size;
        r->n++;
    }
}

static void ranges_of(u32 bdf, void *ctx)
{
    Ranges *r = ctx;
    PciBar bars[6];

    if (bdf == r->self) {
        return;
    }
    u32 cmd = pci_read(bdf, PCI_COMMAND, 2);
    if (!(cmd & PCI_CMD_MEMORY)) {
        return; /* decodes nothing */
    }
    pci_write(bdf, PCI_COMMAND, 2, cmd & ~(PCI_CMD_MEMORY | PCI_CMD_IO));
    bars_probe(bdf, bars);
    pci_write(bdf, PCI_COMMAND, 2, cmd);
    for (u32 i = 0; i < 6; i++) {
        if (!bars[i].io && bars[i].addr) {
            ranges_add(r, bars[i].addr, bars[i].size);
        }
    }
}

/* The lowest size-aligned address in the hole clear of every range. */
static u64 place(Ranges *r, u64 size)
{
    u64 at = HOLE_START;

    for (int moved = 1; moved;) {
        moved = 0;
        at = (at + size - 1) & ~(size - 1);
        for (u32 i = 0; i < r->n; i++) {
            if (at < r->end[i] && r->base[i] < at + size) {
                at = r->end[i];
                moved = 1;
            }
        }
    }
    return at + size <= HOLE_END ? at : 0;
}

int pci_enable(u32 bdf, PciBar bars[6])
{
    u32 cmd = pci_read(bdf, PCI_COMMAND, 2);
    static Ranges ranges;
    Ranges *r = &ranges;
    int need = 0;

    pci_write(bdf, PCI_COMMAND, 2, cmd & ~(PCI_CMD_MEMORY | PCI_CMD_IO));
    bars_probe(bdf, bars);
    for (u32 i = 0; i < 6; i++) {
        if (!bars[i].io && bars[i].size &&
            (!bars[i].addr || bars[i].addr + bars[i].size > FOUR_GIB)) {
            need = 1;
        }
    }
    if (need) {
        r->self = bdf;
        r->n = 0;
        pci_each(ranges_of, r);
        for (u32 i = 0; i < 6; i++) {
            if (!bars[i].io && bars[i].size && bars[i].addr &&
                bars[i].addr + bars[i].size <= FOUR_GIB) {
                ranges_add(r, bars[i].addr, bars[i].size); /* ours, kept */
            }
        }
        for (u32 i = 0; i < 6; i++) {
            PciBar *bar = &bars[i];
            if (bar->io || !bar->size ||
                (bar->addr && bar->addr + bar->size <= FOUR_GIB)) {
                continue;
            }
            u64 at = place(r, bar->size < 4096 ? 4096 : bar->size);
            if (!at) {
                return -1;
            }
            pci_write(bdf, PCI_BAR0 + 4 * i, 4,
                      (u32)at | (pci_read(bdf, PCI_BAR0 + 4 * i, 4) & 0xF));
            if (bar->is64) {
                pci_write(bdf, PCI_BAR0 + 4 * i + 4, 4, 0);
            }
            bar->addr = at;
            bar->assigned_by_testos = 1;
            ranges_add(r, at, bar->size < 4096 ? 4096 : bar->size);
        }
    }
    pci_write(bdf, PCI_COMMAND, 2,
              cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE);
    return 0;
}

#define PCI_ROM 0x30
#define PCI_ROM_ENABLE 1u
#define PCI_ROM_MASK 0xFFFFF800u

/* One function's expansion ROM BAR: where it was found, its size, whether
 * it was enabled, and its first two bytes read with the BAR enabled (0xaa55
 * begins an option ROM); the registers are put back after. */
static void rom_visit(u32 bdf, void *ctx)
{
    u32 reg, mask, sig = 0;

    if ((pci_read(bdf, PCI_HEADER_TYPE, 1) & 0x7F) != 0) {
        return; /* a bridge keeps its ROM BAR elsewhere */
    }
    reg = pci_read(bdf, PCI_ROM, 4);
    pci_write(bdf, PCI_ROM, 4, PCI_ROM_MASK);
    mask = pci_read(bdf, PCI_ROM, 4) & PCI_ROM_MASK;
    pci_write(bdf, PCI_ROM, 4, reg);
    if (!mask) {
        return; /* no ROM BAR */
    }
    if (reg & PCI_ROM_MASK) {
        u32 cmd = pci_read(bdf, PCI_COMMAND, 2);
        pci_write(bdf, PCI_COMMAND, 2, cmd | PCI_CMD_MEMORY);
        pci_write(bdf, PCI_ROM, 4, (reg & PCI_ROM_MASK) | PCI_ROM_ENABLE);
        sig = *(volatile u16 *)phys(reg & PCI_ROM_MASK);
        pci_write(bdf, PCI_ROM, 4, reg);
        pci_write(bdf, PCI_COMMAND, 2, cmd);
    }
    kprintf("pci-rom %x:%x.%x addr=%x size=%x enabled=%u sig=%x", bdf >> 8, (bdf >> 3) & 0x1F,
            bdf & 7, reg & PCI_ROM_MASK, ~mask + 1, reg & PCI_ROM_ENABLE, sig);
}

/* Every bus-0 function's ROM BAR as the firmware (or the VMM, for a
 * -kernel boot) left it. */
void scenario_pci_rom(Cpu *bsp)
{
    pci_each(rom_visit, 0);
}
