/*
 * Network backends: -netdev tap (a Linux tap interface, one file descriptor
 * per queue, frames carrying a 12-byte virtio-net header) and the kernel's
 * vhost-net, to which a virtio-net device can hand its rings.  Layer 2:
 * uses util/ and GLib only; the device (hw/) and the options and monitor
 * layers call in.
 *
 * Threads: the NetdevSet calls (parse, open, find, close) run on the main
 * thread.  A NetTap queue and a VhostNet are used by one thread at a time
 * (the device's I/O thread); different queues may be used by different
 * threads at once.
 *
 * How a virtio-net device drives a netdev (netdev=ID):
 *  - netdev_find() + netdev_claim(); queue pair i uses netdev_tap(nd, i).
 *  - vhost=off: watch net_tap_fd() for input and call net_tap_receive()
 *    until -EAGAIN; net_tap_send_batch() the transmitted chains (header
 *    included; net_tap_send() one).  On FEATURES_OK, net_tap_set_offload()
 *    from the GUEST_* bits, on every queue.
 *  - vhost=on (netdev_vhost(nd, i) != NULL): on DRIVER_OK,
 *    vhost_net_set_features() (the guest's features; VHOST_NET_F_VIRTIO_NET_HDR
 *    only when !net_tap_has_vnet_hdr()), vhost_net_set_mem_table(),
 *    vhost_net_set_ring() for rings 0 (rx) and 1 (tx) with the queue's
 *    ioeventfd and irqfd, then vhost_net_set_backend(tap fd); the device
 *    then leaves the rings and the tap alone.  On reset or before saving
 *    state: vhost_net_set_backend(-1) and vhost_net_get_ring_base().  On a
 *    RAM layout change, vhost_net_set_mem_table() again.  Migration:
 *    vhost_net_log_start() with the end of guest RAM, vhost_net_log_sync()
 *    each dirty-bitmap pass, vhost_net_log_stop() at the end or on cancel.
 */
#ifndef NET_NET_H
#define NET_NET_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/*
 * Every frame crossing a tap starts with this header, the virtio 1.0
 * virtio_net_hdr (with num_buffers), so a VERSION_1 virtio-net device
 * passes guest buffers through unchanged.
 */
#define NET_VNET_HDR_LEN 12
/* The largest frame a tap hands over: a 64 KiB GSO frame plus headers. */
#define NET_TAP_MAX_FRAME (NET_VNET_HDR_LEN + 65536 + 14 + 4)
/* Queues a tap may have (the kernel's MAX_TAP_QUEUES). */
#define NET_TAP_MAX_QUEUES 256

/* ---- -netdev: parsing ---- */

typedef struct NetdevConfig {
    char *id;
    char *ifname;     /* NULL: the kernel picks "tapN" */
    char *script;     /* NULL: none ("no" or "") */
    char *downscript; /* NULL: none */
    int fd;           /* an open tap passed by the caller (fd=), or -1 */
    int vhostfd;      /* an open /dev/vhost-net (vhostfd=), or -1 */
    int *fds;         /* fds=a:b:c, one open tap queue each (queues of them), or NULL */
    int *vhostfds;    /* vhostfds=, one open /dev/vhost-net per queue, or NULL */
    bool vhost;       /* hand the data path to vhost-net */
    unsigned queues;  /* 1 unless queues= (multi-queue tap) or fds= */
    uint64_t sndbuf;  /* TUNSETSNDBUF value; 0 means QEMU's default, INT_MAX */
} NetdevConfig;

/*
 * Parse "tap,id=ID[,ifname=NAME][,script=no|PATH][,downscript=no|PATH]
 * [,vhost=on|off][,vhostfd=N][,vhostforce=on|off][,fd=N][,queues=N]
 * [,fds=N:N...[,vhostfds=N:N...]][,sndbuf=SIZE]" into *out with QEMU's
 * defaults (script=/etc/qemu-ifup, downscript=/etc/qemu-ifdown unless fd=
 * or fds= is given) and QEMU's error texts,
 * without the "-netdev ARG: " prefix the caller adds.  Types QEMU has and
 * this VMM lacks (user, socket, bridge, ...) are refused by name.  fd= and
 * vhostfd= take numbers; a monitor resolving getfd names does so before.
 * On success the caller frees *out with netdev_config_clear().
 */
bool netdev_parse(const char *arg, NetdevConfig *out, GError **errp);
void netdev_config_clear(NetdevConfig *cfg);

/* ---- tap queues ---- */

typedef struct NetTap NetTap;

/*
 * The non-blocking descriptor to watch: readable when a frame waits (see
 * net_tap_receive), writable again after a send returned -EAGAIN.  Not for
 * reading directly.  While vhost-net drives the queue, nobody reads it.
 */
int net_tap_fd(NetTap *tap);

/*
 * Send one frame: iov holds NET_VNET_HDR_LEN bytes of virtio_net_hdr, then
 * the Ethernet frame.  Returns the bytes taken, -EAGAIN when the tap cannot
 * take it now (wait for net_tap_fd to be writable), or another -errno (the
 * frame is dropped; a malformed header gives -EINVAL).
 */
ssize_t net_tap_send(NetTap *tap, const struct iovec *iov, int iovcnt);

/*
 * Send n frames in order as net_tap_send would, results[i] its return for
 * frames[i]; a tap that refuses a frame (-EAGAIN) refuses the rest of the
 * batch too (they say -EAGAIN, none of them was sent).  Where the kernel
 * has io_uring and the tap's send buffer is unlimited (sndbuf=0, the
 * default) the whole batch is one system call; otherwise one writev each.
 */
typedef struct NetTapFrame {
    const struct iovec *iov;
    int iovcnt;
} NetTapFrame;
void net_tap_send_batch(NetTap *tap, const NetTapFrame *frames, unsigned n,
                        ssize_t *results);

/*
 * Receive one frame into iov: the virtio_net_hdr (num_buffers 0, for the
 * device to fill), then the frame.  Returns its length, header
 * included, or -EAGAIN when none waits, or another -errno.  iov should hold
 * NET_TAP_MAX_FRAME bytes: the kernel drops a frame that does not fit
 * (-EFAULT or -EINVAL), so a device with small guest buffers receives into
 * a buffer of its own and copies.
 */
ssize_t net_tap_receive(NetTap *tap, const struct iovec *iov, int iovcnt);

/*
 * What the frames handed to the device may carry, from the guest's
 * negotiated features (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_UFO):
 * TUNSETOFFLOAD.  Without csum none of the others apply.  A kernel without
 * UFO support gets the rest.  Fails only on a tap without vnet headers
 * when an offload is asked for.
 */
bool net_tap_set_offload(NetTap *tap, bool csum, bool tso4, bool tso6, bool ecn, bool ufo,
                         GError **errp);
/*
 * Whether the tap carries virtio_net_hdr (always true for taps this backend
 * opened; an fd= tap opened without IFF_VNET_HDR has none, so the backend
 * adds and drops the header itself and no offload can be offered).
 */
bool net_tap_has_vnet_hdr(NetTap *tap);
/* Whether TUNSETOFFLOAD accepts UFO (so GUEST_UFO may be offered). */
bool net_tap_has_ufo(NetTap *tap);

/*
 * Attach or detach one queue of a multi-queue tap (TUNSETQUEUE), for a
 * guest that uses fewer queue pairs than the tap has.  A detached queue
 * receives nothing.  A queue starts attached; asking for the state it is
 * in already does nothing.
 */
bool net_tap_set_enabled(NetTap *tap, bool enabled, GError **errp);

/* ---- vhost-net: the kernel's data path for one queue pair ---- */

typedef struct VhostNet VhostNet;

/* The rings of a vhost-net instance: 0 receive, 1 transmit. */
#define VHOST_NET_RING_RX 0
#define VHOST_NET_RING_TX 1

/* One range of guest RAM: guest-physical address, size, where it is mapped. */
typedef struct VhostMemRegion {
    uint64_t gpa;
    uint64_t size;
    void *hva;
} VhostMemRegion;

/*
 * One ring as the driver placed it: the addresses are the VMM's mappings
 * of the descriptor table, the available and the used ring; used_gpa is
 * the used ring's guest-physical address (for the dirty log).  kick_fd is
 * the ioeventfd the guest's notifications signal, call_fd the irqfd that
 * interrupts the guest; vhost-net keeps its own references to both.
 */
typedef struct VhostRing {
    unsigned num;
    void *desc, *avail, *used;
    uint64_t used_gpa;
    uint16_t last_avail_idx; /* where to resume (0 for a fresh ring) */
    int kick_fd, call_fd;
} VhostRing;

/*
 * Open /dev/vhost-net (or take vhostfd >= 0: owned on success, left to
 * the caller on failure), become its owner (VHOST_SET_OWNER) and read the
 * features it offers.  The error is QEMU's "tap: open vhost char device
 * failed: ..." where the device node is missing: no silent fallback to the
 * VMM's own data path.
 */
VhostNet *vhost_net_open(int vhostfd, GError **errp);
/* Stop the rings (detaching the tap first) and close. NULL is a no-op. */
void vhost_net_close(VhostNet *vn);

/* VHOST_GET_FEATURES: the virtio features (and VHOST_F_*) it offers. */
uint64_t vhost_net_get_features(VhostNet *vn);
/*
 * VHOST_SET_FEATURES with what the guest negotiated (masked by the
 * offered ones); dirty logging keeps VHOST_F_LOG_ALL set while on.
 */
bool vhost_net_set_features(VhostNet *vn, uint64_t features, GError **errp);
/* VHOST_SET_MEM_TABLE: the whole of guest RAM, replacing the last table. */
bool vhost_net_set_mem_table(VhostNet *vn, const VhostMemRegion *regions, unsigned count,
                             GError **errp);
/* VHOST_SET_VRING_NUM, _ADDR, _BASE, _KICK and _CALL for ring index. */
bool vhost_net_set_ring(VhostNet *vn, unsigned index, const VhostRing *ring,
                        GError **errp);
/* VHOST_SET_VRING_CALL alone (the device switched the ring's interrupt). */
bool vhost_net_set_ring_call(VhostNet *vn, unsigned index, int call_fd, GError **errp);
/*
 * VHOST_NET_SET_BACKEND for both rings: tap_fd starts the data path,
 * -1 stops it.  Call after the rings are set.
 */
bool vhost_net_set_backend(VhostNet *vn, int tap_fd, GError **errp);
/*
 * VHOST_GET_VRING_BASE: the next available index the kernel would process
 * (for migration and restart).  The rings must be stopped first.
 */
bool vhost_net_get_ring_base(VhostNet *vn, unsigned index, uint16_t *last_avail_idx,
                             GError **errp);

/*
 * Dirty logging for migration: the kernel marks every guest page (4 KiB)
 * it writes in a bitmap over [0, ram_end) and signals log_fd (an eventfd,
 * or -1) on each write.  Start sets VHOST_SET_LOG_BASE, VHOST_F_LOG_ALL
 * and the rings' used-ring logging; sync calls mark() for each run of
 * dirty pages seen since the last sync and clears them.
 */
bool vhost_net_log_start(VhostNet *vn, uint64_t ram_end, int log_fd, GError **errp);
void vhost_net_log_sync(VhostNet *vn,
                        void (*mark)(void *opaque, uint64_t gpa, uint64_t len),
                        void *opaque);
bool vhost_net_log_stop(VhostNet *vn, GError **errp);

/* ---- netdevs: a configured backend and its queues ---- */

typedef struct Netdev Netdev;
typedef struct NetdevSet NetdevSet;

NetdevSet *netdev_set_new(void);
/* Close every netdev (running downscripts) and free. */
void netdev_set_free(NetdevSet *set);

/*
 * Open the tap (or take fd=), run the script with the interface name,
 * configure every queue (vnet header, send buffer) and, with vhost=on,
 * open one vhost-net per queue.  "Duplicate ID 'ID' for netdev" when the
 * id is taken.  Errors are QEMU's texts (without the option prefix).  On
 * success the netdev owns cfg->fd, cfg->vhostfd, cfg->fds and
 * cfg->vhostfds and closes them with itself, as QEMU does; on failure the
 * caller still owns them.
 */
Netdev *netdev_open(NetdevSet *set, const NetdevConfig *cfg, GError **errp);
Netdev *netdev_find(NetdevSet *set, const char *id);
/*
 * Close and forget: vhost-net first, then the downscript runs with the
 * interface name (its failure is reported as QEMU reports it), then the
 * tap closes.
 */
void netdev_close(NetdevSet *set, Netdev *nd);
/* Every netdev, in the order opened (g_ptr_array of Netdev *; do not free). */
GPtrArray *netdev_list(NetdevSet *set);

const char *netdev_id(Netdev *nd);
/* The interface's name as the kernel reports it ("tap0"). */
const char *netdev_ifname(Netdev *nd);
/* QEMU's description: "ifname=tap0,script=no,downscript=no" or "fd=N". */
const char *netdev_info(Netdev *nd);
unsigned netdev_queues(Netdev *nd);
NetTap *netdev_tap(Netdev *nd, unsigned queue);
/* The queue's vhost-net, or NULL with vhost=off. */
VhostNet *netdev_vhost(Netdev *nd, unsigned queue);

/*
 * A device takes the netdev (netdev=ID); false if another device already
 * has it.  Release gives it back (device unplug).
 */
bool netdev_claim(Netdev *nd, void *owner);
void netdev_release(Netdev *nd, void *owner);
void *netdev_owner(Netdev *nd);

#endif
