/*
 * The modern virtio PCI transport (virtio 1.x, 4.1): the virtio
 * capabilities, common/ISR/device/notify regions in BAR 4, ioeventfds on
 * the notify addresses, interrupts by MSI-X (irqfd) or INTx with the ISR,
 * the VIRTIO_PCI_CAP_PCI_CFG window, reset and migration state.
 * Locking: register accesses run with the machine lock held; irq_lock
 * pairs ISR updates with the INTx level for device threads.
 */
#include <string.h>
#include <linux/virtio_pci.h>

#include "hw/pci.h"
#include "hw/state-blob.h"
#include "hw/virtio.h"
#include "util/error.h"

#define VIRTIO_PCI_MSIX_BAR      1
#define VIRTIO_PCI_MODERN_BAR    4
#define VIRTIO_PCI_MODERN_SIZE   0x4000
#define VIRTIO_PCI_REGION_SIZE   0x1000
#define VIRTIO_PCI_COMMON_OFF    0x0000
#define VIRTIO_PCI_ISR_OFF       0x1000
#define VIRTIO_PCI_DEVICE_OFF    0x2000
#define VIRTIO_PCI_NOTIFY_OFF    0x3000
#define VIRTIO_PCI_NOTIFY_MULT   4
#define VIRTIO_PCI_COMMON_IMAGE  0x40   /* the 1.2 layout, queue_reset included */
#define VIRTIO_PCI_DEVICE_BASE   0x1040 /* modern device ID = 0x1040 + type */
#define VIRTIO_PCI_REVISION      1
#define VIRTIO_PCI_ISR_QUEUE     0x1
#define VIRTIO_PCI_STATE_VERSION 1

typedef struct VirtioPci {
    PciDevice *pci;
    VirtioDevice *vdev;
    uint8_t cfg_cap;          /* the VIRTIO_PCI_CAP_PCI_CFG capability */
    pthread_mutex_t irq_lock; /* ISR bits and the INTx level together */
    unsigned *ioeventfd_len;  /* per queue: 0 none, else 0xff (any) or 2 */
    uint64_t ioeventfd_base;
    char *state_name;
} VirtioPci;

#define IOEVENTFD_ANY_LEN 0xff

static VirtQueue *virtio_pci_selected_queue(VirtioDevice *vdev)
{
    return vdev->queue_select < vdev->nr_queues ? &vdev->vqs[vdev->queue_select] : NULL;
}

/* The common configuration as the driver would read it now. */
static void common_cfg_image(VirtioDevice *vdev, uint8_t *img)
{
    VirtQueue *vq = virtio_pci_selected_queue(vdev);

    memset(img, 0, VIRTIO_PCI_COMMON_IMAGE);
    pci_set_long(img + VIRTIO_PCI_COMMON_DFSELECT, vdev->device_feature_select);
    pci_set_long(img + VIRTIO_PCI_COMMON_DF, virtio_get_device_features(vdev));
    pci_set_long(img + VIRTIO_PCI_COMMON_GFSELECT, vdev->driver_feature_select);
    pci_set_long(img + VIRTIO_PCI_COMMON_GF, virtio_get_driver_features(vdev));
    pci_set_word(img + VIRTIO_PCI_COMMON_MSIX, vdev->config_vector);
    pci_set_word(img + VIRTIO_PCI_COMMON_NUMQ, vdev->nr_queues);
    img[VIRTIO_PCI_COMMON_STATUS] = virtio_get_status(vdev);
    img[VIRTIO_PCI_COMMON_CFGGENERATION] = vdev->config_generation;
    pci_set_word(img + VIRTIO_PCI_COMMON_Q_SELECT, vdev->queue_select);
    if (!vq) {
        return; /* no such queue: size 0 says so */
    }
    pci_set_word(img + VIRTIO_PCI_COMMON_Q_SIZE, vq->size);
    pci_set_word(img + VIRTIO_PCI_COMMON_Q_MSIX, vq->msix_vector);
    pci_set_word(img + VIRTIO_PCI_COMMON_Q_ENABLE, vq->enabled);
    pci_set_word(img + VIRTIO_PCI_COMMON_Q_NOFF, vq->index);
    pci_set_long(img + VIRTIO_PCI_COMMON_Q_DESCLO, vq->desc_gpa);
    pci_set_long(img + VIRTIO_PCI_COMMON_Q_DESCHI, vq->desc_gpa >> 32);
    pci_set_long(img + VIRTIO_PCI_COMMON_Q_AVAILLO, vq->avail_gpa);
    pci_set_long(img + VIRTIO_PCI_COMMON_Q_AVAILHI, vq->avail_gpa >> 32);
    pci_set_long(img + VIRTIO_PCI_COMMON_Q_USEDLO, vq->used_gpa);
    pci_set_long(img + VIRTIO_PCI_COMMON_Q_USEDHI, vq->used_gpa >> 32);
}

static uint16_t virtio_pci_valid_vector(VirtioPci *vp, uint16_t vector)
{
    return vector < msix_nr_vectors(vp->pci) ? vector : VIRTIO_NO_VECTOR;
}

static uint64_t image_get_u64(const uint8_t *p)
{
    return pci_get_long(p) | (uint64_t)pci_get_long(p + 4) << 32;
}

/* The driver set the device status: reset also drops the INTx line. */
static void virtio_pci_write_status(VirtioPci *vp, uint8_t status)
{
    virtio_set_status(vp->vdev, status);
    if (status == 0) {
        pthread_mutex_lock(&vp->irq_lock);
        pci_set_irq(vp->pci, 0);
        pthread_mutex_unlock(&vp->irq_lock);
    }
}

/* Queue registers change only while the queue is off. */
static void common_cfg_write_queue(VirtioPci *vp, unsigned field, const uint8_t *img)
{
    VirtioDevice *vdev = vp->vdev;
    VirtQueue *vq = virtio_pci_selected_queue(vdev);

    if (!vq) {
        return;
    }
    if (field == VIRTIO_PCI_COMMON_Q_MSIX) {
        __atomic_store_n(&vq->msix_vector,
                         virtio_pci_valid_vector(vp, pci_get_word(img + field)),
                         __ATOMIC_RELEASE);
    } else if (field == VIRTIO_PCI_COMMON_Q_ENABLE) {
        if (pci_get_word(img + field) == 1) {
            virtio_queue_enable(vdev, vq->index);
        }
    } else if (vq->enabled) {
        return;
    } else if (field == VIRTIO_PCI_COMMON_Q_SIZE) {
        vq->size = pci_get_word(img + field);
    } else if (field == VIRTIO_PCI_COMMON_Q_DESCLO) {
        vq->desc_gpa = image_get_u64(img + field);
    } else if (field == VIRTIO_PCI_COMMON_Q_AVAILLO) {
        vq->avail_gpa = image_get_u64(img + field);
    } else if (field == VIRTIO_PCI_COMMON_Q_USEDLO) {
        vq->used_gpa = image_get_u64(img + field);
    }
}

static void common_cfg_write_field(VirtioPci *vp, unsigned field, const uint8_t *img)
{
    VirtioDevice *vdev = vp->vdev;

    switch (field) {
    case VIRTIO_PCI_COMMON_DFSELECT:
        vdev->device_feature_select = pci_get_long(img + field);
        break;
    case VIRTIO_PCI_COMMON_GFSELECT:
        vdev->driver_feature_select = pci_get_long(img + field);
        break;
    case VIRTIO_PCI_COMMON_GF:
        virtio_set_driver_features(vdev, pci_get_long(img + field));
        break;
    case VIRTIO_PCI_COMMON_MSIX:
        __atomic_store_n(&vdev->config_vector,
                         virtio_pci_valid_vector(vp, pci_get_word(img + field)),
                         __ATOMIC_RELEASE);
        break;
    case VIRTIO_PCI_COMMON_STATUS:
        virtio_pci_write_status(vp, img[field]);
        break;
    case VIRTIO_PCI_COMMON_Q_SELECT:
        vdev->queue_select = pci_get_word(img + field);
        break;
    default:
        common_cfg_write_queue(vp, field, img);
        break;
    }
}

/*
 * Writes of any width land in an image of the registers; each register
 * the write touched is then applied whole (64-bit addresses written as
 * two halves work the same as one 8-byte write).  Read-only ones are
 * simply not in the list.
 */
static void common_cfg_write(VirtioPci *vp, uint64_t offset, const uint8_t *data,
                             unsigned len)
{
    static const struct {
        uint8_t offset, size;
    } fields[] = {
        { VIRTIO_PCI_COMMON_DFSELECT, 4 },  { VIRTIO_PCI_COMMON_GFSELECT, 4 },
        { VIRTIO_PCI_COMMON_GF, 4 },        { VIRTIO_PCI_COMMON_MSIX, 2 },
        { VIRTIO_PCI_COMMON_STATUS, 1 },    { VIRTIO_PCI_COMMON_Q_SELECT, 2 },
        { VIRTIO_PCI_COMMON_Q_SIZE, 2 },    { VIRTIO_PCI_COMMON_Q_MSIX, 2 },
        { VIRTIO_PCI_COMMON_Q_ENABLE, 2 },  { VIRTIO_PCI_COMMON_Q_DESCLO, 8 },
        { VIRTIO_PCI_COMMON_Q_AVAILLO, 8 }, { VIRTIO_PCI_COMMON_Q_USEDLO, 8 },
    };
    uint8_t img[VIRTIO_PCI_COMMON_IMAGE];

    if (offset >= VIRTIO_PCI_COMMON_IMAGE) {
        return;
    }
    len = MIN(len, VIRTIO_PCI_COMMON_IMAGE - offset);
    common_cfg_image(vp->vdev, img);
    memcpy(img + offset, data, len);
    for (size_t i = 0; i < G_N_ELEMENTS(fields); i++) {
        if (offset < fields[i].offset + fields[i].size &&
            fields[i].offset < offset + len) {
            common_cfg_write_field(vp, fields[i].offset, img);
        }
    }
}

static void virtio_pci_isr_read(VirtioPci *vp, uint8_t *data, unsigned len)
{
    memset(data, 0, len);
    pthread_mutex_lock(&vp->irq_lock);
    data[0] = __atomic_exchange_n(&vp->vdev->isr, 0, __ATOMIC_ACQ_REL);
    pci_set_irq(vp->pci, 0);
    pthread_mutex_unlock(&vp->irq_lock);
}

static void virtio_pci_device_cfg(VirtioPci *vp, uint64_t offset, uint8_t *data,
                                  unsigned len, bool is_write)
{
    VirtioDevice *vdev = vp->vdev;

    if (is_write) {
        if (offset < vdev->config_len && vdev->ops->config_write) {
            vdev->ops->config_write(vdev, offset, data,
                                    MIN(len, vdev->config_len - offset));
        }
        return;
    }
    for (unsigned i = 0; i < len; i++) {
        data[i] = offset + i < vdev->config_len ? vdev->config[offset + i] : 0;
    }
}

/* BAR 4: the four virtio regions, 4 KiB each. */
static void virtio_pci_modern_io(void *opaque, uint64_t offset, uint8_t *data,
                                 unsigned len, bool is_write)
{
    VirtioPci *vp = opaque;
    uint64_t region = offset & ~(uint64_t)(VIRTIO_PCI_REGION_SIZE - 1);
    uint64_t off = offset - region;
    uint8_t img[VIRTIO_PCI_COMMON_IMAGE];

    if (region == VIRTIO_PCI_COMMON_OFF) {
        if (is_write) {
            common_cfg_write(vp, off, data, len);
            return;
        }
        common_cfg_image(vp->vdev, img);
        for (unsigned i = 0; i < len; i++) {
            data[i] = off + i < VIRTIO_PCI_COMMON_IMAGE ? img[off + i] : 0;
        }
    } else if (region == VIRTIO_PCI_ISR_OFF) {
        if (!is_write) {
            virtio_pci_isr_read(vp, data, len);
        }
    } else if (region == VIRTIO_PCI_DEVICE_OFF) {
        virtio_pci_device_cfg(vp, off, data, len, is_write);
    } else if (is_write) { /* notify: one 4-byte slot per queue */
        uint64_t q = off / VIRTIO_PCI_NOTIFY_MULT;
        if (q < vp->vdev->nr_queues) {
            virtio_queue_kick(&vp->vdev->vqs[q]);
        }
    } else {
        memset(data, 0, len);
    }
}

static void virtio_pci_raise_intx(VirtioPci *vp, uint8_t isr_bit)
{
    pthread_mutex_lock(&vp->irq_lock);
    __atomic_fetch_or(&vp->vdev->isr, isr_bit, __ATOMIC_ACQ_REL);
    pci_set_irq(vp->pci, 1);
    pthread_mutex_unlock(&vp->irq_lock);
}

/* MSI-X when enabled (no vector: no interrupt), else INTx and the ISR. */
static void virtio_pci_notify_vector(VirtioPci *vp, uint16_t vector, uint8_t isr_bit)
{
    if (vector != VIRTIO_NO_VECTOR ? msix_notify(vp->pci, vector)
                                   : msix_enabled(vp->pci)) {
        return;
    }
    virtio_pci_raise_intx(vp, isr_bit);
}

static void virtio_pci_notify_queue(VirtioDevice *vdev, VirtQueue *vq)
{
    virtio_pci_notify_vector(vdev->transport_opaque,
                             __atomic_load_n(&vq->msix_vector, __ATOMIC_ACQUIRE),
                             VIRTIO_PCI_ISR_QUEUE);
}

static void virtio_pci_notify_config(VirtioDevice *vdev)
{
    /* the config bit goes into the ISR whichever way the interrupt goes */
    __atomic_fetch_or(&vdev->isr, VIRTIO_PCI_ISR_CONFIG, __ATOMIC_ACQ_REL);
    virtio_pci_notify_vector(vdev->transport_opaque,
                             __atomic_load_n(&vdev->config_vector, __ATOMIC_ACQUIRE),
                             VIRTIO_PCI_ISR_CONFIG);
}

static void virtio_pci_mark_dirty(VirtioDevice *vdev, uint64_t gpa, uint64_t len)
{
    VirtioPci *vp = vdev->transport_opaque;

    pci_dma_mark_dirty(vp->pci, gpa, len);
}

/* The handle is the MSI-X vector the eventfd was bound to. */
static int virtio_pci_queue_irqfd_use(VirtioDevice *vdev, VirtQueue *vq, int fd)
{
    VirtioPci *vp = vdev->transport_opaque;
    uint16_t vector = __atomic_load_n(&vq->msix_vector, __ATOMIC_ACQUIRE);

    if (vector == VIRTIO_NO_VECTOR || !msix_vector_use_fd(vp->pci, vector, fd)) {
        return -1;
    }
    return vector;
}

static void virtio_pci_queue_irqfd_release(VirtioDevice *vdev, int handle, int fd)
{
    VirtioPci *vp = vdev->transport_opaque;

    if (handle >= 0) {
        msix_vector_release_fd(vp->pci, handle, fd);
    }
}

static const VirtioTransportOps virtio_pci_transport = {
    .notify_queue = virtio_pci_notify_queue,
    .notify_config = virtio_pci_notify_config,
    .mark_dirty = virtio_pci_mark_dirty,
    .queue_irqfd_use = virtio_pci_queue_irqfd_use,
    .queue_irqfd_release = virtio_pci_queue_irqfd_release,
};

/* Kicks go straight to the queue's eventfd; without one they exit to us. */
static void virtio_pci_ioeventfds(VirtioPci *vp, uint64_t base, bool assign)
{
    for (unsigned q = 0; q < vp->vdev->nr_queues; q++) {
        uint64_t addr = base + VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q;
        int fd = vp->vdev->vqs[q].kick_fd;
        if (!assign) {
            if (vp->ioeventfd_len[q]) {
                unsigned len = vp->ioeventfd_len[q] == IOEVENTFD_ANY_LEN
                                   ? 0
                                   : vp->ioeventfd_len[q];
                pci_device_ioeventfd(vp->pci, fd, addr, len, false);
            }
            vp->ioeventfd_len[q] = 0;
        } else if (pci_device_ioeventfd(vp->pci, fd, addr, 0, true)) {
            vp->ioeventfd_len[q] = IOEVENTFD_ANY_LEN;
        } else if (pci_device_ioeventfd(vp->pci, fd, addr, 2, true)) {
            vp->ioeventfd_len[q] = 2;
        }
    }
    vp->ioeventfd_base = base;
}

static void virtio_pci_bar_moved(PciDevice *pci, int bar, uint64_t addr, bool mapped)
{
    if (bar == VIRTIO_PCI_MODERN_BAR) {
        virtio_pci_ioeventfds(pci->opaque, addr, mapped);
    }
}

/* The PCI_CFG window: an access to BAR cap.bar at cap.offset, cap.length. */
static void virtio_pci_cfg_window(VirtioPci *vp, bool is_write)
{
    uint8_t *cap = vp->pci->config + vp->cfg_cap;
    unsigned bar = cap[VIRTIO_PCI_CAP_BAR];
    uint32_t off = pci_get_long(cap + VIRTIO_PCI_CAP_OFFSET);
    uint32_t len = pci_get_long(cap + VIRTIO_PCI_CAP_LENGTH);
    PciBar *b;

    if (bar >= PCI_BAR_COUNT || (len != 1 && len != 2 && len != 4) || off % len) {
        return;
    }
    b = &vp->pci->bars[bar];
    if (b->kind == PCI_BAR_NONE || !b->fn || (uint64_t)off + len > b->size) {
        return;
    }
    b->fn(b->opaque, off, cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), len,
          is_write);
}

static bool cfg_data_touched(VirtioPci *vp, unsigned offset, unsigned len)
{
    unsigned data = vp->cfg_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);

    return offset < data + 4 && data < offset + len;
}

static bool virtio_pci_config_read(PciDevice *pci, unsigned offset, unsigned len,
                                   uint32_t *val)
{
    if (cfg_data_touched(pci->opaque, offset, len)) {
        virtio_pci_cfg_window(pci->opaque, false);
    }
    return false; /* the bytes are in config space now */
}

static void virtio_pci_config_write(PciDevice *pci, unsigned offset, unsigned len,
                                    uint32_t val)
{
    VirtioPci *vp = pci->opaque;

    if (cfg_data_touched(vp, offset, len)) {
        virtio_pci_cfg_window(vp, true);
    }
    if (msix_enabled(pci)) { /* MSI-X on: INTx must stay quiet */
        pthread_mutex_lock(&vp->irq_lock);
        pci_set_irq(pci, 0);
        pthread_mutex_unlock(&vp->irq_lock);
    }
}

static void virtio_pci_reset(PciDevice *pci)
{
    virtio_pci_write_status(pci->opaque, 0);
}

static void virtio_pci_pause(PciDevice *pci)
{
    VirtioPci *vp = pci->opaque;

    virtio_device_pause(vp->vdev);
}

static void virtio_pci_resume(PciDevice *pci)
{
    VirtioPci *vp = pci->opaque;

    virtio_device_resume(vp->vdev);
}

static void virtio_pci_dirty_log(PciDevice *pci, bool on)
{
    VirtioPci *vp = pci->opaque;

    if (vp->vdev->ops->dirty_log) {
        vp->vdev->ops->dirty_log(vp->vdev, on);
    }
}

static void virtio_pci_free(VirtioPci *vp)
{
    pthread_mutex_destroy(&vp->irq_lock);
    g_free(vp->ioeventfd_len);
    g_free(vp->state_name);
    g_free(vp);
}

static void virtio_pci_destroy(PciDevice *pci)
{
    VirtioPci *vp = pci->opaque;
    VirtioDevice *vdev = vp->vdev;
    const VirtioDeviceOps *ops = vdev->ops;

    device_state_unregister(pci_bus_device_states(pci->bus), vp);
    virtio_device_cleanup(vdev);
    if (ops->destroy) {
        ops->destroy(vdev);
    }
    virtio_pci_free(vp);
}

static const PciDeviceOps virtio_pci_ops = {
    .config_read = virtio_pci_config_read,
    .config_write = virtio_pci_config_write,
    .bar_moved = virtio_pci_bar_moved,
    .reset = virtio_pci_reset,
    .pause = virtio_pci_pause,
    .resume = virtio_pci_resume,
    .destroy = virtio_pci_destroy,
    .dirty_log = virtio_pci_dirty_log,
};

static bool virtio_pci_state_save(void *opaque, GByteArray *out, GError **errp)
{
    VirtioPci *vp = opaque;

    virtio_device_pause(vp->vdev);
    pci_device_save(vp->pci, out);
    virtio_device_save(vp->vdev, out);
    return true;
}

static bool virtio_pci_state_load(void *opaque, const uint8_t *buf, size_t len,
                                  uint32_t version, GError **errp)
{
    VirtioPci *vp = opaque;
    PciDeviceSnapshot pci_snap;
    VirtioSnapshot *snap;
    StateReader r;

    if (version != VIRTIO_PCI_STATE_VERSION) {
        error_setg(errp, "%s: unsupported state version %u", vp->state_name, version);
        return false;
    }
    state_reader_init(&r, buf, len);
    if (!pci_device_parse(vp->pci, &r, &pci_snap, errp)) {
        return false;
    }
    snap = virtio_device_parse(vp->vdev, &r, errp);
    if (!snap || !blob_done(&r)) {
        if (snap) {
            error_setg(errp, "%s: %zu stray bytes in its state", vp->state_name,
                       len - r.pos);
        }
        virtio_snapshot_free(snap);
        pci_device_snapshot_clear(&pci_snap);
        return false;
    }
    virtio_device_pause(vp->vdev);
    pci_device_apply(vp->pci, &pci_snap);
    virtio_device_apply(vp->vdev, snap);
    for (unsigned q = 0; q < vp->vdev->nr_queues; q++) {
        VirtQueue *vq = &vp->vdev->vqs[q];
        vq->msix_vector = virtio_pci_valid_vector(vp, vq->msix_vector);
    }
    vp->vdev->config_vector = virtio_pci_valid_vector(vp, vp->vdev->config_vector);
    virtio_snapshot_free(snap);
    pci_device_snapshot_clear(&pci_snap);
    return true;
}

static const DeviceStateOps virtio_pci_state_ops = {
    .save = virtio_pci_state_save,
    .load = virtio_pci_state_load,
};

static void virtio_pci_add_cap(PciDevice *pci, uint8_t type, uint8_t len, uint32_t offset,
                               uint8_t *where)
{
    uint8_t cap = pci_device_add_capability(pci, PCI_CAP_ID_VNDR, 0, len);

    pci->config[cap + VIRTIO_PCI_CAP_LEN] = len;
    pci->config[cap + VIRTIO_PCI_CAP_CFG_TYPE] = type;
    pci->config[cap + VIRTIO_PCI_CAP_BAR] = VIRTIO_PCI_MODERN_BAR;
    pci_set_long(pci->config + cap + VIRTIO_PCI_CAP_OFFSET, offset);
    pci_set_long(pci->config + cap + VIRTIO_PCI_CAP_LENGTH, VIRTIO_PCI_REGION_SIZE);
    if (where) {
        *where = cap;
    }
}

/* The five virtio capabilities, then MSI-X, BAR 4 and the INTA pin. */
static bool virtio_pci_setup_config(VirtioPci *vp, GError **errp)
{
    PciDevice *pci = vp->pci;
    uint8_t notify, cfg;

    virtio_pci_add_cap(pci, VIRTIO_PCI_CAP_COMMON_CFG, sizeof(struct virtio_pci_cap),
                       VIRTIO_PCI_COMMON_OFF, NULL);
    virtio_pci_add_cap(pci, VIRTIO_PCI_CAP_ISR_CFG, sizeof(struct virtio_pci_cap),
                       VIRTIO_PCI_ISR_OFF, NULL);
    virtio_pci_add_cap(pci, VIRTIO_PCI_CAP_DEVICE_CFG, sizeof(struct virtio_pci_cap),
                       VIRTIO_PCI_DEVICE_OFF, NULL);
    virtio_pci_add_cap(pci, VIRTIO_PCI_CAP_NOTIFY_CFG,
                       sizeof(struct virtio_pci_notify_cap), VIRTIO_PCI_NOTIFY_OFF,
                       &notify);
    pci_set_long(pci->config + notify +
                     offsetof(struct virtio_pci_notify_cap, notify_off_multiplier),
                 VIRTIO_PCI_NOTIFY_MULT);
    virtio_pci_add_cap(pci, VIRTIO_PCI_CAP_PCI_CFG, sizeof(struct virtio_pci_cfg_cap), 0,
                       &cfg);
    /* the window's bar, offset, length and data are the driver's to write */
    memset(pci->config + cfg + VIRTIO_PCI_CAP_BAR, 0, 1);
    memset(pci->config + cfg + VIRTIO_PCI_CAP_OFFSET, 0, 8);
    pci->wmask[cfg + VIRTIO_PCI_CAP_BAR] = 0xff;
    memset(pci->wmask + cfg + VIRTIO_PCI_CAP_OFFSET, 0xff, 8);
    memset(pci->wmask + cfg + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), 0xff, 4);
    vp->cfg_cap = cfg;
    if (!msix_init(pci,
                   vp->vdev->msix_vectors ? vp->vdev->msix_vectors
                                          : vp->vdev->nr_queues + 1,
                   VIRTIO_PCI_MSIX_BAR, 0, errp)) {
        return false;
    }
    pci_device_set_bar(pci, VIRTIO_PCI_MODERN_BAR, PCI_BAR_MEM64, true,
                       VIRTIO_PCI_MODERN_SIZE, virtio_pci_modern_io, vp);
    pci_device_set_intx_pin(pci, 1);
    return true;
}

VirtioDevice *virtio_pci_device(PciDevice *pci)
{
    VirtioPci *vp = pci->opaque;

    return pci->ops == &virtio_pci_ops ? vp->vdev : NULL;
}

PciDevice *virtio_pci_create(PciBus *bus, VirtioDevice *vdev, const char *pci_name,
                             uint32_t class_code, const char *qdev_id, int devfn,
                             GError **errp)
{
    VirtioPci *vp = g_new0(VirtioPci, 1);
    PciDevice *pci = pci_device_new(pci_name, PCI_VENDOR_REDHAT_QUMRANET,
                                    VIRTIO_PCI_DEVICE_BASE + vdev->device_id, class_code,
                                    VIRTIO_PCI_REVISION);

    pthread_mutex_init(&vp->irq_lock, NULL);
    vp->pci = pci;
    vp->vdev = vdev;
    vp->ioeventfd_len = g_new0(unsigned, vdev->nr_queues);
    pci->qdev_id = g_strdup(qdev_id);
    pci->opaque = vp;
    vdev->transport = &virtio_pci_transport;
    vdev->transport_opaque = vp;
    if (!virtio_pci_setup_config(vp, errp) ||
        !pci_device_realize(bus, pci, devfn, errp)) {
        goto fail;
    }
    vp->state_name = g_strdup_printf("%s@00:%02x.%x", vdev->name,
                                     PCI_DEVFN_SLOT(pci->devfn),
                                     PCI_DEVFN_FUNC(pci->devfn));
    g_free(vdev->name);
    vdev->name = g_strdup(vp->state_name);
    if (!device_state_register(pci_bus_device_states(bus), vp->state_name,
                               VIRTIO_PCI_STATE_VERSION, &virtio_pci_state_ops, vp,
                               errp)) {
        goto fail;
    }
    pci->ops = &virtio_pci_ops; /* from here pci_device_free tears down all */
    if (!virtio_device_start(vdev, errp)) {
        device_state_unregister(pci_bus_device_states(bus), vp);
        pci->ops = NULL;
        goto fail;
    }
    return pci;
fail:
    vdev->transport = NULL;
    pci_device_free(pci);
    virtio_pci_free(vp);
    return NULL;
}
