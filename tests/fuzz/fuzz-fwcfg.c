/*
 * Fuzz target for fw_cfg (hw/i386/fw_cfg.c) as a guest drives it through
 * the machine's port bus, DMA descriptors included, over 2 MiB of fake
 * guest memory.  The device holds what a SeaBIOS boot gives it: the
 * signature, the ID, a few numbered items and three files.
 *
 * Input: operations until the input ends, each one opcode byte (mod 6)
 * and its arguments (little-endian unless said otherwise):
 *   0 select      u16 key                  (16-bit write to 0x510)
 *   1 read data   u8 count                 (count 1-byte reads of 0x511)
 *   2 DMA         u32 descriptor address   (two 4-byte big-endian writes,
 *                                           0x514 high half, 0x518 low)
 *   3 port access u8 offset (mod 12 from 0x510), u8 size (1, 2 or 4),
 *                 u8 write, u32 value
 *   4 write RAM   u32 gpa, u16 len, len bytes (descriptors and buffers)
 *   5 read RAM    u32 gpa, u16 len         (what DMA wrote, into the digest)
 * Outcome: "ok: ops=N dma=N dma_errors=N crc=X last=HEX", X a CRC-32 of
 * every byte the guest read (ports, RAM, and each DMA's control word after
 * it), HEX the last (up to 8) bytes of the last read, a 1-byte port read
 * being a read of its own.
 */
#include <string.h>
#include <zlib.h>

#include "hw/i386/fw_cfg.h"
#include "hw/machine.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_RAM_SIZE   (2u << 20)
#define FW_CFG_PORT_SEL 0x510

static uint32_t le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct Run {
    Machine *m;
    uint32_t crc;
    unsigned ops, dma, dma_errors;
    uint8_t last[8]; /* the last bytes read, for the outcome */
    unsigned nr_last;
} Run;

/* Into the digest: a read the guest saw. */
static void seen(Run *run, const uint8_t *data, size_t len)
{
    size_t keep = MIN(len, sizeof(run->last));

    run->crc = crc32(run->crc, data, len);
    memcpy(run->last, data + len - keep, keep);
    run->nr_last = keep;
}

static void port_io(Run *run, uint16_t port, uint8_t *data, unsigned len, bool is_write)
{
    bus_dispatch(&run->m->io_bus, port, data, len, is_write);
    if (!is_write) {
        seen(run, data, len);
    }
}

static void do_dma(Run *run, uint32_t addr)
{
    uint8_t high[4] = { 0 }, low[4] = { addr >> 24, addr >> 16, addr >> 8, addr };
    uint8_t *desc;

    port_io(run, FW_CFG_PORT_SEL + 4, high, 4, true);
    port_io(run, FW_CFG_PORT_SEL + 8, low, 4, true);
    run->dma++;
    desc = machine_gpa_to_hva(run->m, addr, 4);
    if (desc) {
        seen(run, desc, 4);
        run->dma_errors += desc[3] & 1; /* big-endian: the low byte is last */
    }
}

static bool do_op(Run *run, Reader *r)
{
    uint8_t op, b[8];

    if (!take(r, &op, 1)) {
        return false;
    }
    switch (op % 6) {
    case 0:
        if (!take(r, b, 2)) {
            return false;
        }
        port_io(run, FW_CFG_PORT_SEL, b, 2, true);
        break;
    case 1:
        if (!take(r, b, 1)) {
            return false;
        }
        for (unsigned i = 0; i < b[0]; i++) {
            uint8_t v;
            port_io(run, FW_CFG_PORT_SEL + 1, &v, 1, false);
        }
        break;
    case 2:
        if (!take(r, b, 4)) {
            return false;
        }
        do_dma(run, le32(b));
        break;
    case 3: {
        static const unsigned sizes[3] = { 1, 2, 4 };
        if (!take(r, b, 7)) {
            return false;
        }
        port_io(run, FW_CFG_PORT_SEL + b[0] % 12, b + 3, sizes[b[1] % 3], b[2] & 1);
        break;
    }
    case 4: {
        uint8_t *dst;
        size_t len;
        if (!take(r, b, 6)) {
            return false;
        }
        len = MIN((size_t)(b[4] | b[5] << 8), r->size - r->pos);
        dst = machine_gpa_to_hva(run->m, le32(b), len);
        if (dst) {
            memcpy(dst, r->data + r->pos, len);
        }
        r->pos += len;
        break;
    }
    default: {
        uint8_t *src;
        if (!take(r, b, 6)) {
            return false;
        }
        src = machine_gpa_to_hva(run->m, le32(b), b[4] | b[5] << 8);
        if (src) {
            seen(run, src, b[4] | b[5] << 8);
        }
        break;
    }
    }
    run->ops++;
    return true;
}

static FwCfg *fw_cfg_build(Machine *m)
{
    static const char e820[20] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20 };
    static const char order[] = "/pci@i0cf8/*@2\nHALT";
    uint8_t rom[600];
    FwCfg *fw;

    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    bus_init(&m->io_bus, "io");
    bus_init(&m->mmio_bus, "mmio");
    if (!machine_plan_memory(m, FUZZ_RAM_SIZE, NULL)) {
        abort();
    }
    m->ram = g_malloc0(FUZZ_RAM_SIZE);
    fw = fw_cfg_new(&m->io_bus, &m->mem, NULL);
    for (size_t i = 0; i < sizeof(rom); i++) {
        rom[i] = i * 7;
    }
    if (!fw || !fw_cfg_add_file(fw, "etc/e820", e820, sizeof(e820), NULL) ||
        !fw_cfg_add_file(fw, "bootorder", order, sizeof(order), NULL) ||
        !fw_cfg_add_file(fw, "genroms/linuxboot_dma.bin", rom, sizeof(rom), NULL)) {
        abort();
    }
    fw_cfg_add_u64(fw, FW_CFG_RAM_SIZE, FUZZ_RAM_SIZE);
    fw_cfg_add_u16(fw, FW_CFG_NB_CPUS, 2);
    fw_cfg_add_u16(fw, FW_CFG_MAX_CPUS, 2);
    fw_cfg_add_bytes(fw, FW_CFG_BOOT_MENU, "", 0);
    return fw;
}

void fuzz_target(const uint8_t *data, size_t size, FILE *report)
{
    static Machine m;
    static FwCfg *fw;
    Reader r = { data, size, 0 };
    Run run = { .m = &m };

    if (!fw) {
        fw = fw_cfg_build(&m);
    }
    memset(m.ram, 0, FUZZ_RAM_SIZE);
    machine_lock(&m);
    fw_cfg_reset(fw);
    while (do_op(&run, &r)) {
    }
    machine_unlock(&m);
    if (report) {
        fprintf(report, "ok: ops=%u dma=%u dma_errors=%u crc=%08x last=", run.ops,
                run.dma, run.dma_errors, run.crc);
        for (unsigned i = 0; i < run.nr_last; i++) {
            fprintf(report, "%02x", run.last[i]);
        }
    }
}
