/*
 * virtio-blk's state, shared with its unit test: the request executor can
 * be driven without the transport or threads.  Locking: none of its own
 * (see virtio-blk.c).
 */
#ifndef HW_VIRTIO_VIRTIO_BLK_H
#define HW_VIRTIO_VIRTIO_BLK_H

#include <pthread.h>
#include <linux/virtio_blk.h>

#include "hw/virtio.h"

#define VIRTIO_BLK_WORKERS 16 /* I/O threads per device */

typedef struct VirtioBlk {
    VirtioDevice vdev; /* first: the core hands this back */
    BlockDriverState *bs;
    const VirtioBlkBackend *backend;
    uint64_t capacity; /* in 512-byte sectors */
    bool read_only;
    char serial[VIRTIO_BLK_ID_BYTES]; /* NUL-padded, not terminated at 20 */
    /*
     * Requests for the workers, under a pthread mutex and condition, which
     * ThreadSanitizer sees (GLib's GAsyncQueue locks with futexes it
     * cannot, so every hand-off looked like a race).
     */
    pthread_mutex_t work_lock;
    pthread_cond_t work_cond;
    GQueue work;
    bool stopping; /* the workers end once it is empty */
    pthread_t workers[VIRTIO_BLK_WORKERS];
    unsigned nr_workers;
} VirtioBlk;

/*
 * Carry out one request and write its status byte.  Returns the status
 * (VIRTIO_BLK_S_*) with *used_len the bytes written to the guest, or
 * -EINVAL when the chain has no writable status byte in guest RAM (the
 * device then needs a reset).  Any thread.
 */
int virtio_blk_execute(VirtioBlk *blk, VirtQueueElement *elem, uint32_t *used_len);

#endif
