/*
 * vfio-pci interrupts: MSI and MSI-X emulated in config space and the
 * trapped MSI-X table, each enabled vector one eventfd that the device
 * signals (VFIO_DEVICE_SET_IRQS) and KVM turns into the guest's message
 * (KVM_IRQFD on an MSI route) with the host out of the way; a masked
 * vector's irqfd is detached, so its eventfd holds the pending message
 * until the unmask re-attaches it.  INTx: an eventfd on the pin's GSI with
 * a resample eventfd that unmasks the device's line at the guest's EOI.
 * Machine lock held throughout.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vfio-pci-int.h"
#include "util/error.h"

#define MSIX_ENTRY_WORDS 4
#define MSIX_ENTRY_SIZE  16
#define MSIX_CTRL_WORD   3

static void vfio_pci_warn(VfioPci *vp, GError *err)
{
    if (err) {
        warn_report("%s: %s", vp->dev->name, err->message);
        g_error_free(err);
    }
}

static bool msi_addr_valid(uint64_t addr)
{
    return (addr >> 32) == 0 &&
           ((uint32_t)addr & MSI_ADDR_WINDOW_MASK) == MSI_ADDR_WINDOW;
}

/* ---- one vector: its eventfd, route and irqfd ---- */

static int vector_fd(VfioPci *vp, unsigned n)
{
    VfioPciVector *v = &vp->vectors[n];

    if (v->fd < 0) {
        v->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    return v->fd;
}

static void vector_irqfd(VfioPci *vp, unsigned n, bool on)
{
    VfioPciVector *v = &vp->vectors[n];
    GError *err = NULL;

    if (on == v->irqfd || v->fd < 0 || v->gsi < 0) {
        return;
    }
    /* attaching to an eventfd already signalled delivers it at once */
    if (vp->kvm_ops->irqfd(vp->kvm, v->fd, v->gsi, on, &err) || !on) {
        v->irqfd = on;
    }
    vfio_pci_warn(vp, err);
}

/* The vector's KVM route says (addr, data); false: it has none. */
static bool vector_route(VfioPci *vp, unsigned n, uint64_t addr, uint32_t data)
{
    VfioPciVector *v = &vp->vectors[n];
    GError *err = NULL;

    if (v->gsi < 0) {
        v->gsi = vp->kvm_ops->msi_route_add(vp->kvm, addr, data, &err);
    } else if ((v->addr != addr || v->data != data) &&
               !vp->kvm_ops->msi_route_update(vp->kvm, v->gsi, addr, data, &err)) {
        vfio_pci_warn(vp, err);
        return false;
    }
    vfio_pci_warn(vp, err);
    if (v->gsi < 0) {
        return false;
    }
    v->addr = addr;
    v->data = data;
    return true;
}

static void vector_release(VfioPci *vp, unsigned n)
{
    VfioPciVector *v = &vp->vectors[n];

    vector_irqfd(vp, n, false);
    if (v->gsi >= 0) {
        vp->kvm_ops->msi_route_del(vp->kvm, v->gsi);
    }
    if (v->fd >= 0) {
        close(v->fd);
    }
    *v = (VfioPciVector){ .fd = -1, .gsi = -1, .host_irq = -1, .pcpu = -1 };
}

/* Does the eventfd hold a message nobody took (a masked vector's)? */
static bool vector_pending(VfioPci *vp, unsigned n)
{
    VfioPciVector *v = &vp->vectors[n];
    struct pollfd p = { .fd = v->fd, .events = POLLIN };

    return v->fd >= 0 && !v->irqfd && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Give the device eventfds for vectors [0, count) of irq index. */
static bool vfio_pci_enable_vectors(VfioPci *vp, unsigned index, unsigned count,
                                    GError **errp)
{
    int *fds = g_new(int, count);
    bool ok;

    for (unsigned n = 0; n < count; n++) {
        fds[n] = vector_fd(vp, n);
        if (fds[n] < 0) {
            error_setg_errno(errp, errno, "vfio %s: eventfd", vp->dev->name);
            g_free(fds);
            return false;
        }
    }
    ok = vp->dev->ops->set_irq_eventfds(vp->dev, index, 0, count, fds, errp);
    g_free(fds);
    if (ok) {
        vp->nr_fds = count;
        for (unsigned n = 0; n < count; n++) {
            /* the host may have given the vectors new IRQs */
            vp->vectors[n].host_irq = vp->vectors[n].pcpu = -1;
        }
    }
    return ok;
}

/* Switch index off in the device and drop every vector's wiring. */
static void vfio_pci_disable_vectors(VfioPci *vp, unsigned index)
{
    GError *err = NULL;

    if (vp->nr_fds && !vp->dev->ops->set_irq_eventfds(vp->dev, index, 0, 0, NULL, &err)) {
        vfio_pci_warn(vp, err);
    }
    vp->nr_fds = 0;
    for (unsigned n = 0; n < vp->nr_vectors; n++) {
        vector_release(vp, n);
    }
}

/* ---- INTx ---- */

void vfio_pci_intx_update_route(VfioPci *vp)
{
    int gsi = vp->mode == VFIO_PCI_IRQ_INTX ? pci_device_intx_irq(vp->pci) : -1;
    GError *err = NULL;

    if (gsi == vp->intx_gsi || !vp->kvm_ops->irqfd_resample) {
        return;
    }
    if (vp->intx_gsi >= 0) {
        vp->kvm_ops->irqfd_resample(vp->kvm, vp->intx_fd, vp->intx_resample_fd,
                                    vp->intx_gsi, false, NULL);
        vp->intx_gsi = -1;
    }
    if (gsi >= 0 && vp->kvm_ops->irqfd_resample(vp->kvm, vp->intx_fd,
                                                vp->intx_resample_fd, gsi, true, &err)) {
        vp->intx_gsi = gsi;
    }
    vfio_pci_warn(vp, err);
}

static bool vfio_pci_intx_enable(VfioPci *vp, GError **errp)
{
    VfioDevice *dev = vp->dev;

    if (vp->intx_fd < 0) {
        return true;
    }
    if (!dev->ops->set_irq_eventfds(dev, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &vp->intx_fd,
                                    errp)) {
        return false;
    }
    if (!dev->ops->set_irq_unmask_fd(dev, VFIO_PCI_INTX_IRQ_INDEX, vp->intx_resample_fd,
                                     errp)) {
        dev->ops->set_irq_eventfds(dev, VFIO_PCI_INTX_IRQ_INDEX, 0, 0, NULL, NULL);
        return false;
    }
    vp->mode = VFIO_PCI_IRQ_INTX;
    vfio_pci_intx_update_route(vp);
    return true;
}

static void vfio_pci_intx_disable(VfioPci *vp)
{
    GError *err = NULL;

    if (vp->mode != VFIO_PCI_IRQ_INTX) {
        return;
    }
    vp->mode = VFIO_PCI_IRQ_NONE;
    vfio_pci_intx_update_route(vp); /* detaches */
    if (!vp->dev->ops->set_irq_eventfds(vp->dev, VFIO_PCI_INTX_IRQ_INDEX, 0, 0, NULL,
                                        &err)) {
        vfio_pci_warn(vp, err);
    }
}

/* Back to INTx after MSI or MSI-X: a failure is reported, not fatal. */
static void vfio_pci_back_to_intx(VfioPci *vp)
{
    GError *err = NULL;

    vp->mode = VFIO_PCI_IRQ_NONE;
    if (!vfio_pci_intx_enable(vp, &err)) {
        vfio_pci_warn(vp, err);
    }
}

/* ---- MSI-X ---- */

static uint64_t msix_entry_addr(VfioPci *vp, unsigned n)
{
    const uint32_t *e = vp->msix_table + MSIX_ENTRY_WORDS * n;

    return e[0] | (uint64_t)e[1] << 32;
}

static bool msix_vector_masked(VfioPci *vp, unsigned n)
{
    return !vp->msix_enabled || vp->msix_masked ||
           (vp->msix_table[MSIX_ENTRY_WORDS * n + MSIX_CTRL_WORD] &
            PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

/* The vectors the device needs eventfds for: up to the last one in use. */
static unsigned msix_vectors_wanted(VfioPci *vp)
{
    unsigned count = 1; /* MSI-X on in the device, as it is in the guest's view */

    for (unsigned n = 0; n < vp->msix_nr; n++) {
        if (!msix_vector_masked(vp, n) && msi_addr_valid(msix_entry_addr(vp, n))) {
            count = n + 1;
        }
    }
    return count;
}

/*
 * Enable MSI-X in the device with count vectors.  Linux 6.1 cannot resize
 * an enabled index (VFIO_IRQ_INFO_NORESIZE): it is disabled and enabled
 * again, the eventfds (and so the KVM side) staying as they are.
 */
static bool msix_set_count(VfioPci *vp, unsigned count)
{
    GError *err = NULL;

    if (count <= vp->nr_fds) {
        return true;
    }
    if (vp->nr_fds && !vp->dev->ops->set_irq_eventfds(vp->dev, VFIO_PCI_MSIX_IRQ_INDEX, 0,
                                                      0, NULL, &err)) {
        vfio_pci_warn(vp, err);
        return false;
    }
    vp->nr_fds = 0;
    if (!vfio_pci_enable_vectors(vp, VFIO_PCI_MSIX_IRQ_INDEX, count, &err)) {
        vfio_pci_warn(vp, err);
        return false;
    }
    /* the host requested its IRQs afresh: their affinity is gone */
    for (unsigned n = 0; n < count; n++) {
        vfio_pci_vector_steer(vp, n);
    }
    return true;
}

static void msix_vector_update(VfioPci *vp, unsigned n)
{
    const uint32_t *e = vp->msix_table + MSIX_ENTRY_WORDS * n;
    uint64_t addr = msix_entry_addr(vp, n);

    if (vp->mode != VFIO_PCI_IRQ_MSIX) {
        return;
    }
    if (msix_vector_masked(vp, n) || !msi_addr_valid(addr)) {
        vector_irqfd(vp, n, false); /* the eventfd keeps what arrives */
        return;
    }
    if (n >= vp->nr_fds && !msix_set_count(vp, n + 1)) {
        return;
    }
    if (vector_route(vp, n, addr, e[2])) {
        vector_irqfd(vp, n, true);
        vfio_pci_vector_steer(vp, n);
    }
}

static void msix_control_written(VfioPci *vp)
{
    uint16_t ctrl = pci_get_word(vp->pci->config + vp->msix_cap + PCI_MSIX_FLAGS);
    bool enabled = ctrl & PCI_MSIX_FLAGS_ENABLE;
    GError *err = NULL;

    vp->msix_masked = ctrl & PCI_MSIX_FLAGS_MASKALL;
    if (enabled && !vp->msix_enabled && vp->mode != VFIO_PCI_IRQ_MSI) {
        vfio_pci_intx_disable(vp);
        vp->msix_enabled = true;
        if (!vfio_pci_enable_vectors(vp, VFIO_PCI_MSIX_IRQ_INDEX, msix_vectors_wanted(vp),
                                     &err)) {
            vfio_pci_warn(vp, err);
            vp->msix_enabled = false;
            vfio_pci_back_to_intx(vp);
            return;
        }
        vp->mode = VFIO_PCI_IRQ_MSIX;
    } else if (!enabled && vp->msix_enabled) {
        vp->msix_enabled = false;
        vfio_pci_disable_vectors(vp, VFIO_PCI_MSIX_IRQ_INDEX);
        vfio_pci_back_to_intx(vp);
        return;
    }
    for (unsigned n = 0; vp->mode == VFIO_PCI_IRQ_MSIX && n < vp->msix_nr; n++) {
        msix_vector_update(vp, n);
    }
}

static bool msix_pba_read(VfioPci *vp, uint64_t offset, uint8_t *data, unsigned len)
{
    uint64_t rel = offset - vp->msix_pba_offset;

    if (!vp->dev->ops->read(vp->dev, vp->msix_pba_bar, offset, data, len, NULL)) {
        memset(data, 0, len);
    }
    for (unsigned i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            uint64_t n = (rel + i) * 8 + bit;
            if (n < vp->msix_nr && msix_vector_masked(vp, n) && vector_pending(vp, n)) {
                data[i] |= 1u << bit;
            }
        }
    }
    return true;
}

bool vfio_pci_msix_access(VfioPci *vp, int bar, uint64_t offset, uint8_t *data,
                          unsigned len, bool is_write)
{
    uint64_t table_end = vp->msix_table_offset + (uint64_t)vp->msix_nr * MSIX_ENTRY_SIZE;
    uint64_t pba_end = vp->msix_pba_offset + (vp->msix_nr + 63) / 64 * 8ULL;
    uint8_t *table = (uint8_t *)vp->msix_table;

    if (!vp->msix_cap) {
        return false;
    }
    if (bar == vp->msix_table_bar && offset >= vp->msix_table_offset &&
        offset < table_end) {
        uint64_t rel = offset - vp->msix_table_offset;
        unsigned n = MIN(len, table_end - offset);

        if (!is_write) {
            memset(data, 0, len);
            memcpy(data, table + rel, n);
            return true;
        }
        memcpy(table + rel, data, n);
        for (uint64_t v = rel / MSIX_ENTRY_SIZE; v <= (rel + n - 1) / MSIX_ENTRY_SIZE;
             v++) {
            msix_vector_update(vp, v);
        }
        return true;
    }
    if (bar == vp->msix_pba_bar && offset >= vp->msix_pba_offset && offset < pba_end) {
        return is_write || msix_pba_read(vp, offset, data, len);
    }
    return false;
}

/* The capability: table and PBA places, emulated enable and mask bits. */
static bool vfio_msix_init(VfioPci *vp, GError **errp)
{
    uint8_t *cfg = vp->pci->config;
    uint8_t cap = vp->msix_cap;
    uint32_t table = pci_get_long(cfg + cap + PCI_MSIX_TABLE);
    uint32_t pba = pci_get_long(cfg + cap + PCI_MSIX_PBA);

    vp->msix_nr = (pci_get_word(cfg + cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_QSIZE) + 1;
    vp->msix_table_bar = table & PCI_MSIX_TABLE_BIR;
    vp->msix_table_offset = table & PCI_MSIX_TABLE_OFFSET;
    vp->msix_pba_bar = pba & PCI_MSIX_PBA_BIR;
    vp->msix_pba_offset = pba & PCI_MSIX_PBA_OFFSET;
    if (vp->msix_table_bar >= PCI_BAR_COUNT || vp->msix_pba_bar >= PCI_BAR_COUNT ||
        vp->msix_table_offset + vp->msix_nr * (uint64_t)MSIX_ENTRY_SIZE >
            vp->bars[vp->msix_table_bar].region.size ||
        vp->msix_pba_offset + (vp->msix_nr + 63) / 64 * 8ULL >
            vp->bars[vp->msix_pba_bar].region.size) {
        error_setg(errp, "vfio %s: MSI-X table or PBA outside its BAR", vp->dev->name);
        return false;
    }
    vp->msix_table = g_new0(uint32_t, MSIX_ENTRY_WORDS * vp->msix_nr);
    for (unsigned n = 0; n < vp->msix_nr; n++) {
        vp->msix_table[MSIX_ENTRY_WORDS * n + MSIX_CTRL_WORD] =
            PCI_MSIX_ENTRY_CTRL_MASKBIT;
    }
    memset(vp->emulated + cap + PCI_MSIX_FLAGS, 0xff,
           PCI_CAP_MSIX_SIZEOF - PCI_MSIX_FLAGS);
    memset(vp->no_write + cap, 1, PCI_CAP_MSIX_SIZEOF);
    cfg[cap + PCI_MSIX_FLAGS + 1] &= ~((PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >>
                                       8);
    vp->pci->wmask[cap + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE |
                                                PCI_MSIX_FLAGS_MASKALL) >>
                                               8;
    return true;
}

/* ---- MSI ---- */

static unsigned msi_data_offset(VfioPci *vp)
{
    return vp->msi_cap + (vp->msi_64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32);
}

static unsigned msi_mask_offset(VfioPci *vp)
{
    return vp->msi_cap + (vp->msi_64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32);
}

static unsigned msi_size(VfioPci *vp)
{
    return msi_mask_offset(vp) - vp->msi_cap + (vp->msi_maskbit ? 8 : 0);
}

static void vfio_msi_init(VfioPci *vp)
{
    uint8_t *cfg = vp->pci->config, *wmask = vp->pci->wmask;
    uint8_t cap = vp->msi_cap;
    uint16_t flags = pci_get_word(cfg + cap + PCI_MSI_FLAGS);
    unsigned size;

    vp->msi_64 = flags & PCI_MSI_FLAGS_64BIT;
    vp->msi_maskbit = flags & PCI_MSI_FLAGS_MASKBIT;
    vp->msi_max = 1u << MIN((flags & PCI_MSI_FLAGS_QMASK) >> 1, 5);
    size = msi_size(vp);
    if (cap + size > PCI_CONFIG_SIZE) {
        vp->msi_cap = 0; /* a capability running off the end: not shown working */
        return;
    }
    memset(vp->emulated + cap + PCI_MSI_FLAGS, 0xff, size - PCI_MSI_FLAGS);
    memset(vp->no_write + cap, 1, size);
    memset(cfg + cap + PCI_MSI_FLAGS + 2, 0, size - PCI_MSI_FLAGS - 2);
    pci_set_word(cfg + cap + PCI_MSI_FLAGS,
                 flags & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE));
    pci_set_word(wmask + cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    pci_set_long(wmask + cap + PCI_MSI_ADDRESS_LO, 0xfffffffc);
    if (vp->msi_64) {
        pci_set_long(wmask + cap + PCI_MSI_ADDRESS_HI, 0xffffffff);
    }
    pci_set_word(wmask + msi_data_offset(vp), 0xffff);
    if (vp->msi_maskbit) {
        pci_set_long(wmask + msi_mask_offset(vp),
                     vp->msi_max == 32 ? 0xffffffff : (1u << vp->msi_max) - 1);
    }
}

static unsigned msi_enabled_count(VfioPci *vp)
{
    uint16_t flags = pci_get_word(vp->pci->config + vp->msi_cap + PCI_MSI_FLAGS);

    return MIN(1u << ((flags & PCI_MSI_FLAGS_QSIZE) >> 4), vp->msi_max);
}

static void msi_vectors_update(VfioPci *vp)
{
    const uint8_t *cfg = vp->pci->config;
    uint64_t addr = pci_get_long(cfg + vp->msi_cap + PCI_MSI_ADDRESS_LO);
    uint32_t data = pci_get_word(cfg + msi_data_offset(vp));
    uint32_t mask = vp->msi_maskbit ? pci_get_long(cfg + msi_mask_offset(vp)) : 0;

    if (vp->msi_64) {
        addr |= (uint64_t)pci_get_long(cfg + vp->msi_cap + PCI_MSI_ADDRESS_HI) << 32;
    }
    for (unsigned n = 0; n < vp->nr_fds; n++) {
        /* multiple messages: the low bits of the data are the vector */
        uint32_t d = (data & ~(vp->nr_fds - 1)) | n;

        if ((mask & (1u << n)) || !msi_addr_valid(addr)) {
            vector_irqfd(vp, n, false);
        } else if (vector_route(vp, n, addr, d)) {
            vector_irqfd(vp, n, true);
            vfio_pci_vector_steer(vp, n);
        }
    }
}

static void msi_written(VfioPci *vp)
{
    uint16_t flags = pci_get_word(vp->pci->config + vp->msi_cap + PCI_MSI_FLAGS);
    bool enabled = flags & PCI_MSI_FLAGS_ENABLE;
    unsigned count = msi_enabled_count(vp);
    GError *err = NULL;

    if (vp->mode == VFIO_PCI_IRQ_MSIX) {
        return; /* MSI-X wins while both are on */
    }
    if (vp->mode == VFIO_PCI_IRQ_MSI && (!enabled || count != vp->nr_fds)) {
        /* a new vector count: off, then on again with it */
        vfio_pci_disable_vectors(vp, VFIO_PCI_MSI_IRQ_INDEX);
        vp->mode = VFIO_PCI_IRQ_NONE;
        if (!enabled) {
            vfio_pci_back_to_intx(vp);
        }
    }
    if (enabled && vp->mode != VFIO_PCI_IRQ_MSI) {
        vfio_pci_intx_disable(vp);
        if (!vfio_pci_enable_vectors(vp, VFIO_PCI_MSI_IRQ_INDEX, count, &err)) {
            vfio_pci_warn(vp, err);
            vfio_pci_back_to_intx(vp);
            return;
        }
        vp->mode = VFIO_PCI_IRQ_MSI;
    }
    if (vp->mode == VFIO_PCI_IRQ_MSI) {
        msi_vectors_update(vp);
    }
}

/* The pending bits of MSI with per-vector masking, as read now. */
void vfio_pci_irq_config_refresh(VfioPci *vp, unsigned offset, unsigned len)
{
    unsigned pending_at;
    uint32_t pending = 0;

    if (!vp->msi_cap || !vp->msi_maskbit) {
        return;
    }
    pending_at = msi_mask_offset(vp) + 4;
    if (offset >= pending_at + 4 || offset + len <= pending_at) {
        return;
    }
    for (unsigned n = 0; vp->mode == VFIO_PCI_IRQ_MSI && n < vp->nr_fds; n++) {
        if (vector_pending(vp, n)) {
            pending |= 1u << n;
        }
    }
    pci_set_long(vp->pci->config + pending_at, pending);
}

/* ---- the device's life ---- */

static bool ranges_meet(unsigned a, unsigned alen, unsigned b, unsigned blen)
{
    return a < b + blen && b < a + alen;
}

void vfio_pci_irq_config_written(VfioPci *vp, unsigned offset, unsigned len)
{
    if (vp->msix_cap && ranges_meet(offset, len, vp->msix_cap + PCI_MSIX_FLAGS, 2)) {
        msix_control_written(vp);
    }
    if (vp->msi_cap && ranges_meet(offset, len, vp->msi_cap, msi_size(vp))) {
        msi_written(vp);
    }
}

bool vfio_pci_irq_init(VfioPci *vp, GError **errp)
{
    VfioDevice *dev = vp->dev;
    unsigned max = 0;

    for (unsigned i = 0; i < VFIO_PCI_NUM_IRQS && i < dev->nr_irqs; i++) {
        if (!dev->ops->irq_info(dev, i, &vp->irqs[i], errp)) {
            return false;
        }
    }
    if (vp->msi_cap && vp->irqs[VFIO_PCI_MSI_IRQ_INDEX].count) {
        vfio_msi_init(vp);
        max = vp->msi_max;
    } else {
        vp->msi_cap = 0;
    }
    if (vp->msix_cap && vp->irqs[VFIO_PCI_MSIX_IRQ_INDEX].count) {
        if (!vfio_msix_init(vp, errp)) {
            return false;
        }
        max = MAX(max, vp->msix_nr);
    } else {
        vp->msix_cap = 0;
    }
    vp->nr_vectors = max;
    vp->vectors = g_new(VfioPciVector, max);
    for (unsigned n = 0; n < max; n++) {
        vp->vectors[n] = (VfioPciVector){
            .fd = -1, .gsi = -1, .host_irq = -1, .pcpu = -1
        };
    }
    if (!vp->pci->config[PCI_INTERRUPT_PIN] || !vp->irqs[VFIO_PCI_INTX_IRQ_INDEX].count) {
        vp->pci->config[PCI_INTERRUPT_PIN] = 0;
        return true;
    }
    vp->intx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vp->intx_resample_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vp->intx_fd < 0 || vp->intx_resample_fd < 0) {
        error_setg_errno(errp, errno, "vfio %s: eventfd", dev->name);
        return false;
    }
    return vfio_pci_intx_enable(vp, errp);
}

/* Every vector off; INTx detached (kept = false) or wired again. */
static void vfio_pci_irq_stop(VfioPci *vp, bool back_to_intx)
{
    if (vp->mode == VFIO_PCI_IRQ_MSIX || vp->mode == VFIO_PCI_IRQ_MSI) {
        vfio_pci_disable_vectors(vp, vp->mode == VFIO_PCI_IRQ_MSIX
                                         ? VFIO_PCI_MSIX_IRQ_INDEX
                                         : VFIO_PCI_MSI_IRQ_INDEX);
        vp->mode = VFIO_PCI_IRQ_NONE;
    }
    vfio_pci_intx_disable(vp);
    vp->msix_enabled = vp->msix_masked = false;
    for (unsigned n = 0; n < vp->msix_nr; n++) {
        uint32_t *e = vp->msix_table + MSIX_ENTRY_WORDS * n;
        e[0] = e[1] = e[2] = 0;
        e[MSIX_CTRL_WORD] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
    }
    if (back_to_intx) {
        vfio_pci_back_to_intx(vp);
    }
}

void vfio_pci_irq_reset(VfioPci *vp)
{
    vfio_pci_irq_stop(vp, true);
}

void vfio_pci_irq_cleanup(VfioPci *vp)
{
    vfio_pci_irq_stop(vp, false);
    for (unsigned n = 0; n < vp->nr_vectors; n++) {
        vector_release(vp, n);
    }
    if (vp->intx_fd >= 0) {
        close(vp->intx_fd);
    }
    if (vp->intx_resample_fd >= 0) {
        close(vp->intx_resample_fd);
    }
    vp->intx_fd = vp->intx_resample_fd = -1;
    g_free(vp->vectors);
    vp->vectors = NULL;
    vp->nr_vectors = 0;
    g_free(vp->msix_table);
    vp->msix_table = NULL;
}

/* ---- host IRQ affinity (-osnet_cpumap) ---- */

static unsigned vector_dest_apic(const VfioPciVector *v)
{
    return (v->addr >> 12) & 0xff; /* MSI address bits 19:12 */
}

/* Destination mode (address bit 2) logical: the destination is a set of
 * logical APIC ids, not one vCPU, and is not steered. */
static bool vector_dest_logical(const VfioPciVector *v)
{
    return v->addr & 4;
}

void vfio_pci_vector_steer(VfioPci *vp, unsigned n)
{
    VfioPciVector *v = &vp->vectors[n];
    GError *err = NULL;
    int pcpu;

    if (!v->irqfd || !vp->pci->bus || vector_dest_logical(v)) {
        return;
    }
    pcpu = pci_bus_apic_pcpu(vp->pci->bus, vector_dest_apic(v));
    if (pcpu < 0 || pcpu == v->pcpu) {
        return;
    }
    if (v->host_irq < 0) {
        v->host_irq = vfio_host_irq(vp->proc_root, vp->dev->name,
                                    vp->mode == VFIO_PCI_IRQ_MSIX, n);
    }
    if (v->host_irq < 0) {
        return; /* not requested by the host (yet): the next retarget tries again */
    }
    if (vfio_host_irq_set_affinity(vp->proc_root, v->host_irq, pcpu, &err)) {
        v->pcpu = pcpu;
    }
    vfio_pci_warn(vp, err);
}

static void vfio_pci_vectors_into(VfioPci *vp, bool posted_capable, bool read_host,
                                  GArray *out)
{
    for (unsigned n = 0; n < vp->nr_fds; n++) {
        const VfioPciVector *v = &vp->vectors[n];
        bool msix = vp->mode == VFIO_PCI_IRQ_MSIX;
        VfioPciVectorInfo info = {
            .qdev_id = vp->pci->qdev_id,
            .host = vp->dev->name,
            .vector = n,
            .msix = msix,
            .enabled = v->irqfd,
            .address = v->addr,
            .data = v->data,
            .dest_apic = vector_dest_apic(v),
            .dest_logical = vector_dest_logical(v),
            .vcpu = -1,
            .host_irq = v->host_irq,
            .pcpu = v->pcpu,
        };
        if (read_host && info.host_irq < 0) {
            info.host_irq = vfio_host_irq(vp->proc_root, vp->dev->name, msix, n);
        }
        if (read_host && info.host_irq >= 0) {
            info.affinity = vfio_host_irq_affinity(vp->proc_root, info.host_irq);
            info.posted = posted_capable && v->irqfd &&
                          vfio_host_irq_remapped(vp->proc_root, info.host_irq);
        }
        g_array_append_val(out, info);
    }
}

static void vector_info_clear(gpointer p)
{
    g_free(((VfioPciVectorInfo *)p)->affinity);
}

GArray *vfio_pci_query_vectors(PciDevice *dev)
{
    GArray *out = g_array_new(FALSE, TRUE, sizeof(VfioPciVectorInfo));

    g_array_set_clear_func(out, vector_info_clear);
    if (vfio_pci_host_name(dev)) {
        vfio_pci_vectors_into(dev->opaque, false, false, out);
    }
    return out;
}

typedef struct BusQuery {
    bool posted_capable;
    GArray *out;
} BusQuery;

static void query_one(PciDevice *dev, void *opaque)
{
    BusQuery *q = opaque;

    if (vfio_pci_host_name(dev)) {
        vfio_pci_vectors_into(dev->opaque, q->posted_capable, true, q->out);
    }
}

GArray *vfio_pci_query_bus_vectors(PciBus *bus, bool posted_capable)
{
    BusQuery q = { posted_capable, g_array_new(FALSE, TRUE, sizeof(VfioPciVectorInfo)) };

    g_array_set_clear_func(q.out, vector_info_clear);
    pci_foreach_device(bus, query_one, &q);
    return q.out;
}

static void steer_one(PciDevice *dev, void *opaque)
{
    VfioPci *vp = vfio_pci_host_name(dev) ? dev->opaque : NULL;

    for (unsigned n = 0; vp && n < vp->nr_fds; n++) {
        vp->vectors[n].pcpu = -1; /* the map changed: write it again */
        vfio_pci_vector_steer(vp, n);
    }
}

void vfio_pci_steer_bus(PciBus *bus)
{
    pci_foreach_device(bus, steer_one, NULL);
}
