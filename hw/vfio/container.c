/*
 * The VFIO backend of Linux's container/group API (6.1): a VfioContext
 * owns one container (/dev/vfio/vfio, the Type1 v2 IOMMU, guest RAM mapped
 * for DMA), opened with its first device and closed with its last, and
 * the IOMMU groups (/dev/vfio/N) its devices come from.  Main thread only,
 * but for closes in the background (close_in_background): each runs on a
 * thread of its own, one at a time, and every other entry point waits for
 * them before it touches the context.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vfio-int.h"
#include "util/error.h"

struct VfioContext {
    VfioContextConfig cfg;
    GArray *ram;                /* VfioRamRange: what the IOMMU maps (or will) */
    GPtrArray *groups;          /* VfioGroup */
    GPtrArray *devices;         /* VfioHostDevice, open */
    int container_fd;           /* -1 until the first device */
    pthread_mutex_t close_lock; /* a background close's turn */
    GArray *closers;            /* pthread_t: closes not joined yet */
    unsigned closing;           /* closes not finished; atomic */
};

static void context_settle(VfioContext *ctx);

/* ---- the system calls ---- */

static int libc_open(const char *path, int flags)
{
    return open(path, flags | O_CLOEXEC);
}

static int libc_ioctl(int fd, unsigned long request, void *arg)
{
    return ioctl(fd, request, arg);
}

static int libc_getrlimit(int resource, struct rlimit *limit)
{
    return getrlimit(resource, limit);
}

const VfioSyscalls vfio_syscalls_libc = {
    .open = libc_open,
    .close = close,
    .ioctl = libc_ioctl,
    .pread = pread,
    .pwrite = pwrite,
    .mmap = mmap,
    .munmap = munmap,
    .access = access,
    .readlink = readlink,
    .opendir = opendir,
    .readdir = readdir,
    .closedir = closedir,
    .getrlimit = libc_getrlimit,
};

static const VfioSyscalls *syscalls = &vfio_syscalls_libc;
static const char *sysfs_root = "/sys";

void vfio_syscalls_override(const VfioSyscalls *sys, const char *root)
{
    syscalls = sys ? sys : &vfio_syscalls_libc;
    sysfs_root = root ? root : "/sys";
}

const VfioSyscalls *vfio_sys(void)
{
    return syscalls;
}

/* ---- sysfs ---- */

/* A hex field of at most max_digits digits, up to limit. */
static const char *parse_hex(const char *s, unsigned max_digits, unsigned limit,
                             unsigned *out)
{
    unsigned value = 0, digits = 0;

    while (g_ascii_isxdigit(*s) && digits <= max_digits) {
        value = value * 16 + g_ascii_xdigit_value(*s++);
        digits++;
    }
    if (digits == 0 || digits > max_digits || value > limit) {
        return NULL;
    }
    *out = value;
    return s;
}

static bool parse_bdf(const char *host, unsigned *domain, unsigned *bus, unsigned *slot,
                      unsigned *function)
{
    const char *p = host;
    unsigned first;

    /* [domain:]bus:slot.function, hex, as QEMU's host= takes it */
    p = parse_hex(p, 4, 0xffff, &first);
    if (!p || *p++ != ':') {
        return false;
    }
    *domain = 0;
    *bus = first;
    if (strchr(p, ':')) {
        *domain = first;
        p = parse_hex(p, 2, 0xff, bus);
        if (!p || *p++ != ':') {
            return false;
        }
    } else if (first > 0xff) {
        return false;
    }
    p = parse_hex(p, 2, 0x1f, slot);
    if (!p || *p++ != '.') {
        return false;
    }
    p = parse_hex(p, 1, 7, function);
    return p && *p == '\0';
}

char *vfio_sysfs_path(const char *host, GError **errp)
{
    unsigned domain, bus, slot, function;
    char *path;

    if (!parse_bdf(host, &domain, &bus, &slot, &function)) {
        error_setg(errp, "Property 'vfio-pci.host' doesn't take value '%s'", host);
        return NULL;
    }
    path = g_strdup_printf("%s/bus/pci/devices/%04x:%02x:%02x.%x", sysfs_root, domain,
                           bus, slot, function);
    if (syscalls->access(path, F_OK) < 0) {
        error_setg_errno(errp, errno, "vfio %s: no such host device", path);
        g_free(path);
        return NULL;
    }
    return path;
}

/* The last component of the symlink at path ("vfio-pci"), or NULL. */
static char *sysfs_link_name(const char *path)
{
    char target[4096];
    ssize_t len = syscalls->readlink(path, target, sizeof(target) - 1);

    if (len <= 0) {
        return NULL;
    }
    target[len] = '\0';
    return g_path_get_basename(target);
}

static bool driver_allows_vfio(const char *driver)
{
    /* no driver, or one the kernel lets share a group with vfio-pci */
    return !driver || strcmp(driver, "vfio-pci") == 0 ||
           strcmp(driver, "pci-stub") == 0 || strcmp(driver, "pcieport") == 0;
}

/*
 * "0000:01:00.1 (bound to e1000e), ..." for the devices of sysfs_dev's group
 * that keep it from being viable; "" when sysfs shows none.
 */
static char *group_blockers(const char *sysfs_dev)
{
    char *dir_path = g_strdup_printf("%s/iommu_group/devices", sysfs_dev);
    GString *out = g_string_new("");
    DIR *dir = syscalls->opendir(dir_path);
    struct dirent *entry;

    while (dir && (entry = syscalls->readdir(dir))) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        char *link = g_strdup_printf("%s/%s/driver", dir_path, entry->d_name);
        char *driver = sysfs_link_name(link);
        if (!driver_allows_vfio(driver)) {
            g_string_append_printf(out, "%s%s (bound to %s)", out->len ? ", " : "",
                                   entry->d_name, driver);
        }
        g_free(driver);
        g_free(link);
    }
    if (dir) {
        syscalls->closedir(dir);
    }
    g_free(dir_path);
    return g_string_free(out, false);
}

static int sysfs_group_id(const char *name, const char *sysfs_dev, GError **errp)
{
    char *link = g_strdup_printf("%s/iommu_group", sysfs_dev);
    char *group = sysfs_link_name(link);
    int saved = errno;
    char *end;
    long id;

    g_free(link);
    if (!group) {
        error_setg(errp,
                   "vfio %s: no iommu_group found: %s (the host has no IOMMU: boot it "
                   "with intel_iommu=on or amd_iommu=on, or load vfio with "
                   "enable_unsafe_noiommu_mode=1)",
                   name, g_strerror(saved ? saved : ENOENT));
        return -1;
    }
    id = strtol(group, &end, 10);
    if (end == group || *end || id < 0 || id > INT32_MAX) {
        error_setg(errp, "vfio %s: iommu_group '%s' is not a group number", name, group);
        g_free(group);
        return -1;
    }
    g_free(group);
    return (int)id;
}

/* ---- the container and its DMA mappings ---- */

static uint64_t ram_total(VfioContext *ctx)
{
    uint64_t total = 0;

    for (guint i = 0; i < ctx->ram->len; i++) {
        total += g_array_index(ctx->ram, VfioRamRange, i).size;
    }
    return total;
}

static bool dma_map(VfioContext *ctx, const VfioRamRange *range, GError **errp)
{
    struct vfio_iommu_type1_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        .vaddr = (uintptr_t)range->host,
        .iova = range->gpa,
        .size = range->size,
    };
    struct rlimit limit;
    uint64_t needed;
    int err;

    if (syscalls->ioctl(ctx->container_fd, VFIO_IOMMU_MAP_DMA, &map) == 0) {
        return true;
    }
    err = errno;
    /* pinning beyond RLIMIT_MEMLOCK fails with ENOMEM (EPERM on some kernels) */
    needed = ram_total(ctx);
    if ((err == ENOMEM || err == EPERM) &&
        syscalls->getrlimit(RLIMIT_MEMLOCK, &limit) == 0 &&
        limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
        error_setg(errp,
                   "VFIO_IOMMU_MAP_DMA of guest RAM at 0x%" G_GINT64_MODIFIER
                   "x: %s: the locked-memory limit (RLIMIT_MEMLOCK, ulimit -l) is "
                   "%" G_GUINT64_FORMAT
                   " KiB and a passthrough device pins all guest RAM, %" G_GUINT64_FORMAT
                   " KiB: raise it to at least that",
                   range->gpa, g_strerror(err), (uint64_t)limit.rlim_cur / 1024,
                   needed / 1024);
        return false;
    }
    error_setg(errp,
               "VFIO_IOMMU_MAP_DMA of guest RAM at 0x%" G_GINT64_MODIFIER
               "x (0x%" G_GINT64_MODIFIER "x bytes): %s",
               range->gpa, range->size, g_strerror(err));
    return false;
}

static bool dma_unmap(VfioContext *ctx, uint64_t gpa, uint64_t size, GError **errp)
{
    struct vfio_iommu_type1_dma_unmap unmap = {
        .argsz = sizeof(unmap),
        .iova = gpa,
        .size = size,
    };

    if (syscalls->ioctl(ctx->container_fd, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0) {
        error_setg_errno(errp, errno,
                         "VFIO_IOMMU_UNMAP_DMA at 0x%" G_GINT64_MODIFIER
                         "x (0x%" G_GINT64_MODIFIER "x bytes)",
                         gpa, size);
        return false;
    }
    return true;
}

/* /dev/vfio/vfio, checked: the API version and the Type1 v2 IOMMU. */
static int container_open(const char *name, GError **errp)
{
    int fd = syscalls->open("/dev/vfio/vfio", O_RDWR);
    int version;

    if (fd < 0) {
        error_setg_errno(errp, errno, "vfio %s: /dev/vfio/vfio", name);
        return -1;
    }
    version = syscalls->ioctl(fd, VFIO_GET_API_VERSION, NULL);
    if (version != VFIO_API_VERSION) {
        error_setg(errp, "vfio %s: supported vfio version: %d, reported version: %d",
                   name, VFIO_API_VERSION, version);
        goto fail;
    }
    if (syscalls->ioctl(fd, VFIO_CHECK_EXTENSION,
                        (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) != 1) {
        error_setg(errp,
                   "vfio %s: the host's VFIO has no Type1 v2 IOMMU (VFIO_TYPE1v2_IOMMU; "
                   "is vfio_iommu_type1 loaded?)",
                   name);
        goto fail;
    }
    return fd;
fail:
    syscalls->close(fd);
    return -1;
}

/*
 * Put group into the context's container, opening the container first
 * when it has none: the IOMMU type is set and every RAM range mapped once
 * the first group is in.  On failure the group is out again.
 */
static bool container_add_group(VfioContext *ctx, VfioGroup *group, const char *name,
                                GError **errp)
{
    bool new_container = ctx->container_fd < 0;
    GError *err = NULL;

    if (new_container) {
        ctx->container_fd = container_open(name, errp);
        if (ctx->container_fd < 0) {
            return false;
        }
    }
    if (syscalls->ioctl(group->fd, VFIO_GROUP_SET_CONTAINER, &ctx->container_fd) < 0) {
        error_setg_errno(errp, errno, "vfio %s: VFIO_GROUP_SET_CONTAINER (group %d)",
                         name, group->id);
        goto fail_container;
    }
    if (new_container) {
        if (syscalls->ioctl(ctx->container_fd, VFIO_SET_IOMMU,
                            (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) < 0) {
            error_setg_errno(errp, errno, "vfio %s: VFIO_SET_IOMMU (VFIO_TYPE1v2_IOMMU)",
                             name);
            goto fail_group;
        }
        for (guint i = 0; i < ctx->ram->len; i++) {
            if (!dma_map(ctx, &g_array_index(ctx->ram, VfioRamRange, i), &err)) {
                g_propagate_prefixed_error(errp, err, "vfio %s: ", name);
                goto fail_group;
            }
        }
    }
    return true;
fail_group:
    /* the last group out of a container takes its IOMMU and mappings along */
    syscalls->ioctl(group->fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
fail_container:
    if (new_container) {
        syscalls->close(ctx->container_fd);
        ctx->container_fd = -1;
    }
    return false;
}

/* ---- groups ---- */

static VfioGroup *group_open(VfioContext *ctx, int id, const char *name,
                             const char *sysfs_dev, GError **errp)
{
    char path[32];
    struct vfio_group_status status = { .argsz = sizeof(status) };
    VfioGroup *group = g_new0(VfioGroup, 1);
    GError *err = NULL;

    group->ctx = ctx;
    group->id = id;
    snprintf(path, sizeof(path), "/dev/vfio/%d", id);
    group->fd = syscalls->open(path, O_RDWR);
    if (group->fd < 0) {
        int saved = errno;
        char *link = g_strdup_printf("%s/driver", sysfs_dev);
        char *driver = sysfs_link_name(link);
        if (saved == ENOENT && !driver) {
            error_setg(errp,
                       "vfio %s: %s: %s (the device has no driver: bind it to vfio-pci)",
                       name, path, g_strerror(saved));
        } else if (saved == ENOENT && strcmp(driver, "vfio-pci") != 0) {
            error_setg(errp,
                       "vfio %s: %s: %s (the device is bound to %s, not to vfio-pci)",
                       name, path, g_strerror(saved), driver);
        } else {
            error_setg(errp, "vfio %s: %s: %s", name, path, g_strerror(saved));
        }
        g_free(driver);
        g_free(link);
        g_free(group);
        return NULL;
    }
    if (syscalls->ioctl(group->fd, VFIO_GROUP_GET_STATUS, &status) < 0) {
        error_setg_errno(errp, errno, "vfio %s: failed to get group %d status", name, id);
        goto fail;
    }
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        char *blockers = group_blockers(sysfs_dev);
        error_setg(errp,
                   "vfio %s: group %d is not viable: %s%sbind every device of the group "
                   "to vfio-pci",
                   name, id, blockers, *blockers ? "; " : "");
        g_free(blockers);
        goto fail;
    }
    if (!container_add_group(ctx, group, name, errp)) {
        goto fail;
    }
    if (ctx->cfg.kvm_group &&
        !ctx->cfg.kvm_group(ctx->cfg.kvm_opaque, group->fd, true, &err)) {
        g_propagate_prefixed_error(errp, err, "vfio %s: group %d: ", name, id);
        syscalls->ioctl(group->fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
        if (ctx->groups->len == 0) {
            syscalls->close(ctx->container_fd);
            ctx->container_fd = -1;
        }
        goto fail;
    }
    g_ptr_array_add(ctx->groups, group);
    return group;
fail:
    syscalls->close(group->fd);
    g_free(group);
    return NULL;
}

static void vfio_group_put(VfioGroup *group)
{
    VfioContext *ctx = group->ctx;
    GError *err = NULL;

    if (--group->nr_devices > 0) {
        return;
    }
    if (ctx->cfg.kvm_group &&
        !ctx->cfg.kvm_group(ctx->cfg.kvm_opaque, group->fd, false, &err)) {
        warn_report("vfio group %d: %s", group->id, err->message);
        g_clear_error(&err);
    }
    if (syscalls->ioctl(group->fd, VFIO_GROUP_UNSET_CONTAINER, NULL) < 0) {
        warn_report("vfio group %d: VFIO_GROUP_UNSET_CONTAINER: %s", group->id,
                    g_strerror(errno));
    }
    syscalls->close(group->fd);
    g_ptr_array_remove(ctx->groups, group);
    g_free(group);
    if (ctx->groups->len == 0 && ctx->container_fd >= 0) {
        syscalls->close(ctx->container_fd);
        ctx->container_fd = -1;
    }
}

/* ---- devices ---- */

static bool device_get_info(VfioHostDevice *hdev, GError **errp)
{
    struct vfio_device_info info = { .argsz = sizeof(info) };

    if (syscalls->ioctl(hdev->fd, VFIO_DEVICE_GET_INFO, &info) < 0) {
        error_setg_errno(errp, errno, "vfio %s: VFIO_DEVICE_GET_INFO", hdev->dev.name);
        return false;
    }
    if (info.num_regions > 64 || info.num_irqs > 64) {
        error_setg(errp, "vfio %s: VFIO_DEVICE_GET_INFO: %u regions, %u irqs is too many",
                   hdev->dev.name, info.num_regions, info.num_irqs);
        return false;
    }
    hdev->dev.flags = info.flags;
    hdev->dev.nr_regions = info.num_regions;
    hdev->dev.nr_irqs = info.num_irqs;
    hdev->places = g_new0(struct VfioRegionPlace, info.num_regions);
    return true;
}

VfioDevice *vfio_device_open(VfioContext *ctx, const char *sysfs_path, GError **errp)
{
    char *name = g_path_get_basename(sysfs_path);
    VfioGroup *group = NULL;
    VfioHostDevice *hdev;
    int id;

    context_settle(ctx); /* the same device may be closing still */
    if (syscalls->access(sysfs_path, F_OK) < 0) {
        error_setg_errno(errp, errno, "vfio %s: no such host device", sysfs_path);
        g_free(name);
        return NULL;
    }
    for (guint i = 0; i < ctx->devices->len; i++) {
        VfioHostDevice *open_dev = g_ptr_array_index(ctx->devices, i);
        if (strcmp(open_dev->dev.name, name) == 0) {
            error_setg(errp, "vfio %s: device is already attached", name);
            g_free(name);
            return NULL;
        }
    }
    id = sysfs_group_id(name, sysfs_path, errp);
    if (id < 0) {
        g_free(name);
        return NULL;
    }
    for (guint i = 0; i < ctx->groups->len && !group; i++) {
        VfioGroup *g = g_ptr_array_index(ctx->groups, i);
        group = g->id == id ? g : NULL;
    }
    if (!group) {
        group = group_open(ctx, id, name, sysfs_path, errp);
        if (!group) {
            g_free(name);
            return NULL;
        }
    }
    group->nr_devices++;

    hdev = g_new0(VfioHostDevice, 1);
    hdev->dev.ops = &vfio_host_device_ops;
    hdev->dev.name = name;
    hdev->dev.backend = hdev;
    hdev->group = group;
    hdev->fd = syscalls->ioctl(group->fd, VFIO_GROUP_GET_DEVICE_FD, name);
    if (hdev->fd < 0) {
        error_setg(errp,
                   "vfio %s: error getting device from group %d: %s (is every device of "
                   "the group bound to vfio-pci, and this one not in use?)",
                   name, id, g_strerror(errno));
        goto fail;
    }
    if (!device_get_info(hdev, errp)) {
        syscalls->close(hdev->fd);
        goto fail;
    }
    g_ptr_array_add(ctx->devices, hdev);
    return &hdev->dev;
fail:
    vfio_group_put(group);
    g_free(hdev->places);
    g_free(name);
    g_free(hdev);
    return NULL;
}

void vfio_context_device_gone(VfioHostDevice *hdev)
{
    g_ptr_array_remove(hdev->group->ctx->devices, hdev);
    vfio_group_put(hdev->group);
}

typedef struct Closer {
    VfioHostDevice *hdev;
    void (*release)(VfioHostDevice *hdev);
} Closer;

static void *closer_run(void *opaque)
{
    Closer *c = opaque;
    VfioContext *ctx = c->hdev->group->ctx;

    pthread_mutex_lock(&ctx->close_lock);
    c->release(c->hdev);
    pthread_mutex_unlock(&ctx->close_lock);
    g_free(c);
    __atomic_sub_fetch(&ctx->closing, 1, __ATOMIC_SEQ_CST);
    if (ctx->cfg.closed) {
        ctx->cfg.closed(ctx->cfg.closed_opaque); /* ctx lives until joined */
    }
    return NULL;
}

void vfio_context_device_close(VfioHostDevice *hdev,
                               void (*release)(VfioHostDevice *hdev))
{
    VfioContext *ctx = hdev->group->ctx;
    Closer *c;
    pthread_t thread;

    if (!ctx->cfg.close_in_background) {
        release(hdev);
        return;
    }
    c = g_new0(Closer, 1);
    c->hdev = hdev;
    c->release = release;
    __atomic_add_fetch(&ctx->closing, 1, __ATOMIC_SEQ_CST);
    if (pthread_create(&thread, NULL, closer_run, c) != 0) {
        closer_run(c); /* no thread: here, then */
        return;
    }
    g_array_append_val(ctx->closers, thread);
}

/* Wait for the background closes (main thread). */
static void context_settle(VfioContext *ctx)
{
    for (guint i = 0; i < ctx->closers->len; i++) {
        pthread_join(g_array_index(ctx->closers, pthread_t, i), NULL);
    }
    g_array_set_size(ctx->closers, 0);
}

unsigned vfio_context_closing(VfioContext *ctx)
{
    return __atomic_load_n(&ctx->closing, __ATOMIC_SEQ_CST);
}

/* ---- the context ---- */

VfioContext *vfio_context_new(const VfioContextConfig *cfg)
{
    VfioContext *ctx = g_new0(VfioContext, 1);

    ctx->cfg = *cfg;
    ctx->ram = g_array_new(false, false, sizeof(VfioRamRange));
    if (cfg->nr_ram) {
        g_array_append_vals(ctx->ram, cfg->ram, cfg->nr_ram);
    }
    ctx->cfg.ram = NULL; /* the caller's array need not outlive this call */
    ctx->cfg.nr_ram = 0;
    ctx->groups = g_ptr_array_new();
    ctx->devices = g_ptr_array_new();
    ctx->container_fd = -1;
    pthread_mutex_init(&ctx->close_lock, NULL);
    ctx->closers = g_array_new(false, false, sizeof(pthread_t));
    return ctx;
}

void vfio_context_free(VfioContext *ctx)
{
    if (!ctx) {
        return;
    }
    context_settle(ctx);
    g_assert(ctx->devices->len == 0 && ctx->groups->len == 0);
    g_array_free(ctx->closers, true);
    pthread_mutex_destroy(&ctx->close_lock);
    g_array_free(ctx->ram, true);
    g_ptr_array_free(ctx->groups, true);
    g_ptr_array_free(ctx->devices, true);
    g_free(ctx);
}

static bool ranges_overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size)
{
    return a < b + b_size && b < a + a_size;
}

bool vfio_context_map(VfioContext *ctx, const VfioRamRange *range, GError **errp)
{
    GError *err = NULL;

    context_settle(ctx);
    if (range->size == 0 || range->gpa + range->size < range->gpa) {
        error_setg(errp,
                   "vfio: cannot map 0x%" G_GINT64_MODIFIER
                   "x bytes at 0x%" G_GINT64_MODIFIER "x",
                   range->size, range->gpa);
        return false;
    }
    for (guint i = 0; i < ctx->ram->len; i++) {
        const VfioRamRange *r = &g_array_index(ctx->ram, VfioRamRange, i);
        if (ranges_overlap(r->gpa, r->size, range->gpa, range->size)) {
            error_setg(errp,
                       "vfio: RAM at 0x%" G_GINT64_MODIFIER
                       "x overlaps the mapping at 0x%" G_GINT64_MODIFIER "x",
                       range->gpa, r->gpa);
            return false;
        }
    }
    g_array_append_val(ctx->ram, *range);
    if (ctx->container_fd >= 0 && !dma_map(ctx, range, &err)) {
        g_array_set_size(ctx->ram, ctx->ram->len - 1);
        g_propagate_prefixed_error(errp, err, "vfio: ");
        return false;
    }
    return true;
}

bool vfio_context_unmap(VfioContext *ctx, uint64_t gpa, uint64_t size, GError **errp)
{
    GError *err = NULL;
    bool any = false;

    context_settle(ctx);
    /* Type1 v2 never splits a mapping: every range touched goes whole */
    for (guint i = 0; i < ctx->ram->len; i++) {
        const VfioRamRange *r = &g_array_index(ctx->ram, VfioRamRange, i);
        if (!ranges_overlap(r->gpa, r->size, gpa, size)) {
            continue;
        }
        if (r->gpa < gpa || r->gpa + r->size > gpa + size) {
            error_setg(errp,
                       "vfio: unmapping 0x%" G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER
                       "x would split the mapping at 0x%" G_GINT64_MODIFIER
                       "x+0x%" G_GINT64_MODIFIER "x",
                       gpa, size, r->gpa, r->size);
            return false;
        }
        any = true;
    }
    if (!any) {
        return true;
    }
    if (ctx->container_fd >= 0 && !dma_unmap(ctx, gpa, size, &err)) {
        g_propagate_prefixed_error(errp, err, "vfio: ");
        return false;
    }
    for (guint i = ctx->ram->len; i-- > 0;) {
        const VfioRamRange *r = &g_array_index(ctx->ram, VfioRamRange, i);
        if (ranges_overlap(r->gpa, r->size, gpa, size)) {
            g_array_remove_index(ctx->ram, i);
        }
    }
    return true;
}
