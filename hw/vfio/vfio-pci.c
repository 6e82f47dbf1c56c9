/*
 * vfio-pci: config space and BARs of a passed-through host PCI function.
 * Config reads merge the device's bytes with the bits this model
 * emulates (BARs, ROM BAR, capability chain, MSI and MSI-X capabilities,
 * decode bits, interrupt line); writes go to the device except where they
 * would reach an emulated register.  BARs are mmapped where the device
 * allows and become KVM memory slots at the guest's BAR address; the rest
 * (and the MSI-X table and PBA) trap here.  Machine lock held throughout.
 */
#include <string.h>
#include <unistd.h>

#include "vfio-pci-int.h"
#include "util/error.h"

#define VFIO_PCI_PAGE_SIZE 4096ULL
/* Command bits this model keeps for itself (BAR decode), besides passing them on. */
#define VFIO_PCI_COMMAND_EMULATED (PCI_COMMAND_IO | PCI_COMMAND_MEMORY)
#define VFIO_PCI_MAX_CAPS         48 /* (256 - 64) / 4: a longer chain loops */

static const PciDeviceOps vfio_pci_ops;

static VfioPci *vfio_pci_of(PciDevice *dev)
{
    return dev && dev->ops == &vfio_pci_ops ? dev->opaque : NULL;
}

const char *vfio_pci_host_name(PciDevice *dev)
{
    VfioPci *vp = vfio_pci_of(dev);

    return vp ? vp->dev->name : NULL;
}

static void emulate(VfioPci *vp, unsigned offset, unsigned len, uint8_t bits)
{
    memset(vp->emulated + offset, bits, len);
}

/* ---- config space ---- */

static bool vfio_pci_config_read(PciDevice *pci, unsigned offset, unsigned len,
                                 uint32_t *val)
{
    VfioPci *vp = pci->opaque;
    uint8_t buf[4] = { 0xff, 0xff, 0xff, 0xff };
    bool all_emulated = true;

    for (unsigned i = 0; i < len; i++) {
        all_emulated &= vp->emulated[offset + i] == 0xff;
    }
    if (!all_emulated && offset + len <= vp->config.size &&
        !vp->dev->ops->read(vp->dev, VFIO_PCI_CONFIG_REGION_INDEX, offset, buf, len,
                            NULL)) {
        memset(buf, 0xff, sizeof(buf));
    }
    vfio_pci_irq_config_refresh(vp, offset, len);
    *val = 0;
    for (unsigned i = 0; i < len; i++) {
        uint8_t mask = vp->emulated[offset + i];
        uint8_t byte = (buf[i] & ~mask) | (pci->config[offset + i] & mask);
        *val |= (uint32_t)byte << (8 * i);
    }
    return true;
}

/* Pass the write's bytes on to the device, but for the ones kept here. */
static void vfio_pci_config_forward(VfioPci *vp, unsigned offset, unsigned len,
                                    uint32_t val)
{
    unsigned start = offset, end = offset + len;

    while (start < end) {
        unsigned run_end;
        uint8_t buf[4];

        if (vp->no_write[start]) {
            start++;
            continue;
        }
        for (run_end = start; run_end < end && !vp->no_write[run_end]; run_end++) {
            buf[run_end - start] = val >> (8 * (run_end - offset));
        }
        if (run_end <= vp->config.size) {
            GError *err = NULL;
            if (!vp->dev->ops->write(vp->dev, VFIO_PCI_CONFIG_REGION_INDEX, start, buf,
                                     run_end - start, &err)) {
                warn_report("%s: config write at 0x%x: %s", vp->pci->bus_name, start,
                            err->message);
                g_error_free(err);
            }
        }
        start = run_end;
    }
}

static void vfio_pci_config_write(PciDevice *pci, unsigned offset, unsigned len,
                                  uint32_t val)
{
    VfioPci *vp = pci->opaque;

    vfio_pci_config_forward(vp, offset, len, val);
    vfio_pci_irq_config_written(vp, offset, len);
    if (offset <= PCI_COMMAND + 1 && offset + len > PCI_COMMAND) {
        /* a driver enabling the device: PIRQ routes are set by now */
        vfio_pci_intx_update_route(vp);
    }
}

/* Capabilities the guest sees; the others are left out of the chain. */
static bool vfio_pci_cap_visible(uint8_t id)
{
    switch (id) {
    case PCI_CAP_ID_PM:
    case PCI_CAP_ID_VPD:
    case PCI_CAP_ID_MSI:
    case PCI_CAP_ID_VNDR:
    case PCI_CAP_ID_EXP:
    case PCI_CAP_ID_MSIX:
    case PCI_CAP_ID_AF:
        return true;
    default:
        return false;
    }
}

/*
 * Walk the device's capability list (bounded, aligned, inside the header's
 * end) and relink the visible ones: the pointer bytes become emulated.
 */
static void vfio_pci_caps_init(VfioPci *vp, const uint8_t *hw)
{
    uint8_t *cfg = vp->pci->config;
    uint8_t *link = cfg + PCI_CAPABILITY_LIST;
    uint8_t pos = (hw[PCI_STATUS] & PCI_STATUS_CAP_LIST) ? hw[PCI_CAPABILITY_LIST] & ~3
                                                         : 0;
    bool seen[PCI_CONFIG_SIZE] = { false };

    emulate(vp, PCI_CAPABILITY_LIST, 1, 0xff);
    vp->emulated[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    *link = 0;
    for (int n = 0; pos >= 0x40 && !seen[pos] && n < VFIO_PCI_MAX_CAPS; n++) {
        uint8_t id = hw[pos + PCI_CAP_LIST_ID];

        seen[pos] = true;
        if (vfio_pci_cap_visible(id)) {
            *link = pos;
            link = cfg + pos + PCI_CAP_LIST_NEXT;
            emulate(vp, pos + PCI_CAP_LIST_NEXT, 1, 0xff);
            if (id == PCI_CAP_ID_MSI && !vp->msi_cap) {
                vp->msi_cap = pos;
            } else if (id == PCI_CAP_ID_MSIX && !vp->msix_cap && pos <= 0xf4) {
                vp->msix_cap = pos;
            }
        }
        pos = hw[pos + PCI_CAP_LIST_NEXT] & ~3;
    }
    *link = 0;
    cfg[PCI_STATUS] = cfg[PCI_CAPABILITY_LIST] ? cfg[PCI_STATUS] | PCI_STATUS_CAP_LIST
                                               : cfg[PCI_STATUS] & ~PCI_STATUS_CAP_LIST;
}

/* ---- BARs ---- */

/*
 * One access of len bytes to device memory mmapped at p, as the guest
 * made it: a single load or store of that width where there is one (a
 * misaligned one goes byte by byte).
 */
static void vfio_pci_mmio_access(volatile void *p, uint8_t *data, unsigned len,
                                 bool is_write)
{
    switch ((uintptr_t)p & (len - 1) ? 0 : len) {
    case 1:
        is_write ? (void)(*(volatile uint8_t *)p = data[0])
                 : (void)(data[0] = *(volatile uint8_t *)p);
        return;
    case 2: {
        uint16_t v;
        if (is_write) {
            memcpy(&v, data, 2);
            *(volatile uint16_t *)p = v;
        } else {
            v = *(volatile uint16_t *)p;
            memcpy(data, &v, 2);
        }
        return;
    }
    case 4: {
        uint32_t v;
        if (is_write) {
            memcpy(&v, data, 4);
            *(volatile uint32_t *)p = v;
        } else {
            v = *(volatile uint32_t *)p;
            memcpy(data, &v, 4);
        }
        return;
    }
    case 8: {
        uint64_t v;
        if (is_write) {
            memcpy(&v, data, 8);
            *(volatile uint64_t *)p = v;
        } else {
            v = *(volatile uint64_t *)p;
            memcpy(data, &v, 8);
        }
        return;
    }
    default:
        for (unsigned i = 0; i < len; i++) {
            vfio_pci_mmio_access((volatile uint8_t *)p + i, data + i, 1, is_write);
        }
    }
}

/* Where [offset, offset + len) of the BAR is mmapped, or NULL. */
static volatile void *vfio_pci_bar_host(VfioPciBar *bar, uint64_t offset, unsigned len)
{
    for (unsigned m = 0; m < bar->nr_mmaps; m++) {
        const VfioPciMmap *map = &bar->mmaps[m];
        if (offset >= map->offset && offset + len <= map->offset + map->size) {
            return (volatile uint8_t *)map->host + (offset - map->offset);
        }
    }
    return NULL;
}

/*
 * A trapped access: the MSI-X table and PBA are emulated; the rest of
 * their pages (KVM maps whole pages only), with MSIX_MAPPABLE, and a BAR
 * whose memory slot KVM refused are reached through the mmap, without a
 * syscall; what no mmap covers (I/O BARs, sparse holes) through the
 * backend's pread/pwrite.
 */
static void vfio_pci_bar_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                            bool is_write)
{
    VfioPciBar *bar = opaque;
    VfioPci *vp = bar->vp;
    VfioDevice *dev = vp->dev;
    volatile void *host;
    bool ok = false;

    if (vfio_pci_msix_access(vp, bar->index, offset, data, len, is_write)) {
        return;
    }
    host = vfio_pci_bar_host(bar, offset, len);
    if (host) {
        vfio_pci_mmio_access(host, data, len, is_write);
        return;
    }
    if (offset + len <= bar->region.size) {
        ok = is_write ? dev->ops->write(dev, bar->index, offset, data, len, NULL)
                      : dev->ops->read(dev, bar->index, offset, data, len, NULL);
    }
    if (!ok && !is_write) {
        memset(data, 0xff, len);
    }
}

static void vfio_pci_bar_moved(PciDevice *pci, int index, uint64_t addr, bool mapped)
{
    VfioPci *vp = pci->opaque;
    VfioPciBar *bar = &vp->bars[index];

    for (unsigned i = 0; i < bar->nr_slots; i++) {
        VfioPciSlot *s = &bar->slots[i];
        uint64_t gpa = addr + s->offset;
        GError *err = NULL;

        if (!mapped && s->slot >= 0) {
            vp->kvm_ops->memslot_del(vp->kvm, s->slot);
            s->slot = -1;
        } else if (mapped && s->slot < 0 && vp->kvm_ops->memslot_add &&
                   !(gpa & (VFIO_PCI_PAGE_SIZE - 1))) {
            s->slot = vp->kvm_ops->memslot_add(vp->kvm, gpa, s->size, s->host, &err);
            if (s->slot < 0) {
                /* the accesses trap instead: slower, still right */
                warn_report("%s: BAR%d at 0x%" G_GINT64_MODIFIER "x: %s", pci->bus_name,
                            index, gpa, err ? err->message : "no memory slot");
                g_clear_error(&err);
            }
        }
    }
}

/* Add [offset, offset + size) minus the MSI-X pages as memory-slot pieces. */
static void vfio_pci_bar_add_slots(VfioPci *vp, VfioPciBar *bar, void *host,
                                   uint64_t offset, uint64_t size)
{
    uint64_t end = offset + size;
    uint64_t holes[2][2];
    unsigned nr_holes = 0;

    if (vp->msix_cap && vp->msix_table_bar == bar->index) {
        uint64_t s = vp->msix_table_offset & ~(VFIO_PCI_PAGE_SIZE - 1);
        uint64_t e = (vp->msix_table_offset + vp->msix_nr * 16ULL + VFIO_PCI_PAGE_SIZE -
                      1) &
                     ~(VFIO_PCI_PAGE_SIZE - 1);
        holes[nr_holes][0] = s;
        holes[nr_holes++][1] = e;
    }
    if (vp->msix_cap && vp->msix_pba_bar == bar->index) {
        uint64_t s = vp->msix_pba_offset & ~(VFIO_PCI_PAGE_SIZE - 1);
        uint64_t e = (vp->msix_pba_offset + (vp->msix_nr + 63) / 64 * 8 +
                      VFIO_PCI_PAGE_SIZE - 1) &
                     ~(VFIO_PCI_PAGE_SIZE - 1);
        holes[nr_holes][0] = s;
        holes[nr_holes++][1] = e;
    }
    while (offset < end) {
        uint64_t piece_end = end;
        bool in_hole = false;

        for (unsigned h = 0; h < nr_holes; h++) {
            if (offset >= holes[h][0] && offset < holes[h][1]) {
                offset = holes[h][1];
                in_hole = true;
            } else if (holes[h][0] > offset && holes[h][0] < piece_end) {
                piece_end = holes[h][0];
            }
        }
        if (in_hole || offset >= end) {
            continue;
        }
        if (!((piece_end - offset) & (VFIO_PCI_PAGE_SIZE - 1))) {
            bar->slots = g_renew(VfioPciSlot, bar->slots, bar->nr_slots + 1);
            bar->slots[bar->nr_slots++] = (VfioPciSlot){
                offset, piece_end - offset, (uint8_t *)host + (offset - (end - size)), -1
            };
        }
        offset = piece_end;
    }
}

/* mmap the areas the device allows (memory BARs only). */
static bool vfio_pci_bar_mmap(VfioPci *vp, VfioPciBar *bar, GError **errp)
{
    if (bar->kind == PCI_BAR_IO || !(bar->region.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
        return true;
    }
    for (unsigned i = 0; i < bar->region.nr_areas; i++) {
        const VfioArea *a = &bar->region.areas[i];
        void *host;

        if (!a->size || a->offset + a->size > bar->region.size ||
            ((a->offset | a->size) & (VFIO_PCI_PAGE_SIZE - 1))) {
            continue; /* nothing a memory slot can hold */
        }
        host = vp->dev->ops->mmap(vp->dev, bar->index, a->offset, a->size, errp);
        if (!host) {
            return false;
        }
        bar->mmaps = g_renew(VfioPciMmap, bar->mmaps, bar->nr_mmaps + 1);
        bar->mmaps[bar->nr_mmaps++] = (VfioPciMmap){ host, a->offset, a->size };
        vfio_pci_bar_add_slots(vp, bar, host, a->offset, a->size);
    }
    return true;
}

static uint64_t pow2_at_least(uint64_t v, uint64_t min)
{
    uint64_t p = min;

    while (p < v) {
        p <<= 1;
    }
    return p;
}

/* Size each BAR from its region, its kind from the device's register. */
static bool vfio_pci_bars_init(VfioPci *vp, const uint8_t *hw, GError **errp)
{
    for (int i = 0; i < PCI_BAR_COUNT; i++) {
        VfioPciBar *bar = &vp->bars[i];
        uint32_t reg = pci_get_long(hw + PCI_BASE_ADDRESS_0 + 4 * i);
        bool prefetch = false;
        uint64_t size;

        bar->vp = vp;
        bar->index = i;
        if (!vp->dev->ops->region_info(vp->dev, i, &bar->region, errp)) {
            return false;
        }
        if (!bar->region.size) {
            continue;
        }
        if (reg & PCI_BASE_ADDRESS_SPACE_IO) {
            bar->kind = PCI_BAR_IO;
            size = pow2_at_least(bar->region.size, 4);
        } else {
            prefetch = reg & PCI_BASE_ADDRESS_MEM_PREFETCH;
            bar->kind = (reg & PCI_BASE_ADDRESS_MEM_TYPE_MASK) ==
                                PCI_BASE_ADDRESS_MEM_TYPE_64
                            ? PCI_BAR_MEM64
                            : PCI_BAR_MEM32;
            size = pow2_at_least(bar->region.size, 16);
            if (bar->kind == PCI_BAR_MEM64 && i == PCI_BAR_COUNT - 1) {
                error_setg(errp, "vfio %s: BAR%d claims 64 bits with no BAR after it",
                           vp->dev->name, i);
                return false;
            }
            if (bar->kind == PCI_BAR_MEM32 && size > (1ULL << 31)) {
                error_setg(errp,
                           "vfio %s: BAR%d: 32-bit BAR of %" G_GUINT64_FORMAT " bytes",
                           vp->dev->name, i, size);
                return false;
            }
        }
        pci_device_set_bar(vp->pci, i, bar->kind, prefetch, size, vfio_pci_bar_io, bar);
        if (bar->kind == PCI_BAR_MEM64) {
            i++; /* the upper half: no region of its own */
            vp->bars[i].vp = vp;
            vp->bars[i].index = i;
        }
    }
    emulate(vp, PCI_BASE_ADDRESS_0, 4 * PCI_BAR_COUNT, 0xff);
    memset(vp->no_write + PCI_BASE_ADDRESS_0, 1, 4 * PCI_BAR_COUNT);
    return true;
}

/* The device's ROM, read once (Linux's vfio-pci enables the ROM BAR for it). */
static void vfio_pci_rom_load(VfioPci *vp)
{
    GError *err = NULL;

    vp->rom_loaded = true;
    if (!vp->rom_region_size) {
        return;
    }
    vp->rom_data = g_malloc(vp->rom_region_size);
    if (!vp->dev->ops->read(vp->dev, VFIO_PCI_ROM_REGION_INDEX, 0, vp->rom_data,
                            vp->rom_region_size, &err)) {
        /* QEMU's advice: the ROM may be unreadable (rombar=0, romfile=) */
        warn_report("%s: failed to read the device's ROM (%s); "
                    "the guest reads all ones there (rombar=0 hides it)",
                    vp->pci->bus_name, err->message);
        g_clear_error(&err);
        g_clear_pointer(&vp->rom_data, g_free);
        return;
    }
    vp->rom_data_size = vp->rom_region_size;
    if (vp->rom_data_size < 2 || vp->rom_data[0] != 0x55 || vp->rom_data[1] != 0xaa) {
        warn_report("%s: the device's ROM has no 0x55 0xaa signature", vp->pci->bus_name);
    }
}

/* Guest accesses to the enabled ROM BAR: reads only. */
static void vfio_pci_rom_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                            bool is_write)
{
    VfioPci *vp = opaque;

    if (is_write) {
        return;
    }
    if (!vp->rom_loaded) {
        vfio_pci_rom_load(vp);
    }
    for (unsigned i = 0; i < len; i++) {
        data[i] = offset + i < vp->rom_data_size ? vp->rom_data[offset + i] : 0xff;
    }
}

/* romfile=: the whole file is the ROM (hw/pci's loader, QEMU's errors). */
static bool vfio_pci_romfile_load(VfioPci *vp, const char *path, GError **errp)
{
    if (!pci_romfile_load(path, &vp->rom_data, &vp->rom_data_size, errp)) {
        return false;
    }
    vp->rom_loaded = true;
    return true;
}

static bool vfio_pci_rom_init(VfioPci *vp, const VfioPciOptions *o, GError **errp)
{
    VfioRegion rom = { 0 };
    uint64_t size = 0;

    if (vp->dev->nr_regions > VFIO_PCI_ROM_REGION_INDEX &&
        !vp->dev->ops->region_info(vp->dev, VFIO_PCI_ROM_REGION_INDEX, &rom, errp)) {
        return false;
    }
    emulate(vp, PCI_ROM_ADDRESS, 4, 0xff);
    memset(vp->no_write + PCI_ROM_ADDRESS, 1, 4);
    pci_set_long(vp->pci->config + PCI_ROM_ADDRESS, 0);
    if (!o->rombar) {
        /* none, romfile= or not */
    } else if (o->romfile) {
        if (*o->romfile && !vfio_pci_romfile_load(vp, o->romfile, errp)) {
            vfio_region_clear(&rom);
            return false;
        }
        size = vp->rom_data_size;
    } else if (rom.size && (rom.flags & VFIO_REGION_INFO_FLAG_READ)) {
        vp->rom_region_size = size = rom.size;
    }
    if (size > (1ULL << 31)) {
        vfio_region_clear(&rom);
        error_setg(errp, "vfio %s: ROM of %" G_GUINT64_FORMAT " bytes", vp->dev->name,
                   size);
        return false;
    }
    if (size) {
        vp->rom_size = pow2_at_least(size, 2048);
        pci_device_set_rom(vp->pci, vp->rom_size, vfio_pci_rom_io, vp);
    }
    vfio_region_clear(&rom);
    return true;
}

/* ---- life cycle ---- */

static void vfio_pci_reset(PciDevice *pci)
{
    VfioPci *vp = pci->opaque;
    GError *err = NULL;
    uint16_t cmd = 0;

    vfio_pci_irq_reset(vp);
    if (vp->dev->flags & VFIO_DEVICE_FLAGS_RESET) {
        if (!vp->dev->ops->reset(vp->dev, &err)) {
            warn_report("%s: %s", pci->bus_name, err->message);
            g_clear_error(&err);
        }
    } else {
        /* no function reset: at least stop decoding and DMA */
        vp->dev->ops->write(vp->dev, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd,
                            sizeof(cmd), NULL);
    }
}

static void vfio_pci_bars_release(VfioPci *vp)
{
    for (int i = 0; i < PCI_BAR_COUNT; i++) {
        VfioPciBar *bar = &vp->bars[i];

        for (unsigned s = 0; s < bar->nr_slots; s++) {
            if (bar->slots[s].slot >= 0) {
                vp->kvm_ops->memslot_del(vp->kvm, bar->slots[s].slot);
            }
        }
        for (unsigned m = 0; m < bar->nr_mmaps; m++) {
            vp->dev->ops->munmap(vp->dev, bar->mmaps[m].host, bar->mmaps[m].size);
        }
        g_free(bar->slots);
        g_free(bar->mmaps);
        vfio_region_clear(&bar->region);
    }
}

static void vfio_pci_destroy(PciDevice *pci)
{
    VfioPci *vp = pci->opaque;
    PciBus *bus = pci->bus;

    if (!vp) {
        return;
    }
    if (vp->blocks_migration) {
        device_state_unblock(vp->states, vp);
    }
    vfio_pci_irq_cleanup(vp);
    vfio_pci_bars_release(vp);
    vfio_region_clear(&vp->config);
    /*
     * Off the bus already.  Closing resets the device and, for the last
     * one in the container, unpins all guest RAM: seconds in a nested rig,
     * during which a failover guest's vCPU waited on the machine lock (the
     * stream stopped in wait-unplug).  The guest runs on meanwhile, as
     * while device_add pins it.
     */
    if (bus) {
        pci_bus_slow_begin(bus);
    }
    vp->dev->ops->close(vp->dev);
    if (bus) {
        pci_bus_slow_end(bus);
    }
    g_free(vp->rom_data);
    g_free(vp->failover_pair_id);
    g_free(vp->proc_root);
    g_free(vp);
    pci->opaque = NULL;
}

static const PciDeviceOps vfio_pci_ops = {
    .config_read = vfio_pci_config_read,
    .config_write = vfio_pci_config_write,
    .bar_moved = vfio_pci_bar_moved,
    .reset = vfio_pci_reset,
    .destroy = vfio_pci_destroy,
};

/* The header as this model shows it: emulated registers set up. */
static void vfio_pci_header_init(VfioPci *vp, const uint8_t *hw)
{
    PciDevice *pci = vp->pci;

    memcpy(pci->config, hw, PCI_CONFIG_SIZE);
    memset(pci->wmask, 0, PCI_CONFIG_SIZE);
    memset(pci->w1cmask, 0, PCI_CONFIG_SIZE);
    memset(pci->config + PCI_BASE_ADDRESS_0, 0, 4 * PCI_BAR_COUNT);
    /* decode starts off; the device still gets every command write */
    pci_set_word(pci->config + PCI_COMMAND,
                 pci_get_word(hw + PCI_COMMAND) & ~VFIO_PCI_COMMAND_EMULATED);
    pci_set_word(pci->wmask + PCI_COMMAND, VFIO_PCI_COMMAND_EMULATED);
    vp->emulated[PCI_COMMAND] = VFIO_PCI_COMMAND_EMULATED;
    /* one function of its own slot */
    pci->config[PCI_HEADER_TYPE] = hw[PCI_HEADER_TYPE] & ~0x80;
    vp->emulated[PCI_HEADER_TYPE] = 0x80;
    pci->config[PCI_INTERRUPT_LINE] = 0;
    pci->wmask[PCI_INTERRUPT_LINE] = 0xff;
    emulate(vp, PCI_INTERRUPT_LINE, 2, 0xff);
}

PciDevice *vfio_pci_realize(PciBus *bus, VfioDevice *vdev, const VfioPciOptions *o,
                            GError **errp)
{
    uint8_t hw[PCI_CONFIG_SIZE];
    VfioPci *vp = g_new0(VfioPci, 1);
    PciDevice *pci;

    vp->dev = vdev;
    vp->intx_fd = vp->intx_resample_fd = vp->intx_gsi = -1;
    memset(hw, 0xff, sizeof(hw));
    if (!vdev->ops->region_info(vdev, VFIO_PCI_CONFIG_REGION_INDEX, &vp->config, errp) ||
        !vdev->ops->read(vdev, VFIO_PCI_CONFIG_REGION_INDEX, 0, hw,
                         MIN(vp->config.size, PCI_CONFIG_SIZE), errp)) {
        vfio_region_clear(&vp->config);
        vdev->ops->close(vdev);
        g_free(vp);
        return NULL;
    }
    pci = pci_device_new("vfio-pci", pci_get_word(hw + PCI_VENDOR_ID),
                         pci_get_word(hw + PCI_DEVICE_ID),
                         pci_get_long(hw + PCI_CLASS_REVISION) >> 8, hw[PCI_REVISION_ID]);
    vp->pci = pci;
    pci->ops = &vfio_pci_ops;
    pci->opaque = vp;
    pci->qdev_id = g_strdup(o->id);
    pci_bus_kvm_ops(bus, &vp->kvm_ops, &vp->kvm);
    vp->states = pci_bus_device_states(bus);
    vp->failover_pair_id = g_strdup(o->failover_pair_id);
    vp->proc_root = g_strdup(o->proc_root ? o->proc_root : "/proc");
    vfio_pci_header_init(vp, hw);
    vfio_pci_caps_init(vp, hw);
    if (pci_get_word(hw + PCI_VENDOR_ID) == 0xffff) {
        error_setg(errp, "vfio %s: the device's config space reads as all ones",
                   vdev->name);
        goto fail;
    }
    if (!vfio_pci_bars_init(vp, hw, errp) || !vfio_pci_rom_init(vp, o, errp) ||
        !vfio_pci_irq_init(vp, errp)) {
        goto fail;
    }
    for (int i = 0; i < PCI_BAR_COUNT; i++) {
        if (vp->bars[i].region.size && !vfio_pci_bar_mmap(vp, &vp->bars[i], errp)) {
            goto fail;
        }
    }
    if (!pci_device_realize(bus, pci, o->devfn, errp)) {
        goto fail;
    }
    if (!o->failover_pair_id && vp->states) {
        device_state_block(vp->states, vp, VFIO_MIGRATION_BLOCKER);
        vp->blocks_migration = true;
    }
    return pci;
fail:
    pci_device_free(pci);
    return NULL;
}
