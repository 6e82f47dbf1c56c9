/*
 * Generic PCI device support: type-0 config space with write masks, BAR
 * sizing and placement onto the machine's io/mmio buses, INTx levels
 * through the PIIX3 PIRQ routes, and device-state save/load.
 * Locking: machine lock for config and BARs; the bus's intx_lock for INTx.
 */
#include <string.h>

#include "pci-int.h"
#include "util/error.h"

/* Command bits a guest may change (the others are hardwired to zero). */
#define PCI_COMMAND_WRITABLE                                                             \
    (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |     \
     PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
/* Status bits that a write of 1 clears (error reporting). */
#define PCI_STATUS_W1C                                                                   \
    (PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |     \
     PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR |                         \
     PCI_STATUS_DETECTED_PARITY)
/* Memory BARs live below this (no guest has more physical address bits). */
#define PCI_MEM_LIMIT      (1ULL << 48)
#define PCI_LOW_MEM_LIMIT  0x100000ULL   /* legacy area below 1 MiB */
#define PCI_RESERVED_START 0xfec00000ULL /* IOAPIC, LAPIC, BIOS flash */
#define PCI_RESERVED_END   0x100000000ULL
#define PCI_HIGH_RAM_START 0x100000000ULL /* RAM above 4 GiB starts here */
#define PCI_IO_SPACE_END   0x10000ULL
#define PCI_IO_SPACE_MIN   0x1000ULL /* ISA ports stay ISA's */

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

PciDevice *pci_device_new(const char *name, uint16_t vendor, uint16_t device,
                          uint32_t class_code, uint8_t revision)
{
    PciDevice *dev = g_new0(PciDevice, 1);

    dev->name = g_strdup(name);
    dev->devfn = -1;
    dev->bootindex = -1;
    dev->next_cap = 0x40;
    for (int i = 0; i < PCI_BAR_COUNT; i++) {
        dev->bars[i].mapped_addr = PCI_BAR_UNMAPPED;
    }
    dev->rom.mapped_addr = PCI_BAR_UNMAPPED;
    pci_set_word(dev->config + PCI_VENDOR_ID, vendor);
    pci_set_word(dev->config + PCI_DEVICE_ID, device);
    dev->config[PCI_REVISION_ID] = revision;
    dev->config[PCI_CLASS_PROG] = class_code & 0xff;
    pci_set_word(dev->config + PCI_CLASS_DEVICE, class_code >> 8);
    pci_set_word(dev->config + PCI_SUBSYSTEM_VENDOR_ID, PCI_VENDOR_REDHAT_QUMRANET);
    pci_set_word(dev->config + PCI_SUBSYSTEM_ID, PCI_SUBSYSTEM_ID_QEMU);
    pci_set_word(dev->wmask + PCI_COMMAND, PCI_COMMAND_WRITABLE);
    pci_set_word(dev->w1cmask + PCI_STATUS, PCI_STATUS_W1C);
    dev->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    dev->wmask[PCI_LATENCY_TIMER] = 0xff;
    dev->wmask[PCI_INTERRUPT_LINE] = 0xff;
    return dev;
}

void pci_device_set_bar(PciDevice *dev, int bar, PciBarKind kind, bool prefetch,
                        uint64_t size, BusIoFn fn, void *opaque)
{
    uint8_t *reg = dev->config + PCI_BASE_ADDRESS_0 + 4 * bar;
    uint8_t *mask = dev->wmask + PCI_BASE_ADDRESS_0 + 4 * bar;
    uint64_t addr_mask = ~(size - 1);

    g_assert(bar >= 0 && bar < PCI_BAR_COUNT && size && !(size & (size - 1)));
    g_assert(kind != PCI_BAR_MEM64 || bar + 1 < PCI_BAR_COUNT);
    dev->bars[bar] = (PciBar){ kind, prefetch, size, fn, opaque, PCI_BAR_UNMAPPED };
    switch (kind) {
    case PCI_BAR_IO:
        g_assert(size >= 4);
        pci_set_long(reg, PCI_BASE_ADDRESS_SPACE_IO);
        pci_set_long(mask, (uint32_t)addr_mask & ~3u);
        break;
    case PCI_BAR_MEM32:
    case PCI_BAR_MEM64:
        g_assert(size >= 16 && (kind == PCI_BAR_MEM64 || size <= (1ULL << 31)));
        pci_set_long(reg, (kind == PCI_BAR_MEM64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) |
                              (prefetch ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0));
        pci_set_long(mask, (uint32_t)addr_mask & ~0xfu);
        if (kind == PCI_BAR_MEM64) {
            pci_set_long(mask + 4, addr_mask >> 32);
            dev->bars[bar + 1] = (PciBar){ .mapped_addr = PCI_BAR_UNMAPPED };
        }
        break;
    case PCI_BAR_NONE:
        break;
    }
}

void pci_device_set_rom(PciDevice *dev, uint64_t size, BusIoFn fn, void *opaque)
{
    g_assert(size >= 2048 && size <= (1ULL << 31) && !(size & (size - 1)));
    dev->rom = (PciBar){ PCI_BAR_MEM32, false, size, fn, opaque, PCI_BAR_UNMAPPED };
    pci_set_long(dev->config + PCI_ROM_ADDRESS, 0);
    pci_set_long(dev->wmask + PCI_ROM_ADDRESS,
                 ((uint32_t) ~(size - 1) & PCI_ROM_ADDRESS_MASK) |
                     PCI_ROM_ADDRESS_ENABLE);
}

bool pci_romfile_load(const char *path, uint8_t **data, uint64_t *len, GError **errp)
{
    static const char *const firmware_dirs[] = { "/usr/share/qemu", "/usr/share/seabios",
                                                 "/usr/lib/ipxe/qemu" };
    gchar *contents = NULL;
    gsize size = 0;
    bool found = g_file_get_contents(path, &contents, &size, NULL);

    for (size_t i = 0; !found && !strchr(path, '/') && i < G_N_ELEMENTS(firmware_dirs);
         i++) {
        char *full = g_build_filename(firmware_dirs[i], path, NULL);
        found = g_file_get_contents(full, &contents, &size, NULL);
        g_free(full);
    }
    if (!found) {
        error_setg(errp, "failed to find romfile \"%s\"", path);
        return false;
    }
    if (!size || size > (1ULL << 31)) {
        g_free(contents);
        error_setg(errp,
                   size ? "romfile \"%s\" too large (size cannot exceed 2 GiB)"
                        : "romfile \"%s\" is empty",
                   path);
        return false;
    }
    *data = (uint8_t *)contents;
    *len = size;
    return true;
}

/* Guest reads of a ROM image (writes to a ROM go nowhere). */
static void pci_rom_image_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                             bool is_write)
{
    PciDevice *dev = opaque;

    for (unsigned i = 0; !is_write && i < len; i++) {
        data[i] = offset + i < dev->rom_image_size ? dev->rom_image[offset + i] : 0xff;
    }
}

void pci_device_set_rom_image(PciDevice *dev, uint8_t *data, uint64_t len)
{
    uint64_t size = 2048;

    while (size < len) {
        size <<= 1;
    }
    g_free(dev->rom_image);
    dev->rom_image = data;
    dev->rom_image_size = len;
    pci_device_set_rom(dev, size, pci_rom_image_io, dev);
}

uint8_t pci_device_add_capability(PciDevice *dev, uint8_t cap_id, uint8_t offset,
                                  uint8_t size)
{
    uint8_t *link = dev->config + PCI_CAPABILITY_LIST;

    if (!offset) {
        offset = dev->next_cap;
    }
    g_assert(offset >= 0x40 && offset + size <= PCI_CONFIG_SIZE && !(offset & 3));
    /* keep the list in ascending order of offsets */
    while (*link && *link < offset) {
        link = dev->config + *link + PCI_CAP_LIST_NEXT;
    }
    dev->config[offset + PCI_CAP_LIST_ID] = cap_id;
    dev->config[offset + PCI_CAP_LIST_NEXT] = *link;
    *link = offset;
    dev->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    if (offset + size > dev->next_cap) {
        dev->next_cap = (offset + size + 3) & ~3;
    }
    return offset;
}

void pci_device_set_intx_pin(PciDevice *dev, uint8_t pin)
{
    dev->config[PCI_INTERRUPT_PIN] = pin;
}

uint64_t pci_bar_programmed_address(PciDevice *dev, int bar)
{
    const uint8_t *reg = dev->config + PCI_BASE_ADDRESS_0 + 4 * bar;

    switch (dev->bars[bar].kind) {
    case PCI_BAR_IO:
        return pci_get_long(reg) & PCI_BASE_ADDRESS_IO_MASK;
    case PCI_BAR_MEM32:
        return pci_get_long(reg) & PCI_BASE_ADDRESS_MEM_MASK;
    case PCI_BAR_MEM64:
        return (pci_get_long(reg) & PCI_BASE_ADDRESS_MEM_MASK) |
               (uint64_t)pci_get_long(reg + 4) << 32;
    default:
        return PCI_BAR_UNMAPPED;
    }
}

/* Does [addr, addr+size) hit guest RAM or a range no BAR may take? */
static bool pci_mem_range_forbidden(const PciBus *bus, uint64_t addr, uint64_t size)
{
    return addr < PCI_LOW_MEM_LIMIT || addr + size < addr ||
           addr + size > PCI_MEM_LIMIT ||
           ranges_overlap(addr, size, 0, bus->cfg.ram_below_4g) ||
           ranges_overlap(addr, size, PCI_HIGH_RAM_START, bus->cfg.ram_above_4g) ||
           ranges_overlap(addr, size, PCI_RESERVED_START,
                          PCI_RESERVED_END - PCI_RESERVED_START);
}

/* BAR bar, or the ROM BAR for bar PCI_ROM_BAR. */
static PciBar *pci_bar(PciDevice *dev, int bar)
{
    return bar == PCI_ROM_BAR ? &dev->rom : &dev->bars[bar];
}

/* Where the BAR should decode now, or PCI_BAR_UNMAPPED. */
static uint64_t pci_bar_target(PciDevice *dev, int bar)
{
    const PciBar *b = pci_bar(dev, bar);
    uint16_t cmd = pci_get_word(dev->config + PCI_COMMAND);
    uint64_t addr;

    if (bar == PCI_ROM_BAR) {
        uint32_t reg = pci_get_long(dev->config + PCI_ROM_ADDRESS);
        if (b->kind == PCI_BAR_NONE || !(reg & PCI_ROM_ADDRESS_ENABLE)) {
            return PCI_BAR_UNMAPPED;
        }
        addr = reg & PCI_ROM_ADDRESS_MASK;
    } else {
        addr = pci_bar_programmed_address(dev, bar);
    }

    switch (b->kind) {
    case PCI_BAR_IO:
        if (!(cmd & PCI_COMMAND_IO) || addr < PCI_IO_SPACE_MIN ||
            addr + b->size > PCI_IO_SPACE_END) {
            return PCI_BAR_UNMAPPED;
        }
        return addr;
    case PCI_BAR_MEM32:
    case PCI_BAR_MEM64:
        if (!(cmd & PCI_COMMAND_MEMORY) ||
            pci_mem_range_forbidden(dev->bus, addr, b->size)) {
            return PCI_BAR_UNMAPPED;
        }
        return addr;
    default:
        return PCI_BAR_UNMAPPED;
    }
}

static Bus *pci_bar_bus(PciDevice *dev, int bar)
{
    return pci_bar(dev, bar)->kind == PCI_BAR_IO ? dev->bus->cfg.io_bus
                                                 : dev->bus->cfg.mmio_bus;
}

static void pci_bar_unmap(PciDevice *dev, int bar)
{
    PciBar *b = pci_bar(dev, bar);
    uint64_t addr = b->mapped_addr;

    if (addr == PCI_BAR_UNMAPPED) {
        return;
    }
    bus_unregister(pci_bar_bus(dev, bar), addr);
    b->mapped_addr = PCI_BAR_UNMAPPED;
    if (bar != PCI_ROM_BAR && dev->ops && dev->ops->bar_moved) {
        dev->ops->bar_moved(dev, bar, addr, false);
    }
}

/* Map at target when the bus has room; a clash leaves it unmapped. */
static void pci_bar_try_map(PciDevice *dev, int bar, uint64_t target)
{
    PciBar *b = pci_bar(dev, bar);

    if (target == PCI_BAR_UNMAPPED || b->mapped_addr != PCI_BAR_UNMAPPED) {
        return;
    }
    if (!bus_register(pci_bar_bus(dev, bar), target, b->size, b->fn, b->opaque,
                      dev->bus_name, NULL)) {
        return;
    }
    b->mapped_addr = target;
    if (bar != PCI_ROM_BAR && dev->ops && dev->ops->bar_moved) {
        dev->ops->bar_moved(dev, bar, target, true);
    }
}

void pci_device_unmap_all(PciDevice *dev)
{
    for (int i = 0; i <= PCI_ROM_BAR; i++) {
        pci_bar_unmap(dev, i);
    }
}

/*
 * Bring every BAR of the bus in line with its registers: first remove the
 * ones that moved or lost decode, then map every one that should decode,
 * so that a BAR refused for a clash is retried once the clash is gone.
 */
void pci_bus_update_all_mappings(PciBus *bus)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++) {
            PciDevice *dev = bus->devices[devfn];
            for (int i = 0; dev && i <= PCI_ROM_BAR; i++) {
                uint64_t target = pci_bar_target(dev, i);
                if (pass == 0 && pci_bar(dev, i)->mapped_addr != target) {
                    pci_bar_unmap(dev, i);
                } else if (pass == 1) {
                    pci_bar_try_map(dev, i, target);
                }
            }
        }
    }
}

void pci_device_update_mappings(PciDevice *dev)
{
    if (dev->bus) {
        pci_bus_update_all_mappings(dev->bus);
    }
}

int pci_pirq_to_irq(uint8_t route)
{
    unsigned irq = route & PIIX3_PIRQ_IRQ_MASK;

    if (route & PIIX3_PIRQ_DISABLE) {
        return -1;
    }
    /* IRQ 0-2, 8 and 13 are reserved on the PIIX3 */
    return irq < 3 || irq == 8 || irq == 13 ? -1 : (int)irq;
}

unsigned pci_slot_pirq(unsigned slot, unsigned pin)
{
    return (slot + pin - 2) & 3;
}

/* The ISA IRQ dev's pin reaches through the PIRQ routes, or -1; intx_lock. */
static int pci_device_irq_locked(PciBus *bus, PciDevice *dev)
{
    uint8_t pin = dev->config[PCI_INTERRUPT_PIN];

    if (pin < 1 || pin > 4) {
        return -1;
    }
    return pci_pirq_to_irq(bus->pirq[pci_slot_pirq(PCI_DEVFN_SLOT(dev->devfn), pin)]);
}

void pci_bus_update_intx_locked(PciBus *bus)
{
    uint8_t level[PCI_ISA_IRQ_COUNT] = { 0 };

    for (int devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++) {
        PciDevice *dev = bus->devices[devfn];
        uint16_t cmd;
        int irq;

        if (!dev || !dev->intx_level) {
            continue;
        }
        cmd = pci_get_word(dev->config + PCI_COMMAND);
        irq = pci_device_irq_locked(bus, dev);
        if (irq >= 0 && !(cmd & PCI_COMMAND_INTX_DISABLE)) {
            level[irq] = 1;
        }
    }
    for (int irq = 0; irq < PCI_ISA_IRQ_COUNT; irq++) {
        if (level[irq] != bus->line_level[irq]) {
            bus->line_level[irq] = level[irq];
            bus->cfg.ops->set_irq(bus->cfg.ops_opaque, irq, level[irq]);
        }
    }
}

void pci_set_irq(PciDevice *dev, int level)
{
    PciBus *bus = dev->bus;

    level = level ? 1 : 0;
    if (!bus || !dev->config[PCI_INTERRUPT_PIN]) {
        return;
    }
    pthread_mutex_lock(&bus->intx_lock);
    if (dev->intx_level != level) {
        dev->intx_level = level;
        pci_bus_update_intx_locked(bus);
    }
    pthread_mutex_unlock(&bus->intx_lock);
}

uint32_t pci_config_read(PciDevice *dev, unsigned offset, unsigned len)
{
    uint32_t val = 0;

    if ((len != 1 && len != 2 && len != 4) || offset + len > PCI_CONFIG_SIZE) {
        return UINT32_MAX;
    }
    if (dev->ops && dev->ops->config_read &&
        dev->ops->config_read(dev, offset, len, &val)) {
        return val;
    }
    for (unsigned i = 0; i < len; i++) {
        uint8_t byte = dev->config[offset + i];
        if (offset + i == PCI_STATUS &&
            __atomic_load_n(&dev->intx_level, __ATOMIC_RELAXED)) {
            byte |= PCI_STATUS_INTERRUPT;
        }
        val |= (uint32_t)byte << (8 * i);
    }
    return val;
}

void pci_config_write(PciDevice *dev, unsigned offset, unsigned len, uint32_t val)
{
    if ((len != 1 && len != 2 && len != 4) || offset + len > PCI_CONFIG_SIZE) {
        return;
    }
    for (unsigned i = 0; i < len; i++) {
        unsigned o = offset + i;
        uint8_t byte = val >> (8 * i);
        uint8_t v = (dev->config[o] & ~dev->wmask[o]) | (byte & dev->wmask[o]);
        dev->config[o] = v & ~(byte & dev->w1cmask[o]);
    }
    if (ranges_overlap(offset, len, PCI_COMMAND, 2) ||
        ranges_overlap(offset, len, PCI_BASE_ADDRESS_0, 4 * PCI_BAR_COUNT) ||
        (dev->rom.kind != PCI_BAR_NONE &&
         ranges_overlap(offset, len, PCI_ROM_ADDRESS, 4))) {
        pci_device_update_mappings(dev);
    }
    if (dev->bus && ranges_overlap(offset, len, PCI_COMMAND + 1, 1)) {
        pthread_mutex_lock(&dev->bus->intx_lock); /* INTx disable bit */
        pci_bus_update_intx_locked(dev->bus);
        pthread_mutex_unlock(&dev->bus->intx_lock);
    }
    if (dev->msix) {
        msix_config_written(dev, offset, len);
    }
    if (dev->ops && dev->ops->config_write) {
        dev->ops->config_write(dev, offset, len, val);
    }
    if (ranges_overlap(offset, len, PCI_COMMAND, 1)) {
        /* as the guest wrote it: a vfio-pci's bit lives in the host device */
        bool master = (val >> (8 * (PCI_COMMAND - offset))) & PCI_COMMAND_MASTER;
        if (dev->master_written && !master && dev->bus && dev->bus->master_off_fn) {
            dev->bus->master_off_fn(dev->bus->master_off_opaque, dev);
        }
        dev->master_written = master;
    }
}

void pci_bus_set_master_off(PciBus *bus, PciMasterOffFn fn, void *opaque)
{
    bus->master_off_opaque = opaque;
    bus->master_off_fn = fn;
}

static int pci_find_free_slot(PciBus *bus)
{
    for (int slot = 2; slot < PCI_SLOT_COUNT; slot++) {
        bool used = false;
        for (int fn = 0; fn < 8; fn++) {
            used |= bus->devices[PCI_MAKE_DEVFN(slot, fn)] != NULL;
        }
        if (!used) {
            return PCI_MAKE_DEVFN(slot, 0);
        }
    }
    return -1;
}

bool pci_device_realize(PciBus *bus, PciDevice *dev, int devfn, GError **errp)
{
    if (!bus) {
        error_setg(errp, "%s: this machine has no PCI bus", dev->name);
        return false;
    }
    if (devfn == PCI_DEVFN_AUTO) {
        devfn = pci_find_free_slot(bus);
        if (devfn < 0) {
            error_setg(errp, "PCI: no slot/function available for %s, all in use",
                       dev->name);
            return false;
        }
    } else if (devfn < 0 || devfn >= PCI_DEVFN_COUNT) {
        error_setg(errp, "PCI: invalid devfn %d for %s", devfn, dev->name);
        return false;
    } else if (bus->devices[devfn]) {
        const PciDevice *in_use = bus->devices[devfn];

        /* QEMU names the occupant with its id when it has one */
        error_setg(errp,
                   "PCI: slot %d function %d not available for %s, in use by %s%s%s",
                   PCI_DEVFN_SLOT(devfn), PCI_DEVFN_FUNC(devfn), dev->name, in_use->name,
                   in_use->qdev_id ? ",id=" : "", in_use->qdev_id ? in_use->qdev_id : "");
        return false;
    } else if (PCI_DEVFN_FUNC(devfn) != 0 &&
               !(bus->devices[devfn & ~7] &&
                 (bus->devices[devfn & ~7]->config[PCI_HEADER_TYPE] & 0x80))) {
        /* a function beside function 0 of a multi-function device only */
        error_setg(errp,
                   "PCI: %s: multifunction devices are not supported "
                   "(function %d)",
                   dev->name, PCI_DEVFN_FUNC(devfn));
        return false;
    }
    dev->bus = bus;
    dev->devfn = devfn;
    dev->bus_name = g_strdup_printf("%s@00:%02x.%x", dev->name, PCI_DEVFN_SLOT(devfn),
                                    PCI_DEVFN_FUNC(devfn));
    memcpy(dev->reset_config, dev->config, PCI_CONFIG_SIZE);
    bus->devices[devfn] = dev;
    return true;
}

void pci_device_reset(PciDevice *dev)
{
    pci_device_unmap_all(dev);
    memcpy(dev->config, dev->reset_config, PCI_CONFIG_SIZE);
    if (dev->msix) {
        msix_reset(dev);
    }
    if (dev->bus) {
        pthread_mutex_lock(&dev->bus->intx_lock);
        dev->intx_level = 0;
        pci_bus_update_intx_locked(dev->bus);
        pthread_mutex_unlock(&dev->bus->intx_lock);
    }
    if (dev->ops && dev->ops->reset) {
        dev->ops->reset(dev);
    }
}

void pci_device_free(PciDevice *dev)
{
    if (!dev) {
        return;
    }
    if (dev->bus) {
        pci_device_unmap_all(dev);
        pthread_mutex_lock(&dev->bus->intx_lock);
        dev->intx_level = 0;
        pci_bus_update_intx_locked(dev->bus);
        dev->bus->devices[dev->devfn] = NULL;
        pthread_mutex_unlock(&dev->bus->intx_lock);
    }
    if (dev->ops && dev->ops->destroy) {
        dev->ops->destroy(dev);
    }
    if (dev->msix) {
        msix_free(dev);
    }
    g_free(dev->rom_image);
    g_free(dev->name);
    g_free(dev->qdev_id);
    g_free(dev->bus_name);
    g_free(dev);
}

const GuestMemory *pci_bus_memory(PciBus *bus)
{
    return &bus->cfg.mem;
}

DeviceStateList *pci_bus_device_states(PciBus *bus)
{
    return bus->cfg.states;
}

void pci_bus_ram(PciBus *bus, uint64_t *below_4g, uint64_t *above_4g)
{
    *below_4g = bus->cfg.ram_below_4g;
    *above_4g = bus->cfg.ram_above_4g;
}

NetdevSet *pci_bus_netdevs(PciBus *bus)
{
    return bus->cfg.netdevs;
}

void pci_bus_kvm_ops(PciBus *bus, const PciKvmOps **ops, void **opaque)
{
    *ops = bus->cfg.ops;
    *opaque = bus->cfg.ops_opaque;
}

VfioContext *pci_bus_vfio(PciBus *bus)
{
    return bus->cfg.vfio;
}

void pci_bus_set_slow_section(PciBus *bus, void (*leave)(void *opaque),
                              void (*enter)(void *opaque), void *opaque)
{
    bus->slow_leave = leave;
    bus->slow_enter = enter;
    bus->slow_opaque = opaque;
}

void pci_bus_slow_begin(PciBus *bus)
{
    if (bus->slow_leave) {
        bus->slow_leave(bus->slow_opaque);
    }
}

void pci_bus_slow_end(PciBus *bus)
{
    if (bus->slow_enter) {
        bus->slow_enter(bus->slow_opaque);
    }
}

int pci_bus_apic_pcpu(PciBus *bus, unsigned apic_id)
{
    return bus->cfg.apic_pcpu ? bus->cfg.apic_pcpu(bus->cfg.apic_opaque, apic_id) : -1;
}

int pci_device_intx_irq(PciDevice *dev)
{
    int irq;

    if (!dev->bus || dev->devfn < 0) {
        return -1;
    }
    pthread_mutex_lock(&dev->bus->intx_lock);
    irq = pci_device_irq_locked(dev->bus, dev);
    pthread_mutex_unlock(&dev->bus->intx_lock);
    return irq;
}

PciDevice *pci_find_device_by_id(PciBus *b, const char *qdev_id)
{
    for (int devfn = 0; b && qdev_id && devfn < PCI_DEVFN_COUNT; devfn++) {
        PciDevice *dev = b->devices[devfn];
        if (dev && dev->qdev_id && strcmp(dev->qdev_id, qdev_id) == 0) {
            return dev;
        }
    }
    return NULL;
}

void pci_foreach_device(PciBus *b, void (*fn)(PciDevice *dev, void *opaque), void *opaque)
{
    for (int devfn = 0; b && devfn < PCI_DEVFN_COUNT; devfn++) {
        if (b->devices[devfn]) {
            fn(b->devices[devfn], opaque);
        }
    }
}

unsigned pci_intx_routes(PciBus *b, PciIntxRoute *routes, unsigned max)
{
    unsigned n = 0;

    if (!b) {
        return 0;
    }
    pthread_mutex_lock(&b->intx_lock);
    for (int devfn = 0; devfn < PCI_DEVFN_COUNT && n < max; devfn++) {
        PciDevice *dev = b->devices[devfn];
        uint8_t pin = dev ? dev->config[PCI_INTERRUPT_PIN] : 0;
        if (pin >= 1 && pin <= 4) {
            unsigned slot = PCI_DEVFN_SLOT(devfn);
            unsigned pirq = pci_slot_pirq(slot, pin);
            routes[n++] = (PciIntxRoute){ slot, pin, pirq,
                                          pci_pirq_to_irq(b->pirq[pirq]) };
        }
    }
    pthread_mutex_unlock(&b->intx_lock);
    return n;
}

#define PCI_STATE_MAGIC 0x50434931u /* "PCI1" */

void pci_device_save(PciDevice *dev, GByteArray *out)
{
    blob_put_u32(out, PCI_STATE_MAGIC);
    blob_put_bytes(out, dev->config, PCI_CONFIG_SIZE);
    blob_put_u8(out, __atomic_load_n(&dev->intx_level, __ATOMIC_RELAXED));
    if (dev->msix) {
        msix_save(dev, out);
    } else {
        blob_put_u32(out, 0);
    }
}

void pci_device_snapshot_clear(PciDeviceSnapshot *snap)
{
    g_free(snap->msix_table);
    g_free(snap->msix_pba);
    memset(snap, 0, sizeof(*snap));
}

bool pci_device_parse(PciDevice *dev, StateReader *r, PciDeviceSnapshot *snap,
                      GError **errp)
{
    memset(snap, 0, sizeof(*snap));
    if (blob_get_u32(r) != PCI_STATE_MAGIC ||
        !blob_get_bytes(r, snap->config, PCI_CONFIG_SIZE)) {
        error_setg(errp, "%s: bad PCI state", dev->name);
        return false;
    }
    snap->intx_level = blob_get_u8(r) ? 1 : 0;
    /* the read-only bits say which device this is: they must match */
    for (int i = 0; i < PCI_CONFIG_SIZE; i++) {
        uint8_t ro = ~dev->wmask[i] & ~dev->w1cmask[i];
        if ((snap->config[i] & ro) != (dev->reset_config[i] & ro)) {
            error_setg(errp,
                       "%s: PCI config byte 0x%02x differs (0x%02x, this "
                       "device has 0x%02x): not the same device",
                       dev->name, i, snap->config[i], dev->reset_config[i]);
            return false;
        }
    }
    if (!msix_parse(dev, r, snap) || r->error) {
        error_setg(errp, "%s: bad MSI-X state", dev->name);
        pci_device_snapshot_clear(snap);
        return false;
    }
    return true;
}

void pci_device_apply(PciDevice *dev, PciDeviceSnapshot *snap)
{
    pci_device_unmap_all(dev);
    memcpy(dev->config, snap->config, PCI_CONFIG_SIZE);
    if (dev->msix) {
        msix_apply(dev, snap);
    }
    pci_device_update_mappings(dev);
    pci_set_irq(dev, snap->intx_level);
    if (dev->bus) {
        pthread_mutex_lock(&dev->bus->intx_lock);
        pci_bus_update_intx_locked(dev->bus);
        pthread_mutex_unlock(&dev->bus->intx_lock);
    }
}
