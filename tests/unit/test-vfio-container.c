/*
 * The VFIO container/group backend (hw/vfio/container.c, vfio-device.c)
 * over a fake kernel: a sysfs tree in a temporary folder and a table of
 * system calls standing in for /dev/vfio.  Every ioctl's failure gives one
 * clear error and leaves no descriptor open.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hw/vfio/vfio-int.h"
#include "unit.h"

#define FAKE_FD_BASE 1000
#define FAKE_NR_FDS  32
#define DEV_A        "0000:01:00.0"
#define DEV_B        "0000:01:00.1" /* A's group (7) */
#define DEV_C        "0000:02:00.0" /* group 8, alone */
#define REGION_SHIFT 40
#define MiB          (1024ull * 1024)

typedef enum FdKind {
    FD_FREE,
    FD_CONTAINER,
    FD_GROUP,
    FD_DEVICE,
} FdKind;

/* What the fake kernel holds; reset by setup() for every case. */
static struct Fake {
    char *root; /* the sysfs tree */
    FdKind fds[FAKE_NR_FDS];
    int fd_group[FAKE_NR_FDS]; /* FD_GROUP, FD_DEVICE: the group id */
    int open_fds, open_maps;
    /* the kernel's answers */
    int api_version, type1v2;
    bool viable[16], group_dev_node[16];
    uint32_t dev_flags, num_regions, num_irqs;
    uint8_t region_reply[9][512] __attribute__((aligned(8)));
    size_t region_len[9];
    uint8_t config[256];
    rlim_t memlock;
    /* one injected failure: the nth (from 0) call of request fails */
    unsigned long fail_request;
    int fail_errno, fail_nth;
    bool kvm_fail;
    int rw_errno; /* pread/pwrite fail with it (0: they work) */
    /* what the backend did */
    int groups_in_container, set_iommu_calls, resets;
    bool iommu_set;
    struct {
        uint64_t iova, size;
    } maps[8];
    int nr_maps;
    uint8_t irq_set[sizeof(struct vfio_irq_set) + 64] __attribute__((aligned(8)));
    int kvm_adds, kvm_dels;
    /* a device fd's close waits here while held (the kernel's bus reset) */
    bool hold_device_close;
    int in_device_close; /* atomic: a close is waiting */
} fake;

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;

static FdKind fd_kind(int fd)
{
    int i = fd - FAKE_FD_BASE;

    return i >= 0 && i < FAKE_NR_FDS ? fake.fds[i] : FD_FREE;
}

static int fd_new(FdKind kind, int group)
{
    for (int i = 0; i < FAKE_NR_FDS; i++) {
        if (fake.fds[i] == FD_FREE) {
            fake.fds[i] = kind;
            fake.fd_group[i] = group;
            fake.open_fds++;
            return FAKE_FD_BASE + i;
        }
    }
    errno = EMFILE;
    return -1;
}

static int fake_open(const char *path, int flags)
{
    int group;

    if (strcmp(path, "/dev/vfio/vfio") == 0) {
        if (fake.fail_request == (unsigned long)-1) {
            errno = fake.fail_errno;
            return -1;
        }
        return fd_new(FD_CONTAINER, -1);
    }
    if (sscanf(path, "/dev/vfio/%d", &group) == 1 && group >= 0 && group < 16 &&
        fake.group_dev_node[group]) {
        return fd_new(FD_GROUP, group);
    }
    errno = ENOENT;
    return -1;
}

static int fake_close(int fd)
{
    if (fd_kind(fd) == FD_FREE) {
        fprintf(stderr, "close of fd %d, which is not open\n", fd);
        unit_failed = 1;
        errno = EBADF;
        return -1;
    }
    if (fd_kind(fd) == FD_DEVICE) {
        pthread_mutex_lock(&gate_lock);
        __atomic_store_n(&fake.in_device_close, 1, __ATOMIC_SEQ_CST);
        while (fake.hold_device_close) {
            pthread_cond_wait(&gate_cond, &gate_lock);
        }
        __atomic_store_n(&fake.in_device_close, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&gate_lock);
    }
    fake.fds[fd - FAKE_FD_BASE] = FD_FREE;
    fake.open_fds--;
    return 0;
}

static uint64_t mapped_total(void)
{
    uint64_t total = 0;

    for (int i = 0; i < fake.nr_maps; i++) {
        total += fake.maps[i].size;
    }
    return total;
}

static int container_ioctl(unsigned long request, void *arg)
{
    switch (request) {
    case VFIO_GET_API_VERSION:
        return fake.api_version;
    case VFIO_CHECK_EXTENSION:
        return (uintptr_t)arg == VFIO_TYPE1v2_IOMMU ? fake.type1v2 : 0;
    case VFIO_SET_IOMMU:
        if (!fake.groups_in_container || fake.iommu_set) {
            errno = EINVAL;
            return -1;
        }
        fake.iommu_set = true;
        fake.set_iommu_calls++;
        return 0;
    case VFIO_IOMMU_MAP_DMA: {
        struct vfio_iommu_type1_dma_map *map = arg;
        CHECK_EQ(map->argsz, sizeof(*map));
        CHECK_EQ(map->flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
        if (!fake.iommu_set || fake.nr_maps == 8) {
            errno = EINVAL;
            return -1;
        }
        if (mapped_total() + map->size > fake.memlock) {
            errno = ENOMEM;
            return -1;
        }
        fake.maps[fake.nr_maps].iova = map->iova;
        fake.maps[fake.nr_maps++].size = map->size;
        return 0;
    }
    case VFIO_IOMMU_UNMAP_DMA: {
        struct vfio_iommu_type1_dma_unmap *unmap = arg;
        for (int i = fake.nr_maps; i-- > 0;) {
            if (fake.maps[i].iova >= unmap->iova &&
                fake.maps[i].iova + fake.maps[i].size <= unmap->iova + unmap->size) {
                fake.maps[i] = fake.maps[--fake.nr_maps];
            }
        }
        return 0;
    }
    }
    errno = ENOTTY;
    return -1;
}

static int group_ioctl(int fd, unsigned long request, void *arg)
{
    int group = fake.fd_group[fd - FAKE_FD_BASE];

    switch (request) {
    case VFIO_GROUP_GET_STATUS: {
        struct vfio_group_status *status = arg;
        status->flags = fake.viable[group] ? VFIO_GROUP_FLAGS_VIABLE : 0;
        return 0;
    }
    case VFIO_GROUP_SET_CONTAINER:
        CHECK_EQ(fd_kind(*(int *)arg), FD_CONTAINER);
        fake.groups_in_container++;
        return 0;
    case VFIO_GROUP_UNSET_CONTAINER:
        if (--fake.groups_in_container == 0) {
            fake.iommu_set = false; /* the IOMMU goes with the last group */
            fake.nr_maps = 0;
        }
        return 0;
    case VFIO_GROUP_GET_DEVICE_FD: {
        const char *name = arg;
        int want = strcmp(name, DEV_C) == 0 ? 8 : 7;
        if (want != group) {
            errno = ENODEV;
            return -1;
        }
        return fd_new(FD_DEVICE, group);
    }
    }
    errno = ENOTTY;
    return -1;
}

static int device_ioctl(unsigned long request, void *arg)
{
    switch (request) {
    case VFIO_DEVICE_GET_INFO: {
        struct vfio_device_info *info = arg;
        info->flags = fake.dev_flags;
        info->num_regions = fake.num_regions;
        info->num_irqs = fake.num_irqs;
        return 0;
    }
    case VFIO_DEVICE_GET_REGION_INFO: {
        struct vfio_region_info *info = arg;
        uint32_t argsz = info->argsz;
        if (info->index >= 9 || fake.region_len[info->index] == 0) {
            errno = EINVAL;
            return -1;
        }
        size_t len = fake.region_len[info->index];
        if (argsz < len) {
            /* as the kernel: the fixed part, and the size the caps need */
            memcpy(info, fake.region_reply[info->index], sizeof(*info));
            info->argsz = len;
            info->cap_offset = 0;
        } else {
            memcpy(info, fake.region_reply[info->index], len);
            info->argsz = argsz;
        }
        return 0;
    }
    case VFIO_DEVICE_GET_IRQ_INFO: {
        struct vfio_irq_info *info = arg;
        static const uint32_t counts[] = { 1, 1, 5, 1, 1 };
        if (info->index >= 5) {
            errno = EINVAL;
            return -1;
        }
        info->flags = VFIO_IRQ_INFO_EVENTFD |
                      (info->index == 2 ? VFIO_IRQ_INFO_NORESIZE : 0);
        info->count = counts[info->index];
        return 0;
    }
    case VFIO_DEVICE_SET_IRQS: {
        struct vfio_irq_set *set = arg;
        CHECK(set->argsz <= sizeof(fake.irq_set));
        memcpy(fake.irq_set, set, MIN(set->argsz, sizeof(fake.irq_set)));
        return 0;
    }
    case VFIO_DEVICE_RESET:
        fake.resets++;
        return 0;
    }
    errno = ENOTTY;
    return -1;
}

static int fake_ioctl(int fd, unsigned long request, void *arg)
{
    if (request == fake.fail_request && fake.fail_nth-- == 0) {
        errno = fake.fail_errno;
        return -1;
    }
    switch (fd_kind(fd)) {
    case FD_CONTAINER:
        return container_ioctl(request, arg);
    case FD_GROUP:
        return group_ioctl(fd, request, arg);
    case FD_DEVICE:
        return device_ioctl(request, arg);
    default:
        errno = EBADF;
        return -1;
    }
}

/* The config region (index 7) at 7 << REGION_SHIFT. */
static ssize_t fake_pread(int fd, void *buf, size_t len, off_t off)
{
    uint64_t base = (uint64_t)7 << REGION_SHIFT;

    if (fd_kind(fd) != FD_DEVICE) {
        errno = EBADF;
        return -1;
    }
    if (fake.rw_errno) {
        errno = fake.rw_errno;
        return -1;
    }
    if ((uint64_t)off < base || (uint64_t)off - base + len > sizeof(fake.config)) {
        errno = EINVAL;
        return -1;
    }
    /* one byte at a time, so callers must loop */
    memcpy(buf, fake.config + (off - base), 1);
    return 1;
}

static ssize_t fake_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    uint64_t base = (uint64_t)7 << REGION_SHIFT;

    if (fd_kind(fd) != FD_DEVICE || (uint64_t)off < base ||
        (uint64_t)off - base + len > sizeof(fake.config)) {
        errno = EINVAL;
        return -1;
    }
    if (fake.rw_errno) {
        errno = fake.rw_errno;
        return -1;
    }
    memcpy(fake.config + (off - base), buf, len);
    return len;
}

static void *fake_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p;

    if (fd_kind(fd) != FD_DEVICE || off != 0) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fake.open_maps += p != MAP_FAILED;
    return p;
}

static int fake_munmap(void *addr, size_t len)
{
    fake.open_maps--;
    return munmap(addr, len);
}

static int fake_getrlimit(int resource, struct rlimit *limit)
{
    CHECK_EQ(resource, RLIMIT_MEMLOCK);
    limit->rlim_cur = limit->rlim_max = fake.memlock;
    return 0;
}

static bool fake_kvm_group(void *opaque, int group_fd, bool add, GError **errp)
{
    CHECK_EQ(fd_kind(group_fd), FD_GROUP);
    if (add && fake.kvm_fail) {
        g_set_error(errp, G_FILE_ERROR, 0,
                    "KVM_SET_DEVICE_ATTR (KVM_DEV_VFIO_GROUP_ADD): "
                    "No such device");
        return false;
    }
    add ? fake.kvm_adds++ : fake.kvm_dels++;
    return true;
}

static VfioSyscalls fake_sys;

/* ---- the sysfs tree ---- */

static void mk(const char *rel)
{
    char *path = g_strdup_printf("%s/%s", fake.root, rel);
    CHECK_EQ(g_mkdir_with_parents(path, 0755), 0);
    g_free(path);
}

static void link_to(const char *target, const char *link)
{
    char *t = g_strdup_printf("%s/%s", fake.root, target);
    char *l = g_strdup_printf("%s/%s", fake.root, link);
    CHECK_EQ(symlink(t, l), 0);
    g_free(t);
    g_free(l);
}

/* A device in group (or none: -1) bound to driver (or none: NULL). */
static void sysfs_device(const char *bdf, int group, const char *driver)
{
    char *dev = g_strdup_printf("bus/pci/devices/%s", bdf);
    mk(dev);
    if (group >= 0) {
        char *group_dir = g_strdup_printf("kernel/iommu_groups/%d", group);
        char *devices = g_strdup_printf("%s/devices", group_dir);
        char *member = g_strdup_printf("%s/%s", devices, bdf);
        char *link = g_strdup_printf("%s/iommu_group", dev);
        mk(devices);
        link_to(group_dir, link);
        link_to(dev, member);
        g_free(group_dir);
        g_free(devices);
        g_free(member);
        g_free(link);
    }
    if (driver) {
        char *drv = g_strdup_printf("bus/pci/drivers/%s", driver);
        char *link = g_strdup_printf("%s/driver", dev);
        mk(drv);
        link_to(drv, link);
        g_free(drv);
        g_free(link);
    }
    g_free(dev);
}

static char *dev_path(const char *bdf)
{
    return g_strdup_printf("%s/bus/pci/devices/%s", fake.root, bdf);
}

/* ---- the fake device's regions ---- */

static size_t put(uint8_t *buf, size_t off, const void *data, size_t len)
{
    memcpy(buf + off, data, len);
    return off + len;
}

static void region_plain(unsigned index, uint32_t flags, uint64_t size)
{
    struct vfio_region_info info = {
        .argsz = sizeof(info),
        .flags = flags,
        .index = index,
        .size = size,
        .offset = (uint64_t)index << REGION_SHIFT,
    };
    fake.region_len[index] = put(fake.region_reply[index], 0, &info, sizeof(info));
}

/* BAR0 as an e1000e behind vfio-pci with MSI-X in it: two sparse areas
 * around the table page, then MSIX_MAPPABLE. */
static void region_bar0_sparse(void)
{
    struct vfio_region_info info = {
        .argsz = sizeof(info),
        .flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                 VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS,
        .index = 0,
        .cap_offset = sizeof(info),
        .size = 128 * 1024,
        .offset = 0,
    };
    struct vfio_region_info_cap_sparse_mmap sparse = {
        .header = { .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1 },
        .nr_areas = 2,
    };
    struct vfio_region_sparse_mmap_area areas[2] = {
        { .offset = 0, .size = 0xe000 },
        { .offset = 0xf000, .size = 0x11000 },
    };
    struct vfio_info_cap_header msix = { .id = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
                                         .version = 1 };
    uint8_t *buf = fake.region_reply[0];
    size_t off;

    sparse.header.next = sizeof(info) + sizeof(sparse) + sizeof(areas);
    off = put(buf, 0, &info, sizeof(info));
    off = put(buf, off, &sparse, sizeof(sparse));
    off = put(buf, off, areas, sizeof(areas));
    off = put(buf, off, &msix, sizeof(msix));
    fake.region_len[0] = off;
}

/* ---- set-up ---- */

static const VfioRamRange ram[2] = {
    { .gpa = 0, .size = 3 * MiB, .host = (void *)0x7f0000000000 },
    { .gpa = 4096 * MiB, .size = 1 * MiB, .host = (void *)0x7f1000000000 },
};

static VfioContextConfig ctx_config = {
    .ram = ram,
    .nr_ram = 2,
    .kvm_group = fake_kvm_group,
};

static void setup(void)
{
    char *root = g_dir_make_tmp("vfio-sysfs-XXXXXX", NULL);

    memset(&fake, 0, sizeof(fake));
    fake.root = root;
    fake.api_version = VFIO_API_VERSION;
    fake.type1v2 = 1;
    fake.viable[7] = fake.viable[8] = true;
    fake.group_dev_node[7] = fake.group_dev_node[8] = true;
    fake.dev_flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
    fake.num_regions = 9;
    fake.num_irqs = 5;
    fake.memlock = RLIM_INFINITY;
    fake.fail_request = 0;
    fake.config[0] = 0x86;
    fake.config[1] = 0x80;
    fake.config[2] = 0xd3;
    fake.config[3] = 0x10;
    region_bar0_sparse();
    region_plain(3,
                 VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                     VFIO_REGION_INFO_FLAG_MMAP,
                 16 * 1024);
    region_plain(1, 0, 0); /* an unused BAR */
    region_plain(7, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 256);
    sysfs_device(DEV_A, 7, "vfio-pci");
    sysfs_device(DEV_B, 7, "vfio-pci");
    sysfs_device(DEV_C, 8, "vfio-pci");

    fake_sys = vfio_syscalls_libc;
    fake_sys.open = fake_open;
    fake_sys.close = fake_close;
    fake_sys.ioctl = fake_ioctl;
    fake_sys.pread = fake_pread;
    fake_sys.pwrite = fake_pwrite;
    fake_sys.mmap = fake_mmap;
    fake_sys.munmap = fake_munmap;
    fake_sys.getrlimit = fake_getrlimit;
    vfio_syscalls_override(&fake_sys, fake.root);
}

static void rm_tree(const char *path)
{
    GDir *dir = g_dir_open(path, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        char *child = g_build_filename(path, name, NULL);
        if (g_file_test(child, G_FILE_TEST_IS_SYMLINK) ||
            !g_file_test(child, G_FILE_TEST_IS_DIR)) {
            unlink(child);
        } else {
            rm_tree(child);
        }
        g_free(child);
    }
    if (dir) {
        g_dir_close(dir);
    }
    rmdir(path);
}

/* Every case ends here: nothing of the fake kernel is left open. */
static void teardown(void)
{
    CHECK_EQ(fake.open_fds, 0);
    CHECK_EQ(fake.open_maps, 0);
    CHECK_EQ(fake.kvm_adds, fake.kvm_dels);
    CHECK_EQ(fake.groups_in_container, 0);
    vfio_syscalls_override(NULL, NULL);
    rm_tree(fake.root);
    g_free(fake.root);
}

/* End of a test: close dev (if it opened), free ctx, check nothing leaked. */
static void end_test(VfioContext *ctx, VfioDevice *dev)
{
    if (dev) {
        dev->ops->close(dev);
    }
    vfio_context_free(ctx);
    teardown();
}

/* Open bdf in ctx; NULL with *msg set to the error's text on failure. */
static VfioDevice *open_dev(VfioContext *ctx, const char *bdf, char **msg)
{
    char *path = dev_path(bdf);
    GError *err = NULL;
    VfioDevice *dev = vfio_device_open(ctx, path, &err);

    g_free(path);
    *msg = NULL;
    if (!dev) {
        CHECK(err != NULL);
        *msg = err ? g_strdup(err->message) : g_strdup("");
        g_clear_error(&err);
    }
    return dev;
}

/* setup(), a context with ctx_config and DEV_A open in it: the device. */
static VfioDevice *start_test(VfioContext **ctx)
{
    VfioDevice *dev;
    char *msg;

    setup();
    *ctx = vfio_context_new(&ctx_config);
    dev = open_dev(*ctx, DEV_A, &msg);
    CHECK(dev != NULL);
    g_free(msg);
    return dev;
}

static bool contains(const char *msg, const char *part)
{
    if (!msg || !strstr(msg, part)) {
        fprintf(stderr, "expected \"%s\" in: %s\n", part, msg ? msg : "(no error)");
        return false;
    }
    return true;
}

/* ---- the cases ---- */

UNIT_TEST(host_bdf_becomes_a_sysfs_path)
{
    GError *err = NULL;
    char *path, *want;

    setup();
    want = dev_path(DEV_A);
    path = vfio_sysfs_path("01:00.0", &err);
    CHECK_STR(path, want);
    g_free(path);
    path = vfio_sysfs_path("0000:01:00.0", &err);
    CHECK_STR(path, want);
    g_free(path);
    path = vfio_sysfs_path("1:0.0", &err); /* QEMU takes short fields too */
    CHECK_STR(path, want);
    g_free(path);
    path = vfio_sysfs_path("001:00.0", &err); /* and a domain-sized bus */
    CHECK_STR(path, want);
    g_free(path);
    g_free(want);
    CHECK(err == NULL);

    static const char *const malformed[] = {
        "xyz",      "01:00", "01:20.0",     "01:00.8",  "10000:01:00.0",
        "01:00.0x", "",      "0000:01:00.", ":01:00.0",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(malformed); i++) {
        char *msg = g_strdup_printf("Property 'vfio-pci.host' doesn't take value '%s'",
                                    malformed[i]);
        CHECK(vfio_sysfs_path(malformed[i], &err) == NULL);
        CHECK_STR(err ? err->message : NULL, msg);
        g_clear_error(&err);
        g_free(msg);
    }
    CHECK(vfio_sysfs_path("03:1f.7", &err) == NULL);
    want = g_strdup_printf("vfio %s/bus/pci/devices/0000:03:1f.7: no such host device: "
                           "No such file or directory",
                           fake.root);
    CHECK_STR(err ? err->message : NULL, want);
    g_free(want);
    g_clear_error(&err);
    teardown();
}

UNIT_TEST(open_maps_ram_and_registers_the_group)
{
    VfioContext *ctx;
    VfioDevice *dev;
    char *msg;

    setup();
    ctx = vfio_context_new(&ctx_config);
    CHECK_EQ(fake.open_fds, 0); /* nothing opened before the first device */
    dev = open_dev(ctx, DEV_A, &msg);
    CHECK(dev != NULL);
    CHECK_STR(dev->name, DEV_A);
    CHECK_EQ(dev->flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
    CHECK_EQ(dev->nr_regions, 9);
    CHECK_EQ(dev->nr_irqs, 5);
    CHECK_EQ(fake.open_fds, 3); /* container, group, device */
    CHECK_EQ(fake.set_iommu_calls, 1);
    CHECK_EQ(fake.nr_maps, 2);
    CHECK_EQ(mapped_total(), 4 * MiB);
    CHECK_EQ(fake.kvm_adds, 1);
    dev->ops->close(dev);
    CHECK_EQ(fake.kvm_dels, 1);
    CHECK_EQ(fake.open_fds, 0);
    vfio_context_free(ctx);
    teardown();
}

UNIT_TEST(devices_of_one_group_share_it)
{
    VfioContext *ctx;
    VfioDevice *a, *b, *c, *again;
    char *msg;

    setup();
    ctx = vfio_context_new(&ctx_config);
    a = open_dev(ctx, DEV_A, &msg);
    b = open_dev(ctx, DEV_B, &msg);
    c = open_dev(ctx, DEV_C, &msg);
    CHECK(a && b && c);
    /* one container, groups 7 and 8, three devices; the IOMMU set once */
    CHECK_EQ(fake.open_fds, 6);
    CHECK_EQ(fake.set_iommu_calls, 1);
    CHECK_EQ(fake.kvm_adds, 2);
    CHECK_EQ(fake.groups_in_container, 2);
    again = open_dev(ctx, DEV_B, &msg);
    CHECK(again == NULL);
    CHECK_STR(msg, "vfio " DEV_B ": device is already attached");
    g_free(msg);
    a->ops->close(a);
    CHECK_EQ(fake.open_fds, 5); /* group 7 stays for B */
    CHECK_EQ(fake.kvm_dels, 0);
    b->ops->close(b);
    CHECK_EQ(fake.open_fds, 3);
    CHECK_EQ(fake.kvm_dels, 1);
    c->ops->close(c);
    CHECK_EQ(fake.open_fds, 0);
    /* the container comes back with the next device, RAM mapped again */
    a = open_dev(ctx, DEV_A, &msg);
    CHECK(a != NULL);
    CHECK_EQ(fake.set_iommu_calls, 2);
    CHECK_EQ(fake.nr_maps, 2);
    end_test(ctx, a);
}

UNIT_TEST(no_iommu_group_says_there_is_no_iommu)
{
    VfioContext *ctx;
    char *msg;

    setup();
    sysfs_device("0000:05:00.0", -1, "e1000e");
    ctx = vfio_context_new(&ctx_config);
    CHECK(open_dev(ctx, "0000:05:00.0", &msg) == NULL);
    CHECK(contains(msg,
                   "vfio 0000:05:00.0: no iommu_group found: No such file or directory"));
    CHECK(contains(msg, "intel_iommu=on"));
    g_free(msg);
    end_test(ctx, NULL);
}

UNIT_TEST(device_not_bound_to_vfio_pci_names_its_driver)
{
    VfioContext *ctx;
    char *msg;

    setup();
    sysfs_device("0000:06:00.0", 9, "e1000e"); /* no /dev/vfio/9 */
    ctx = vfio_context_new(&ctx_config);
    CHECK(open_dev(ctx, "0000:06:00.0", &msg) == NULL);
    CHECK_STR(msg,
              "vfio 0000:06:00.0: /dev/vfio/9: No such file or directory (the device "
              "is bound to e1000e, not to vfio-pci)");
    g_free(msg);
    sysfs_device("0000:06:00.1", 11, NULL); /* no driver at all */
    CHECK(open_dev(ctx, "0000:06:00.1", &msg) == NULL);
    CHECK_STR(msg,
              "vfio 0000:06:00.1: /dev/vfio/11: No such file or directory (the device "
              "has no driver: bind it to vfio-pci)");
    g_free(msg);
    end_test(ctx, NULL);
}

UNIT_TEST(group_not_viable_names_the_devices_in_the_way)
{
    VfioContext *ctx;
    char *msg;

    setup();
    sysfs_device("0000:07:00.0", 10, "vfio-pci");
    sysfs_device("0000:07:00.1", 10, "e1000e");
    sysfs_device("0000:07:00.2", 10, NULL); /* no driver: no obstacle */
    fake.group_dev_node[10] = true;
    ctx = vfio_context_new(&ctx_config);
    CHECK(open_dev(ctx, "0000:07:00.0", &msg) == NULL);
    CHECK_STR(msg, "vfio 0000:07:00.0: group 10 is not viable: 0000:07:00.1 (bound to "
                   "e1000e); bind every device of the group to vfio-pci");
    g_free(msg);
    end_test(ctx, NULL);
}

/* Each ioctl of the open path failing, and what the user reads. */
UNIT_TEST(every_open_ioctl_failure_is_one_clear_error)
{
    static const struct {
        unsigned long request;
        int err, nth;
        const char *message;
    } cases[] = {
        { (unsigned long)-1, EACCES, 0,
          "vfio " DEV_A ": /dev/vfio/vfio: Permission denied" },
        { VFIO_GROUP_GET_STATUS, EIO, 0,
          "vfio " DEV_A ": failed to get group 7 status: Input/output error" },
        { VFIO_GROUP_SET_CONTAINER, EBUSY, 0,
          "vfio " DEV_A ": VFIO_GROUP_SET_CONTAINER (group 7): Device or resource busy" },
        { VFIO_SET_IOMMU, EPERM, 0,
          "vfio " DEV_A
          ": VFIO_SET_IOMMU (VFIO_TYPE1v2_IOMMU): Operation not permitted" },
        { VFIO_IOMMU_MAP_DMA, EFAULT, 1,
          "vfio " DEV_A ": VFIO_IOMMU_MAP_DMA of guest RAM at 0x100000000 (0x100000 "
          "bytes): Bad address" },
        { VFIO_GROUP_GET_DEVICE_FD, EBUSY, 0,
          "vfio " DEV_A
          ": error getting device from group 7: Device or resource busy (is "
          "every device of the group bound to vfio-pci, and this one not in use?)" },
        { VFIO_DEVICE_GET_INFO, EINVAL, 0,
          "vfio " DEV_A ": VFIO_DEVICE_GET_INFO: Invalid argument" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        VfioContext *ctx;
        char *msg;

        setup();
        fake.fail_request = cases[i].request;
        fake.fail_errno = cases[i].err;
        fake.fail_nth = cases[i].nth;
        ctx = vfio_context_new(&ctx_config);
        CHECK(open_dev(ctx, DEV_A, &msg) == NULL);
        CHECK_STR(msg, cases[i].message);
        g_free(msg);
        /* the next try, with the kernel well again, works */
        fake.fail_request = 0;
        VfioDevice *dev = open_dev(ctx, DEV_A, &msg);
        CHECK(dev != NULL);
        CHECK_EQ(fake.nr_maps, 2);
        end_test(ctx, dev);
    }
}

UNIT_TEST(container_checks_api_version_and_type1v2)
{
    VfioContext *ctx;
    char *msg;

    setup();
    fake.api_version = 1;
    ctx = vfio_context_new(&ctx_config);
    CHECK(open_dev(ctx, DEV_A, &msg) == NULL);
    CHECK_STR(msg, "vfio " DEV_A ": supported vfio version: 0, reported version: 1");
    g_free(msg);
    fake.api_version = VFIO_API_VERSION;
    fake.type1v2 = 0;
    CHECK(open_dev(ctx, DEV_A, &msg) == NULL);
    CHECK(contains(msg, "vfio " DEV_A ": the host's VFIO has no Type1 v2 IOMMU"));
    g_free(msg);
    end_test(ctx, NULL);
}

UNIT_TEST(memlock_too_low_says_how_much_is_needed)
{
    VfioContext *ctx;
    char *msg;

    setup();
    fake.memlock = 64 * 1024;
    ctx = vfio_context_new(&ctx_config);
    CHECK(open_dev(ctx, DEV_A, &msg) == NULL);
    CHECK_STR(msg,
              "vfio " DEV_A ": VFIO_IOMMU_MAP_DMA of guest RAM at 0x0: Cannot allocate "
              "memory: the locked-memory limit (RLIMIT_MEMLOCK, ulimit -l) is 64 KiB and "
              "a passthrough device pins all guest RAM, 4096 KiB: raise it to at least "
              "that");
    g_free(msg);
    end_test(ctx, NULL);
}

UNIT_TEST(kvm_refusing_the_group_undoes_the_open)
{
    VfioContext *ctx;
    char *msg;

    setup();
    fake.kvm_fail = true;
    ctx = vfio_context_new(&ctx_config);
    CHECK(open_dev(ctx, DEV_A, &msg) == NULL);
    CHECK_STR(msg,
              "vfio " DEV_A ": group 7: KVM_SET_DEVICE_ATTR (KVM_DEV_VFIO_GROUP_ADD): "
              "No such device");
    g_free(msg);
    end_test(ctx, NULL);
}

UNIT_TEST(ram_changes_follow_the_iommu)
{
    VfioContextConfig config = ctx_config;
    VfioRamRange extra = { .gpa = 8192 * MiB,
                           .size = 2 * MiB,
                           .host = (void *)0x7f2000000000 };
    VfioRamRange late = { .gpa = 16384 * MiB,
                          .size = 1 * MiB,
                          .host = (void *)0x7f3000000000 };
    GError *err = NULL;
    VfioContext *ctx;
    VfioDevice *dev;
    char *msg;

    setup();
    config.nr_ram = 1;
    ctx = vfio_context_new(&config);
    /* before any device: remembered, mapped when the container comes */
    CHECK(vfio_context_map(ctx, &extra, &err));
    dev = open_dev(ctx, DEV_A, &msg);
    CHECK(dev != NULL);
    CHECK_EQ(fake.nr_maps, 2);
    CHECK_EQ(mapped_total(), 5 * MiB);
    /* with a device: mapped at once */
    CHECK(vfio_context_map(ctx, &late, &err));
    CHECK_EQ(fake.nr_maps, 3);
    /* overlaps and splits are refused before the kernel sees them */
    VfioRamRange overlap = { .gpa = 8193 * MiB,
                             .size = MiB,
                             .host = (void *)0x7f4000000000 };
    CHECK(!vfio_context_map(ctx, &overlap, &err));
    CHECK(contains(err ? err->message : NULL, "overlaps the mapping at 0x200000000"));
    g_clear_error(&err);
    CHECK(!vfio_context_unmap(ctx, 8192 * MiB, MiB, &err));
    CHECK(contains(err ? err->message : NULL, "would split the mapping at 0x200000000"));
    g_clear_error(&err);
    CHECK_EQ(fake.nr_maps, 3);
    CHECK(vfio_context_unmap(ctx, 8192 * MiB, 2 * MiB, &err));
    CHECK_EQ(fake.nr_maps, 2);
    CHECK_EQ(mapped_total(), 4 * MiB);
    /* a mapping the kernel refuses is not remembered */
    fake.memlock = 5 * MiB;
    CHECK(!vfio_context_map(ctx, &extra, &err));
    CHECK(contains(err ? err->message : NULL, "vfio: VFIO_IOMMU_MAP_DMA of guest RAM at "
                                              "0x200000000: Cannot allocate memory: the "
                                              "locked-memory limit"));
    CHECK(contains(err ? err->message : NULL, "pins all guest RAM, 6144 KiB"));
    g_clear_error(&err);
    fake.memlock = RLIM_INFINITY;
    /* unmap failing leaves the mapping (and the record of it) alone */
    fake.fail_request = VFIO_IOMMU_UNMAP_DMA;
    fake.fail_errno = EINVAL;
    CHECK(!vfio_context_unmap(ctx, late.gpa, late.size, &err));
    CHECK(contains(err ? err->message : NULL, "VFIO_IOMMU_UNMAP_DMA at 0x400000000"));
    g_clear_error(&err);
    dev->ops->close(dev);
    /* reopened: what is remembered is mapped, the refused range is not */
    dev = open_dev(ctx, DEV_A, &msg);
    CHECK(dev != NULL);
    CHECK_EQ(fake.nr_maps, 2);
    CHECK_EQ(mapped_total(), 4 * MiB);
    end_test(ctx, dev);
}

UNIT_TEST(regions_come_with_their_capabilities)
{
    VfioContext *ctx;
    VfioDevice *dev;
    VfioRegion region;
    GError *err = NULL;

    dev = start_test(&ctx);
    /* BAR0: too big for the first ask, sparse areas around the MSI-X table */
    CHECK(dev->ops->region_info(dev, 0, &region, &err));
    CHECK_EQ(region.index, 0);
    CHECK_EQ(region.size, 128 * 1024);
    CHECK_EQ(region.nr_areas, 2);
    CHECK_EQ(region.areas[0].offset, 0);
    CHECK_EQ(region.areas[0].size, 0xe000);
    CHECK_EQ(region.areas[1].offset, 0xf000);
    CHECK_EQ(region.areas[1].size, 0x11000);
    CHECK(region.msix_mappable);
    vfio_region_clear(&region);
    /* BAR3: mmap-able, no capabilities: one area, the whole BAR */
    CHECK(dev->ops->region_info(dev, 3, &region, &err));
    CHECK_EQ(region.nr_areas, 1);
    CHECK_EQ(region.areas[0].size, 16 * 1024);
    CHECK(!region.msix_mappable);
    vfio_region_clear(&region);
    /* an unused BAR and the config region: nothing to map */
    CHECK(dev->ops->region_info(dev, 1, &region, &err));
    CHECK_EQ(region.size, 0);
    CHECK_EQ(region.nr_areas, 0);
    CHECK(dev->ops->region_info(dev, 7, &region, &err));
    CHECK_EQ(region.size, 256);
    CHECK_EQ(region.offset, (uint64_t)7 << REGION_SHIFT);
    CHECK_EQ(region.nr_areas, 0);
    CHECK(region.areas == NULL);
    /* no such region */
    CHECK(!dev->ops->region_info(dev, 9, &region, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": no region 9 (the device has 9)");
    g_clear_error(&err);
    CHECK(!dev->ops->region_info(dev, 2, &region, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": VFIO_DEVICE_GET_REGION_INFO (region 2): Invalid argument");
    g_clear_error(&err);
    CHECK(err == NULL);
    dev->ops->close(dev);
    vfio_context_free(ctx);
    teardown();
}

/* A reply whose chain is broken, as vfio_region_parse sees it. */
static char *parse_error(const uint8_t *buf, size_t len)
{
    VfioRegion region;
    GError *err = NULL;
    char *msg = NULL;

    if (!vfio_region_parse("0000:01:00.0", buf, len, &region, &err)) {
        msg = g_strdup(err->message);
        g_error_free(err);
        CHECK(region.areas == NULL);
    } else {
        vfio_region_clear(&region);
    }
    return msg;
}

static void set_u32(uint8_t *buf, size_t off, uint32_t value)
{
    memcpy(buf + off, &value, sizeof(value));
}

UNIT_TEST(broken_capability_chains_are_errors)
{
    const size_t info = sizeof(struct vfio_region_info);
    const size_t sparse_next = info + 4; /* header.next of the sparse cap */
    const size_t nr_areas = info + 8;    /* its nr_areas */
    const size_t area1 = info + 16 + 16; /* the second area's offset */
    const size_t msix_next = info + 48 + 4;
    uint8_t buf[512];
    size_t len;
    char *msg;

    setup();
    len = fake.region_len[0];
    memcpy(buf, fake.region_reply[0], len);
    msg = parse_error(buf, len);
    CHECK(msg == NULL); /* the good reply parses */
    g_free(msg);

    /* the first capability beyond the reply */
    set_u32(buf, offsetof(struct vfio_region_info, cap_offset), 400);
    msg = parse_error(buf, len);
    CHECK(contains(msg, "region 0: capability at offset 400 is outside the reply"));
    g_free(msg);
    /* inside the fixed part */
    set_u32(buf, offsetof(struct vfio_region_info, cap_offset), 8);
    msg = parse_error(buf, len);
    CHECK(contains(msg, "capability at offset 8 is outside the reply"));
    g_free(msg);
    set_u32(buf, offsetof(struct vfio_region_info, cap_offset), info);

    /* a loop: the last capability points back at the first, or at itself */
    set_u32(buf, msix_next, info);
    msg = parse_error(buf, len);
    CHECK(contains(msg, "capability at offset 32 is outside the reply (88 bytes) or not "
                        "after the one before"));
    g_free(msg);
    set_u32(buf, msix_next, info + 48);
    msg = parse_error(buf, len);
    CHECK(msg != NULL);
    g_free(msg);
    set_u32(buf, msix_next, 0);
    /* a header cut by the end of the reply */
    set_u32(buf, sparse_next, len - 4);
    msg = parse_error(buf, len);
    CHECK(contains(msg, "capability at offset 84 is outside the reply"));
    g_free(msg);
    set_u32(buf, sparse_next, info + 48);

    /* more areas than the reply holds */
    set_u32(buf, nr_areas, 1000000);
    msg = parse_error(buf, len);
    CHECK(contains(msg, "sparse-mmap capability lists 1000000 areas, room for 2"));
    g_free(msg);
    set_u32(buf, nr_areas, 2);
    /* an area beyond the region */
    set_u32(buf, area1, 0x1f000);
    msg = parse_error(buf, len);
    CHECK(contains(msg, "sparse-mmap area 0x1f000+0x11000 is outside the region (0x20000 "
                        "bytes)"));
    g_free(msg);
    uint64_t huge = UINT64_MAX - 0x100;
    memcpy(buf + area1, &huge, sizeof(huge));
    msg = parse_error(buf, len);
    CHECK(msg != NULL);
    g_free(msg);
    /* too short to be a reply at all */
    msg = parse_error(buf, 8);
    CHECK(contains(msg, "region info reply of 8 bytes"));
    g_free(msg);

    /* random replies never crash the parser */
    GRand *rand = g_rand_new_with_seed(15);
    for (int i = 0; i < 20000; i++) {
        len = g_rand_int_range(rand, 0, sizeof(buf));
        for (size_t j = 0; j < len; j++) {
            buf[j] = g_rand_int(rand) & 0xff;
        }
        /* a chain that starts inside the reply, most of the time */
        if (len >= info && (i & 1)) {
            set_u32(buf, offsetof(struct vfio_region_info, flags),
                    VFIO_REGION_INFO_FLAG_CAPS | VFIO_REGION_INFO_FLAG_MMAP);
            set_u32(buf, offsetof(struct vfio_region_info, cap_offset),
                    info + g_rand_int_range(rand, 0, 64));
            buf[info] = g_rand_int_range(rand, 1, 4);
        }
        g_free(parse_error(buf, len));
    }
    g_rand_free(rand);
    teardown();
}

UNIT_TEST(region_info_retry_is_bounded)
{
    VfioContext *ctx;
    VfioDevice *dev;
    VfioRegion region;
    GError *err = NULL;

    dev = start_test(&ctx);
    /* a kernel asking for an absurd reply size */
    struct vfio_region_info *info = (void *)fake.region_reply[0];
    info->argsz = 0;
    fake.region_len[0] = 300000;
    CHECK(!dev->ops->region_info(dev, 0, &region, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A
              ": VFIO_DEVICE_GET_REGION_INFO (region 0) asks for 300000 bytes");
    g_clear_error(&err);
    end_test(ctx, dev);
}

UNIT_TEST(config_space_reads_and_writes_reach_the_region)
{
    VfioContext *ctx;
    VfioDevice *dev;
    GError *err = NULL;
    uint8_t id[4], cmd[2] = { 0x06, 0x04 };

    dev = start_test(&ctx);
    /* the fake's pread returns one byte at a time: the backend loops */
    CHECK(dev->ops->read(dev, VFIO_PCI_CONFIG_REGION_INDEX, 0, id, 4, &err));
    CHECK_EQ(id[0] | id[1] << 8, 0x8086);
    CHECK_EQ(id[2] | id[3] << 8, 0x10d3);
    CHECK(dev->ops->write(dev, VFIO_PCI_CONFIG_REGION_INDEX, 4, cmd, 2, &err));
    CHECK_EQ(fake.config[4], 0x06);
    CHECK_EQ(fake.config[5], 0x04);
    /* outside the region: refused before the kernel sees it */
    CHECK(!dev->ops->read(dev, VFIO_PCI_CONFIG_REGION_INDEX, 254, id, 4, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": 0x4 bytes at 0xfe are outside region 7");
    g_clear_error(&err);
    CHECK(!dev->ops->write(dev, 12, 0, cmd, 2, &err));
    CHECK(contains(err ? err->message : NULL, "outside region 12"));
    g_clear_error(&err);
    /* the kernel refusing */
    fake.rw_errno = EIO;
    CHECK(!dev->ops->read(dev, VFIO_PCI_CONFIG_REGION_INDEX, 0, id, 4, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": read of 4 bytes at 0x0 in region 7: Input/output error");
    g_clear_error(&err);
    CHECK(!dev->ops->write(dev, VFIO_PCI_CONFIG_REGION_INDEX, 4, cmd, 2, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": write of 2 bytes at 0x4 in region 7: Input/output error");
    g_clear_error(&err);
    end_test(ctx, dev);
}

UNIT_TEST(bar_areas_are_mmapped)
{
    VfioContext *ctx;
    VfioDevice *dev;
    GError *err = NULL;
    void *p;

    dev = start_test(&ctx);
    p = dev->ops->mmap(dev, 0, 0, 0xe000, &err);
    CHECK(p != NULL);
    CHECK_EQ(fake.open_maps, 1);
    dev->ops->munmap(dev, p, 0xe000);
    CHECK(dev->ops->mmap(dev, 0, 0x10000, 0x20000, &err) == NULL);
    CHECK(contains(err ? err->message : NULL, "outside region 0"));
    g_clear_error(&err);
    /* the kernel refusing (the fake maps only offset 0) */
    CHECK(dev->ops->mmap(dev, 0, 0xf000, 0x11000, &err) == NULL);
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": mmap of 0x11000 bytes at 0xf000 in "
              "region 0: Invalid argument");
    g_clear_error(&err);
    end_test(ctx, dev);
}

UNIT_TEST(irqs_are_described_and_wired)
{
    VfioContext *ctx;
    VfioDevice *dev;
    VfioIrq irq;
    GError *err = NULL;
    struct vfio_irq_set *set = (void *)fake.irq_set;
    int fds[3] = { 40, -1, 42 };
    int32_t data[3];

    dev = start_test(&ctx);
    CHECK(dev->ops->irq_info(dev, VFIO_PCI_MSIX_IRQ_INDEX, &irq, &err));
    CHECK_EQ(irq.index, VFIO_PCI_MSIX_IRQ_INDEX);
    CHECK_EQ(irq.count, 5);
    CHECK_EQ(irq.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
    CHECK(!dev->ops->irq_info(dev, 7, &irq, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": VFIO_DEVICE_GET_IRQ_INFO (index 7): Invalid argument");
    g_clear_error(&err);

    CHECK(dev->ops->set_irq_eventfds(dev, VFIO_PCI_MSIX_IRQ_INDEX, 1, 3, fds, &err));
    CHECK_EQ(set->argsz, sizeof(*set) + 12);
    CHECK_EQ(set->flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER);
    CHECK_EQ(set->index, VFIO_PCI_MSIX_IRQ_INDEX);
    CHECK_EQ(set->start, 1);
    CHECK_EQ(set->count, 3);
    memcpy(data, set->data, sizeof(data));
    CHECK(data[0] == 40 && data[1] == -1 && data[2] == 42);
    /* count 0: the whole index off */
    CHECK(dev->ops->set_irq_eventfds(dev, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL, &err));
    CHECK_EQ(set->argsz, sizeof(*set));
    CHECK_EQ(set->flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER);
    CHECK_EQ(set->count, 0);
    /* INTx's resample fd, and masking one vector */
    CHECK(dev->ops->set_irq_unmask_fd(dev, VFIO_PCI_INTX_IRQ_INDEX, 44, &err));
    CHECK_EQ(set->flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK);
    CHECK_EQ(set->count, 1);
    memcpy(data, set->data, 4);
    CHECK_EQ(data[0], 44);
    CHECK(dev->ops->mask_irq(dev, VFIO_PCI_INTX_IRQ_INDEX, 0, true, &err));
    CHECK_EQ(set->flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK);
    CHECK(dev->ops->mask_irq(dev, VFIO_PCI_MSI_IRQ_INDEX, 2, false, &err));
    CHECK_EQ(set->flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK);
    CHECK_EQ(set->start, 2);
    CHECK(err == NULL);
    /* the kernel refusing */
    fake.fail_request = VFIO_DEVICE_SET_IRQS;
    fake.fail_errno = EINVAL;
    CHECK(!dev->ops->set_irq_eventfds(dev, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3, fds, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": VFIO_DEVICE_SET_IRQS: Invalid argument");
    g_clear_error(&err);
    end_test(ctx, dev);
}

UNIT_TEST(reset_only_where_the_device_offers_it)
{
    VfioContext *ctx;
    VfioDevice *dev;
    GError *err = NULL;
    char *msg;

    setup();
    ctx = vfio_context_new(&ctx_config);
    dev = open_dev(ctx, DEV_A, &msg);
    CHECK(dev->ops->reset(dev, &err));
    CHECK_EQ(fake.resets, 1);
    fake.fail_request = VFIO_DEVICE_RESET;
    fake.fail_errno = EIO;
    CHECK(!dev->ops->reset(dev, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": VFIO_DEVICE_RESET: Input/output error");
    g_clear_error(&err);
    dev->ops->close(dev);
    fake.dev_flags = VFIO_DEVICE_FLAGS_PCI;
    dev = open_dev(ctx, DEV_A, &msg);
    CHECK(!dev->ops->reset(dev, &err));
    CHECK_STR(err ? err->message : NULL,
              "vfio " DEV_A ": the device offers no reset (VFIO_DEVICE_FLAGS_RESET)");
    g_clear_error(&err);
    CHECK_EQ(fake.resets, 1);
    dev->ops->close(dev);
    vfio_context_free(ctx);
    teardown();
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate_lock);
    fake.hold_device_close = false;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static void *gate_open_later(void *opaque)
{
    (void)opaque;
    g_usleep(100 * 1000);
    gate_open();
    return NULL;
}

static int closed_calls; /* atomic */

static void count_closed(void *opaque)
{
    (void)opaque;
    __atomic_add_fetch(&closed_calls, 1, __ATOMIC_SEQ_CST);
}

/*
 * close_in_background: the close op returns while the kernel still holds
 * the device (its fd's close waits, as for a bus reset); the context
 * counts it as closing, and opening the same device again waits for that
 * close instead of finding it attached, so the new open comes after it
 * (the container closed and set up again, the group left KVM and came back).
 */
UNIT_TEST(background_close_runs_apart_and_a_reopen_waits_for_it)
{
    VfioContextConfig cfg = ctx_config;
    VfioContext *ctx;
    VfioDevice *dev;
    pthread_t opener;
    char *msg;
    int waited = 0;

    setup();
    cfg.close_in_background = true;
    cfg.closed = count_closed;
    closed_calls = 0;
    ctx = vfio_context_new(&cfg);
    dev = open_dev(ctx, DEV_A, &msg);
    CHECK(dev != NULL);
    fake.hold_device_close = true;
    dev->ops->close(dev); /* returns with the device's close held */
    while (!__atomic_load_n(&fake.in_device_close, __ATOMIC_SEQ_CST) && waited++ < 5000) {
        g_usleep(1000);
    }
    CHECK(__atomic_load_n(&fake.in_device_close, __ATOMIC_SEQ_CST));
    CHECK_EQ(vfio_context_closing(ctx), 1);
    CHECK_EQ(__atomic_load_n(&closed_calls, __ATOMIC_SEQ_CST), 0);
    CHECK_EQ(pthread_create(&opener, NULL, gate_open_later, NULL), 0);
    dev = open_dev(ctx, DEV_A, &msg);
    CHECK(dev != NULL);
    CHECK(msg == NULL);
    g_free(msg);
    pthread_join(opener, NULL);
    CHECK_EQ(vfio_context_closing(ctx), 0);
    CHECK_EQ(__atomic_load_n(&closed_calls, __ATOMIC_SEQ_CST), 1);
    CHECK_EQ(fake.kvm_dels, 1);
    CHECK_EQ(fake.kvm_adds, 2);
    CHECK_EQ(fake.set_iommu_calls, 2);
    CHECK_EQ(fake.open_fds, 3);
    /* freeing the context waits for a close still running too */
    dev->ops->close(dev);
    vfio_context_free(ctx);
    CHECK_EQ(__atomic_load_n(&closed_calls, __ATOMIC_SEQ_CST), 2);
    teardown();
}

UNIT_MAIN()
