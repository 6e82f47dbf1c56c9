/*
 * The PCI part of the pc machine for fuzz targets, without KVM: the host
 * bridge, the PIIX3 and a virtio-blk disk (00:02.0, MSI-X) on a backend
 * that is all zeros and takes no writes.  KVM's side is a fake that only
 * counts: the MSI routes alive, the MSIs signalled, the INTx levels.
 * Single-threaded use, on the fuzz target's thread.
 */
#ifndef TESTS_FUZZ_FUZZ_PC_H
#define TESTS_FUZZ_FUZZ_PC_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "hw/virtio.h"

#define FUZZ_DISK_SIZE (1ULL << 20)

typedef struct FuzzKvm {
    int routes;        /* added and not deleted */
    unsigned signals;  /* MSIs sent without a route */
    uint8_t level[24]; /* INTx line levels (IOAPIC pins) */
} FuzzKvm;

static FuzzKvm fuzz_kvm;

static void fake_set_irq(void *opaque, int gsi, int level)
{
    if (gsi >= 0 && gsi < 24) {
        fuzz_kvm.level[gsi] = level;
    }
}

static int fake_route_add(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    return 24 + fuzz_kvm.routes++;
}

static bool fake_route_update(void *opaque, int gsi, uint64_t addr, uint32_t data,
                              GError **errp)
{
    return true;
}

static void fake_route_del(void *opaque, int gsi)
{
    fuzz_kvm.routes--;
}

static bool fake_irqfd(void *opaque, int fd, int gsi, bool assign, GError **errp)
{
    return true;
}

static bool fake_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len, bool is_pio,
                           bool assign, GError **errp)
{
    return false; /* kicks come through the notify handler */
}

static bool fake_signal_msi(void *opaque, uint64_t addr, uint32_t data, GError **errp)
{
    fuzz_kvm.signals++;
    return true;
}

static const PciKvmOps fake_kvm_ops = {
    fake_set_irq, fake_route_add, fake_route_update, fake_route_del,
    fake_irqfd,   fake_ioeventfd, fake_signal_msi,
};

static uint64_t disk_getlength(BlockDriverState *bs)
{
    return FUZZ_DISK_SIZE;
}

static bool disk_is_read_only(BlockDriverState *bs)
{
    return false;
}

static int disk_preadv(BlockDriverState *bs, uint64_t offset, const struct iovec *iov,
                       int iovcnt)
{
    return -EIO;
}

static int disk_pwritev(BlockDriverState *bs, uint64_t offset, const struct iovec *iov,
                        int iovcnt)
{
    return -EIO;
}

static int disk_flush(BlockDriverState *bs)
{
    return 0;
}

static int disk_discard(BlockDriverState *bs, uint64_t offset, uint64_t len)
{
    return 0;
}

static int disk_write_zeroes(BlockDriverState *bs, uint64_t offset, uint64_t len,
                             bool may_unmap)
{
    return 0;
}

static const VirtioBlkBackend fake_disk = {
    disk_getlength, disk_is_read_only, disk_preadv,       disk_pwritev,
    disk_flush,     disk_discard,      disk_write_zeroes,
};

/* the fake backend never looks at it: any non-NULL pointer will do */
#define FAKE_BS ((BlockDriverState *)&fake_disk)

/*
 * m's buses, device list and RAM plan set up already: add the PCI bus and
 * the disk; returns the disk's PCI function.  Aborts on failure.
 */
static PciDevice *fuzz_pc_pci_init(Machine *m)
{
    VirtioBlkOptions disk = { .bs = FAKE_BS,
                              .devfn = PCI_DEVFN_AUTO,
                              .backend = &fake_disk };
    GError *err = NULL;
    PciDevice *dev = NULL;

    if (pci_pc_init_with_ops(m, &fake_kvm_ops, NULL, &err)) {
        dev = virtio_blk_pci_create_opts(m->pci, &disk, &err);
    }
    if (!dev) {
        fprintf(stderr, "fuzz: building the PCI bus: %s\n", err->message);
        abort();
    }
    return dev;
}

#endif
