/*
 * The CPUID table each vCPU sees: KVM's supported set, with the -smp
 * topology (APIC ids, leaves 1, 4, 0xB, 0x1F), the hypervisor bit, x2APIC
 * and the TSC-deadline timer, KVM's paravirtual leaves trimmed to what the
 * VMM saves and resets, and cache leaves that are either QEMU's fixed
 * legacy ones or, with host-cache-info=on, the host's own.  Pure apart
 * from reading KVM's table.
 */
#include <cpuid.h>
#include <string.h>

#include "cpuid.h"
#include "accel/kvm/kvm.h"
#include "util/error.h"

/* Bits needed to hold n distinct ids (0 for n <= 1). */
static unsigned bits_for(unsigned n)
{
    unsigned bits = 0;

    while ((1u << bits) < n) {
        bits++;
    }
    return bits;
}

unsigned cpu_apic_id(const SmpConfig *smp, unsigned index)
{
    unsigned thread_bits = bits_for(smp->threads);
    unsigned core_bits = bits_for(smp->cores);
    unsigned thread = index % smp->threads;
    unsigned core = (index / smp->threads) % smp->cores;
    unsigned socket = index / (smp->threads * smp->cores);

    return (socket << (core_bits + thread_bits)) | (core << thread_bits) | thread;
}

/*
 * QEMU's legacy cache description (used without host-cache-info):
 * L1d/L1i 32 KiB 8-way, L2 4 MiB 16-way, L3 16 MiB 16-way, 64-byte lines.
 */
static void legacy_cache_leaf4(unsigned sub, uint32_t *eax, uint32_t *ebx, uint32_t *ecx,
                               uint32_t *edx)
{
    static const struct {
        unsigned type, level, ways, sets;
        bool self_init, inclusive;
    } caches[] = {
        { 1, 1, 8, 64, true, false },    /* L1 data */
        { 2, 1, 8, 64, true, false },    /* L1 instruction */
        { 3, 2, 16, 4096, true, false }, /* L2 unified */
        { 3, 3, 16, 16384, true, true }, /* L3 unified */
    };

    *eax = *ebx = *ecx = *edx = 0;
    if (sub >= G_N_ELEMENTS(caches)) {
        return;
    }
    *eax = caches[sub].type | (caches[sub].level << 5) |
           (caches[sub].self_init ? 1u << 8 : 0);
    *ebx = (64 - 1) | ((caches[sub].ways - 1) << 22);
    *ecx = caches[sub].sets - 1;
    *edx = caches[sub].inclusive ? 1u << 1 : 0;
}

static void fix_leaf4_topology(const SmpConfig *smp, uint32_t *eax)
{
    unsigned level = (*eax >> 5) & 7;
    unsigned sharing = level >= 3 ? smp->cores * smp->threads : smp->threads;

    if ((*eax & 0x1f) == 0) {
        return; /* no cache: leave the terminator alone */
    }
    *eax &= 0x3fff;
    *eax |= ((1u << bits_for(smp->cores)) - 1) << 26;
    *eax |= ((1u << bits_for(sharing)) - 1) << 14;
}

static void fix_topology_leaf(const SmpConfig *smp, unsigned apic_id,
                              struct kvm_cpuid_entry2 *e)
{
    unsigned thread_bits = bits_for(smp->threads);
    unsigned core_bits = bits_for(smp->cores);

    e->edx = apic_id;
    switch (e->index) {
    case 0: /* SMT level */
        e->eax = thread_bits;
        e->ebx = smp->threads;
        e->ecx = 0 | (1u << 8);
        break;
    case 1: /* core level */
        e->eax = thread_bits + core_bits;
        e->ebx = smp->cores * smp->threads;
        e->ecx = 1 | (2u << 8);
        break;
    default:
        e->eax = e->ebx = 0;
        e->ecx = e->index;
        break;
    }
}

/* "KVMKVMKVM\0\0\0" in EBX, ECX, EDX, as KVM and QEMU spell it. */
static void set_kvm_signature(struct kvm_cpuid_entry2 *e)
{
    static const char sig[12] = "KVMKVMKVM\0\0";

    e->eax = KVM_CPUID_FEATURES; /* the highest paravirtual leaf */
    memcpy(&e->ebx, sig, 4);
    memcpy(&e->ecx, sig + 4, 4);
    memcpy(&e->edx, sig + 8, 4);
}

static void fix_leaf1(const CpuidOptions *opt, unsigned apic_id,
                      struct kvm_cpuid_entry2 *e)
{
    unsigned logical = opt->smp->cores * opt->smp->threads;

    e->ebx &= 0x0000ffff;
    e->ebx |= apic_id << 24;
    if (logical > 1) {
        e->ebx |= (1u << bits_for(logical)) << 16;
        e->edx |= 1u << 28; /* HTT: the package holds several CPUs */
    }
    e->ecx |= 1u << 31; /* running under a hypervisor */
    e->ecx |= 1u << 21; /* x2APIC, emulated by the in-kernel LAPIC */
    if (opt->tsc_deadline) {
        /* not in KVM's supported set: KVM_CAP_TSC_DEADLINE_TIMER says it */
        e->ecx |= 1u << 24;
    }
    if (opt->mwait) {
        e->ecx |= 1u << 3; /* MONITOR/MWAIT: the guest may idle in it */
    }
}

struct kvm_cpuid2 *cpuid_build_table(const struct kvm_cpuid2 *sup,
                                     const CpuidOptions *opt, unsigned apic_id)
{
    struct kvm_cpuid2 *c;

    c = g_malloc0(sizeof(*c) + (sup->nent + 8) * sizeof(struct kvm_cpuid_entry2));
    for (unsigned i = 0; i < sup->nent; i++) {
        struct kvm_cpuid_entry2 e = sup->entries[i];

        switch (e.function) {
        case 1:
            fix_leaf1(opt, apic_id, &e);
            break;
        case 4:
            if (!opt->host_cache_info) {
                legacy_cache_leaf4(e.index, &e.eax, &e.ebx, &e.ecx, &e.edx);
            } else {
                __cpuid_count(4, e.index, e.eax, e.ebx, e.ecx, e.edx);
            }
            fix_leaf4_topology(opt->smp, &e.eax);
            break;
        case 0xb:
        case 0x1f:
            fix_topology_leaf(opt->smp, apic_id, &e);
            break;
        case KVM_CPUID_SIGNATURE:
            set_kvm_signature(&e);
            break;
        case KVM_CPUID_FEATURES:
            e.eax &= CPUID_KVM_FEATURES_OFFERED;
            e.ebx = e.ecx = 0;
            e.edx = 0; /* no hints (KVM_HINTS_REALTIME), as QEMU's default */
            break;
        case 0x80000007:
            /*
             * Invariant TSC: QEMU's -cpu host leaves it out (it would make
             * the guest prefer a TSC whose rate changes on migration).
             */
            e.edx &= ~(1u << 8);
            break;
        default:
            break;
        }
        c->entries[c->nent++] = e;
    }
    return c;
}

static const uint32_t pv_msrs[] = {
    MSR_KVM_SYSTEM_TIME,     MSR_KVM_WALL_CLOCK,     /* kvmclock */
    MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_WALL_CLOCK_NEW, /* kvmclock2 */
    MSR_KVM_ASYNC_PF_EN,     MSR_KVM_ASYNC_PF_INT,   /* async PF */
    MSR_KVM_STEAL_TIME,      MSR_KVM_PV_EOI_EN,
    MSR_KVM_POLL_CONTROL,    MSR_IA32_TSC_DEADLINE,
};

const uint32_t *cpuid_pv_msrs(size_t *count)
{
    *count = G_N_ELEMENTS(pv_msrs);
    return pv_msrs;
}
