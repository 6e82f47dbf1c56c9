/*
 * osnet: the Directvisor additions.  Dedicated cores (the vCPU -> pCPU map
 * from map.txt, pinning, the Directvisor KVM extension's cpumap ioctl),
 * direct interrupt delivery (DID) controls on stock KVM, and exit
 * statistics from KVM's binary stats.  Main thread only unless noted.
 */
#ifndef HW_OSNET_H
#define HW_OSNET_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "accel/kvm/kvm.h"
#include "accel/kvm/kvm-stats.h"
#include "system/config.h"

/* A validated vCPU -> pCPU map. */
typedef struct OsnetCpuMap {
    char *path;
    unsigned nr_vcpus;
    int *pcpu; /* pcpu[vcpu] */
} OsnetCpuMap;

/*
 * Read and check a map file for nr_vcpus vCPUs against the CPUs this
 * process may use (allowed) and the CPUs online.  Errors name FILE:LINE.
 * Warnings (two vCPUs on one pCPU) are appended to warnings, one a line.
 */
bool osnet_cpumap_parse(const char *path, unsigned nr_vcpus, const cpu_set_t *allowed,
                        const cpu_set_t *online, OsnetCpuMap *map, GString *warnings,
                        GError **errp);
/* The same, from text already read (for unit tests); path names it. */
bool osnet_cpumap_parse_text(const char *path, const char *text, unsigned nr_vcpus,
                             const cpu_set_t *allowed, const cpu_set_t *online,
                             OsnetCpuMap *map, GString *warnings, GError **errp);
void osnet_cpumap_clear(OsnetCpuMap *map);
/* Parse a Linux CPU list ("0-3,5"), as in /sys/devices/system/cpu/online. */
bool osnet_parse_cpu_list(const char *text, cpu_set_t *set);

/* The ABI of the Directvisor KVM extension ("big" module). */
#define OSNET_MAX_VCPUS 1024
struct osnet_kvm_cpumap {
    int pcpus[OSNET_MAX_VCPUS];
    unsigned nvcpus;
    bool is_valid;
    char path[100];
};
#define OSNET_KVM_SET_CPUMAP _IOW(0xBE, 0x00, struct osnet_kvm_cpumap)

/* Exit-disabling mechanisms, as KVM_CAP_X86_DISABLE_EXITS bits. */
typedef struct OsnetDid {
    bool requested; /* did=on or -overcommit cpu-pm=on */
    uint32_t exits_supported;
    uint32_t exits_disabled; /* KVM_X86_DISABLE_EXITS_* in force */
    bool halt_poll_cap;      /* KVM_CAP_HALT_POLL offered */
    int64_t halt_poll_ns;    /* in force for this VM; -1 if unknown */
    int64_t halt_poll_default;
    bool active; /* the last enable/disable (or start) */
} OsnetDid;

typedef struct OsnetVcpuRate {
    uint64_t last_exits, last_halt, last_irq, last_mmio, last_io;
    uint64_t last_user;
    double exits_per_s, halt_per_s, irq_per_s, mmio_per_s, io_per_s, user_per_s;
} OsnetVcpuRate;

typedef struct OsnetState {
    KvmVm *kvm;   /* set by osnet_configure (NULL: nothing to clean) */
    VCpu **vcpus; /* the machine's, from osnet_setup_vcpus on */
    unsigned nr_vcpus;
    OsnetCpuMap map; /* empty (nr_vcpus 0) without -osnet_cpumap */
    bool kernel_checked;
    bool kernel_extension; /* OSNET_KVM_SET_CPUMAP answered */
    bool cpumap_in_kernel; /* the current map was passed to it */
    OsnetDid did;
    KvmStatsFd *vcpu_stats; /* one per vCPU, opened lazily */
    KvmStatsFd vm_stats;
    OsnetVcpuRate *rates;
    gint64 last_sample_us;
    guint sample_timer;
} OsnetState;

/*
 * From -osnet_cpumap and -overcommit in cfg: read and check the map
 * (before KVM).  kvm is the VM the later calls act on, not opened yet.
 */
bool osnet_configure(OsnetState *os, const VmConfig *cfg, KvmVm *kvm, GError **errp);
/* After KVM_CREATE_VM, before vCPUs exist: disable exits for DID. */
bool osnet_setup_vm(OsnetState *os, GError **errp);
/*
 * After the vCPUs exist: the cpumap ioctl, halt polling, the stats
 * sampler.  vcpus (nr_vcpus of them) stays the caller's and must outlive
 * osnet_cleanup.
 */
bool osnet_setup_vcpus(OsnetState *os, VCpu **vcpus, unsigned nr_vcpus, GError **errp);
/* Undo all of it; harmless on a state osnet_configure never set up. */
void osnet_cleanup(OsnetState *os);

/* pCPU of vCPU index, or -1 when unmapped. */
int osnet_vcpu_pcpu(const OsnetState *os, unsigned index);
/* Keep the VMM's other threads off mapped pCPUs when others exist. */
void osnet_place_main_thread(OsnetState *os);

/* Validate path completely, then move every vCPU; nothing changes on error. */
bool osnet_reload_cpumap(OsnetState *os, const char *path, GError **errp);
bool osnet_did_enable(OsnetState *os, GError **errp);
bool osnet_did_disable(OsnetState *os, GError **errp);

/* Read vCPU index's KVM statistics (opening the stats fd on first use). */
KvmStatsFd *osnet_vcpu_stats(OsnetState *os, unsigned index, GError **errp);
/* Sample every vCPU's counters now and update the per-second rates. */
void osnet_sample(OsnetState *os);

#endif
