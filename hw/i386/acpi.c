/*
 * The pc board's ACPI tables, built by hw/acpi from what this machine has:
 * for firmware boot handed to SeaBIOS through fw_cfg with QEMU's
 * table-loader protocol ("etc/acpi/rsdp", placed in the F segment,
 * "etc/acpi/tables", and "etc/table-loader" saying where to put them,
 * which pointers to patch and which checksums to compute); for a direct
 * -kernel boot written into RAM at 0xE0000.  The full set: FADT and FACS
 * for the PIIX4 PM function (hw/acpi/piix4-pm.c), the DSDT, and the MADT,
 * which lists every vCPU (SeaBIOS's own MP table names one CPU per
 * package).  Built once at start; no state.
 */
#include <string.h>

#include "hw/acpi/acpi-tables.h"
#include "hw/i386/fw_cfg.h"
#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "util/error.h"

#define LOADER_FILE_LEN 56
#define LOADER_CMD_SIZE 128

enum {
    LOADER_ALLOCATE = 1,
    LOADER_ADD_POINTER = 2,
    LOADER_ADD_CHECKSUM = 3,
};

enum {
    ZONE_HIGH = 1,
    ZONE_FSEG = 2
};

static const char *const blob_names[] = {
    [ACPI_BLOB_TABLES] = "etc/acpi/tables",
    [ACPI_BLOB_RSDP] = "etc/acpi/rsdp",
};

/* What the tables describe, from the machine; apic_ids holds nr_vcpus. */
static void pc_acpi_config(Machine *m, AcpiConfig *cfg, uint8_t *apic_ids)
{
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        apic_ids[i] = m->vcpus[i]->apic_id;
    }
    *cfg = (AcpiConfig){
        .nr_cpus = m->nr_vcpus,
        .apic_ids = apic_ids,
        .pm = true,           /* the PIIX4 PM function at 00:01.3 */
        .hotplug_slots = ~3u, /* 0: host bridge, 1: PIIX3 */
        .ram_below_4g = m->below_4g,
        .ram_above_4g = m->above_4g,
    };
    for (unsigned i = 0; i < 4; i++) {
        cfg->serial_ports |= m->serial_used[i] ? 1u << i : 0;
    }
}

static void loader_cmd(GByteArray *script, uint32_t cmd, const char *file1,
                       const char *file2, uint32_t a, uint32_t b2, uint32_t c)
{
    uint8_t entry[LOADER_CMD_SIZE] = { 0 };
    uint32_t v;

    v = GUINT32_TO_LE(cmd);
    memcpy(entry, &v, 4);
    g_strlcpy((char *)entry + 4, file1, LOADER_FILE_LEN);
    if (cmd == LOADER_ALLOCATE) {
        v = GUINT32_TO_LE(a); /* alignment */
        memcpy(entry + 4 + LOADER_FILE_LEN, &v, 4);
        entry[4 + LOADER_FILE_LEN + 4] = b2; /* zone */
    } else if (cmd == LOADER_ADD_POINTER) {
        g_strlcpy((char *)entry + 4 + LOADER_FILE_LEN, file2, LOADER_FILE_LEN);
        v = GUINT32_TO_LE(a); /* offset of the pointer */
        memcpy(entry + 4 + 2 * LOADER_FILE_LEN, &v, 4);
        entry[4 + 2 * LOADER_FILE_LEN + 4] = b2; /* pointer size */
    } else {
        v = GUINT32_TO_LE(a); /* checksum offset */
        memcpy(entry + 4 + LOADER_FILE_LEN, &v, 4);
        v = GUINT32_TO_LE(b2); /* start */
        memcpy(entry + 4 + LOADER_FILE_LEN + 4, &v, 4);
        v = GUINT32_TO_LE(c); /* length */
        memcpy(entry + 4 + LOADER_FILE_LEN + 8, &v, 4);
    }
    g_byte_array_append(script, entry, sizeof(entry));
}

bool acpi_build(Machine *m, FwCfg *fw, GError **errp)
{
    uint8_t *apic_ids;
    GByteArray *script;
    AcpiConfig cfg;
    AcpiTables t;
    bool ok;

    if (m->cfg->no_acpi) {
        return true; /* -no-acpi: no table files, the firmware builds none */
    }
    apic_ids = g_new0(uint8_t, m->nr_vcpus);
    script = g_byte_array_new();

    pc_acpi_config(m, &cfg, apic_ids);
    acpi_tables_build(&cfg, &t);
    /* the FACS, first in the tables when there is one, wants 64 bytes */
    loader_cmd(script, LOADER_ALLOCATE, blob_names[ACPI_BLOB_RSDP], NULL, 16, ZONE_FSEG,
               0);
    loader_cmd(script, LOADER_ALLOCATE, blob_names[ACPI_BLOB_TABLES], NULL, 64, ZONE_HIGH,
               0);
    for (guint i = 0; i < t.links->len; i++) {
        const AcpiLink *l = &g_array_index(t.links, AcpiLink, i);

        if (l->kind == ACPI_LINK_POINTER) {
            loader_cmd(script, LOADER_ADD_POINTER, blob_names[l->blob],
                       blob_names[ACPI_BLOB_TABLES], l->offset, l->size, 0);
        } else {
            loader_cmd(script, LOADER_ADD_CHECKSUM, blob_names[l->blob], NULL, l->offset,
                       l->start, l->length);
        }
    }
    ok = fw_cfg_add_file(fw, blob_names[ACPI_BLOB_TABLES], t.tables->data, t.tables->len,
                         errp) &&
         fw_cfg_add_file(fw, blob_names[ACPI_BLOB_RSDP], t.rsdp->data, t.rsdp->len,
                         errp) &&
         fw_cfg_add_file(fw, "etc/table-loader", script->data, script->len, errp);
    acpi_tables_free(&t);
    g_byte_array_free(script, TRUE);
    g_free(apic_ids);
    return ok;
}

bool acpi_place_for_linux_boot(Machine *m, GError **errp)
{
    uint8_t *apic_ids;
    AcpiConfig cfg;
    AcpiTables t;
    bool ok;

    if (m->cfg->no_acpi) {
        return true; /* -no-acpi: the guest finds only the MP table */
    }
    apic_ids = g_new0(uint8_t, m->nr_vcpus);
    pc_acpi_config(m, &cfg, apic_ids);
    acpi_tables_build(&cfg, &t);
    ok = acpi_tables_place(&t, &m->mem, ACPI_BOOT_RSDP_ADDR, ACPI_BOOT_TABLES_ADDR,
                           ACPI_BOOT_TABLES_END, errp);
    acpi_tables_free(&t);
    g_free(apic_ids);
    return ok;
}
