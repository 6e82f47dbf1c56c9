/*
 * The PIIX4 power-management function (00:01.3, 8086:7113) as QEMU 7.2's
 * `pc` has it: the PM1 event and control registers and the 24-bit ACPI
 * PM timer in a 64-byte I/O block that config register 0x40 places (0x600
 * here, as the tables say) and 0x80 bit 0 enables; the APM control port
 * 0xB2 (0xF1 sets SCI_EN, 0xF0 clears it) with its status port 0xB3; the
 * GPE0 block at 0xAFE0; the SCI, level-triggered on IRQ 9 while an enabled
 * status bit is set; the fixed power button; S5 through PM1a_CNT.
 * The PM timer counts the VM's clock, as QEMU's counts its virtual clock:
 * it stands still while the VM is stopped and a migrated VM's goes on from
 * the source's count.  Unlike QEMU, TMR_EN raises no SCI at bit 23's flip
 * (TMR_STS is set when read): no guest of ours enables it.
 * Register accesses run with the machine lock held, as do the calls below.
 */
#ifndef HW_ACPI_PIIX4_PM_H
#define HW_ACPI_PIIX4_PM_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "hw/bus.h"
#include "hw/irq.h"
#include "hw/pci.h"
#include "hw/vmstate.h"

#define PIIX4_PM_DEVFN      PCI_MAKE_DEVFN(1, 3)
#define PCI_DEVICE_PIIX4_PM 0x7113

/* PM1 status and enable bits (ACPI 6.4, 4.8.3.1) the function has. */
#define PM1_TMR_STS    (1u << 0)
#define PM1_GBL_STS    (1u << 5)
#define PM1_PWRBTN_STS (1u << 8)
#define PM1_RTC_STS    (1u << 10)
#define PM1_WAK_STS    (1u << 15)
/* PM1 control bits (4.8.3.2). */
#define PM1_SCI_EN        (1u << 0)
#define PM1_SLP_TYP_SHIFT 10
#define PM1_SLP_TYP_MASK  (7u << PM1_SLP_TYP_SHIFT)
#define PM1_SLP_EN        (1u << 13)

typedef struct Piix4Pm Piix4Pm;

/*
 * What the board gives the function: the PCI bus it sits on, the port bus
 * its registers go on, the SCI line, where its migration state goes, and
 * whom to tell when the guest enters S5 (soft off; called on the vCPU
 * thread with the machine lock held, so it should only ask the main loop).
 * Without firmware (direct -kernel boot) nobody programs config 0x40 and
 * 0x80: pm_block_at_reset has the block at 0x600 enabled from every reset,
 * as SeaBIOS would leave it.
 */
typedef struct Piix4PmConfig {
    PciBus *pci;
    Bus *io_bus;
    IrqLine sci;
    DeviceStateList *states;
    bool pm_block_at_reset;
    void (*soft_off)(void *opaque);
    void *opaque;
} Piix4PmConfig;

/* Create the function at 00:01.3; freed with the PCI bus (pci_pc_free). */
Piix4Pm *piix4_pm_new(const Piix4PmConfig *cfg, GError **errp);
/* Press the power button: PWRBTN_STS and the SCI, if the guest set PWRBTN_EN
 * (QEMU 7.2 drops a press the guest has not enabled). */
void piix4_pm_power_button(Piix4Pm *pm);
/* Set GPE0 status bit `bit` (0-15) and update the SCI. */
void piix4_pm_gpe_raise(Piix4Pm *pm, unsigned bit);
/* Where the PM block is decoded now, or 0 while it is off (tests, info). */
uint16_t piix4_pm_block_base(const Piix4Pm *pm);

#endif
