/*
 * Split virtqueues (virtio 1.x, 2.7): descriptor chains with indirect
 * tables, the used ring, and event-index notification suppression both
 * ways.  Every guest address goes through the queue's GuestMemory, every
 * descriptor is copied once before it is looked at, and every walk is
 * bounded.  Locking: the caller holds vq->lock (include/hw/virtio.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hw/virtio.h"

/* Layout of the three rings (2.7.5 - 2.7.8). */
#define DESC_SIZE      16
#define AVAIL_FLAGS    0
#define AVAIL_IDX      2
#define AVAIL_RING     4
#define USED_FLAGS     0
#define USED_IDX       2
#define USED_RING      4
#define USED_ELEM_SIZE 8

typedef struct VringDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VringDesc;

void virtqueue_element_init(VirtQueueElement *elem)
{
    memset(elem, 0, sizeof(*elem));
}

void virtqueue_element_free(VirtQueueElement *elem)
{
    g_free(elem->iov);
    g_free(elem->gpa);
    virtqueue_element_init(elem);
}

int virtio_iov_slice(const struct iovec *iov, unsigned cnt, size_t offset, size_t len,
                     struct iovec *dst, unsigned dst_max)
{
    unsigned n = 0;

    for (unsigned i = 0; i < cnt && len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t take = MIN(iov[i].iov_len - offset, len);
        if (n == dst_max || !iov[i].iov_base) {
            return -1;
        }
        dst[n].iov_base = (uint8_t *)iov[i].iov_base + offset;
        dst[n++].iov_len = take;
        len -= take;
        offset = 0;
    }
    return len ? -1 : (int)n;
}

void virtqueue_init(VirtQueue *vq, const GuestMemory *mem, VirtioDevice *vdev,
                    unsigned index, uint16_t max_size)
{
    memset(vq, 0, sizeof(*vq));
    vq->mem = *mem;
    vq->vdev = vdev;
    vq->index = index;
    vq->max_size = vq->size = max_size;
    vq->msix_vector = VIRTIO_NO_VECTOR;
    vq->notification_on = true;
    pthread_mutex_init(&vq->lock, NULL);
    pthread_cond_init(&vq->idle, NULL);
    vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

void virtqueue_destroy(VirtQueue *vq)
{
    if (vq->kick_fd >= 0) {
        close(vq->kick_fd);
        vq->kick_fd = -1;
    }
    pthread_mutex_destroy(&vq->lock);
    pthread_cond_destroy(&vq->idle);
}

bool virtqueue_map_rings(VirtQueue *vq, uint64_t features, const char **why)
{
    uint64_t n = vq->size;

    if (n == 0 || n > vq->max_size || (n & (n - 1))) {
        *why = "queue size is not a power of two within the device's maximum";
        return false;
    }
    if (vq->desc_gpa % 16 || vq->avail_gpa % 2 || vq->used_gpa % 4) {
        *why = "virtqueue rings are misaligned";
        return false;
    }
    vq->desc = guest_memory_hva(&vq->mem, vq->desc_gpa, DESC_SIZE * n);
    vq->avail = guest_memory_hva(&vq->mem, vq->avail_gpa, AVAIL_RING + 2 * n + 2);
    vq->used = guest_memory_hva(&vq->mem, vq->used_gpa,
                                USED_RING + USED_ELEM_SIZE * n + 2);
    if (!vq->desc || !vq->avail || !vq->used) {
        vq->desc = vq->avail = vq->used = NULL;
        *why = "virtqueue rings lie outside guest RAM";
        return false;
    }
    vq->event_idx = features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
    vq->indirect = features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
    vq->ready = true;
    return true;
}

void virtqueue_reset_rings(VirtQueue *vq)
{
    vq->ready = vq->broken = false;
    vq->desc = vq->avail = vq->used = NULL;
    vq->last_avail_idx = vq->used_idx = vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    vq->notification_on = true;
}

static uint16_t ring_load16(const uint8_t *p)
{
    return GUINT16_FROM_LE(__atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE));
}

static void ring_store16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)p, GUINT16_TO_LE(v), __ATOMIC_RELEASE);
}

static void desc_read(const uint8_t *table, unsigned i, VringDesc *d)
{
    uint8_t raw[DESC_SIZE];

    memcpy(raw, table + (size_t)i * DESC_SIZE, DESC_SIZE); /* one copy, then trust it */
    memcpy(&d->addr, raw, 8);
    memcpy(&d->len, raw + 8, 4);
    memcpy(&d->flags, raw + 12, 2);
    memcpy(&d->next, raw + 14, 2);
    d->addr = GUINT64_FROM_LE(d->addr);
    d->len = GUINT32_FROM_LE(d->len);
    d->flags = GUINT16_FROM_LE(d->flags);
    d->next = GUINT16_FROM_LE(d->next);
}

/* Append one buffer to elem; readable ones must all come first. */
static int elem_add(VirtQueue *vq, VirtQueueElement *elem, const VringDesc *d,
                    const char **why)
{
    bool writable = d->flags & VRING_DESC_F_WRITE;
    unsigned n = elem->out_num + elem->in_num;

    if (!writable && elem->in_num) {
        *why = "device-readable descriptor after a device-writable one";
        return -EINVAL;
    }
    if (n >= vq->max_size) {
        *why = "descriptor chain longer than the queue size";
        return -EINVAL;
    }
    if (n == elem->capacity) {
        elem->capacity = elem->capacity ? 2 * elem->capacity : 16;
        elem->iov = g_renew(struct iovec, elem->iov, elem->capacity);
        elem->gpa = g_renew(uint64_t, elem->gpa, elem->capacity);
    }
    elem->iov[n].iov_len = d->len;
    elem->iov[n].iov_base = d->len ? guest_memory_hva(&vq->mem, d->addr, d->len) : NULL;
    elem->gpa[n] = d->addr;
    elem->bad_address |= d->len && !elem->iov[n].iov_base;
    if (writable) {
        elem->in_num++;
        elem->in_len += d->len;
    } else {
        elem->out_num++;
        elem->out_len += d->len;
    }
    return 0;
}

/*
 * Switch the walk to the indirect table that d describes.  Whether the walk
 * is in a table already is a flag, not a comparison of the table with the
 * ring: a table the guest places on the descriptor ring itself is still a
 * table (comparing pointers, it could enter itself forever).
 */
static int chain_enter_indirect(VirtQueue *vq, const VringDesc *d, bool *in_table,
                                const uint8_t **table, unsigned *table_size,
                                const char **why)
{
    if (!vq->indirect) {
        *why = "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC";
    } else if (*in_table) {
        *why = "indirect table inside an indirect table";
    } else if (d->flags & VRING_DESC_F_NEXT) {
        *why = "indirect descriptor with NEXT set";
    } else if (d->len == 0 || d->len % DESC_SIZE || d->len / DESC_SIZE > vq->max_size) {
        *why = "indirect table length is zero, not a multiple of 16 or too long";
    } else if (!(*table = guest_memory_hva(&vq->mem, d->addr, d->len))) {
        *why = "indirect table outside guest RAM";
    } else {
        *table_size = d->len / DESC_SIZE;
        *in_table = true;
        return 0;
    }
    return -EINVAL;
}

/*
 * Walk the chain from head.  A table of n entries holds chains of at most
 * n descriptors, so a longer walk within one table is a loop.
 */
static int chain_walk(VirtQueue *vq, uint16_t head, VirtQueueElement *elem,
                      const char **why)
{
    const uint8_t *table = vq->desc;
    unsigned table_size = vq->size, steps = 0, i = head;
    bool in_table = false;
    VringDesc d;

    for (;;) {
        desc_read(table, i, &d);
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (chain_enter_indirect(vq, &d, &in_table, &table, &table_size, why) < 0) {
                return -EINVAL;
            }
            i = steps = 0;
            continue;
        }
        if (elem_add(vq, elem, &d, why) < 0) {
            return -EINVAL;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            return 0;
        }
        if (++steps >= table_size) {
            *why = "descriptor chain loops";
            return -EINVAL;
        }
        i = d.next;
        if (i >= table_size) {
            *why = "descriptor next index out of range";
            return -EINVAL;
        }
    }
}

int virtqueue_pop(VirtQueue *vq, VirtQueueElement *elem, const char **why)
{
    uint16_t avail_idx, pending, head;

    elem->out_num = elem->in_num = 0;
    elem->out_len = elem->in_len = 0;
    elem->bad_address = false;
    if (!vq->ready || vq->broken) {
        return 0;
    }
    avail_idx = ring_load16(vq->avail + AVAIL_IDX);
    pending = avail_idx - vq->last_avail_idx;
    if (pending == 0) {
        return 0;
    }
    if (pending > vq->size) {
        *why = "available index moved by more than the queue size";
        return -EINVAL;
    }
    head = GUINT16_FROM_LE(*(volatile uint16_t *)(vq->avail + AVAIL_RING +
                                                  2 * (vq->last_avail_idx % vq->size)));
    if (head >= vq->size) {
        *why = "chain head index out of range";
        return -EINVAL;
    }
    elem->head = head;
    if (chain_walk(vq, head, elem, why) < 0) {
        return -EINVAL;
    }
    vq->last_avail_idx++;
    return 1;
}

void virtqueue_fill(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len,
                    unsigned offset)
{
    uint16_t at = vq->used_idx + offset;
    uint8_t *slot = vq->used + USED_RING + USED_ELEM_SIZE * (at % vq->size);
    uint32_t id = GUINT32_TO_LE(elem->head), le_len = GUINT32_TO_LE(len);

    memcpy(slot, &id, 4);
    memcpy(slot + 4, &le_len, 4);
}

void virtqueue_flush(VirtQueue *vq, unsigned count)
{
    vq->used_idx += count;
    ring_store16(vq->used + USED_IDX, vq->used_idx); /* after the elements */
}

void virtqueue_push(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len)
{
    virtqueue_fill(vq, elem, len, 0);
    virtqueue_flush(vq, 1);
}

void virtqueue_unpop(VirtQueue *vq)
{
    vq->last_avail_idx--;
}

bool virtqueue_should_notify(VirtQueue *vq)
{
    uint16_t new_idx = vq->used_idx, old_idx = vq->signalled_used, event;
    bool valid = vq->signalled_used_valid;

    /* the used index must be visible before we read the driver's wishes */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!vq->event_idx) {
        return !(ring_load16(vq->avail + AVAIL_FLAGS) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    vq->signalled_used = new_idx;
    vq->signalled_used_valid = true;
    if (!valid) {
        return true;
    }
    event = ring_load16(vq->avail + AVAIL_RING + 2 * vq->size); /* used_event */
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

void virtqueue_set_notification(VirtQueue *vq, bool enable)
{
    vq->notification_on = enable;
    if (vq->event_idx) {
        if (enable) { /* avail_event: kick me once past this */
            ring_store16(vq->used + USED_RING + USED_ELEM_SIZE * vq->size,
                         vq->last_avail_idx);
        }
    } else {
        ring_store16(vq->used + USED_FLAGS, enable ? 0 : VRING_USED_F_NO_NOTIFY);
    }
    if (enable) {
        /* publish before re-reading the available index */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
}

bool virtqueue_has_avail(VirtQueue *vq)
{
    return vq->ready && !vq->broken &&
           ring_load16(vq->avail + AVAIL_IDX) != vq->last_avail_idx;
}
