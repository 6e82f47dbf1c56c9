/*
 * The fixed-layout ACPI tables (ACPI 6.4 chapter 5.2): RSDP, RSDT, FADT,
 * FACS and MADT, put together with the DSDT (dsdt.c) into one blob plus
 * the pointer and checksum fix-ups that finish them wherever they land.
 * Values follow QEMU 7.2's `pc` (PIIX4 PM at 0x600, GPE0 at 0xafe0, SCI on
 * IRQ 9, a revision 1 FADT).  No global state.
 */
#include <string.h>

#include "acpi-int.h"
#include "util/error.h"

#define FACS_SIZE      64
#define FADT_REV1_SIZE 116

/* FADT flags (5.2.9, table 5.10) QEMU 7.2's pc sets: 0x80a5 */
#define FADT_WBINVD             (1u << 0)
#define FADT_PROC_C1            (1u << 2)
#define FADT_SLP_BUTTON         (1u << 5) /* no fixed sleep button */
#define FADT_RTC_S4             (1u << 7)
#define FADT_USE_PLATFORM_CLOCK (1u << 15)
/* FADT_PWR_BUTTON (bit 4) stays clear: the power button is fixed-feature */

static void put_u8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

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

static void add_link(AcpiTables *t, AcpiLink link)
{
    g_array_append_val(t->links, link);
}

static void add_pointer(AcpiTables *t, AcpiBlob blob, uint32_t offset)
{
    add_link(t,
             (AcpiLink){
                 .kind = ACPI_LINK_POINTER, .blob = blob, .offset = offset, .size = 4 });
}

/* The checksum of a whole SDT that starts at start, once it is complete. */
static void add_sdt_checksum(AcpiTables *t, size_t start)
{
    add_link(t, (AcpiLink){ .kind = ACPI_LINK_CHECKSUM,
                            .blob = ACPI_BLOB_TABLES,
                            .offset = start + 9,
                            .start = start,
                            .length = t->tables->len - start });
}

size_t acpi_sdt_begin(GByteArray *b, const char sig[4], uint8_t revision)
{
    size_t start = b->len;

    put_bytes(b, sig, 4);
    put_u32(b, 0); /* length, by acpi_sdt_end */
    put_u8(b, revision);
    put_u8(b, 0); /* checksum, by the links */
    put_bytes(b, "DVISOR", 6);
    put_bytes(b, "DVISORPC", 8);
    put_u32(b, 1); /* OEM revision */
    put_bytes(b, "DVMM", 4);
    put_u32(b, 1); /* creator revision */
    return start;
}

void acpi_sdt_end(GByteArray *b, size_t start)
{
    uint32_t len = GUINT32_TO_LE(b->len - start);

    memcpy(b->data + start + 4, &len, 4);
}

/* 5.2.12 MADT: local APICs, the I/O APIC, ISA overrides, LINT1 as NMI. */
static size_t build_madt(AcpiTables *t, const AcpiConfig *cfg)
{
    GByteArray *b = t->tables;
    size_t start = acpi_sdt_begin(b, "APIC", 1);
    uint8_t ioapic_id = 0;

    put_u32(b, 0xfee00000); /* local APIC address */
    put_u32(b, 1);          /* PCAT_COMPAT: there are 8259s */
    for (unsigned i = 0; i < cfg->nr_cpus; i++) {
        uint8_t entry[8] = { 0, 8, i, cfg->apic_ids[i], 1, 0, 0, 0 };
        put_bytes(b, entry, sizeof(entry));
        ioapic_id = MAX(ioapic_id, (uint8_t)(cfg->apic_ids[i] + 1));
    }
    uint8_t ioapic[4] = { 1, 12, ioapic_id, 0 };
    put_bytes(b, ioapic, sizeof(ioapic));
    put_u32(b, 0xfec00000);
    put_u32(b, 0); /* GSI base */
    /* ISA IRQ 0 (the PIT) arrives on GSI 2; PCI IRQs and the SCI (9) are
     * level, active high */
    static const struct {
        uint8_t irq;
        uint32_t gsi;
        uint16_t flags;
    } overrides[] = {
        { 0, 2, 0 }, { 5, 5, 0xd }, { 9, 9, 0xd }, { 10, 10, 0xd }, { 11, 11, 0xd }
    };
    for (size_t i = 0; i < G_N_ELEMENTS(overrides); i++) {
        uint8_t head[4] = { 2, 10, 0, overrides[i].irq };
        put_bytes(b, head, sizeof(head));
        put_u32(b, overrides[i].gsi);
        put_u16(b, overrides[i].flags);
    }
    uint8_t nmi[6] = { 4, 6, 0xff, 0, 0, 1 }; /* LINT1 is NMI on every CPU */
    put_bytes(b, nmi, sizeof(nmi));
    acpi_sdt_end(b, start);
    add_sdt_checksum(t, start);
    return start;
}

/* 5.2.10 FACS: 64 bytes, no checksum; the OS owns the global lock in it. */
static size_t build_facs(AcpiTables *t)
{
    size_t start = t->tables->len;
    uint8_t facs[FACS_SIZE] = { 'F', 'A', 'C', 'S', FACS_SIZE };

    put_bytes(t->tables, facs, sizeof(facs));
    return start;
}

/*
 * 5.2.9 FADT, revision 1 (116 bytes) as QEMU 7.2 gives `pc`: PM1a event
 * and control blocks, the PM timer and GPE0 of the PIIX4 PM function, the
 * SCI, and ACPI mode switched on by writing 0xf1 to the APM port 0xb2.
 */
static size_t build_fadt(AcpiTables *t, size_t facs, size_t dsdt)
{
    GByteArray *b = t->tables;
    size_t start = acpi_sdt_begin(b, "FACP", 1);

    put_u32(b, facs); /* FIRMWARE_CTRL, by the links */
    put_u32(b, dsdt); /* DSDT, by the links */
    put_u8(b, 1);     /* INT_MODEL (ACPI 1.0): dual PIC */
    put_u8(b, 0);     /* preferred PM profile: unspecified */
    put_u16(b, ACPI_SCI_IRQ);
    put_u32(b, ACPI_SMI_CMD);
    put_u8(b, ACPI_ENABLE_VALUE);
    put_u8(b, ACPI_DISABLE_VALUE);
    put_u8(b, 0); /* S4BIOS_REQ */
    put_u8(b, 0); /* PSTATE_CNT */
    put_u32(b, ACPI_PM1A_EVT);
    put_u32(b, 0); /* PM1b_EVT_BLK */
    put_u32(b, ACPI_PM1A_CNT);
    put_u32(b, 0); /* PM1b_CNT_BLK */
    put_u32(b, 0); /* PM2_CNT_BLK */
    put_u32(b, ACPI_PM_TMR);
    put_u32(b, ACPI_GPE0_BLK);
    put_u32(b, 0); /* GPE1_BLK */
    put_u8(b, 4);  /* PM1_EVT_LEN */
    put_u8(b, 2);  /* PM1_CNT_LEN */
    put_u8(b, 0);  /* PM2_CNT_LEN */
    put_u8(b, 4);  /* PM_TMR_LEN */
    put_u8(b, ACPI_GPE0_LEN);
    put_u8(b, 0);      /* GPE1_BLK_LEN */
    put_u8(b, 0);      /* GPE1_BASE */
    put_u8(b, 0);      /* CST_CNT */
    put_u16(b, 0xfff); /* P_LVL2_LAT: no C2 */
    put_u16(b, 0xfff); /* P_LVL3_LAT: no C3 */
    put_u16(b, 0);     /* FLUSH_SIZE */
    put_u16(b, 0);     /* FLUSH_STRIDE */
    put_u8(b, 0);      /* DUTY_OFFSET */
    put_u8(b, 0);      /* DUTY_WIDTH */
    put_u8(b, 0);      /* DAY_ALRM */
    put_u8(b, 0);      /* MON_ALRM */
    put_u8(b, 0x32);   /* CENTURY: the RTC's CMOS byte */
    put_u16(b, 0);     /* IAPC_BOOT_ARCH (ACPI 2.0+) */
    put_u8(b, 0);      /* reserved */
    put_u32(b, FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_RTC_S4 |
                   FADT_USE_PLATFORM_CLOCK);
    g_assert(b->len - start == FADT_REV1_SIZE);
    acpi_sdt_end(b, start);
    add_pointer(t, ACPI_BLOB_TABLES, start + 36);
    add_pointer(t, ACPI_BLOB_TABLES, start + 40);
    add_sdt_checksum(t, start);
    return start;
}

/* 5.2.7 RSDT: 32-bit pointers to every table but FACS and DSDT. */
static size_t build_rsdt(AcpiTables *t, const size_t *entries, unsigned n)
{
    size_t start = acpi_sdt_begin(t->tables, "RSDT", 1);

    for (unsigned i = 0; i < n; i++) {
        add_pointer(t, ACPI_BLOB_TABLES, t->tables->len);
        put_u32(t->tables, entries[i]);
    }
    acpi_sdt_end(t->tables, start);
    add_sdt_checksum(t, start);
    return start;
}

/* 5.2.5.3 RSDP, revision 0 (ACPI 1.0, 20 bytes): the RSDT's address. */
static void build_rsdp(AcpiTables *t, size_t rsdt)
{
    GByteArray *b = t->rsdp;

    put_bytes(b, "RSD PTR ", 8);
    put_u8(b, 0); /* checksum */
    put_bytes(b, "DVISOR", 6);
    put_u8(b, 0); /* revision */
    put_u32(b, rsdt);
    add_pointer(t, ACPI_BLOB_RSDP, 16);
    add_link(t, (AcpiLink){ .kind = ACPI_LINK_CHECKSUM,
                            .blob = ACPI_BLOB_RSDP,
                            .offset = 8,
                            .start = 0,
                            .length = 20 });
}

void acpi_tables_build(const AcpiConfig *cfg, AcpiTables *t)
{
    size_t entries[2];
    unsigned n = 0;

    t->tables = g_byte_array_new();
    t->rsdp = g_byte_array_new();
    t->links = g_array_new(FALSE, TRUE, sizeof(AcpiLink));
    if (cfg->pm) {
        size_t facs = build_facs(t); /* first: the blob is 64-byte aligned */
        size_t dsdt = t->tables->len;

        acpi_build_dsdt(t->tables, cfg);
        add_sdt_checksum(t, dsdt);
        entries[n++] = build_fadt(t, facs, dsdt);
    }
    entries[n++] = build_madt(t, cfg);
    build_rsdp(t, build_rsdt(t, entries, n));
}

void acpi_tables_free(AcpiTables *t)
{
    if (t->tables) {
        g_byte_array_free(t->tables, TRUE);
        g_byte_array_free(t->rsdp, TRUE);
        g_array_free(t->links, TRUE);
    }
    memset(t, 0, sizeof(*t));
}

void acpi_tables_link(const AcpiTables *t, uint64_t tables_addr, uint8_t *tables,
                      uint8_t *rsdp)
{
    memcpy(tables, t->tables->data, t->tables->len);
    memcpy(rsdp, t->rsdp->data, t->rsdp->len);
    for (guint i = 0; i < t->links->len; i++) {
        const AcpiLink *l = &g_array_index(t->links, AcpiLink, i);
        uint8_t *base = l->blob == ACPI_BLOB_RSDP ? rsdp : tables;

        if (l->kind == ACPI_LINK_POINTER) {
            uint32_t v;

            g_assert(l->size == 4);
            memcpy(&v, base + l->offset, 4);
            v = GUINT32_TO_LE(GUINT32_FROM_LE(v) + (uint32_t)tables_addr);
            memcpy(base + l->offset, &v, 4);
        } else {
            uint8_t sum = 0;

            base[l->offset] = 0;
            for (uint32_t j = 0; j < l->length; j++) {
                sum += base[l->start + j];
            }
            base[l->offset] = -sum;
        }
    }
}

bool acpi_tables_place(const AcpiTables *t, const GuestMemory *mem, uint64_t rsdp_addr,
                       uint64_t tables_addr, uint64_t tables_end, GError **errp)
{
    uint8_t *tables, *rsdp;

    if (tables_addr + t->tables->len > tables_end || tables_addr > UINT32_MAX) {
        error_setg(errp, "ACPI tables (%u bytes) do not fit at 0x%" G_GINT64_MODIFIER "x",
                   t->tables->len, tables_addr);
        return false;
    }
    tables = guest_memory_hva(mem, tables_addr, t->tables->len);
    rsdp = guest_memory_hva(mem, rsdp_addr, t->rsdp->len);
    if (!tables || !rsdp || (rsdp_addr & 15) ||
        (rsdp_addr < tables_addr + t->tables->len && tables_addr < rsdp_addr + 20)) {
        error_setg(errp,
                   "ACPI: the RSDP at 0x%" G_GINT64_MODIFIER
                   "x and the tables at 0x%" G_GINT64_MODIFIER
                   "x must be in guest RAM, apart, the RSDP 16-byte "
                   "aligned",
                   rsdp_addr, tables_addr);
        return false;
    }
    acpi_tables_link(t, tables_addr, tables, rsdp);
    return true;
}
