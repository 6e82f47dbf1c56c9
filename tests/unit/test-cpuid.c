/*
 * CPUID: what a guest sees from `-cpu host` on a synthetic KVM supported
 * set (the timer and x2APIC bits a Linux guest needs, the KVM paravirtual
 * leaves, topology), and the paravirtual MSRs a reset must restore.
 */
#include <glib.h>
#include <linux/kvm.h>

#include "accel/kvm/cpuid.h"
#include "unit.h"

#define LEAF1_ECX_X2APIC       (1u << 21)
#define LEAF1_ECX_TSC_DEADLINE (1u << 24)
#define LEAF1_ECX_HYPERVISOR   (1u << 31)
#define LEAF1_ECX_MONITOR      (1u << 3)

/* A supported set shaped like KVM's: leaf 1, 0xB, the KVM leaves, 0x80000007. */
static struct kvm_cpuid2 *fake_supported(bool with_kvm_leaves, uint32_t kvm_features)
{
    struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + 8 * sizeof(struct kvm_cpuid_entry2));
    struct kvm_cpuid_entry2 *e = c->entries;

    e[c->nent++] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xb };
    e[c->nent++] = (struct kvm_cpuid_entry2){
        .function = 1,
        .eax = 0x00a10f11,
        .ebx = 0x01020800,
        .ecx = 0x00002000,
        .edx = 0x078bfbff
    }; /* no x2APIC, no deadline */
    e[c->nent++] = (struct kvm_cpuid_entry2){ .function = 0xb,
                                              .index = 0,
                                              .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
    e[c->nent++] = (struct kvm_cpuid_entry2){ .function = 0xb,
                                              .index = 1,
                                              .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
    if (with_kvm_leaves) {
        e[c->nent++] = (struct kvm_cpuid_entry2){ .function = KVM_CPUID_SIGNATURE,
                                                  .eax = KVM_CPUID_FEATURES,
                                                  .ebx = 0x4b4d564b,
                                                  .ecx = 0x564b4d56,
                                                  .edx = 0x4d };
        e[c->nent++] = (struct kvm_cpuid_entry2){ .function = KVM_CPUID_FEATURES,
                                                  .eax = kvm_features,
                                                  .edx = ~0u };
    }
    e[c->nent++] = (struct kvm_cpuid_entry2){ .function = 0x80000007, .edx = 1u << 8 };
    return c;
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid2 *c, uint32_t fn,
                                           uint32_t index)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        if (c->entries[i].function == fn && c->entries[i].index == index) {
            return &c->entries[i];
        }
    }
    return NULL;
}

static SmpConfig smp_2x1 = {
    .cpus = 2, .sockets = 1, .dies = 1, .cores = 2, .threads = 1, .maxcpus = 2
};

UNIT_TEST(linux_timer_bits_are_offered)
{
    /* without TSC-deadline Linux calibrates the LAPIC timer and may give up */
    struct kvm_cpuid2 *sup = fake_supported(true, 0);
    CpuidOptions opt = { .smp = &smp_2x1, .tsc_deadline = true };
    struct kvm_cpuid2 *c = cpuid_build_table(sup, &opt, 1);
    const struct kvm_cpuid_entry2 *l1 = find(c, 1, 0);

    CHECK(l1 != NULL);
    CHECK(l1->ecx & LEAF1_ECX_TSC_DEADLINE);
    CHECK(l1->ecx & LEAF1_ECX_X2APIC);
    CHECK(l1->ecx & LEAF1_ECX_HYPERVISOR);
    CHECK(!(l1->ecx & LEAF1_ECX_MONITOR));
    CHECK_EQ(l1->ebx >> 24, 1); /* initial APIC id */
    g_free(c);

    opt.tsc_deadline = false; /* KVM without the capability */
    c = cpuid_build_table(sup, &opt, 0);
    CHECK(!(find(c, 1, 0)->ecx & LEAF1_ECX_TSC_DEADLINE));
    g_free(c);

    opt.mwait = true; /* MWAIT exits disabled (DID) */
    c = cpuid_build_table(sup, &opt, 0);
    CHECK(find(c, 1, 0)->ecx & LEAF1_ECX_MONITOR);
    g_free(c);
    g_free(sup);
}

UNIT_TEST(kvm_signature_and_features)
{
    struct kvm_cpuid2 *sup = fake_supported(true, ~0u);
    CpuidOptions opt = { .smp = &smp_2x1, .tsc_deadline = true };
    struct kvm_cpuid2 *c = cpuid_build_table(sup, &opt, 0);
    const struct kvm_cpuid_entry2 *sig = find(c, KVM_CPUID_SIGNATURE, 0);
    const struct kvm_cpuid_entry2 *feat = find(c, KVM_CPUID_FEATURES, 0);
    char name[13] = { 0 };

    CHECK(sig != NULL && feat != NULL);
    CHECK_EQ(sig->eax, KVM_CPUID_FEATURES);
    memcpy(name, &sig->ebx, 4);
    memcpy(name + 4, &sig->ecx, 4);
    memcpy(name + 8, &sig->edx, 4);
    CHECK_STR(name, "KVMKVMKVM");
    CHECK(memcmp(name + 9, "\0\0\0", 3) == 0);
    /* everything KVM offers that the VMM keeps across migration and reset */
    CHECK_EQ(feat->eax, CPUID_KVM_FEATURES_OFFERED);
    CHECK(feat->eax & (1u << KVM_FEATURE_CLOCKSOURCE2));
    CHECK(feat->eax & (1u << KVM_FEATURE_CLOCKSOURCE_STABLE_BIT));
    CHECK(feat->eax & (1u << KVM_FEATURE_PV_EOI));
    CHECK(feat->eax & (1u << KVM_FEATURE_STEAL_TIME));
    CHECK(feat->eax & (1u << KVM_FEATURE_ASYNC_PF_INT));
    /* ...and nothing it cannot back */
    CHECK(!(feat->eax & (1u << KVM_FEATURE_MSI_EXT_DEST_ID)));
    CHECK(!(feat->eax & (1u << KVM_FEATURE_HC_MAP_GPA_RANGE)));
    CHECK(!(feat->eax & (1u << KVM_FEATURE_MIGRATION_CONTROL)));
    CHECK(!(feat->eax & (1u << KVM_FEATURE_MMU_OP)));
    CHECK_EQ(feat->edx, 0); /* no KVM_HINTS_REALTIME */
    /* no invariant TSC, as QEMU's -cpu host: it does not survive migration */
    CHECK_EQ(find(c, 0x80000007, 0)->edx & (1u << 8), 0);
    g_free(c);
    g_free(sup);
}

UNIT_TEST(kvm_features_only_where_kvm_has_them)
{
    struct kvm_cpuid2 *sup = fake_supported(true, 1u << KVM_FEATURE_CLOCKSOURCE2);
    CpuidOptions opt = { .smp = &smp_2x1 };
    struct kvm_cpuid2 *c = cpuid_build_table(sup, &opt, 0);

    CHECK_EQ(find(c, KVM_CPUID_FEATURES, 0)->eax, 1u << KVM_FEATURE_CLOCKSOURCE2);
    g_free(c);
    g_free(sup);

    sup = fake_supported(false, 0); /* a KVM without the leaves */
    c = cpuid_build_table(sup, &opt, 0);
    CHECK(find(c, KVM_CPUID_SIGNATURE, 0) == NULL);
    CHECK(find(c, KVM_CPUID_FEATURES, 0) == NULL);
    CHECK_EQ(c->nent, sup->nent);
    g_free(c);
    g_free(sup);
}

UNIT_TEST(topology_leaf_names_the_vcpu)
{
    SmpConfig smp = {
        .cpus = 8, .sockets = 2, .dies = 1, .cores = 2, .threads = 2, .maxcpus = 8
    };
    struct kvm_cpuid2 *sup = fake_supported(true, 0);
    CpuidOptions opt = { .smp = &smp };
    struct kvm_cpuid2 *c = cpuid_build_table(sup, &opt, 5);
    const struct kvm_cpuid_entry2 *smt = find(c, 0xb, 0), *core = find(c, 0xb, 1);

    CHECK_EQ(smt->edx, 5);
    CHECK_EQ(smt->eax, 1);                               /* shift to the core id */
    CHECK_EQ(smt->ebx, 2);                               /* threads per core */
    CHECK_EQ(core->eax, 2);                              /* shift to the package id */
    CHECK_EQ(core->ebx, 4);                              /* logical CPUs per package */
    CHECK_EQ(find(c, 1, 0)->edx & (1u << 28), 1u << 28); /* HTT */
    g_free(c);
    g_free(sup);
}

UNIT_TEST(reset_restores_every_paravirtual_msr)
{
    /*
     * A guest reset (or a reboot that skips the kernel's clean-up) must not
     * leave KVM writing kvmclock, steal time or PV EOI into the new
     * kernel's memory, nor an old TSC deadline armed.
     */
    static const uint32_t needed[] = {
        MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_WALL_CLOCK_NEW, MSR_KVM_SYSTEM_TIME,
        MSR_KVM_WALL_CLOCK,      MSR_KVM_ASYNC_PF_EN,    MSR_KVM_ASYNC_PF_INT,
        MSR_KVM_STEAL_TIME,      MSR_KVM_PV_EOI_EN,      MSR_KVM_POLL_CONTROL,
        MSR_IA32_TSC_DEADLINE,
    };
    size_t count;
    const uint32_t *msrs = cpuid_pv_msrs(&count);

    for (size_t i = 0; i < G_N_ELEMENTS(needed); i++) {
        bool found = false;
        for (size_t j = 0; j < count; j++) {
            found |= msrs[j] == needed[i];
        }
        if (!found) {
            fprintf(stderr, "MSR %#x missing from the reset list\n", needed[i]);
        }
        CHECK(found);
    }
}

UNIT_MAIN()
