/*
 * vfio-pci: a host PCI function given to the guest (-device vfio-pci).
 * The model (hw/vfio/vfio-pci.c) reaches the device only through a
 * VfioDevice's ops (include/hw/vfio.h) and KVM only through the bus's
 * PciKvmOps, so unit tests run it over a fake device and a fake KVM.
 * Main thread or a vCPU thread, machine lock held, for everything.
 */
#ifndef HW_VFIO_PCI_H
#define HW_VFIO_PCI_H

#include <stdbool.h>
#include <glib.h>

#include "hw/pci.h"
#include "hw/vfio.h"

/* What -device vfio-pci says besides the host device. */
typedef struct VfioPciOptions {
    const char *id;               /* id=, or NULL */
    int devfn;                    /* addr=, or PCI_DEVFN_AUTO */
    bool rombar;                  /* rombar= (default on): show the ROM BAR */
    const char *failover_pair_id; /* NULL: the device blocks migration */
} VfioPciOptions;

/*
 * Put the open device vdev on bus: its config space read, BARs sized and
 * mapped, its capabilities found, INTx wired.  Takes vdev over: on
 * failure it is closed too.  NULL with errp set on failure.
 */
PciDevice *vfio_pci_realize(PciBus *bus, VfioDevice *vdev, const VfioPciOptions *o,
                            GError **errp);

/* QEMU's text for a vfio-pci device in a VM that is asked to migrate. */
#define VFIO_MIGRATION_BLOCKER "VFIO device doesn't support migration"

/* One MSI or MSI-X vector of a vfio-pci device, for affinity reports. */
typedef struct VfioPciVectorInfo {
    unsigned vector;
    bool msix;        /* MSI-X (else MSI) */
    bool enabled;     /* the guest unmasked it and it is wired */
    uint64_t address; /* MSI address the guest programmed */
    uint32_t data;
    unsigned dest_apic; /* destination APIC id from the address */
} VfioPciVectorInfo;

/* The vectors dev (a vfio-pci device) has enabled now; g_array_unref. */
GArray *vfio_pci_query_vectors(PciDevice *dev);
/* Is dev a vfio-pci device?  Its host BDF ("0000:01:00.0") if so. */
const char *vfio_pci_host_name(PciDevice *dev);

#endif
