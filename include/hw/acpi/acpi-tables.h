/*
 * The pc machine's ACPI tables (hw/acpi/tables.c), built from a plain
 * description of the machine: RSDP, RSDT and MADT always; with the PIIX4
 * power-management device also FADT, FACS and the DSDT (PCI root bridge
 * with its interrupt routing, hot-plug slots, the GPE handler, the ISA
 * devices, \_S5).  Pointers between tables are stored as offsets into the
 * tables blob; AcpiTables.links says which to patch and which checksums to
 * compute, in order, so fw_cfg's table loader (firmware boot) and
 * acpi_tables_place (direct -kernel boot) finish them the same way.
 * No global state.
 */
#ifndef HW_ACPI_TABLES_H
#define HW_ACPI_TABLES_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "hw/guest-memory.h"

/* The fixed I/O addresses the tables name (QEMU 7.2's `pc`). */
#define ACPI_PM_BASE       0x600  /* PM1a_EVT; PM1a_CNT +4, PM_TMR +8 */
#define ACPI_PM1A_EVT      0x600  /* 4 bytes: PM1_STS, PM1_EN */
#define ACPI_PM1A_CNT      0x604  /* 2 bytes */
#define ACPI_PM_TMR        0x608  /* 4 bytes, 24-bit counter */
#define ACPI_GPE0_BLK      0xafe0 /* 4 bytes: GPE0_STS (2), GPE0_EN (2) */
#define ACPI_GPE0_LEN      4
#define ACPI_SCI_IRQ       9
#define ACPI_SMI_CMD       0xb2 /* APM control port */
#define ACPI_ENABLE_VALUE  0xf1 /* written to SMI_CMD: set SCI_EN */
#define ACPI_DISABLE_VALUE 0xf0
#define ACPI_PCIHP_BASE    0xae00 /* UP, DOWN, EJ, RMV, SEL, AIDX */
#define ACPI_PCIHP_LEN     0x14
#define ACPI_PCIHP_GPE     1 /* GPE0 bit: \_GPE._E01 */

/* Where a direct -kernel boot puts them: Linux scans 0xE0000-0xFFFFF for
 * the RSDP; the MP table starts at 0xF0000. */
#define ACPI_BOOT_RSDP_ADDR   0xe0000
#define ACPI_BOOT_TABLES_ADDR 0xe0040
#define ACPI_BOOT_TABLES_END  0xf0000

typedef struct AcpiConfig {
    unsigned nr_cpus;
    const uint8_t *apic_ids; /* nr_cpus local APIC ids, BSP first */
    /*
     * The PIIX4 PM function (PM1, PM timer, SCI, GPE0) and the PCI
     * hot-plug registers exist: FADT, FACS and DSDT are built.  Without
     * them only RSDT and MADT are (what the machine has always served).
     */
    bool pm;
    uint32_t hotplug_slots; /* bit n: slot n gets S%02X with _EJ0 */
    uint8_t serial_ports;   /* bit n: COM(n+1) exists */
    uint64_t ram_below_4g;  /* the 32-bit PCI window starts here */
    uint64_t ram_above_4g;  /* the 64-bit window starts above it */
} AcpiConfig;

typedef enum AcpiBlob {
    ACPI_BLOB_TABLES, /* "etc/acpi/tables" */
    ACPI_BLOB_RSDP,   /* "etc/acpi/rsdp" */
} AcpiBlob;

typedef enum AcpiLinkKind {
    ACPI_LINK_POINTER,  /* add the tables' address to a field */
    ACPI_LINK_CHECKSUM, /* make a range sum to zero */
} AcpiLinkKind;

typedef struct AcpiLink {
    AcpiLinkKind kind;
    AcpiBlob blob;          /* where the field or range is */
    uint32_t offset;        /* the pointer, or the checksum byte */
    uint32_t size;          /* pointer width in bytes */
    uint32_t start, length; /* the checksummed range */
} AcpiLink;

typedef struct AcpiTables {
    GByteArray *tables; /* every table; pointers are offsets */
    GByteArray *rsdp;   /* the 20-byte ACPI 1.0 RSDP */
    GArray *links;      /* of AcpiLink, in the order to apply */
} AcpiTables;

/* Build the tables for cfg into *t (free with acpi_tables_free). */
void acpi_tables_build(const AcpiConfig *cfg, AcpiTables *t);
void acpi_tables_free(AcpiTables *t);
/*
 * Apply t's links to copies of its blobs as if the tables blob sat at
 * guest-physical tables_addr: pointers become addresses, checksums are
 * computed.  tables and rsdp must hold t->tables->len and t->rsdp->len.
 */
void acpi_tables_link(const AcpiTables *t, uint64_t tables_addr, uint8_t *tables,
                      uint8_t *rsdp);
/*
 * Direct boot: write the linked tables at tables_addr and the RSDP at
 * rsdp_addr (16-byte aligned) in guest memory; an error if the tables
 * would reach tables_end or a range is not guest RAM.
 */
bool acpi_tables_place(const AcpiTables *t, const GuestMemory *mem, uint64_t rsdp_addr,
                       uint64_t tables_addr, uint64_t tables_end, GError **errp);

#endif
