/*
 * vhost-net: the kernel's virtio-net data path for one queue pair (a
 * receive and a transmit ring) over a tap.  The device hands it guest
 * memory, the ring addresses and its ioeventfd/irqfd pair; the kernel then
 * moves frames without the VMM.  One thread at a time per instance.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/vhost.h>

#include "net-int.h"
#include "util/error.h"

#define VHOST_NET_PATH "/dev/vhost-net"
#define VHOST_LOG_PAGE 4096ULL

struct VhostNet {
    int fd;
    uint64_t offered; /* VHOST_GET_FEATURES */
    uint64_t acked;   /* the last vhost_net_set_features() */
    VhostRing rings[2];
    bool ring_set[2];
    int backend_fd; /* the tap handed over, or -1 */
    uint64_t *log;  /* dirty bitmap while logging, else NULL */
    size_t log_bytes;
};

VhostNet *vhost_net_open(int vhostfd, GError **errp)
{
    VhostNet *vn;
    uint64_t features;
    int fd = vhostfd;

    if (fd < 0) {
        fd = open(VHOST_NET_PATH, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            error_setg_errno(errp, errno, "tap: open vhost char device failed");
            return NULL;
        }
    }
    if (ioctl(fd, VHOST_SET_OWNER, NULL) < 0) {
        error_setg_errno(errp, errno, "vhost_set_owner failed");
        goto fail;
    }
    if (ioctl(fd, VHOST_GET_FEATURES, &features) < 0) {
        error_setg_errno(errp, errno, "vhost_get_features failed");
        goto fail;
    }
    vn = g_new0(VhostNet, 1);
    vn->fd = fd;
    vn->offered = features;
    vn->backend_fd = -1;
    return vn;
fail:
    if (vhostfd < 0) {
        close(fd); /* a given descriptor stays with its giver */
    }
    return NULL;
}

void vhost_net_release_fd(VhostNet *vn)
{
    vn->fd = -1;
}

void vhost_net_close(VhostNet *vn)
{
    if (!vn) {
        return;
    }
    if (vn->backend_fd >= 0) {
        vhost_net_set_backend(vn, -1, NULL);
    }
    if (vn->fd >= 0) {
        close(vn->fd); /* the kernel stops the rings, drops its references */
    }
    if (vn->log) {
        munmap(vn->log, vn->log_bytes);
    }
    g_free(vn);
}

uint64_t vhost_net_get_features(VhostNet *vn)
{
    return vn->offered;
}

static bool write_features(VhostNet *vn, uint64_t features, GError **errp)
{
    if (ioctl(vn->fd, VHOST_SET_FEATURES, &features) < 0) {
        error_setg_errno(errp, errno, "vhost_set_features failed");
        return false;
    }
    return true;
}

bool vhost_net_set_features(VhostNet *vn, uint64_t features, GError **errp)
{
    uint64_t log_all = vn->log ? 1ULL << VHOST_F_LOG_ALL : 0;

    features &= vn->offered;
    if (!write_features(vn, features | log_all, errp)) {
        return false;
    }
    vn->acked = features;
    return true;
}

bool vhost_net_set_mem_table(VhostNet *vn, const VhostMemRegion *regions, unsigned count,
                             GError **errp)
{
    struct vhost_memory *mem;
    bool ok;

    mem = g_malloc0(sizeof(*mem) + count * sizeof(mem->regions[0]));
    mem->nregions = count;
    for (unsigned i = 0; i < count; i++) {
        mem->regions[i].guest_phys_addr = regions[i].gpa;
        mem->regions[i].memory_size = regions[i].size;
        mem->regions[i].userspace_addr = (uintptr_t)regions[i].hva;
    }
    ok = ioctl(vn->fd, VHOST_SET_MEM_TABLE, mem) == 0;
    if (!ok) {
        error_setg_errno(errp, errno, "vhost_set_mem_table failed");
    }
    g_free(mem);
    return ok;
}

static bool write_ring_addr(VhostNet *vn, unsigned index, GError **errp)
{
    const VhostRing *ring = &vn->rings[index];
    struct vhost_vring_addr addr = {
        .index = index,
        .flags = vn->log ? 1u << VHOST_VRING_F_LOG : 0,
        .desc_user_addr = (uintptr_t)ring->desc,
        .avail_user_addr = (uintptr_t)ring->avail,
        .used_user_addr = (uintptr_t)ring->used,
        .log_guest_addr = ring->used_gpa,
    };

    if (ioctl(vn->fd, VHOST_SET_VRING_ADDR, &addr) < 0) {
        error_setg_errno(errp, errno, "vhost_set_vring_addr failed");
        return false;
    }
    return true;
}

static bool write_ring_file(VhostNet *vn, unsigned long request, const char *what,
                            unsigned index, int fd, GError **errp)
{
    struct vhost_vring_file file = { .index = index, .fd = fd };

    if (ioctl(vn->fd, request, &file) < 0) {
        error_setg_errno(errp, errno, "%s failed", what);
        return false;
    }
    return true;
}

bool vhost_net_set_ring(VhostNet *vn, unsigned index, const VhostRing *ring,
                        GError **errp)
{
    struct vhost_vring_state num = { .index = index, .num = ring->num };
    struct vhost_vring_state base = { .index = index, .num = ring->last_avail_idx };

    if (index > VHOST_NET_RING_TX) {
        error_setg(errp, "vhost-net has no ring %u", index);
        return false;
    }
    if (ioctl(vn->fd, VHOST_SET_VRING_NUM, &num) < 0) {
        error_setg_errno(errp, errno, "vhost_set_vring_num failed");
        return false;
    }
    if (ioctl(vn->fd, VHOST_SET_VRING_BASE, &base) < 0) {
        error_setg_errno(errp, errno, "vhost_set_vring_base failed");
        return false;
    }
    vn->rings[index] = *ring;
    vn->ring_set[index] = true;
    return write_ring_addr(vn, index, errp) &&
           write_ring_file(vn, VHOST_SET_VRING_KICK, "vhost_set_vring_kick", index,
                           ring->kick_fd, errp) &&
           write_ring_file(vn, VHOST_SET_VRING_CALL, "vhost_set_vring_call", index,
                           ring->call_fd, errp);
}

bool vhost_net_set_ring_call(VhostNet *vn, unsigned index, int call_fd, GError **errp)
{
    if (!write_ring_file(vn, VHOST_SET_VRING_CALL, "vhost_set_vring_call", index, call_fd,
                         errp)) {
        return false;
    }
    if (index <= VHOST_NET_RING_TX) {
        vn->rings[index].call_fd = call_fd;
    }
    return true;
}

bool vhost_net_set_backend(VhostNet *vn, int tap_fd, GError **errp)
{
    for (unsigned i = VHOST_NET_RING_RX; i <= VHOST_NET_RING_TX; i++) {
        if (!write_ring_file(vn, VHOST_NET_SET_BACKEND, "VHOST_NET_SET_BACKEND", i,
                             tap_fd, errp)) {
            return false;
        }
    }
    vn->backend_fd = tap_fd;
    return true;
}

bool vhost_net_get_ring_base(VhostNet *vn, unsigned index, uint16_t *last_avail_idx,
                             GError **errp)
{
    struct vhost_vring_state state = { .index = index };

    if (ioctl(vn->fd, VHOST_GET_VRING_BASE, &state) < 0) {
        error_setg_errno(errp, errno, "vhost_get_vring_base failed");
        return false;
    }
    *last_avail_idx = state.num;
    return true;
}

/* ---- dirty logging ---- */

static bool write_log_base(VhostNet *vn, void *log, int log_fd, GError **errp)
{
    uint64_t base = (uintptr_t)log;

    if (ioctl(vn->fd, VHOST_SET_LOG_BASE, &base) < 0) {
        error_setg_errno(errp, errno, "vhost_set_log_base failed");
        return false;
    }
    if (ioctl(vn->fd, VHOST_SET_LOG_FD, &log_fd) < 0) {
        error_setg_errno(errp, errno, "vhost_set_log_fd failed");
        return false;
    }
    return true;
}

/* The rings' used-ring logging follows vn->log. */
static bool rewrite_ring_addrs(VhostNet *vn, GError **errp)
{
    for (unsigned i = VHOST_NET_RING_RX; i <= VHOST_NET_RING_TX; i++) {
        if (vn->ring_set[i] && !write_ring_addr(vn, i, errp)) {
            return false;
        }
    }
    return true;
}

bool vhost_net_log_start(VhostNet *vn, uint64_t ram_end, int log_fd, GError **errp)
{
    uint64_t pages = (ram_end + VHOST_LOG_PAGE - 1) / VHOST_LOG_PAGE;
    size_t bytes = (pages + 63) / 64 * sizeof(uint64_t);
    void *log;

    if (vn->log) {
        error_setg(errp, "vhost-net dirty logging is already on");
        return false;
    }
    log = mmap(NULL, MAX(bytes, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
               -1, 0);
    if (log == MAP_FAILED) {
        error_setg_errno(errp, errno, "vhost-net dirty log of %zu bytes", bytes);
        return false;
    }
    if (!write_log_base(vn, log, log_fd, errp)) {
        munmap(log, MAX(bytes, 1));
        return false;
    }
    vn->log = log;
    vn->log_bytes = MAX(bytes, 1);
    if (!write_features(vn, vn->acked | 1ULL << VHOST_F_LOG_ALL, errp) ||
        !rewrite_ring_addrs(vn, errp)) {
        vhost_net_log_stop(vn, NULL);
        return false;
    }
    return true;
}

void vhost_net_log_sync(VhostNet *vn,
                        void (*mark)(void *opaque, uint64_t gpa, uint64_t len),
                        void *opaque)
{
    size_t words = vn->log ? vn->log_bytes / sizeof(uint64_t) : 0;
    uint64_t run_start = 0, run_len = 0;

    for (size_t w = 0; w < words; w++) {
        uint64_t bits;
        if (!__atomic_load_n(&vn->log[w], __ATOMIC_RELAXED)) {
            continue;
        }
        /* The kernel sets bits concurrently: take the word atomically. */
        bits = __atomic_exchange_n(&vn->log[w], 0, __ATOMIC_ACQ_REL);
        while (bits) {
            unsigned bit = __builtin_ctzll(bits);
            uint64_t gpa = (w * 64 + bit) * VHOST_LOG_PAGE;
            bits &= bits - 1;
            if (run_len && run_start + run_len == gpa) {
                run_len += VHOST_LOG_PAGE;
                continue;
            }
            if (run_len) {
                mark(opaque, run_start, run_len);
            }
            run_start = gpa;
            run_len = VHOST_LOG_PAGE;
        }
    }
    if (run_len) {
        mark(opaque, run_start, run_len);
    }
}

bool vhost_net_log_stop(VhostNet *vn, GError **errp)
{
    void *log = vn->log;
    bool ok;

    if (!log) {
        return true;
    }
    vn->log = NULL;
    ok = write_features(vn, vn->acked, errp) && rewrite_ring_addrs(vn, errp) &&
         write_log_base(vn, NULL, -1, errp);
    /* Only a kernel that stopped logging may lose the bitmap. */
    if (ok) {
        munmap(log, vn->log_bytes);
    } else {
        vn->log = log;
    }
    return ok;
}
