/*
 * What the monitor shows of the machine (query-status, query-kvm,
 * query-cpus, query-cpus-fast, query-osnet-cpumap, query-osnet-stats,
 * query-block and their HMP "info" commands), as typed records; the
 * monitor turns them into JSON and text.  Lists are GArrays of the
 * record that free what the records hold (g_array_unref).  Main thread
 * only.
 */
#ifndef HW_MACHINE_INFO_H
#define HW_MACHINE_INFO_H

#include <glib.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "block/block.h"
#include "hw/machine.h"
#include "hw/osnet-info.h"

typedef struct MachineStatusInfo {
    bool running;
    RunState state;
} MachineStatusInfo;

void machine_query_status(Machine *m, MachineStatusInfo *info);

typedef struct MachineKvmInfo {
    bool enabled, present;
} MachineKvmInfo;

void machine_query_kvm(Machine *m, MachineKvmInfo *info);
/* pci_query() of the machine's bus, under the machine lock. */
GArray *machine_query_pci(Machine *m);

/* One vCPU: its place in the -smp topology, its thread, and (with_state)
 * where it runs. */
typedef struct MachineCpuInfo {
    unsigned index;
    pid_t thread_id;
    unsigned socket_id, core_id, thread_index; /* thread_index: "thread-id" of props */
    bool halted;                               /* with_state only */
    uint64_t pc;                               /* with_state only: rip + cs.base */
} MachineCpuInfo;

/* Every vCPU; with_state reads each one's registers (a short kick). */
GArray *machine_query_cpus(Machine *m, bool with_state);

/* One vCPU's place on the host: query-osnet-cpumap. */
typedef struct OsnetVcpuMapInfo {
    unsigned vcpu;
    int pcpu; /* -1 when unmapped */
    pid_t thread_id;
    cpu_set_t affinity; /* empty when it cannot be read */
} OsnetVcpuMapInfo;

GArray *machine_query_osnet_cpumap(Machine *m);

/* One vCPU's exits: query-osnet-stats. */
typedef struct OsnetVcpuStatsInfo {
    unsigned cpu_index;
    pid_t thread_id;
    int pcpu;
    OsnetExitCounts total, per_second;
    uint64_t user_io, user_mmio, user_intr, user_other; /* handled here */
} OsnetVcpuStatsInfo;

/* NULL with errp set when a vCPU's statistics cannot be read. */
GArray *machine_query_osnet_stats(Machine *m, GError **errp);

/*
 * osnet-set-cpumap: the new map (hw/osnet), then every passed-through
 * vector's host IRQ steered to its vCPU's new pCPU.
 */
bool machine_reload_cpumap(Machine *m, const char *path, GError **errp);
/*
 * Every vfio-pci MSI/MSI-X vector (VfioPciVectorInfo, include/hw/vfio-pci.h,
 * its vcpu filled in), host IRQ and affinity read now; g_array_unref.
 */
GArray *machine_query_passthrough_vectors(Machine *m);

/*
 * One block backend: query-block and HMP "info block" (hw/core/drives.c):
 * every drive, and every blockdev-add node a device uses, in the order
 * their backends were made.
 */
typedef struct MachineDriveInfo {
    const char *id;     /* the drive's id; "" for a node's anonymous backend */
    char node_name[32]; /* "#block100" ..., or the node-name */
    bool attached;      /* to a device */
    const char *qdev;   /* that device's backend's QOM path, or NULL */
    unsigned order;
    const char *filename, *format;
    const char *backing_file; /* NULL without one */
    bool read_only;
    BlockCacheMode cache;
    uint64_t virtual_size;
    uint64_t actual_size; /* bytes the image takes on the host */
    /* the driver=file node under it, or "" */
    char file_node_name[32];
    /*
     * The guest's requests through it (a driver=file node: only
     * wr_highest_offset, the writes reaching its file through its user).
     */
    BlockStats stats;
} MachineDriveInfo;

GArray *machine_query_drives(Machine *m);
/* Every node, -drive's and blockdev-add's, backend or not, oldest first. */
GArray *machine_query_nodes(Machine *m);

#endif
