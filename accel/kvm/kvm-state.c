/*
 * Save and restore of KVM vCPU and VM state as tagged records (tag, length,
 * the kernel structure).  A load first walks the whole blob checking every
 * tag and length, then applies.  vCPUs are paused; main thread only.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "cpuid.h"
#include "accel/kvm/kvm.h"
#include "accel/kvm/kvm-state.h"
#include "util/error.h"

enum {
    TAG_REGS = 1,
    TAG_SREGS,
    TAG_XSAVE,
    TAG_XCRS,
    TAG_MSRS,
    TAG_LAPIC,
    TAG_EVENTS,
    TAG_MP_STATE,
    TAG_DEBUGREGS,
    TAG_FPU,
    TAG_PIC_MASTER = 32,
    TAG_PIC_SLAVE,
    TAG_IOAPIC,
    TAG_PIT,
    TAG_CLOCK,
};

#define MAX_MSRS 512

typedef struct Record {
    uint32_t tag;
    uint32_t len;
    const uint8_t *data;
} Record;

static void put_record(GByteArray *out, uint32_t tag, const void *data, uint32_t len)
{
    uint32_t hdr[2] = { GUINT32_TO_LE(tag), GUINT32_TO_LE(len) };

    g_byte_array_append(out, (guint8 *)hdr, sizeof(hdr));
    g_byte_array_append(out, data, len);
}

/* Split a blob into records; false if any header or length is off. */
static GArray *parse_records(const uint8_t *buf, size_t len, GError **errp)
{
    GArray *recs = g_array_new(FALSE, FALSE, sizeof(Record));
    size_t pos = 0;

    while (pos < len) {
        uint32_t hdr[2];
        Record r;

        if (len - pos < sizeof(hdr)) {
            goto bad;
        }
        memcpy(hdr, buf + pos, sizeof(hdr));
        r.tag = GUINT32_FROM_LE(hdr[0]);
        r.len = GUINT32_FROM_LE(hdr[1]);
        pos += sizeof(hdr);
        if (r.len > len - pos) {
            goto bad;
        }
        r.data = buf + pos;
        pos += r.len;
        g_array_append_val(recs, r);
    }
    return recs;
bad:
    error_setg(errp, "KVM state: truncated or malformed record at byte %zu", pos);
    g_array_free(recs, TRUE);
    return NULL;
}

static const Record *find_record(GArray *recs, uint32_t tag)
{
    for (guint i = 0; i < recs->len; i++) {
        if (g_array_index(recs, Record, i).tag == tag) {
            return &g_array_index(recs, Record, i);
        }
    }
    return NULL;
}

/* MSRs KVM lets us read, found once by trial (some listed ones fail). */
static struct kvm_msrs *readable_msrs(VCpu *cpu)
{
    static struct kvm_msrs *cached;
    struct kvm_msr_list *list;
    struct kvm_msrs *msrs;
    unsigned n = 0;

    if (cached) {
        return cached;
    }
    list = g_malloc0(sizeof(*list) + MAX_MSRS * sizeof(uint32_t));
    list->nmsrs = MAX_MSRS;
    msrs = g_malloc0(sizeof(*msrs) + MAX_MSRS * sizeof(struct kvm_msr_entry));
    if (ioctl(cpu->kvm->sys_fd, KVM_GET_MSR_INDEX_LIST, list) == 0) {
        for (unsigned i = 0; i < list->nmsrs; i++) {
            struct {
                struct kvm_msrs h;
                struct kvm_msr_entry e;
            } one = { .h.nmsrs = 1, .e.index = list->indices[i] };
            if (ioctl(cpu->fd, KVM_GET_MSRS, &one) == 1) {
                msrs->entries[n++].index = list->indices[i];
            }
        }
    }
    msrs->nmsrs = n;
    g_free(list);
    cached = msrs;
    return cached;
}

static bool vcpu_get(VCpu *cpu, unsigned long req, void *buf, const char *what,
                     GError **errp)
{
    if (ioctl(cpu->fd, req, buf) < 0) {
        error_setg_errno(errp, errno, "vCPU %u: %s", cpu->index, what);
        return false;
    }
    return true;
}

bool vcpu_state_save(VCpu *cpu, GByteArray *out, GError **errp)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_xsave xsave;
    struct kvm_xcrs xcrs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp;
    struct kvm_debugregs dbg;
    struct kvm_msrs *tmpl = readable_msrs(cpu);
    size_t msr_size = sizeof(*tmpl) + tmpl->nmsrs * sizeof(struct kvm_msr_entry);
    struct kvm_msrs *msrs = g_memdup2(tmpl, msr_size);
    bool ok = false;
    int n;

    if (!vcpu_get(cpu, KVM_GET_REGS, &regs, "KVM_GET_REGS", errp) ||
        !vcpu_get(cpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS", errp) ||
        !vcpu_get(cpu, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC", errp) ||
        !vcpu_get(cpu, KVM_GET_VCPU_EVENTS, &events, "KVM_GET_VCPU_EVENTS", errp) ||
        !vcpu_get(cpu, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE", errp)) {
        goto out;
    }
    put_record(out, TAG_REGS, &regs, sizeof(regs));
    put_record(out, TAG_SREGS, &sregs, sizeof(sregs));
    if (ioctl(cpu->fd, KVM_GET_XSAVE, &xsave) == 0) {
        put_record(out, TAG_XSAVE, &xsave, sizeof(xsave));
    } else {
        struct kvm_fpu fpu;
        if (!vcpu_get(cpu, KVM_GET_FPU, &fpu, "KVM_GET_FPU", errp)) {
            goto out;
        }
        put_record(out, TAG_FPU, &fpu, sizeof(fpu));
    }
    if (ioctl(cpu->fd, KVM_GET_XCRS, &xcrs) == 0) {
        put_record(out, TAG_XCRS, &xcrs, sizeof(xcrs));
    }
    n = ioctl(cpu->fd, KVM_GET_MSRS, msrs);
    if (n < 0 || (unsigned)n != msrs->nmsrs) {
        error_setg(errp, "vCPU %u: KVM_GET_MSRS read %d of %u", cpu->index, n,
                   msrs->nmsrs);
        goto out;
    }
    put_record(out, TAG_MSRS, msrs, msr_size);
    put_record(out, TAG_LAPIC, &lapic, sizeof(lapic));
    put_record(out, TAG_EVENTS, &events, sizeof(events));
    put_record(out, TAG_MP_STATE, &mp, sizeof(mp));
    if (ioctl(cpu->fd, KVM_GET_DEBUGREGS, &dbg) == 0) {
        put_record(out, TAG_DEBUGREGS, &dbg, sizeof(dbg));
    }
    ok = true;
out:
    g_free(msrs);
    return ok;
}

/* A fixed-size record must be present (when required) with exactly size bytes. */
static bool check_fixed(GArray *recs, uint32_t tag, size_t size, bool required,
                        const char *what, GError **errp)
{
    const Record *r = find_record(recs, tag);

    if (!r) {
        if (required) {
            error_setg(errp, "KVM state: %s missing", what);
        }
        return !required;
    }
    if (r->len != size) {
        error_setg(errp, "KVM state: %s is %u bytes, this host's is %zu", what, r->len,
                   size);
        return false;
    }
    return true;
}

static bool check_vcpu_records(GArray *recs, GError **errp)
{
    const Record *msrs = find_record(recs, TAG_MSRS);
    struct kvm_msrs hdr;

    if (!check_fixed(recs, TAG_REGS, sizeof(struct kvm_regs), true, "registers", errp) ||
        !check_fixed(recs, TAG_SREGS, sizeof(struct kvm_sregs), true, "segments", errp) ||
        !check_fixed(recs, TAG_LAPIC, sizeof(struct kvm_lapic_state), true, "LAPIC",
                     errp) ||
        !check_fixed(recs, TAG_EVENTS, sizeof(struct kvm_vcpu_events), true, "events",
                     errp) ||
        !check_fixed(recs, TAG_MP_STATE, sizeof(struct kvm_mp_state), true, "MP state",
                     errp) ||
        !check_fixed(recs, TAG_XSAVE, sizeof(struct kvm_xsave), false, "XSAVE", errp) ||
        !check_fixed(recs, TAG_FPU, sizeof(struct kvm_fpu), false, "FPU", errp) ||
        !check_fixed(recs, TAG_XCRS, sizeof(struct kvm_xcrs), false, "XCRs", errp) ||
        !check_fixed(recs, TAG_DEBUGREGS, sizeof(struct kvm_debugregs), false,
                     "debug registers", errp)) {
        return false;
    }
    if (!find_record(recs, TAG_XSAVE) && !find_record(recs, TAG_FPU)) {
        error_setg(errp, "KVM state: FPU state missing");
        return false;
    }
    if (!msrs || msrs->len < sizeof(hdr)) {
        error_setg(errp, "KVM state: MSRs missing");
        return false;
    }
    memcpy(&hdr, msrs->data, sizeof(hdr));
    if (hdr.nmsrs > MAX_MSRS ||
        msrs->len != sizeof(hdr) + hdr.nmsrs * sizeof(struct kvm_msr_entry)) {
        error_setg(errp, "KVM state: MSR record malformed");
        return false;
    }
    return true;
}

static bool vcpu_set(VCpu *cpu, GArray *recs, uint32_t tag, unsigned long req,
                     const char *what, GError **errp)
{
    const Record *r = find_record(recs, tag);
    void *copy;
    bool ok;

    if (!r) {
        return true;
    }
    copy = g_memdup2(r->data, r->len); /* aligned for the kernel */
    ok = ioctl(cpu->fd, req, copy) >= 0;
    if (!ok) {
        error_setg_errno(errp, errno, "vCPU %u: %s", cpu->index, what);
    }
    g_free(copy);
    return ok;
}

/*
 * KVM ignores a TSC deadline written while the LAPIC timer is not in
 * TSC-deadline mode, and KVM_SET_LAPIC entering that mode clears it: write
 * the saved deadline again once the LAPIC and the TSC (an MSR) are back,
 * or a guest idling on its deadline timer never wakes on the destination.
 */
static bool vcpu_set_tsc_deadline(VCpu *cpu, GArray *recs, GError **errp)
{
    const Record *r = find_record(recs, TAG_MSRS);
    struct kvm_msrs hdr;

    memcpy(&hdr, r->data, sizeof(hdr));
    for (uint32_t i = 0; i < hdr.nmsrs; i++) {
        struct {
            struct kvm_msrs hdr;
            struct kvm_msr_entry entry;
        } one = { .hdr.nmsrs = 1 };

        memcpy(&one.entry, r->data + sizeof(hdr) + i * sizeof(one.entry),
               sizeof(one.entry));
        if (one.entry.index != MSR_IA32_TSC_DEADLINE) {
            continue;
        }
        if (ioctl(cpu->fd, KVM_SET_MSRS, &one) != 1) {
            error_setg(errp, "vCPU %u: restoring the TSC deadline failed", cpu->index);
            return false;
        }
    }
    return true;
}

/*
 * Pending events.  KVM_GET_VCPU_EVENTS does not flag its NMI-pending count
 * and SIPI vector as valid, so KVM_SET_VCPU_EVENTS would drop them (an NMI
 * raised just before the switch, an AP's SIPI not yet taken): say they are.
 */
static bool vcpu_set_events(VCpu *cpu, GArray *recs, GError **errp)
{
    const Record *r = find_record(recs, TAG_EVENTS);
    struct kvm_vcpu_events events;

    memcpy(&events, r->data, sizeof(events));
    events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    if (ioctl(cpu->fd, KVM_SET_VCPU_EVENTS, &events) < 0) {
        error_setg_errno(errp, errno, "vCPU %u: KVM_SET_VCPU_EVENTS", cpu->index);
        return false;
    }
    return true;
}

/* Parse and check a blob without applying it (the loader's first pass). */
static bool check_blob(const uint8_t *buf, size_t len,
                       bool (*check)(GArray *recs, GError **errp), GError **errp)
{
    GArray *recs = parse_records(buf, len, errp);
    bool ok = recs && check(recs, errp);

    if (recs) {
        g_array_free(recs, TRUE);
    }
    return ok;
}

bool vcpu_state_check(const uint8_t *buf, size_t len, GError **errp)
{
    return check_blob(buf, len, check_vcpu_records, errp);
}

bool vcpu_state_load(VCpu *cpu, const uint8_t *buf, size_t len, GError **errp)
{
    GArray *recs = parse_records(buf, len, errp);
    bool ok;

    if (!recs) {
        return false;
    }
    /*
     * order matters: sregs (modes, APIC base) before regs, MSRs before the
     * LAPIC, the TSC deadline after both
     */
    ok = check_vcpu_records(recs, errp) &&
         vcpu_set(cpu, recs, TAG_SREGS, KVM_SET_SREGS, "KVM_SET_SREGS", errp) &&
         vcpu_set(cpu, recs, TAG_REGS, KVM_SET_REGS, "KVM_SET_REGS", errp) &&
         vcpu_set(cpu, recs, TAG_XCRS, KVM_SET_XCRS, "KVM_SET_XCRS", errp) &&
         vcpu_set(cpu, recs, TAG_XSAVE, KVM_SET_XSAVE, "KVM_SET_XSAVE", errp) &&
         vcpu_set(cpu, recs, TAG_FPU, KVM_SET_FPU, "KVM_SET_FPU", errp) &&
         vcpu_set(cpu, recs, TAG_MSRS, KVM_SET_MSRS, "KVM_SET_MSRS", errp) &&
         vcpu_set(cpu, recs, TAG_MP_STATE, KVM_SET_MP_STATE, "KVM_SET_MP_STATE", errp) &&
         vcpu_set(cpu, recs, TAG_LAPIC, KVM_SET_LAPIC, "KVM_SET_LAPIC", errp) &&
         vcpu_set_tsc_deadline(cpu, recs, errp) && vcpu_set_events(cpu, recs, errp) &&
         vcpu_set(cpu, recs, TAG_DEBUGREGS, KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", errp);
    g_array_free(recs, TRUE);
    return ok;
}

bool kvm_vm_state_save(KvmVm *kvm, GByteArray *out, GError **errp)
{
    struct kvm_irqchip chips[3] = {
        { .chip_id = KVM_IRQCHIP_PIC_MASTER },
        { .chip_id = KVM_IRQCHIP_PIC_SLAVE },
        { .chip_id = KVM_IRQCHIP_IOAPIC },
    };
    struct kvm_pit_state2 pit;
    struct kvm_clock_data clock = { 0 };

    for (int i = 0; i < 3; i++) {
        if (ioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &chips[i]) < 0) {
            error_setg_errno(errp, errno, "KVM_GET_IRQCHIP");
            return false;
        }
        put_record(out, TAG_PIC_MASTER + i, &chips[i], sizeof(chips[i]));
    }
    if (ioctl(kvm->vm_fd, KVM_GET_PIT2, &pit) < 0) {
        error_setg_errno(errp, errno, "KVM_GET_PIT2");
        return false;
    }
    put_record(out, TAG_PIT, &pit, sizeof(pit));
    if (kvm->stopped_clock_valid) {
        /* the guest's time when it stopped, not the time of this save */
        put_record(out, TAG_CLOCK, &kvm->stopped_clock, sizeof(kvm->stopped_clock));
    } else if (ioctl(kvm->vm_fd, KVM_GET_CLOCK, &clock) == 0) {
        put_record(out, TAG_CLOCK, &clock, sizeof(clock));
    }
    return true;
}

static bool check_vm_records(GArray *recs, GError **errp)
{
    for (int i = 0; i < 3; i++) {
        struct kvm_irqchip chip;
        if (!check_fixed(recs, TAG_PIC_MASTER + i, sizeof(chip), true, "irqchip", errp)) {
            return false;
        }
        memcpy(&chip, find_record(recs, TAG_PIC_MASTER + i)->data, sizeof(chip));
        if (chip.chip_id != (uint32_t)i) {
            error_setg(errp, "KVM state: irqchip record %d names chip %u", i,
                       chip.chip_id);
            return false;
        }
    }
    return check_fixed(recs, TAG_PIT, sizeof(struct kvm_pit_state2), true, "PIT", errp) &&
           check_fixed(recs, TAG_CLOCK, sizeof(struct kvm_clock_data), false, "clock",
                       errp);
}

bool kvm_vm_state_check(const uint8_t *buf, size_t len, GError **errp)
{
    return check_blob(buf, len, check_vm_records, errp);
}

bool kvm_vm_state_load(KvmVm *kvm, const uint8_t *buf, size_t len, GError **errp)
{
    GArray *recs = parse_records(buf, len, errp);
    const Record *r;
    bool ok = recs && check_vm_records(recs, errp);

    for (int i = 0; ok && i < 3; i++) {
        struct kvm_irqchip chip;
        memcpy(&chip, find_record(recs, TAG_PIC_MASTER + i)->data, sizeof(chip));
        if (ioctl(kvm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0) {
            error_setg_errno(errp, errno, "KVM_SET_IRQCHIP");
            ok = false;
        }
    }
    if (ok) {
        struct kvm_pit_state2 pit;
        memcpy(&pit, find_record(recs, TAG_PIT)->data, sizeof(pit));
        if (ioctl(kvm->vm_fd, KVM_SET_PIT2, &pit) < 0) {
            error_setg_errno(errp, errno, "KVM_SET_PIT2");
            ok = false;
        }
    }
    if (ok && (r = find_record(recs, TAG_CLOCK))) {
        struct kvm_clock_data clock;
        memcpy(&clock, r->data, sizeof(clock));
        clock.flags = 0;
        if (ioctl(kvm->vm_fd, KVM_SET_CLOCK, &clock) < 0) {
            error_setg_errno(errp, errno, "KVM_SET_CLOCK");
            ok = false;
        } else {
            /* set again when the guest runs: the wait is not its time */
            kvm->stopped_clock = clock;
            kvm->stopped_clock_valid = true;
        }
    }
    if (recs) {
        g_array_free(recs, TRUE);
    }
    return ok;
}

void kvm_clock_stop(KvmVm *kvm)
{
    if (kvm->stopped_clock_valid) {
        return; /* stopped already: that value stands */
    }
    memset(&kvm->stopped_clock, 0, sizeof(kvm->stopped_clock));
    kvm->stopped_clock_valid = ioctl(kvm->vm_fd, KVM_GET_CLOCK, &kvm->stopped_clock) == 0;
}

bool kvm_clock_resume(KvmVm *kvm, VCpu *const *vcpus, unsigned nr_vcpus, GError **errp)
{
    struct kvm_clock_data clock = { 0 };

    if (!kvm->stopped_clock_valid) {
        return true;
    }
    kvm->stopped_clock_valid = false;
    clock.clock = kvm->stopped_clock.clock;
    if (ioctl(kvm->vm_fd, KVM_SET_CLOCK, &clock) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_CLOCK");
        return false;
    }
    if (!kvm_check_extension(kvm, KVM_CAP_KVMCLOCK_CTRL)) {
        return true;
    }
    for (unsigned i = 0; i < nr_vcpus; i++) {
        /* EINVAL: this vCPU's guest has not turned its kvmclock on */
        if (ioctl(vcpus[i]->fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL) {
            error_setg_errno(errp, errno, "KVM_KVMCLOCK_CTRL on vCPU %u", i);
            return false;
        }
    }
    return true;
}
