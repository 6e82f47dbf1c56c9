/*
 * Virtio 1.x devices (modern only): split virtqueues read straight from
 * guest RAM, the device core (status, features, queues, an I/O thread fed
 * by ioeventfds), the PCI transport and virtio-blk.
 *
 * Locking: the driver-visible registers (status writes, features, queue
 * set-up) change on vCPU threads with the machine lock held.  Each
 * VirtQueue's ring state is guarded by its own lock, which the device's
 * I/O thread and worker threads take to pop and complete requests; they
 * never take the machine lock.  Reset, pause and migration wait for the
 * I/O thread and for in-flight requests (the "drain") before touching
 * queue state.  A device has one I/O thread unless its model asks for
 * more (virtio_device_set_io_threads): each then serves the queues and
 * descriptors the model gives it, so they run in parallel.
 */
#ifndef HW_VIRTIO_H
#define HW_VIRTIO_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <glib.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "hw/guest-memory.h"
#include "util/iov.h"

typedef struct PciBus PciBus;
typedef struct PciDevice PciDevice;
typedef struct VirtioDevice VirtioDevice;
typedef struct VirtQueue VirtQueue;
typedef struct BlockDriverState BlockDriverState;
typedef struct StateReader StateReader;

#define VIRTQUEUE_MAX_SIZE   1024 /* largest queue a device offers */
#define VIRTIO_NO_VECTOR     0xffff
#define VIRTIO_MAX_WATCH_FDS 8 /* a model's own descriptors (watch_fds), by default */

/*
 * One popped request: its segments in chain order, the device-readable
 * ones (out) first, then the device-writable ones (in).  A segment whose
 * guest address lies outside RAM has iov_base NULL and sets bad_address.
 */
typedef struct VirtQueueElement {
    uint16_t head;
    unsigned out_num, in_num;
    struct iovec *iov; /* out_num + in_num entries */
    uint64_t *gpa;     /* guest address of each segment */
    unsigned capacity;
    size_t out_len, in_len; /* total bytes each way */
    bool bad_address;
} VirtQueueElement;

void virtqueue_element_init(VirtQueueElement *elem);
void virtqueue_element_free(VirtQueueElement *elem);

/*
 * Describe [offset, offset+len) of iov in dst (at most dst_max entries);
 * returns the entry count, or -1 when dst is too small or a NULL segment
 * (outside guest RAM) falls in the range.
 */
int virtio_iov_slice(const struct iovec *iov, unsigned cnt, size_t offset, size_t len,
                     struct iovec *dst, unsigned dst_max);

struct VirtQueue {
    VirtioDevice *vdev; /* NULL for a bare ring (unit tests) */
    GuestMemory mem;    /* where the rings and buffers are */
    unsigned index;
    uint16_t max_size;

    /* driver-visible registers [machine lock] */
    uint16_t size;
    uint16_t msix_vector;
    bool enabled;
    uint64_t desc_gpa, avail_gpa, used_gpa;

    /* ring state [lock] */
    pthread_mutex_t lock;
    pthread_cond_t idle;          /* signalled when inflight drops to 0 */
    bool ready;                   /* rings mapped, requests may be popped */
    bool broken;                  /* a malformed chain: no more pops */
    bool event_idx, indirect;     /* negotiated ring features */
    bool notification_on;         /* guest kicks wanted */
    uint8_t *desc, *avail, *used; /* host views of the three rings */
    uint16_t last_avail_idx;
    uint16_t used_idx;
    uint16_t signalled_used;
    bool signalled_used_valid;
    unsigned inflight; /* popped, not yet completed */

    int kick_fd;         /* eventfd: ioeventfd or the notify handler */
    bool kick_elsewhere; /* atomic: someone else (vhost) reads kick_fd */
};

/*
 * A queue of up to max_size entries in guest memory mem; no rings until
 * virtqueue_map_rings.
 */
void virtqueue_init(VirtQueue *vq, const GuestMemory *mem, VirtioDevice *vdev,
                    unsigned index, uint16_t max_size);
void virtqueue_destroy(VirtQueue *vq);

/*
 * The split-ring primitives, all with vq->lock held.  map_rings checks the
 * size (a power of two up to max_size), alignment and that every ring lies
 * in guest RAM, and takes the features (EVENT_IDX, INDIRECT_DESC).
 */
bool virtqueue_map_rings(VirtQueue *vq, uint64_t features, const char **why);
void virtqueue_reset_rings(VirtQueue *vq);
/*
 * Take the next available chain: 1 with elem filled, 0 when the ring is
 * empty, -EINVAL (and *why) for a malformed ring: a loop, a chain longer
 * than the limits, an index out of range, a nested or misplaced indirect
 * table, a table outside RAM, readable after writable.  Chains are copied
 * descriptor by descriptor, so the guest cannot change them under us.
 */
int virtqueue_pop(VirtQueue *vq, VirtQueueElement *elem, const char **why);
/* Return a chain to the driver with len bytes written into it. */
void virtqueue_push(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len);
/*
 * The same in two steps, for several chains the driver must see at once
 * (a frame spread over merged receive buffers): fill writes used entry
 * used_idx + offset, flush publishes count entries.
 */
void virtqueue_fill(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len,
                    unsigned offset);
void virtqueue_flush(VirtQueue *vq, unsigned count);
/* Give the last popped chain back (it will be popped again). */
void virtqueue_unpop(VirtQueue *vq);
/* After pushes: does the driver want an interrupt (event index or flags)? */
bool virtqueue_should_notify(VirtQueue *vq);
/* Ask for kicks again (true, with a barrier) or suppress them (false). */
void virtqueue_set_notification(VirtQueue *vq, bool enable);
bool virtqueue_has_avail(VirtQueue *vq);

/* What a device model provides; machine lock unless said otherwise. */
typedef struct VirtioDeviceOps {
    /* A kick on vq: pop and process.  On the I/O thread that serves vq. */
    void (*handle_queue)(VirtioDevice *vdev, VirtQueue *vq);
    /* Which I/O thread serves queue index (below nr_io); optional: 0. */
    unsigned (*queue_thread)(VirtioDevice *vdev, unsigned index);
    /* The driver wrote the device config; optional (default: ignored). */
    void (*config_write)(VirtioDevice *vdev, unsigned offset, const uint8_t *data,
                         unsigned len);
    /* Back to power-on after the drain; optional. */
    void (*reset)(VirtioDevice *vdev);
    /* The model's own migration state; optional. */
    void (*save)(VirtioDevice *vdev, GByteArray *out);
    bool (*load_check)(VirtioDevice *vdev, StateReader *r, GError **errp);
    /* Take on what the last successful load_check parsed; optional. */
    void (*load_apply)(VirtioDevice *vdev);
    /* The I/O thread stopped and nothing is in flight: stop worker
     * threads (they may still be returning); optional. */
    void (*stop)(VirtioDevice *vdev);
    /* Free the model, after virtio_device_cleanup; optional. */
    void (*destroy)(VirtioDevice *vdev);
    /* The driver changed the status (not a reset: see reset); optional. */
    void (*status_changed)(VirtioDevice *vdev, uint8_t old_status, uint8_t new_status);
    /*
     * The model's own descriptors for I/O thread thread to watch besides
     * its queues' kicks (a tap, eventfds): fill at most max entries, return
     * the count.  Asked again on every wake-up, with that thread's
     * busy_lock held, only while the driver is running (DRIVER_OK, not
     * paused or resetting); optional.
     */
    unsigned (*watch_fds)(VirtioDevice *vdev, unsigned thread, struct pollfd *fds,
                          unsigned max);
    /* Entry index of thread's watch_fds is ready (revents): on that thread. */
    void (*handle_fd)(VirtioDevice *vdev, unsigned thread, unsigned index, short revents);
    /* The VM stops (paused true, after the drain) or runs again; optional. */
    void (*pause)(VirtioDevice *vdev, bool paused);
    /* Migration logs DMA (on) or not: for writes others make; any thread. */
    void (*dirty_log)(VirtioDevice *vdev, bool on);
} VirtioDeviceOps;

/* How the device reaches the driver; any thread. */
typedef struct VirtioTransportOps {
    void (*notify_queue)(VirtioDevice *vdev, VirtQueue *vq);
    void (*notify_config)(VirtioDevice *vdev);
    void (*mark_dirty)(VirtioDevice *vdev, uint64_t gpa, uint64_t len);
    /*
     * Optional: let eventfd fd raise vq's interrupt directly (KVM irqfd on
     * its MSI-X vector): returns the handle to release it with, or -1 where
     * the transport cannot (INTx, no vector): the caller relays instead.
     */
    int (*queue_irqfd_use)(VirtioDevice *vdev, VirtQueue *vq, int fd);
    void (*queue_irqfd_release)(VirtioDevice *vdev, int handle, int fd);
} VirtioTransportOps;

/* One I/O thread of a device. */
typedef struct VirtioIoThread {
    VirtioDevice *vdev;
    unsigned index;
    pthread_t thread;
    bool started;
    int ctl_fd;                /* eventfd: rescan queues or exit */
    pthread_mutex_t busy_lock; /* held while the thread handles a queue or fd */
} VirtioIoThread;

struct VirtioDevice {
    char *name;         /* for messages: "virtio-blk@00:02.0" */
    uint16_t device_id; /* VIRTIO_ID_BLOCK, ... */
    GuestMemory mem;    /* guest RAM, for the queues */
    const VirtioDeviceOps *ops;
    const VirtioTransportOps *transport;
    void *transport_opaque;
    uint64_t host_features;

    /* driver-visible [machine lock]; status is also read by I/O threads */
    uint64_t guest_features;
    uint32_t device_feature_select, driver_feature_select;
    uint8_t status; /* atomic: threads OR in NEEDS_RESET */
    uint8_t config_generation;
    uint16_t config_vector;
    uint16_t queue_select;
    uint8_t isr; /* atomic */
    uint8_t *config;
    unsigned config_len;
    unsigned nr_queues;
    VirtQueue *vqs;
    unsigned max_watch_fds; /* watch_fds' max (VIRTIO_MAX_WATCH_FDS unless the
                               model sets more before the I/O thread starts) */
    unsigned msix_vectors;  /* MSI-X vectors the transport offers; 0:
                               nr_queues + 1 (one per queue and the config) */

    /* the I/O threads (one unless the model asks for more) */
    VirtioIoThread *io;
    unsigned nr_io;
    bool paused;    /* [every busy_lock to write, one to read] VM stopped */
    bool resetting; /* [likewise] reset in progress */
    bool exiting;
    bool error_reported;
};

/*
 * Set up the core: nr_queues queues of queue_size entries in guest memory
 * mem, config_len
 * bytes of device config (filled by the model), the host features (with
 * VIRTIO_F_VERSION_1 added).  virtio_device_start runs the I/O thread.
 */
void virtio_device_init(VirtioDevice *vdev, const GuestMemory *mem, const char *name,
                        uint16_t device_id, unsigned nr_queues, uint16_t queue_size,
                        uint64_t host_features, unsigned config_len,
                        const VirtioDeviceOps *ops);
bool virtio_device_start(VirtioDevice *vdev, GError **errp);
/*
 * Serve the queues with count I/O threads instead of one (ops->queue_thread
 * says which serves which queue); after init, before start.
 */
void virtio_device_set_io_threads(VirtioDevice *vdev, unsigned count);
/*
 * Every I/O thread between queues, or (lock_others, from an I/O thread
 * that holds its own) every other one: for a model's state its threads
 * share.  Locks are taken in thread order.
 */
void virtio_device_lock(VirtioDevice *vdev);
void virtio_device_unlock(VirtioDevice *vdev);
void virtio_device_lock_others(VirtioDevice *vdev, unsigned self);
void virtio_device_unlock_others(VirtioDevice *vdev, unsigned self);
/* Stop the thread, drain, ops->stop, free the core (not the model). */
void virtio_device_cleanup(VirtioDevice *vdev);

/* Driver register semantics, used by the transport [machine lock]. */
uint32_t virtio_get_device_features(VirtioDevice *vdev);
uint32_t virtio_get_driver_features(VirtioDevice *vdev);
void virtio_set_driver_features(VirtioDevice *vdev, uint32_t value);
uint8_t virtio_get_status(VirtioDevice *vdev);
void virtio_set_status(VirtioDevice *vdev, uint8_t status);
void virtio_reset(VirtioDevice *vdev);
void virtio_queue_enable(VirtioDevice *vdev, unsigned index);
/* A notify-region write that no ioeventfd caught. */
void virtio_queue_kick(VirtQueue *vq);
/* Make the I/O threads look at every queue and ask watch_fds again; any thread. */
void virtio_device_wake(VirtioDevice *vdev);

/* Drain and hold (VM stopped) / let the I/O thread go again. */
void virtio_device_pause(VirtioDevice *vdev);
void virtio_device_resume(VirtioDevice *vdev);

/*
 * For device models, from the I/O or worker threads.  pop takes a request
 * (false when none, or when the ring turned out malformed: the device then
 * needs a reset).  complete returns it with len bytes written, and raises
 * the interrupt if the driver wants one.
 */
bool virtio_queue_pop(VirtQueue *vq, VirtQueueElement *elem);
void virtio_queue_complete(VirtQueue *vq, VirtQueueElement *elem, uint32_t len);
/* Complete n popped chains together (one used-index update, one interrupt). */
void virtio_queue_complete_many(VirtQueue *vq, VirtQueueElement *elems,
                                const uint32_t *lens, unsigned n);
/* Give back the last n popped chains, unused, newest first. */
void virtio_queue_unpop(VirtQueue *vq, unsigned n);
/* Set DEVICE_NEEDS_RESET (and stop vq, if given); tell the driver. */
void virtio_error(VirtioDevice *vdev, VirtQueue *vq, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Migration: queue and register state, drained first. */
void virtio_device_save(VirtioDevice *vdev, GByteArray *out);
typedef struct VirtioSnapshot VirtioSnapshot;
VirtioSnapshot *virtio_device_parse(VirtioDevice *vdev, StateReader *r, GError **errp);
void virtio_device_apply(VirtioDevice *vdev, VirtioSnapshot *snap);
void virtio_snapshot_free(VirtioSnapshot *snap);

/*
 * The modern virtio-pci transport for vdev: device ID 0x1040 + type,
 * revision 1, the virtio capabilities in a 16 KiB 64-bit prefetchable
 * BAR 4 (common 0x0, ISR 0x1000, device 0x2000, notify 0x3000 with a
 * multiplier of 4), MSI-X in BAR 1 (nr_queues + 1 vectors), INTA.
 * Realized on bus at devfn (or the first free slot) with its migration
 * state registered as "<name>@00:SS.F" where the bus keeps device states.  On failure
 * vdev is left to the caller.
 */
PciDevice *virtio_pci_create(PciBus *bus, VirtioDevice *vdev, const char *pci_name,
                             uint32_t class_code, const char *qdev_id, int devfn,
                             GError **errp);
/* The virtio device behind a virtio-pci function, or NULL for another device. */
VirtioDevice *virtio_pci_device(PciDevice *pci);

/* The block layer calls virtio-blk makes; tests substitute a fake. */
typedef struct VirtioBlkBackend {
    uint64_t (*getlength)(BlockDriverState *bs);
    bool (*is_read_only)(BlockDriverState *bs);
    int (*preadv)(BlockDriverState *bs, uint64_t offset, const struct iovec *iov,
                  int iovcnt);
    int (*pwritev)(BlockDriverState *bs, uint64_t offset, const struct iovec *iov,
                   int iovcnt);
    int (*flush)(BlockDriverState *bs);
    int (*discard)(BlockDriverState *bs, uint64_t offset, uint64_t len);
    int (*write_zeroes)(BlockDriverState *bs, uint64_t offset, uint64_t len,
                        bool may_unmap);
} VirtioBlkBackend;

typedef struct VirtioBlkOptions {
    BlockDriverState *bs;
    const char *id;                  /* -device id= (qdev_id), or NULL */
    const char *serial;              /* GET_ID string (20 bytes max), or NULL */
    int devfn;                       /* PCI_DEVFN_AUTO for the next free slot */
    unsigned num_queues;             /* 0: 1 */
    unsigned queue_size;             /* 0: 256 */
    bool read_only;                  /* also when the image is read-only */
    const VirtioBlkBackend *backend; /* NULL: the block layer */
} VirtioBlkOptions;

/*
 * A virtio-blk-pci disk on bs (-drive if=virtio, -device virtio-blk-pci) on
 * bus; it reaches guest RAM through the bus.
 */
PciDevice *virtio_blk_pci_create(PciBus *bus, BlockDriverState *bs, const char *id,
                                 const char *serial, GError **errp);
/* The checks virtio_blk_pci_create_opts makes, with no VM (before KVM). */
bool virtio_blk_options_check(const VirtioBlkOptions *opts, GError **errp);
PciDevice *virtio_blk_pci_create_opts(PciBus *bus, const VirtioBlkOptions *opts,
                                      GError **errp);

#endif
