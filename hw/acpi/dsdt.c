/*
 * The DSDT of the pc machine in AML (ACPI 6.4): \_SB.PCI0, the i440FX root
 * bridge with its windows and _PRT through the PIIX3 PIRQ link devices
 * LNKA-LNKD (and LNKS, the SCI), the ISA devices, one hot-plug slot device
 * per hot-pluggable slot driven by QEMU's PCI hot-plug registers at 0xae00,
 * \_GPE._E01 notifying them, and \_S5.  The same objects, names and
 * register protocol as QEMU 7.2's `pc`, so guests behave the same.
 * No global state.
 */
#include "acpi-int.h"
#include "hw/acpi/aml.h"

#define PIRQ_ROUTE_REG          0x60 /* PIIX3 config: PIRQA-D route bytes */
#define PIRQ_DISABLED           0x80
#define GPE_EVENT_DEVICE_CHECK  1 /* 5.6.6: Notify values */
#define GPE_EVENT_EJECT_REQUEST 3

static const char *const link_names[] = { "LNKA", "LNKB", "LNKC", "LNKD" };
static const char *const pirq_fields[] = { "PRQ0", "PRQ1", "PRQ2", "PRQ3" };

static Aml *res_template_1(Aml *item)
{
    Aml *rt = aml_resource_template();

    aml_append(rt, item);
    return rt;
}

/* An ISA device: _HID, optional _UID, _STA present, _CRS of ports + IRQ. */
static Aml *isa_device(const char *name, const char *hid, int uid, uint16_t port,
                       uint8_t len, uint16_t port2, unsigned irq)
{
    Aml *dev = aml_device(name);
    Aml *crs = aml_resource_template();

    aml_append(dev, aml_name_decl("_HID", aml_eisaid(hid)));
    if (uid >= 0) {
        aml_append(dev, aml_name_decl("_UID", aml_int(uid)));
    }
    aml_append(dev, aml_name_decl("_STA", aml_int(0xf)));
    if (port) {
        aml_append(crs, aml_io(port, port, 1, len));
    }
    if (port2) {
        aml_append(crs, aml_io(port2, port2, 1, len));
    }
    aml_append(crs, aml_irq_no_flags(irq));
    aml_append(dev, aml_name_decl("_CRS", crs));
    return dev;
}

/* 00:01.0, the PIIX3 ISA bridge, with its PIRQ route registers and the
 * legacy devices behind it (the same as QEMU describes them). */
static Aml *build_isa(const AcpiConfig *cfg)
{
    static const struct {
        uint16_t port;
        unsigned irq;
    } com[4] = { { 0x3f8, 4 }, { 0x2f8, 3 }, { 0x3e8, 4 }, { 0x2e8, 3 } };
    Aml *isa = aml_device("ISA");

    aml_append(isa, aml_name_decl("_ADR", aml_int(0x00010000)));
    aml_append(isa, aml_operation_region("P40C", AML_PCI_CONFIG, aml_int(PIRQ_ROUTE_REG),
                                         aml_int(4)));
    aml_append(isa, isa_device("KBD", "PNP0303", -1, 0x60, 1, 0x64, 1));
    aml_append(isa, isa_device("MOU", "PNP0F13", -1, 0, 0, 0, 12));
    aml_append(isa, isa_device("RTC", "PNP0B00", -1, 0x70, 8, 0, 8));
    for (unsigned i = 0; i < 4; i++) {
        if (cfg->serial_ports & (1u << i)) {
            char name[5] = { 'C', 'O', 'M', '1' + i, 0 };
            aml_append(isa,
                       isa_device(name, "PNP0501", i + 1, com[i].port, 8, 0, com[i].irq));
        }
    }
    return isa;
}

/*
 * 6.4.3.5 _CRS of the root bridge: buses 0-255, the config ports, all
 * other I/O, the VGA window, the 32-bit hole from the end of low RAM up to
 * the I/O APIC, and a 2 GiB 64-bit window above high RAM (1 GiB aligned),
 * as QEMU's i440FX gives them.
 */
static Aml *build_pci_crs(const AcpiConfig *cfg)
{
    Aml *crs = aml_resource_template();
    uint64_t hole64 = ((0x100000000ULL + cfg->ram_above_4g) + (1ULL << 30) - 1) &
                      ~((1ULL << 30) - 1);

    aml_append(crs, aml_word_bus_number(0, 0xff));
    aml_append(crs, aml_io(0xcf8, 0xcf8, 1, 8));
    aml_append(crs, aml_word_io(0, 0xcf7));
    aml_append(crs, aml_word_io(0xd00, 0xffff));
    aml_append(crs, aml_dword_memory(true, 0xa0000, 0xbffff));
    aml_append(crs, aml_dword_memory(false, cfg->ram_below_4g, 0xfebfffff));
    aml_append(crs, aml_qword_memory(true, hole64, hole64 + (1ULL << 31) - 1));
    return crs;
}

/*
 * 6.2.13 _PRT: every slot's INTA-D to a PIRQ link, slot s pin p (0 = A)
 * on PIRQ (s + p - 1) mod 4 as the PIIX3 wires them; 00:01 INTA is the
 * PM function's SCI (LNKS).
 */
static Aml *build_prt(void)
{
    Aml *prt = aml_package();

    for (unsigned slot = 0; slot < 32; slot++) {
        for (unsigned pin = 0; pin < 4; pin++) {
            const char *link = link_names[(slot + pin + 3) & 3];
            aml_append(prt,
                       aml_prt_entry(slot, pin, slot == 1 && pin == 0 ? "LNKS" : link));
        }
    }
    return prt;
}

/* QEMU's PCI hot-plug registers: UP, DOWN, EJ, RMV, SEL (bus select). */
static void build_hotplug_registers(Aml *pci)
{
    Aml *field = aml_field("PHPC", AML_ACCESS_DWORD, false, AML_WRITE_AS_ZEROS);
    Aml *pcej = aml_method("PCEJ", 1, false);

    aml_append(pci, aml_operation_region("PHPC", AML_SYSTEM_IO, aml_int(ACPI_PCIHP_BASE),
                                         aml_int(ACPI_PCIHP_LEN)));
    aml_append(field, aml_named_field("PCIU", 32));
    aml_append(field, aml_named_field("PCID", 32));
    aml_append(field, aml_named_field("B0EJ", 32));
    aml_append(field, aml_named_field("PCRM", 32));
    aml_append(field, aml_named_field("BNUM", 32));
    aml_append(pci, field);
    aml_append(pci, aml_mutex("BLCK", 0));
    /* PCEJ (slot): select bus 0, write the slot's bit to EJ */
    aml_append(pcej, aml_acquire(aml_name("BLCK"), 0xffff));
    aml_append(pcej, aml_store(aml_int(0), aml_name("BNUM")));
    aml_append(pcej,
               aml_store(aml_shiftleft(aml_int(1), aml_arg(0), NULL), aml_name("B0EJ")));
    aml_append(pcej, aml_release(aml_name("BLCK")));
    aml_append(pcej, aml_return(aml_int(0)));
    aml_append(pci, pcej);
}

static void slot_name(char name[5], unsigned slot)
{
    g_snprintf(name, 5, "S%02X", slot);
}

/* Sxx per hot-pluggable slot, then DVNT (bitmap, event) and PCNT. */
static void build_slots(Aml *pci, const AcpiConfig *cfg)
{
    Aml *dvnt = aml_method("DVNT", 2, false);
    Aml *pcnt = aml_method("PCNT", 0, false);
    char name[5];

    for (unsigned slot = 1; slot < 32; slot++) {
        Aml *dev, *ej0, *cond;

        if (!(cfg->hotplug_slots & (1u << slot))) {
            continue;
        }
        slot_name(name, slot);
        dev = aml_device(name);
        aml_append(dev, aml_name_decl("_ADR", aml_int(slot << 16)));
        aml_append(dev, aml_name_decl("_SUN", aml_int(slot)));
        ej0 = aml_method("_EJ0", 1, false);
        aml_append(ej0, aml_call("PCEJ", 1, aml_name("_SUN")));
        aml_append(dev, ej0);
        aml_append(pci, dev);

        cond = aml_if(aml_and(aml_arg(0), aml_int(1u << slot), NULL));
        aml_append(cond, aml_notify(aml_name(name), aml_arg(1)));
        aml_append(dvnt, cond);
    }
    aml_append(pci, dvnt);
    aml_append(pcnt, aml_store(aml_int(0), aml_name("BNUM")));
    aml_append(pcnt,
               aml_call("DVNT", 2, aml_name("PCIU"), aml_int(GPE_EVENT_DEVICE_CHECK)));
    aml_append(pcnt,
               aml_call("DVNT", 2, aml_name("PCID"), aml_int(GPE_EVENT_EJECT_REQUEST)));
    aml_append(pci, pcnt);
}

/* A PNP0A06 container that only claims an I/O range, so no driver gets it. */
static Aml *resource_container(const char *name, const char *uid, uint16_t port,
                               uint8_t len)
{
    Aml *dev = aml_device(name);

    aml_append(dev, aml_name_decl("_HID", aml_string("PNP0A06")));
    aml_append(dev, aml_name_decl("_UID", aml_string(uid)));
    aml_append(dev, aml_name_decl("_STA", aml_int(0xb)));
    aml_append(dev, aml_name_decl("_CRS", res_template_1(aml_io(port, port, 1, len))));
    return dev;
}

static Aml *build_pci0(const AcpiConfig *cfg)
{
    Aml *pci = aml_device("PCI0");

    /* _HID only: a device has _HID or _ADR, not both (6.1) */
    aml_append(pci, aml_name_decl("_HID", aml_eisaid("PNP0A03")));
    aml_append(pci, aml_name_decl("_UID", aml_int(0)));
    aml_append(pci, aml_name_decl("_CRS", build_pci_crs(cfg)));
    aml_append(pci, aml_name_decl("_PRT", build_prt()));
    aml_append(pci, build_isa(cfg));
    build_hotplug_registers(pci);
    build_slots(pci, cfg);
    aml_append(pci, resource_container("PHPR", "PCI Hotplug resources", ACPI_PCIHP_BASE,
                                       ACPI_PCIHP_LEN));
    aml_append(
        pci, resource_container("GPE0", "GPE0 resources", ACPI_GPE0_BLK, ACPI_GPE0_LEN));
    return pci;
}

/* Level, active high, shared: how the PIIX3 drives PIRQs and the SCI. */
static Aml *link_interrupt(const uint32_t *irqs, unsigned n)
{
    return res_template_1(aml_interrupt(true, false, true, irqs, n));
}

/*
 * The link devices (6.2.13, PNP0C0F) over the PIIX3 route bytes: bit 7
 * disables a PIRQ, the low bits name its IRQ.  IQST and IQCR are the
 * shared _STA and _CRS.
 */
static void build_links(Aml *sb)
{
    static const uint32_t choices[] = { 5, 10, 11 };
    static const uint32_t sci = ACPI_SCI_IRQ, none = 0;
    Aml *field = aml_field("PCI0.ISA.P40C", AML_ACCESS_BYTE, false, AML_PRESERVE);
    Aml *iqst = aml_method("IQST", 1, false);
    Aml *iqcr = aml_method("IQCR", 1, true);
    Aml *cond, *lnks;

    for (unsigned i = 0; i < 4; i++) {
        aml_append(field, aml_named_field(pirq_fields[i], 8));
    }
    aml_append(sb, field);

    cond = aml_if(aml_and(aml_int(PIRQ_DISABLED), aml_arg(0), NULL));
    aml_append(cond, aml_return(aml_int(0x9))); /* present, disabled */
    aml_append(iqst, cond);
    aml_append(iqst, aml_return(aml_int(0xb))); /* present, enabled */
    aml_append(sb, iqst);

    aml_append(iqcr, aml_name_decl("PRR0", link_interrupt(&none, 1)));
    aml_append(iqcr, aml_create_dword_field(aml_name("PRR0"), aml_int(5), "PRRI"));
    cond = aml_if(aml_lless(aml_arg(0), aml_int(PIRQ_DISABLED)));
    aml_append(cond, aml_store(aml_arg(0), aml_name("PRRI")));
    aml_append(iqcr, cond);
    aml_append(iqcr, aml_return(aml_name("PRR0")));
    aml_append(sb, iqcr);

    for (unsigned i = 0; i < 4; i++) {
        Aml *dev = aml_device(link_names[i]);
        Aml *m;

        aml_append(dev, aml_name_decl("_HID", aml_eisaid("PNP0C0F")));
        aml_append(dev, aml_name_decl("_UID", aml_int(i)));
        aml_append(dev, aml_name_decl("_PRS", link_interrupt(choices, 3)));
        m = aml_method("_STA", 0, false);
        aml_append(m, aml_return(aml_call("IQST", 1, aml_name(pirq_fields[i]))));
        aml_append(dev, m);
        m = aml_method("_DIS", 0, false);
        aml_append(m, aml_or(aml_name(pirq_fields[i]), aml_int(PIRQ_DISABLED),
                             aml_name(pirq_fields[i])));
        aml_append(dev, m);
        m = aml_method("_CRS", 0, false);
        aml_append(m, aml_return(aml_call("IQCR", 1, aml_name(pirq_fields[i]))));
        aml_append(dev, m);
        m = aml_method("_SRS", 1, false);
        aml_append(m, aml_create_dword_field(aml_arg(0), aml_int(5), "PRRI"));
        aml_append(m, aml_store(aml_name("PRRI"), aml_name(pirq_fields[i])));
        aml_append(dev, m);
        aml_append(sb, dev);
    }

    /* LNKS: the SCI, fixed on IRQ 9 */
    lnks = aml_device("LNKS");
    aml_append(lnks, aml_name_decl("_HID", aml_eisaid("PNP0C0F")));
    aml_append(lnks, aml_name_decl("_UID", aml_int(4)));
    aml_append(lnks, aml_name_decl("_PRS", link_interrupt(&sci, 1)));
    aml_append(lnks, aml_name_decl("_STA", aml_int(0xb)));
    aml_append(lnks, aml_method("_DIS", 0, false));
    aml_append(lnks, aml_name_decl("_CRS", link_interrupt(&sci, 1)));
    aml_append(lnks, aml_method("_SRS", 1, false));
    aml_append(sb, lnks);
}

void acpi_build_dsdt(GByteArray *b, const AcpiConfig *cfg)
{
    size_t start = acpi_sdt_begin(b, "DSDT", 1);
    Aml *sb = aml_scope("\\_SB");
    Aml *gpe = aml_scope("\\_GPE");
    Aml *e01 = aml_method("_E01", 0, false);
    Aml *root = aml_scope("\\");
    Aml *s5 = aml_package();

    aml_append(sb, build_pci0(cfg));
    build_links(sb);
    aml_encode(b, sb);

    /* 5.6.4.1: GPE0 bit 1 is PCI hot-plug; the SCI handler runs _E01 */
    aml_append(e01, aml_acquire(aml_name("\\_SB.PCI0.BLCK"), 0xffff));
    aml_append(e01, aml_call("\\_SB.PCI0.PCNT", 0));
    aml_append(e01, aml_release(aml_name("\\_SB.PCI0.BLCK")));
    aml_append(gpe, e01);
    aml_encode(b, gpe);

    /* 7.4.2 \_S5: SLP_TYP 0 in PM1a_CNT and PM1b_CNT is soft-off on PIIX4 */
    for (int i = 0; i < 4; i++) {
        aml_append(s5, aml_int(0));
    }
    aml_append(root, aml_name_decl("_S5", s5));
    aml_encode(b, root);
    acpi_sdt_end(b, start);
}
