/*
 * What the monitor shows of osnet (query-osnet-did, query-osnet-stats,
 * query-stats, HMP "info osnet"), as typed records; the monitor turns them
 * into JSON and text.  Main thread only.
 */
#ifndef HW_OSNET_INFO_H
#define HW_OSNET_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/osnet.h"

/* DID's state, as query-osnet-did reports it. */
typedef struct OsnetDidInfo {
    bool kernel_extension; /* mode "directvisor" (else "kvm") */
    bool active;
    bool did_at_start;
    uint32_t exits_disabled; /* KVM_X86_DISABLE_EXITS_* in force */
    uint32_t exits_supported;
    int64_t halt_poll_ns;   /* -1 if unknown */
    bool posted_interrupts; /* the host's KVM posts interrupts (APICv/AVIC) */
    bool cpumap_in_kernel;
    OsnetDidReason reason; /* why active is what it is */
} OsnetDidInfo;

void osnet_query_did(const OsnetState *os, OsnetDidInfo *info);

/* A vCPU's exits by kind: totals, or per second over the last sample. */
typedef struct OsnetExitCounts {
    uint64_t exits, halt, irq, mmio, io, userspace;
} OsnetExitCounts;

/*
 * vCPU index's exits as KVM counts them (total; userspace left 0 for the
 * caller, who counts the exits it handled) and the sampled rates
 * (per_second).  False with errp set when its statistics cannot be read.
 */
bool osnet_vcpu_exits(OsnetState *os, unsigned index, OsnetExitCounts *total,
                      OsnetExitCounts *per_second, GError **errp);

/* The VM's KVM statistics (opened on first use on vm_fd; read afresh when
 * refresh), or NULL with errp set. */
KvmStatsFd *osnet_vm_stats(OsnetState *os, int vm_fd, bool refresh, GError **errp);

#endif
