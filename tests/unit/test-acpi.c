/*
 * The AML encoder (hw/acpi/aml.c) against byte sequences worked out from
 * ACPI 6.4's grammar (chapter 20) and resource descriptors (section 6.4),
 * and the table set (hw/acpi/tables.c, dsdt.c): what RSDP, RSDT, FADT,
 * FACS, MADT and DSDT say, checksums, placement for a direct boot.  The
 * case dump_tables writes the linked tables to $ACPI_DUMP_DIR for
 * tests/functional/test_acpi_tables.py, which disassembles them with iasl.
 */
#include <glib.h>
#include <glib/gstdio.h>

#include "hw/acpi/acpi-tables.h"
#include "hw/acpi/aml.h"
#include "unit.h"

/* Encode a and compare with the expected bytes; print both on a mismatch. */
static bool aml_is(Aml *a, const uint8_t *want, size_t len, int line)
{
    GByteArray *out = g_byte_array_new();
    bool same;

    aml_encode(out, a);
    same = out->len == len && memcmp(out->data, want, len) == 0;
    if (!same) {
        fprintf(stderr, "line %d: got", line);
        for (guint i = 0; i < out->len; i++) {
            fprintf(stderr, " %02x", out->data[i]);
        }
        fprintf(stderr, "\nline %d: want", line);
        for (size_t i = 0; i < len; i++) {
            fprintf(stderr, " %02x", want[i]);
        }
        fprintf(stderr, "\n");
    }
    g_byte_array_free(out, TRUE);
    return same;
}

#define CHECK_AML(a, ...)                                                                \
    do {                                                                                 \
        static const uint8_t want_[] = { __VA_ARGS__ };                                  \
        CHECK(aml_is((a), want_, sizeof(want_), __LINE__));                              \
    } while (0)

UNIT_TEST(integers_take_the_shortest_form)
{
    CHECK_AML(aml_int(0), 0x00);
    CHECK_AML(aml_int(1), 0x01);
    CHECK_AML(aml_int(UINT64_MAX), 0xff);
    CHECK_AML(aml_int(0x0f), 0x0a, 0x0f);
    CHECK_AML(aml_int(0x1234), 0x0b, 0x34, 0x12);
    CHECK_AML(aml_int(0x12345678), 0x0c, 0x78, 0x56, 0x34, 0x12);
    CHECK_AML(aml_int(0x100000000ULL), 0x0e, 0, 0, 0, 0, 1, 0, 0, 0);
    CHECK_AML(aml_dword(0xffff), 0x0c, 0xff, 0xff, 0, 0);
    CHECK_AML(aml_string("PNP0A06"), 0x0d, 'P', 'N', 'P', '0', 'A', '0', '6', 0);
    /* 6.1.5: EisaId ("PNP0A03") is 0x030AD041 */
    CHECK_AML(aml_eisaid("PNP0A03"), 0x0c, 0x41, 0xd0, 0x0a, 0x03);
    CHECK_AML(aml_eisaid("PNP0C0F"), 0x0c, 0x41, 0xd0, 0x0c, 0x0f);
}

UNIT_TEST(name_strings_use_prefixes_and_padding)
{
    CHECK_AML(aml_name("LNKA"), 'L', 'N', 'K', 'A');
    CHECK_AML(aml_name("ISA"), 'I', 'S', 'A', '_');
    CHECK_AML(aml_name("^PCI"), 0x5e, 'P', 'C', 'I', '_');
    CHECK_AML(aml_name("\\_SB.PCI0"), 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0');
    CHECK_AML(aml_name("\\_SB.PCI0.BLCK"), 0x5c, 0x2f, 3, '_', 'S', 'B', '_', 'P', 'C',
              'I', '0', 'B', 'L', 'C', 'K');
    CHECK_AML(aml_name("\\"), 0x5c, 0x00);
    CHECK_AML(aml_local(0), 0x60);
    CHECK_AML(aml_arg(1), 0x69);
}

/* 20.2.4: PkgLength counts itself; one byte up to 63, then 2, 3 bytes. */
UNIT_TEST(package_lengths_grow_with_the_body)
{
    uint8_t data[0x1000] = { 0 };
    GByteArray *out = g_byte_array_new();
    Aml *scope;

    CHECK_AML(aml_scope("\\_SB"), 0x10, 0x06, 0x5c, '_', 'S', 'B', '_');
    /* 60 bytes: BufferSize 0a 3c + data = 62, +1 = 63 still fits one byte */
    aml_encode(out, aml_buffer(data, 60));
    CHECK_EQ(out->data[1], 0x3f);
    CHECK_EQ(out->len, 2 + 62);
    /* 61 bytes: 63 + 2 = 65 = 0x41: lead 0x40 | 1, then 0x04 */
    g_byte_array_set_size(out, 0);
    aml_encode(out, aml_buffer(data, 61));
    CHECK_EQ(out->data[1], 0x41);
    CHECK_EQ(out->data[2], 0x04);
    CHECK_EQ(out->len, 1 + 2 + 63);
    /* 0x1000 bytes: 0b 00 10 + 0x1000 = 0x1003, + 3 = 0x1006: three bytes */
    g_byte_array_set_size(out, 0);
    aml_encode(out, aml_buffer(data, sizeof(data)));
    CHECK_EQ(out->data[1], 0x86);
    CHECK_EQ(out->data[2], 0x00);
    CHECK_EQ(out->data[3], 0x01);
    CHECK_EQ(out->len, 1 + 3 + 0x1003);
    /* a container's length covers what was appended to it */
    g_byte_array_set_size(out, 0);
    scope = aml_scope("\\_SB");
    aml_append(scope, aml_buffer(data, 0xfe0));
    aml_encode(out, scope);
    CHECK_EQ(out->len, 1 + 2 + 5 + (1 + 2 + 3 + 0xfe0));
    CHECK_EQ(out->data[1] >> 6, 1);
    CHECK_EQ(((out->data[1] & 0xf) | out->data[2] << 4), out->len - 1);
    g_byte_array_free(out, TRUE);
}

UNIT_TEST(named_objects_encode_as_the_grammar_says)
{
    Aml *dev, *m, *field, *pkg, *cond, *other;

    /* Name (_HID, EisaId ("PNP0A03")) */
    CHECK_AML(aml_name_decl("_HID", aml_eisaid("PNP0A03")), 0x08, '_', 'H', 'I', 'D',
              0x0c, 0x41, 0xd0, 0x0a, 0x03);
    /* Device (PCI0) { Name (_ADR, Zero) } */
    dev = aml_device("PCI0");
    aml_append(dev, aml_name_decl("_ADR", aml_int(0)));
    CHECK_AML(dev, 0x5b, 0x82, 0x0b, 'P', 'C', 'I', '0', 0x08, '_', 'A', 'D', 'R', 0x00);
    /* Method (_STA, 0, NotSerialized) { Return (0x0F) } */
    m = aml_method("_STA", 0, false);
    aml_append(m, aml_return(aml_int(0xf)));
    CHECK_AML(m, 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f);
    /* Method (IQCR, 1, Serialized) {} */
    CHECK_AML(aml_method("IQCR", 1, true), 0x14, 0x06, 'I', 'Q', 'C', 'R', 0x09);
    /* OperationRegion (PHPC, SystemIO, 0xAE00, 0x14) */
    CHECK_AML(aml_operation_region("PHPC", AML_SYSTEM_IO, aml_int(0xae00), aml_int(0x14)),
              0x5b, 0x80, 'P', 'H', 'P', 'C', 0x01, 0x0b, 0x00, 0xae, 0x0a, 0x14);
    /* Field (PHPC, DWordAcc, NoLock, WriteAsZeros) { PCIU, 32, , 256 } */
    field = aml_field("PHPC", AML_ACCESS_DWORD, false, AML_WRITE_AS_ZEROS);
    aml_append(field, aml_named_field("PCIU", 32));
    aml_append(field, aml_reserved_field(256));
    CHECK_AML(field, 0x5b, 0x81, 0x0e, 'P', 'H', 'P', 'C', 0x43, 'P', 'C', 'I', 'U', 0x20,
              0x00, 0x40, 0x10);
    /* Field (PCI0.ISA.P40C, ByteAcc, Lock, Preserve) {} */
    CHECK_AML(aml_field("PCI0.ISA.P40C", AML_ACCESS_BYTE, true, AML_PRESERVE), 0x5b, 0x81,
              0x10, 0x2f, 3, 'P', 'C', 'I', '0', 'I', 'S', 'A', '_', 'P', '4', '0', 'C',
              0x11);
    /* Mutex (BLCK, 0); Acquire (BLCK, 0xFFFF); Release (BLCK) */
    CHECK_AML(aml_mutex("BLCK", 0), 0x5b, 0x01, 'B', 'L', 'C', 'K', 0x00);
    CHECK_AML(aml_acquire(aml_name("BLCK"), 0xffff), 0x5b, 0x23, 'B', 'L', 'C', 'K', 0xff,
              0xff);
    CHECK_AML(aml_release(aml_name("BLCK")), 0x5b, 0x27, 'B', 'L', 'C', 'K');
    /* CreateDWordField (Arg0, 0x05, PRRI) */
    CHECK_AML(aml_create_dword_field(aml_arg(0), aml_int(5), "PRRI"), 0x8a, 0x68, 0x0a,
              0x05, 'P', 'R', 'R', 'I');
    /* Name (_S5, Package () { Zero, Zero, Zero, Zero }) */
    pkg = aml_package();
    for (int i = 0; i < 4; i++) {
        aml_append(pkg, aml_int(0));
    }
    CHECK_AML(aml_name_decl("_S5", pkg), 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0, 0,
              0, 0);
    /* If (LEqual (Arg0, One)) { Return (One) } Else { Return (Zero) } */
    cond = aml_if(aml_lequal(aml_arg(0), aml_int(1)));
    aml_append(cond, aml_return(aml_int(1)));
    other = aml_else();
    aml_append(other, aml_return(aml_int(0)));
    CHECK_AML(cond, 0xa0, 0x06, 0x93, 0x68, 0x01, 0xa4, 0x01);
    CHECK_AML(other, 0xa1, 0x03, 0xa4, 0x00);
}

UNIT_TEST(expressions_and_calls)
{
    /* Store (ShiftLeft (One, Arg0), B0EJ) */
    CHECK_AML(aml_store(aml_shiftleft(aml_int(1), aml_arg(0), NULL), aml_name("B0EJ")),
              0x70, 0x79, 0x01, 0x68, 0x00, 'B', '0', 'E', 'J');
    /* And (Arg0, 0x04, ) ; Or (PRQ0, 0x80, PRQ0) */
    CHECK_AML(aml_and(aml_arg(0), aml_int(4), NULL), 0x7b, 0x68, 0x0a, 0x04, 0x00);
    CHECK_AML(aml_or(aml_name("PRQ0"), aml_int(0x80), aml_name("PRQ0")), 0x7d, 'P', 'R',
              'Q', '0', 0x0a, 0x80, 'P', 'R', 'Q', '0');
    /* LLess (Arg0, 0x80) */
    CHECK_AML(aml_lless(aml_arg(0), aml_int(0x80)), 0x95, 0x68, 0x0a, 0x80);
    /* Notify (S02, Arg1) */
    CHECK_AML(aml_notify(aml_name("S02"), aml_arg(1)), 0x86, 'S', '0', '2', '_', 0x69);
    /* DVNT (PCIU, One) */
    CHECK_AML(aml_call("DVNT", 2, aml_name("PCIU"), aml_int(1)), 'D', 'V', 'N', 'T', 'P',
              'C', 'I', 'U', 0x01);
    CHECK_AML(aml_call("\\_SB.PCI0.PCNT", 0), 0x5c, 0x2f, 3, '_', 'S', 'B', '_', 'P', 'C',
              'I', '0', 'P', 'C', 'N', 'T');
    /* 6.2.13: Package () { 0x0002FFFF, Zero, LNKB, Zero } */
    CHECK_AML(aml_prt_entry(2, 0, "LNKB"), 0x12, 0x0d, 0x04, 0x0c, 0xff, 0xff, 0x02, 0x00,
              0x00, 'L', 'N', 'K', 'B', 0x00);
}

UNIT_TEST(resource_descriptors_match_section_6_4)
{
    static const uint32_t irqs[] = { 5, 10, 11 };
    Aml *rt = aml_resource_template();

    /* ResourceTemplate () { IO (Decode16, 0x3F8, 0x3F8, 1, 8) IRQNoFlags () {4} } */
    aml_append(rt, aml_io(0x3f8, 0x3f8, 1, 8));
    aml_append(rt, aml_irq_no_flags(4));
    CHECK_AML(rt, 0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
              0x22, 0x10, 0x00, 0x79, 0x00);
    /* Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) {5, 10, 11} */
    CHECK_AML(aml_interrupt(true, false, true, irqs, 3), 0x89, 0x0e, 0x00, 0x09, 0x03, 5,
              0, 0, 0, 10, 0, 0, 0, 11, 0, 0, 0);
    /* Interrupt (ResourceConsumer, Edge, ActiveLow, Exclusive) {9} */
    CHECK_AML(aml_interrupt(false, true, false, irqs + 1, 1), 0x89, 0x06, 0x00, 0x07,
              0x01, 10, 0, 0, 0);
    /* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0,
     * 0x100) */
    CHECK_AML(aml_word_bus_number(0, 0xff), 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0,
              0, 0xff, 0, 0, 0, 0x00, 0x01);
    /* WordIO (..., EntireRange, 0, 0x0D00, 0xFFFF, 0, 0xF300) */
    CHECK_AML(aml_word_io(0xd00, 0xffff), 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00,
              0x0d, 0xff, 0xff, 0, 0, 0x00, 0xf3);
    /* DWordMemory (..., Cacheable, ReadWrite, 0, 0xA0000, 0xBFFFF, 0, 0x20000) */
    CHECK_AML(aml_dword_memory(true, 0xa0000, 0xbffff), 0x87, 0x17, 0x00, 0x00, 0x0c,
              0x03, 0, 0, 0, 0, 0x00, 0x00, 0x0a, 0x00, 0xff, 0xff, 0x0b, 0x00, 0, 0, 0,
              0, 0x00, 0x00, 0x02, 0x00);
    /* QWordMemory (..., NonCacheable, ReadWrite, 0, 4G, 6G - 1, 0, 2G) */
    CHECK_AML(aml_qword_memory(false, 0x100000000ULL, 0x17fffffffULL), 0x8a, 0x2b, 0x00,
              0x00, 0x0c, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xff,
              0xff, 0xff, 0x7f, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0,
              0, 0);
}

/* ---- the tables ---- */

static const uint8_t apic_ids[] = { 0, 1, 2, 3 };

static AcpiConfig pc_config(bool pm)
{
    return (AcpiConfig){
        .nr_cpus = 4,
        .apic_ids = apic_ids,
        .pm = pm,
        .hotplug_slots = ~3u, /* 2-31: slot 0 host, slot 1 PIIX */
        .serial_ports = 1,
        .ram_below_4g = 0x08000000,
        .ram_above_4g = 0,
    };
}

static uint32_t rd32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;

    for (size_t i = 0; i < len; i++) {
        s += p[i];
    }
    return s;
}

/* A flat 1 MiB of guest RAM for placing tables. */
typedef struct FakeRam {
    uint8_t bytes[0x100000];
} FakeRam;

static void *fake_hva(void *opaque, uint64_t gpa, uint64_t len)
{
    FakeRam *ram = opaque;

    return gpa + len <= sizeof(ram->bytes) ? ram->bytes + gpa : NULL;
}

/* The table with signature sig that the RSDT at rsdt points to, or NULL. */
static const uint8_t *find_table(const uint8_t *ram, const uint8_t *rsdt, const char *sig)
{
    for (uint32_t off = 36; off < rd32(rsdt + 4); off += 4) {
        const uint8_t *t = ram + rd32(rsdt + off);
        if (memcmp(t, sig, 4) == 0) {
            return t;
        }
    }
    return NULL;
}

/* Place the tables as a direct boot does and find the RSDP as Linux does:
 * scanning 0xE0000-0xFFFFF on 16-byte boundaries. */
static const uint8_t *place_and_find_rsdp(FakeRam *ram, const AcpiConfig *cfg)
{
    GuestMemory mem = { fake_hva, ram };
    AcpiTables t;
    GError *err = NULL;
    const uint8_t *rsdp = NULL;

    memset(ram, 0, sizeof(*ram));
    acpi_tables_build(cfg, &t);
    CHECK(acpi_tables_place(&t, &mem, ACPI_BOOT_RSDP_ADDR, ACPI_BOOT_TABLES_ADDR,
                            ACPI_BOOT_TABLES_END, &err));
    CHECK(err == NULL);
    acpi_tables_free(&t);
    for (uint32_t a = 0xe0000; a < 0x100000; a += 16) {
        if (memcmp(ram->bytes + a, "RSD PTR ", 8) == 0) {
            rsdp = ram->bytes + a;
            break;
        }
    }
    CHECK(rsdp != NULL);
    if (!rsdp) {
        return NULL;
    }
    CHECK_EQ(sum(rsdp, 20), 0);
    CHECK_EQ(rsdp[15], 0); /* revision 0: RSDT only */
    return rsdp;
}

static const uint8_t *place_and_find_rsdt(FakeRam *ram, const AcpiConfig *cfg)
{
    const uint8_t *rsdp = place_and_find_rsdp(ram, cfg);

    return rsdp ? ram->bytes + rd32(rsdp + 16) : NULL;
}

UNIT_TEST(without_pm_only_rsdt_and_madt_are_built)
{
    static FakeRam ram;
    AcpiConfig cfg = pc_config(false);
    const uint8_t *rsdt = place_and_find_rsdt(&ram, &cfg), *madt;

    CHECK(rsdt && memcmp(rsdt, "RSDT", 4) == 0);
    if (!rsdt) {
        return;
    }
    CHECK_EQ(rd32(rsdt + 4), 36 + 4);
    CHECK_EQ(sum(rsdt, rd32(rsdt + 4)), 0);
    madt = find_table(ram.bytes, rsdt, "APIC");
    CHECK(madt != NULL);
    CHECK(find_table(ram.bytes, rsdt, "FACP") == NULL);
    if (madt) {
        CHECK_EQ(sum(madt, rd32(madt + 4)), 0);
        /* four local APIC entries, then the I/O APIC with id 4 */
        CHECK_EQ(madt[44], 0);
        CHECK_EQ(madt[44 + 3 * 8 + 3], 3);
        CHECK_EQ(madt[44 + 4 * 8], 1);
        CHECK_EQ(madt[44 + 4 * 8 + 2], 4);
    }
}

static bool contains(const uint8_t *hay, size_t len, const char *needle)
{
    return memmem(hay, len, needle, strlen(needle)) != NULL;
}

UNIT_TEST(with_pm_the_fadt_names_the_piix4_blocks_and_the_dsdt)
{
    static FakeRam ram;
    AcpiConfig cfg = pc_config(true);
    const uint8_t *rsdt = place_and_find_rsdt(&ram, &cfg), *fadt, *dsdt, *facs;

    if (!rsdt) {
        return;
    }
    CHECK_EQ(sum(rsdt, rd32(rsdt + 4)), 0);
    CHECK(find_table(ram.bytes, rsdt, "APIC") != NULL);
    fadt = find_table(ram.bytes, rsdt, "FACP");
    CHECK(fadt != NULL);
    if (!fadt) {
        return;
    }
    CHECK_EQ(rd32(fadt + 4), 116);
    CHECK_EQ(fadt[8], 1); /* revision 1, as QEMU's pc */
    CHECK_EQ(sum(fadt, 116), 0);
    CHECK_EQ(fadt[46] | fadt[47] << 8, 9); /* SCI_INT */
    CHECK_EQ(rd32(fadt + 48), 0xb2);       /* SMI_CMD */
    CHECK_EQ(fadt[52], 0xf1);
    CHECK_EQ(rd32(fadt + 56), 0x600);  /* PM1a_EVT_BLK */
    CHECK_EQ(rd32(fadt + 64), 0x604);  /* PM1a_CNT_BLK */
    CHECK_EQ(rd32(fadt + 76), 0x608);  /* PM_TMR_BLK */
    CHECK_EQ(rd32(fadt + 80), 0xafe0); /* GPE0_BLK */
    CHECK_EQ(fadt[88], 4);
    CHECK_EQ(fadt[89], 2);
    CHECK_EQ(fadt[91], 4);
    CHECK_EQ(fadt[92], 4);
    CHECK_EQ(rd32(fadt + 112), 0x80a5); /* power button: fixed feature */
    CHECK_EQ(rd32(fadt + 112) & (1u << 4), 0);
    facs = ram.bytes + rd32(fadt + 36);
    CHECK(memcmp(facs, "FACS", 4) == 0);
    CHECK_EQ(rd32(facs + 4), 64);
    CHECK_EQ(rd32(fadt + 36) % 64, 0);
    dsdt = ram.bytes + rd32(fadt + 40);
    CHECK(memcmp(dsdt, "DSDT", 4) == 0);
    CHECK_EQ(sum(dsdt, rd32(dsdt + 4)), 0);
    CHECK(contains(dsdt, rd32(dsdt + 4), "PCI0"));
    CHECK(contains(dsdt, rd32(dsdt + 4), "PCNT"));
    CHECK(contains(dsdt, rd32(dsdt + 4), "_E01"));
    CHECK(contains(dsdt, rd32(dsdt + 4), "S1F_"));
    CHECK(contains(dsdt, rd32(dsdt + 4), "S02_"));
    CHECK(!contains(dsdt, rd32(dsdt + 4), "S01_")); /* the PIIX3's slot */
    CHECK(contains(dsdt, rd32(dsdt + 4), "COM1"));
    CHECK(!contains(dsdt, rd32(dsdt + 4), "COM2"));
}

/* The root bridge's windows follow the RAM split: 32-bit MMIO from the end
 * of low RAM to the I/O APIC, 64-bit from the next GiB above high RAM. */
UNIT_TEST(pci_windows_follow_the_ram_split)
{
    static const uint8_t mem32[] = {
        0x87, 0x17, 0,    0,    0x0c, 0x01, 0,    0,    0,
        0,    0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xbf, 0xfe
    };
    static const uint8_t mem64[] = { 0x8a, 0x2b, 0, 0, 0x0c, 0x03, 0,    0,    0,
                                     0,    0,    0, 0, 0,    0,    0,    0,    0xc0,
                                     2,    0,    0, 0, 0xff, 0xff, 0xff, 0x3f, 3 };
    AcpiConfig cfg = pc_config(true);
    AcpiTables t;

    cfg.ram_below_4g = 0xc0000000;
    cfg.ram_above_4g = 0x1b0000000ULL; /* high RAM ends at 10.75 GiB: 64-bit from 11 */
    acpi_tables_build(&cfg, &t);
    CHECK(memmem(t.tables->data, t.tables->len, mem32, sizeof(mem32)) != NULL);
    CHECK(memmem(t.tables->data, t.tables->len, mem64, sizeof(mem64)) != NULL);
    acpi_tables_free(&t);
}

UNIT_TEST(placement_refuses_what_does_not_fit)
{
    static FakeRam ram;
    GuestMemory mem = { fake_hva, &ram };
    AcpiConfig cfg = pc_config(true);
    AcpiTables t;
    GError *err = NULL;

    acpi_tables_build(&cfg, &t);
    CHECK(!acpi_tables_place(&t, &mem, ACPI_BOOT_RSDP_ADDR, ACPI_BOOT_TABLES_ADDR,
                             ACPI_BOOT_TABLES_ADDR + 256, &err));
    CHECK(err && strstr(err->message, "do not fit"));
    g_clear_error(&err);
    CHECK(!acpi_tables_place(&t, &mem, 0xffff0, 0x200000, 0x300000, &err));
    CHECK(err != NULL);
    g_clear_error(&err);
    acpi_tables_free(&t);
}

static bool write_table(const char *dir, const char *name, const uint8_t *data,
                        size_t len)
{
    gchar *path = g_build_filename(dir, name, NULL);
    bool ok = g_file_set_contents(path, (const gchar *)data, len, NULL);

    g_free(path);
    return ok;
}

/*
 * Every table of the full set and the RSDP, linked at 0xE0040, one file
 * each (SIG.dat), in $ACPI_DUMP_DIR or a scratch folder removed afterwards.
 */
UNIT_TEST(dump_tables)
{
    const char *env = g_getenv("ACPI_DUMP_DIR");
    gchar *dir = env ? g_strdup(env) : g_dir_make_tmp("acpi-XXXXXX", NULL);
    static FakeRam ram;
    AcpiConfig cfg = pc_config(true);
    const uint8_t *rsdp = place_and_find_rsdp(&ram, &cfg), *rsdt, *fadt;
    unsigned written = 0;

    CHECK(dir != NULL && rsdp != NULL);
    if (!dir || !rsdp) {
        g_free(dir);
        return;
    }
    rsdt = ram.bytes + rd32(rsdp + 16);
    written += write_table(dir, "RSDP.dat", rsdp, 20);
    written += write_table(dir, "RSDT.dat", rsdt, rd32(rsdt + 4));
    for (uint32_t off = 36; off < rd32(rsdt + 4); off += 4) {
        const uint8_t *t = ram.bytes + rd32(rsdt + off);
        gchar *name = g_strdup_printf("%.4s.dat", (const char *)t);
        written += write_table(dir, name, t, rd32(t + 4));
        g_free(name);
    }
    fadt = find_table(ram.bytes, rsdt, "FACP");
    if (fadt) {
        const uint8_t *facs = ram.bytes + rd32(fadt + 36);
        const uint8_t *dsdt = ram.bytes + rd32(fadt + 40);
        written += write_table(dir, "FACS.dat", facs, rd32(facs + 4));
        written += write_table(dir, "DSDT.dat", dsdt, rd32(dsdt + 4));
    }
    CHECK_EQ(written, 6);
    if (!env) {
        static const char *const names[] = { "RSDP", "RSDT", "APIC",
                                             "FACP", "FACS", "DSDT" };
        for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) {
            gchar *name = g_strdup_printf("%s.dat", names[i]);
            gchar *path = g_build_filename(dir, name, NULL);
            CHECK_EQ(g_unlink(path), 0);
            g_free(path);
            g_free(name);
        }
        g_rmdir(dir);
    } else {
        printf("tables written to %s\n", dir);
    }
    g_free(dir);
}

UNIT_MAIN()
