/*
 * PCI on the pc machine without KVM: configuration mechanism #1 through
 * the port bus, BAR sizing and placement on the buses, clashes refused,
 * MSI-X table writes turning into routes (a fake KVM records them), PIRQ
 * routing of INTx, the reset control port, PAM, state and query-pci.
 */
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "qapi-commands.h"
#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "hw/machine-info.h"
#include "monitor/monitor-int.h"
#include "busio.h"
#include "unit.h"

UNIT_MAIN()

/* ---- a fake KVM: what PCI asked of it ---- */

typedef struct FakeKvm {
    pthread_mutex_t lock;
    int level[24];
    int line_calls;
    struct {
        bool used;
        uint64_t addr;
        uint32_t data;
        int irqfd;
    } routes[32];
    int adds, updates, dels, signals;
    int extra_fd[8], extra_gsi[8]; /* irqfds beyond each route's first */
    uint64_t signal_addr;
    uint32_t signal_data;
} FakeKvm;

#define FAKE_GSI_BASE 24

static void fake_set_irq(void *opaque, int gsi, int level)
{
    FakeKvm *k = opaque;

    pthread_mutex_lock(&k->lock);
    k->level[gsi] = level;
    k->line_calls++;
    pthread_mutex_unlock(&k->lock);
}

static int fake_route_add(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    FakeKvm *k = opaque;

    for (int i = 0; i < 32; i++) {
        if (!k->routes[i].used) {
            k->routes[i].used = true;
            k->routes[i].addr = addr;
            k->routes[i].data = data;
            k->routes[i].irqfd = -1;
            k->adds++;
            return FAKE_GSI_BASE + i;
        }
    }
    return -1;
}

static bool fake_route_update(void *opaque, int gsi, uint64_t addr, uint32_t data,
                              GError **errp)
{
    FakeKvm *k = opaque;

    k->routes[gsi - FAKE_GSI_BASE].addr = addr;
    k->routes[gsi - FAKE_GSI_BASE].data = data;
    k->updates++;
    return true;
}

static void fake_route_del(void *opaque, int gsi)
{
    FakeKvm *k = opaque;

    k->routes[gsi - FAKE_GSI_BASE].used = false;
    k->dels++;
}

static bool fake_irqfd(void *opaque, int fd, int gsi, bool assign, GError **errp)
{
    FakeKvm *k = opaque;
    int *first = &k->routes[gsi - FAKE_GSI_BASE].irqfd;

    if (assign ? *first < 0 : *first == fd) {
        *first = assign ? fd : -1;
        return true;
    }
    for (int i = 0; i < 8; i++) {
        if (assign ? k->extra_fd[i] == 0
                   : k->extra_fd[i] == fd && k->extra_gsi[i] == gsi) {
            k->extra_fd[i] = assign ? fd : 0;
            k->extra_gsi[i] = assign ? gsi : 0;
            return true;
        }
    }
    return false;
}

/* The gsi fd is bound to beyond a route's first irqfd, or -1. */
static int fake_extra_gsi(FakeKvm *k, int fd)
{
    for (int i = 0; i < 8; i++) {
        if (k->extra_fd[i] == fd) {
            return k->extra_gsi[i];
        }
    }
    return -1;
}

static bool fake_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len, bool is_pio,
                           bool assign, GError **errp)
{
    return true;
}

static bool fake_signal_msi(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    FakeKvm *k = opaque;

    k->signals++;
    k->signal_addr = addr;
    k->signal_data = data;
    return true;
}

static const PciKvmOps fake_ops = {
    fake_set_irq, fake_route_add, fake_route_update, fake_route_del,
    fake_irqfd,   fake_ioeventfd, fake_signal_msi,
};

/* ---- a machine with buses and no KVM ---- */

static FakeKvm kvm;

static void machine_setup(Machine *m, uint64_t ram_size)
{
    GError *err = NULL;

    memset(m, 0, sizeof(*m));
    memset(&kvm, 0, sizeof(kvm));
    pthread_mutex_init(&kvm.lock, NULL);
    pthread_mutex_init(&m->lock, NULL);
    bus_init(&m->io_bus, "io");
    bus_init(&m->mmio_bus, "mmio");
    device_state_list_init(&m->device_states);
    CHECK(machine_plan_memory(m, ram_size, NULL));
    CHECK(pci_pc_init_with_ops(m, &fake_ops, &kvm, &err));
    CHECK(err == NULL);
}

static void machine_teardown(Machine *m)
{
    pci_pc_cleanup(m);
    CHECK(m->pci == NULL);
    CHECK_EQ(m->device_states.entries->len, 0);
    bus_destroy(&m->io_bus);
    bus_destroy(&m->mmio_bus);
    device_state_list_destroy(&m->device_states);
}

static void io_write(Machine *m, uint16_t port, unsigned len, uint32_t val)
{
    bus_write_le(&m->io_bus, port, len, val);
}

static uint32_t io_read(Machine *m, uint16_t port, unsigned len)
{
    return bus_read_le(&m->io_bus, port, len);
}

static uint32_t conf_read(Machine *m, int devfn, int reg, unsigned len)
{
    return pci_cfg_read(&m->io_bus, devfn, reg, len);
}

static void conf_write(Machine *m, int devfn, int reg, unsigned len, uint32_t val)
{
    pci_cfg_write(&m->io_bus, devfn, reg, len, val);
}

static void mmio_write(Machine *m, uint64_t addr, unsigned len, uint64_t val)
{
    bus_write_le(&m->mmio_bus, addr, len, val);
}

static uint64_t mmio_read(Machine *m, uint64_t addr, unsigned len)
{
    return bus_read_le(&m->mmio_bus, addr, len);
}

/* ---- a device with one BAR of each kind ---- */

typedef struct TestDev {
    uint64_t last_offset;
    int accesses;
} TestDev;

static void test_bar_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                        bool is_write)
{
    TestDev *td = opaque;

    td->last_offset = offset;
    td->accesses++;
    if (!is_write) {
        memset(data, 0xab, len);
    }
}

static PciDevice *test_device(Machine *m, int slot, TestDev *td)
{
    PciDevice *dev = pci_device_new("test-dev", 0x1234, 0x5678, 0xff0000, 1);
    GError *err = NULL;

    pci_device_set_bar(dev, 0, PCI_BAR_IO, false, 32, test_bar_io, td);
    pci_device_set_bar(dev, 1, PCI_BAR_MEM32, false, 4096, test_bar_io, td);
    pci_device_set_bar(dev, 2, PCI_BAR_MEM64, true, 16384, test_bar_io, td);
    pci_device_set_intx_pin(dev, 1);
    CHECK(pci_device_realize(m->pci, dev, PCI_MAKE_DEVFN(slot, 0), &err));
    CHECK(err == NULL);
    return dev;
}

UNIT_TEST(conf1_finds_the_bridges)
{
    Machine m;

    machine_setup(&m, 256 << 20);
    CHECK_EQ(conf_read(&m, 0, PCI_VENDOR_ID, 4), 0x12378086);
    CHECK_EQ(conf_read(&m, 0, PCI_CLASS_DEVICE, 2), 0x0600);
    CHECK_EQ(conf_read(&m, 8, PCI_VENDOR_ID, 4), 0x70008086);
    CHECK_EQ(conf_read(&m, 8, PCI_CLASS_DEVICE, 2), 0x0601);
    CHECK_EQ(conf_read(&m, 8, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
    /* an empty slot, another bus: all ones */
    CHECK_EQ(conf_read(&m, PCI_MAKE_DEVFN(5, 0), 0, 4), 0xffffffff);
    io_write(&m, 0xcf8, 4, 0x80010000u);
    CHECK_EQ(io_read(&m, 0xcfc, 4), 0xffffffff);
    machine_teardown(&m);
}

UNIT_TEST(conf1_address_register_and_odd_sizes)
{
    Machine m;

    machine_setup(&m, 256 << 20);
    /* reserved bits 30:24 and 1:0 read back as zero */
    io_write(&m, 0xcf8, 4, 0xff000003u);
    CHECK_EQ(io_read(&m, 0xcf8, 4), 0x80000000u);
    /* byte and word reads at every data port offset */
    CHECK_EQ(conf_read(&m, 0, 0, 1), 0x86);
    CHECK_EQ(conf_read(&m, 0, 1, 1), 0x80);
    CHECK_EQ(conf_read(&m, 0, 2, 2), 0x1237);
    CHECK_EQ(conf_read(&m, 0, 3, 1), 0x12);
    /* a dword at 0xcfd covers three register bytes and one stray byte */
    io_write(&m, 0xcf8, 4, 0x80000000u);
    CHECK_EQ(io_read(&m, 0xcfd, 4), 0xff123780u);
    /* byte accesses to 0xcf8..0xcfb are not the address register */
    io_write(&m, 0xcf8, 1, 0x00);
    CHECK_EQ(io_read(&m, 0xcf8, 4), 0x80000000u);
    CHECK_EQ(io_read(&m, 0xcfa, 2), 0xffff);
    machine_teardown(&m);
}

UNIT_TEST(conf1_enable_bit_clear_reads_ones_drops_writes)
{
    Machine m;

    machine_setup(&m, 256 << 20);
    io_write(&m, 0xcf8, 4, 0x00000800u | 0x60); /* PIIX3 PIRQRC, no enable */
    CHECK_EQ(io_read(&m, 0xcfc, 4), 0xffffffff);
    io_write(&m, 0xcfc, 1, 10);
    CHECK_EQ(conf_read(&m, 8, 0x60, 1), 0x80);
    machine_teardown(&m);
}

UNIT_TEST(ids_are_read_only)
{
    Machine m;

    machine_setup(&m, 256 << 20);
    conf_write(&m, 0, PCI_VENDOR_ID, 4, 0xdeadbeef);
    conf_write(&m, 0, PCI_CLASS_REVISION, 4, 0);
    CHECK_EQ(conf_read(&m, 0, PCI_VENDOR_ID, 4), 0x12378086);
    CHECK_EQ(conf_read(&m, 0, PCI_CLASS_DEVICE, 2), 0x0600);
    /* the ROM BAR is not implemented */
    conf_write(&m, 0, PCI_ROM_ADDRESS, 4, 0xffffffff);
    CHECK_EQ(conf_read(&m, 0, PCI_ROM_ADDRESS, 4), 0);
    machine_teardown(&m);
}

UNIT_TEST(bar_sizing_by_writing_ones)
{
    Machine m;
    TestDev td = { 0 };
    int devfn = PCI_MAKE_DEVFN(3, 0);

    machine_setup(&m, 256 << 20);
    test_device(&m, 3, &td);
    for (int bar = 0; bar < 4; bar++) {
        conf_write(&m, devfn, PCI_BASE_ADDRESS_0 + 4 * bar, 4, 0xffffffff);
    }
    CHECK_EQ(conf_read(&m, devfn, PCI_BASE_ADDRESS_0, 4), 0xffffffe1); /* 32 ports */
    CHECK_EQ(conf_read(&m, devfn, PCI_BASE_ADDRESS_1, 4), 0xfffff000); /* 4 KiB */
    CHECK_EQ(conf_read(&m, devfn, PCI_BASE_ADDRESS_2, 4), 0xffffc00c); /* 64-bit pf */
    CHECK_EQ(conf_read(&m, devfn, PCI_BASE_ADDRESS_3, 4), 0xffffffff);
    CHECK_EQ(conf_read(&m, devfn, PCI_BASE_ADDRESS_4, 4), 0); /* none */
    /* decode is off: nothing was mapped while sizing */
    CHECK_EQ(m.mmio_bus.nr_ranges, 0);
    machine_teardown(&m);
}

UNIT_TEST(bar_mapping_follows_the_registers)
{
    Machine m;
    TestDev td = { 0 };
    int devfn = PCI_MAKE_DEVFN(3, 0);
    const BusRange *r;

    machine_setup(&m, 256 << 20);
    test_device(&m, 3, &td);
    conf_write(&m, devfn, PCI_BASE_ADDRESS_1, 4, 0xe0000000);
    conf_write(&m, devfn, PCI_BASE_ADDRESS_0, 4, 0xc000);
    CHECK(bus_find(&m.mmio_bus, 0xe0000000) == NULL); /* decode off */
    conf_write(&m, devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    r = bus_find(&m.mmio_bus, 0xe0000010);
    CHECK(r && r->base == 0xe0000000 && r->len == 4096 && r->opaque == &td);
    CHECK_EQ(mmio_read(&m, 0xe0000010, 4), 0xabababab);
    CHECK_EQ(td.last_offset, 0x10);
    CHECK_EQ(io_read(&m, 0xc004, 2), 0xabab);
    CHECK_EQ(td.last_offset, 4);
    /* move it: the old range goes, the new one comes */
    conf_write(&m, devfn, PCI_BASE_ADDRESS_1, 4, 0xe0100000);
    CHECK(bus_find(&m.mmio_bus, 0xe0000000) == NULL);
    CHECK(bus_find(&m.mmio_bus, 0xe0100000) != NULL);
    /* a 64-bit BAR above 4 GiB */
    conf_write(&m, devfn, PCI_BASE_ADDRESS_2, 4, 0);
    conf_write(&m, devfn, PCI_BASE_ADDRESS_3, 4, 0x8);
    CHECK(bus_find(&m.mmio_bus, 0x800000000ULL) != NULL);
    /* memory decode off: both memory BARs leave, the port BAR stays */
    conf_write(&m, devfn, PCI_COMMAND, 2, PCI_COMMAND_IO);
    CHECK_EQ(m.mmio_bus.nr_ranges, 0);
    CHECK(bus_find(&m.io_bus, 0xc000) != NULL);
    machine_teardown(&m);
}

UNIT_TEST(bar_refused_over_ram_reserved_or_another_bar)
{
    Machine m;
    TestDev a = { 0 }, b = { 0 };
    int da = PCI_MAKE_DEVFN(3, 0), db = PCI_MAKE_DEVFN(4, 0);

    machine_setup(&m, 256 << 20);
    test_device(&m, 3, &a);
    test_device(&m, 4, &b);
    conf_write(&m, da, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    conf_write(&m, db, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    /* over guest RAM, the LAPIC page, the BIOS, below 1 MiB: not mapped */
    static const uint32_t bad[] = { 0x01000000, 0xfee00000, 0xfffff000, 0xa0000 };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        conf_write(&m, da, PCI_BASE_ADDRESS_1, 4, bad[i]);
        CHECK(bus_find(&m.mmio_bus, bad[i]) == NULL);
    }
    /* I/O over the config ports or legacy ISA: not mapped */
    conf_write(&m, da, PCI_BASE_ADDRESS_0, 4, 0xce0);
    CHECK(bus_find(&m.io_bus, 0xce0) == NULL);
    CHECK(bus_find(&m.io_bus, 0xcf8)->opaque != &a);
    /* two BARs at one address: the first keeps it... */
    conf_write(&m, da, PCI_BASE_ADDRESS_1, 4, 0xe0000000);
    conf_write(&m, db, PCI_BASE_ADDRESS_1, 4, 0xe0000000);
    CHECK(bus_find(&m.mmio_bus, 0xe0000000)->opaque == &a);
    mmio_write(&m, 0xe0000000, 4, 1);
    CHECK_EQ(a.accesses, 1);
    CHECK_EQ(b.accesses, 0);
    /* ...and the second decodes once the first moves away */
    conf_write(&m, da, PCI_BASE_ADDRESS_1, 4, 0xe0001000);
    CHECK(bus_find(&m.mmio_bus, 0xe0000000)->opaque == &b);
    CHECK(bus_find(&m.mmio_bus, 0xe0001000)->opaque == &a);
    machine_teardown(&m);
}

/* Program the MSI-X BAR of dev (BAR 1) at addr and switch MSI-X on. */
static uint8_t msix_device_setup(Machine *m, PciDevice *dev, uint64_t addr)
{
    uint8_t cap = dev->config[PCI_CAPABILITY_LIST];

    while (cap && dev->config[cap] != PCI_CAP_ID_MSIX) {
        cap = dev->config[cap + 1];
    }
    CHECK(cap != 0);
    conf_write(m, dev->devfn, PCI_BASE_ADDRESS_1, 4, addr);
    conf_write(m, dev->devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    conf_write(m, dev->devfn, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    return cap;
}

static PciDevice *msix_device(Machine *m, int vectors)
{
    PciDevice *dev = pci_device_new("msix-dev", 0x1234, 0x1111, 0xff0000, 0);
    GError *err = NULL;

    CHECK(msix_init(dev, vectors, 1, 0, &err));
    CHECK(pci_device_realize(m->pci, dev, PCI_MAKE_DEVFN(5, 0), &err));
    CHECK(err == NULL);
    return dev;
}

static uint64_t eventfd_count(int fd)
{
    uint64_t v = 0;

    return fd >= 0 && read(fd, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

UNIT_TEST(msix_capability_layout)
{
    Machine m;
    PciDevice *dev;
    uint8_t cap;

    machine_setup(&m, 256 << 20);
    dev = msix_device(&m, 3);
    cap = msix_device_setup(&m, dev, 0xe0000000);
    CHECK_EQ(conf_read(&m, dev->devfn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST,
             PCI_STATUS_CAP_LIST);
    CHECK_EQ(conf_read(&m, dev->devfn, cap + PCI_MSIX_FLAGS, 2),
             PCI_MSIX_FLAGS_ENABLE | 2);
    CHECK_EQ(conf_read(&m, dev->devfn, cap + PCI_MSIX_TABLE, 4), 1);   /* BAR 1, 0 */
    CHECK_EQ(conf_read(&m, dev->devfn, cap + PCI_MSIX_PBA, 4), 0x801); /* BAR 1 */
    /* the table size is read-only */
    conf_write(&m, dev->devfn, cap + PCI_MSIX_FLAGS, 2, 0x07ff);
    CHECK_EQ(conf_read(&m, dev->devfn, cap + PCI_MSIX_FLAGS, 2) & 0x7ff, 2);
    /* every vector starts masked */
    CHECK_EQ(mmio_read(&m, 0xe0000000 + 12, 4), 1);
    CHECK_EQ(mmio_read(&m, 0xe0000000 + 2 * 16 + 12, 4), 1);
    machine_teardown(&m);
}

UNIT_TEST(msix_table_writes_make_routes)
{
    Machine m;
    PciDevice *dev;
    uint64_t table = 0xe0000000;
    int fd;

    machine_setup(&m, 256 << 20);
    dev = msix_device(&m, 4);
    msix_device_setup(&m, dev, table);
    mmio_write(&m, table + 16, 4, 0xfee01000); /* vector 1 */
    mmio_write(&m, table + 16 + 4, 4, 0);
    mmio_write(&m, table + 16 + 8, 4, 0x4041);
    CHECK_EQ(kvm.adds, 0);                 /* still masked */
    mmio_write(&m, table + 16 + 12, 4, 0); /* unmask */
    CHECK_EQ(kvm.adds, 1);
    CHECK_EQ(kvm.routes[0].addr, 0xfee01000);
    CHECK_EQ(kvm.routes[0].data, 0x4041);
    fd = kvm.routes[0].irqfd;
    CHECK(fd >= 0);
    /* a changed message while unmasked updates the route */
    mmio_write(&m, table + 16 + 8, 4, 0x4042);
    CHECK_EQ(kvm.updates, 1);
    CHECK_EQ(kvm.routes[0].data, 0x4042);
    /* a notify writes the irqfd */
    CHECK(msix_notify(dev, 1));
    CHECK_EQ(eventfd_count(fd), 1);
    /* 8-byte table accesses work too */
    mmio_write(&m, table + 16, 8, 0xfee02000);
    CHECK_EQ(kvm.routes[0].addr, 0xfee02000);
    CHECK_EQ(mmio_read(&m, table + 16, 8), 0xfee02000);
    machine_teardown(&m);
    CHECK_EQ(kvm.dels, 1);
}

UNIT_TEST(msix_masked_vector_sets_pending_bit)
{
    Machine m;
    PciDevice *dev;
    uint64_t table = 0xe0000000, pba = table + 0x800;
    uint8_t cap;
    int fd;

    machine_setup(&m, 256 << 20);
    dev = msix_device(&m, 4);
    cap = msix_device_setup(&m, dev, table);
    mmio_write(&m, table + 0, 4, 0xfee00000);
    mmio_write(&m, table + 8, 4, 0x30);
    mmio_write(&m, table + 12, 4, 0);
    fd = kvm.routes[0].irqfd;
    mmio_write(&m, table + 12, 4, 1); /* mask vector 0 */
    CHECK(msix_notify(dev, 0));
    CHECK_EQ(eventfd_count(fd), 0);
    CHECK_EQ(mmio_read(&m, pba, 8), 1);
    mmio_write(&m, pba, 8, 0); /* the PBA is read-only */
    CHECK_EQ(mmio_read(&m, pba, 8), 1);
    mmio_write(&m, table + 12, 4, 0); /* unmask: delivered */
    CHECK_EQ(eventfd_count(fd), 1);
    CHECK_EQ(mmio_read(&m, pba, 8), 0);
    /* the function mask holds every vector */
    conf_write(&m, dev->devfn, cap + PCI_MSIX_FLAGS, 2,
               PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    CHECK(msix_notify(dev, 0));
    CHECK_EQ(eventfd_count(fd), 0);
    conf_write(&m, dev->devfn, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(eventfd_count(fd), 1);
    /* MSI-X off: the caller must use INTx */
    conf_write(&m, dev->devfn, cap + PCI_MSIX_FLAGS, 2, 0);
    CHECK(!msix_notify(dev, 0));
    CHECK(!msix_enabled(dev));
    machine_teardown(&m);
}

UNIT_TEST(msix_vector_user_fd_bound_while_unmasked)
{
    Machine m;
    PciDevice *dev;
    uint64_t table = 0xe0000000;
    uint8_t cap;
    int user = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), gsi;

    CHECK(user >= 0);
    machine_setup(&m, 256 << 20);
    dev = msix_device(&m, 4);
    cap = msix_device_setup(&m, dev, table);
    CHECK(!msix_vector_use_fd(dev, 4, user)); /* no such vector */
    /* masked: accepted, not bound yet */
    CHECK(msix_vector_use_fd(dev, 1, user));
    CHECK_EQ(fake_extra_gsi(&kvm, user), -1);
    mmio_write(&m, table + 16, 4, 0xfee01000);
    mmio_write(&m, table + 16 + 8, 4, 0x4041);
    mmio_write(&m, table + 16 + 12, 4, 0); /* unmask: bound to the route */
    gsi = fake_extra_gsi(&kvm, user);
    CHECK_EQ(gsi, FAKE_GSI_BASE);
    CHECK(kvm.routes[0].irqfd >= 0 && kvm.routes[0].irqfd != user);
    mmio_write(&m, table + 16 + 12, 4, 1); /* masked: unbound */
    CHECK_EQ(fake_extra_gsi(&kvm, user), -1);
    mmio_write(&m, table + 16 + 12, 4, 0);
    CHECK_EQ(fake_extra_gsi(&kvm, user), gsi);
    /* the function mask and MSI-X off unbind it too */
    conf_write(&m, dev->devfn, cap + PCI_MSIX_FLAGS, 2,
               PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    CHECK_EQ(fake_extra_gsi(&kvm, user), -1);
    conf_write(&m, dev->devfn, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    CHECK_EQ(fake_extra_gsi(&kvm, user), gsi);
    msix_vector_release_fd(dev, 1, user);
    CHECK_EQ(fake_extra_gsi(&kvm, user), -1);
    /* MSI-X off: refused (the caller relays by INTx) */
    conf_write(&m, dev->devfn, cap + PCI_MSIX_FLAGS, 2, 0);
    CHECK(!msix_vector_use_fd(dev, 1, user));
    machine_teardown(&m);
    close(user);
}

UNIT_TEST(msix_bad_address_and_vector_go_nowhere)
{
    Machine m;
    PciDevice *dev;
    uint64_t table = 0xe0000000;

    machine_setup(&m, 256 << 20);
    dev = msix_device(&m, 2);
    msix_device_setup(&m, dev, table);
    mmio_write(&m, table + 0, 4, 0x12345678); /* not the LAPIC window */
    mmio_write(&m, table + 12, 4, 0);
    CHECK_EQ(kvm.adds, 0);
    CHECK(msix_notify(dev, 0));
    CHECK(msix_notify(dev, 1000)); /* no such vector */
    CHECK_EQ(kvm.signals, 0);
    /* beyond the table and PBA the BAR reads zero and ignores writes */
    mmio_write(&m, table + 0x400, 4, 0xffffffff);
    CHECK_EQ(mmio_read(&m, table + 0x400, 4), 0);
    machine_teardown(&m);
}

UNIT_TEST(pirq_routing_drives_isa_lines)
{
    Machine m;
    TestDev a = { 0 }, b = { 0 };
    PciDevice *d3, *d7;

    machine_setup(&m, 256 << 20);
    d3 = test_device(&m, 3, &a); /* INTA of slot 3 -> PIRQC */
    d7 = test_device(&m, 7, &b); /* INTA of slot 7 -> PIRQC too */
    CHECK_EQ(pci_slot_pirq(2, 1), 1);
    CHECK_EQ(pci_slot_pirq(3, 1), 2);
    CHECK_EQ(pci_slot_pirq(3, 4), 1);
    pci_set_irq(d3, 1);
    CHECK_EQ(kvm.line_calls, 0); /* PIRQC disabled */
    CHECK_EQ(conf_read(&m, d3->devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT,
             PCI_STATUS_INTERRUPT);
    conf_write(&m, 8, 0x62, 1, 11); /* PIRQC -> IRQ 11 */
    CHECK_EQ(kvm.level[11], 1);
    pci_set_irq(d7, 1);
    pci_set_irq(d3, 0);
    CHECK_EQ(kvm.level[11], 1); /* shared: still d7 */
    pci_set_irq(d7, 0);
    CHECK_EQ(kvm.level[11], 0);
    /* rerouting an asserted line moves the level */
    pci_set_irq(d3, 1);
    conf_write(&m, 8, 0x62, 1, 5);
    CHECK_EQ(kvm.level[11], 0);
    CHECK_EQ(kvm.level[5], 1);
    /* reserved IRQs and the disable bit route nowhere */
    conf_write(&m, 8, 0x62, 1, 2);
    CHECK_EQ(kvm.level[5], 0);
    CHECK_EQ(kvm.level[2], 0);
    conf_write(&m, 8, 0x62, 1, 0x8b);
    CHECK_EQ(kvm.level[11], 0);
    /* the command register's INTx disable */
    conf_write(&m, 8, 0x62, 1, 11);
    CHECK_EQ(kvm.level[11], 1);
    conf_write(&m, d3->devfn, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
    CHECK_EQ(kvm.level[11], 0);
    conf_write(&m, d3->devfn, PCI_COMMAND, 2, 0);
    CHECK_EQ(kvm.level[11], 1);
    machine_teardown(&m);
    CHECK_EQ(kvm.level[11], 0);
}

UNIT_TEST(assign_resources_like_firmware)
{
    Machine m;
    TestDev a = { 0 }, b = { 0 };
    PciIntxRoute routes[8];
    PciDevice *d2, *d3;

    machine_setup(&m, 256 << 20);
    d2 = test_device(&m, 2, &a);
    d3 = test_device(&m, 3, &b);
    pci_pc_assign_resources(m.pci);
    for (int i = 0; i < 2; i++) {
        PciDevice *d = i ? d3 : d2;
        uint64_t mem1 = pci_bar_programmed_address(d, 1);
        uint64_t mem2 = pci_bar_programmed_address(d, 2);
        uint64_t io = pci_bar_programmed_address(d, 0);
        CHECK(mem1 >= PCI_DEFAULT_MMIO_START && mem1 + 4096 <= PCI_DEFAULT_MMIO_END);
        CHECK(mem2 >= PCI_DEFAULT_MMIO_START && mem2 % 16384 == 0);
        CHECK(io >= PCI_DEFAULT_IO_START && io % 32 == 0);
        CHECK(bus_find(&m.mmio_bus, mem1) && bus_find(&m.mmio_bus, mem2));
        CHECK(bus_find(&m.io_bus, io) != NULL);
        CHECK_EQ(pci_get_word(d->config + PCI_COMMAND) & 7, 7);
    }
    /* PIRQA-D = 10, 10, 11, 11 as on QEMU: slot 2 gets 10, slot 3 gets 11 */
    CHECK_EQ(conf_read(&m, 8, 0x60, 4), 0x0b0b0a0a);
    CHECK_EQ(d2->config[PCI_INTERRUPT_LINE], 10);
    CHECK_EQ(d3->config[PCI_INTERRUPT_LINE], 11);
    CHECK_EQ(pci_intx_routes(m.pci, routes, 8), 2);
    CHECK(routes[0].slot == 2 && routes[0].pin == 1 && routes[0].irq == 10);
    CHECK(routes[1].slot == 3 && routes[1].pirq == 2 && routes[1].irq == 11);
    /* reset puts everything back */
    pci_pc_reset(m.pci);
    CHECK_EQ(m.mmio_bus.nr_ranges, 0);
    CHECK_EQ(conf_read(&m, 8, 0x60, 4), 0x80808080);
    CHECK_EQ(conf_read(&m, d2->devfn, PCI_BASE_ADDRESS_1, 4), 0);
    machine_teardown(&m);
}

/* Whether [addr, addr + size) meets a memory BAR of d's. */
static bool meets_a_bar(PciDevice *d, uint64_t addr, uint64_t size)
{
    for (int i = 0; i < PCI_BAR_COUNT; i++) {
        uint64_t b = pci_bar_programmed_address(d, i);
        if (d->bars[i].kind >= PCI_BAR_MEM32 && addr < b + d->bars[i].size &&
            b < addr + size) {
            return true;
        }
    }
    return false;
}

/* A ROM image of len bytes: the 0x55 0xaa signature, then a count. */
static uint8_t *rom_image(uint64_t len)
{
    uint8_t *data = g_malloc(len);

    for (uint64_t i = 0; i < len; i++) {
        data[i] = i;
    }
    data[0] = 0x55;
    data[1] = 0xaa;
    return data;
}

UNIT_TEST(assign_resources_places_rom_bars_disabled)
{
    Machine m;
    TestDev a = { 0 }, b = { 0 };
    PciDevice *d2, *d3, *devs[2];
    uint64_t rom[2], sizes[2] = { 4096, 256 << 10 };
    GArray *devices;
    char *text;

    machine_setup(&m, 256 << 20);
    devs[0] = d2 = test_device(&m, 2, &a);
    devs[1] = d3 = test_device(&m, 3, &b);
    pci_device_set_rom_image(d2, rom_image(3000), 3000);     /* a 4 KiB BAR */
    pci_device_set_rom_image(d3, rom_image(200000), 200000); /* 256 KiB */
    pci_pc_assign_resources(m.pci);
    for (int i = 0; i < 2; i++) {
        uint32_t reg = conf_read(&m, devs[i]->devfn, PCI_ROM_ADDRESS, 4);
        rom[i] = reg & PCI_ROM_ADDRESS_MASK;
        CHECK_EQ(devs[i]->rom.size, sizes[i]);
        /* in the MMIO window, aligned to its size, left disabled */
        CHECK(rom[i] >= PCI_DEFAULT_MMIO_START &&
              rom[i] + sizes[i] <= PCI_DEFAULT_MMIO_END);
        CHECK_EQ(rom[i] % sizes[i], 0);
        CHECK_EQ(reg & PCI_ROM_ADDRESS_ENABLE, 0);
        CHECK(bus_find(&m.mmio_bus, rom[i]) == NULL);
        CHECK(!meets_a_bar(d2, rom[i], sizes[i]) && !meets_a_bar(d3, rom[i], sizes[i]));
    }
    CHECK(rom[0] + sizes[0] <= rom[1] || rom[1] + sizes[1] <= rom[0]);
    /* query-pci: QEMU's bar 6, no address while disabled */
    devices = machine_query_pci(&m);
    for (guint i = 0; i < devices->len; i++) {
        const PciDeviceInfo *info = &g_array_index(devices, PciDeviceInfo, i);
        if (info->slot == 3) {
            const PciRegionInfo *r = &info->regions[info->nr_regions - 1];
            CHECK_EQ(r->bar, 6);
            CHECK_EQ(r->size, 256 << 10);
            CHECK_EQ(r->address, PCI_BAR_UNMAPPED);
        }
    }
    text = hmp_format_pci(devices);
    g_array_unref(devices);
    CHECK(
        strstr(text, "      BAR6: 32 bit memory at 0xffffffffffffffff [0x00000ffe].\n"));
    g_free(text);
    /* the guest sets the enable bit: the image, all ones past it, no writes */
    conf_write(&m, d2->devfn, PCI_ROM_ADDRESS, 4, rom[0] | PCI_ROM_ADDRESS_ENABLE);
    CHECK_EQ(mmio_read(&m, rom[0], 2), 0xaa55);
    CHECK_EQ(mmio_read(&m, rom[0] + 2999, 1), 2999 & 0xff);
    CHECK_EQ(mmio_read(&m, rom[0] + 3000, 4), 0xffffffff);
    mmio_write(&m, rom[0] + 4, 1, 0);
    CHECK_EQ(mmio_read(&m, rom[0] + 4, 1), 4);
    devices = machine_query_pci(&m);
    CHECK_EQ(g_array_index(devices, PciDeviceInfo, 2).regions[3].address, rom[0]);
    g_array_unref(devices);
    /* reset clears them; the next -kernel boot places them again, the same */
    pci_pc_reset(m.pci);
    CHECK_EQ(conf_read(&m, d2->devfn, PCI_ROM_ADDRESS, 4), 0);
    pci_pc_assign_resources(m.pci);
    CHECK_EQ(conf_read(&m, d2->devfn, PCI_ROM_ADDRESS, 4), rom[0]);
    CHECK_EQ(conf_read(&m, d3->devfn, PCI_ROM_ADDRESS, 4), rom[1]);
    machine_teardown(&m);
}

UNIT_TEST(romfile_load_errors_are_qemus)
{
    GError *err = NULL;
    uint8_t *data = NULL;
    uint64_t len = 0;
    char *dir = g_dir_make_tmp("test-pci-XXXXXX", NULL);
    char *empty = g_build_filename(dir, "empty.rom", NULL);
    char *one = g_build_filename(dir, "one.rom", NULL);

    CHECK(g_file_set_contents(empty, "", 0, NULL));
    CHECK(g_file_set_contents(one, "\x55\xaa\x01", 3, NULL));
    CHECK(!pci_romfile_load("/nonexistent/x.rom", &data, &len, &err));
    CHECK_STR(err->message, "failed to find romfile \"/nonexistent/x.rom\"");
    g_clear_error(&err);
    CHECK(!pci_romfile_load(empty, &data, &len, &err));
    CHECK(g_str_has_prefix(err->message, "romfile \"") &&
          g_str_has_suffix(err->message, "empty.rom\" is empty"));
    g_clear_error(&err);
    CHECK(pci_romfile_load(one, &data, &len, &err));
    CHECK(len == 3 && data[0] == 0x55 && data[2] == 1);
    g_free(data);
    /* a bare name: also where Debian's QEMU keeps its ROMs */
    if (g_file_test("/usr/lib/ipxe/qemu/efi-virtio.rom", G_FILE_TEST_EXISTS)) {
        CHECK(pci_romfile_load("efi-virtio.rom", &data, &len, &err));
        CHECK(len > 2 && data[0] == 0x55 && data[1] == 0xaa);
        g_free(data);
    }
    unlink(empty);
    unlink(one);
    rmdir(dir);
    g_free(empty);
    g_free(one);
    g_free(dir);
}

UNIT_TEST(slot_allocation_and_clashes)
{
    Machine m;
    GError *err = NULL;
    PciDevice *a = pci_device_new("a", 1, 1, 0, 0), *b = pci_device_new("b", 1, 2, 0, 0);
    PciDevice *c = pci_device_new("c", 1, 3, 0, 0);
    int devfn = -1;

    machine_setup(&m, 256 << 20);
    CHECK(pci_device_realize(m.pci, a, PCI_DEVFN_AUTO, &err));
    CHECK_EQ(a->devfn, PCI_MAKE_DEVFN(2, 0));
    CHECK(!pci_device_realize(m.pci, b, a->devfn, &err));
    CHECK(err && strstr(err->message, "slot 2 function 0 not available"));
    g_clear_error(&err);
    pci_device_free(b);
    CHECK(!pci_device_realize(m.pci, c, PCI_MAKE_DEVFN(4, 1), &err));
    g_clear_error(&err);
    pci_device_free(c);
    CHECK(pci_parse_devfn("0x1f", &devfn, NULL) && devfn == PCI_MAKE_DEVFN(31, 0));
    CHECK(pci_parse_devfn("03.0", &devfn, NULL) && devfn == PCI_MAKE_DEVFN(3, 0));
    CHECK(!pci_parse_devfn("20", &devfn, NULL));
    CHECK(!pci_parse_devfn("3.8", &devfn, NULL));
    CHECK(!pci_parse_devfn("3.", &devfn, NULL));
    CHECK(!pci_parse_devfn("", &devfn, NULL));
    CHECK(!pci_parse_devfn("-1", &devfn, NULL));
    machine_teardown(&m);
}

static uint8_t pam_seen[7];
static int pam_calls;

static void pam_changed(void *opaque, const uint8_t pam[7])
{
    memcpy(pam_seen, pam, 7);
    pam_calls++;
}

UNIT_TEST(pam_registers_are_plain_registers)
{
    Machine m;

    machine_setup(&m, 256 << 20);
    pam_calls = 0;
    pci_set_pam_notifier(m.pci, pam_changed, NULL);
    for (int i = 1; i < 7; i++) {
        conf_write(&m, 0, 0x59 + i, 1, 0xff); /* as SeaBIOS does, wider */
    }
    conf_write(&m, 0, 0x59, 1, 0xff);
    CHECK_EQ(conf_read(&m, 0, 0x59, 1), 0x30);
    CHECK_EQ(conf_read(&m, 0, 0x5c, 4), 0x33333333);
    CHECK_EQ(conf_read(&m, 0, 0x5a, 2), 0x3333);
    CHECK_EQ(pam_calls, 7);
    CHECK_EQ(pam_seen[0], 0x30);
    CHECK_EQ(pam_seen[6], 0x33);
    pci_pc_reset(m.pci);
    CHECK_EQ(conf_read(&m, 0, 0x59, 1), 0);
    CHECK_EQ(pam_seen[3], 0);
    machine_teardown(&m);
}

UNIT_TEST(reset_control_register_resets)
{
    Machine m;

    machine_setup(&m, 256 << 20);
    io_write(&m, 0xcf9, 1, 0x02);
    CHECK_EQ(m.reset_pending, 0);
    CHECK_EQ(io_read(&m, 0xcf9, 1), 0x02);
    io_write(&m, 0xcf9, 1, 0x06);
    CHECK_EQ(m.reset_pending, SHUTDOWN_CAUSE_GUEST_RESET + 1);
    machine_teardown(&m);
}

UNIT_TEST(host_state_round_trip_and_refusals)
{
    Machine m;
    DeviceStateEntry *e;
    GByteArray *blob = g_byte_array_new();
    GError *err = NULL;

    machine_setup(&m, 256 << 20);
    e = device_state_find(&m.device_states, "pci-host");
    CHECK(e != NULL);
    conf_write(&m, 8, 0x60, 4, 0x0b0a0b0a);
    conf_write(&m, 0, 0x5a, 1, 0x11);
    CHECK(e->ops->save(e->opaque, blob, &err));
    conf_write(&m, 8, 0x60, 4, 0x80808080);
    conf_write(&m, 0, 0x5a, 1, 0);
    /* truncated, or with a changed read-only byte: refused, nothing changes */
    CHECK(!e->ops->load(e->opaque, blob->data, blob->len - 1, e->version, &err));
    g_clear_error(&err);
    blob->data[4 + 1 + 4 + PCI_DEVICE_ID] ^= 1;
    CHECK(!e->ops->load(e->opaque, blob->data, blob->len, e->version, &err));
    CHECK(err && strstr(err->message, "not the same device"));
    g_clear_error(&err);
    CHECK_EQ(conf_read(&m, 8, 0x60, 4), 0x80808080);
    blob->data[4 + 1 + 4 + PCI_DEVICE_ID] ^= 1;
    CHECK(e->ops->load(e->opaque, blob->data, blob->len, e->version, &err));
    CHECK(err == NULL);
    CHECK_EQ(conf_read(&m, 8, 0x60, 4), 0x0b0a0b0a);
    CHECK_EQ(conf_read(&m, 0, 0x5a, 1), 0x11);
    g_byte_array_free(blob, TRUE);
    machine_teardown(&m);
}

UNIT_TEST(query_pci_has_qemus_shape)
{
    Machine m;
    TestDev td = { 0 };
    QmpContext ctx = { 0 };
    PciDevice *dev;
    json_t *ret, *devs, *d, *regions;
    GArray *devices;
    char *text;

    machine_setup(&m, 256 << 20);
    dev = test_device(&m, 3, &td);
    dev->qdev_id = g_strdup("disk1");
    conf_write(&m, dev->devfn, PCI_BASE_ADDRESS_1, 4, 0xfebf1000);
    conf_write(&m, dev->devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    conf_write(&m, dev->devfn, PCI_INTERRUPT_LINE, 1, 11);
    ctx.machine = &m;
    ret = qmp_query_pci(&ctx, NULL, NULL);
    CHECK(json_is_array(ret) && json_array_size(ret) == 1);
    devs = json_object_get(json_array_get(ret, 0), "devices");
    CHECK_EQ(json_array_size(devs), 3);
    d = json_array_get(devs, 0);
    CHECK_STR(
        json_string_value(json_object_get(json_object_get(d, "class_info"), "desc")),
        "Host bridge");
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(d, "id"), "device")),
             0x1237);
    CHECK(json_object_get(d, "irq") == NULL); /* no pin, no irq */
    d = json_array_get(devs, 2);
    CHECK_STR(json_string_value(json_object_get(d, "qdev_id")), "disk1");
    CHECK_EQ(json_integer_value(json_object_get(d, "slot")), 3);
    CHECK_EQ(json_integer_value(json_object_get(d, "irq")), 11);
    CHECK_EQ(json_integer_value(json_object_get(d, "irq_pin")), 1);
    regions = json_object_get(d, "regions");
    CHECK_EQ(json_array_size(regions), 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(regions, 0), "type")),
              "io");
    CHECK_EQ(json_integer_value(json_object_get(json_array_get(regions, 0), "address")),
             -1);
    CHECK_EQ(json_integer_value(json_object_get(json_array_get(regions, 1), "address")),
             0xfebf1000);
    CHECK(json_is_true(json_object_get(json_array_get(regions, 2), "mem_type_64")));
    devices = machine_query_pci(&m);
    text = hmp_format_pci(devices);
    g_array_unref(devices);
    CHECK(strstr(text, "  Bus  0, device   0, function 0:\n    Host bridge: PCI device "
                       "8086:1237\n      PCI subsystem 1af4:1100\n      id \"\"\n"));
    CHECK(strstr(text, "      IRQ 11, pin A\n"));
    CHECK(strstr(text, "      BAR1: 32 bit memory at 0xfebf1000 [0xfebf1fff].\n"));
    /* an unnamed class is printed in decimal, as QEMU does */
    CHECK(strstr(text, "    Class 65280: PCI device 1234:5678\n"));
    g_free(text);
    json_decref(ret);
    machine_teardown(&m);
}

static void count_master_off(void *opaque, PciDevice *dev)
{
    PciDevice **seen = opaque;

    seen[0] = dev;
    seen[1] = (PciDevice *)((uintptr_t)seen[1] + 1);
}

/* Failover's cue that a guest driver let go of its primary (failover.c). */
UNIT_TEST(master_off_heard_once_a_driver_clears_bus_master)
{
    Machine m;
    TestDev td = { 0 };
    int devfn = PCI_MAKE_DEVFN(3, 0);
    PciDevice *seen[2] = { NULL, NULL };
    PciDevice *dev;

    machine_setup(&m, 256 << 20);
    dev = test_device(&m, 3, &td);
    pci_bus_set_master_off(m.pci, count_master_off, seen);
    /* never enabled: a write without the bit is no news */
    conf_write(&m, devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    CHECK_EQ((uintptr_t)seen[1], 0);
    conf_write(&m, devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    conf_write(&m, devfn, PCI_STATUS, 2, 0xffff);    /* beside it: nothing */
    conf_write(&m, devfn, PCI_COMMAND + 1, 1, 0x04); /* INTx disable byte alone */
    CHECK_EQ((uintptr_t)seen[1], 0);
    conf_write(&m, devfn, PCI_COMMAND, 4, PCI_COMMAND_MEMORY); /* dword, bit clear */
    CHECK(seen[0] == dev);
    CHECK_EQ((uintptr_t)seen[1], 1);
    conf_write(&m, devfn, PCI_COMMAND, 2, 0); /* cleared again: once per enable */
    CHECK_EQ((uintptr_t)seen[1], 1);
    pci_bus_set_master_off(m.pci, NULL, NULL);
    conf_write(&m, devfn, PCI_COMMAND, 1, PCI_COMMAND_MASTER);
    conf_write(&m, devfn, PCI_COMMAND, 1, 0);
    CHECK_EQ((uintptr_t)seen[1], 1);
    machine_teardown(&m);
}
