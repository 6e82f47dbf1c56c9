/*
 * vfio-pci over a fake host device (its own VfioDeviceOps over an
 * in-memory config space, BARs and IRQ state, refusing what Linux 6.1's
 * vfio-pci refuses) and a fake KVM: config-space merging and hidden
 * capabilities, BAR sizing, memory slots following the guest's BARs,
 * MSI-X table traps, masking, vector count changes, MSI, INTx, reset,
 * teardown, every backend operation failing, garbage in the MSI-X table,
 * and the migration blocker.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "hw/pci/pci-int.h"
#include "hw/vfio-pci.h"
#include "busio.h"
#include "unit.h"

UNIT_MAIN()

/* ---- the fake device: an 82574L-like function ---- */

enum {
    OP_REGION_INFO,
    OP_IRQ_INFO,
    OP_READ,
    OP_WRITE,
    OP_MMAP,
    OP_SET_IRQS,
    OP_UNMASK_FD,
    OP_RESET,
    OP__COUNT,
};

#define BAR0_SIZE    0x20000
#define BAR2_SIZE    0x20
#define BAR3_SIZE    0x4000
#define BAR4_SIZE    0x10000
#define ROM_SIZE     0x10000
#define MSIX_VECTORS 5
#define CAP_PM       0xc8
#define CAP_PCIX     0x60 /* hidden */
#define CAP_MSI      0xd0
#define CAP_EXP      0xe0
#define CAP_MSIX     0xa0

typedef struct FakeIrqIndex {
    unsigned count; /* 0: off */
    int fds[64];
    int enables, disables;
} FakeIrqIndex;

typedef struct FakeVfio {
    VfioDevice dev;
    uint8_t config[256];
    uint8_t *bars[PCI_BAR_COUNT];
    uint64_t bar_size[PCI_BAR_COUNT];
    FakeIrqIndex irq[VFIO_PCI_NUM_IRQS];
    int unmask_fd;
    bool fail[OP__COUNT];
    int fail_region; /* region_info fails only for this index (-1: any) */
    int fail_irq;    /* SET_IRQS fails only for this index (-1: any) */
    int live_mmaps, resets, config_writes;
    uint8_t rom[ROM_SIZE]; /* the option ROM: 0x55 0xaa, then byte i = i * 7 */
    int rom_reads, rom_writes;
    int bar_preads, bar_pwrites; /* BAR accesses through the backend */
    /* BAR3 as Linux gives it without MSIX_MAPPABLE: sparse areas around
     * the MSI-X table and PBA pages (else one area, MSIX_MAPPABLE) */
    bool msix_sparse;
    bool closed;
} FakeVfio;

static FakeVfio *fake_of(VfioDevice *dev)
{
    return dev->backend;
}

static bool fake_failing(FakeVfio *f, int op, GError **errp)
{
    if (f->fail[op]) {
        g_set_error(errp, g_quark_from_static_string("fake"), 1, "vfio %s: op %d refused",
                    f->dev.name, op);
        return true;
    }
    return false;
}

static bool fake_region_info(VfioDevice *dev, unsigned index, VfioRegion *out,
                             GError **errp)
{
    FakeVfio *f = fake_of(dev);

    memset(out, 0, sizeof(*out));
    out->index = index;
    if ((f->fail_region < 0 || f->fail_region == (int)index) &&
        fake_failing(f, OP_REGION_INFO, errp)) {
        return false;
    }
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
        out->size = 256;
        out->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    } else if (index == VFIO_PCI_ROM_REGION_INDEX) {
        out->size = ROM_SIZE;
        out->flags = VFIO_REGION_INFO_FLAG_READ;
    } else if (index < PCI_BAR_COUNT && f->bar_size[index]) {
        out->size = f->bar_size[index];
        out->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        if (index == 3 && f->msix_sparse) {
            out->flags |= VFIO_REGION_INFO_FLAG_MMAP;
            out->nr_areas = 2;
            out->areas = g_new(VfioArea, 2);
            out->areas[0] = (VfioArea){ 0x1000, 0x1000 };
            out->areas[1] = (VfioArea){ 0x3000, 0x1000 };
        } else if (index != 2) { /* not the I/O BAR */
            out->flags |= VFIO_REGION_INFO_FLAG_MMAP;
            out->nr_areas = 1;
            out->areas = g_new(VfioArea, 1);
            out->areas[0] = (VfioArea){ 0, out->size };
            out->msix_mappable = index == 3;
        }
    }
    return true;
}

static bool fake_irq_info(VfioDevice *dev, unsigned index, VfioIrq *out, GError **errp)
{
    static const uint32_t counts[] = { 1, 4, MSIX_VECTORS, 1, 1 };
    FakeVfio *f = fake_of(dev);

    if (fake_failing(f, OP_IRQ_INFO, errp)) {
        return false;
    }
    *out = (VfioIrq){ index, VFIO_IRQ_INFO_EVENTFD, counts[index] };
    if (index != VFIO_PCI_INTX_IRQ_INDEX) {
        out->flags |= VFIO_IRQ_INFO_NORESIZE;
    }
    return true;
}

static uint8_t *fake_region(FakeVfio *f, unsigned index, uint64_t off, size_t len)
{
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
        return off + len <= 256 ? f->config + off : NULL;
    }
    if (index < PCI_BAR_COUNT && f->bars[index] && off + len <= f->bar_size[index]) {
        return f->bars[index] + off;
    }
    if (index == VFIO_PCI_ROM_REGION_INDEX && off + len <= ROM_SIZE) {
        return f->rom + off;
    }
    return NULL;
}

static bool fake_read(VfioDevice *dev, unsigned index, uint64_t off, void *buf,
                      size_t len, GError **errp)
{
    FakeVfio *f = fake_of(dev);
    uint8_t *p = fake_region(f, index, off, len);

    if (fake_failing(f, OP_READ, errp)) {
        return false;
    }
    if (!p) {
        g_set_error(errp, g_quark_from_static_string("fake"), 2, "read out of range");
        return false;
    }
    f->rom_reads += index == VFIO_PCI_ROM_REGION_INDEX;
    f->bar_preads += index < PCI_BAR_COUNT;
    memcpy(buf, p, len);
    return true;
}

static bool fake_write(VfioDevice *dev, unsigned index, uint64_t off, const void *buf,
                       size_t len, GError **errp)
{
    FakeVfio *f = fake_of(dev);
    uint8_t *p = fake_region(f, index, off, len);

    if (fake_failing(f, OP_WRITE, errp)) {
        return false;
    }
    if (!p) {
        g_set_error(errp, g_quark_from_static_string("fake"), 2, "write out of range");
        return false;
    }
    f->config_writes += index == VFIO_PCI_CONFIG_REGION_INDEX;
    f->rom_writes += index == VFIO_PCI_ROM_REGION_INDEX;
    f->bar_pwrites += index < PCI_BAR_COUNT;
    memcpy(p, buf, len);
    return true;
}

static void *fake_mmap(VfioDevice *dev, unsigned index, uint64_t off, uint64_t size,
                       GError **errp)
{
    FakeVfio *f = fake_of(dev);
    uint8_t *p = fake_region(f, index, off, size);

    if (fake_failing(f, OP_MMAP, errp)) {
        return NULL;
    }
    CHECK(p != NULL);
    f->live_mmaps++;
    return p;
}

static void fake_munmap(VfioDevice *dev, void *addr, uint64_t size)
{
    fake_of(dev)->live_mmaps--;
}

/* As Linux 6.1: one index on at a time, no resizing an enabled one. */
static bool fake_set_irqs(VfioDevice *dev, unsigned index, unsigned start, unsigned count,
                          const int *fds, GError **errp)
{
    FakeVfio *f = fake_of(dev);
    FakeIrqIndex *irq = &f->irq[index];

    if ((f->fail_irq < 0 || f->fail_irq == (int)index) &&
        fake_failing(f, OP_SET_IRQS, errp)) {
        return false;
    }
    if (!count) {
        irq->count = 0;
        irq->disables++;
        return true;
    }
    for (unsigned i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
        if (i != index && f->irq[i].count) {
            g_set_error(errp, g_quark_from_static_string("fake"), 3,
                        "index %u on while %u is", index, i);
            return false;
        }
    }
    if (irq->count || start || count > 64) {
        g_set_error(errp, g_quark_from_static_string("fake"), 3, "no resizing");
        return false;
    }
    irq->count = count;
    memcpy(irq->fds, fds, count * sizeof(int));
    irq->enables++;
    return true;
}

static bool fake_unmask_fd(VfioDevice *dev, unsigned index, int fd, GError **errp)
{
    FakeVfio *f = fake_of(dev);

    if (fake_failing(f, OP_UNMASK_FD, errp)) {
        return false;
    }
    f->unmask_fd = fd;
    return true;
}

static bool fake_mask(VfioDevice *dev, unsigned index, unsigned vector, bool mask,
                      GError **errp)
{
    return true;
}

static bool fake_reset(VfioDevice *dev, GError **errp)
{
    FakeVfio *f = fake_of(dev);

    if (fake_failing(f, OP_RESET, errp)) {
        return false;
    }
    f->resets++;
    return true;
}

static void fake_close(VfioDevice *dev)
{
    fake_of(dev)->closed = true;
}

static const VfioDeviceOps fake_vfio_ops = {
    fake_region_info, fake_irq_info,  fake_read, fake_write, fake_mmap,  fake_munmap,
    fake_set_irqs,    fake_unmask_fd, fake_mask, fake_reset, fake_close,
};

static void put_cap(uint8_t *cfg, uint8_t at, uint8_t id, uint8_t next)
{
    cfg[at] = id;
    cfg[at + 1] = next;
}

static void fake_init(FakeVfio *f)
{
    uint8_t *c = f->config;

    memset(f, 0, sizeof(*f));
    f->fail_region = f->fail_irq = -1;
    f->unmask_fd = -1;
    f->dev = (VfioDevice){ &fake_vfio_ops,
                           (char *)"0000:01:00.0",
                           VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
                           VFIO_PCI_NUM_REGIONS,
                           VFIO_PCI_NUM_IRQS,
                           f };
    f->bar_size[0] = BAR0_SIZE;
    f->bar_size[2] = BAR2_SIZE;
    f->bar_size[3] = BAR3_SIZE;
    f->bar_size[4] = BAR4_SIZE;
    for (int i = 0; i < PCI_BAR_COUNT; i++) {
        f->bars[i] = f->bar_size[i] ? g_malloc0(f->bar_size[i]) : NULL;
    }
    for (unsigned i = 0; i < ROM_SIZE; i++) {
        f->rom[i] = i * 7;
    }
    f->rom[0] = 0x55;
    f->rom[1] = 0xaa;
    pci_set_word(c + PCI_VENDOR_ID, 0x8086);
    pci_set_word(c + PCI_DEVICE_ID, 0x10d3);
    pci_set_word(c + PCI_STATUS, PCI_STATUS_CAP_LIST);
    pci_set_long(c + PCI_CLASS_REVISION, 0x02000000);
    c[PCI_HEADER_TYPE] = 0x80; /* multi-function on the host */
    pci_set_long(c + PCI_BASE_ADDRESS_0, 0xf7a00000);
    pci_set_long(c + PCI_BASE_ADDRESS_2, 0xe001);
    pci_set_long(c + PCI_BASE_ADDRESS_3, 0xf7a20000);
    pci_set_long(c + PCI_BASE_ADDRESS_4, 0x0000000c); /* 64-bit, prefetchable */
    pci_set_word(c + PCI_SUBSYSTEM_VENDOR_ID, 0x8086);
    pci_set_word(c + PCI_SUBSYSTEM_ID, 0xa01f);
    c[PCI_INTERRUPT_PIN] = 1;
    c[PCI_INTERRUPT_LINE] = 16; /* the host's */
    c[PCI_CAPABILITY_LIST] = CAP_PM;
    put_cap(c, CAP_PM, PCI_CAP_ID_PM, CAP_PCIX);
    put_cap(c, CAP_PCIX, PCI_CAP_ID_PCIX, CAP_MSI);
    put_cap(c, CAP_MSI, PCI_CAP_ID_MSI, CAP_EXP);
    pci_set_word(c + CAP_MSI + PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT | (2 << 1)); /* 4 */
    put_cap(c, CAP_EXP, PCI_CAP_ID_EXP, CAP_MSIX);
    put_cap(c, CAP_MSIX, PCI_CAP_ID_MSIX, 0);
    pci_set_word(c + CAP_MSIX + PCI_MSIX_FLAGS, MSIX_VECTORS - 1);
    pci_set_long(c + CAP_MSIX + PCI_MSIX_TABLE, 0x0000 | 3);
    pci_set_long(c + CAP_MSIX + PCI_MSIX_PBA, 0x2000 | 3);
}

static void fake_destroy(FakeVfio *f)
{
    for (int i = 0; i < PCI_BAR_COUNT; i++) {
        g_free(f->bars[i]);
    }
}

/* ---- the fake KVM ---- */

typedef struct FakeKvm {
    struct {
        bool used;
        uint64_t addr;
        uint32_t data;
        int irqfd;
    } routes[64];
    struct {
        bool used;
        uint64_t gpa, size;
        void *host;
    } slots[16];
    int intx_fd, intx_resample, intx_gsi;
    bool fail_route, fail_slot, fail_irqfd;
} FakeKvm;

#define FAKE_GSI_BASE 24

static void fk_set_irq(void *opaque, int gsi, int level)
{
}

static int fk_route_add(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    FakeKvm *k = opaque;

    for (int i = 0; i < 64 && !k->fail_route; i++) {
        if (!k->routes[i].used) {
            k->routes[i].used = true;
            k->routes[i].addr = addr;
            k->routes[i].data = data;
            k->routes[i].irqfd = -1;
            return FAKE_GSI_BASE + i;
        }
    }
    g_set_error(errp, g_quark_from_static_string("fake"), 4, "no route");
    return -1;
}

static bool fk_route_update(void *opaque, int gsi, uint64_t addr, uint32_t data,
                            GError **errp)
{
    FakeKvm *k = opaque;

    CHECK(k->routes[gsi - FAKE_GSI_BASE].used);
    k->routes[gsi - FAKE_GSI_BASE].addr = addr;
    k->routes[gsi - FAKE_GSI_BASE].data = data;
    return true;
}

static void fk_route_del(void *opaque, int gsi)
{
    FakeKvm *k = opaque;

    CHECK(k->routes[gsi - FAKE_GSI_BASE].used);
    CHECK_EQ(k->routes[gsi - FAKE_GSI_BASE].irqfd, -1); /* irqfd went first */
    k->routes[gsi - FAKE_GSI_BASE].used = false;
}

static bool fk_irqfd(void *opaque, int fd, int gsi, bool assign, GError **errp)
{
    FakeKvm *k = opaque;

    if (assign && k->fail_irqfd) {
        g_set_error(errp, g_quark_from_static_string("fake"), 4, "irqfd refused");
        return false;
    }
    CHECK(k->routes[gsi - FAKE_GSI_BASE].used);
    CHECK_EQ(k->routes[gsi - FAKE_GSI_BASE].irqfd, assign ? -1 : fd);
    k->routes[gsi - FAKE_GSI_BASE].irqfd = assign ? fd : -1;
    return true;
}

static bool fk_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len, bool is_pio,
                         bool assign, GError **errp)
{
    return true;
}

static bool fk_signal_msi(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    return true;
}

static int fk_memslot_add(void *opaque, uint64_t gpa, uint64_t size, void *host,
                          GError **errp)
{
    FakeKvm *k = opaque;

    CHECK(!(gpa & 4095) && !(size & 4095) && size);
    for (int i = 0; i < 16 && !k->fail_slot; i++) {
        if (!k->slots[i].used) {
            k->slots[i].used = true;
            k->slots[i].gpa = gpa;
            k->slots[i].size = size;
            k->slots[i].host = host;
            return i;
        }
    }
    g_set_error(errp, g_quark_from_static_string("fake"), 4, "no slot");
    return -1;
}

static void fk_memslot_del(void *opaque, int slot)
{
    FakeKvm *k = opaque;

    CHECK(k->slots[slot].used);
    k->slots[slot].used = false;
}

static bool fk_irqfd_resample(void *opaque, int fd, int resample_fd, int gsi, bool assign,
                              GError **errp)
{
    FakeKvm *k = opaque;

    if (assign) {
        CHECK_EQ(k->intx_gsi, -1);
        k->intx_fd = fd;
        k->intx_resample = resample_fd;
        k->intx_gsi = gsi;
    } else {
        CHECK_EQ(k->intx_gsi, gsi);
        k->intx_gsi = -1;
    }
    return true;
}

static const PciKvmOps fake_kvm_ops = {
    .set_irq = fk_set_irq,
    .msi_route_add = fk_route_add,
    .msi_route_update = fk_route_update,
    .msi_route_del = fk_route_del,
    .irqfd = fk_irqfd,
    .ioeventfd = fk_ioeventfd,
    .signal_msi = fk_signal_msi,
    .memslot_add = fk_memslot_add,
    .memslot_del = fk_memslot_del,
    .irqfd_resample = fk_irqfd_resample,
};

static int kvm_nr_slots(FakeKvm *k)
{
    int n = 0;

    for (int i = 0; i < 16; i++) {
        n += k->slots[i].used;
    }
    return n;
}

static bool kvm_has_slot(FakeKvm *k, uint64_t gpa, uint64_t size)
{
    for (int i = 0; i < 16; i++) {
        if (k->slots[i].used && k->slots[i].gpa == gpa && k->slots[i].size == size) {
            return true;
        }
    }
    return false;
}

static int kvm_nr_routes(FakeKvm *k)
{
    int n = 0;

    for (int i = 0; i < 64; i++) {
        n += k->routes[i].used;
    }
    return n;
}

/* The route whose irqfd is fd, or NULL. */
static int kvm_route_of_fd(FakeKvm *k, int fd)
{
    for (int i = 0; i < 64; i++) {
        if (k->routes[i].used && k->routes[i].irqfd == fd) {
            return i;
        }
    }
    return -1;
}

/* ---- a machine with a vfio-pci device in slot 4 ---- */

#define SLOT  4
#define DEVFN PCI_MAKE_DEVFN(SLOT, 0)

typedef struct Rig {
    Machine m;
    FakeKvm kvm;
    FakeVfio fake;
    PciDevice *dev;
} Rig;

static void rig_machine(Rig *r)
{
    GError *err = NULL;

    memset(&r->m, 0, sizeof(r->m));
    memset(&r->kvm, 0, sizeof(r->kvm));
    r->kvm.intx_gsi = -1;
    pthread_mutex_init(&r->m.lock, NULL);
    bus_init(&r->m.io_bus, "io");
    bus_init(&r->m.mmio_bus, "mmio");
    device_state_list_init(&r->m.device_states);
    CHECK(machine_plan_memory(&r->m, 256 << 20, NULL));
    CHECK(pci_pc_init_with_ops(&r->m, &fake_kvm_ops, &r->kvm, &err));
    CHECK(err == NULL);
}

static PciDevice *rig_plug(Rig *r, const VfioPciOptions *o, GError **errp)
{
    return vfio_pci_realize(r->m.pci, &r->fake.dev, o, errp);
}

static void rig_setup(Rig *r)
{
    VfioPciOptions o = { .id = "pnic", .devfn = DEVFN, .rombar = true };
    GError *err = NULL;

    rig_machine(r);
    fake_init(&r->fake);
    r->dev = rig_plug(r, &o, &err);
    CHECK(r->dev != NULL);
    if (err) {
        fprintf(stderr, "realize: %s\n", err->message);
        g_error_free(err);
    }
}

static void rig_teardown(Rig *r)
{
    pci_pc_cleanup(&r->m);
    CHECK(r->fake.closed);
    CHECK_EQ(r->fake.live_mmaps, 0);
    CHECK_EQ(kvm_nr_slots(&r->kvm), 0);
    CHECK_EQ(kvm_nr_routes(&r->kvm), 0);
    CHECK_EQ(r->kvm.intx_gsi, -1);
    CHECK(device_state_migratable(&r->m.device_states, NULL));
    bus_destroy(&r->m.io_bus);
    bus_destroy(&r->m.mmio_bus);
    device_state_list_destroy(&r->m.device_states);
    fake_destroy(&r->fake);
}

static uint32_t cfg_read(Rig *r, unsigned reg, unsigned len)
{
    return pci_cfg_read(&r->m.io_bus, DEVFN, reg, len);
}

static void cfg_write(Rig *r, unsigned reg, unsigned len, uint32_t val)
{
    pci_cfg_write(&r->m.io_bus, DEVFN, reg, len, val);
}

#define BAR0_AT 0xe0000000u
#define BAR3_AT 0xe0020000u
#define BAR4_AT 0xe0100000u
#define BAR2_AT 0xc000u

static void rig_map_bars(Rig *r)
{
    cfg_write(r, PCI_BASE_ADDRESS_0, 4, BAR0_AT);
    cfg_write(r, PCI_BASE_ADDRESS_2, 4, BAR2_AT);
    cfg_write(r, PCI_BASE_ADDRESS_3, 4, BAR3_AT);
    cfg_write(r, PCI_BASE_ADDRESS_4, 4, BAR4_AT);
    cfg_write(r, PCI_BASE_ADDRESS_5, 4, 0);
    cfg_write(r, PCI_COMMAND, 2,
              PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void msix_entry(Rig *r, unsigned n, uint32_t addr, uint32_t data, bool masked)
{
    uint64_t e = BAR3_AT + 16 * n;

    bus_write_le(&r->m.mmio_bus, e, 4, addr);
    bus_write_le(&r->m.mmio_bus, e + 4, 4, 0);
    bus_write_le(&r->m.mmio_bus, e + 8, 4, data);
    bus_write_le(&r->m.mmio_bus, e + 12, 4, masked);
}

static void msix_control(Rig *r, uint16_t bits)
{
    cfg_write(r, CAP_MSIX + PCI_MSIX_FLAGS, 2, bits);
}

static void fire(int fd)
{
    uint64_t one = 1;

    CHECK_EQ(write(fd, &one, sizeof(one)), sizeof(one));
}

static bool fd_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, 0) == 1;
}

/* ---- config space ---- */

UNIT_TEST(config_shows_the_device_ids_and_merges_emulated_bits)
{
    Rig r;

    rig_setup(&r);
    CHECK_EQ(cfg_read(&r, PCI_VENDOR_ID, 4), 0x10d38086);
    CHECK_EQ(cfg_read(&r, PCI_CLASS_REVISION, 4), 0x02000000);
    CHECK_EQ(cfg_read(&r, PCI_SUBSYSTEM_VENDOR_ID, 4), 0xa01f8086);
    /* one function of its own slot, whatever the host has */
    CHECK_EQ(cfg_read(&r, PCI_HEADER_TYPE, 1), 0);
    /* the host's BAR addresses and interrupt line stay hidden */
    CHECK_EQ(cfg_read(&r, PCI_BASE_ADDRESS_0, 4), 0);
    CHECK_EQ(cfg_read(&r, PCI_BASE_ADDRESS_3, 4), 0);
    CHECK_EQ(cfg_read(&r, PCI_INTERRUPT_LINE, 1), 0);
    CHECK_EQ(cfg_read(&r, PCI_INTERRUPT_PIN, 1), 1);
    /* a register passed through follows the device */
    r.fake.config[CAP_EXP + PCI_EXP_DEVSTA] = 0x5;
    CHECK_EQ(cfg_read(&r, CAP_EXP + PCI_EXP_DEVSTA, 1), 0x5);
    cfg_write(&r, CAP_EXP + PCI_EXP_DEVCTL, 2, 0x2810);
    CHECK_EQ(pci_get_word(r.fake.config + CAP_EXP + PCI_EXP_DEVCTL), 0x2810);
    /* the interrupt line is the guest's, never the device's */
    cfg_write(&r, PCI_INTERRUPT_LINE, 1, 11);
    CHECK_EQ(cfg_read(&r, PCI_INTERRUPT_LINE, 1), 11);
    /* BAR writes stay here; command writes reach the device too */
    cfg_write(&r, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    CHECK_EQ(pci_get_long(r.fake.config + PCI_BASE_ADDRESS_0), 0xf7a00000);
    cfg_write(&r, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    CHECK_EQ(pci_get_word(r.fake.config + PCI_COMMAND),
             PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    CHECK_EQ(cfg_read(&r, PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    rig_teardown(&r);
}

UNIT_TEST(capability_chain_skips_hidden_ones)
{
    Rig r;
    uint8_t seen[8], n = 0;

    rig_setup(&r);
    CHECK(cfg_read(&r, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    for (uint8_t pos = cfg_read(&r, PCI_CAPABILITY_LIST, 1); pos && n < 8;
         pos = cfg_read(&r, pos + 1, 1)) {
        seen[n++] = pos;
    }
    CHECK_EQ(n, 4);
    CHECK_EQ(seen[0], CAP_PM);
    CHECK_EQ(seen[1], CAP_MSI); /* PCI-X at 0x60 left out */
    CHECK_EQ(seen[2], CAP_EXP);
    CHECK_EQ(seen[3], CAP_MSIX);
    CHECK_EQ(cfg_read(&r, CAP_MSIX + PCI_MSIX_TABLE, 4), 3);
    CHECK_EQ(cfg_read(&r, CAP_MSIX + PCI_MSIX_PBA, 4), 0x2003);
    CHECK_EQ(cfg_read(&r, CAP_MSIX + PCI_MSIX_FLAGS, 2), MSIX_VECTORS - 1);
    rig_teardown(&r);
}

UNIT_TEST(bars_size_from_regions_and_rom_bar)
{
    Rig r;
    VfioPciOptions o = {
        .devfn = DEVFN, .rombar = false, .failover_pair_id = "net1", .id = "p"
    };

    rig_setup(&r);
    cfg_write(&r, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    CHECK_EQ(cfg_read(&r, PCI_BASE_ADDRESS_0, 4), (uint32_t) ~(BAR0_SIZE - 1));
    CHECK_EQ(cfg_read(&r, PCI_BASE_ADDRESS_1, 4), 0); /* no BAR1 */
    cfg_write(&r, PCI_BASE_ADDRESS_2, 4, 0xffffffff);
    CHECK_EQ(cfg_read(&r, PCI_BASE_ADDRESS_2, 4), (uint32_t) ~(BAR2_SIZE - 1) | 1);
    cfg_write(&r, PCI_BASE_ADDRESS_4, 4, 0xffffffff);
    cfg_write(&r, PCI_BASE_ADDRESS_5, 4, 0xffffffff);
    CHECK_EQ(cfg_read(&r, PCI_BASE_ADDRESS_4, 4), (uint32_t) ~(BAR4_SIZE - 1) | 0xc);
    CHECK_EQ(cfg_read(&r, PCI_BASE_ADDRESS_5, 4), 0xffffffff);
    cfg_write(&r, PCI_ROM_ADDRESS, 4, 0xffffffff);
    CHECK_EQ(cfg_read(&r, PCI_ROM_ADDRESS, 4), (uint32_t) ~(ROM_SIZE - 1) | 1);
    rig_teardown(&r);

    /* rombar=0: no ROM BAR at all */
    rig_machine(&r);
    fake_init(&r.fake);
    r.dev = rig_plug(&r, &o, NULL);
    CHECK(r.dev != NULL);
    cfg_write(&r, PCI_ROM_ADDRESS, 4, 0xffffffff);
    CHECK_EQ(cfg_read(&r, PCI_ROM_ADDRESS, 4), 0);
    rig_teardown(&r);
}

/* ---- the ROM BAR ---- */

#define ROM_AT 0xe0200000u

UNIT_TEST(rom_bar_serves_the_device_rom_while_enabled)
{
    Rig r;
    Bus *mmio;

    rig_setup(&r);
    mmio = &r.m.mmio_bus;
    rig_map_bars(&r);
    /* an address without the enable bit: nothing there, nothing read */
    cfg_write(&r, PCI_ROM_ADDRESS, 4, ROM_AT);
    CHECK_EQ(bus_read_le(mmio, ROM_AT, 2), 0xffff);
    CHECK_EQ(r.fake.rom_reads, 0);
    /* enabled: the device's ROM, read from it once */
    cfg_write(&r, PCI_ROM_ADDRESS, 4, ROM_AT | PCI_ROM_ADDRESS_ENABLE);
    CHECK_EQ(cfg_read(&r, PCI_ROM_ADDRESS, 4), ROM_AT | PCI_ROM_ADDRESS_ENABLE);
    CHECK_EQ(bus_read_le(mmio, ROM_AT, 2), 0xaa55);
    CHECK_EQ(bus_read_le(mmio, ROM_AT + 0x100, 4),
             (uint8_t)(0x100 * 7) | (uint8_t)(0x101 * 7) << 8 |
                 (uint32_t)(uint8_t)(0x102 * 7) << 16 |
                 (uint32_t)(uint8_t)(0x103 * 7) << 24);
    CHECK_EQ(bus_read_le(mmio, ROM_AT + ROM_SIZE - 1, 1), (uint8_t)((ROM_SIZE - 1) * 7));
    CHECK_EQ(r.fake.rom_reads, 1);
    /* a ROM is read-only: the write goes nowhere */
    bus_write_le(mmio, ROM_AT, 2, 0x1234);
    CHECK_EQ(bus_read_le(mmio, ROM_AT, 2), 0xaa55);
    CHECK_EQ(r.fake.rom_writes, 0);
    CHECK_EQ(r.fake.rom[0], 0x55);
    /* memory decoding off, then the BAR moved */
    cfg_write(&r, PCI_COMMAND, 2, PCI_COMMAND_IO);
    CHECK_EQ(bus_read_le(mmio, ROM_AT, 2), 0xffff);
    cfg_write(&r, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    cfg_write(&r, PCI_ROM_ADDRESS, 4, (ROM_AT + ROM_SIZE) | PCI_ROM_ADDRESS_ENABLE);
    CHECK_EQ(bus_read_le(mmio, ROM_AT, 2), 0xffff);
    CHECK_EQ(bus_read_le(mmio, ROM_AT + ROM_SIZE, 2), 0xaa55);
    /* the enable bit off */
    cfg_write(&r, PCI_ROM_ADDRESS, 4, ROM_AT + ROM_SIZE);
    CHECK_EQ(bus_read_le(mmio, ROM_AT + ROM_SIZE, 2), 0xffff);
    /* a reset clears the register: the ROM is gone until programmed again */
    cfg_write(&r, PCI_ROM_ADDRESS, 4, ROM_AT | PCI_ROM_ADDRESS_ENABLE);
    pci_pc_reset(r.m.pci);
    CHECK_EQ(cfg_read(&r, PCI_ROM_ADDRESS, 4), 0);
    CHECK_EQ(bus_read_le(mmio, ROM_AT, 2), 0xffff);
    CHECK_EQ(r.fake.rom_reads, 1);
    rig_teardown(&r);
}

UNIT_TEST(rom_bar_unreadable_rom_reads_as_ones)
{
    Rig r;

    rig_setup(&r);
    rig_map_bars(&r);
    cfg_write(&r, PCI_ROM_ADDRESS, 4, ROM_AT | PCI_ROM_ADDRESS_ENABLE);
    r.fake.fail[OP_READ] = true;
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, ROM_AT, 4), 0xffffffff);
    r.fake.fail[OP_READ] = false;
    /* tried once: the VMM stays up and does not retry at every read */
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, ROM_AT, 4), 0xffffffff);
    CHECK_EQ(r.fake.rom_reads, 0);
    rig_teardown(&r);
}

UNIT_TEST(rom_bar_romfile)
{
    char path[] = "/tmp/test-vfio-romXXXXXX";
    int fd = mkstemp(path);
    uint8_t img[3000];
    VfioPciOptions o = { .devfn = DEVFN, .rombar = true, .romfile = path };
    GError *err = NULL;
    Rig r;

    for (unsigned i = 0; i < sizeof(img); i++) {
        img[i] = 0xa0 ^ i;
    }
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, img, sizeof(img)), sizeof(img));
    close(fd);

    /* the file, not the device: a 4 KiB BAR, all ones past the file */
    rig_machine(&r);
    fake_init(&r.fake);
    r.dev = rig_plug(&r, &o, NULL);
    CHECK(r.dev != NULL);
    rig_map_bars(&r);
    cfg_write(&r, PCI_ROM_ADDRESS, 4, 0xffffffff);
    CHECK_EQ(cfg_read(&r, PCI_ROM_ADDRESS, 4), (uint32_t) ~(4096 - 1) | 1);
    cfg_write(&r, PCI_ROM_ADDRESS, 4, ROM_AT | PCI_ROM_ADDRESS_ENABLE);
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, ROM_AT + 1, 1), 0xa1);
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, ROM_AT + 2998, 4),
             0xffff0000u | (uint32_t)(uint8_t)(0xa0 ^ 2999) << 8 |
                 (uint8_t)(0xa0 ^ 2998));
    CHECK_EQ(r.fake.rom_reads, 0);
    rig_teardown(&r);

    /* romfile= empty: no ROM BAR; rombar=0 wins over a file */
    for (int i = 0; i < 2; i++) {
        VfioPciOptions none = { .devfn = DEVFN,
                                .rombar = i == 1,
                                .romfile = i ? "" : path };
        rig_machine(&r);
        fake_init(&r.fake);
        r.dev = rig_plug(&r, &none, NULL);
        CHECK(r.dev != NULL);
        cfg_write(&r, PCI_ROM_ADDRESS, 4, 0xffffffff);
        CHECK_EQ(cfg_read(&r, PCI_ROM_ADDRESS, 4), 0);
        rig_teardown(&r);
    }

    /* a file that is not there, or empty: QEMU's errors, the device closed */
    for (int i = 0; i < 2; i++) {
        VfioPciOptions bad = { .devfn = DEVFN,
                               .rombar = true,
                               .romfile = i ? path : "/nonexistent/x.rom" };
        char *want = i ? g_strdup_printf("romfile \"%s\" is empty", path)
                       : g_strdup("failed to find romfile \"/nonexistent/x.rom\"");
        if (i) {
            CHECK_EQ(truncate(path, 0), 0);
        }
        rig_machine(&r);
        fake_init(&r.fake);
        r.dev = rig_plug(&r, &bad, &err);
        CHECK(r.dev == NULL);
        CHECK_STR(err ? err->message : NULL, want);
        g_free(want);
        g_clear_error(&err);
        rig_teardown(&r);
    }
    unlink(path);
}

/* ---- BARs as memory slots ---- */

UNIT_TEST(bars_become_memory_slots_that_follow_the_guest)
{
    Rig r;

    rig_setup(&r);
    CHECK_EQ(r.fake.live_mmaps, 3); /* BAR0, BAR3, BAR4; the I/O BAR traps */
    CHECK_EQ(kvm_nr_slots(&r.kvm), 0);
    rig_map_bars(&r);
    CHECK(kvm_has_slot(&r.kvm, BAR0_AT, BAR0_SIZE));
    CHECK(kvm_has_slot(&r.kvm, BAR4_AT, BAR4_SIZE));
    /* BAR3 minus the pages of the MSI-X table (0x0) and PBA (0x2000) */
    CHECK(kvm_has_slot(&r.kvm, BAR3_AT + 0x1000, 0x1000));
    CHECK(kvm_has_slot(&r.kvm, BAR3_AT + 0x3000, 0x1000));
    CHECK_EQ(kvm_nr_slots(&r.kvm), 4);
    /* the guest moves BAR0 */
    cfg_write(&r, PCI_BASE_ADDRESS_0, 4, 0xe0200000);
    CHECK(kvm_has_slot(&r.kvm, 0xe0200000, BAR0_SIZE));
    CHECK(!kvm_has_slot(&r.kvm, BAR0_AT, BAR0_SIZE));
    CHECK_EQ(kvm_nr_slots(&r.kvm), 4);
    /* memory decode off: every slot goes; on again: back */
    cfg_write(&r, PCI_COMMAND, 2, PCI_COMMAND_IO);
    CHECK_EQ(kvm_nr_slots(&r.kvm), 0);
    cfg_write(&r, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    CHECK_EQ(kvm_nr_slots(&r.kvm), 4);
    rig_teardown(&r);
}

UNIT_TEST(unmapped_parts_and_io_bars_trap_to_the_device)
{
    Rig r;

    rig_setup(&r);
    rig_map_bars(&r);
    r.fake.bars[2][4] = 0x5a;
    CHECK_EQ(bus_read_le(&r.m.io_bus, BAR2_AT + 4, 1), 0x5a);
    bus_write_le(&r.m.io_bus, BAR2_AT + 8, 4, 0x12345678);
    CHECK_EQ(pci_get_long(r.fake.bars[2] + 8), 0x12345678);
    /* BAR3 past the table, inside its page: through the backend */
    bus_write_le(&r.m.mmio_bus, BAR3_AT + 0x800, 4, 0xcafe);
    CHECK_EQ(pci_get_long(r.fake.bars[3] + 0x800), 0xcafe);
    /* the table itself never reaches the device */
    bus_write_le(&r.m.mmio_bus, BAR3_AT, 4, 0xfee00000);
    CHECK_EQ(pci_get_long(r.fake.bars[3]), 0);
    /* a slot refused by KVM: the BAR still works, trapped */
    cfg_write(&r, PCI_COMMAND, 2, 0);
    r.kvm.fail_slot = true;
    cfg_write(&r, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    CHECK_EQ(kvm_nr_slots(&r.kvm), 0);
    r.fake.bars[0][0x10] = 0x77;
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, BAR0_AT + 0x10, 1), 0x77);
    rig_teardown(&r);
}

/*
 * MSIX_MAPPABLE: the mmap covers the table's and PBA's pages too.  They
 * still trap (KVM maps whole pages, the table is emulated), but the rest
 * of each page is reached through the mmap without a syscall; without the
 * capability (sparse areas around them) through pread/pwrite.
 */
UNIT_TEST(msix_pages_outside_the_table_use_the_mmap_when_mappable)
{
    Rig r;
    VfioPciOptions o = { .devfn = DEVFN, .rombar = true };

    for (int sparse = 0; sparse < 2; sparse++) {
        Bus *mmio;
        int preads, pwrites;

        rig_machine(&r);
        fake_init(&r.fake);
        r.fake.msix_sparse = sparse;
        r.dev = rig_plug(&r, &o, NULL);
        CHECK(r.dev != NULL);
        mmio = &r.m.mmio_bus;
        rig_map_bars(&r);
        /* the same slots either way: the table's and PBA's pages trap */
        CHECK(kvm_has_slot(&r.kvm, BAR3_AT + 0x1000, 0x1000));
        CHECK(kvm_has_slot(&r.kvm, BAR3_AT + 0x3000, 0x1000));
        CHECK(!kvm_has_slot(&r.kvm, BAR3_AT, 0x1000));
        CHECK(!kvm_has_slot(&r.kvm, BAR3_AT + 0x2000, 0x1000));
        CHECK_EQ(r.fake.live_mmaps, sparse ? 4 : 3);
        preads = r.fake.bar_preads;
        pwrites = r.fake.bar_pwrites;
        /* past the table in its page, and past the PBA in its page */
        bus_write_le(mmio, BAR3_AT + 0x800, 4, 0xcafe);
        bus_write_le(mmio, BAR3_AT + 0x2100, 2, 0xbeef);
        bus_write_le(mmio, BAR3_AT + 0x2108, 8, 0x0102030405060708ULL);
        bus_write_le(mmio, BAR3_AT + 0x2110, 1, 0x99);
        CHECK_EQ(pci_get_long(r.fake.bars[3] + 0x800), 0xcafe);
        CHECK_EQ(pci_get_word(r.fake.bars[3] + 0x2100), 0xbeef);
        CHECK_EQ(pci_get_long(r.fake.bars[3] + 0x2108), 0x05060708);
        CHECK_EQ(pci_get_long(r.fake.bars[3] + 0x210c), 0x01020304);
        CHECK_EQ(r.fake.bars[3][0x2110], 0x99);
        r.fake.bars[3][0xff0] = 0x42;
        CHECK_EQ(bus_read_le(mmio, BAR3_AT + 0xff0, 1), 0x42);
        CHECK_EQ(bus_read_le(mmio, BAR3_AT + 0x2108, 8), 0x0102030405060708ULL);
        CHECK_EQ(r.fake.bar_pwrites - pwrites, sparse ? 4 : 0);
        CHECK_EQ(r.fake.bar_preads - preads, sparse ? 2 : 0);
        /* the table itself stays emulated, mmap or not */
        msix_entry(&r, 1, 0xfee00000, 0x41, true);
        CHECK_EQ(pci_get_long(r.fake.bars[3] + 16), 0);
        CHECK_EQ(bus_read_le(mmio, BAR3_AT + 16 + 8, 4), 0x41);
        rig_teardown(&r);
    }
}

/* ---- MSI-X ---- */

UNIT_TEST(msix_vectors_share_one_eventfd_with_kvm)
{
    Rig r;
    int fd0;

    rig_setup(&r);
    rig_map_bars(&r);
    CHECK_EQ(r.fake.irq[VFIO_PCI_INTX_IRQ_INDEX].count, 1);
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    /* INTx off first (6.1 refuses two indexes), MSI-X on with one vector */
    CHECK_EQ(r.fake.irq[VFIO_PCI_INTX_IRQ_INDEX].count, 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].count, 1);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 0); /* every entry masked */
    msix_entry(&r, 0, 0xfee00000, 0x41, false);
    fd0 = r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].fds[0];
    CHECK(fd0 >= 0);
    CHECK(kvm_route_of_fd(&r.kvm, fd0) >= 0);
    CHECK_EQ(r.kvm.routes[kvm_route_of_fd(&r.kvm, fd0)].data, 0x41);
    /* the guest reads its table back */
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, BAR3_AT + 8, 4), 0x41);
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, BAR3_AT + 12, 4), 0);
    /* vector 3: the index is disabled and enabled with four */
    msix_entry(&r, 3, 0xfee01000, 0x42, false);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].count, 4);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].disables, 1);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].fds[0], fd0); /* KVM side unchanged */
    CHECK(kvm_route_of_fd(&r.kvm, r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].fds[3]) >= 0);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 2);
    /* the query shows both, with the destination APIC of vector 3 */
    {
        GArray *v = vfio_pci_query_vectors(r.dev);
        CHECK_EQ(v->len, 4);
        CHECK(g_array_index(v, VfioPciVectorInfo, 0).enabled);
        CHECK(!g_array_index(v, VfioPciVectorInfo, 1).enabled);
        CHECK_EQ(g_array_index(v, VfioPciVectorInfo, 3).dest_apic, 1);
        CHECK(g_array_index(v, VfioPciVectorInfo, 3).msix);
        g_array_unref(v);
    }
    CHECK_STR(vfio_pci_host_name(r.dev), "0000:01:00.0");
    rig_teardown(&r);
}

UNIT_TEST(msix_masking_keeps_the_message_pending)
{
    Rig r;
    int fd0, route;

    rig_setup(&r);
    rig_map_bars(&r);
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    msix_entry(&r, 0, 0xfee00000, 0x41, false);
    fd0 = r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].fds[0];
    route = kvm_route_of_fd(&r.kvm, fd0);
    CHECK(route >= 0);
    /* masked: the irqfd is detached, the route kept */
    bus_write_le(&r.m.mmio_bus, BAR3_AT + 12, 4, 1);
    CHECK_EQ(r.kvm.routes[route].irqfd, -1);
    CHECK(r.kvm.routes[route].used);
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, BAR3_AT + 0x2000, 8), 0);
    fire(fd0); /* the device raises it while masked */
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, BAR3_AT + 0x2000, 8), 1);
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, BAR3_AT + 0x2000, 1), 1);
    /* unmasked: attached again, and KVM takes what is waiting */
    bus_write_le(&r.m.mmio_bus, BAR3_AT + 12, 4, 0);
    CHECK_EQ(r.kvm.routes[route].irqfd, fd0);
    CHECK(fd_readable(fd0));
    /* function mask: every irqfd off; cleared: back */
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    CHECK_EQ(r.kvm.routes[route].irqfd, -1);
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(r.kvm.routes[route].irqfd, fd0);
    /* the guest retargets it: the route follows */
    msix_entry(&r, 0, 0xfee02000, 0x51, false);
    CHECK_EQ(r.kvm.routes[route].addr, 0xfee02000);
    CHECK_EQ(r.kvm.routes[route].data, 0x51);
    /* disabled: MSI-X off in the device, routes gone, INTx back */
    msix_control(&r, 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].count, 0);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_INTX_IRQ_INDEX].count, 1);
    rig_teardown(&r);
}

UNIT_TEST(msix_table_garbage_does_no_harm)
{
    Rig r;
    uint32_t seed = 12345;

    rig_setup(&r);
    rig_map_bars(&r);
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    for (int i = 0; i < 20000; i++) {
        static const unsigned lens[] = { 1, 2, 4, 8 };
        uint64_t off, val;
        unsigned len;

        seed = seed * 1103515245 + 12345;
        off = (seed >> 8) % 0x2100; /* table, beyond it, the PBA */
        len = lens[(seed >> 4) & 3];
        seed = seed * 1103515245 + 12345;
        val = (uint64_t)seed << 32 | (seed * 7u);
        if (i % 3 == 0) {
            val = (val & ~0xfff00000ull) | 0xfee00000ull; /* a plausible address */
        }
        if (seed & 1) {
            bus_write_le(&r.m.mmio_bus, BAR3_AT + off, len, val);
        } else {
            bus_read_le(&r.m.mmio_bus, BAR3_AT + off, len);
        }
        if (i % 1000 == 0) {
            msix_control(&r, (seed >> 16) & 1 ? PCI_MSIX_FLAGS_ENABLE : 0);
        }
    }
    /* whatever is routed points at the LAPIC window */
    for (int i = 0; i < 64; i++) {
        if (r.kvm.routes[i].used) {
            CHECK_EQ(r.kvm.routes[i].addr & 0xfff00000u, 0xfee00000u);
        }
    }
    /* an entry with an address outside the window gets no route */
    msix_control(&r, 0);
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    msix_entry(&r, 1, 0x12345678, 1, false);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 0);
    rig_teardown(&r);
}

/* ---- MSI ---- */

UNIT_TEST(msi_vectors_and_count_changes)
{
    Rig r;
    unsigned flags = CAP_MSI + PCI_MSI_FLAGS;

    rig_setup(&r);
    rig_map_bars(&r);
    /* 4 vectors offered; the guest asks for 2 */
    CHECK_EQ(cfg_read(&r, flags, 2) & PCI_MSI_FLAGS_QMASK, 2 << 1);
    cfg_write(&r, CAP_MSI + PCI_MSI_ADDRESS_LO, 4, 0xfee00000);
    cfg_write(&r, CAP_MSI + PCI_MSI_ADDRESS_HI, 4, 0);
    cfg_write(&r, CAP_MSI + PCI_MSI_DATA_64, 2, 0x60);
    cfg_write(&r, flags, 2, PCI_MSI_FLAGS_ENABLE | (1 << 4));
    CHECK_EQ(r.fake.irq[VFIO_PCI_INTX_IRQ_INDEX].count, 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSI_IRQ_INDEX].count, 2);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 2);
    {
        int a = kvm_route_of_fd(&r.kvm, r.fake.irq[VFIO_PCI_MSI_IRQ_INDEX].fds[0]);
        int b = kvm_route_of_fd(&r.kvm, r.fake.irq[VFIO_PCI_MSI_IRQ_INDEX].fds[1]);
        CHECK(a >= 0 && b >= 0);
        CHECK_EQ(r.kvm.routes[a].data, 0x60);
        CHECK_EQ(r.kvm.routes[b].data, 0x61);
    }
    /* the MSI capability never reaches the device */
    CHECK_EQ(pci_get_word(r.fake.config + flags) & PCI_MSI_FLAGS_ENABLE, 0);
    /* four: off and on again */
    cfg_write(&r, flags, 2, PCI_MSI_FLAGS_ENABLE | (2 << 4));
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSI_IRQ_INDEX].count, 4);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSI_IRQ_INDEX].disables, 1);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 4);
    /* more than offered is capped */
    cfg_write(&r, flags, 2, PCI_MSI_FLAGS_ENABLE | (5 << 4));
    CHECK(r.fake.irq[VFIO_PCI_MSI_IRQ_INDEX].count <= 4);
    /* a new address: the routes follow */
    cfg_write(&r, CAP_MSI + PCI_MSI_ADDRESS_LO, 4, 0xfee03000);
    for (int i = 0; i < 64; i++) {
        if (r.kvm.routes[i].used) {
            CHECK_EQ(r.kvm.routes[i].addr, 0xfee03000);
        }
    }
    /* off: INTx again */
    cfg_write(&r, flags, 2, 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSI_IRQ_INDEX].count, 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_INTX_IRQ_INDEX].count, 1);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 0);
    rig_teardown(&r);
}

/* ---- INTx ---- */

UNIT_TEST(intx_uses_a_resample_irqfd_on_the_pins_route)
{
    Rig r;
    int irq;

    rig_setup(&r);
    CHECK(r.fake.unmask_fd >= 0);
    CHECK_EQ(r.kvm.intx_gsi, -1); /* no PIRQ routes yet */
    pci_pc_assign_resources(r.m.pci);
    cfg_write(&r, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    irq = pci_pc_default_irq(SLOT, 1);
    CHECK_EQ(r.kvm.intx_gsi, irq);
    CHECK_EQ(r.kvm.intx_fd, r.fake.irq[VFIO_PCI_INTX_IRQ_INDEX].fds[0]);
    CHECK_EQ(r.kvm.intx_resample, r.fake.unmask_fd);
    /* MSI-X takes over: INTx's irqfd detached */
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(r.kvm.intx_gsi, -1);
    msix_control(&r, 0);
    CHECK_EQ(r.kvm.intx_gsi, irq);
    rig_teardown(&r);
}

/* ---- reset, teardown, errors, migration ---- */

UNIT_TEST(reset_turns_interrupts_off_and_resets_the_device)
{
    Rig r;

    rig_setup(&r);
    rig_map_bars(&r);
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    msix_entry(&r, 0, 0xfee00000, 0x41, false);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 1);
    pci_pc_reset(r.m.pci);
    CHECK_EQ(r.fake.resets, 1);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 0);
    CHECK_EQ(kvm_nr_slots(&r.kvm), 0); /* BARs back to unprogrammed */
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].count, 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_INTX_IRQ_INDEX].count, 1);
    CHECK_EQ(cfg_read(&r, CAP_MSIX + PCI_MSIX_FLAGS, 2), MSIX_VECTORS - 1);
    rig_map_bars(&r);
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, BAR3_AT + 12, 4), 1); /* masked again */
    /* a device without a function reset: decode and DMA turned off */
    r.fake.dev.flags &= ~VFIO_DEVICE_FLAGS_RESET;
    pci_pc_reset(r.m.pci);
    CHECK_EQ(r.fake.resets, 1);
    CHECK_EQ(pci_get_word(r.fake.config + PCI_COMMAND), 0);
    /* a reset that fails is reported, the VM goes on */
    r.fake.dev.flags |= VFIO_DEVICE_FLAGS_RESET;
    r.fake.fail[OP_RESET] = true;
    pci_pc_reset(r.m.pci);
    rig_teardown(&r);
}

UNIT_TEST(blocks_migration_unless_failover_pair)
{
    Rig r;
    GError *err = NULL;
    VfioPciOptions o = {
        .id = "pnic", .devfn = DEVFN, .rombar = true, .failover_pair_id = "net1"
    };

    rig_setup(&r);
    CHECK(!device_state_migratable(&r.m.device_states, &err));
    CHECK(err != NULL);
    if (err) {
        CHECK_STR(err->message, "VFIO device doesn't support migration");
        g_error_free(err);
    }
    rig_teardown(&r); /* unplugged: the blocker is gone (checked there) */

    rig_machine(&r);
    fake_init(&r.fake);
    r.dev = rig_plug(&r, &o, NULL);
    CHECK(r.dev != NULL);
    CHECK(device_state_migratable(&r.m.device_states, NULL));
    rig_teardown(&r);
}

UNIT_TEST(hot_unplug_releases_everything)
{
    Rig r;

    rig_setup(&r);
    rig_map_bars(&r);
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    msix_entry(&r, 0, 0xfee00000, 0x41, false);
    pci_pc_assign_resources(r.m.pci);
    cfg_write(&r, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    pci_device_free(r.dev);
    CHECK(r.fake.closed);
    CHECK_EQ(r.fake.live_mmaps, 0);
    CHECK_EQ(kvm_nr_slots(&r.kvm), 0);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 0);
    CHECK(device_state_migratable(&r.m.device_states, NULL));
    CHECK_EQ(cfg_read(&r, PCI_VENDOR_ID, 2), 0xffff);
    rig_teardown(&r);
}

UNIT_TEST(every_backend_failure_at_realize_is_one_clear_error)
{
    static const int ops[] = { OP_REGION_INFO, OP_IRQ_INFO, OP_READ,
                               OP_MMAP,        OP_SET_IRQS, OP_UNMASK_FD };

    for (size_t i = 0; i < G_N_ELEMENTS(ops); i++) {
        Rig r;
        GError *err = NULL;
        VfioPciOptions o = { .devfn = DEVFN, .rombar = true };

        rig_machine(&r);
        fake_init(&r.fake);
        r.fake.fail[ops[i]] = true;
        r.dev = rig_plug(&r, &o, &err);
        CHECK(r.dev == NULL);
        CHECK(err != NULL);
        if (err) {
            CHECK(strstr(err->message, "0000:01:00.0") != NULL);
            g_error_free(err);
        }
        CHECK(r.fake.closed);
        CHECK_EQ(r.fake.live_mmaps, 0);
        CHECK_EQ(cfg_read(&r, PCI_VENDOR_ID, 2), 0xffff); /* nothing left on the bus */
        CHECK(device_state_migratable(&r.m.device_states, NULL));
        rig_teardown(&r);
    }
    /* each region's info failing in turn (BAR5 is BAR4's upper half) */
    for (int region = 0; region <= VFIO_PCI_ROM_REGION_INDEX; region++) {
        if (region == 5) {
            continue;
        }
        Rig r;
        GError *err = NULL;
        VfioPciOptions o = { .devfn = DEVFN, .rombar = true };

        rig_machine(&r);
        fake_init(&r.fake);
        r.fake.fail[OP_REGION_INFO] = true;
        r.fake.fail_region = region;
        r.dev = rig_plug(&r, &o, &err);
        CHECK(r.dev == NULL && err != NULL);
        g_clear_error(&err);
        rig_teardown(&r);
    }
}

UNIT_TEST(backend_failures_after_realize_keep_the_vm_running)
{
    Rig r;

    rig_setup(&r);
    rig_map_bars(&r);
    /* MSI-X refused by the device: back to INTx */
    r.fake.fail[OP_SET_IRQS] = true;
    r.fake.fail_irq = VFIO_PCI_MSIX_IRQ_INDEX;
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].count, 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_INTX_IRQ_INDEX].count, 1);
    r.fake.fail[OP_SET_IRQS] = false;
    msix_control(&r, 0);
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].count, 1);
    /* KVM refusing a route or an irqfd: the vector stays quiet */
    r.kvm.fail_route = true;
    msix_entry(&r, 0, 0xfee00000, 0x41, false);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 0);
    r.kvm.fail_route = false;
    r.kvm.fail_irqfd = true;
    msix_entry(&r, 1, 0xfee00000, 0x42, false);
    CHECK_EQ(kvm_route_of_fd(&r.kvm, r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].fds[1]), -1);
    r.kvm.fail_irqfd = false;
    /* reads and writes refused: all ones, nothing breaks */
    r.fake.fail[OP_READ] = true;
    r.fake.fail[OP_WRITE] = true;
    CHECK_EQ(cfg_read(&r, PCI_VENDOR_ID, 2), 0xffff);
    CHECK_EQ(cfg_read(&r, PCI_BASE_ADDRESS_0, 4), BAR0_AT); /* emulated */
    CHECK_EQ(bus_read_le(&r.m.io_bus, BAR2_AT, 4), 0xffffffff);
    cfg_write(&r, CAP_EXP + PCI_EXP_DEVCTL, 2, 0);
    bus_write_le(&r.m.io_bus, BAR2_AT, 4, 1);
    CHECK_EQ(bus_read_le(&r.m.mmio_bus, BAR3_AT + 0x2000, 8), 0); /* PBA */
    r.fake.fail[OP_READ] = false;
    r.fake.fail[OP_WRITE] = false;
    rig_teardown(&r);
}

/* ---- host IRQ affinity under a cpumap (a fake /proc) ---- */

static int apic_plus_two(void *opaque, unsigned apic_id)
{
    return apic_id < 4 ? (int)apic_id + 2 : -1;
}

static char *fake_proc(void)
{
    char *root = g_dir_make_tmp("vfio-proc-XXXXXX", NULL);
    GString *irqs = g_string_new(
        "           CPU0       CPU1\n"
        "  0:         10          0   IO-APIC   2-edge      timer\n"
        " 12: garbage line without a name\n"
        "bad: 1 2 vfio-msix[1](0000:01:00.0)\n");

    for (int n = 0; n < MSIX_VECTORS; n++) {
        char *dir = g_strdup_printf("%s/irq/%d", root, 40 + n);
        char *file = g_strdup_printf("%s/smp_affinity_list", dir);
        g_mkdir_with_parents(dir, 0700);
        CHECK(g_file_set_contents(file, "0-1\n", -1, NULL));
        g_string_append_printf(irqs,
                               " %d:   0   0  %s  %d-edge  vfio-msix[%d](0000:01:00.0)\n",
                               40 + n, n == 1 ? "IR-PCI-MSI" : "PCI-MSI", 16384 + n, n);
        g_free(file);
        g_free(dir);
    }
    {
        char *path = g_strdup_printf("%s/interrupts", root);
        CHECK(g_file_set_contents(path, irqs->str, -1, NULL));
        g_free(path);
    }
    g_string_free(irqs, TRUE);
    return root;
}

static char *affinity_of(const char *root, int irq)
{
    char *a = vfio_host_irq_affinity(root, irq);
    return a ? a : g_strdup("(none)");
}

static void rm_tree(const char *root)
{
    char *cmd = g_strdup_printf("rm -rf '%s'", root);
    CHECK_EQ(system(cmd), 0);
    g_free(cmd);
}

UNIT_TEST(host_irqs_found_in_proc_interrupts)
{
    char *root = fake_proc();
    char *a;

    CHECK_EQ(vfio_host_irq(root, "0000:01:00.0", true, 0), 40);
    CHECK_EQ(vfio_host_irq(root, "0000:01:00.0", true, 4), 44);
    CHECK_EQ(vfio_host_irq(root, "0000:01:00.0", false, 0), -1); /* no MSI there */
    CHECK_EQ(vfio_host_irq(root, "0000:02:00.0", true, 0), -1);
    CHECK_EQ(vfio_host_irq("/nonexistent", "0000:01:00.0", true, 0), -1);
    CHECK(vfio_host_irq_remapped(root, 41));
    CHECK(!vfio_host_irq_remapped(root, 40));
    CHECK(vfio_host_irq_set_affinity(root, 42, 7, NULL));
    a = affinity_of(root, 42);
    CHECK_STR(a, "7");
    g_free(a);
    CHECK(!vfio_host_irq_set_affinity(root, 99, 1, NULL)); /* no such IRQ */
    CHECK(vfio_host_irq_affinity(root, 99) == NULL);
    rm_tree(root);
    g_free(root);
}

UNIT_TEST(vectors_follow_their_vcpus_pcpu)
{
    Rig r;
    char *root = fake_proc();
    VfioPciOptions o = {
        .id = "pnic", .devfn = DEVFN, .rombar = true, .proc_root = root
    };
    GArray *list;
    char *a;

    rig_machine(&r);
    fake_init(&r.fake);
    r.m.pci->cfg.apic_pcpu = apic_plus_two;
    r.dev = rig_plug(&r, &o, NULL);
    CHECK(r.dev != NULL);
    rig_map_bars(&r);
    msix_control(&r, PCI_MSIX_FLAGS_ENABLE);
    msix_entry(&r, 0, 0xfee01000, 0x41, false); /* APIC 1: pCPU 3 */
    a = affinity_of(root, 40);
    CHECK_STR(a, "3");
    g_free(a);
    CHECK(vfio_host_irq_set_affinity(root, 40, 0, NULL)); /* as a fresh IRQ's */
    msix_entry(&r, 1, 0xfee00000, 0x42, false); /* APIC 0: pCPU 2 (grows to 2 vectors) */
    a = affinity_of(root, 41);
    CHECK_STR(a, "2");
    g_free(a);
    /* the index was enabled again: vector 0's new IRQ is steered again too */
    a = affinity_of(root, 40);
    CHECK_STR(a, "3");
    g_free(a);
    /* the guest retargets vector 0 at APIC 3 */
    msix_entry(&r, 0, 0xfee03000, 0x41, false);
    a = affinity_of(root, 40);
    CHECK_STR(a, "5");
    g_free(a);
    /* logical destination mode (address bit 2): not one vCPU, left alone */
    msix_entry(&r, 0, 0xfee01004, 0x41, false);
    a = affinity_of(root, 40);
    CHECK_STR(a, "5");
    g_free(a);
    /* a vector aimed at a vCPU without a pCPU is left where it is */
    msix_entry(&r, 0, 0xfee09000, 0x41, false);
    a = affinity_of(root, 40);
    CHECK_STR(a, "5");
    g_free(a);
    list = vfio_pci_query_bus_vectors(r.m.pci, true);
    CHECK_EQ(list->len, 2);
    if (list->len == 2) {
        const VfioPciVectorInfo *v0 = &g_array_index(list, VfioPciVectorInfo, 0);
        const VfioPciVectorInfo *v1 = &g_array_index(list, VfioPciVectorInfo, 1);
        CHECK_STR(v0->qdev_id, "pnic");
        CHECK_STR(v0->host, "0000:01:00.0");
        CHECK_EQ(v0->host_irq, 40);
        CHECK_EQ(v0->dest_apic, 9);
        CHECK_STR(v0->affinity, "5");
        CHECK(!v0->posted); /* not remapped */
        CHECK_EQ(v1->host_irq, 41);
        CHECK_EQ(v1->pcpu, 2);
        CHECK(v1->posted); /* IR-PCI-MSI and a posting KVM */
    }
    g_array_unref(list);
    /* a new map: every vector written again */
    CHECK(vfio_host_irq_set_affinity(root, 41, 0, NULL));
    vfio_pci_steer_bus(r.m.pci);
    a = affinity_of(root, 41);
    CHECK_STR(a, "2");
    g_free(a);
    rig_teardown(&r);
    rm_tree(root);
    g_free(root);
}

/* A guest writing garbage anywhere in config space, the BARs and the MSI-X
 * table, in any order: nothing crashes, every memory slot stays page-aligned
 * (checked by the fake KVM), every route points at the LAPIC window, and a
 * reset brings the device back to no routes, slots or MSI-X. */
UNIT_TEST(config_space_and_bar_garbage_does_no_harm)
{
    static const unsigned lens[] = { 1, 2, 4 };
    Rig r;
    uint32_t seed = 777;

    rig_setup(&r);
    for (int i = 0; i < 30000; i++) {
        unsigned reg, len;
        uint32_t val;

        seed = seed * 1103515245 + 12345;
        len = lens[(seed >> 3) % 3];
        reg = ((seed >> 8) % 256) & ~(len - 1);
        seed = seed * 1103515245 + 12345;
        val = seed ^ (seed << 7);
        switch (i % 7) {
        case 0: /* decode and the BARs back somewhere sensible now and then */
            rig_map_bars(&r);
            break;
        case 1:
            cfg_read(&r, reg, len);
            break;
        case 2:
            bus_write_le(&r.m.mmio_bus, BAR3_AT + (val % 0x4000), lens[val % 3], seed);
            break;
        case 3:
            bus_read_le(&r.m.mmio_bus, BAR3_AT + (val % 0x4000), 8);
            break;
        default:
            if (reg < PCI_BASE_ADDRESS_0 || reg >= 0x40 || (seed & 8)) {
                cfg_write(&r, reg, len, val);
            }
            break;
        }
    }
    for (int i = 0; i < 64; i++) {
        if (r.kvm.routes[i].used) {
            CHECK_EQ(r.kvm.routes[i].addr & 0xfff00000u, 0xfee00000u);
        }
    }
    /* the garbage reached MSI and MSI-X both */
    CHECK(r.fake.irq[VFIO_PCI_MSI_IRQ_INDEX].enables > 10);
    CHECK(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].enables > 10);
    pci_pc_reset(r.m.pci);
    CHECK_EQ(kvm_nr_routes(&r.kvm), 0);
    CHECK_EQ(kvm_nr_slots(&r.kvm), 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSIX_IRQ_INDEX].count, 0);
    CHECK_EQ(r.fake.irq[VFIO_PCI_MSI_IRQ_INDEX].count, 0);
    rig_teardown(&r);
}
