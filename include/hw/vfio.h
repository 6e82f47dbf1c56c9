/*
 * VFIO: a host PCI device given to the guest (-device vfio-pci).  Two
 * layers meet here:
 *
 *  - a backend gives a VfioContext, one per VM: the IOMMU context every
 *    passed-through device's DMA goes through, with all guest RAM mapped,
 *    and the devices' groups registered with KVM's VFIO device.  Today's
 *    backend is Linux 6.1's container/group API (hw/vfio/container.c:
 *    /dev/vfio/vfio, TYPE1v2, /dev/vfio/GROUP); iommufd's device cdev can
 *    be a second one behind the same functions.  vfio_device_open gives a
 *    VfioDevice: a handle whose ops reach the device (regions, IRQs,
 *    reset);
 *  - vfio-pci (hw/vfio/vfio-pci.c), the PCI device model, uses only a
 *    VfioDevice's ops.  Unit tests give it a fake device with its own ops.
 *
 * Main thread (machine lock held) for everything, except that the eventfds
 * handed to set_irq_eventfds are signalled by the host kernel directly.
 */
#ifndef HW_VFIO_H
#define HW_VFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include <linux/vfio.h>

typedef struct VfioContext VfioContext;
typedef struct VfioDevice VfioDevice;

/* One mmap-able window of a region (the sparse-mmap capability's areas). */
typedef struct VfioArea {
    uint64_t offset; /* from the region's start */
    uint64_t size;
} VfioArea;

/* VFIO_DEVICE_GET_REGION_INFO with its capability chain, parsed. */
typedef struct VfioRegion {
    unsigned index;  /* VFIO_PCI_BAR0_REGION_INDEX ... VFIO_PCI_CONFIG_REGION_INDEX */
    uint32_t flags;  /* VFIO_REGION_INFO_FLAG_READ | _WRITE | _MMAP */
    uint64_t size;   /* 0: the region does not exist (an unused BAR) */
    uint64_t offset; /* where it is in the device fd */
    /* Where it may be mmapped: the sparse areas when the capability is
     * there, else one area for the whole region when FLAG_MMAP is set,
     * else none. */
    unsigned nr_areas;
    VfioArea *areas;
    bool msix_mappable; /* VFIO_REGION_INFO_CAP_MSIX_MAPPABLE */
} VfioRegion;

void vfio_region_clear(VfioRegion *region); /* frees areas */

/* VFIO_DEVICE_GET_IRQ_INFO. */
typedef struct VfioIrq {
    unsigned index; /* VFIO_PCI_INTX_IRQ_INDEX, _MSI_, _MSIX_, _ERR_, _REQ_ */
    uint32_t flags; /* VFIO_IRQ_INFO_EVENTFD | _MASKABLE | _AUTOMASKED | _NORESIZE */
    uint32_t count; /* vectors */
} VfioIrq;

/*
 * How a device is reached.  Every call returns false (or NULL) with errp
 * set when the backend refuses; the message names the device and the
 * operation ("vfio 0000:01:00.0: VFIO_DEVICE_SET_IRQS: Invalid argument").
 */
typedef struct VfioDeviceOps {
    bool (*region_info)(VfioDevice *dev, unsigned index, VfioRegion *out, GError **errp);
    bool (*irq_info)(VfioDevice *dev, unsigned index, VfioIrq *out, GError **errp);
    /* pread/pwrite of len bytes at off within region index, all or error. */
    bool (*read)(VfioDevice *dev, unsigned index, uint64_t off, void *buf, size_t len,
                 GError **errp);
    bool (*write)(VfioDevice *dev, unsigned index, uint64_t off, const void *buf,
                  size_t len, GError **errp);
    /* mmap size bytes at off within region index (shared, read-write). */
    void *(*mmap)(VfioDevice *dev, unsigned index, uint64_t off, uint64_t size,
                  GError **errp);
    void (*munmap)(VfioDevice *dev, void *addr, uint64_t size);
    /*
     * VFIO_DEVICE_SET_IRQS with DATA_EVENTFD | ACTION_TRIGGER: vectors
     * [start, start + count) of irq index signal fds[i] (-1: that vector
     * gets no eventfd).  count 0 disables the whole index (DATA_NONE).
     */
    bool (*set_irq_eventfds)(VfioDevice *dev, unsigned index, unsigned start,
                             unsigned count, const int *fds, GError **errp);
    /* ACTION_UNMASK with an eventfd (INTx: KVM's resample fd unmasks). */
    bool (*set_irq_unmask_fd)(VfioDevice *dev, unsigned index, int fd, GError **errp);
    /* ACTION_MASK / ACTION_UNMASK of one vector, DATA_NONE. */
    bool (*mask_irq)(VfioDevice *dev, unsigned index, unsigned vector, bool mask,
                     GError **errp);
    /* VFIO_DEVICE_RESET. */
    bool (*reset)(VfioDevice *dev, GError **errp);
    /* Close the device (and, for the backend, drop its group when it was
     * the group's last device).  The handle is freed; the caller lets go
     * of it at once (it may be closed in the background). */
    void (*close)(VfioDevice *dev);
} VfioDeviceOps;

struct VfioDevice {
    const VfioDeviceOps *ops;
    char *name;     /* "0000:01:00.0" */
    uint32_t flags; /* VFIO_DEVICE_FLAGS_* (RESET, PCI) */
    unsigned nr_regions, nr_irqs;
    void *backend; /* the backend's (or a fake's) own state */
};

/*
 * What the machine gives the backend: guest RAM as (gpa, size, host)
 * ranges to map for DMA, and how to register a group with KVM's VFIO
 * device (KVM_DEV_TYPE_VFIO, KVM_DEV_VFIO_GROUP_ADD/DEL) so that KVM
 * knows the VM has non-coherent DMA and can bypass the host for its
 * interrupts where the hardware allows it.
 */
typedef struct VfioRamRange {
    uint64_t gpa;
    uint64_t size;
    void *host;
} VfioRamRange;

typedef struct VfioContextConfig {
    const VfioRamRange *ram;
    unsigned nr_ram;
    bool (*kvm_group)(void *opaque, int group_fd, bool add, GError **errp);
    void *kvm_opaque;
    /*
     * Close devices on a thread of their own: closing resets the device
     * (Linux 6.1 waits for the bus reset) and the last one unpins all of
     * guest RAM, seconds in a nested rig, which the caller's thread (the
     * main loop) need not wait for.  The device is already off the guest
     * by then.  closed, when set, is called on that thread once a close is
     * done and vfio_context_closing() counts it no more.
     */
    bool close_in_background;
    void (*closed)(void *opaque);
    void *closed_opaque;
} VfioContextConfig;

/* Nothing is opened until the first device: a VM without vfio-pci never
 * touches /dev/vfio. */
VfioContext *vfio_context_new(const VfioContextConfig *cfg);
void vfio_context_free(VfioContext *ctx); /* after every device is closed */
/*
 * Any thread: closes still running in the background.  Every call below
 * (and vfio_context_free) waits for them first, so that a device opened
 * again after its close finds it finished.
 */
unsigned vfio_context_closing(VfioContext *ctx);
/* Guest RAM changed: keep the IOMMU's mappings right (all or nothing). */
bool vfio_context_map(VfioContext *ctx, const VfioRamRange *range, GError **errp);
bool vfio_context_unmap(VfioContext *ctx, uint64_t gpa, uint64_t size, GError **errp);

/*
 * "0000:01:00.0", "01:00.0" (domain 0) -> "/sys/bus/pci/devices/0000:01:00.0",
 * or an error naming the BDF when it is malformed or no such device exists.
 */
char *vfio_sysfs_path(const char *host, GError **errp);
/*
 * Open the device at sysfs path: its IOMMU group (VIABLE, or an error
 * naming the group's devices that are not bound to vfio-pci), the
 * container with TYPE1v2 and every RAM range mapped (RLIMIT_MEMLOCK too
 * low: an error that says so and how much is needed), the group added to
 * KVM, then the device fd and its info.
 */
VfioDevice *vfio_device_open(VfioContext *ctx, const char *sysfs_path, GError **errp);

#endif
