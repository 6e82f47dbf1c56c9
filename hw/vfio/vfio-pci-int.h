/*
 * What the files of vfio-pci share: the device's state (config-space
 * emulation masks, BARs with their mmaps and memory slots, MSI, MSI-X and
 * INTx wiring).  vfio-pci.c owns config space, BARs and the device's life;
 * vfio-pci-irq.c its interrupts.  Machine lock held for all of it.
 */
#ifndef HW_VFIO_VFIO_PCI_INT_H
#define HW_VFIO_VFIO_PCI_INT_H

#include "hw/vfio-pci.h"

#define MSI_ADDR_WINDOW_MASK 0xfff00000u
#define MSI_ADDR_WINDOW      0xfee00000u /* the LAPICs */

/* One piece of a BAR that is a KVM memory slot while the BAR decodes. */
typedef struct VfioPciSlot {
    uint64_t offset, size; /* within the BAR */
    void *host;            /* inside one of the BAR's mmaps */
    int slot;              /* the KVM slot while installed, else -1 */
} VfioPciSlot;

typedef struct VfioPciMmap {
    void *host;
    uint64_t offset, size;
} VfioPciMmap;

typedef struct VfioPci VfioPci;

typedef struct VfioPciBar {
    VfioPci *vp; /* the BAR's bus callback gets the BAR */
    int index;
    VfioRegion region; /* size 0: no BAR here (or the upper half of one) */
    PciBarKind kind;
    unsigned nr_mmaps, nr_slots;
    VfioPciMmap *mmaps;
    VfioPciSlot *slots;
} VfioPciBar;

/* One MSI or MSI-X vector as wired to KVM. */
typedef struct VfioPciVector {
    int fd;        /* eventfd given to the device and to KVM, or -1 */
    int gsi;       /* KVM MSI route, or -1 */
    bool irqfd;    /* fd raises gsi in KVM now */
    uint64_t addr; /* what the route says */
    uint32_t data;
    int host_irq; /* Linux's IRQ for it (found when first steered), or -1 */
    int pcpu;     /* the CPU it was steered to, or -1 */
} VfioPciVector;

typedef enum VfioPciIrqMode {
    VFIO_PCI_IRQ_NONE,
    VFIO_PCI_IRQ_INTX,
    VFIO_PCI_IRQ_MSI,
    VFIO_PCI_IRQ_MSIX,
} VfioPciIrqMode;

struct VfioPci {
    PciDevice *pci;
    VfioDevice *dev;
    const PciKvmOps *kvm_ops;
    void *kvm;
    DeviceStateList *states; /* where the migration blocker lives */
    bool blocks_migration;
    char *failover_pair_id;
    char *proc_root; /* host IRQs are steered through PROC/irq/N */

    VfioRegion config;                 /* the config-space region */
    uint8_t emulated[PCI_CONFIG_SIZE]; /* bits read from pci->config, not the device */
    uint8_t no_write[PCI_CONFIG_SIZE]; /* bytes never written to the device */
    VfioPciBar bars[PCI_BAR_COUNT];
    uint64_t rom_size; /* 0: no ROM BAR shown */
    /* The ROM's contents, read from the device's ROM region at the first
     * access (or the romfile=): rom_data_size bytes, all ones past them. */
    uint8_t *rom_data;
    uint64_t rom_data_size;
    uint64_t rom_region_size; /* the device's ROM region; 0: romfile= */
    bool rom_loaded;

    /* interrupts (vfio-pci-irq.c) */
    VfioPciIrqMode mode;
    VfioIrq irqs[VFIO_PCI_NUM_IRQS];
    unsigned nr_fds;        /* vectors the device has eventfds for now */
    VfioPciVector *vectors; /* max(MSI, MSI-X) vectors */
    unsigned nr_vectors;

    uint8_t msi_cap;  /* 0: none */
    unsigned msi_max; /* vectors the capability offers (1-32) */
    bool msi_64, msi_maskbit;

    uint8_t msix_cap; /* 0: none */
    unsigned msix_nr;
    int msix_table_bar, msix_pba_bar;
    uint32_t msix_table_offset, msix_pba_offset;
    uint32_t *msix_table; /* 4 words per vector, as the guest wrote it */
    bool msix_enabled, msix_masked;

    int intx_fd, intx_resample_fd; /* -1: no INTx */
    int intx_gsi;                  /* the irqfd's GSI now, or -1 */
};

/* vfio-pci-irq.c */
bool vfio_pci_irq_init(VfioPci *vp, GError **errp);
void vfio_pci_irq_cleanup(VfioPci *vp);
void vfio_pci_irq_reset(VfioPci *vp);
/* A guest write touched [offset, offset + len) of config space. */
void vfio_pci_irq_config_written(VfioPci *vp, unsigned offset, unsigned len);
/* Refresh emulated bits that change by themselves (MSI pending) before a read. */
void vfio_pci_irq_config_refresh(VfioPci *vp, unsigned offset, unsigned len);
/* Steer vector n's host IRQ to the pCPU of the vCPU it targets. */
void vfio_pci_vector_steer(VfioPci *vp, unsigned n);
/* INTx follows the PIRQ routes: rewire when they moved. */
void vfio_pci_intx_update_route(VfioPci *vp);
/* The MSI-X table and PBA inside BAR bar: true when [offset, +len) is one. */
bool vfio_pci_msix_access(VfioPci *vp, int bar, uint64_t offset, uint8_t *data,
                          unsigned len, bool is_write);

#endif
