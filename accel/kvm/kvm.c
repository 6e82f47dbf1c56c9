/*
 * The KVM VM: /dev/kvm, the VM fd, the in-kernel irqchip and PIT, memory
 * slots.  Main thread only, except kvm_irq_line_set (any thread: the
 * ioctl is thread-safe).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "accel/kvm/kvm.h"
#include "util/error.h"

int kvm_check_extension(KvmVm *kvm, int cap)
{
    int ret = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, cap);

    return ret < 0 ? 0 : ret;
}

static bool kvm_get_supported_cpuid(KvmVm *kvm, GError **errp)
{
    for (int nent = 128; nent <= 4096; nent *= 2) {
        struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) +
                                         nent * sizeof(struct kvm_cpuid_entry2));
        c->nent = nent;
        if (ioctl(kvm->sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            kvm->supported_cpuid = c;
            return true;
        }
        g_free(c);
        if (errno != E2BIG) {
            error_setg_errno(errp, errno, "KVM_GET_SUPPORTED_CPUID failed");
            return false;
        }
    }
    error_setg(errp, "KVM_GET_SUPPORTED_CPUID: table too large");
    return false;
}

static void route_append(KvmVm *kvm, const struct kvm_irq_routing_entry *e)
{
    if (kvm->nr_routes == kvm->route_capacity) {
        kvm->route_capacity = kvm->route_capacity ? kvm->route_capacity * 2 : 64;
        kvm->routes = g_renew(struct kvm_irq_routing_entry, kvm->routes,
                              kvm->route_capacity);
    }
    kvm->routes[kvm->nr_routes++] = *e;
}

/*
 * The pc's routes, as the MP table describes them: GSIs 0-15 to the PICs
 * (but GSI 2, the cascade), GSI 0 (the PIT) to IOAPIC pin 2, the others to
 * their own IOAPIC pin.  KVM_SET_GSI_ROUTING replaces the whole table, so
 * it is kept here and committed at start.
 */
static void kvm_routes_init_default(KvmVm *kvm)
{
    pthread_mutex_init(&kvm->route_lock, NULL);
    kvm->nr_routes = 0;
    for (uint32_t gsi = 0; gsi < 24; gsi++) {
        struct kvm_irq_routing_entry e = { .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP };
        if (gsi < 16 && gsi != 2) {
            e.u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
                                          : KVM_IRQCHIP_PIC_SLAVE;
            e.u.irqchip.pin = gsi % 8;
            route_append(kvm, &e);
        }
        if (gsi != 2) {
            e.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
            e.u.irqchip.pin = gsi == 0 ? 2 : gsi;
            route_append(kvm, &e);
        }
    }
    kvm->next_msi_gsi = 24;
}

/* Hand the whole table to KVM; route_lock held. */
static bool routes_commit_locked(KvmVm *kvm, GError **errp)
{
    struct kvm_irq_routing *table = g_malloc0(
        sizeof(*table) + kvm->nr_routes * sizeof(struct kvm_irq_routing_entry));
    bool ok;

    table->nr = kvm->nr_routes;
    memcpy(table->entries, kvm->routes,
           kvm->nr_routes * sizeof(struct kvm_irq_routing_entry));
    ok = ioctl(kvm->vm_fd, KVM_SET_GSI_ROUTING, table) == 0;
    if (!ok) {
        error_setg_errno(errp, errno, "KVM_SET_GSI_ROUTING failed");
    }
    g_free(table);
    return ok;
}

int kvm_msi_route_add(KvmVm *kvm, uint64_t addr, uint32_t data, GError **errp)
{
    struct kvm_irq_routing_entry e = { .type = KVM_IRQ_ROUTING_MSI };
    int gsi;

    pthread_mutex_lock(&kvm->route_lock);
    gsi = kvm->next_msi_gsi++;
    e.gsi = gsi;
    e.u.msi.address_lo = (uint32_t)addr;
    e.u.msi.address_hi = addr >> 32;
    e.u.msi.data = data;
    route_append(kvm, &e);
    if (!routes_commit_locked(kvm, errp)) {
        kvm->nr_routes--;
        gsi = -1;
    }
    pthread_mutex_unlock(&kvm->route_lock);
    return gsi;
}

static struct kvm_irq_routing_entry *route_find(KvmVm *kvm, int gsi)
{
    for (unsigned i = 0; i < kvm->nr_routes; i++) {
        if ((int)kvm->routes[i].gsi == gsi &&
            kvm->routes[i].type == KVM_IRQ_ROUTING_MSI) {
            return &kvm->routes[i];
        }
    }
    return NULL;
}

bool kvm_msi_route_update(KvmVm *kvm, int gsi, uint64_t addr, uint32_t data,
                          GError **errp)
{
    struct kvm_irq_routing_entry *e;
    bool ok = false;

    pthread_mutex_lock(&kvm->route_lock);
    e = route_find(kvm, gsi);
    if (!e) {
        error_setg(errp, "no MSI route for GSI %d", gsi);
    } else if (e->u.msi.address_lo == (uint32_t)addr &&
               e->u.msi.address_hi == addr >> 32 && e->u.msi.data == data) {
        ok = true; /* unchanged: spare KVM the table reload */
    } else {
        e->u.msi.address_lo = (uint32_t)addr;
        e->u.msi.address_hi = addr >> 32;
        e->u.msi.data = data;
        ok = routes_commit_locked(kvm, errp);
    }
    pthread_mutex_unlock(&kvm->route_lock);
    return ok;
}

void kvm_msi_route_del(KvmVm *kvm, int gsi)
{
    struct kvm_irq_routing_entry *e;

    pthread_mutex_lock(&kvm->route_lock);
    e = route_find(kvm, gsi);
    if (e) {
        *e = kvm->routes[--kvm->nr_routes];
        routes_commit_locked(kvm, NULL);
    }
    pthread_mutex_unlock(&kvm->route_lock);
}

bool kvm_irqfd(KvmVm *kvm, int fd, int gsi, bool assign, GError **errp)
{
    struct kvm_irqfd irqfd = {
        .fd = fd,
        .gsi = gsi,
        .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
    };

    if (ioctl(kvm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
        error_setg_errno(errp, errno, "KVM_IRQFD (gsi %d)", gsi);
        return false;
    }
    return true;
}

bool kvm_irqfd_resample(KvmVm *kvm, int fd, int resample_fd, int gsi, bool assign,
                        GError **errp)
{
    struct kvm_irqfd irqfd = {
        .fd = fd,
        .gsi = gsi,
        .flags = assign ? KVM_IRQFD_FLAG_RESAMPLE : KVM_IRQFD_FLAG_DEASSIGN,
        .resamplefd = resample_fd,
    };

    if (ioctl(kvm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
        error_setg_errno(errp, errno, "KVM_IRQFD with resample (gsi %d)", gsi);
        return false;
    }
    return true;
}

bool kvm_ioeventfd(KvmVm *kvm, int fd, uint64_t addr, unsigned len, bool is_pio,
                   bool assign, GError **errp)
{
    struct kvm_ioeventfd ev = {
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = (is_pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };

    if (ioctl(kvm->vm_fd, KVM_IOEVENTFD, &ev) < 0) {
        error_setg_errno(errp, errno, "KVM_IOEVENTFD at 0x%" G_GINT64_MODIFIER "x", addr);
        return false;
    }
    return true;
}

bool kvm_signal_msi(KvmVm *kvm, uint64_t addr, uint32_t data, GError **errp)
{
    struct kvm_msi msi = {
        .address_lo = (uint32_t)addr,
        .address_hi = addr >> 32,
        .data = data,
    };

    if (ioctl(kvm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0) {
        error_setg_errno(errp, errno, "KVM_SIGNAL_MSI");
        return false;
    }
    return true;
}

bool kvm_vm_init(KvmVm *kvm, uint64_t tss_addr, GError **errp)
{
    static const struct {
        int cap;
        const char *name;
    } required[] = {
        { KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
        { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
        { KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
        { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
        { KVM_CAP_PIT2, "KVM_CAP_PIT2" },
        { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
        { KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
    };
    /* the dummy speaker port 0x61 gates PIT channel 2, which guests use
     * to calibrate the TSC */
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    int ret;

    memset(kvm, 0, sizeof(*kvm));
    kvm->vm_fd = -1;
    kvm->vfio_dev_fd = -1;
    kvm_vm_slots_init(kvm);
    kvm->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm->sys_fd < 0) {
        error_setg(errp, "this VMM needs KVM: could not access /dev/kvm: %s",
                   g_strerror(errno));
        return false;
    }
    ret = ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0);
    if (ret != KVM_API_VERSION) {
        error_setg(errp, "this VMM needs KVM API version %d, /dev/kvm has %d",
                   KVM_API_VERSION, ret);
        goto fail;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(required); i++) {
        if (!kvm_check_extension(kvm, required[i].cap)) {
            error_set_class(errp, ERROR_CLASS_KVM_MISSING_CAP,
                            "this VMM needs KVM capability %s, which this "
                            "kernel lacks",
                            required[i].name);
            goto fail;
        }
    }
    kvm->vcpu_mmap_size = ioctl(kvm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (kvm->vcpu_mmap_size <= 0) {
        error_setg_errno(errp, errno, "KVM_GET_VCPU_MMAP_SIZE failed");
        goto fail;
    }
    do {
        kvm->vm_fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);
    } while (kvm->vm_fd < 0 && errno == EINTR);
    if (kvm->vm_fd < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_VM failed");
        goto fail;
    }
    if (ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss_addr) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_TSS_ADDR failed");
        goto fail;
    }
    if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_IRQCHIP failed");
        goto fail;
    }
    if (ioctl(kvm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_PIT2 failed");
        goto fail;
    }
    if (!kvm_get_supported_cpuid(kvm, errp)) {
        goto fail;
    }
    kvm_routes_init_default(kvm);
    if (!routes_commit_locked(kvm, errp)) {
        goto fail;
    }
    return true;
fail:
    kvm_vm_destroy(kvm);
    return false;
}

void kvm_vm_destroy(KvmVm *kvm)
{
    /* (a KvmVm kvm_vm_init never saw has vm_fd -1 and no VFIO device) */
    if (kvm->vm_fd >= 0 && kvm->vfio_dev_fd >= 0) {
        close(kvm->vfio_dev_fd);
    }
    kvm->vfio_dev_fd = -1;
    if (kvm->vm_fd >= 0) {
        close(kvm->vm_fd);
    }
    if (kvm->sys_fd >= 0) {
        close(kvm->sys_fd);
    }
    kvm->vm_fd = kvm->sys_fd = -1;
    g_free(kvm->supported_cpuid);
    kvm->supported_cpuid = NULL;
    g_free(kvm->routes);
    kvm->routes = NULL;
    kvm->nr_routes = kvm->route_capacity = 0;
}

/* ---- memory slots [slot_lock] ---- */

void kvm_vm_slots_init(KvmVm *kvm)
{
    pthread_mutex_init(&kvm->slot_lock, NULL);
    kvm->nr_slots_used = 0;
    kvm->removable_slots = 0;
    kvm->slot_generation = 0;
}

static int slot_ioctl(KvmVm *kvm, unsigned long request, void *arg)
{
    return kvm->slot_ioctl ? kvm->slot_ioctl(kvm, request, arg)
                           : ioctl(kvm->vm_fd, request, arg);
}

/* The lowest slot id free again, or the next new one; -1: none left. */
static int kvm_vm_free_slot(KvmVm *kvm)
{
    for (int i = 0; i < kvm->nr_slots_used; i++) {
        if (!kvm->slots[i].memory_size) {
            return i;
        }
    }
    return kvm->nr_slots_used < (int)G_N_ELEMENTS(kvm->slots) ? kvm->nr_slots_used : -1;
}

static int kvm_vm_slot_add_locked(KvmVm *kvm, uint64_t gpa, uint64_t size, void *host,
                                  uint32_t flags, bool removable, GError **errp)
{
    int slot = kvm_vm_free_slot(kvm);
    struct kvm_userspace_memory_region region = {
        .slot = slot,
        .flags = flags,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uintptr_t)host,
    };

    if (slot < 0) {
        error_setg(errp, "no memory slot left for 0x%" G_GINT64_MODIFIER "x", gpa);
        return -1;
    }
    if (slot_ioctl(kvm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        error_setg_errno(errp, errno,
                         "KVM_SET_USER_MEMORY_REGION at 0x%" G_GINT64_MODIFIER "x failed",
                         gpa);
        return -1;
    }
    kvm->slots[slot] = region;
    if (slot == kvm->nr_slots_used) {
        kvm->nr_slots_used++;
    }
    if (removable) {
        kvm->removable_slots |= 1ULL << slot;
        kvm->slot_generation++;
    }
    return slot;
}

static bool kvm_vm_add_slot(KvmVm *kvm, uint64_t gpa, uint64_t size, void *host,
                            uint32_t flags, GError **errp)
{
    int slot;

    pthread_mutex_lock(&kvm->slot_lock);
    slot = kvm_vm_slot_add_locked(kvm, gpa, size, host, flags, false, errp);
    pthread_mutex_unlock(&kvm->slot_lock);
    return slot >= 0;
}

int kvm_vm_slot_add(KvmVm *kvm, uint64_t gpa, uint64_t size, void *host, GError **errp)
{
    int slot;

    pthread_mutex_lock(&kvm->slot_lock);
    slot = kvm_vm_slot_add_locked(kvm, gpa, size, host, 0, true, errp);
    pthread_mutex_unlock(&kvm->slot_lock);
    return slot;
}

void kvm_vm_slot_del(KvmVm *kvm, int slot)
{
    struct kvm_userspace_memory_region region;

    pthread_mutex_lock(&kvm->slot_lock);
    if (slot < 0 || slot >= kvm->nr_slots_used || !kvm->slots[slot].memory_size ||
        !(kvm->removable_slots & (1ULL << slot))) {
        pthread_mutex_unlock(&kvm->slot_lock);
        return;
    }
    region = kvm->slots[slot];
    region.memory_size = 0;
    if (slot_ioctl(kvm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        g_warning("removing memory slot %d failed: %s", slot, g_strerror(errno));
    }
    memset(&kvm->slots[slot], 0, sizeof(kvm->slots[slot]));
    kvm->removable_slots &= ~(1ULL << slot);
    kvm->slot_generation++;
    pthread_mutex_unlock(&kvm->slot_lock);
}

/* The RAM slot that starts at gpa (never a removable one). */
static struct kvm_userspace_memory_region *ram_slot_at(KvmVm *kvm, uint64_t gpa,
                                                       GError **errp)
{
    for (int i = 0; i < kvm->nr_slots_used; i++) {
        if (kvm->slots[i].guest_phys_addr == gpa && kvm->slots[i].memory_size &&
            !(kvm->removable_slots & (1ULL << i))) {
            return &kvm->slots[i];
        }
    }
    error_setg(errp, "no RAM memory slot at 0x%" G_GINT64_MODIFIER "x", gpa);
    return NULL;
}

bool kvm_dirty_log_enable(KvmVm *kvm, uint64_t gpa, bool on, GError **errp)
{
    struct kvm_userspace_memory_region *slot;
    struct kvm_userspace_memory_region changed;
    bool ok = false;

    pthread_mutex_lock(&kvm->slot_lock);
    slot = ram_slot_at(kvm, gpa, errp);
    if (slot) {
        changed = *slot;
        changed.flags = on ? changed.flags | KVM_MEM_LOG_DIRTY_PAGES
                           : changed.flags & ~KVM_MEM_LOG_DIRTY_PAGES;
        if (slot_ioctl(kvm, KVM_SET_USER_MEMORY_REGION, &changed) < 0) {
            error_setg_errno(errp, errno, "dirty logging on slot %u", changed.slot);
        } else {
            *slot = changed;
            ok = true;
        }
    }
    pthread_mutex_unlock(&kvm->slot_lock);
    return ok;
}

bool kvm_dirty_logging(KvmVm *kvm)
{
    bool on = false;

    pthread_mutex_lock(&kvm->slot_lock);
    for (int i = 0; i < kvm->nr_slots_used && !on; i++) {
        on = kvm->slots[i].memory_size && (kvm->slots[i].flags & KVM_MEM_LOG_DIRTY_PAGES);
    }
    pthread_mutex_unlock(&kvm->slot_lock);
    return on;
}

bool kvm_dirty_log_get(KvmVm *kvm, uint64_t gpa, uint64_t *bitmap, GError **errp)
{
    struct kvm_userspace_memory_region *slot;
    struct kvm_dirty_log log = { 0 };
    bool ok = false;

    pthread_mutex_lock(&kvm->slot_lock);
    slot = ram_slot_at(kvm, gpa, errp);
    if (slot) {
        log.slot = slot->slot;
        log.dirty_bitmap = bitmap;
        if (slot_ioctl(kvm, KVM_GET_DIRTY_LOG, &log) < 0) {
            error_setg_errno(errp, errno, "KVM_GET_DIRTY_LOG on slot %u", log.slot);
        } else {
            ok = true;
        }
    }
    pthread_mutex_unlock(&kvm->slot_lock);
    return ok;
}

bool kvm_vm_add_ram(KvmVm *kvm, uint64_t gpa, uint64_t size, void *host, GError **errp)
{
    return kvm_vm_add_slot(kvm, gpa, size, host, 0, errp);
}

bool kvm_vm_add_rom(KvmVm *kvm, uint64_t gpa, uint64_t size, void *host, GError **errp)
{
    uint32_t flags = kvm_check_extension(kvm, KVM_CAP_READONLY_MEM) ? KVM_MEM_READONLY
                                                                    : 0;

    return kvm_vm_add_slot(kvm, gpa, size, host, flags, errp);
}

void kvm_irq_line_set(void *opaque_kvm, int gsi, int level)
{
    KvmVm *kvm = opaque_kvm;
    struct kvm_irq_level irq = { .irq = gsi, .level = level };

    /* Can only fail for a bad gsi, which board wiring never produces. */
    if (ioctl(kvm->vm_fd, KVM_IRQ_LINE, &irq) < 0) {
        g_warning("KVM_IRQ_LINE %d failed: %s", gsi, g_strerror(errno));
    }
}

bool kvm_irqchip_capture(KvmVm *kvm, GError **errp)
{
    kvm->initial_pic[0].chip_id = KVM_IRQCHIP_PIC_MASTER;
    kvm->initial_pic[1].chip_id = KVM_IRQCHIP_PIC_SLAVE;
    kvm->initial_ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    if (ioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &kvm->initial_pic[0]) < 0 ||
        ioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &kvm->initial_pic[1]) < 0 ||
        ioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &kvm->initial_ioapic) < 0 ||
        ioctl(kvm->vm_fd, KVM_GET_PIT2, &kvm->initial_pit) < 0) {
        error_setg_errno(errp, errno, "reading the in-kernel irqchip state failed");
        return false;
    }
    return true;
}

bool kvm_irqchip_restore(KvmVm *kvm, GError **errp)
{
    if (ioctl(kvm->vm_fd, KVM_SET_IRQCHIP, &kvm->initial_pic[0]) < 0 ||
        ioctl(kvm->vm_fd, KVM_SET_IRQCHIP, &kvm->initial_pic[1]) < 0 ||
        ioctl(kvm->vm_fd, KVM_SET_IRQCHIP, &kvm->initial_ioapic) < 0 ||
        ioctl(kvm->vm_fd, KVM_SET_PIT2, &kvm->initial_pit) < 0) {
        error_setg_errno(errp, errno, "resetting the in-kernel irqchip failed");
        return false;
    }
    return true;
}
