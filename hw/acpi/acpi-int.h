/*
 * What hw/acpi's table builders share: the SDT header every table starts
 * with, and the DSDT builder (dsdt.c).
 */
#ifndef HW_ACPI_ACPI_INT_H
#define HW_ACPI_ACPI_INT_H

#include <glib.h>
#include <stddef.h>

#include "hw/acpi/acpi-tables.h"

/* Append the 36-byte System Description Table header (ACPI 6.4, 5.2.6);
 * length and checksum are filled in later.  Returns the table's offset. */
size_t acpi_sdt_begin(GByteArray *b, const char sig[4], uint8_t revision);
/* Set the length of the table that starts at start (it ends at b->len). */
void acpi_sdt_end(GByteArray *b, size_t start);
/* Append the DSDT for cfg (cfg->pm true). */
void acpi_build_dsdt(GByteArray *b, const AcpiConfig *cfg);

#endif
