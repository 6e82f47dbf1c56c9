/*
 * Intel MultiProcessor Specification 1.4 table: tells an SMP guest which
 * CPUs exist (by APIC id), where the IOAPIC is, and how ISA IRQs and PCI
 * slots' INTx pins reach it.  Written into guest RAM at start and at
 * reset (-kernel boots; SeaBIOS writes its own); no state.
 */
#include <cpuid.h>
#include <string.h>

#include "accel/kvm/kvm.h"
#include "hw/i386/pc.h"
#include "hw/pci.h"
#include "util/error.h"

#define MP_IOAPIC_ADDR 0xfec00000u
#define MP_LAPIC_ADDR  0xfee00000u

/*
 * Bus ids: Linux matches a PCI device's bus number against the MP bus id
 * of its interrupt entries, so PCI bus 0 must be MP bus 0; ISA comes next
 * (as in SeaBIOS's table).
 */
#define MP_BUS_PCI   0
#define MP_BUS_ISA   1
#define MP_PCI_SLOTS 32

/* Entry types and interrupt types (MP spec 1.4, tables 4-8 and 4-10). */
#define MP_IOINT     3
#define MP_LOCALINT  4
#define MP_INT       0
#define MP_NMI       1
#define MP_EXTINT    3
#define MP_FLAGS_BUS 0x00 /* polarity and trigger conform to the bus */
#define MP_FLAGS_PCI 0x0d /* active high, level: as KVM's IOAPIC sees INTx */

/* ISA IRQs that PCI routes may take (PIRQ): no ISA entry, as SeaBIOS. */
#define MP_PCI_IRQS ((1u << 5) | (1u << 9) | (1u << 10) | (1u << 11))

static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;

    for (size_t i = 0; i < len; i++) {
        sum += p[i];
    }
    return (uint8_t)-sum;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* x86 hosts only: little-endian */
    return p + 4;
}

static uint8_t *put_irq(uint8_t *p, uint8_t type, uint8_t irqtype, uint8_t flags,
                        uint8_t src_bus, uint8_t src_irq, uint8_t dst_id, uint8_t dst_pin)
{
    p[0] = type;
    p[1] = irqtype;
    p[2] = flags;
    p[3] = 0;
    p[4] = src_bus;
    p[5] = src_irq;
    p[6] = dst_id;
    p[7] = dst_pin;
    return p + 8;
}

bool mptable_write(const GuestMemory *mem, const SmpConfig *smp, unsigned nr_cpus,
                   uint64_t addr, GError **errp)
{
    size_t size = 16 + 44 + nr_cpus * 20 + 2 * 8 + 8 + MP_PCI_SLOTS * 4 * 8 + 16 * 8 +
                  2 * 8;
    uint8_t *base = guest_memory_hva(mem, addr, size);
    uint8_t *hdr, *p;
    unsigned eax, ebx, ecx, edx, entries = 0, ioapic_id = 0;

    if (!base || addr + size > 0x100000) {
        error_setg(errp, "MP table for %u CPUs does not fit in the BIOS area", nr_cpus);
        return false;
    }
    memset(base, 0, size);
    __cpuid(1, eax, ebx, ecx, edx);

    hdr = base + 16;
    p = hdr + 44;
    for (unsigned i = 0; i < nr_cpus; i++) {
        unsigned apic_id = cpu_apic_id(smp, i);
        p[0] = 0; /* processor */
        p[1] = apic_id;
        p[2] = 0x14;                 /* local APIC version */
        p[3] = 1 | (i == 0 ? 2 : 0); /* enabled, BSP */
        put32(p + 4, eax);           /* signature */
        put32(p + 8, edx);           /* features */
        p += 20;
        entries++;
        ioapic_id = MAX(ioapic_id, apic_id + 1);
    }
    p[0] = 1; /* bus */
    p[1] = MP_BUS_PCI;
    memcpy(p + 2, "PCI   ", 6);
    p += 8;
    p[0] = 1;
    p[1] = MP_BUS_ISA;
    memcpy(p + 2, "ISA   ", 6);
    p += 8;
    entries += 2;
    p[0] = 2; /* I/O APIC */
    p[1] = ioapic_id;
    p[2] = 0x11;
    p[3] = 1;
    put32(p + 4, MP_IOAPIC_ADDR);
    p += 8;
    entries++;
    /*
     * No ExtINT I/O interrupt entry for IOAPIC pin 0: the pin is not wired
     * to the 8259 in ExtINT mode, and Linux warns ("ExtINT not setup in
     * hardware but reported by MP table") when the table says it is.  The
     * 8259 reaches the CPUs through LINT0 below, as SeaBIOS's table says.
     */
    /* every slot's pins, present or hot-plugged later, to its PIRQ's IRQ */
    for (unsigned slot = 0; slot < MP_PCI_SLOTS; slot++) {
        for (unsigned pin = 1; pin <= 4; pin++) {
            int irq = pci_pc_default_irq(slot, pin);
            if (irq < 0) {
                continue;
            }
            p = put_irq(p, MP_IOINT, MP_INT, MP_FLAGS_PCI, MP_BUS_PCI,
                        (slot << 2) | (pin - 1), ioapic_id, irq);
            entries++;
        }
    }
    for (unsigned irq = 0; irq < 16; irq++) {
        if (irq == 2 || (MP_PCI_IRQS & (1u << irq))) {
            continue; /* the PIC cascade; PCI's IRQs */
        }
        p = put_irq(p, MP_IOINT, MP_INT, MP_FLAGS_BUS, MP_BUS_ISA, irq, ioapic_id,
                    irq == 0 ? 2 : irq);
        entries++;
    }
    p = put_irq(p, MP_LOCALINT, MP_EXTINT, MP_FLAGS_BUS, MP_BUS_ISA, 0, 0xff, 0);
    p = put_irq(p, MP_LOCALINT, MP_NMI, MP_FLAGS_BUS, MP_BUS_ISA, 0, 0xff, 1);
    entries += 2;

    memcpy(hdr, "PCMP", 4);
    hdr[4] = (p - hdr) & 0xff;
    hdr[5] = (p - hdr) >> 8;
    hdr[6] = 4; /* spec revision 1.4 */
    memcpy(hdr + 8, "DVISOR  ", 8);
    memcpy(hdr + 16, "PC          ", 12);
    hdr[34] = entries & 0xff;
    hdr[35] = entries >> 8;
    put32(hdr + 36, MP_LAPIC_ADDR);
    hdr[7] = mp_checksum(hdr, p - hdr);

    memcpy(base, "_MP_", 4);
    put32(base + 4, addr + 16);
    base[8] = 1; /* length in 16-byte units */
    base[9] = 4;
    base[10] = mp_checksum(base, 16);
    return true;
}
