/* failover.c: the `failover` scenario, a guest of virtio-net failover. In
 * ring 3 it counts the virtio-net functions on bus 0 (`failover nics=N`),
 * brings up the first one (the standby) with VIRTIO_NET_F_STANDBY when
 * testos.standby=1, then polls the ACPI PCI hot-plug registers at 0xAE00
 * as hotplug.c does: a plugged slot is reported with its IDs and its
 * memory decoding and bus mastering switched on (`plugged SLOT V:D`); an
 * eject request is carried out (`ejected SLOT`), or, with
 * testos.noeject=1, reported once and ignored. `alive N` every second
 * shows the guest running, across a migration too. Never done. */
#include "net.h"

#define PCIHP_UP        0xAE00
#define PCIHP_DOWN      0xAE04
#define PCIHP_EJ        0xAE08
#define PCIHP_SEL       0xAE10
#define GPE0_STS        0xAFE0
#define GPE_PCI_HOTPLUG 0x02
#define GONE_WAIT_MS    5000 /* the host removes the device after the eject */

static u32 count_nics(void)
{
    u32 nics = 0;

    for (u32 slot = 0; slot < 32; slot++) {
        u32 id = pci_read(slot << 3, 0, 4);
        if ((id & 0xFFFF) == 0x1AF4 && ((id >> 16) == 0x1041 || (id >> 16) == 0x1000)) {
            nics++;
        }
    }
    return nics;
}

static void eject(u32 slot)
{
    u64 deadline = rdtsc() + GONE_WAIT_MS * boot_info.tsc_khz;

    outl(PCIHP_EJ, 1u << slot);
    while (pci_read(slot << 3, 0, 2) != 0xFFFF) {
        if (rdtsc() > deadline) {
            uprintf("failover FAIL slot %u still present %u ms after its eject", slot,
                    GONE_WAIT_MS);
            return;
        }
        __asm__ volatile("pause");
    }
    uprintf("ejected %u", slot);
}

static void plugged(u32 slot)
{
    u32 id = pci_read(slot << 3, 0, 4);
    u32 cmd = pci_read(slot << 3, 4, 2);

    pci_write(slot << 3, 4, 2, cmd | 0x6); /* memory space, bus master */
    uprintf("plugged %u %x:%x", slot, id & 0xFFFF, id >> 16);
}

static u64 failover_user(u64 unused)
{
    u32 ignored = 0, alive = 0;
    u64 next_alive = rdtsc();

    uprintf("failover nics=%u", count_nics());
    const char *err = net_open(&net, "failover");
    if (err) {
        uprintf("failover FAIL %s", err);
        return 0;
    }
    uprintf("failover standby=%s", virtio_has(&net.dev, VIRTIO_F_NET_STANDBY) ? "yes" : "no");
    outl(PCIHP_SEL, 0);
    for (;;) {
        u32 up = inl(PCIHP_UP), down = inl(PCIHP_DOWN);

        if (up | down) {
            outb(GPE0_STS, GPE_PCI_HOTPLUG); /* as the OS does for the SCI */
        }
        for (u32 slot = 0; slot < 32; slot++) {
            if (up & (1u << slot)) {
                plugged(slot);
            }
            if ((down & (1u << slot)) && !boot_info.noeject) {
                eject(slot);
            } else if ((down & (1u << slot)) && !(ignored & (1u << slot))) {
                ignored |= 1u << slot;
                uprintf("eject request %u ignored", slot);
            }
        }
        if (rdtsc() >= next_alive) {
            uprintf("alive %u", alive++);
            next_alive = rdtsc() + 1000 * boot_info.tsc_khz;
        }
        __asm__ volatile("pause");
    }
}

void scenario_failover(Cpu *bsp)
{
    run_user(bsp, failover_user, 0);
}
