/*
 * The virtio device core: feature negotiation (VERSION_1 required), the
 * status state machine, queue enable, reset, the device's I/O threads
 * (one unless the model asks for more) that wait on the queues' kick
 * eventfds, and popping and completing requests for device models.
 * Locking: see include/hw/virtio.h; each I/O thread holds its busy_lock
 * while a model handles a queue, so reset and pause take every busy_lock
 * to wait for them, then wait for in-flight requests (vq->inflight).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hw/virtio.h"
#include "util/error.h"

static void eventfd_signal(int fd)
{
    uint64_t one = 1;

    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        g_warning("eventfd write: %s", g_strerror(errno));
    }
}

static void eventfd_drain(int fd)
{
    uint64_t count;

    while (read(fd, &count, sizeof(count)) == sizeof(count)) {
    }
}

/* Wake the I/O threads: they re-read every queue (or exit). */
static void virtio_wake(VirtioDevice *vdev)
{
    for (unsigned t = 0; t < vdev->nr_io; t++) {
        eventfd_signal(vdev->io[t].ctl_fd);
    }
}

void virtio_device_wake(VirtioDevice *vdev)
{
    virtio_wake(vdev);
}

void virtio_device_init(VirtioDevice *vdev, const GuestMemory *mem, const char *name,
                        uint16_t device_id, unsigned nr_queues, uint16_t queue_size,
                        uint64_t host_features, unsigned config_len,
                        const VirtioDeviceOps *ops)
{
    memset(vdev, 0, sizeof(*vdev));
    vdev->name = g_strdup(name);
    vdev->device_id = device_id;
    vdev->mem = *mem;
    vdev->ops = ops;
    vdev->host_features = host_features | (1ULL << VIRTIO_F_VERSION_1);
    vdev->config_vector = VIRTIO_NO_VECTOR;
    vdev->config_len = config_len;
    vdev->config = g_malloc0(config_len);
    vdev->nr_queues = nr_queues;
    vdev->max_watch_fds = VIRTIO_MAX_WATCH_FDS;
    vdev->vqs = g_new0(VirtQueue, nr_queues);
    for (unsigned i = 0; i < nr_queues; i++) {
        virtqueue_init(&vdev->vqs[i], mem, vdev, i, queue_size);
    }
    vdev->nr_io = 0;
    virtio_device_set_io_threads(vdev, 1);
}

void virtio_device_set_io_threads(VirtioDevice *vdev, unsigned count)
{
    for (unsigned t = count; t < vdev->nr_io; t++) {
        if (vdev->io[t].ctl_fd >= 0) {
            close(vdev->io[t].ctl_fd);
        }
        pthread_mutex_destroy(&vdev->io[t].busy_lock);
    }
    vdev->io = g_renew(VirtioIoThread, vdev->io, count);
    for (unsigned t = vdev->nr_io; t < count; t++) {
        VirtioIoThread *io = &vdev->io[t];
        memset(io, 0, sizeof(*io));
        io->vdev = vdev;
        io->index = t;
        io->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        pthread_mutex_init(&io->busy_lock, NULL);
    }
    vdev->nr_io = count;
}

void virtio_device_lock_others(VirtioDevice *vdev, unsigned self)
{
    for (unsigned t = 0; t < vdev->nr_io; t++) {
        if (t != self) {
            pthread_mutex_lock(&vdev->io[t].busy_lock);
        }
    }
}

void virtio_device_unlock_others(VirtioDevice *vdev, unsigned self)
{
    for (unsigned t = vdev->nr_io; t-- > 0;) {
        if (t != self) {
            pthread_mutex_unlock(&vdev->io[t].busy_lock);
        }
    }
}

void virtio_device_lock(VirtioDevice *vdev)
{
    virtio_device_lock_others(vdev, vdev->nr_io);
}

void virtio_device_unlock(VirtioDevice *vdev)
{
    virtio_device_unlock_others(vdev, vdev->nr_io);
}

/* Set paused or resetting with every I/O thread between queues. */
static void virtio_set_flag(VirtioDevice *vdev, bool *flag, bool value)
{
    virtio_device_lock(vdev);
    *flag = value;
    virtio_device_unlock(vdev);
}

/* Does the driver run the device (no pause, no reset)? [a busy_lock] */
static bool virtio_running(VirtioDevice *vdev)
{
    return !vdev->paused && !vdev->resetting &&
           (virtio_get_status(vdev) & VIRTIO_CONFIG_S_DRIVER_OK);
}

static void virtio_process_queue(VirtioIoThread *io, VirtQueue *vq)
{
    VirtioDevice *vdev = io->vdev;

    pthread_mutex_lock(&io->busy_lock);
    if (virtio_running(vdev) && vdev->ops->handle_queue) {
        vdev->ops->handle_queue(vdev, vq);
    }
    pthread_mutex_unlock(&io->busy_lock);
}

static void virtio_process_fd(VirtioIoThread *io, unsigned index, short revents)
{
    VirtioDevice *vdev = io->vdev;

    pthread_mutex_lock(&io->busy_lock);
    if (virtio_running(vdev)) {
        vdev->ops->handle_fd(vdev, io->index, index, revents);
    }
    pthread_mutex_unlock(&io->busy_lock);
}

/* The model's own descriptors for this thread, while the driver runs the device. */
static unsigned virtio_model_fds(VirtioIoThread *io, struct pollfd *fds)
{
    VirtioDevice *vdev = io->vdev;
    unsigned n = 0;

    if (!vdev->ops->watch_fds || !vdev->ops->handle_fd) {
        return 0;
    }
    pthread_mutex_lock(&io->busy_lock);
    if (virtio_running(vdev)) {
        n = vdev->ops->watch_fds(vdev, io->index, fds, vdev->max_watch_fds);
    }
    pthread_mutex_unlock(&io->busy_lock);
    return MIN(n, vdev->max_watch_fds);
}

static unsigned virtio_queue_thread(VirtioDevice *vdev, unsigned q)
{
    return vdev->ops->queue_thread ? vdev->ops->queue_thread(vdev, q) : 0;
}

/*
 * Wait on the thread's control eventfd, the kicks of its queues (except
 * those someone else reads) and the model's descriptors; process what
 * fired.  The set is rebuilt on every wake-up.
 */
static void *virtio_io_thread(void *opaque)
{
    VirtioIoThread *io = opaque;
    VirtioDevice *vdev = io->vdev;
    unsigned max = vdev->nr_queues + 1 + vdev->max_watch_fds;
    struct pollfd *fds = g_new0(struct pollfd, max);
    unsigned *queue_of = g_new0(unsigned, max);

    while (!__atomic_load_n(&vdev->exiting, __ATOMIC_ACQUIRE)) {
        unsigned n = 1, first_model;
        bool rescan;

        fds[0] = (struct pollfd){ .fd = io->ctl_fd, .events = POLLIN };
        for (unsigned q = 0; q < vdev->nr_queues; q++) {
            if (virtio_queue_thread(vdev, q) == io->index &&
                !__atomic_load_n(&vdev->vqs[q].kick_elsewhere, __ATOMIC_ACQUIRE)) {
                fds[n] = (struct pollfd){ .fd = vdev->vqs[q].kick_fd, .events = POLLIN };
                queue_of[n++] = q;
            }
        }
        first_model = n;
        n += virtio_model_fds(io, fds + n);
        if (poll(fds, n, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_report("%s: I/O thread: poll: %s", vdev->name, g_strerror(errno));
            break;
        }
        rescan = fds[0].revents & POLLIN;
        if (rescan) {
            eventfd_drain(io->ctl_fd);
        }
        for (unsigned i = 1; i < first_model; i++) {
            if (fds[i].revents & POLLIN) {
                eventfd_drain(fds[i].fd);
            } else if (!rescan) {
                continue;
            }
            virtio_process_queue(io, &vdev->vqs[queue_of[i]]);
        }
        for (unsigned i = first_model; i < n; i++) {
            if (fds[i].revents) {
                virtio_process_fd(io, i - first_model, fds[i].revents);
            }
        }
    }
    g_free(queue_of);
    g_free(fds);
    return NULL;
}

static void virtio_stop_threads(VirtioDevice *vdev)
{
    __atomic_store_n(&vdev->exiting, true, __ATOMIC_RELEASE);
    virtio_wake(vdev);
    for (unsigned t = 0; t < vdev->nr_io; t++) {
        if (vdev->io[t].started) {
            pthread_join(vdev->io[t].thread, NULL);
            vdev->io[t].started = false;
        }
    }
}

bool virtio_device_start(VirtioDevice *vdev, GError **errp)
{
    sigset_t all, old;
    int err = 0;

    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        if (vdev->vqs[q].kick_fd < 0) {
            err = -1;
        }
    }
    for (unsigned t = 0; t < vdev->nr_io; t++) {
        if (vdev->io[t].ctl_fd < 0) {
            err = -1;
        }
    }
    if (err) {
        error_setg(errp, "%s: cannot create eventfds", vdev->name);
        return false;
    }
    /* signals belong to the vCPU and main threads, never to these */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned t = 0; t < vdev->nr_io && !err; t++) {
        err = pthread_create(&vdev->io[t].thread, NULL, virtio_io_thread, &vdev->io[t]);
        vdev->io[t].started = !err;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        error_setg(errp, "%s: cannot start its I/O thread: %s", vdev->name,
                   g_strerror(err));
        virtio_stop_threads(vdev);
        __atomic_store_n(&vdev->exiting, false, __ATOMIC_RELEASE);
        return false;
    }
    return true;
}

/* Wait until no popped request is left on any queue. */
static void virtio_wait_idle(VirtioDevice *vdev)
{
    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        VirtQueue *vq = &vdev->vqs[q];
        pthread_mutex_lock(&vq->lock);
        while (vq->inflight) {
            pthread_cond_wait(&vq->idle, &vq->lock);
        }
        pthread_mutex_unlock(&vq->lock);
    }
}

void virtio_device_cleanup(VirtioDevice *vdev)
{
    virtio_stop_threads(vdev);
    virtio_wait_idle(vdev);
    if (vdev->ops && vdev->ops->stop) {
        vdev->ops->stop(vdev);
    }
    for (unsigned i = 0; vdev->vqs && i < vdev->nr_queues; i++) {
        virtqueue_destroy(&vdev->vqs[i]);
    }
    virtio_device_set_io_threads(vdev, 0);
    g_free(vdev->io);
    vdev->io = NULL;
    g_free(vdev->vqs);
    g_free(vdev->config);
    g_free(vdev->name);
    vdev->vqs = NULL;
    vdev->config = NULL;
    vdev->name = NULL;
}

void virtio_device_pause(VirtioDevice *vdev)
{
    virtio_set_flag(vdev, &vdev->paused, true); /* the threads are between queues */
    virtio_wait_idle(vdev);
    if (vdev->ops->pause) {
        vdev->ops->pause(vdev, true);
    }
}

void virtio_device_resume(VirtioDevice *vdev)
{
    if (vdev->ops->pause) {
        vdev->ops->pause(vdev, false);
    }
    virtio_set_flag(vdev, &vdev->paused, false);
    virtio_wake(vdev);
}

uint32_t virtio_get_device_features(VirtioDevice *vdev)
{
    switch (vdev->device_feature_select) {
    case 0:
        return (uint32_t)vdev->host_features;
    case 1:
        return vdev->host_features >> 32;
    default:
        return 0;
    }
}

uint32_t virtio_get_driver_features(VirtioDevice *vdev)
{
    switch (vdev->driver_feature_select) {
    case 0:
        return (uint32_t)vdev->guest_features;
    case 1:
        return vdev->guest_features >> 32;
    default:
        return 0;
    }
}

void virtio_set_driver_features(VirtioDevice *vdev, uint32_t value)
{
    unsigned shift = vdev->driver_feature_select == 0 ? 0 : 32;

    if ((virtio_get_status(vdev) & VIRTIO_CONFIG_S_FEATURES_OK) ||
        vdev->driver_feature_select > 1) {
        return; /* negotiation is over, or no such feature word */
    }
    vdev->guest_features &= ~(0xffffffffULL << shift);
    vdev->guest_features |= (uint64_t)value << shift;
}

uint8_t virtio_get_status(VirtioDevice *vdev)
{
    return __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE);
}

/* A subset of what we offer, and modern: anything else is refused. */
static bool virtio_features_acceptable(VirtioDevice *vdev)
{
    return !(vdev->guest_features & ~vdev->host_features) &&
           (vdev->guest_features & (1ULL << VIRTIO_F_VERSION_1));
}

/*
 * Bits only ever get set (a driver must not clear them; 0 resets).
 * FEATURES_OK sticks only for an acceptable feature set, and DRIVER_OK
 * only after FEATURES_OK: legacy drivers never get a working device.
 */
void virtio_set_status(VirtioDevice *vdev, uint8_t val)
{
    uint8_t old, new;

    if (val == 0) {
        virtio_reset(vdev);
        return;
    }
    old = virtio_get_status(vdev);
    if ((val & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK) &&
        !virtio_features_acceptable(vdev)) {
        val &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
    val &= ~VIRTIO_CONFIG_S_NEEDS_RESET; /* the device's bit */
    do {
        new = old | val;
        if (!(new &VIRTIO_CONFIG_S_FEATURES_OK)) {
            new &= ~VIRTIO_CONFIG_S_DRIVER_OK;
        }
    } while (!__atomic_compare_exchange_n(&vdev->status, &old, new, false,
                                          __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    if (new != old && vdev->ops->status_changed) {
        vdev->ops->status_changed(vdev, old, new);
    }
    if ((new &VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
        virtio_wake(vdev);
    }
}

void virtio_reset(VirtioDevice *vdev)
{
    virtio_set_flag(vdev, &vdev->resetting, true);
    virtio_wait_idle(vdev);
    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        VirtQueue *vq = &vdev->vqs[q];
        pthread_mutex_lock(&vq->lock);
        virtqueue_reset_rings(vq);
        vq->size = vq->max_size;
        vq->msix_vector = VIRTIO_NO_VECTOR;
        vq->enabled = false;
        vq->desc_gpa = vq->avail_gpa = vq->used_gpa = 0;
        pthread_mutex_unlock(&vq->lock);
    }
    vdev->guest_features = 0;
    vdev->device_feature_select = vdev->driver_feature_select = 0;
    vdev->config_vector = VIRTIO_NO_VECTOR;
    vdev->queue_select = 0;
    __atomic_store_n(&vdev->isr, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&vdev->status, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&vdev->error_reported, false, __ATOMIC_RELEASE);
    if (vdev->ops->reset) {
        vdev->ops->reset(vdev);
    }
    virtio_set_flag(vdev, &vdev->resetting, false);
}

void virtio_queue_enable(VirtioDevice *vdev, unsigned index)
{
    VirtQueue *vq = &vdev->vqs[index];
    const char *why = NULL;
    bool ok;

    if (vq->enabled) {
        return;
    }
    pthread_mutex_lock(&vq->lock);
    virtqueue_reset_rings(vq);
    ok = virtqueue_map_rings(vq, vdev->guest_features, &why);
    pthread_mutex_unlock(&vq->lock);
    if (!ok) {
        virtio_error(vdev, NULL, "queue %u: %s", index, why);
        return;
    }
    vq->enabled = true;
    if (virtio_get_status(vdev) & VIRTIO_CONFIG_S_DRIVER_OK) {
        virtio_wake(vdev);
    }
}

void virtio_queue_kick(VirtQueue *vq)
{
    eventfd_signal(vq->kick_fd);
}

bool virtio_queue_pop(VirtQueue *vq, VirtQueueElement *elem)
{
    const char *why = NULL;
    int r;

    pthread_mutex_lock(&vq->lock);
    r = virtqueue_pop(vq, elem, &why);
    if (r == 0 && vq->ready && !vq->broken && !vq->notification_on) {
        /* empty: ask for kicks again, then look once more (no lost kick) */
        virtqueue_set_notification(vq, true);
        r = virtqueue_pop(vq, elem, &why);
    }
    if (r > 0) {
        if (vq->notification_on) {
            virtqueue_set_notification(vq, false);
        }
        vq->inflight++;
    } else if (r < 0) {
        vq->broken = true;
    }
    pthread_mutex_unlock(&vq->lock);
    if (r < 0) {
        virtio_error(vq->vdev, NULL, "queue %u: %s", vq->index, why);
    }
    return r > 0;
}

/* Guest memory the device wrote: the used ring and the writable buffers. */
static void virtio_mark_dirty(VirtQueue *vq, const VirtQueueElement *elem)
{
    VirtioDevice *vdev = vq->vdev;

    if (!vdev || !vdev->transport || !vdev->transport->mark_dirty) {
        return;
    }
    for (unsigned i = elem->out_num; i < elem->out_num + elem->in_num; i++) {
        vdev->transport->mark_dirty(vdev, elem->gpa[i], elem->iov[i].iov_len);
    }
    vdev->transport->mark_dirty(vdev, vq->used_gpa, 6 + 8ULL * vq->size);
}

void virtio_queue_complete(VirtQueue *vq, VirtQueueElement *elem, uint32_t len)
{
    VirtioDevice *vdev = vq->vdev;
    bool notify = false;

    pthread_mutex_lock(&vq->lock);
    if (vq->ready) {
        virtqueue_push(vq, elem, len);
        notify = virtqueue_should_notify(vq);
        virtio_mark_dirty(vq, elem);
    }
    pthread_mutex_unlock(&vq->lock);
    if (notify && vdev && vdev->transport) {
        vdev->transport->notify_queue(vdev, vq);
    }
    /* last: once inflight reaches 0 a reset or clean-up may go ahead */
    pthread_mutex_lock(&vq->lock);
    if (vq->inflight && --vq->inflight == 0) {
        pthread_cond_broadcast(&vq->idle);
    }
    pthread_mutex_unlock(&vq->lock);
}

void virtio_queue_complete_many(VirtQueue *vq, VirtQueueElement *elems,
                                const uint32_t *lens, unsigned n)
{
    VirtioDevice *vdev = vq->vdev;
    bool notify = false;

    pthread_mutex_lock(&vq->lock);
    if (vq->ready && n) {
        for (unsigned i = 0; i < n; i++) {
            virtqueue_fill(vq, &elems[i], lens[i], i);
        }
        virtqueue_flush(vq, n);
        notify = virtqueue_should_notify(vq);
        for (unsigned i = 0; i < n; i++) {
            virtio_mark_dirty(vq, &elems[i]);
        }
    }
    pthread_mutex_unlock(&vq->lock);
    if (notify && vdev && vdev->transport) {
        vdev->transport->notify_queue(vdev, vq);
    }
    pthread_mutex_lock(&vq->lock);
    vq->inflight -= MIN(vq->inflight, n);
    if (vq->inflight == 0) {
        pthread_cond_broadcast(&vq->idle);
    }
    pthread_mutex_unlock(&vq->lock);
}

void virtio_queue_unpop(VirtQueue *vq, unsigned n)
{
    pthread_mutex_lock(&vq->lock);
    for (unsigned i = 0; i < n && vq->inflight; i++) {
        virtqueue_unpop(vq);
        vq->inflight--;
    }
    if (vq->inflight == 0) {
        pthread_cond_broadcast(&vq->idle);
    }
    pthread_mutex_unlock(&vq->lock);
}

void virtio_error(VirtioDevice *vdev, VirtQueue *vq, const char *fmt, ...)
{
    uint8_t old;
    va_list ap;
    char *msg;

    if (vq) {
        pthread_mutex_lock(&vq->lock);
        vq->broken = true;
        pthread_mutex_unlock(&vq->lock);
    }
    if (!vdev) {
        return;
    }
    old = __atomic_fetch_or(&vdev->status, VIRTIO_CONFIG_S_NEEDS_RESET, __ATOMIC_ACQ_REL);
    if (!__atomic_exchange_n(&vdev->error_reported, true, __ATOMIC_ACQ_REL)) {
        va_start(ap, fmt);
        msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        warn_report("%s: %s; the device needs a reset", vdev->name, msg);
        g_free(msg);
    }
    if (!(old & VIRTIO_CONFIG_S_NEEDS_RESET) && (old & VIRTIO_CONFIG_S_DRIVER_OK) &&
        vdev->transport) {
        vdev->transport->notify_config(vdev);
    }
}
