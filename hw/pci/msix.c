/*
 * MSI-X: the capability, the vector table and pending-bit array in a
 * memory BAR, and delivery.  Each vector the guest unmasks with a valid
 * address gets a KVM MSI route and an irqfd, so a device thread raises it
 * by writing an eventfd.  Locking: the table, the PBA and the enable/mask
 * copies are guarded by MsixState.lock, which msix_notify takes from any
 * thread; table and config writes come with the machine lock held too.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pci-int.h"
#include "util/error.h"

#define MSIX_ENTRY_SIZE    16
#define MSIX_ENTRY_ADDR_LO 0
#define MSIX_ENTRY_ADDR_HI 1
#define MSIX_ENTRY_DATA    2
#define MSIX_ENTRY_CTRL    3
#define MSIX_CAP_SIZE      12
#define MSI_ADDR_MASK      0xfff00000u
#define MSI_ADDR_BASE      0xfee00000u /* the LAPIC window */
#define MSIX_VECTOR_USERS  8           /* device eventfds bound to one vector */

typedef struct MsixVector {
    uint32_t entry[4];   /* address low/high, data, vector control */
    int gsi;             /* KVM MSI route, or -1 */
    int fd;              /* eventfd bound to gsi with an irqfd, or -1 */
    uint64_t route_addr; /* what the route delivers */
    uint32_t route_data;
    /*
     * Eventfds a device's kernel back end (vhost) signals to raise this
     * vector: bound to gsi by their own irqfds while the vector is unmasked
     * and routed (users_bound), unbound while masked, so that a signal
     * waits in the eventfd and KVM delivers it at the unmask.
     */
    int users[MSIX_VECTOR_USERS]; /* -1: free slot */
    int users_gsi;                /* the gsi they are bound to, or -1 */
} MsixVector;

struct MsixState {
    pthread_mutex_t lock;
    unsigned nr_vectors;
    uint8_t cap;
    int bar;
    uint32_t pba_offset; /* the table is at offset 0 of the BAR */
    bool enabled, function_masked;
    MsixVector *vectors;
    uint64_t *pba;
    bool warned;
};

static unsigned msix_pba_words(unsigned nr_vectors)
{
    return (nr_vectors + 63) / 64;
}

static uint64_t msix_vector_addr(const MsixVector *v)
{
    return v->entry[MSIX_ENTRY_ADDR_LO] | (uint64_t)v->entry[MSIX_ENTRY_ADDR_HI] << 32;
}

/* A message a real device could deliver: a write to the LAPIC window. */
static bool msix_vector_addr_valid(const MsixVector *v)
{
    return v->entry[MSIX_ENTRY_ADDR_HI] == 0 &&
           (v->entry[MSIX_ENTRY_ADDR_LO] & MSI_ADDR_MASK) == MSI_ADDR_BASE;
}

static bool msix_vector_masked(const MsixState *ms, unsigned n)
{
    return !ms->enabled || ms->function_masked ||
           (ms->vectors[n].entry[MSIX_ENTRY_CTRL] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static void msix_warn(PciDevice *dev, GError *err)
{
    if (!dev->msix->warned) {
        warn_report("%s: MSI-X: %s", dev->bus_name, err->message);
        dev->msix->warned = true;
    }
    g_error_free(err);
}

/* Bind the vector's user eventfds to gsi (>= 0) or unbind them (-1); lock held. */
static void msix_vector_bind_users(PciDevice *dev, unsigned n, int gsi)
{
    const PciKvmOps *ops = dev->bus->cfg.ops;
    void *kvm = dev->bus->cfg.ops_opaque;
    MsixVector *v = &dev->msix->vectors[n];
    GError *err = NULL;

    if (v->users_gsi == gsi) {
        return;
    }
    for (unsigned i = 0; i < MSIX_VECTOR_USERS; i++) {
        if (v->users[i] >= 0 && v->users_gsi >= 0) {
            ops->irqfd(kvm, v->users[i], v->users_gsi, false, NULL);
        }
    }
    v->users_gsi = -1;
    if (gsi < 0) {
        return;
    }
    for (unsigned i = 0; i < MSIX_VECTOR_USERS; i++) {
        if (v->users[i] >= 0 && !ops->irqfd(kvm, v->users[i], gsi, true, &err)) {
            msix_warn(dev, err);
            err = NULL;
        }
    }
    v->users_gsi = gsi;
}

/* Make the vector's KVM route say what its table entry says; lock held. */
static void msix_vector_sync_route(PciDevice *dev, unsigned n)
{
    const PciKvmOps *ops = dev->bus->cfg.ops;
    void *kvm = dev->bus->cfg.ops_opaque;
    MsixVector *v = &dev->msix->vectors[n];
    uint64_t addr = msix_vector_addr(v);
    uint32_t data = v->entry[MSIX_ENTRY_DATA];
    GError *err = NULL;

    if (!msix_vector_addr_valid(v)) {
        return;
    }
    if (v->gsi < 0) {
        v->gsi = ops->msi_route_add(kvm, addr, data, &err);
        if (v->gsi < 0) {
            msix_warn(dev, err);
            return;
        }
        v->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (v->fd >= 0 && !ops->irqfd(kvm, v->fd, v->gsi, true, &err)) {
            msix_warn(dev, err);
            close(v->fd);
            v->fd = -1;
        }
    } else if ((v->route_addr != addr || v->route_data != data) &&
               !ops->msi_route_update(kvm, v->gsi, addr, data, &err)) {
        msix_warn(dev, err);
        return;
    }
    v->route_addr = addr;
    v->route_data = data;
}

static void msix_vector_drop_route(PciDevice *dev, unsigned n)
{
    MsixVector *v = &dev->msix->vectors[n];

    msix_vector_bind_users(dev, n, -1);
    if (v->fd >= 0) {
        dev->bus->cfg.ops->irqfd(dev->bus->cfg.ops_opaque, v->fd, v->gsi, false, NULL);
        close(v->fd);
        v->fd = -1;
    }
    if (v->gsi >= 0) {
        dev->bus->cfg.ops->msi_route_del(dev->bus->cfg.ops_opaque, v->gsi);
        v->gsi = -1;
    }
}

/* Send the vector's message now; lock held, vector unmasked. */
static void msix_vector_deliver(PciDevice *dev, unsigned n)
{
    MsixVector *v = &dev->msix->vectors[n];
    uint64_t one = 1;

    if (!msix_vector_addr_valid(v)) {
        return; /* a write to nowhere, as on hardware */
    }
    if (v->fd >= 0 && v->route_addr == msix_vector_addr(v) &&
        v->route_data == v->entry[MSIX_ENTRY_DATA]) {
        if (write(v->fd, &one, sizeof(one)) == sizeof(one)) {
            return;
        }
    }
    dev->bus->cfg.ops->signal_msi(dev->bus->cfg.ops_opaque, msix_vector_addr(v),
                                  v->entry[MSIX_ENTRY_DATA], NULL);
}

/*
 * An unmasked vector: route up to date, its users bound, and a pending
 * message goes out; a masked one: its users unbound.
 */
static void msix_vector_update(PciDevice *dev, unsigned n)
{
    MsixState *ms = dev->msix;
    MsixVector *v = &ms->vectors[n];
    uint64_t bit = 1ULL << (n % 64);

    if (msix_vector_masked(ms, n)) {
        msix_vector_bind_users(dev, n, -1);
        return;
    }
    msix_vector_sync_route(dev, n);
    msix_vector_bind_users(dev, n,
                           msix_vector_addr_valid(v) &&
                                   v->route_addr == msix_vector_addr(v) &&
                                   v->route_data == v->entry[MSIX_ENTRY_DATA]
                               ? v->gsi
                               : -1);
    if (ms->pba[n / 64] & bit) {
        ms->pba[n / 64] &= ~bit;
        msix_vector_deliver(dev, n);
    }
}

static void msix_table_access(PciDevice *dev, uint64_t offset, uint8_t *data,
                              unsigned len, bool is_write)
{
    MsixState *ms = dev->msix;
    uint64_t table_end = (uint64_t)ms->nr_vectors * MSIX_ENTRY_SIZE;
    uint64_t pba_end = ms->pba_offset + msix_pba_words(ms->nr_vectors) * 8;
    int touched[2] = { -1, -1 };

    for (unsigned i = 0; i < len; i++) {
        uint64_t off = offset + i;
        if (off < table_end) {
            unsigned n = off / MSIX_ENTRY_SIZE, word = off % 16 / 4, shift = off % 4 * 8;
            uint32_t *w = &ms->vectors[n].entry[word];
            if (!is_write) {
                data[i] = *w >> shift;
                continue;
            }
            uint32_t mask = word == MSIX_ENTRY_CTRL ? PCI_MSIX_ENTRY_CTRL_MASKBIT : ~0u;
            *w = (*w & ~(mask & (0xffu << shift))) | ((uint32_t)data[i] << shift & mask);
            touched[touched[0] >= 0 && touched[0] != (int)n] = n;
        } else if (!is_write && off >= ms->pba_offset && off < pba_end) {
            uint64_t pba_off = off - ms->pba_offset;
            data[i] = ms->pba[pba_off / 8] >> (pba_off % 8 * 8);
        } else if (!is_write) {
            data[i] = 0;
        }
    }
    for (int t = 0; t < 2; t++) {
        if (touched[t] >= 0) {
            msix_vector_update(dev, touched[t]);
        }
    }
}

static void msix_bar_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                        bool is_write)
{
    PciDevice *dev = opaque;

    pthread_mutex_lock(&dev->msix->lock);
    msix_table_access(dev, offset, data, len, is_write);
    pthread_mutex_unlock(&dev->msix->lock);
}

bool msix_init(PciDevice *dev, unsigned nr_vectors, int bar, uint8_t cap_offset,
               GError **errp)
{
    MsixState *ms;
    uint64_t bar_size = 4096;
    uint8_t *cap;

    if (nr_vectors == 0 || nr_vectors > PCI_MSIX_FLAGS_QSIZE + 1) {
        error_setg(errp, "%s: %u MSI-X vectors is out of range", dev->name, nr_vectors);
        return false;
    }
    while (bar_size < 2ULL * nr_vectors * MSIX_ENTRY_SIZE) {
        bar_size *= 2;
    }
    ms = g_new0(MsixState, 1);
    pthread_mutex_init(&ms->lock, NULL);
    ms->nr_vectors = nr_vectors;
    ms->bar = bar;
    ms->pba_offset = bar_size / 2;
    ms->vectors = g_new0(MsixVector, nr_vectors);
    ms->pba = g_new0(uint64_t, msix_pba_words(nr_vectors));
    for (unsigned i = 0; i < nr_vectors; i++) {
        ms->vectors[i].entry[MSIX_ENTRY_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
        ms->vectors[i].gsi = ms->vectors[i].fd = -1;
        ms->vectors[i].users_gsi = -1;
        for (unsigned u = 0; u < MSIX_VECTOR_USERS; u++) {
            ms->vectors[i].users[u] = -1;
        }
    }
    dev->msix = ms;
    ms->cap = pci_device_add_capability(dev, PCI_CAP_ID_MSIX, cap_offset, MSIX_CAP_SIZE);
    cap = dev->config + ms->cap;
    pci_set_word(cap + PCI_MSIX_FLAGS, nr_vectors - 1);
    pci_set_long(cap + PCI_MSIX_TABLE, bar);
    pci_set_long(cap + PCI_MSIX_PBA, ms->pba_offset | bar);
    dev->wmask[ms->cap + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE |
                                                PCI_MSIX_FLAGS_MASKALL) >>
                                               8;
    pci_device_set_bar(dev, bar, PCI_BAR_MEM32, false, bar_size, msix_bar_io, dev);
    return true;
}

/* The guest wrote config space: pick up enable and function-mask changes. */
void msix_config_written(PciDevice *dev, unsigned offset, unsigned len)
{
    MsixState *ms = dev->msix;
    unsigned flags = ms->cap + PCI_MSIX_FLAGS + 1;
    uint8_t control = dev->config[flags];

    if (offset > flags || offset + len <= flags) {
        return;
    }
    pthread_mutex_lock(&ms->lock);
    ms->enabled = control & (PCI_MSIX_FLAGS_ENABLE >> 8);
    ms->function_masked = control & (PCI_MSIX_FLAGS_MASKALL >> 8);
    for (unsigned n = 0; n < ms->nr_vectors; n++) {
        msix_vector_update(dev, n);
    }
    pthread_mutex_unlock(&ms->lock);
}

bool msix_enabled(PciDevice *dev)
{
    bool on = false;

    if (dev->msix) {
        pthread_mutex_lock(&dev->msix->lock);
        on = dev->msix->enabled;
        pthread_mutex_unlock(&dev->msix->lock);
    }
    return on;
}

bool msix_vector_use_fd(PciDevice *dev, unsigned vector, int fd)
{
    MsixState *ms = dev->msix;
    const PciKvmOps *ops;
    GError *err = NULL;
    MsixVector *v;
    int slot = -1;

    if (!ms || vector >= ms->nr_vectors || fd < 0) {
        return false;
    }
    ops = dev->bus->cfg.ops;
    pthread_mutex_lock(&ms->lock);
    v = &ms->vectors[vector];
    for (unsigned i = 0; ms->enabled && slot < 0 && i < MSIX_VECTOR_USERS; i++) {
        if (v->users[i] < 0) {
            slot = i;
        }
    }
    if (slot >= 0) {
        v->users[slot] = fd;
        if (v->users_gsi < 0) {
            msix_vector_update(dev, vector); /* binds the users if it is unmasked */
        } else if (!ops->irqfd(dev->bus->cfg.ops_opaque, fd, v->users_gsi, true, &err)) {
            msix_warn(dev, err);
        }
    }
    pthread_mutex_unlock(&ms->lock);
    return slot >= 0;
}

void msix_vector_release_fd(PciDevice *dev, unsigned vector, int fd)
{
    MsixState *ms = dev->msix;
    MsixVector *v;

    if (!ms || vector >= ms->nr_vectors) {
        return;
    }
    pthread_mutex_lock(&ms->lock);
    v = &ms->vectors[vector];
    for (unsigned i = 0; i < MSIX_VECTOR_USERS; i++) {
        if (v->users[i] == fd) {
            if (v->users_gsi >= 0) {
                dev->bus->cfg.ops->irqfd(dev->bus->cfg.ops_opaque, fd, v->users_gsi,
                                         false, NULL);
            }
            v->users[i] = -1;
            break;
        }
    }
    pthread_mutex_unlock(&ms->lock);
}

unsigned msix_nr_vectors(PciDevice *dev)
{
    return dev->msix ? dev->msix->nr_vectors : 0;
}

bool msix_notify(PciDevice *dev, unsigned vector)
{
    MsixState *ms = dev->msix;

    if (!ms) {
        return false;
    }
    pthread_mutex_lock(&ms->lock);
    if (!ms->enabled) {
        pthread_mutex_unlock(&ms->lock);
        return false;
    }
    if (vector < ms->nr_vectors) {
        if (msix_vector_masked(ms, vector)) {
            ms->pba[vector / 64] |= 1ULL << (vector % 64);
        } else {
            msix_vector_deliver(dev, vector);
        }
    }
    pthread_mutex_unlock(&ms->lock);
    return true;
}

/* Table back to power-on (all masked), routes dropped; lock held. */
static void msix_reset_locked(PciDevice *dev)
{
    MsixState *ms = dev->msix;

    for (unsigned n = 0; n < ms->nr_vectors; n++) {
        msix_vector_drop_route(dev, n);
        memset(ms->vectors[n].entry, 0, sizeof(ms->vectors[n].entry));
        ms->vectors[n].entry[MSIX_ENTRY_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
    }
    memset(ms->pba, 0, msix_pba_words(ms->nr_vectors) * 8);
    ms->enabled = ms->function_masked = false;
}

void msix_reset(PciDevice *dev)
{
    pthread_mutex_lock(&dev->msix->lock);
    msix_reset_locked(dev);
    pthread_mutex_unlock(&dev->msix->lock);
}

void msix_free(PciDevice *dev)
{
    MsixState *ms = dev->msix;

    if (dev->bus) {
        msix_reset(dev);
    }
    pthread_mutex_destroy(&ms->lock);
    g_free(ms->vectors);
    g_free(ms->pba);
    g_free(ms);
    dev->msix = NULL;
}

void msix_save(PciDevice *dev, GByteArray *out)
{
    MsixState *ms = dev->msix;

    pthread_mutex_lock(&ms->lock);
    blob_put_u32(out, ms->nr_vectors);
    for (unsigned n = 0; n < ms->nr_vectors; n++) {
        for (int w = 0; w < 4; w++) {
            blob_put_u32(out, ms->vectors[n].entry[w]);
        }
    }
    for (unsigned i = 0; i < msix_pba_words(ms->nr_vectors); i++) {
        blob_put_u64(out, ms->pba[i]);
    }
    pthread_mutex_unlock(&ms->lock);
}

bool msix_parse(PciDevice *dev, StateReader *r, PciDeviceSnapshot *snap)
{
    unsigned n = blob_get_u32(r);

    if (n != msix_nr_vectors(dev)) {
        return false;
    }
    snap->nr_vectors = n;
    if (n == 0) {
        return true;
    }
    snap->msix_table = g_new(uint32_t, 4 * n);
    snap->msix_pba = g_new(uint64_t, msix_pba_words(n));
    for (unsigned i = 0; i < 4 * n; i++) {
        snap->msix_table[i] = blob_get_u32(r);
    }
    for (unsigned i = 0; i < msix_pba_words(n); i++) {
        snap->msix_pba[i] = blob_get_u64(r);
    }
    return !r->error;
}

void msix_apply(PciDevice *dev, const PciDeviceSnapshot *snap)
{
    MsixState *ms = dev->msix;
    uint8_t control = dev->config[ms->cap + PCI_MSIX_FLAGS + 1];

    pthread_mutex_lock(&ms->lock);
    msix_reset_locked(dev);
    for (unsigned n = 0; n < ms->nr_vectors; n++) {
        memcpy(ms->vectors[n].entry, &snap->msix_table[4 * n], 16);
        ms->vectors[n].entry[MSIX_ENTRY_CTRL] &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
    }
    for (unsigned i = 0; i < msix_pba_words(ms->nr_vectors); i++) {
        ms->pba[i] = snap->msix_pba[i];
    }
    if (ms->nr_vectors % 64) {
        ms->pba[ms->nr_vectors / 64] &= (1ULL << (ms->nr_vectors % 64)) - 1;
    }
    ms->enabled = control & (PCI_MSIX_FLAGS_ENABLE >> 8);
    ms->function_masked = control & (PCI_MSIX_FLAGS_MASKALL >> 8);
    for (unsigned n = 0; n < ms->nr_vectors; n++) {
        msix_vector_update(dev, n);
    }
    pthread_mutex_unlock(&ms->lock);
}
