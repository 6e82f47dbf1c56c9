/*
 * Fuzz target for PCI configuration space (hw/pci/) as a guest reaches it:
 * configuration mechanism #1 on ports 0xCF8-0xCFF (the PIIX3 reset control
 * register at 0xCF9 included) against the pc machine's host bridge, PIIX3
 * and a virtio-blk disk with MSI-X, built without KVM (fuzz-pc.h).  BAR
 * writes map and unmap the disk's BARs on the buses, MSI-X enable and
 * masks add and drop KVM routes, PIRQ writes re-route INTx; the MSI-X
 * table itself is reachable through BAR 1 once the guest maps it.  The
 * machine is built once and reset (as system_reset does) before each input.
 *
 * Input: operations until the input ends, each one opcode byte (mod 5)
 * and its arguments (little-endian):
 *   0 address     u32 value                   (4-byte write to 0xCF8)
 *   1 port        u8 offset (mod 8 from 0xCF8), u8 size (1, 2 or 4),
 *                 u8 write, u32 value
 *   2 config      u8 devfn, u8 register, u8 size, u8 write, u32 value
 *                 (the address then the data port, as a driver does)
 *   3 MSI-X BAR   u16 offset, u8 size (1, 2, 4 or 8), u8 write, u64 value
 *                 (at BAR 1 of 00:02.0, when mapped)
 *   4 virtio BAR  u16 offset, u8 size (1, 2 or 4)  (a read of BAR 4)
 * Outcome: "ok: ops=N crc=X bars=[...] routes=N msis=N irqs=[...] resets=N
 * last=HEX": a CRC-32 of every byte the guest read, where the disk's BARs
 * are mapped, KVM routes alive, MSIs sent, INTx lines up, resets asked
 * for, and the last read.
 */
#include <string.h>
#include <zlib.h>

#include "tests/fuzz/fuzz-pc.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_RAM_SIZE (2u << 20)
#define CONFIG_PORT   0xcf8

typedef struct Run {
    Machine *m;
    PciDevice *disk;
    uint32_t crc;
    unsigned ops;
    uint8_t last[8];
    unsigned nr_last;
} Run;

static void guest_access(Run *run, Bus *bus, uint64_t addr, uint8_t *data, unsigned len,
                         bool is_write)
{
    bus_dispatch(bus, addr, data, len, is_write);
    if (!is_write) {
        run->crc = crc32(run->crc, data, len);
        memcpy(run->last, data, len);
        run->nr_last = len;
    }
}

static void put_value(uint8_t *data, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++) {
        data[i] = v >> (8 * i);
    }
}

static uint64_t get_value(const uint8_t *p, unsigned len)
{
    uint64_t v = 0;

    for (unsigned i = len; i-- > 0;) {
        v = v << 8 | p[i];
    }
    return v;
}

static bool do_op(Run *run, Reader *r)
{
    static const unsigned sizes[4] = { 1, 2, 4, 8 };
    Machine *m = run->m;
    uint8_t op, b[12], d[8];

    if (!take(r, &op, 1)) {
        return false;
    }
    switch (op % 5) {
    case 0:
        if (!take(r, b, 4)) {
            return false;
        }
        guest_access(run, &m->io_bus, CONFIG_PORT, b, 4, true);
        break;
    case 1: {
        unsigned len;
        if (!take(r, b, 7)) {
            return false;
        }
        len = sizes[b[1] % 3];
        memcpy(d, b + 3, 4);
        guest_access(run, &m->io_bus, CONFIG_PORT + b[0] % 8, d, len, b[2] & 1);
        break;
    }
    case 2: {
        unsigned len;
        uint32_t addr;
        if (!take(r, b, 8)) {
            return false;
        }
        len = sizes[b[2] % 3];
        addr = 0x80000000u | b[0] << 8 | (b[1] & 0xfc);
        put_value(d, addr, 4);
        guest_access(run, &m->io_bus, CONFIG_PORT, d, 4, true);
        memcpy(d, b + 4, 4);
        guest_access(run, &m->io_bus, CONFIG_PORT + 4 + (b[1] & 3), d, len, b[3] & 1);
        break;
    }
    case 3: {
        PciBar *bar = &run->disk->bars[1];
        unsigned len;
        if (!take(r, b, 12)) {
            return false;
        }
        len = sizes[b[2] % 4];
        memcpy(d, b + 4, 8);
        if (bar->mapped_addr != PCI_BAR_UNMAPPED) {
            guest_access(run, &m->mmio_bus,
                         bar->mapped_addr + get_value(b, 2) % bar->size, d, len,
                         b[3] & 1);
        }
        break;
    }
    default: {
        PciBar *bar = &run->disk->bars[4];
        if (!take(r, b, 3)) {
            return false;
        }
        if (bar->mapped_addr != PCI_BAR_UNMAPPED) {
            guest_access(run, &m->mmio_bus,
                         bar->mapped_addr + get_value(b, 2) % bar->size, d,
                         sizes[b[2] % 3], false);
        }
        break;
    }
    }
    run->ops++;
    return true;
}

static void report_outcome(Run *run, FILE *report)
{
    fprintf(report, "ok: ops=%u crc=%08x bars=[", run->ops, run->crc);
    for (int i = 0, n = 0; i < PCI_BAR_COUNT; i++) {
        if (run->disk->bars[i].mapped_addr != PCI_BAR_UNMAPPED) {
            fprintf(report, "%s%d:%" G_GINT64_MODIFIER "x", n++ ? "," : "", i,
                    run->disk->bars[i].mapped_addr);
        }
    }
    fprintf(report, "] routes=%d msis=%u irqs=[", fuzz_kvm.routes, fuzz_kvm.signals);
    for (int i = 0, n = 0; i < 24; i++) {
        if (fuzz_kvm.level[i]) {
            fprintf(report, "%s%d", n++ ? "," : "", i);
        }
    }
    fprintf(report, "] resets=%d last=", run->m->reset_pending ? 1 : 0);
    for (unsigned i = 0; i < run->nr_last; i++) {
        fprintf(report, "%02x", run->last[i]);
    }
}

void fuzz_target(const uint8_t *data, size_t size, FILE *report)
{
    static Machine m;
    static PciDevice *disk;
    Reader r = { data, size, 0 };
    Run run;

    if (!disk) {
        pthread_mutex_init(&m.lock, NULL);
        bus_init(&m.io_bus, "io");
        bus_init(&m.mmio_bus, "mmio");
        device_state_list_init(&m.device_states);
        if (!machine_plan_memory(&m, FUZZ_RAM_SIZE, NULL)) {
            abort();
        }
        m.ram = g_malloc0(FUZZ_RAM_SIZE);
        disk = fuzz_pc_pci_init(&m);
    }
    machine_lock(&m);
    pci_pc_reset(m.pci);
    fuzz_kvm.signals = 0;
    memset(&run, 0, sizeof(run));
    run.m = &m;
    run.disk = disk;
    while (do_op(&run, &r)) {
    }
    if (report) {
        report_outcome(&run, report);
    }
    machine_unlock(&m);
    /* the reset a write to 0xCF9 asked for: nobody carries it out here */
    m.reset_pending = 0;
    while (g_idle_remove_by_data(&m)) {
    }
}
