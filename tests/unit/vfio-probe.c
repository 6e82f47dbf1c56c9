/*
 * vfio-probe: open a real host device through the VFIO backend
 * (hw/vfio/container.c) with a real KVM VM, and print what a user of the
 * backend sees: regions with their mmap-able areas, IRQs, config space,
 * BAR0 through mmap, MSI-X eventfds, reset.  Run by
 * tests/functional/test_vfio_backend.py where /dev/vfio exists (the
 * nested rig with --iommu).
 *
 *   vfio-probe [--ram MiB] BDF          probe, print "probe ok" at the end
 *   vfio-probe [--ram MiB] --error BDF  expect the open to fail, print "error: MSG"
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "accel/kvm/kvm.h"
#include "hw/vfio.h"

#define TSS_ADDR 0xfffbd000ULL

static int fail(const char *what, GError *err)
{
    printf("FAIL %s: %s\n", what, err ? err->message : "");
    g_clear_error(&err);
    return 1;
}

static void print_region(VfioDevice *dev, unsigned index)
{
    GError *err = NULL;
    VfioRegion region;

    if (!dev->ops->region_info(dev, index, &region, &err)) {
        printf("region %u: error: %s\n", index, err->message);
        g_clear_error(&err);
        return;
    }
    printf("region %u size 0x%" PRIx64 " flags 0x%x msix_mappable %d areas", index,
           region.size, region.flags, region.msix_mappable);
    for (unsigned i = 0; i < region.nr_areas; i++) {
        printf(" 0x%" PRIx64 "+0x%" PRIx64, region.areas[i].offset, region.areas[i].size);
    }
    printf("\n");
    vfio_region_clear(&region);
}

/* BAR0 through its first mmap-able area: e1000e's STATUS register (0x8). */
static int probe_bar0(VfioDevice *dev)
{
    GError *err = NULL;
    VfioRegion bar0;
    volatile uint32_t *regs;
    uint32_t status_mmap, status_pread;

    if (!dev->ops->region_info(dev, VFIO_PCI_BAR0_REGION_INDEX, &bar0, &err)) {
        return fail("region_info BAR0", err);
    }
    if (bar0.nr_areas == 0 || bar0.areas[0].offset != 0 || bar0.areas[0].size < 16) {
        vfio_region_clear(&bar0);
        printf("bar0: no mmap-able area at 0\n");
        return 1;
    }
    regs = dev->ops->mmap(dev, 0, 0, bar0.areas[0].size, &err);
    if (!regs) {
        vfio_region_clear(&bar0);
        return fail("mmap BAR0", err);
    }
    status_mmap = regs[2];
    dev->ops->munmap(dev, (void *)regs, bar0.areas[0].size);
    vfio_region_clear(&bar0);
    if (!dev->ops->read(dev, 0, 8, &status_pread, 4, &err)) {
        return fail("read BAR0", err);
    }
    printf("bar0 status mmap 0x%08x pread 0x%08x\n", status_mmap, status_pread);
    return 0;
}

static int probe_irqs(VfioDevice *dev)
{
    GError *err = NULL;
    int fds[2];

    for (unsigned i = 0; i < dev->nr_irqs; i++) {
        VfioIrq irq;
        if (!dev->ops->irq_info(dev, i, &irq, &err)) {
            return fail("irq_info", err);
        }
        printf("irq %u count %u flags 0x%x\n", i, irq.count, irq.flags);
    }
    fds[0] = eventfd(0, EFD_CLOEXEC);
    fds[1] = -1;
    if (!dev->ops->set_irq_eventfds(dev, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, fds, &err) ||
        !dev->ops->set_irq_eventfds(dev, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL, &err)) {
        close(fds[0]);
        return fail("set_irq_eventfds MSI-X", err);
    }
    close(fds[0]);
    printf("msix eventfds on and off ok\n");
    return 0;
}

/* Guest RAM added and removed while a device is open: MAP/UNMAP_DMA. */
static int probe_ram_change(VfioContext *ctx)
{
    size_t size = 2 << 20;
    void *host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                      0);
    VfioRamRange range = { .gpa = 1ull << 32, .size = size, .host = host };
    GError *err = NULL;
    int ret = 0;

    if (host == MAP_FAILED) {
        return fail("mmap", NULL);
    }
    if (!vfio_context_map(ctx, &range, &err) ||
        !vfio_context_unmap(ctx, range.gpa, range.size, &err)) {
        ret = fail("RAM map/unmap", err);
    } else {
        printf("ram map and unmap of 2 MiB at 4 GiB ok\n");
    }
    munmap(host, size);
    return ret;
}

static int probe(VfioContext *ctx, const char *path)
{
    GError *err = NULL;
    VfioDevice *dev = vfio_device_open(ctx, path, &err);
    uint8_t id[4];
    int ret = 0;

    if (!dev) {
        return fail("open", err);
    }
    printf("device %s flags 0x%x regions %u irqs %u\n", dev->name, dev->flags,
           dev->nr_regions, dev->nr_irqs);
    for (unsigned i = 0; i < dev->nr_regions; i++) {
        print_region(dev, i);
    }
    if (!dev->ops->read(dev, VFIO_PCI_CONFIG_REGION_INDEX, 0, id, 4, &err)) {
        ret = fail("config read", err);
        goto out;
    }
    printf("config vendor %04x device %04x\n", id[0] | id[1] << 8, id[2] | id[3] << 8);
    if (probe_ram_change(ctx)) {
        ret = 1;
        goto out;
    }
    if (probe_bar0(dev) || probe_irqs(dev)) {
        ret = 1;
        goto out;
    }
    if (vfio_device_open(ctx, path, &err) == NULL) {
        printf("second open: %s\n", err->message);
        g_clear_error(&err);
    }
    if (dev->flags & VFIO_DEVICE_FLAGS_RESET) {
        if (!dev->ops->reset(dev, &err)) {
            ret = fail("reset", err);
            goto out;
        }
        printf("reset ok\n");
    }
out:
    dev->ops->close(dev);
    return ret;
}

int main(int argc, char **argv)
{
    unsigned ram_mib = 64;
    bool want_error = false;
    GError *err = NULL;
    const char *host = NULL;
    KvmVm kvm;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ram") == 0 && i + 1 < argc) {
            ram_mib = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--error") == 0) {
            want_error = true;
        } else {
            host = argv[i];
        }
    }
    if (!host) {
        fprintf(stderr, "usage: vfio-probe [--ram MiB] [--error] BDF\n");
        return 2;
    }
    char *path = vfio_sysfs_path(host, &err);
    if (!path) {
        printf("error: %s\n", err->message);
        g_clear_error(&err);
        return want_error ? 0 : 1;
    }
    /* the errors need no KVM: a machine without one still shows them */
    bool have_kvm = kvm_vm_init(&kvm, TSS_ADDR, &err);
    if (!have_kvm && !want_error) {
        g_free(path);
        return fail("kvm", err);
    }
    g_clear_error(&err);
    size_t ram_size = (size_t)ram_mib << 20;
    void *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (ram == MAP_FAILED ||
        (have_kvm && !kvm_vm_add_ram(&kvm, 0, ram_size, ram, &err))) {
        g_free(path);
        return fail("guest RAM", err);
    }
    VfioRamRange range = { .gpa = 0, .size = ram_size, .host = ram };
    VfioContextConfig config = {
        .ram = &range,
        .nr_ram = 1,
        .kvm_group = have_kvm ? kvm_vfio_group_fn : NULL,
        .kvm_opaque = &kvm,
    };
    VfioContext *ctx = vfio_context_new(&config);
    int ret;

    if (want_error) {
        VfioDevice *dev = vfio_device_open(ctx, path, &err);
        if (dev) {
            printf("opened, no error\n");
            dev->ops->close(dev);
            ret = 1;
        } else {
            printf("error: %s\n", err->message);
            g_clear_error(&err);
            ret = 0;
        }
    } else {
        ret = probe(ctx, path);
        /* a container gone and back: a second open maps RAM again */
        if (ret == 0) {
            VfioDevice *dev = vfio_device_open(ctx, path, &err);
            if (!dev) {
                ret = fail("reopen", err);
            } else {
                dev->ops->close(dev);
                printf("reopen ok\n");
            }
        }
        if (ret == 0) {
            printf("probe ok\n");
        }
    }
    vfio_context_free(ctx);
    if (have_kvm) {
        kvm_vm_destroy(&kvm);
    }
    munmap(ram, ram_size);
    g_free(path);
    return ret;
}
