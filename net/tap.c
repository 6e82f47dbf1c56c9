/*
 * Tap queues: one /dev/net/tun descriptor each, non-blocking, carrying
 * virtio_net_hdr in front of every frame, and the ifup/ifdown scripts.
 * A queue is used by one thread at a time; nothing here is shared.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "net-int.h"
#include "util/error.h"
#include "util/iov.h"

struct NetTap {
    int fd;
    char ifname[IFNAMSIZ];
    bool vnet_hdr; /* frames on fd carry virtio_net_hdr */
    bool has_ufo;
    bool enabled;          /* attached (TUNSETQUEUE); a queue starts attached */
    bool sndbuf_unlimited; /* TUNSETSNDBUF INT_MAX: a write is never refused */
    NetUring *uring;       /* net_tap_send_batch's, made at its first batch */
    bool uring_failed;     /* no io_uring here: write frame by frame */
};

int net_tap_fd(NetTap *tap)
{
    return tap->fd;
}

const char *net_tap_ifname(NetTap *tap)
{
    return tap->ifname;
}

bool net_tap_has_vnet_hdr(NetTap *tap)
{
    return tap->vnet_hdr;
}

bool net_tap_has_ufo(NetTap *tap)
{
    return tap->has_ufo;
}

static bool set_offload_flags(NetTap *tap, unsigned flags)
{
    return ioctl(tap->fd, TUNSETOFFLOAD, flags) == 0;
}

/*
 * Common set-up of a tap with vnet headers: the header size the device
 * uses, every offload off until the guest's features are known, and
 * whether UFO can be offered at all (newer kernels refuse it).
 */
static bool tap_setup_vnet(NetTap *tap, GError **errp)
{
    int len = NET_VNET_HDR_LEN;

    if (ioctl(tap->fd, TUNSETVNETHDRSZ, &len) < 0) {
        error_setg_errno(errp, errno, "TUNSETVNETHDRSZ ioctl failed");
        return false;
    }
    tap->has_ufo = set_offload_flags(tap, TUN_F_CSUM | TUN_F_UFO);
    if (!set_offload_flags(tap, 0)) {
        error_setg_errno(errp, errno, "TUNSETOFFLOAD ioctl failed");
        return false;
    }
    return true;
}

static NetTap *tap_new(int fd, const char *ifname, bool vnet_hdr)
{
    NetTap *tap = g_new0(NetTap, 1);

    tap->fd = fd;
    tap->vnet_hdr = vnet_hdr;
    tap->enabled = true;
    g_strlcpy(tap->ifname, ifname, sizeof(tap->ifname));
    return tap;
}

NetTap *net_tap_open(const char *ifname, bool multi_queue, GError **errp)
{
    struct ifreq ifr = { 0 };
    unsigned features = 0;
    NetTap *tap;
    int fd;

    fd = open(NET_TUN_PATH, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "could not open %s", NET_TUN_PATH);
        return NULL;
    }
    if (ioctl(fd, TUNGETFEATURES, &features) < 0) {
        features = 0;
    }
    if (!(features & IFF_VNET_HDR)) {
        error_setg(errp, "vnet_hdr=1 requested, but no kernel support for "
                         "IFF_VNET_HDR available");
        close(fd);
        return NULL;
    }
    if (multi_queue && !(features & IFF_MULTI_QUEUE)) {
        error_setg(errp, "multiqueue required, but no kernel support for "
                         "IFF_MULTI_QUEUE available");
        close(fd);
        return NULL;
    }
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (multi_queue) {
        ifr.ifr_flags |= IFF_MULTI_QUEUE;
    }
    /* A name too long is cut, as QEMU does. */
    g_strlcpy(ifr.ifr_name, ifname && ifname[0] ? ifname : "tap%d", sizeof(ifr.ifr_name));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int err = errno;
        if (ifname && ifname[0]) {
            error_setg_errno(errp, err, "could not configure %s (%s)", NET_TUN_PATH,
                             ifr.ifr_name);
        } else {
            error_setg_errno(errp, err, "could not configure %s", NET_TUN_PATH);
        }
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    tap = tap_new(fd, ifr.ifr_name, true);
    if (!tap_setup_vnet(tap, errp)) {
        net_tap_free(tap);
        return NULL;
    }
    return tap;
}

NetTap *net_tap_from_fd(int fd, const char *id, GError **errp)
{
    struct ifreq ifr = { 0 };
    NetTap *tap;
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0) {
        error_setg_errno(errp, errno, "%s: Can't use file descriptor %d", id, fd);
        return NULL;
    }
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
        error_setg_errno(errp, errno, "Unable to query TUNGETIFF on FD %d", fd);
        return NULL;
    }
    if ((ifr.ifr_flags & (IFF_TUN | IFF_TAP)) != IFF_TAP) {
        error_setg(errp, "FD %d is a tun (layer 3) interface, not a tap", fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    tap = tap_new(fd, ifr.ifr_name, ifr.ifr_flags & IFF_VNET_HDR);
    if (tap->vnet_hdr && !tap_setup_vnet(tap, errp)) {
        net_tap_release_fd(tap);
        net_tap_free(tap);
        return NULL;
    }
    return tap;
}

void net_tap_release_fd(NetTap *tap)
{
    tap->fd = -1;
}

bool net_tap_set_sndbuf(NetTap *tap, uint64_t sndbuf, GError **errp)
{
    int value = sndbuf && sndbuf < INT_MAX ? (int)sndbuf : INT_MAX;

    if (ioctl(tap->fd, TUNSETSNDBUF, &value) < 0) {
        error_setg_errno(errp, errno, "TUNSETSNDBUF ioctl failed");
        return false;
    }
    tap->sndbuf_unlimited = value == INT_MAX;
    return true;
}

bool net_tap_set_offload(NetTap *tap, bool csum, bool tso4, bool tso6, bool ecn, bool ufo,
                         GError **errp)
{
    unsigned flags = 0;

    if (csum) {
        flags = TUN_F_CSUM | (tso4 ? TUN_F_TSO4 : 0) | (tso6 ? TUN_F_TSO6 : 0) |
                (ecn ? TUN_F_TSO_ECN : 0) | (ufo ? TUN_F_UFO : 0);
    }
    if (!tap->vnet_hdr) {
        if (flags) {
            error_setg(errp, "tap %s has no vnet header: no offload possible",
                       tap->ifname);
            return false;
        }
        return true;
    }
    if (set_offload_flags(tap, flags)) {
        return true;
    }
    if ((flags & TUN_F_UFO) && set_offload_flags(tap, flags & ~TUN_F_UFO)) {
        return true;
    }
    error_setg_errno(errp, errno, "TUNSETOFFLOAD ioctl failed");
    return false;
}

bool net_tap_set_enabled(NetTap *tap, bool enabled, GError **errp)
{
    struct ifreq ifr = { 0 };

    if (enabled == tap->enabled) {
        return true; /* the kernel refuses to attach an attached queue */
    }
    ifr.ifr_flags = enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
    if (ioctl(tap->fd, TUNSETQUEUE, &ifr) < 0) {
        error_setg_errno(errp, errno, "could not %s queue of tap %s",
                         enabled ? "attach" : "detach", tap->ifname);
        return false;
    }
    tap->enabled = enabled;
    return true;
}

ssize_t net_tap_send(NetTap *tap, const struct iovec *iov, int iovcnt)
{
    size_t total = iov_total(iov, iovcnt);
    IovSlice frame;
    ssize_t n;

    if (total < NET_VNET_HDR_LEN) {
        return -EINVAL;
    }
    if (tap->vnet_hdr) {
        n = writev(tap->fd, iov, iovcnt);
        return n < 0 ? -errno : n;
    }
    /* No header on this tap: the frame alone (no offload was offered). */
    iov_slice_init(&frame, iov, iovcnt, NET_VNET_HDR_LEN, total - NET_VNET_HDR_LEN);
    n = writev(tap->fd, frame.iov, frame.iovcnt);
    n = n < 0 ? -errno : n + NET_VNET_HDR_LEN;
    iov_slice_destroy(&frame);
    return n;
}

/*
 * The batch through io_uring: true when it went (results set).  Its
 * writes run in order inside one system call but do not stop at a refused
 * one, so only a tap whose send buffer never fills uses it (a refusal
 * there would let later frames pass an earlier one); should the kernel
 * refuse some anyway, the refused frames before the last one it took are
 * dropped (-ENOBUFS), the ones after it are refused as the rest of the
 * batch.
 */
static bool tap_send_batch_uring(NetTap *tap, const NetTapFrame *frames, unsigned n,
                                 ssize_t *results)
{
    unsigned max, last_taken = 0;
    bool taken = false;

    if (!tap->vnet_hdr || !tap->sndbuf_unlimited || tap->uring_failed) {
        return false;
    }
    if (!tap->uring) {
        tap->uring = net_uring_new(NET_TAP_BATCH);
        if (!tap->uring) {
            tap->uring_failed = true;
            return false;
        }
    }
    max = net_uring_entries(tap->uring);
    for (unsigned start = 0; start < n; start += max) {
        unsigned count = MIN(max, n - start);
        if (!net_uring_writev(tap->uring, tap->fd, frames + start, count,
                              results + start)) {
            net_uring_free(tap->uring); /* results say -EIO: those frames are lost */
            tap->uring = NULL;
            tap->uring_failed = true;
            return true;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (results[i] != -EAGAIN) {
            last_taken = i;
            taken = true;
        }
    }
    for (unsigned i = 0; taken && i < last_taken; i++) {
        if (results[i] == -EAGAIN) {
            results[i] = -ENOBUFS;
        }
    }
    return true;
}

void net_tap_send_batch(NetTap *tap, const NetTapFrame *frames, unsigned n,
                        ssize_t *results)
{
    bool whole = n > 0; /* every frame has its header (else net_tap_send's -EINVAL) */
    unsigned i;

    for (i = 0; whole && i < n; i++) {
        whole = iov_total(frames[i].iov, frames[i].iovcnt) >= NET_VNET_HDR_LEN;
    }
    if (whole && tap_send_batch_uring(tap, frames, n, results)) {
        return;
    }
    for (i = 0; i < n; i++) {
        results[i] = net_tap_send(tap, frames[i].iov, frames[i].iovcnt);
        if (results[i] == -EAGAIN) {
            break;
        }
    }
    for (; i < n; i++) {
        results[i] = -EAGAIN;
    }
}

ssize_t net_tap_receive(NetTap *tap, const struct iovec *iov, int iovcnt)
{
    size_t total = iov_total(iov, iovcnt);
    IovSlice frame;
    ssize_t n;

    if (total < NET_VNET_HDR_LEN) {
        return -EINVAL;
    }
    if (tap->vnet_hdr) {
        static const uint16_t no_buffers;
        n = readv(tap->fd, iov, iovcnt);
        if (n < 0) {
            return -errno;
        }
        /* The kernel writes the first 10 bytes and skips num_buffers. */
        iov_from_buf(iov, iovcnt, 10, &no_buffers, sizeof(no_buffers));
        return n;
    }
    iov_slice_init(&frame, iov, iovcnt, NET_VNET_HDR_LEN, total - NET_VNET_HDR_LEN);
    n = readv(tap->fd, frame.iov, frame.iovcnt);
    iov_slice_destroy(&frame);
    if (n < 0) {
        return -errno;
    }
    iov_memset(iov, iovcnt, 0, 0, NET_VNET_HDR_LEN);
    return n + NET_VNET_HDR_LEN;
}

void net_tap_free(NetTap *tap)
{
    if (!tap) {
        return;
    }
    net_uring_free(tap->uring);
    if (tap->fd >= 0) {
        close(tap->fd);
    }
    g_free(tap);
}

/* ---- scripts ---- */

/* In the child: no descriptor but 0-2 survives the exec, no signal blocked. */
static void G_GNUC_NORETURN exec_script(const char *script, const char *ifname)
{
    char *argv[] = { (char *)script, (char *)ifname, NULL };
    sigset_t none;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    execv(script, argv);
    _exit(1);
}

bool net_run_script(const char *script, const char *ifname, GError **errp)
{
    pid_t pid = fork();
    int status;

    if (pid < 0) {
        error_setg_errno(errp, errno, "could not launch network script %s", script);
        return false;
    }
    if (pid == 0) {
        exec_script(script, ifname);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            error_setg_errno(errp, errno, "could not launch network script %s", script);
            return false;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return true;
    }
    error_setg(errp, "network script %s failed with status %d", script, status);
    return false;
}
