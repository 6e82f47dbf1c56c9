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
    const char *romfile;          /* romfile=: the ROM's contents from this
                                     file instead of the device ("": no ROM) */
    const char *failover_pair_id; /* NULL: the device blocks migration */
    const char *proc_root;        /* where host IRQs are steered; NULL: "/proc" */
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
    const char *qdev_id; /* the device's id=, or NULL */
    const char *host;    /* its BDF */
    unsigned vector;
    bool msix;        /* MSI-X (else MSI) */
    bool enabled;     /* the guest unmasked it and it is wired */
    uint64_t address; /* MSI address the guest programmed */
    uint32_t data;
    unsigned dest_apic; /* destination APIC id from the address */
    bool dest_logical;  /* logical destination mode: dest_apic is a logical id */
    int vcpu;           /* the vCPU with that APIC id (the machine fills it), or -1 */
    int host_irq;       /* the host IRQ Linux gave it, or -1 */
    int pcpu;           /* where it was steered (-cpumap), or -1 */
    char *affinity;     /* smp_affinity_list read back, or NULL */
    bool posted;        /* host KVM posts interrupts and the IRQ is remapped */
} VfioPciVectorInfo;

/* The vectors dev (a vfio-pci device) has enabled now; g_array_unref. */
GArray *vfio_pci_query_vectors(PciDevice *dev);
/* Every vfio-pci vector on bus, host IRQ and affinity read now
 * (posted_capable: the host's KVM posts interrupts); g_array_unref. */
GArray *vfio_pci_query_bus_vectors(PciBus *bus, bool posted_capable);
/* The cpumap changed: steer every enabled vector again. */
void vfio_pci_steer_bus(PciBus *bus);
/* Is dev a vfio-pci device?  Its host BDF ("0000:01:00.0") if so. */
const char *vfio_pci_host_name(PciDevice *dev);

/*
 * Host IRQs (hw/vfio/vfio-irq-affinity.c), proc_root normally "/proc":
 * the IRQ Linux requested for vector of device bdf, or -1; whether it goes
 * through an interrupt-remapping chip; its affinity set to one CPU, and
 * read back ("3"; g_free, NULL when unreadable).
 */
int vfio_host_irq(const char *proc_root, const char *bdf, bool msix, unsigned vector);
bool vfio_host_irq_remapped(const char *proc_root, int irq);
bool vfio_host_irq_set_affinity(const char *proc_root, int irq, int pcpu, GError **errp);
char *vfio_host_irq_affinity(const char *proc_root, int irq);

#endif
