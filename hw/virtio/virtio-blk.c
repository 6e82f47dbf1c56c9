/*
 * virtio-blk (virtio 1.x, 5.2): IN, OUT, FLUSH, GET_ID, DISCARD and
 * WRITE_ZEROES on an image of the block layer.
 *
 * I/O runs off the vCPU threads on a small pool of worker threads (16 per
 * device, fed through a mutex-protected queue), not on io_uring: the block layer's
 * API is synchronous (bdrv_preadv and friends, thread-safe, with qcow2
 * metadata updates inside), so threads calling it are what gives queue
 * depth; io_uring would need an asynchronous block layer underneath to
 * pay off.  The device's I/O
 * thread pops requests after a kick; when a kick brings several, all but
 * the last go to the pool and the last runs right there, so a lone request
 * (queue depth 1) costs no thread hand-off.
 * Locking: requests touch no machine state; ring access is in virtio.c.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <linux/virtio_blk.h>

#include "block/block.h"
#include "hw/pci.h"
#include "hw/state-blob.h"
#include "hw/virtio.h"
#include "virtio-blk.h"
#include "util/error.h"

#define SECTOR_SIZE            512
#define BLK_DEFAULT_QUEUE_SIZE 256
#define BLK_MAX_QUEUES         16
#define BLK_SIZE_MAX           (4u << 20) /* per segment */
#define BLK_MAX_DWZ_SECTORS    0x3fffffu  /* discard / write zeroes */
#define BLK_MAX_DWZ_SEGMENTS   256u
#define BLK_REQ_HEADER_SIZE    16
#define BLK_DWZ_SEGMENT_SIZE   16
#define BLK_STATE_MAGIC        0x424c4b31u /* "BLK1" */
#define PCI_CLASS_SCSI_STORAGE 0x010000

typedef struct VirtioBlkRequest {
    VirtioBlk *blk;
    VirtQueue *vq;
    VirtQueueElement elem;
} VirtioBlkRequest;

static uint64_t backend_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs);
}

static const VirtioBlkBackend block_layer_backend = {
    .getlength = backend_getlength,
    .is_read_only = bdrv_is_read_only,
    .preadv = bdrv_preadv,
    .pwritev = bdrv_pwritev,
    .flush = bdrv_flush,
    .discard = bdrv_discard,
    .write_zeroes = bdrv_write_zeroes,
};

/* Is [sector, sector + bytes/512) on the disk? */
static bool blk_range_ok(VirtioBlk *blk, uint64_t sector, uint64_t bytes)
{
    uint64_t sectors = bytes / SECTOR_SIZE;

    return sector <= blk->capacity && sectors <= blk->capacity - sector;
}

/* Read or write the data segments between header and status. */
static uint8_t blk_rw(VirtioBlk *blk, VirtQueueElement *elem, bool is_write,
                      uint64_t sector, uint32_t *used_len)
{
    const struct iovec *src = is_write ? elem->iov : elem->iov + elem->out_num;
    unsigned cnt = is_write ? elem->out_num : elem->in_num;
    size_t offset = is_write ? BLK_REQ_HEADER_SIZE : 0;
    size_t len = is_write ? elem->out_len - BLK_REQ_HEADER_SIZE : elem->in_len - 1;
    struct iovec *iov;
    int n, ret;

    if (is_write && blk->read_only) {
        return VIRTIO_BLK_S_IOERR;
    }
    if (len % SECTOR_SIZE || !blk_range_ok(blk, sector, len)) {
        return VIRTIO_BLK_S_IOERR;
    }
    iov = g_new(struct iovec, cnt ? cnt : 1);
    n = virtio_iov_slice(src, cnt, offset, len, iov, cnt);
    if (n < 0) {
        g_free(iov);
        return VIRTIO_BLK_S_IOERR;
    }
    ret = n == 0     ? 0
          : is_write ? blk->backend->pwritev(blk->bs, sector * SECTOR_SIZE, iov, n)
                     : blk->backend->preadv(blk->bs, sector * SECTOR_SIZE, iov, n);
    g_free(iov);
    if (ret < 0) {
        return VIRTIO_BLK_S_IOERR;
    }
    if (!is_write) {
        *used_len += len;
    }
    return VIRTIO_BLK_S_OK;
}

static uint8_t blk_get_id(VirtioBlk *blk, VirtQueueElement *elem, uint32_t *used_len)
{
    size_t n = MIN(elem->in_len - 1, (size_t)VIRTIO_BLK_ID_BYTES);

    *used_len += iov_from_buf(elem->iov + elem->out_num, elem->in_num, 0, blk->serial, n);
    return VIRTIO_BLK_S_OK;
}

/*
 * Discard and write zeroes: every segment is checked before any is
 * carried out, so a bad one fails the request without side effects.
 */
static uint8_t blk_discard_write_zeroes(VirtioBlk *blk, VirtQueueElement *elem,
                                        bool discard)
{
    size_t len = elem->out_len - BLK_REQ_HEADER_SIZE;
    unsigned nr = len / BLK_DWZ_SEGMENT_SIZE;
    uint8_t(*seg)[BLK_DWZ_SEGMENT_SIZE];
    uint8_t status = VIRTIO_BLK_S_OK;

    if (blk->read_only) {
        return VIRTIO_BLK_S_IOERR;
    }
    if (len == 0 || len % BLK_DWZ_SEGMENT_SIZE || nr > BLK_MAX_DWZ_SEGMENTS) {
        return VIRTIO_BLK_S_IOERR;
    }
    seg = g_malloc(len);
    if (iov_to_buf(elem->iov, elem->out_num, BLK_REQ_HEADER_SIZE, seg, len) != len) {
        status = VIRTIO_BLK_S_IOERR;
    }
    for (unsigned i = 0; i < nr && status == VIRTIO_BLK_S_OK; i++) {
        uint64_t sector = pci_get_long(seg[i]) | (uint64_t)pci_get_long(seg[i] + 4) << 32;
        uint32_t sectors = pci_get_long(seg[i] + 8), flags = pci_get_long(seg[i] + 12);
        if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
            (discard && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))) {
            status = VIRTIO_BLK_S_UNSUPP;
        } else if (sectors > BLK_MAX_DWZ_SECTORS ||
                   !blk_range_ok(blk, sector, (uint64_t)sectors * SECTOR_SIZE)) {
            status = VIRTIO_BLK_S_IOERR;
        }
    }
    for (unsigned i = 0; i < nr && status == VIRTIO_BLK_S_OK; i++) {
        uint64_t sector = pci_get_long(seg[i]) | (uint64_t)pci_get_long(seg[i] + 4) << 32;
        uint64_t bytes = (uint64_t)pci_get_long(seg[i] + 8) * SECTOR_SIZE;
        bool unmap = pci_get_long(seg[i] + 12) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
        int ret = !bytes    ? 0
                  : discard ? blk->backend->discard(blk->bs, sector * SECTOR_SIZE, bytes)
                            : blk->backend->write_zeroes(blk->bs, sector * SECTOR_SIZE,
                                                         bytes, unmap);
        status = ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
    }
    g_free(seg);
    return status;
}

static uint8_t blk_dispatch(VirtioBlk *blk, VirtQueueElement *elem, uint32_t type,
                            uint64_t sector, uint32_t *used_len)
{
    switch (type) {
    case VIRTIO_BLK_T_IN:
        return blk_rw(blk, elem, false, sector, used_len);
    case VIRTIO_BLK_T_OUT:
        return blk_rw(blk, elem, true, sector, used_len);
    case VIRTIO_BLK_T_FLUSH:
        return blk->backend->flush(blk->bs) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_GET_ID:
        return blk_get_id(blk, elem, used_len);
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        if (!(blk->vdev.host_features &
              (1ULL << (type == VIRTIO_BLK_T_DISCARD ? VIRTIO_BLK_F_DISCARD
                                                     : VIRTIO_BLK_F_WRITE_ZEROES)))) {
            return VIRTIO_BLK_S_UNSUPP;
        }
        return blk_discard_write_zeroes(blk, elem, type == VIRTIO_BLK_T_DISCARD);
    default:
        return VIRTIO_BLK_S_UNSUPP;
    }
}

int virtio_blk_execute(VirtioBlk *blk, VirtQueueElement *elem, uint32_t *used_len)
{
    uint8_t header[BLK_REQ_HEADER_SIZE], status;
    struct iovec status_iov;
    uint32_t type;
    uint64_t sector;

    *used_len = 0;
    /* the status byte is the last byte the driver lets us write */
    if (elem->in_len == 0 || virtio_iov_slice(elem->iov + elem->out_num, elem->in_num,
                                              elem->in_len - 1, 1, &status_iov, 1) != 1) {
        return -EINVAL;
    }
    if (elem->bad_address || elem->out_len < BLK_REQ_HEADER_SIZE ||
        iov_to_buf(elem->iov, elem->out_num, 0, header, sizeof(header)) !=
            sizeof(header)) {
        status = VIRTIO_BLK_S_IOERR;
    } else {
        type = pci_get_long(header);
        sector = pci_get_long(header + 8) | (uint64_t)pci_get_long(header + 12) << 32;
        status = blk_dispatch(blk, elem, type, sector, used_len);
    }
    *(volatile uint8_t *)status_iov.iov_base = status;
    *used_len += 1;
    return status;
}

static void virtio_blk_run(VirtioBlkRequest *req)
{
    VirtioBlk *blk = req->blk;
    uint32_t used_len;

    if (virtio_blk_execute(blk, &req->elem, &used_len) < 0) {
        virtio_error(&blk->vdev, req->vq,
                     "queue %u: request without a writable status "
                     "byte in guest RAM",
                     req->vq->index);
        used_len = 0;
    }
    virtio_queue_complete(req->vq, &req->elem, used_len);
    virtqueue_element_free(&req->elem);
    g_free(req);
}

static void virtio_blk_push(VirtioBlk *blk, VirtioBlkRequest *req)
{
    pthread_mutex_lock(&blk->work_lock);
    g_queue_push_tail(&blk->work, req);
    pthread_cond_signal(&blk->work_cond);
    pthread_mutex_unlock(&blk->work_lock);
}

/* A worker: run requests until the device stops and the queue is empty. */
static void *virtio_blk_worker(void *opaque)
{
    VirtioBlk *blk = opaque;

    for (;;) {
        VirtioBlkRequest *req;

        pthread_mutex_lock(&blk->work_lock);
        while (g_queue_is_empty(&blk->work) && !blk->stopping) {
            pthread_cond_wait(&blk->work_cond, &blk->work_lock);
        }
        req = g_queue_pop_head(&blk->work);
        pthread_mutex_unlock(&blk->work_lock);
        if (!req) {
            return NULL;
        }
        virtio_blk_run(req);
    }
}

/* The device's own workers, started with every signal blocked. */
static bool virtio_blk_workers_start(VirtioBlk *blk, GError **errp)
{
    sigset_t all, old;
    int err = 0;

    pthread_mutex_init(&blk->work_lock, NULL);
    pthread_cond_init(&blk->work_cond, NULL);
    g_queue_init(&blk->work);
    blk->stopping = false;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (blk->nr_workers < VIRTIO_BLK_WORKERS && !err) {
        err = pthread_create(&blk->workers[blk->nr_workers], NULL, virtio_blk_worker,
                             blk);
        blk->nr_workers += !err;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        error_setg(errp, "virtio-blk: cannot start I/O workers: %s", g_strerror(err));
    }
    return !err;
}

static void virtio_blk_handle_queue(VirtioDevice *vdev, VirtQueue *vq)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;
    VirtioBlkRequest *last = NULL;

    for (;;) {
        VirtioBlkRequest *req = g_new0(VirtioBlkRequest, 1);
        req->blk = blk;
        req->vq = vq;
        if (!virtio_queue_pop(vq, &req->elem)) {
            virtqueue_element_free(&req->elem);
            g_free(req);
            break;
        }
        if (last) {
            virtio_blk_push(blk, last);
        }
        last = req;
    }
    if (last) {
        virtio_blk_run(last);
    }
}

static void virtio_blk_save(VirtioDevice *vdev, GByteArray *out)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;

    blob_put_u32(out, BLK_STATE_MAGIC);
    blob_put_u64(out, blk->capacity);
}

static bool virtio_blk_load_check(VirtioDevice *vdev, StateReader *r, GError **errp)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;
    uint32_t magic = blob_get_u32(r);
    uint64_t capacity = blob_get_u64(r);

    if (r->error || magic != BLK_STATE_MAGIC) {
        error_setg(errp, "%s: bad virtio-blk state", vdev->name);
        return false;
    }
    if (capacity != blk->capacity) {
        error_setg(errp,
                   "%s: the disk has %" G_GUINT64_FORMAT
                   " sectors here, %" G_GUINT64_FORMAT " on the source",
                   vdev->name, blk->capacity, capacity);
        return false;
    }
    return true;
}

/* Nothing is in flight: wake every worker to end, then join them. */
static void virtio_blk_stop(VirtioDevice *vdev)
{
    VirtioBlk *blk = (VirtioBlk *)vdev;

    if (!blk->nr_workers) {
        return;
    }
    pthread_mutex_lock(&blk->work_lock);
    blk->stopping = true;
    pthread_cond_broadcast(&blk->work_cond);
    pthread_mutex_unlock(&blk->work_lock);
    for (unsigned i = 0; i < blk->nr_workers; i++) {
        pthread_join(blk->workers[i], NULL);
    }
    blk->nr_workers = 0;
    pthread_cond_destroy(&blk->work_cond);
    pthread_mutex_destroy(&blk->work_lock);
}

static void virtio_blk_destroy(VirtioDevice *vdev)
{
    g_free(vdev); /* the VirtioBlk that embeds it */
}

static const VirtioDeviceOps virtio_blk_ops = {
    .handle_queue = virtio_blk_handle_queue,
    .save = virtio_blk_save,
    .load_check = virtio_blk_load_check,
    .stop = virtio_blk_stop,
    .destroy = virtio_blk_destroy,
};

static uint64_t virtio_blk_features(const VirtioBlk *blk, unsigned num_queues)
{
    uint64_t f = (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
                 (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_BLK_F_SIZE_MAX) |
                 (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
                 (1ULL << VIRTIO_BLK_F_FLUSH);

    if (blk->read_only) {
        f |= 1ULL << VIRTIO_BLK_F_RO;
    } else {
        f |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
    }
    if (num_queues > 1) {
        f |= 1ULL << VIRTIO_BLK_F_MQ;
    }
    return f;
}

/* struct virtio_blk_config, little-endian, with the limits we offer. */
static void virtio_blk_fill_config(VirtioBlk *blk, unsigned num_queues,
                                   unsigned queue_size)
{
    struct virtio_blk_config *c = (struct virtio_blk_config *)blk->vdev.config;

    c->capacity = GUINT64_TO_LE(blk->capacity);
    c->size_max = GUINT32_TO_LE(BLK_SIZE_MAX);
    c->seg_max = GUINT32_TO_LE(queue_size - 2); /* header and status */
    c->blk_size = GUINT32_TO_LE(SECTOR_SIZE);
    c->num_queues = GUINT16_TO_LE(num_queues);
    c->max_discard_sectors = GUINT32_TO_LE(BLK_MAX_DWZ_SECTORS);
    c->max_discard_seg = GUINT32_TO_LE(BLK_MAX_DWZ_SEGMENTS);
    c->discard_sector_alignment = GUINT32_TO_LE(1);
    c->max_write_zeroes_sectors = GUINT32_TO_LE(BLK_MAX_DWZ_SECTORS);
    c->max_write_zeroes_seg = GUINT32_TO_LE(BLK_MAX_DWZ_SEGMENTS);
    c->write_zeroes_may_unmap = 1;
}

static bool virtio_blk_check_options(const VirtioBlkOptions *o, unsigned *num_queues,
                                     unsigned *queue_size, GError **errp)
{
    *num_queues = o->num_queues ? o->num_queues : 1;
    *queue_size = o->queue_size ? o->queue_size : BLK_DEFAULT_QUEUE_SIZE;
    if (!o->bs) {
        error_setg(errp, "virtio-blk-pci: drive property not set");
    } else if (*num_queues > BLK_MAX_QUEUES) {
        error_setg(errp, "virtio-blk-pci: num-queues must be between 1 and %d",
                   BLK_MAX_QUEUES);
    } else if (*queue_size < 4 || *queue_size > VIRTQUEUE_MAX_SIZE ||
               (*queue_size & (*queue_size - 1))) {
        error_setg(errp,
                   "virtio-blk-pci: queue-size must be a power of 2 between 4 "
                   "and %d",
                   VIRTQUEUE_MAX_SIZE);
    } else if (o->serial && strlen(o->serial) > VIRTIO_BLK_ID_BYTES) {
        error_setg(errp, "virtio-blk-pci: serial is longer than %d bytes",
                   VIRTIO_BLK_ID_BYTES);
    } else {
        return true;
    }
    return false;
}

bool virtio_blk_options_check(const VirtioBlkOptions *o, GError **errp)
{
    unsigned num_queues, queue_size;

    return virtio_blk_check_options(o, &num_queues, &queue_size, errp);
}

PciDevice *virtio_blk_pci_create_opts(PciBus *bus, const VirtioBlkOptions *o,
                                      GError **errp)
{
    unsigned num_queues, queue_size;
    VirtioBlk *blk;
    PciDevice *pci;

    if (!virtio_blk_check_options(o, &num_queues, &queue_size, errp)) {
        return NULL;
    }
    if (!bus) {
        error_setg(errp, "virtio-blk-pci: this machine has no PCI bus");
        return NULL;
    }
    blk = g_new0(VirtioBlk, 1);
    blk->bs = o->bs;
    blk->backend = o->backend ? o->backend : &block_layer_backend;
    blk->capacity = blk->backend->getlength(o->bs) / SECTOR_SIZE;
    blk->read_only = o->read_only || blk->backend->is_read_only(o->bs);
    if (o->serial) { /* NUL-padded; 20 bytes long means no NUL */
        memcpy(blk->serial, o->serial, strlen(o->serial));
    }
    virtio_device_init(&blk->vdev, pci_bus_memory(bus), "virtio-blk", VIRTIO_ID_BLOCK,
                       num_queues, queue_size, virtio_blk_features(blk, num_queues),
                       sizeof(struct virtio_blk_config), &virtio_blk_ops);
    virtio_blk_fill_config(blk, num_queues, queue_size);
    if (!virtio_blk_workers_start(blk, errp)) {
        virtio_device_cleanup(&blk->vdev);
        g_free(blk);
        return NULL;
    }
    pci = virtio_pci_create(bus, &blk->vdev, "virtio-blk-pci", PCI_CLASS_SCSI_STORAGE,
                            o->id, o->devfn, errp);
    if (!pci) {
        virtio_device_cleanup(&blk->vdev);
        g_free(blk);
    }
    return pci;
}

PciDevice *virtio_blk_pci_create(PciBus *bus, BlockDriverState *bs, const char *id,
                                 const char *serial, GError **errp)
{
    VirtioBlkOptions o = {
        .bs = bs, .id = id, .serial = serial, .devfn = PCI_DEVFN_AUTO
    };

    return virtio_blk_pci_create_opts(bus, &o, errp);
}
