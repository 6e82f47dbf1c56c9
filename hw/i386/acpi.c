/*
 * ACPI tables for firmware boot, handed to SeaBIOS through fw_cfg with
 * QEMU's table-loader protocol: "etc/acpi/rsdp" (the RSDP, placed in the
 * F segment) and "etc/acpi/tables" (RSDT and MADT), plus "etc/table-loader"
 * telling the firmware where to put them, which pointers to patch and which
 * checksums to compute.  The MADT is what lists every vCPU: SeaBIOS's own MP
 * table names only one CPU per package.  Built once at start; no state.
 */
#include <string.h>

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

enum { ZONE_HIGH = 1, ZONE_FSEG = 2 };

static void put_u16(GByteArray *b, uint16_t v)
{
    v = GUINT16_TO_LE(v);
    g_byte_array_append(b, (guint8 *)&v, 2);
}

static void put_u32(GByteArray *b, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    g_byte_array_append(b, (guint8 *)&v, 4);
}

static void put_bytes(GByteArray *b, const void *p, size_t n)
{
    g_byte_array_append(b, p, n);
}

/* The 36-byte SDT header; length and checksum are patched later. */
static size_t sdt_header(GByteArray *b, const char sig[4], uint8_t revision)
{
    size_t start = b->len;

    put_bytes(b, sig, 4);
    put_u32(b, 0);                       /* length */
    put_bytes(b, &revision, 1);
    put_bytes(b, "\0", 1);               /* checksum, by the loader */
    put_bytes(b, "DVISOR", 6);
    put_bytes(b, "DVISORPC", 8);
    put_u32(b, 1);                       /* OEM revision */
    put_bytes(b, "DVMM", 4);
    put_u32(b, 1);                       /* creator revision */
    return start;
}

static void sdt_finish(GByteArray *b, size_t start)
{
    uint32_t len = GUINT32_TO_LE(b->len - start);

    memcpy(b->data + start + 4, &len, 4);
}

static void build_madt(GByteArray *b, Machine *m)
{
    size_t start = sdt_header(b, "APIC", 1);
    uint8_t ioapic_id = 0;

    put_u32(b, 0xfee00000);              /* local APIC address */
    put_u32(b, 1);                       /* PCAT_COMPAT: there are 8259s */
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        uint8_t entry[8] = { 0, 8, i, cpu_apic_id(&m->cfg->smp, i), 1, 0, 0, 0 };
        put_bytes(b, entry, sizeof(entry));
        ioapic_id = MAX(ioapic_id, (uint8_t)(cpu_apic_id(&m->cfg->smp, i) + 1));
    }
    uint8_t ioapic[4] = { 1, 12, ioapic_id, 0 };
    put_bytes(b, ioapic, sizeof(ioapic));
    put_u32(b, 0xfec00000);
    put_u32(b, 0);                       /* GSI base */
    /* ISA IRQ 0 (the PIT) arrives on GSI 2; PCI IRQs are level, high */
    static const struct {
        uint8_t irq;
        uint32_t gsi;
        uint16_t flags;
    } overrides[] = { { 0, 2, 0 }, { 5, 5, 0xd }, { 9, 9, 0xd }, { 10, 10, 0xd },
                      { 11, 11, 0xd } };
    for (size_t i = 0; i < G_N_ELEMENTS(overrides); i++) {
        uint8_t head[4] = { 2, 10, 0, overrides[i].irq };
        put_bytes(b, head, sizeof(head));
        put_u32(b, overrides[i].gsi);
        put_u16(b, overrides[i].flags);
    }
    uint8_t nmi[6] = { 4, 6, 0xff, 0, 0, 1 };   /* LINT1 is NMI on every CPU */
    put_bytes(b, nmi, sizeof(nmi));
    sdt_finish(b, start);
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
        v = GUINT32_TO_LE(a);                 /* alignment */
        memcpy(entry + 4 + LOADER_FILE_LEN, &v, 4);
        entry[4 + LOADER_FILE_LEN + 4] = b2;  /* zone */
    } else if (cmd == LOADER_ADD_POINTER) {
        g_strlcpy((char *)entry + 4 + LOADER_FILE_LEN, file2, LOADER_FILE_LEN);
        v = GUINT32_TO_LE(a);                 /* offset of the pointer */
        memcpy(entry + 4 + 2 * LOADER_FILE_LEN, &v, 4);
        entry[4 + 2 * LOADER_FILE_LEN + 4] = b2;   /* pointer size */
    } else {
        v = GUINT32_TO_LE(a);                 /* checksum offset */
        memcpy(entry + 4 + LOADER_FILE_LEN, &v, 4);
        v = GUINT32_TO_LE(b2);                /* start */
        memcpy(entry + 4 + LOADER_FILE_LEN + 4, &v, 4);
        v = GUINT32_TO_LE(c);                 /* length */
        memcpy(entry + 4 + LOADER_FILE_LEN + 8, &v, 4);
    }
    g_byte_array_append(script, entry, sizeof(entry));
}

bool acpi_build(Machine *m, FwCfg *fw, GError **errp)
{
    GByteArray *tables = g_byte_array_new();
    GByteArray *rsdp = g_byte_array_new();
    GByteArray *script = g_byte_array_new();
    size_t madt, rsdt, rsdt_entry;
    uint32_t rel;
    bool ok;

    madt = tables->len;
    build_madt(tables, m);
    rsdt = tables->len;
    sdt_header(tables, "RSDT", 1);
    rsdt_entry = tables->len;
    put_u32(tables, madt);               /* offset; the loader adds the base */
    sdt_finish(tables, rsdt);

    put_bytes(rsdp, "RSD PTR ", 8);
    put_bytes(rsdp, "\0", 1);            /* checksum */
    put_bytes(rsdp, "DVISOR", 6);
    put_bytes(rsdp, "\0", 1);            /* revision 0: ACPI 1.0 RSDP */
    rel = rsdt;
    put_u32(rsdp, rel);

    loader_cmd(script, LOADER_ALLOCATE, "etc/acpi/rsdp", NULL, 16, ZONE_FSEG, 0);
    loader_cmd(script, LOADER_ALLOCATE, "etc/acpi/tables", NULL, 64, ZONE_HIGH, 0);
    loader_cmd(script, LOADER_ADD_POINTER, "etc/acpi/tables", "etc/acpi/tables",
               rsdt_entry, 4, 0);
    loader_cmd(script, LOADER_ADD_CHECKSUM, "etc/acpi/tables", NULL, madt + 9, madt,
               rsdt - madt);
    loader_cmd(script, LOADER_ADD_CHECKSUM, "etc/acpi/tables", NULL, rsdt + 9, rsdt,
               tables->len - rsdt);
    loader_cmd(script, LOADER_ADD_POINTER, "etc/acpi/rsdp", "etc/acpi/tables", 16, 4, 0);
    loader_cmd(script, LOADER_ADD_CHECKSUM, "etc/acpi/rsdp", NULL, 8, 0, 20);

    ok = fw_cfg_add_file(fw, "etc/acpi/tables", tables->data, tables->len, errp) &&
         fw_cfg_add_file(fw, "etc/acpi/rsdp", rsdp->data, rsdp->len, errp) &&
         fw_cfg_add_file(fw, "etc/table-loader", script->data, script->len, errp);
    g_byte_array_free(tables, TRUE);
    g_byte_array_free(rsdp, TRUE);
    g_byte_array_free(script, TRUE);
    return ok;
}
