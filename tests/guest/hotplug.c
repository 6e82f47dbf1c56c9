/* hotplug.c: the `hotplug` scenario.  It drives QEMU's ACPI PCI hot-plug
 * registers (I/O 0xAE00, dword access) by polling, as the DSDT's \_GPE._E01
 * and _EJ0 would: a slot that appears in UP is reported with its IDs; a
 * slot the host wants removed (DOWN) is ejected through EJ and reported once
 * its config space reads empty.  Never done: stop the VMM. */
#include "testos.h"
#include "virtio.h"

#define PCIHP_UP        0xAE00
#define PCIHP_DOWN      0xAE04
#define PCIHP_EJ        0xAE08
#define PCIHP_RMV       0xAE0C
#define PCIHP_SEL       0xAE10
#define GPE0_STS        0xAFE0
#define GPE_PCI_HOTPLUG 0x02
#define GONE_WAIT_MS    5000 /* the host removes the device after the eject */

static void eject(u32 slot)
{
    u64 deadline = rdtsc() + GONE_WAIT_MS * boot_info.tsc_khz;

    outl(PCIHP_EJ, 1u << slot);
    while (pci_read(slot << 3, 0, 2) != 0xFFFF) {
        if (rdtsc() > deadline) {
            kprintf("hotplug FAIL slot %u still present %u ms after its eject", slot,
                    GONE_WAIT_MS);
            return;
        }
        __asm__ volatile("pause");
    }
    kprintf("ejected %u", slot);
}

void scenario_hotplug(Cpu *bsp)
{
    outl(PCIHP_SEL, 0);
    kprintf("hotplug waiting rmv=%x", inl(PCIHP_RMV));
    for (;;) {
        u32 up = inl(PCIHP_UP), down = inl(PCIHP_DOWN);

        if (up | down) {
            outb(GPE0_STS, GPE_PCI_HOTPLUG); /* as the OS does for the SCI */
        }
        for (u32 slot = 0; slot < 32; slot++) {
            if (up & (1u << slot)) {
                u32 id = pci_read(slot << 3, 0, 4);
                kprintf("plugged %u %x:%x", slot, id & 0xFFFF, id >> 16);
            }
            if (down & (1u << slot)) {
                eject(slot);
            }
        }
        __asm__ volatile("pause");
    }
}
