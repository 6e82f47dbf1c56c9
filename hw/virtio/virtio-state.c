/*
 * Migration state of a virtio device's core: registers, negotiated
 * features, and each queue's addresses and ring indices.  Saved after a
 * drain (no request in flight), parsed and checked completely before any
 * of it is applied.  Machine lock held, VM paused.
 */
#include <string.h>

#include "hw/state-blob.h"
#include "hw/virtio.h"
#include "util/error.h"

#define VIRTIO_STATE_MAGIC 0x56494f31u /* "VIO1" */

typedef struct VirtQueueSnapshot {
    uint16_t size, msix_vector;
    bool enabled, broken, signalled_used_valid;
    uint64_t desc, avail, used;
    uint16_t last_avail_idx, used_idx, signalled_used;
} VirtQueueSnapshot;

struct VirtioSnapshot {
    uint8_t status, config_generation, isr;
    uint64_t guest_features;
    uint32_t device_feature_select, driver_feature_select;
    uint16_t config_vector, queue_select;
    uint8_t *config;
    VirtQueueSnapshot *queues;
};

void virtio_snapshot_free(VirtioSnapshot *snap)
{
    if (snap) {
        g_free(snap->config);
        g_free(snap->queues);
        g_free(snap);
    }
}

static void virtqueue_save(VirtQueue *vq, GByteArray *out)
{
    pthread_mutex_lock(&vq->lock);
    blob_put_u16(out, vq->size);
    blob_put_u16(out, vq->msix_vector);
    blob_put_u8(out, vq->enabled);
    blob_put_u8(out, vq->broken);
    blob_put_u64(out, vq->desc_gpa);
    blob_put_u64(out, vq->avail_gpa);
    blob_put_u64(out, vq->used_gpa);
    blob_put_u16(out, vq->last_avail_idx);
    blob_put_u16(out, vq->used_idx);
    blob_put_u16(out, vq->signalled_used);
    blob_put_u8(out, vq->signalled_used_valid);
    pthread_mutex_unlock(&vq->lock);
}

void virtio_device_save(VirtioDevice *vdev, GByteArray *out)
{
    virtio_device_pause(vdev);
    blob_put_u32(out, VIRTIO_STATE_MAGIC);
    blob_put_u8(out, virtio_get_status(vdev));
    blob_put_u8(out, vdev->config_generation);
    blob_put_u8(out, __atomic_load_n(&vdev->isr, __ATOMIC_ACQUIRE));
    blob_put_u64(out, vdev->guest_features);
    blob_put_u32(out, vdev->device_feature_select);
    blob_put_u32(out, vdev->driver_feature_select);
    blob_put_u16(out, vdev->config_vector);
    blob_put_u16(out, vdev->queue_select);
    blob_put_u32(out, vdev->config_len);
    blob_put_bytes(out, vdev->config, vdev->config_len);
    blob_put_u16(out, vdev->nr_queues);
    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        virtqueue_save(&vdev->vqs[q], out);
    }
    if (vdev->ops->save) {
        vdev->ops->save(vdev, out);
    }
}

static void virtqueue_parse(StateReader *r, VirtQueueSnapshot *s)
{
    s->size = blob_get_u16(r);
    s->msix_vector = blob_get_u16(r);
    s->enabled = blob_get_u8(r);
    s->broken = blob_get_u8(r);
    s->desc = blob_get_u64(r);
    s->avail = blob_get_u64(r);
    s->used = blob_get_u64(r);
    s->last_avail_idx = blob_get_u16(r);
    s->used_idx = blob_get_u16(r);
    s->signalled_used = blob_get_u16(r);
    s->signalled_used_valid = blob_get_u8(r);
}

/* An enabled queue must map here exactly as it did on the source. */
static bool virtqueue_snapshot_check(VirtioDevice *vdev, unsigned index,
                                     const VirtQueueSnapshot *s, uint64_t features,
                                     GError **errp)
{
    VirtQueue probe = { .mem = vdev->mem,
                        .max_size = vdev->vqs[index].max_size,
                        .size = s->size,
                        .desc_gpa = s->desc,
                        .avail_gpa = s->avail,
                        .used_gpa = s->used };
    const char *why = NULL;

    if (s->enabled && !virtqueue_map_rings(&probe, features, &why)) {
        error_setg(errp, "%s: queue %u: %s", vdev->name, index, why);
        return false;
    }
    return true;
}

static bool virtio_snapshot_check(VirtioDevice *vdev, VirtioSnapshot *snap, GError **errp)
{
    if (snap->guest_features & ~vdev->host_features) {
        error_setg(errp,
                   "%s: the source negotiated features 0x%" G_GINT64_MODIFIER
                   "x that this device does not offer",
                   vdev->name, snap->guest_features & ~vdev->host_features);
        return false;
    }
    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        if (!virtqueue_snapshot_check(vdev, q, &snap->queues[q], snap->guest_features,
                                      errp)) {
            return false;
        }
    }
    return true;
}

VirtioSnapshot *virtio_device_parse(VirtioDevice *vdev, StateReader *r, GError **errp)
{
    VirtioSnapshot *snap = g_new0(VirtioSnapshot, 1);
    uint32_t config_len;

    if (blob_get_u32(r) != VIRTIO_STATE_MAGIC) {
        error_setg(errp, "%s: bad virtio state", vdev->name);
        goto fail;
    }
    snap->status = blob_get_u8(r);
    snap->config_generation = blob_get_u8(r);
    snap->isr = blob_get_u8(r);
    snap->guest_features = blob_get_u64(r);
    snap->device_feature_select = blob_get_u32(r);
    snap->driver_feature_select = blob_get_u32(r);
    snap->config_vector = blob_get_u16(r);
    snap->queue_select = blob_get_u16(r);
    config_len = blob_get_u32(r);
    if (config_len != vdev->config_len) {
        error_setg(errp, "%s: device config is %u bytes, expected %u", vdev->name,
                   config_len, vdev->config_len);
        goto fail;
    }
    snap->config = g_malloc0(config_len ? config_len : 1);
    blob_get_bytes(r, snap->config, config_len);
    if (blob_get_u16(r) != vdev->nr_queues || r->error) {
        error_setg(errp, "%s: virtio state is truncated or has another queue count",
                   vdev->name);
        goto fail;
    }
    snap->queues = g_new0(VirtQueueSnapshot, vdev->nr_queues);
    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        virtqueue_parse(r, &snap->queues[q]);
    }
    if (r->error) {
        error_setg(errp, "%s: virtio queue state is truncated", vdev->name);
        goto fail;
    }
    if (!virtio_snapshot_check(vdev, snap, errp) ||
        (vdev->ops->load_check && !vdev->ops->load_check(vdev, r, errp))) {
        goto fail;
    }
    return snap;
fail:
    virtio_snapshot_free(snap);
    return NULL;
}

static void virtqueue_apply(VirtQueue *vq, const VirtQueueSnapshot *s, uint64_t features)
{
    const char *why;

    pthread_mutex_lock(&vq->lock);
    virtqueue_reset_rings(vq);
    vq->size = s->size;
    vq->msix_vector = s->msix_vector;
    vq->enabled = s->enabled;
    vq->desc_gpa = s->desc;
    vq->avail_gpa = s->avail;
    vq->used_gpa = s->used;
    if (s->enabled && virtqueue_map_rings(vq, features, &why)) {
        vq->broken = s->broken;
        vq->last_avail_idx = s->last_avail_idx;
        vq->used_idx = s->used_idx;
        vq->signalled_used = s->signalled_used;
        vq->signalled_used_valid = s->signalled_used_valid;
    }
    pthread_mutex_unlock(&vq->lock);
}

void virtio_device_apply(VirtioDevice *vdev, VirtioSnapshot *snap)
{
    virtio_device_pause(vdev);
    vdev->guest_features = snap->guest_features;
    vdev->device_feature_select = snap->device_feature_select;
    vdev->driver_feature_select = snap->driver_feature_select;
    vdev->config_vector = snap->config_vector;
    vdev->queue_select = snap->queue_select;
    vdev->config_generation = snap->config_generation;
    memcpy(vdev->config, snap->config, vdev->config_len);
    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        virtqueue_apply(&vdev->vqs[q], &snap->queues[q], snap->guest_features);
    }
    __atomic_store_n(&vdev->isr, snap->isr, __ATOMIC_RELEASE);
    __atomic_store_n(&vdev->status, snap->status, __ATOMIC_RELEASE);
    if (vdev->ops->load_apply) {
        vdev->ops->load_apply(vdev);
    }
}
