/*
 * Machine memory map and the Linux boot protocol loader: e820 layout,
 * guest-address bounds checks, bzImage header checks on malformed files,
 * and the MP table's structure.
 */
#include <sys/mman.h>

#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "unit.h"

/* A minimal well-formed bzImage header followed by a payload. */
static uint8_t *make_bzimage(size_t payload, size_t *size)
{
    size_t setup_sects = 4;
    uint8_t *img;

    *size = (setup_sects + 1) * 512 + payload;
    img = g_malloc0(*size);
    img[0x1f1] = setup_sects;
    *(uint32_t *)(img + 0x1f4) = payload / 16;
    img[0x1fe] = 0x55;
    img[0x1ff] = 0xaa;
    img[0x200] = 0xeb;
    img[0x201] = 0x66;
    memcpy(img + 0x202, "HdrS", 4);
    *(uint16_t *)(img + 0x206) = 0x020c;
    img[0x211] = 0x01; /* LOADED_HIGH */
    *(uint32_t *)(img + 0x214) = 0x100000;
    *(uint32_t *)(img + 0x22c) = 0x7fffffff;
    *(uint16_t *)(img + 0x236) = 0x1; /* XLF_KERNEL_64 */
    *(uint32_t *)(img + 0x238) = 2048;
    *(uint64_t *)(img + 0x258) = 0x100000;
    *(uint32_t *)(img + 0x260) = payload + 4096;
    return img;
}

static char *parse_error(const uint8_t *img, size_t size)
{
    BzImageInfo info;
    GError *err = NULL;
    char *msg = NULL;

    if (!bzimage_parse(img, size, &info, &err)) {
        msg = g_strdup(err->message);
        g_error_free(err);
    }
    return msg;
}

UNIT_TEST(bzimage_good_header)
{
    size_t size;
    uint8_t *img = make_bzimage(8192, &size);
    BzImageInfo info;

    CHECK(bzimage_parse(img, size, &info, NULL));
    CHECK_EQ(info.protocol, 0x20c);
    CHECK_EQ(info.payload_offset, 5 * 512);
    CHECK_EQ(info.payload_size, 8192);
    CHECK(info.kernel_64);
    g_free(img);
}

UNIT_TEST(bzimage_malformed_files)
{
    size_t size;
    uint8_t *img = make_bzimage(8192, &size);
    char *msg;

    msg = parse_error(img, 100); /* tiny file */
    CHECK(msg && strstr(msg, "only 100 bytes"));
    g_free(msg);
    msg = parse_error(img, 3 * 512); /* cut in the setup */
    CHECK(msg && strstr(msg, "truncated"));
    g_free(msg);
    msg = parse_error(img, 5 * 512 + 100); /* cut in the payload */
    CHECK(msg && strstr(msg, "truncated"));
    g_free(msg);

    uint8_t *bad = g_memdup2(img, size);
    memcpy(bad + 0x202, "ELF!", 4);
    msg = parse_error(bad, size);
    CHECK(msg && strstr(msg, "HdrS"));
    g_free(msg);

    memcpy(bad, img, size);
    *(uint16_t *)(bad + 0x206) = 0x0204;
    msg = parse_error(bad, size);
    CHECK(msg && strstr(msg, "too old"));
    g_free(msg);

    memcpy(bad, img, size);
    *(uint16_t *)(bad + 0x236) = 0;
    msg = parse_error(bad, size);
    CHECK(msg && strstr(msg, "64-bit"));
    g_free(msg);

    memcpy(bad, img, size);
    bad[0x1fe] = 0;
    msg = parse_error(bad, size);
    CHECK(msg && strstr(msg, "boot flag"));
    g_free(msg);

    /* random bytes never pass */
    for (int seed = 1; seed < 200; seed++) {
        GRand *r = g_rand_new_with_seed(seed);
        for (size_t i = 0; i < size; i++) {
            bad[i] = g_rand_int(r);
        }
        g_rand_free(r);
        msg = parse_error(bad, size);
        CHECK(msg != NULL);
        g_free(msg);
    }
    g_free(bad);
    g_free(img);
}

UNIT_TEST(memory_map_small)
{
    Machine m = { 0 };

    CHECK(machine_plan_memory(&m, 128ULL << 20, NULL));
    CHECK_EQ(m.below_4g, 128ULL << 20);
    CHECK_EQ(m.above_4g, 0);
    CHECK_EQ(m.e820[0].addr, 0);
    CHECK_EQ(m.e820[0].type, E820_RAM);
    CHECK_EQ(m.e820[m.nr_e820 - 1].addr + m.e820[m.nr_e820 - 1].size, 128ULL << 20);
    CHECK(!machine_plan_memory(&m, 1 << 20, NULL));
}

UNIT_TEST(memory_map_splits_around_pci_hole)
{
    Machine m = { 0 };
    uint64_t ram = 0;

    CHECK(machine_plan_memory(&m, 4ULL << 30, NULL));
    CHECK_EQ(m.below_4g, 3ULL << 30);
    CHECK_EQ(m.above_4g, 1ULL << 30);
    for (unsigned i = 0; i < m.nr_e820; i++) {
        if (m.e820[i].type == E820_RAM) {
            ram += m.e820[i].size;
        }
        /* no RAM inside the PCI hole */
        CHECK(m.e820[i].addr >= (4ULL << 30) ||
              m.e820[i].addr + m.e820[i].size <= (3ULL << 30));
    }
    CHECK_EQ(ram, 0x9fc00 + (3ULL << 30) - 0x100000 + (1ULL << 30));
    /* 3.5 GiB and below stays in one piece */
    CHECK(machine_plan_memory(&m, 0xdff00000ULL, NULL));
    CHECK_EQ(m.above_4g, 0);
}

UNIT_TEST(guest_addresses_are_bounded)
{
    Machine m = { 0 };
    static uint8_t fake[1];
    uintptr_t base = (uintptr_t)fake;

    CHECK(machine_plan_memory(&m, 4ULL << 30, NULL));
    m.ram = fake; /* only pointer arithmetic is checked */
    CHECK((uintptr_t)machine_gpa_to_hva(&m, 0, 4096) == base);
    CHECK(machine_gpa_to_hva(&m, (3ULL << 30) - 4096, 4096) != NULL);
    CHECK(machine_gpa_to_hva(&m, (3ULL << 30) - 4096, 4097) == NULL);
    CHECK(machine_gpa_to_hva(&m, 0xfee00000, 4) == NULL);
    CHECK((uintptr_t)machine_gpa_to_hva(&m, 4ULL << 30, 1ULL << 30) ==
          base + (3ULL << 30));
    CHECK(machine_gpa_to_hva(&m, 5ULL << 30, 1) == NULL);
    CHECK(machine_gpa_to_hva(&m, UINT64_MAX - 10, 100) == NULL);
}

static uint8_t sum_bytes(const uint8_t *p, size_t n)
{
    uint8_t s = 0;

    while (n--) {
        s += *p++;
    }
    return s;
}

UNIT_TEST(mptable_lists_every_cpu)
{
    VmConfig *cfg = vm_config_new();
    Machine m = { 0 };
    uint8_t *fp, *hdr, *p;
    unsigned cpus = 0, bsp = 0, entries, io_extint = 0, lint_extint = 0;
    unsigned pci_ints = 0, slot3_inta_irq = 0, isa_irq4 = 0, isa_irq10 = 0;

    cfg->smp = (SmpConfig){ 6, 1, 1, 3, 2, 6 };
    m.cfg = cfg;
    m.nr_vcpus = 6;
    CHECK(machine_plan_memory(&m, 16 << 20, NULL));
    m.ram = g_malloc0(1 << 20);
    m.below_4g = 1 << 20;
    CHECK(mptable_write(&m.mem, &cfg->smp, m.nr_vcpus, MPTABLE_ADDR, NULL));
    fp = m.ram + MPTABLE_ADDR;
    CHECK(memcmp(fp, "_MP_", 4) == 0);
    CHECK_EQ(sum_bytes(fp, 16), 0);
    hdr = m.ram + *(uint32_t *)(fp + 4);
    CHECK(memcmp(hdr, "PCMP", 4) == 0);
    CHECK_EQ(sum_bytes(hdr, *(uint16_t *)(hdr + 4)), 0);
    entries = *(uint16_t *)(hdr + 34);
    p = hdr + 44;
    for (unsigned i = 0; i < entries; i++) {
        if (p[0] == 0) {
            cpus++;
            bsp += (p[3] & 2) != 0;
            /* threads=2, cores=3: the core field takes 2 bits */
            if (cpus == 3) {
                CHECK_EQ(p[1], 2); /* core 1, thread 0 */
            }
            p += 20;
        } else {
            io_extint += p[0] == 3 && p[1] == 3;
            lint_extint += p[0] == 4 && p[1] == 3 && p[7] == 0;
            if (p[0] == 1) {
                /* Linux matches PCI bus 0 against MP bus id 0 */
                CHECK(memcmp(p + 2, p[1] == 0 ? "PCI   " : "ISA   ", 6) == 0);
            }
            if (p[0] == 3 && p[4] == 0) {
                pci_ints++;
                CHECK_EQ(p[2], 0x0d); /* active high, level */
                if (p[5] == (3 << 2)) {
                    slot3_inta_irq = p[7];
                }
            }
            isa_irq4 += p[0] == 3 && p[4] == 1 && p[5] == 4 && p[7] == 4;
            isa_irq10 += p[0] == 3 && p[4] == 1 && p[5] == 10;
            p += 8;
        }
    }
    CHECK_EQ(cpus, 6);
    CHECK_EQ(bsp, 1);
    /* the 8259 reaches LINT0; no IOAPIC pin claims ExtINT (Linux warns) */
    CHECK_EQ(io_extint, 0);
    CHECK_EQ(lint_extint, 1);
    /* every slot's four pins; slot 3 INTA is PIRQC = IRQ 11 on this board */
    CHECK_EQ(pci_ints, 32 * 4);
    CHECK_EQ(slot3_inta_irq, 11);
    CHECK_EQ(isa_irq4, 1);
    CHECK_EQ(isa_irq10, 0); /* PCI's IRQs have no ISA entry */
    g_free(m.ram);
    vm_config_free(cfg);
}

UNIT_MAIN()
