/*
 * QEMU 7.2's ACPI PCI hot-plug registers on `pc` (I/O 0xAE00, dword access
 * only, 0x18 bytes): UP (+0, slots with a new device; reading clears it),
 * DOWN (+4, slots the host wants ejected), EJ (+8, the guest's _EJ0 writes
 * the slot's bit: the lowest set bit's slot is ejected), RMV (+0xC, slots
 * whose devices can be removed), SEL (+0x10, bus select: bus 0 only here),
 * AIDX (+0x14, acpi-index: none here, reads 0).  Events reach the guest as
 * GPE0 bit 1, which runs the DSDT's \_GPE._E01 (hw/acpi/dsdt.c).  Machine
 * lock held for the registers and every call below.
 */
#ifndef HW_ACPI_PCIHP_H
#define HW_ACPI_PCIHP_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "hw/bus.h"
#include "hw/vmstate.h"

#define ACPI_PCIHP_IO_LEN 0x18

typedef struct AcpiPciHp AcpiPciHp;

/*
 * What the board gives the block: the port bus, where its migration state
 * goes, the slots whose devices the guest may not eject (0: host bridge,
 * 1: PIIX), how to raise the hot-plug GPE, and whom to tell that the guest
 * ejected a slot (it removes whatever the slot holds, if anything; called
 * on the vCPU thread with the machine lock held).
 */
typedef struct AcpiPciHpConfig {
    Bus *io_bus;
    uint16_t base;
    DeviceStateList *states;
    uint32_t fixed_slots;
    void (*raise_gpe)(void *opaque);
    void (*eject)(void *opaque, unsigned slot);
    void *opaque;
} AcpiPciHpConfig;

AcpiPciHp *acpi_pcihp_new(const AcpiPciHpConfig *cfg, GError **errp);
void acpi_pcihp_free(AcpiPciHp *hp);
/* Power-on state: as QEMU, an unplug still pending is carried out first. */
void acpi_pcihp_reset(AcpiPciHp *hp);
/* A device arrived in slot (device_add): UP, and the GPE. */
void acpi_pcihp_plug(AcpiPciHp *hp, unsigned slot);
/* Ask the guest to eject slot (device_del): DOWN, and the GPE. */
void acpi_pcihp_unplug_request(AcpiPciHp *hp, unsigned slot);
/* Take back an unplug request the guest has not carried out (DOWN cleared). */
void acpi_pcihp_unplug_withdraw(AcpiPciHp *hp, unsigned slot);
/* Slots whose unplug the guest has been asked for and not yet done. */
uint32_t acpi_pcihp_pending(const AcpiPciHp *hp);

#endif
