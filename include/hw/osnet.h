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
#include "hw/vmstate.h"
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

/* Why DID is in its present state (query-osnet-did's reason). */
typedef enum OsnetDidReason {
    OSNET_DID_NOT_REQUESTED,    /* neither did=on nor -overcommit cpu-pm=on */
    OSNET_DID_START,            /* as the VM was created */
    OSNET_DID_COMMAND,          /* osnet-did-enable / osnet-did-disable */
    OSNET_DID_INCOMING_WAIT,    /* -incoming: off until the stream is loaded */
    OSNET_DID_MIGRATION_STOP,   /* off for an outgoing migration's final stop */
    OSNET_DID_MIGRATION_FAILED, /* back on: that migration failed or was cancelled */
    OSNET_DID_INCOMING_SOURCE,  /* as the source had it at its final stop */
    OSNET_DID_INCOMING_OWN,     /* the stream said nothing: this VM's own did=on */
    OSNET_DID_REASON__MAX,
} OsnetDidReason;

const char *osnet_did_reason_name(OsnetDidReason reason);

/* Exit-disabling mechanisms, as KVM_CAP_X86_DISABLE_EXITS bits. */
typedef struct OsnetDid {
    bool requested; /* did=on or -overcommit cpu-pm=on */
    uint32_t exits_supported;
    uint32_t exits_disabled; /* KVM_X86_DISABLE_EXITS_* in force */
    bool halt_poll_cap;      /* KVM_CAP_HALT_POLL offered */
    int64_t halt_poll_ns;    /* in force for this VM; -1 if unknown */
    int64_t halt_poll_default;
    bool active; /* the last enable/disable (or start) */
    OsnetDidReason reason;
    bool off_for_migration; /* on until an outgoing migration's final stop */
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
    OsnetCpuMap map;  /* empty (nr_vcpus 0) without -osnet_cpumap */
    bool incoming;    /* -incoming: DID waits for the stream */
    int incoming_did; /* from the stream: -1 nothing said, else 0/1 */
    bool kernel_checked;
    bool kernel_extension; /* OSNET_KVM_SET_CPUMAP answered */
    bool cpumap_in_kernel; /* the current map was passed to it */
    OsnetDid did;
    /* one per vCPU, opened in osnet_setup_vcpus before the vCPUs run: a
     * vCPU ioctl waits for KVM_RUN to return, which a halted vCPU with HLT
     * exits disabled may never do */
    KvmStatsFd *vcpu_stats;
    char **vcpu_stats_error; /* why a vCPU's stats fd could not be opened */
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

/*
 * Migration (docs/migration.md, "Dedicated cores and DID").  Source, main
 * thread: osnet_migration_stop just before the final stop switches DID off
 * and records that it was on; osnet_migration_failed after a failed or
 * cancelled migration switches it back on.  Destination, main thread:
 * osnet_incoming_done once the stream is loaded, before the guest runs:
 * DID as the source had it, or (the stream said nothing) as this VM's own
 * did=on asks.
 */
void osnet_migration_stop(OsnetState *os);
void osnet_migration_failed(OsnetState *os);
void osnet_incoming_done(OsnetState *os);

/*
 * The "osnet" migration state, an optional section (sent when the source
 * was started with DID): version 1 is one little-endian u32 of flags.
 */
#define OSNET_STATE_VERSION 1
#define OSNET_STATE_DID_ON  1u /* DID was on at the source's final stop */
#define OSNET_STATE_KNOWN   OSNET_STATE_DID_ON
typedef struct OsnetMigState {
    uint32_t flags;
} OsnetMigState;

/* Parse a blob completely (pure); false with errp set on anything odd. */
bool osnet_state_parse(const uint8_t *buf, size_t len, uint32_t version,
                       OsnetMigState *st, GError **errp);
/* Take a parsed state; refuses (changing nothing) what this VM cannot do. */
bool osnet_state_apply(OsnetState *os, const OsnetMigState *st, GError **errp);
/* Register "osnet" in the machine's device states (after osnet_setup_vcpus). */
bool osnet_register_state(OsnetState *os, DeviceStateList *states, GError **errp);

/* Read vCPU index's KVM statistics (opening the stats fd on first use). */
KvmStatsFd *osnet_vcpu_stats(OsnetState *os, unsigned index, GError **errp);
/* Sample every vCPU's counters now and update the per-second rates. */
void osnet_sample(OsnetState *os);

#endif
