/*
 * What the files of hw/pci share: the bus state (what the board gave it,
 * its devices, the host's registers) and the hooks between generic config
 * space (pci.c), MSI-X (msix.c) and the pc host bridge (pci-host.c).
 * Locking as in include/hw/pci.h: `intx_lock` guards INTx levels and the
 * PIRQ routes, everything else the machine lock.
 */
#ifndef HW_PCI_PCI_INT_H
#define HW_PCI_PCI_INT_H

#include <pthread.h>

#include "hw/pci.h"
#include "hw/state-blob.h"

#define PCI_ISA_IRQ_COUNT 16

/* PIIX3 function 0 registers (82371SB datasheet). */
#define PIIX3_PIRQ_ROUTE    0x60 /* PIRQRC[A:D], 4 bytes */
#define PIIX3_PIRQ_DISABLE  0x80
#define PIIX3_PIRQ_IRQ_MASK 0x0f
/* i440FX host bridge registers (82441FX datasheet). */
#define I440FX_PAM0      0x59 /* PAM0-PAM6: 0x59-0x5f */
#define I440FX_PAM_COUNT 7
#define I440FX_SMRAM     0x72
/* System reset control register, a PIIX3 port beside CONFIG_ADDRESS. */
#define PIIX3_RCR_PORT    0xcf9
#define PIIX3_RCR_SYS_RST 0x02
#define PIIX3_RCR_RST_CPU 0x04

struct PciBus {
    PciBusConfig cfg; /* what the board gave (pci_pc_new) */
    PciDevice *devices[PCI_DEVFN_COUNT];
    PciDevice *host, *isa;
    uint32_t config_address; /* CONFIG_ADDRESS (0xCF8) */
    uint8_t reset_control;   /* RCR (0xCF9) */
    PciPamFn pam_fn;
    void *pam_opaque;
    PciDirtyFn dirty_fn; /* atomically read by device threads */
    void *dirty_opaque;
    void (*slow_leave)(void *opaque); /* pci_bus_set_slow_section */
    void (*slow_enter)(void *opaque);
    void *slow_opaque;
    PciMasterOffFn master_off_fn; /* pci_bus_set_master_off */
    void *master_off_opaque;

    pthread_mutex_t intx_lock;
    uint8_t pirq[4];                       /* [intx_lock] copy of PIRQRC[A:D] */
    uint8_t line_level[PCI_ISA_IRQ_COUNT]; /* [intx_lock] level driven */
};

/* pci.c */
void pci_device_update_mappings(PciDevice *dev);
void pci_bus_update_all_mappings(PciBus *bus);
void pci_device_unmap_all(PciDevice *dev);
void pci_device_reset(PciDevice *dev);
/* Recompute every ISA line from device levels and PIRQs; intx_lock held. */
void pci_bus_update_intx_locked(PciBus *bus);
/* The ISA IRQ a PIRQ register value routes to, or -1. */
int pci_pirq_to_irq(uint8_t route);

/* msix.c */
void msix_config_written(PciDevice *dev, unsigned offset, unsigned len);
void msix_reset(PciDevice *dev);
void msix_free(PciDevice *dev);
void msix_save(PciDevice *dev, GByteArray *out);
bool msix_parse(PciDevice *dev, StateReader *r, PciDeviceSnapshot *snap);
void msix_apply(PciDevice *dev, const PciDeviceSnapshot *snap);

#endif
