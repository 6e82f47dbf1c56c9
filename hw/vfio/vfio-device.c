/*
 * A host device opened through the container/group backend: its
 * VfioDeviceOps over the device fd (regions with their capability chains,
 * IRQs, reset).  Main thread only, as the rest of hw/vfio.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vfio-int.h"
#include "util/error.h"

/* A region info reply larger than this is not believed. */
#define REGION_INFO_MAX (64 * 1024)
/* MSI-X has at most 2048 vectors. */
#define IRQ_SET_MAX 2048

void vfio_region_clear(VfioRegion *region)
{
    g_free(region->areas);
    region->areas = NULL;
    region->nr_areas = 0;
}

static VfioHostDevice *host_device(VfioDevice *dev)
{
    return dev->backend;
}

/* The sparse-mmap capability at off (its header already checked). */
static bool parse_sparse(const char *name, const uint8_t *buf, size_t len, size_t off,
                         uint64_t region_size, GArray *areas, GError **errp)
{
    struct vfio_region_info_cap_sparse_mmap sparse;
    size_t room;

    if (len - off < sizeof(sparse)) {
        error_setg(errp, "vfio %s: sparse-mmap capability at %zu leaves the reply", name,
                   off);
        return false;
    }
    memcpy(&sparse, buf + off, sizeof(sparse));
    room = (len - off - sizeof(sparse)) / sizeof(struct vfio_region_sparse_mmap_area);
    if (sparse.nr_areas > room) {
        error_setg(errp, "vfio %s: sparse-mmap capability lists %u areas, room for %zu",
                   name, sparse.nr_areas, room);
        return false;
    }
    for (uint32_t i = 0; i < sparse.nr_areas; i++) {
        struct vfio_region_sparse_mmap_area area;
        memcpy(&area, buf + off + sizeof(sparse) + i * sizeof(area), sizeof(area));
        if (area.size == 0) {
            continue;
        }
        if (area.offset > region_size || area.size > region_size - area.offset) {
            error_setg(errp,
                       "vfio %s: sparse-mmap area 0x%" G_GINT64_MODIFIER
                       "x+0x%" G_GINT64_MODIFIER
                       "x is outside the region (0x%" G_GINT64_MODIFIER "x bytes)",
                       name, (uint64_t)area.offset, (uint64_t)area.size, region_size);
            return false;
        }
        VfioArea a = { .offset = area.offset, .size = area.size };
        g_array_append_val(areas, a);
    }
    return true;
}

bool vfio_region_parse(const char *name, const void *reply, size_t len, VfioRegion *out,
                       GError **errp)
{
    const uint8_t *buf = reply;
    struct vfio_region_info info;
    GArray *areas = g_array_new(false, false, sizeof(VfioArea));
    bool sparse = false;

    memset(out, 0, sizeof(*out));
    if (len < sizeof(info)) {
        error_setg(errp, "vfio %s: region info reply of %zu bytes", name, len);
        goto fail;
    }
    memcpy(&info, buf, sizeof(info));
    out->index = info.index;
    out->flags = info.flags;
    out->size = info.size;
    out->offset = info.offset;
    /*
     * Walk the chain.  Each capability must lie inside the reply and after
     * the one before it, so a broken reply ends in an error, never a loop.
     */
    size_t off = info.flags & VFIO_REGION_INFO_FLAG_CAPS ? info.cap_offset : 0;
    size_t min = sizeof(info);
    while (off) {
        struct vfio_info_cap_header header;
        if (off < min || off > len || len - off < sizeof(header)) {
            error_setg(
                errp,
                "vfio %s: region %u: capability at offset %zu is outside the reply "
                "(%zu bytes) or not after the one before",
                name, info.index, off, len);
            goto fail;
        }
        memcpy(&header, buf + off, sizeof(header));
        if (header.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
            if (!parse_sparse(name, buf, len, off, info.size, areas, errp)) {
                goto fail;
            }
            sparse = true;
        } else if (header.id == VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
            out->msix_mappable = true;
        }
        min = off + sizeof(header);
        off = header.next;
    }
    if (!(info.flags & VFIO_REGION_INFO_FLAG_MMAP) || info.size == 0) {
        g_array_set_size(areas, 0);
    } else if (!sparse) {
        VfioArea whole = { .offset = 0, .size = info.size };
        g_array_append_val(areas, whole);
    }
    out->nr_areas = areas->len;
    out->areas = (VfioArea *)g_array_free(areas, areas->len == 0);
    return true;
fail:
    g_array_free(areas, true);
    memset(out, 0, sizeof(*out));
    return false;
}

static bool host_region_info(VfioDevice *dev, unsigned index, VfioRegion *out,
                             GError **errp)
{
    VfioHostDevice *hdev = host_device(dev);
    size_t argsz = sizeof(struct vfio_region_info);
    struct vfio_region_info *info;
    bool ok;

    if (index >= dev->nr_regions) {
        error_setg(errp, "vfio %s: no region %u (the device has %u)", dev->name, index,
                   dev->nr_regions);
        return false;
    }
    for (;;) {
        info = g_malloc0(argsz);
        info->argsz = argsz;
        info->index = index;
        if (vfio_sys()->ioctl(hdev->fd, VFIO_DEVICE_GET_REGION_INFO, info) < 0) {
            error_setg_errno(errp, errno,
                             "vfio %s: VFIO_DEVICE_GET_REGION_INFO (region %u)",
                             dev->name, index);
            g_free(info);
            return false;
        }
        if (info->argsz <= argsz) {
            break;
        }
        /* the capabilities did not fit: ask once more with the room asked for */
        if (argsz > sizeof(*info) || info->argsz > REGION_INFO_MAX) {
            error_setg(
                errp,
                "vfio %s: VFIO_DEVICE_GET_REGION_INFO (region %u) asks for %u bytes",
                dev->name, index, info->argsz);
            g_free(info);
            return false;
        }
        argsz = info->argsz;
        g_free(info);
    }
    ok = vfio_region_parse(dev->name, info, argsz, out, errp);
    g_free(info);
    if (ok) {
        out->index = index;
        hdev->places[index].known = true;
        hdev->places[index].offset = out->offset;
        hdev->places[index].size = out->size;
    }
    return ok;
}

/* Where [off, off + len) of region index lies in the device fd. */
static bool region_place(VfioHostDevice *hdev, unsigned index, uint64_t off, uint64_t len,
                         uint64_t *fd_offset, GError **errp)
{
    VfioDevice *dev = &hdev->dev;

    if (index < dev->nr_regions && !hdev->places[index].known) {
        VfioRegion region;
        if (!host_region_info(dev, index, &region, errp)) {
            return false;
        }
        vfio_region_clear(&region);
    }
    if (index >= dev->nr_regions || off > hdev->places[index].size ||
        len > hdev->places[index].size - off) {
        error_setg(errp,
                   "vfio %s: 0x%" G_GINT64_MODIFIER "x bytes at 0x%" G_GINT64_MODIFIER
                   "x are outside region %u",
                   dev->name, len, off, index);
        return false;
    }
    *fd_offset = hdev->places[index].offset + off;
    return true;
}

/* Moves len bytes between buf and region index at off, retrying short transfers. */
static bool host_transfer(VfioDevice *dev, unsigned index, uint64_t off, uint8_t *rbuf,
                          const uint8_t *wbuf, size_t len, GError **errp)
{
    VfioHostDevice *hdev = host_device(dev);
    uint64_t pos;
    size_t done = 0;

    if (!region_place(hdev, index, off, len, &pos, errp)) {
        return false;
    }
    while (done < len) {
        ssize_t n = wbuf ? vfio_sys()->pwrite(hdev->fd, wbuf + done, len - done,
                                              pos + done)
                         : vfio_sys()->pread(hdev->fd, rbuf + done, len - done,
                                             pos + done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg(errp,
                       "vfio %s: %s of %zu bytes at 0x%" G_GINT64_MODIFIER
                       "x in region %u: %s",
                       dev->name, wbuf ? "write" : "read", len, off, index,
                       n < 0 ? g_strerror(errno) : "end of region");
            return false;
        }
        done += n;
    }
    return true;
}

static bool host_read(VfioDevice *dev, unsigned index, uint64_t off, void *buf,
                      size_t len, GError **errp)
{
    return host_transfer(dev, index, off, buf, NULL, len, errp);
}

static bool host_write(VfioDevice *dev, unsigned index, uint64_t off, const void *buf,
                       size_t len, GError **errp)
{
    return host_transfer(dev, index, off, NULL, buf, len, errp);
}

static void *host_mmap(VfioDevice *dev, unsigned index, uint64_t off, uint64_t size,
                       GError **errp)
{
    VfioHostDevice *hdev = host_device(dev);
    uint64_t pos;
    void *addr;

    if (!region_place(hdev, index, off, size, &pos, errp)) {
        return NULL;
    }
    addr = vfio_sys()->mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, hdev->fd,
                            pos);
    if (addr == MAP_FAILED) {
        error_setg_errno(errp, errno,
                         "vfio %s: mmap of 0x%" G_GINT64_MODIFIER
                         "x bytes at 0x%" G_GINT64_MODIFIER "x in region %u",
                         dev->name, size, off, index);
        return NULL;
    }
    return addr;
}

static void host_munmap(VfioDevice *dev, void *addr, uint64_t size)
{
    if (addr) {
        vfio_sys()->munmap(addr, size);
    }
}

static bool host_irq_info(VfioDevice *dev, unsigned index, VfioIrq *out, GError **errp)
{
    struct vfio_irq_info info = { .argsz = sizeof(info), .index = index };

    if (vfio_sys()->ioctl(host_device(dev)->fd, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0) {
        error_setg_errno(errp, errno, "vfio %s: VFIO_DEVICE_GET_IRQ_INFO (index %u)",
                         dev->name, index);
        return false;
    }
    out->index = index;
    out->flags = info.flags;
    out->count = info.count;
    return true;
}

/* VFIO_DEVICE_SET_IRQS with count int32 data entries (fds), or none. */
static bool irq_set(VfioDevice *dev, uint32_t flags, unsigned index, unsigned start,
                    unsigned count, const int *fds, GError **errp)
{
    size_t argsz = sizeof(struct vfio_irq_set) + (fds ? count * sizeof(int32_t) : 0);
    struct vfio_irq_set *set;
    bool ok = true;

    if (count > IRQ_SET_MAX) {
        error_setg(errp, "vfio %s: VFIO_DEVICE_SET_IRQS: %u vectors", dev->name, count);
        return false;
    }
    set = g_malloc0(argsz);
    set->argsz = argsz;
    set->flags = flags;
    set->index = index;
    set->start = start;
    set->count = count;
    for (unsigned i = 0; fds && i < count; i++) {
        int32_t fd = fds[i];
        memcpy(set->data + i * sizeof(fd), &fd, sizeof(fd));
    }
    if (vfio_sys()->ioctl(host_device(dev)->fd, VFIO_DEVICE_SET_IRQS, set) < 0) {
        error_setg_errno(errp, errno, "vfio %s: VFIO_DEVICE_SET_IRQS", dev->name);
        ok = false;
    }
    g_free(set);
    return ok;
}

static bool host_set_irq_eventfds(VfioDevice *dev, unsigned index, unsigned start,
                                  unsigned count, const int *fds, GError **errp)
{
    if (count == 0) {
        return irq_set(dev, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index,
                       0, 0, NULL, errp);
    }
    return irq_set(dev, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index,
                   start, count, fds, errp);
}

static bool host_set_irq_unmask_fd(VfioDevice *dev, unsigned index, int fd, GError **errp)
{
    return irq_set(dev, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, index, 0,
                   1, &fd, errp);
}

static bool host_mask_irq(VfioDevice *dev, unsigned index, unsigned vector, bool mask,
                          GError **errp)
{
    uint32_t action = mask ? VFIO_IRQ_SET_ACTION_MASK : VFIO_IRQ_SET_ACTION_UNMASK;

    return irq_set(dev, VFIO_IRQ_SET_DATA_NONE | action, index, vector, 1, NULL, errp);
}

static bool host_reset(VfioDevice *dev, GError **errp)
{
    if (!(dev->flags & VFIO_DEVICE_FLAGS_RESET)) {
        error_setg(errp, "vfio %s: the device offers no reset (VFIO_DEVICE_FLAGS_RESET)",
                   dev->name);
        return false;
    }
    if (vfio_sys()->ioctl(host_device(dev)->fd, VFIO_DEVICE_RESET, NULL) < 0) {
        error_setg_errno(errp, errno, "vfio %s: VFIO_DEVICE_RESET", dev->name);
        return false;
    }
    return true;
}

/* The slow half of a close: the kernel resets the device, maybe unpins RAM. */
static void host_release(VfioHostDevice *hdev)
{
    vfio_sys()->close(hdev->fd);
    vfio_context_device_gone(hdev);
    g_free(hdev->places);
    g_free(hdev->dev.name);
    g_free(hdev);
}

static void host_close(VfioDevice *dev)
{
    vfio_context_device_close(host_device(dev), host_release);
}

const VfioDeviceOps vfio_host_device_ops = {
    .region_info = host_region_info,
    .irq_info = host_irq_info,
    .read = host_read,
    .write = host_write,
    .mmap = host_mmap,
    .munmap = host_munmap,
    .set_irq_eventfds = host_set_irq_eventfds,
    .set_irq_unmask_fd = host_set_irq_unmask_fd,
    .mask_irq = host_mask_irq,
    .reset = host_reset,
    .close = host_close,
};
