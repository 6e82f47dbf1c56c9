/*
 * The machine's typed query results for the monitor (hw/machine-info.h):
 * run state, vCPUs with their topology, threads and osnet placement and
 * exits.  Main thread only.
 */
#include <string.h>

#include "hw/machine-info.h"
#include "hw/pci.h"
#include "hw/vfio-pci.h"

bool machine_reload_cpumap(Machine *m, const char *path, GError **errp)
{
    if (!osnet_reload_cpumap(&m->osnet, path, errp)) {
        return false;
    }
    machine_lock(m);
    if (m->pci) {
        vfio_pci_steer_bus(m->pci);
    }
    machine_unlock(m);
    return true;
}

GArray *machine_query_passthrough_vectors(Machine *m)
{
    OsnetDidInfo did;
    GArray *list;

    osnet_query_did(&m->osnet, &did);
    machine_lock(m);
    list = m->pci ? vfio_pci_query_bus_vectors(m->pci, did.posted_interrupts)
                  : g_array_new(FALSE, TRUE, sizeof(VfioPciVectorInfo));
    machine_unlock(m);
    for (guint i = 0; i < list->len; i++) {
        VfioPciVectorInfo *v = &g_array_index(list, VfioPciVectorInfo, i);
        for (unsigned c = 0; !v->dest_logical && c < m->nr_vcpus; c++) {
            if (m->vcpus[c]->apic_id == v->dest_apic) {
                v->vcpu = c;
            }
        }
    }
    return list;
}

void machine_query_status(Machine *m, MachineStatusInfo *info)
{
    info->state = m->runstate;
    info->running = m->runstate == RUN_STATE_RUNNING;
}

void machine_query_kvm(Machine *m, MachineKvmInfo *info)
{
    /* a VM runs on KVM or not at all; machine none may go on without */
    info->present = true;
    info->enabled = m->kvm.vm_fd >= 0;
}

GArray *machine_query_cpus(Machine *m, bool with_state)
{
    const SmpConfig *smp = &m->cfg->smp;
    GArray *list = g_array_sized_new(FALSE, TRUE, sizeof(MachineCpuInfo), m->nr_vcpus);

    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        MachineCpuInfo info = {
            .index = i,
            .thread_id = m->vcpus[i]->tid,
            .socket_id = i / (smp->threads * smp->cores),
            .core_id = (i / smp->threads) % smp->cores,
            .thread_index = i % smp->threads,
        };
        if (with_state) {
            VCpuSnapshot snap;

            vcpu_snapshot(m->vcpus[i], &snap);
            info.halted = snap.valid && snap.mp_state.mp_state != KVM_MP_STATE_RUNNABLE;
            info.pc = snap.regs.rip + snap.sregs.cs.base;
        }
        g_array_append_val(list, info);
    }
    return list;
}

GArray *machine_query_osnet_cpumap(Machine *m)
{
    GArray *list = g_array_sized_new(FALSE, TRUE, sizeof(OsnetVcpuMapInfo), m->nr_vcpus);

    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        OsnetVcpuMapInfo info = {
            .vcpu = i,
            .pcpu = osnet_vcpu_pcpu(&m->osnet, i),
            .thread_id = m->vcpus[i]->tid,
        };
        if (sched_getaffinity(info.thread_id, sizeof(info.affinity), &info.affinity)) {
            CPU_ZERO(&info.affinity);
        }
        g_array_append_val(list, info);
    }
    return list;
}

GArray *machine_query_osnet_stats(Machine *m, GError **errp)
{
    GArray *list = g_array_sized_new(FALSE, TRUE, sizeof(OsnetVcpuStatsInfo),
                                     m->nr_vcpus);

    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        VCpu *cpu = m->vcpus[i];
        OsnetVcpuStatsInfo info = {
            .cpu_index = i,
            .thread_id = cpu->tid,
            .pcpu = osnet_vcpu_pcpu(&m->osnet, i),
        };
        uint64_t u[VCPU_EXIT__MAX];

        if (!osnet_vcpu_exits(&m->osnet, i, &info.total, &info.per_second, errp)) {
            g_array_unref(list);
            return NULL;
        }
        for (int k = 0; k < VCPU_EXIT__MAX; k++) {
            u[k] = __atomic_load_n(&cpu->exits[k], __ATOMIC_RELAXED);
        }
        info.total.userspace = u[0] + u[1] + u[2] + u[3];
        info.user_io = u[VCPU_EXIT_IO];
        info.user_mmio = u[VCPU_EXIT_MMIO];
        info.user_intr = u[VCPU_EXIT_INTR];
        info.user_other = u[VCPU_EXIT_OTHER];
        g_array_append_val(list, info);
    }
    return list;
}

GArray *machine_query_pci(Machine *m)
{
    GArray *list;

    machine_lock(m);
    list = pci_query(m->pci);
    machine_unlock(m);
    return list;
}
