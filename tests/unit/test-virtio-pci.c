/*
 * The whole modern virtio PCI transport with virtio-blk behind it, driven
 * through the MMIO bus the way a guest driver would, with the device's own
 * I/O thread and workers doing the I/O against a memory disk; and
 * -device virtio-blk-pci,... through the PCI device registry.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_pci.h>

#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "hw/virtio.h"
#include "hw/virtio/virtio-blk.h"
#include "unit.h"
#include "util/subopt.h"
#include "virtio-fakes.h"

UNIT_MAIN()

typedef struct FakeKvm {
    pthread_mutex_t lock;
    int level[24];
    struct {
        bool used;
        uint32_t data;
        int fd;
    } routes[16];
} FakeKvm;

static FakeKvm kvm;

static void fake_set_irq(void *opaque, int gsi, int level)
{
    pthread_mutex_lock(&kvm.lock);
    kvm.level[gsi] = level;
    pthread_mutex_unlock(&kvm.lock);
}

static int fake_route_add(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    for (int i = 0; i < 16; i++) {
        if (!kvm.routes[i].used) {
            kvm.routes[i].used = true;
            kvm.routes[i].data = data;
            kvm.routes[i].fd = -1;
            return 100 + i;
        }
    }
    return -1;
}

static bool fake_route_update(void *opaque, int gsi, uint64_t addr, uint32_t data,
                              GError **errp)
{
    kvm.routes[gsi - 100].data = data;
    return true;
}

static void fake_route_del(void *opaque, int gsi)
{
    kvm.routes[gsi - 100].used = false;
}

static bool fake_irqfd(void *opaque, int fd, int gsi, bool assign, GError **errp)
{
    kvm.routes[gsi - 100].fd = assign ? fd : -1;
    return true;
}

static bool fake_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len, bool is_pio,
                           bool assign, GError **errp)
{
    return false; /* no ioeventfd: kicks come through the MMIO handler */
}

static bool fake_signal_msi(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    return true;
}

static const PciKvmOps fake_ops = {
    fake_set_irq, fake_route_add, fake_route_update, fake_route_del,
    fake_irqfd,   fake_ioeventfd, fake_signal_msi,
};

static int line_level(int irq)
{
    int v;

    pthread_mutex_lock(&kvm.lock);
    v = kvm.level[irq];
    pthread_mutex_unlock(&kvm.lock);
    return v;
}

static void mmio_write(uint64_t addr, unsigned len, uint64_t val)
{
    uint8_t d[8];

    for (unsigned i = 0; i < len; i++) {
        d[i] = val >> (8 * i);
    }
    bus_dispatch(&m.mmio_bus, addr, d, len, true);
}

static uint64_t mmio_read(uint64_t addr, unsigned len)
{
    uint8_t d[8] = { 0 };
    uint64_t v = 0;

    bus_dispatch(&m.mmio_bus, addr, d, len, false);
    for (unsigned i = 0; i < len; i++) {
        v |= (uint64_t)d[i] << (8 * i);
    }
    return v;
}

typedef struct Driver {
    PciDevice *pci;
    uint64_t common, isr, device, notify;
    uint32_t notify_mult;
    uint8_t msix_cap, cfg_cap;
} Driver;

/* Find the regions from the capabilities, as a driver must. */
static void driver_probe(Driver *d)
{
    const uint8_t *cfg = d->pci->config;

    for (uint8_t cap = cfg[PCI_CAPABILITY_LIST]; cap; cap = cfg[cap + 1]) {
        uint64_t addr = pci_bar_programmed_address(d->pci, cfg[cap + 4]) +
                        pci_get_long(cfg + cap + 8);
        if (cfg[cap] == PCI_CAP_ID_MSIX) {
            d->msix_cap = cap;
            continue;
        }
        switch (cfg[cap + 3]) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            d->common = addr;
            break;
        case VIRTIO_PCI_CAP_ISR_CFG:
            d->isr = addr;
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            d->device = addr;
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            d->notify = addr;
            d->notify_mult = pci_get_long(cfg + cap + 16);
            break;
        case VIRTIO_PCI_CAP_PCI_CFG:
            d->cfg_cap = cap;
            break;
        }
    }
}

static void dev_setup_queues(Driver *d, bool read_only, unsigned num_queues)
{
    VirtioBlkOptions o = { .bs = FAKE_BS,
                           .id = "vd0",
                           .serial = "S1",
                           .devfn = PCI_DEVFN_AUTO,
                           .backend = &mem_disk,
                           .num_queues = num_queues };
    GError *err = NULL;

    machine_setup();
    disk_setup(read_only);
    memset(&kvm, 0, sizeof(kvm));
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&kvm.lock, NULL);
    avail_idx = 0;
    CHECK(pci_pc_init_with_ops(&m, &fake_ops, &kvm, &err));
    d->pci = virtio_blk_pci_create_opts(m.pci, &o, &err);
    CHECK(d->pci && !err);
    pci_pc_assign_resources(m.pci);
    driver_probe(d);
}

static void dev_setup(Driver *d, bool read_only)
{
    dev_setup_queues(d, read_only, 1);
}

#define STATUS_ALL (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)

static uint64_t common_read(Driver *d, unsigned off, unsigned len)
{
    return mmio_read(d->common + off, len);
}

static void common_write(Driver *d, unsigned off, unsigned len, uint64_t v)
{
    mmio_write(d->common + off, len, v);
}

/* Negotiate features; returns the status read back after FEATURES_OK. */
static uint8_t driver_negotiate(Driver *d, uint64_t features)
{
    common_write(d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    common_write(d, VIRTIO_PCI_COMMON_STATUS, 1, STATUS_ALL);
    common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    common_write(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
    common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    common_write(d, VIRTIO_PCI_COMMON_GF, 4, features >> 32);
    common_write(d, VIRTIO_PCI_COMMON_STATUS, 1,
                 STATUS_ALL | VIRTIO_CONFIG_S_FEATURES_OK);
    return common_read(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

static void driver_msix_on(Driver *d)
{
    uint64_t table = pci_bar_programmed_address(d->pci, 1);

    pci_config_write(d->pci, d->msix_cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    for (int v = 0; v < 2; v++) {
        mmio_write(table + 16 * v, 4, 0xfee00000);
        mmio_write(table + 16 * v + 8, 4, 0x40 + v);
        mmio_write(table + 16 * v + 12, 4, 0);
    }
}

/* The whole start-up; queue q on the test rings. */
static void driver_start_queue(Driver *d, uint64_t features, bool msix, unsigned q)
{
    memset(m.ram + DESC_GPA, 0, USED_GPA + 0x1000 - DESC_GPA);
    avail_idx = 0;
    CHECK(driver_negotiate(d, features) & VIRTIO_CONFIG_S_FEATURES_OK);
    if (msix) {
        driver_msix_on(d);
    }
    common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, msix ? 0 : VIRTIO_NO_VECTOR);
    common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
    CHECK_EQ(common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
    common_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, DESC_GPA);
    common_write(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
    common_write(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, AVAIL_GPA); /* one 8-byte write */
    common_write(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, USED_GPA);
    common_write(d, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
    common_write(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, msix ? 1 : VIRTIO_NO_VECTOR);
    common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    CHECK_EQ(common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    common_write(d, VIRTIO_PCI_COMMON_STATUS, 1,
                 STATUS_ALL | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

static void driver_start(Driver *d, uint64_t features, bool msix)
{
    driver_start_queue(d, features, msix, 0);
}

static void driver_kick(Driver *d)
{
    unsigned off = common_read(d, VIRTIO_PCI_COMMON_Q_NOFF, 2) * d->notify_mult;

    mmio_write(d->notify + off, 2, 0);
}

static bool wait_for(bool (*cond)(Driver *d, uint64_t arg), Driver *d, uint64_t arg)
{
    for (int i = 0; i < 5000; i++) {
        if (cond(d, arg)) {
            return true;
        }
        g_usleep(1000);
    }
    return false;
}

static bool used_reached(Driver *d, uint64_t n)
{
    return used_idx() == (uint16_t)n;
}

static bool line_high(Driver *d, uint64_t irq)
{
    return line_level(irq) == 1;
}

static bool fd_readable(Driver *d, uint64_t fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, 0) == 1;
}

static bool status_has(Driver *d, uint64_t bits)
{
    return (common_read(d, VIRTIO_PCI_COMMON_STATUS, 1) & bits) == bits;
}

/* One read of sectors at sector into DATA_GPA + 0x1000 * slot, head = 3*slot. */
static void queue_read(unsigned slot, uint64_t sector, uint32_t sectors)
{
    uint64_t hdr = HDR_GPA + 32 * slot;

    put32(hdr, VIRTIO_BLK_T_IN);
    put64(hdr + 8, sector);
    desc_set(DESC_GPA, 3 * slot, hdr, 16, NEXT, 3 * slot + 1);
    desc_set(DESC_GPA, 3 * slot + 1, DATA_GPA + 0x1000 * slot, 512 * sectors,
             NEXT | WRITE, 3 * slot + 2);
    desc_set(DESC_GPA, 3 * slot + 2, STATUS_GPA + slot, 1, WRITE, 0);
    avail_add(3 * slot);
}

static const uint64_t blk_features = (1ULL << VIRTIO_F_VERSION_1) | F_INDIRECT | F_EVENT;

UNIT_TEST(pci_device_identity_and_config)
{
    Driver d;
    uint64_t f;

    dev_setup(&d, false);
    CHECK_EQ(pci_get_word(d.pci->config + PCI_DEVICE_ID), 0x1042);
    CHECK_EQ(pci_get_word(d.pci->config + PCI_CLASS_DEVICE), 0x0100);
    CHECK_EQ(d.pci->config[PCI_REVISION_ID], 1);
    CHECK_EQ(d.pci->devfn, PCI_MAKE_DEVFN(2, 0));
    CHECK(d.pci->bars[4].kind == PCI_BAR_MEM64 && d.pci->bars[4].prefetch);
    CHECK(d.common && d.isr && d.device && d.notify && d.msix_cap && d.cfg_cap);
    CHECK_EQ(d.notify_mult, 4);
    common_write(&d, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    f = common_read(&d, VIRTIO_PCI_COMMON_DF, 4);
    common_write(&d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    f |= common_read(&d, VIRTIO_PCI_COMMON_DF, 4) << 32;
    CHECK(f & (1ULL << VIRTIO_F_VERSION_1));
    CHECK(f & F_INDIRECT && f & F_EVENT);
    CHECK(f & (1ULL << VIRTIO_BLK_F_FLUSH) && f & (1ULL << VIRTIO_BLK_F_SEG_MAX));
    CHECK(f & (1ULL << VIRTIO_BLK_F_DISCARD) && !(f & (1ULL << VIRTIO_BLK_F_RO)));
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
    /* capacity as two 32-bit reads, seg_max, blk_size */
    CHECK_EQ(mmio_read(d.device, 4) | mmio_read(d.device + 4, 4) << 32, DISK_SECTORS);
    CHECK_EQ(mmio_read(d.device + 12, 4), 254);
    CHECK_EQ(mmio_read(d.device + 20, 4), 512);
    /* the PCI_CFG window reads the same through config space */
    pci_config_write(d.pci, d.cfg_cap + 4, 1, 4);
    pci_config_write(d.pci, d.cfg_cap + 8, 4, 0x2000);
    pci_config_write(d.pci, d.cfg_cap + 12, 4, 4);
    CHECK_EQ(pci_config_read(d.pci, d.cfg_cap + 16, 4), DISK_SECTORS);
    pci_config_write(d.pci, d.cfg_cap + 12, 4, 3); /* bad length */
    CHECK_EQ(pci_config_read(d.pci, d.cfg_cap + 16, 4), DISK_SECTORS);
    machine_teardown();
}

UNIT_TEST(pci_feature_negotiation_refuses_legacy_and_unknown)
{
    Driver d;

    dev_setup(&d, true);
    CHECK(!(driver_negotiate(&d, F_INDIRECT) & VIRTIO_CONFIG_S_FEATURES_OK));
    CHECK(!(driver_negotiate(&d, blk_features | (1ULL << VIRTIO_BLK_F_DISCARD)) &
            VIRTIO_CONFIG_S_FEATURES_OK)); /* not offered: RO */
    CHECK(driver_negotiate(&d, blk_features | (1ULL << VIRTIO_BLK_F_RO)) &
          VIRTIO_CONFIG_S_FEATURES_OK);
    /* DRIVER_OK without FEATURES_OK does not stick */
    common_write(&d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    common_write(&d, VIRTIO_PCI_COMMON_STATUS, 1, STATUS_ALL | VIRTIO_CONFIG_S_DRIVER_OK);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_STATUS, 1), STATUS_ALL);
    /* a vector past the table reads back as NO_VECTOR */
    common_write(&d, VIRTIO_PCI_COMMON_MSIX, 2, 7);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_NO_VECTOR);
    /* no such queue: size 0 */
    common_write(&d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 5);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    machine_teardown();
}

UNIT_TEST(pci_read_with_msix_through_the_io_thread)
{
    Driver d;
    int fd = -1;
    uint64_t count = 0;

    dev_setup(&d, false);
    driver_start(&d, blk_features, true);
    queue_read(0, 7, 2);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 1));
    CHECK_EQ(m.ram[STATUS_GPA], VIRTIO_BLK_S_OK);
    CHECK_EQ(used_len(0), 1025);
    CHECK(memcmp(m.ram + DATA_GPA, disk.data + 7 * 512, 1024) == 0);
    for (int i = 0; i < 16; i++) {
        if (kvm.routes[i].used && kvm.routes[i].data == 0x41) {
            fd = kvm.routes[i].fd;
        }
    }
    CHECK(fd >= 0 && wait_for(fd_readable, &d, fd)); /* raised after the push */
    CHECK(read(fd, &count, 8) == 8 && count == 1);
    CHECK_EQ(line_level(10), 0); /* no INTx with MSI-X */
    machine_teardown();
}

UNIT_TEST(pci_many_requests_at_once_use_the_pool)
{
    Driver d;

    dev_setup(&d, false);
    driver_start(&d, blk_features, true);
    for (unsigned s = 0; s < 5; s++) {
        queue_read(s, 100 + 3 * s, 3);
    }
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 5));
    for (unsigned s = 0; s < 5; s++) {
        CHECK_EQ(m.ram[STATUS_GPA + s], VIRTIO_BLK_S_OK);
        CHECK(memcmp(m.ram + DATA_GPA + 0x1000 * s, disk.data + (100 + 3 * s) * 512,
                     3 * 512) == 0);
    }
    machine_teardown();
}

UNIT_TEST(pci_second_queue_with_mq)
{
    Driver d;
    uint64_t mq = 1ULL << VIRTIO_BLK_F_MQ;

    dev_setup_queues(&d, false, 2);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
    CHECK_EQ(mmio_read(d.device + 34, 2), 2); /* config num_queues */
    CHECK_EQ(msix_nr_vectors(d.pci), 3);
    driver_start_queue(&d, blk_features | mq, true, 1);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
    queue_read(0, 9, 1);
    driver_kick(&d); /* queue 1's address */
    CHECK(wait_for(used_reached, &d, 1));
    CHECK(memcmp(m.ram + DATA_GPA, disk.data + 9 * 512, 512) == 0);
    /* queue 0 was never enabled: a kick there does nothing */
    mmio_write(d.notify, 2, 0);
    common_write(&d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    machine_teardown();
}

UNIT_TEST(pci_intx_and_isr_without_msix)
{
    Driver d;

    dev_setup(&d, false);
    CHECK_EQ(d.pci->config[PCI_INTERRUPT_LINE], 10); /* slot 2: PIRQB */
    driver_start(&d, blk_features, false);
    queue_read(0, 1, 1);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 1));
    CHECK(wait_for(line_high, &d, 10));
    CHECK_EQ(mmio_read(d.isr, 1), 1); /* queue bit; read clears */
    CHECK_EQ(line_level(10), 0);
    CHECK_EQ(mmio_read(d.isr, 1), 0);
    machine_teardown();
}

UNIT_TEST(pci_hostile_ring_needs_reset_then_recovers)
{
    Driver d;

    dev_setup(&d, false);
    driver_start(&d, blk_features, false);
    desc_set(DESC_GPA, 0, HDR_GPA, 16, NEXT, 1);
    desc_set(DESC_GPA, 1, HDR_GPA, 16, NEXT, 0); /* a loop */
    avail_add(0);
    driver_kick(&d);
    CHECK(wait_for(status_has, &d, VIRTIO_CONFIG_S_NEEDS_RESET));
    CHECK(wait_for(line_high, &d, 10));
    CHECK_EQ(mmio_read(d.isr, 1), VIRTIO_PCI_ISR_CONFIG);
    CHECK_EQ(used_idx(), 0);
    /* reset: status 0, then a normal start works */
    common_write(&d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    driver_start(&d, blk_features, false);
    queue_read(0, 2, 1);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 1));
    CHECK_EQ(m.ram[STATUS_GPA], VIRTIO_BLK_S_OK);
    /* rings outside RAM at enable: needs reset too, nothing else happens */
    common_write(&d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    driver_negotiate(&d, blk_features);
    common_write(&d, VIRTIO_PCI_COMMON_Q_DESCLO, 8, 0x7ffffff000ULL);
    common_write(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    CHECK_EQ(common_read(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    CHECK(status_has(&d, VIRTIO_CONFIG_S_NEEDS_RESET));
    machine_teardown();
}

UNIT_TEST(pci_state_save_load_round_trip)
{
    Driver d;
    DeviceStateEntry *e;
    GByteArray *blob = g_byte_array_new();
    GError *err = NULL;

    dev_setup(&d, false);
    e = device_state_find(&m.device_states, "virtio-blk@00:02.0");
    CHECK(e != NULL);
    driver_start(&d, blk_features, true);
    queue_read(0, 4, 1);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 1));
    CHECK(e->ops->save(e->opaque, blob, &err));
    /* refusals leave the device as it was */
    CHECK(!e->ops->load(e->opaque, blob->data, blob->len - 3, e->version, &err));
    g_clear_error(&err);
    CHECK(!e->ops->load(e->opaque, blob->data, blob->len, e->version + 1, &err));
    g_clear_error(&err);
    CHECK(e->ops->load(e->opaque, blob->data, blob->len, e->version, &err));
    CHECK(err == NULL);
    CHECK(status_has(&d, VIRTIO_CONFIG_S_DRIVER_OK));
    pci_pc_resume(m.pci); /* the VM runs again */
    queue_read(1, 5, 1);
    driver_kick(&d);
    CHECK(wait_for(used_reached, &d, 2));
    CHECK(memcmp(m.ram + DATA_GPA + 0x1000, disk.data + 5 * 512, 512) == 0);
    g_byte_array_free(blob, TRUE);
    machine_teardown();
}

/* ---- -device virtio-blk-pci,... through the registry ---- */

static BlockDriverState *lookup_drive(void *opaque, const char *id, GError **errp)
{
    return strcmp(id, "d0") == 0 ? FAKE_BS : NULL;
}

/* Create from a -device string; NULL with the error message in *msg. */
static PciDevice *device_add(const char *spec, char **msg)
{
    SubOpts *opts = subopts_parse(spec, NULL, NULL);
    GError *err = NULL;
    PciDevice *dev = pci_device_create(m.pci, "virtio-blk-pci", opts, lookup_drive, NULL,
                                       &err);

    *msg = err ? g_strdup(err->message) : NULL;
    g_clear_error(&err);
    subopts_free(opts);
    return dev;
}

UNIT_TEST(device_registry_options_and_errors)
{
    static const struct {
        const char *spec, *error;
    } bad[] = {
        { "id=x", "drive property not set" },
        { "drive=nope", "Property 'virtio-blk-pci.drive' can't find value 'nope'" },
        { "drive=d0,addr=0x20", "Property 'addr' doesn't take value '0x20'" },
        { "drive=d0,foo=1", "Property 'virtio-blk-pci.foo' not found" },
        { "drive=d0,disable-legacy=off", "only the modern" },
        { "drive=d0,num-queues=99", "num-queues" },
        { "drive=d0,queue-size=100", "queue-size" },
        { "drive=d0,bus=pci.1", "Bus 'pci.1' not found" },
        { "drive=d0,id=vb1", "Duplicate device ID 'vb1'" },
        { "drive=d0,addr=5", "slot 5 function 0 not available" },
    };
    GError *err = NULL;
    PciDevice *dev;
    char *msg;

    machine_setup();
    CHECK(pci_pc_init_with_ops(&m, &fake_ops, &kvm, &err));
    dev = device_add("drive=d0,id=vb1,addr=05.0,bootindex=2,serial=abc,"
                     "disable-legacy=on,num-queues=2,queue-size=128",
                     &msg);
    CHECK(dev && !msg);
    CHECK_STR(dev->qdev_id, "vb1");
    CHECK_EQ(dev->devfn, PCI_MAKE_DEVFN(5, 0));
    CHECK_EQ(dev->bootindex, 2);
    CHECK(pci_find_device_by_id(m.pci, "vb1") == dev);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        CHECK(device_add(bad[i].spec, &msg) == NULL);
        if (!msg || !strstr(msg, bad[i].error)) {
            fprintf(stderr, "%s: got '%s'\n", bad[i].spec, msg ? msg : "(none)");
            unit_failed = 1;
        }
        g_free(msg);
    }
    CHECK(!pci_driver_exists("e1000"));
    CHECK(pci_driver_exists("virtio-blk-pci"));
    msg = pci_driver_list();
    CHECK(strstr(msg, "name \"virtio-blk-pci\", bus PCI"));
    g_free(msg);
    machine_teardown();
}
