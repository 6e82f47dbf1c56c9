/*
 * The pc machine's PCI host: configuration mechanism #1 (0xCF8/0xCFC-0xCFF),
 * the i440FX host bridge (PAM registers), the PIIX3 ISA bridge (PIRQ
 * routes, reset control at 0xCF9), the firmware-less resource assignment,
 * reset, clean-up and the host's migration state.
 * Locking: port handlers and set-up run with the machine lock held.
 */
#include <string.h>

#include "pci-int.h"
#include "accel/kvm/kvm.h"
#include "util/error.h"

#define PCI_CONFIG_ADDRESS_PORT 0xcf8
#define PCI_CONFIG_DATA_PORT    0xcfc
#define PCI_CONFIG_ENABLE       0x80000000u
/* CONFIG_ADDRESS bits that exist: enable, bus, device, function, register */
#define PCI_CONFIG_ADDRESS_MASK 0x80fffffcu
#define I440FX_REVISION         0x02
#define I440FX_SMRAM_RESET      0x02
#define I440FX_SMRAM_WRITABLE   0x78
#define PCI_HOST_STATE_VERSION  1
#define PCI_CLASS_HOST_BRIDGE   0x060000
#define PCI_CLASS_ISA_BRIDGE    0x060100

/* The four default PIRQ routes (PIRQA..D), what SeaBIOS programs too. */
static const uint8_t pci_default_pirq_irqs[4] = { 10, 10, 11, 11 };

int pci_pc_default_irq(unsigned slot, unsigned pin)
{
    if (slot >= 32 || pin < 1 || pin > 4) {
        return -1;
    }
    return pci_default_pirq_irqs[pci_slot_pirq(slot, pin)];
}

static void kvm_ops_set_irq(void *opaque, int gsi, int level)
{
    kvm_irq_line_set(opaque, gsi, level);
}

static int kvm_ops_msi_route_add(void *opaque, uint64_t addr, uint32_t data,
                                 GError **errp)
{
    return kvm_msi_route_add(opaque, addr, data, errp);
}

static bool kvm_ops_msi_route_update(void *opaque, int gsi, uint64_t addr, uint32_t data,
                                     GError **errp)
{
    return kvm_msi_route_update(opaque, gsi, addr, data, errp);
}

static void kvm_ops_msi_route_del(void *opaque, int gsi)
{
    kvm_msi_route_del(opaque, gsi);
}

static bool kvm_ops_irqfd(void *opaque, int fd, int gsi, bool assign, GError **errp)
{
    return kvm_irqfd(opaque, fd, gsi, assign, errp);
}

static bool kvm_ops_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len,
                              bool is_pio, bool assign, GError **errp)
{
    return kvm_ioeventfd(opaque, fd, addr, len, is_pio, assign, errp);
}

static bool kvm_ops_signal_msi(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    return kvm_signal_msi(opaque, addr, data, errp);
}

static int kvm_ops_memslot_add(void *opaque, uint64_t gpa, uint64_t size, void *host,
                               GError **errp)
{
    return kvm_vm_slot_add(opaque, gpa, size, host, errp);
}

static void kvm_ops_memslot_del(void *opaque, int slot)
{
    kvm_vm_slot_del(opaque, slot);
}

static bool kvm_ops_irqfd_resample(void *opaque, int fd, int resample_fd, int gsi,
                                   bool assign, GError **errp)
{
    return kvm_irqfd_resample(opaque, fd, resample_fd, gsi, assign, errp);
}

const PciKvmOps pci_kvm_ops = {
    .set_irq = kvm_ops_set_irq,
    .msi_route_add = kvm_ops_msi_route_add,
    .msi_route_update = kvm_ops_msi_route_update,
    .msi_route_del = kvm_ops_msi_route_del,
    .irqfd = kvm_ops_irqfd,
    .ioeventfd = kvm_ops_ioeventfd,
    .signal_msi = kvm_ops_signal_msi,
    .memslot_add = kvm_ops_memslot_add,
    .memslot_del = kvm_ops_memslot_del,
    .irqfd_resample = kvm_ops_irqfd_resample,
};

/* CONFIG_ADDRESS is a dword register; 0xCF9 is the PIIX3's RCR. */
static void pci_config_address_io(void *opaque, uint64_t offset, uint8_t *data,
                                  unsigned len, bool is_write)
{
    PciBus *bus = opaque;

    if (offset == 0 && len == 4) {
        if (is_write) {
            bus->config_address = pci_get_long(data) & PCI_CONFIG_ADDRESS_MASK;
        } else {
            pci_set_long(data, bus->config_address);
        }
    } else if (offset == 1 && len == 1) {
        if (!is_write) {
            data[0] = bus->reset_control;
        } else if ((data[0] & PIIX3_RCR_RST_CPU) &&
                   !(bus->reset_control & PIIX3_RCR_RST_CPU)) {
            bus->reset_control = data[0] & PIIX3_RCR_SYS_RST;
            if (bus->cfg.request_reset) {
                bus->cfg.request_reset(bus->cfg.reset_opaque);
            }
        } else {
            bus->reset_control = data[0] & (PIIX3_RCR_SYS_RST | PIIX3_RCR_RST_CPU);
        }
    } else if (!is_write) {
        memset(data, 0xff, len);
    }
}

/* One access of len 1, 2 or 4 at register reg of the addressed device. */
static void pci_config_data_access(PciBus *bus, unsigned reg, uint8_t *data, unsigned len,
                                   bool is_write)
{
    uint32_t addr = bus->config_address;
    unsigned bus_nr = (addr >> 16) & 0xff, devfn = (addr >> 8) & 0xff;
    PciDevice *dev = bus_nr == 0 ? bus->devices[devfn] : NULL;
    uint32_t val = 0;

    if (!(addr & PCI_CONFIG_ENABLE) || !dev) {
        if (!is_write) {
            memset(data, 0xff, len);
        }
        return;
    }
    if (is_write) {
        for (unsigned i = 0; i < len; i++) {
            val |= (uint32_t)data[i] << (8 * i);
        }
        pci_config_write(dev, reg, len, val);
        return;
    }
    val = pci_config_read(dev, reg, len);
    for (unsigned i = 0; i < len; i++) {
        data[i] = val >> (8 * i);
    }
}

static void pci_config_data_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                               bool is_write)
{
    PciBus *bus = opaque;
    unsigned reg = (bus->config_address & 0xfc) + offset;
    unsigned n = len < 4 - offset ? len : 4 - offset;

    if (n == 1 || n == 2 || n == 4) {
        pci_config_data_access(bus, reg, data, n, is_write);
    } else {
        for (unsigned i = 0; i < n; i++) { /* a 3-byte tail: bytewise */
            pci_config_data_access(bus, reg + i, data + i, 1, is_write);
        }
    }
    if (!is_write && len > n) {
        memset(data + n, 0xff, len - n);
    }
}

static void i440fx_config_write(PciDevice *dev, unsigned offset, unsigned len,
                                uint32_t val)
{
    PciBus *bus = dev->bus;

    if (offset < I440FX_PAM0 + I440FX_PAM_COUNT && offset + len > I440FX_PAM0 &&
        bus->pam_fn) {
        bus->pam_fn(bus->pam_opaque, dev->config + I440FX_PAM0);
    }
}

static const PciDeviceOps i440fx_ops = {
    .config_write = i440fx_config_write,
};

/* Copy the PIRQ routes for the INTx path and re-drive the lines. */
static void piix3_sync_pirq(PciBus *bus)
{
    pthread_mutex_lock(&bus->intx_lock);
    memcpy(bus->pirq, bus->isa->config + PIIX3_PIRQ_ROUTE, 4);
    pci_bus_update_intx_locked(bus);
    pthread_mutex_unlock(&bus->intx_lock);
}

static void piix3_config_write(PciDevice *dev, unsigned offset, unsigned len,
                               uint32_t val)
{
    if (offset < PIIX3_PIRQ_ROUTE + 4 && offset + len > PIIX3_PIRQ_ROUTE) {
        piix3_sync_pirq(dev->bus);
    }
}

static void piix3_reset(PciDevice *dev)
{
    dev->bus->reset_control = 0;
    piix3_sync_pirq(dev->bus);
}

static const PciDeviceOps piix3_ops = {
    .config_write = piix3_config_write,
    .reset = piix3_reset,
};

static PciDevice *i440fx_new(void)
{
    PciDevice *dev = pci_device_new("i440FX", PCI_VENDOR_INTEL, PCI_DEVICE_I440FX,
                                    PCI_CLASS_HOST_BRIDGE, I440FX_REVISION);

    dev->wmask[I440FX_PAM0] = 0x30; /* HIENABLE for 0xF0000 only */
    memset(dev->wmask + I440FX_PAM0 + 1, 0x33, I440FX_PAM_COUNT - 1);
    dev->config[I440FX_SMRAM] = I440FX_SMRAM_RESET;
    dev->wmask[I440FX_SMRAM] = I440FX_SMRAM_WRITABLE;
    dev->ops = &i440fx_ops;
    return dev;
}

static PciDevice *piix3_new(void)
{
    PciDevice *dev = pci_device_new("PIIX3", PCI_VENDOR_INTEL, PCI_DEVICE_PIIX3_ISA,
                                    PCI_CLASS_ISA_BRIDGE, 0);

    /* multi-function, as on QEMU's pc: the PM function is 00:01.3 */
    dev->config[PCI_HEADER_TYPE] = 0x80;
    memset(dev->config + PIIX3_PIRQ_ROUTE, PIIX3_PIRQ_DISABLE, 4);
    memset(dev->wmask + PIIX3_PIRQ_ROUTE, PIIX3_PIRQ_DISABLE | PIIX3_PIRQ_IRQ_MASK, 4);
    dev->ops = &piix3_ops;
    return dev;
}

static bool pci_host_state_save(void *opaque, GByteArray *out, GError **errp)
{
    PciBus *bus = opaque;

    blob_put_u32(out, bus->config_address);
    blob_put_u8(out, bus->reset_control);
    pci_device_save(bus->host, out);
    pci_device_save(bus->isa, out);
    return true;
}

static bool pci_host_state_load(void *opaque, const uint8_t *buf, size_t len,
                                uint32_t version, GError **errp)
{
    PciBus *bus = opaque;
    PciDeviceSnapshot host, isa;
    StateReader r;
    uint32_t address;
    uint8_t rcr;

    if (version != PCI_HOST_STATE_VERSION) {
        error_setg(errp, "pci-host: unsupported state version %u", version);
        return false;
    }
    state_reader_init(&r, buf, len);
    address = blob_get_u32(&r);
    rcr = blob_get_u8(&r);
    if (!pci_device_parse(bus->host, &r, &host, errp)) {
        return false;
    }
    if (!pci_device_parse(bus->isa, &r, &isa, errp)) {
        pci_device_snapshot_clear(&host);
        return false;
    }
    if (!blob_done(&r)) {
        error_setg(errp, "pci-host: state has %zu stray bytes", len - r.pos);
        pci_device_snapshot_clear(&host);
        pci_device_snapshot_clear(&isa);
        return false;
    }
    bus->config_address = address & PCI_CONFIG_ADDRESS_MASK;
    bus->reset_control = rcr & PIIX3_RCR_SYS_RST;
    pci_device_apply(bus->host, &host);
    pci_device_apply(bus->isa, &isa);
    pci_device_snapshot_clear(&host);
    pci_device_snapshot_clear(&isa);
    piix3_sync_pirq(bus);
    if (bus->pam_fn) {
        bus->pam_fn(bus->pam_opaque, bus->host->config + I440FX_PAM0);
    }
    return true;
}

static const DeviceStateOps pci_host_state_ops = {
    .save = pci_host_state_save,
    .load = pci_host_state_load,
};

PciBus *pci_pc_new(const PciBusConfig *cfg, GError **errp)
{
    PciBus *bus = g_new0(PciBus, 1);

    bus->cfg = *cfg;
    pthread_mutex_init(&bus->intx_lock, NULL);
    memset(bus->pirq, PIIX3_PIRQ_DISABLE, sizeof(bus->pirq));
    bus->host = i440fx_new();
    bus->isa = piix3_new();
    if (!pci_device_realize(bus, bus->host, PCI_MAKE_DEVFN(0, 0), errp) ||
        !pci_device_realize(bus, bus->isa, PCI_MAKE_DEVFN(1, 0), errp) ||
        !bus_register(cfg->io_bus, PCI_CONFIG_ADDRESS_PORT, 4, pci_config_address_io, bus,
                      "pci-conf-addr", errp) ||
        !bus_register(cfg->io_bus, PCI_CONFIG_DATA_PORT, 4, pci_config_data_io, bus,
                      "pci-conf-data", errp) ||
        !device_state_register(cfg->states, "pci-host", PCI_HOST_STATE_VERSION,
                               &pci_host_state_ops, bus, errp)) {
        pci_pc_free(bus);
        return NULL;
    }
    return bus;
}

void pci_set_pam_notifier(PciBus *bus, PciPamFn fn, void *opaque)
{
    bus->pam_fn = fn;
    bus->pam_opaque = opaque;
}

typedef struct BarSlot {
    PciDevice *dev;
    int bar;
    uint64_t size;
} BarSlot;

static gint bar_slot_larger_first(gconstpointer a, gconstpointer b)
{
    const BarSlot *x = a, *y = b;

    if (x->size != y->size) {
        return x->size > y->size ? -1 : 1;
    }
    return x->dev->devfn != y->dev->devfn ? x->dev->devfn - y->dev->devfn
                                          : x->bar - y->bar;
}

/*
 * Write addr into a BAR register (both halves of a 64-bit one).  A ROM BAR
 * is left disabled, as SeaBIOS leaves it: the guest sets the enable bit
 * when it reads the ROM.
 */
static void pci_bar_program(PciDevice *dev, int bar, uint64_t addr)
{
    uint8_t *reg = dev->config + PCI_BASE_ADDRESS_0 + 4 * bar;
    uint32_t low_bits;

    if (bar == PCI_ROM_BAR) {
        pci_set_long(dev->config + PCI_ROM_ADDRESS, (uint32_t)addr);
        return;
    }
    low_bits = pci_get_long(reg) &
               ~pci_get_long(dev->wmask + 4 * bar + PCI_BASE_ADDRESS_0);
    pci_set_long(reg, (uint32_t)addr | low_bits);
    if (dev->bars[bar].kind == PCI_BAR_MEM64) {
        pci_set_long(reg + 4, addr >> 32);
    }
}

/*
 * Largest first, each at the next multiple of its size: with power-of-two
 * sizes this packs without holes.  One that does not fit stays off.
 */
static void pci_assign_bars(GArray *slots, uint64_t start, uint64_t end)
{
    uint64_t next = start;

    g_array_sort(slots, bar_slot_larger_first);
    for (guint i = 0; i < slots->len; i++) {
        BarSlot *s = &g_array_index(slots, BarSlot, i);
        uint64_t addr = (next + s->size - 1) & ~(s->size - 1);
        if (addr + s->size > end) {
            continue;
        }
        pci_bar_program(s->dev, s->bar, addr);
        next = addr + s->size;
    }
}

static void pci_enable_device(PciBus *bus, PciDevice *dev)
{
    uint16_t cmd = pci_get_word(dev->config + PCI_COMMAND);
    uint8_t pin = dev->config[PCI_INTERRUPT_PIN];

    for (int i = 0; i < PCI_BAR_COUNT; i++) {
        if (dev->bars[i].kind == PCI_BAR_IO) {
            cmd |= PCI_COMMAND_IO;
        } else if (dev->bars[i].kind != PCI_BAR_NONE) {
            cmd |= PCI_COMMAND_MEMORY;
        }
    }
    pci_set_word(dev->config + PCI_COMMAND, cmd | PCI_COMMAND_MASTER);
    if (pin >= 1 && pin <= 4) {
        int irq = pci_pirq_to_irq(
            bus->pirq[pci_slot_pirq(PCI_DEVFN_SLOT(dev->devfn), pin)]);
        dev->config[PCI_INTERRUPT_LINE] = irq < 0 ? 0xff : irq;
    }
}

void pci_pc_assign_resources(PciBus *bus)
{
    GArray *mem = g_array_new(FALSE, FALSE, sizeof(BarSlot));
    GArray *io = g_array_new(FALSE, FALSE, sizeof(BarSlot));

    memcpy(bus->isa->config + PIIX3_PIRQ_ROUTE, pci_default_pirq_irqs, 4);
    piix3_sync_pirq(bus);
    for (int devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++) {
        PciDevice *dev = bus->devices[devfn];
        for (int i = 0; dev && i < PCI_BAR_COUNT; i++) {
            BarSlot s = { dev, i, dev->bars[i].size };
            if (dev->bars[i].kind == PCI_BAR_IO) {
                g_array_append_val(io, s);
            } else if (dev->bars[i].kind != PCI_BAR_NONE) {
                g_array_append_val(mem, s);
            }
        }
        if (dev && dev->rom.kind != PCI_BAR_NONE) {
            BarSlot s = { dev, PCI_ROM_BAR, dev->rom.size };
            g_array_append_val(mem, s);
        }
    }
    pci_assign_bars(mem, PCI_DEFAULT_MMIO_START, PCI_DEFAULT_MMIO_END);
    pci_assign_bars(io, PCI_DEFAULT_IO_START, PCI_DEFAULT_IO_END);
    g_array_free(mem, TRUE);
    g_array_free(io, TRUE);
    for (int devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++) {
        if (bus->devices[devfn] && bus->devices[devfn] != bus->host &&
            bus->devices[devfn] != bus->isa) {
            pci_enable_device(bus, bus->devices[devfn]);
        }
    }
    pci_bus_update_all_mappings(bus);
}

void pci_pc_reset(PciBus *bus)
{
    if (!bus) {
        return;
    }
    bus->config_address = 0;
    for (int devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++) {
        if (bus->devices[devfn]) {
            pci_device_reset(bus->devices[devfn]);
        }
    }
    if (bus->pam_fn) {
        bus->pam_fn(bus->pam_opaque, bus->host->config + I440FX_PAM0);
    }
}

void pci_pc_free(PciBus *bus)
{
    if (!bus) {
        return;
    }
    device_state_unregister(bus->cfg.states, bus);
    bus_unregister(bus->cfg.io_bus, PCI_CONFIG_ADDRESS_PORT);
    bus_unregister(bus->cfg.io_bus, PCI_CONFIG_DATA_PORT);
    /* bridges that never made it onto the bus (a failed init) */
    PciDevice *orphans[2] = { bus->host && !bus->host->bus ? bus->host : NULL,
                              bus->isa && !bus->isa->bus ? bus->isa : NULL };

    /* devices first (they stop their threads), the bridges last */
    for (int devfn = PCI_DEVFN_COUNT - 1; devfn >= 0; devfn--) {
        pci_device_free(bus->devices[devfn]);
    }
    pci_device_free(orphans[0]);
    pci_device_free(orphans[1]);
    pthread_mutex_destroy(&bus->intx_lock);
    g_free(bus);
}

void pci_pc_pause(PciBus *bus)
{
    for (int devfn = 0; bus && devfn < PCI_DEVFN_COUNT; devfn++) {
        PciDevice *dev = bus->devices[devfn];
        if (dev && dev->ops && dev->ops->pause) {
            dev->ops->pause(dev);
        }
    }
}

void pci_pc_resume(PciBus *bus)
{
    for (int devfn = 0; bus && devfn < PCI_DEVFN_COUNT; devfn++) {
        PciDevice *dev = bus->devices[devfn];
        if (dev && dev->ops && dev->ops->resume) {
            dev->ops->resume(dev);
        }
    }
}

/* Tell the devices that log DMA of their own; the log is on meanwhile. */
static void pci_bus_dirty_log_changed(PciBus *bus, bool on)
{
    for (int devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++) {
        PciDevice *dev = bus->devices[devfn];
        if (dev && dev->ops && dev->ops->dirty_log) {
            dev->ops->dirty_log(dev, on);
        }
    }
}

void pci_set_dma_dirty_log(PciBus *bus, PciDirtyFn fn, void *opaque)
{
    if (!fn) {
        pci_bus_dirty_log_changed(bus, false); /* their last marks still count */
    }
    __atomic_store_n(&bus->dirty_opaque, opaque, __ATOMIC_RELAXED);
    __atomic_store_n(&bus->dirty_fn, fn, __ATOMIC_RELEASE);
    if (fn) {
        pci_bus_dirty_log_changed(bus, true);
    }
}

void pci_dma_mark_dirty(PciDevice *dev, uint64_t gpa, uint64_t len)
{
    PciBus *bus = dev->bus;
    PciDirtyFn fn = bus ? __atomic_load_n(&bus->dirty_fn, __ATOMIC_ACQUIRE) : NULL;

    if (fn && len) {
        fn(__atomic_load_n(&bus->dirty_opaque, __ATOMIC_RELAXED), gpa, len);
    }
}

bool pci_device_ioeventfd(PciDevice *dev, int fd, uint64_t addr, unsigned len,
                          bool assign)
{
    PciBus *bus = dev->bus;

    return bus->cfg.ops->ioeventfd(bus->cfg.ops_opaque, fd, addr, len, false, assign,
                                   NULL);
}
