/*
 * net/ internals: how netdev.c opens and frees tap queues (tap.c) and runs
 * the interface scripts.
 */
#ifndef NET_NET_INT_H
#define NET_NET_INT_H

#include <stdbool.h>

#include "net/net.h"

#define NET_TUN_PATH           "/dev/net/tun"
#define NET_DEFAULT_SCRIPT     "/etc/qemu-ifup"
#define NET_DEFAULT_DOWNSCRIPT "/etc/qemu-ifdown"

/*
 * Create (or attach to) tap interface ifname (NULL or "": the kernel picks
 * "tapN"), with IFF_MULTI_QUEUE when multi_queue, vnet headers of
 * NET_VNET_HDR_LEN and every offload off.
 */
NetTap *net_tap_open(const char *ifname, bool multi_queue, GError **errp);
/*
 * Take an open tap (fd=), checked with TUNGETIFF; id prefixes the error for
 * a descriptor that is not open, as QEMU does.  The NetTap owns fd then
 * (on failure the caller still does).
 */
NetTap *net_tap_from_fd(int fd, const char *id, GError **errp);
/* Forget the descriptor without closing it (it goes back to its giver). */
void net_tap_release_fd(NetTap *tap);
/* The same for a vhost-net given by vhostfd=. */
void vhost_net_release_fd(VhostNet *vn);
/* TUNSETSNDBUF; 0 means INT_MAX (QEMU's default). */
bool net_tap_set_sndbuf(NetTap *tap, uint64_t sndbuf, GError **errp);
/*
 * io_uring for batched tap writes (tap-uring.c): NULL where the kernel has
 * none (or it is disabled).  net_uring_writev writes n (at most
 * net_uring_entries) frames to fd with one system call, results[i] as
 * writev's (bytes or -errno); false when the ring broke (frames without a
 * result say -EIO): free it and write frame by frame.
 */
#define NET_TAP_BATCH 64 /* frames per io_uring system call */
typedef struct NetUring NetUring;
NetUring *net_uring_new(unsigned entries);
unsigned net_uring_entries(NetUring *u);
bool net_uring_writev(NetUring *u, int fd, const NetTapFrame *frames, unsigned n,
                      ssize_t *results);
void net_uring_free(NetUring *u);
/* The interface name the kernel gave it. */
const char *net_tap_ifname(NetTap *tap);
/* Close the queue. NULL is a no-op. */
void net_tap_free(NetTap *tap);

/*
 * Run script with ifname as its only argument, as QEMU does (descriptors
 * other than 0-2 closed) and wait for it: "network script S failed with
 * status N" (N the raw wait status) unless it exits 0.
 */
bool net_run_script(const char *script, const char *ifname, GError **errp);

#endif
