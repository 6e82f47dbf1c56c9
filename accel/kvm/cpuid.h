/*
 * The CPUID table each vCPU sees (what `-cpu host` offers, as QEMU 7.2
 * does), and the paravirtual MSRs that come with the KVM features offered.
 * Internal to accel/kvm; pure functions, no locking.
 */
#ifndef ACCEL_KVM_CPUID_H
#define ACCEL_KVM_CPUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>
#include <asm/kvm_para.h>

#include "system/config.h"

#define MSR_IA32_TSC_DEADLINE 0x6e0

/*
 * KVM paravirtual features (CPUID 0x40000001 EAX) offered when KVM reports
 * them, the set QEMU 7.2's -cpu host enables with an in-kernel irqchip.
 * Each is handled inside KVM; the VMM's part is to save, restore and reset
 * the MSRs they add (cpuid_pv_msrs).  Left out: MMU_OP (gone from KVM),
 * MSI_EXT_DEST_ID (needs a userspace IOAPIC taking 15-bit destinations),
 * HC_MAP_GPA_RANGE (a hypercall that exits to userspace) and
 * MIGRATION_CONTROL (SEV only).
 */
#define CPUID_KVM_FEATURES_OFFERED                                                       \
    ((1u << KVM_FEATURE_CLOCKSOURCE) | (1u << KVM_FEATURE_NOP_IO_DELAY) |                \
     (1u << KVM_FEATURE_CLOCKSOURCE2) | (1u << KVM_FEATURE_ASYNC_PF) |                   \
     (1u << KVM_FEATURE_STEAL_TIME) | (1u << KVM_FEATURE_PV_EOI) |                       \
     (1u << KVM_FEATURE_PV_UNHALT) | (1u << KVM_FEATURE_PV_TLB_FLUSH) |                  \
     (1u << KVM_FEATURE_ASYNC_PF_VMEXIT) | (1u << KVM_FEATURE_PV_SEND_IPI) |             \
     (1u << KVM_FEATURE_POLL_CONTROL) | (1u << KVM_FEATURE_PV_SCHED_YIELD) |             \
     (1u << KVM_FEATURE_ASYNC_PF_INT) | (1u << KVM_FEATURE_CLOCKSOURCE_STABLE_BIT))

/* What the table depends on besides KVM's supported set. */
typedef struct CpuidOptions {
    const SmpConfig *smp;
    bool host_cache_info; /* leaf 4 from the host, not QEMU's legacy caches */
    bool tsc_deadline;    /* KVM_CAP_TSC_DEADLINE_TIMER (in-kernel LAPIC) */
    bool mwait;           /* MWAIT exits disabled: offer MONITOR/MWAIT */
} CpuidOptions;

/*
 * The table vCPU apic_id sees, built from KVM's supported set (caller
 * frees it with g_free).  Leaves KVM does not report are not invented.
 */
struct kvm_cpuid2 *cpuid_build_table(const struct kvm_cpuid2 *supported,
                                     const CpuidOptions *opt, unsigned apic_id);

/*
 * Guest-writable MSRs of the offered paravirtual features and of the
 * TSC-deadline timer: KVM lists them in KVM_GET_MSR_INDEX_LIST, so
 * migration carries them; a reset must put them back to their power-on
 * values, after the LAPIC (a TSC deadline only holds in deadline mode), or
 * KVM keeps writing the old kernel's kvmclock and steal-time areas.
 */
const uint32_t *cpuid_pv_msrs(size_t *count);

#endif
