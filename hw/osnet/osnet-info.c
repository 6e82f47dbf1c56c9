/*
 * What the monitor shows of osnet: DID's state, a vCPU's exit counters and
 * rates, the VM's KVM statistics, as typed records (hw/osnet-info.h).
 * Main thread only.
 */
#include "hw/osnet-info.h"

/* Does the host's KVM post interrupts to running vCPUs (APICv / AVIC)? */
static bool posted_interrupts_available(void)
{
    static const char *const params[] = {
        "/sys/module/kvm_intel/parameters/enable_apicv",
        "/sys/module/kvm_amd/parameters/avic",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(params); i++) {
        gchar *text = NULL;
        bool on = false;
        if (g_file_get_contents(params[i], &text, NULL, NULL)) {
            on = text[0] == 'Y' || text[0] == '1';
        }
        g_free(text);
        if (on) {
            return true;
        }
    }
    return false;
}

void osnet_query_did(const OsnetState *os, OsnetDidInfo *info)
{
    const OsnetDid *did = &os->did;

    *info = (OsnetDidInfo){
        .kernel_extension = os->kernel_extension,
        .active = did->active,
        .did_at_start = did->requested,
        .exits_disabled = did->exits_disabled,
        .exits_supported = did->exits_supported,
        .halt_poll_ns = did->halt_poll_ns,
        .posted_interrupts = posted_interrupts_available(),
        .cpumap_in_kernel = os->cpumap_in_kernel,
        .reason = did->reason,
    };
}

bool osnet_vcpu_exits(OsnetState *os, unsigned index, OsnetExitCounts *total,
                      OsnetExitCounts *per_second, GError **errp)
{
    KvmStatsFd *s = osnet_vcpu_stats(os, index, errp);
    const OsnetVcpuRate *r;

    if (!s) {
        return false;
    }
    r = &os->rates[index];
    *total = (OsnetExitCounts){
        .exits = kvm_stats_get(s, "exits"),
        .halt = kvm_stats_get(s, "halt_exits"),
        .irq = kvm_stats_get(s, "irq_exits"),
        .mmio = kvm_stats_get(s, "mmio_exits"),
        .io = kvm_stats_get(s, "io_exits"),
    };
    *per_second = (OsnetExitCounts){
        .exits = r->exits_per_s,
        .halt = r->halt_per_s,
        .irq = r->irq_per_s,
        .mmio = r->mmio_per_s,
        .io = r->io_per_s,
        .userspace = r->user_per_s,
    };
    return true;
}

KvmStatsFd *osnet_vm_stats(OsnetState *os, int vm_fd, bool refresh, GError **errp)
{
    if (os->vm_stats.fd < 0 && !kvm_stats_open(&os->vm_stats, vm_fd, errp)) {
        return NULL;
    }
    if (refresh && !kvm_stats_refresh(&os->vm_stats, errp)) {
        return NULL;
    }
    return &os->vm_stats;
}
