/*
 * The PIIX4 PM function (hw/acpi/piix4-pm.c) on a PCI bus with no KVM:
 * its config space, where the PM block is decoded, PM1 registers at every
 * width, the PM timer, APM enable/disable, GPE0, the SCI level, S5, the
 * power button, reset, and its migration state.  Hostile accesses (odd
 * widths, reserved bytes, storms) change nothing they should not.
 */
#include <string.h>
#include <time.h>

#include "hw/acpi/piix4-pm.h"
#include "hw/pci.h"
#include "hw/state-blob.h"
#include "busio.h"
#include "unit.h"

UNIT_MAIN()

static int sci_level = -1, sci_calls, soft_offs;

static void fake_set_irq(void *opaque, int gsi, int level)
{
    if (gsi == 9) {
        sci_level = level;
        sci_calls++;
    }
}

static int fake_route_add(void *o, uint64_t a, uint32_t d, GError **e)
{
    return -1;
}

static bool fake_route_update(void *o, int g, uint64_t a, uint32_t d, GError **e)
{
    return false;
}

static void fake_route_del(void *o, int g)
{
}

static bool fake_irqfd(void *o, int fd, int g, bool assign, GError **e)
{
    return false;
}

static bool fake_ioeventfd(void *o, int fd, uint64_t a, unsigned l, bool pio, bool as,
                           GError **e)
{
    return false;
}

static bool fake_signal_msi(void *o, uint64_t a, uint32_t d, GError **e)
{
    return false;
}

static const PciKvmOps fake_ops = {
    fake_set_irq, fake_route_add, fake_route_update, fake_route_del,
    fake_irqfd,   fake_ioeventfd, fake_signal_msi,
};

static void *no_ram(void *opaque, uint64_t gpa, uint64_t len)
{
    return NULL;
}

static void count_soft_off(void *opaque)
{
    soft_offs++;
}

typedef struct Rig {
    Bus io, mmio;
    DeviceStateList states;
    PciBus *pci;
    Piix4Pm *pm;
} Rig;

static void rig_setup(Rig *r, bool pm_block_at_reset)
{
    GError *err = NULL;
    PciBusConfig bc = {
        .io_bus = &r->io,
        .mmio_bus = &r->mmio,
        .mem = { no_ram, NULL },
        .states = &r->states,
        .ram_below_4g = 128 << 20,
        .ops = &fake_ops,
    };

    memset(r, 0, sizeof(*r));
    bus_init(&r->io, "io");
    bus_init(&r->mmio, "mmio");
    device_state_list_init(&r->states);
    bc.states = &r->states;
    r->pci = pci_pc_new(&bc, &err);
    CHECK(r->pci && !err);
    Piix4PmConfig pc = {
        .pci = r->pci,
        .io_bus = &r->io,
        .sci = { fake_set_irq, NULL, 9 },
        .states = &r->states,
        .pm_block_at_reset = pm_block_at_reset,
        .soft_off = count_soft_off,
    };
    sci_level = -1;
    sci_calls = soft_offs = 0;
    r->pm = piix4_pm_new(&pc, &err);
    CHECK(r->pm && !err);
}

static void rig_teardown(Rig *r)
{
    pci_pc_free(r->pci);
    /* everything the function registered went with it */
    CHECK(bus_find(&r->io, 0xb2) == NULL);
    CHECK(bus_find(&r->io, 0xafe0) == NULL);
    CHECK(bus_find(&r->io, 0x600) == NULL);
    bus_destroy(&r->io);
    bus_destroy(&r->mmio);
    device_state_list_destroy(&r->states);
}

static void out(Rig *r, uint16_t port, unsigned len, uint32_t val)
{
    bus_write_le(&r->io, port, len, val);
}

static uint32_t in(Rig *r, uint16_t port, unsigned len)
{
    return bus_read_le(&r->io, port, len);
}

/* Config space through CONFIG_ADDRESS/CONFIG_DATA, as a guest does it. */
static uint32_t cfg_read(Rig *r, unsigned devfn, unsigned off, unsigned len)
{
    return pci_cfg_read(&r->io, devfn, off, len);
}

static void cfg_write(Rig *r, unsigned devfn, unsigned off, unsigned len, uint32_t v)
{
    pci_cfg_write(&r->io, devfn, off, len, v);
}

#define PM_FN PCI_MAKE_DEVFN(1, 3)

UNIT_TEST(pm_function_has_qemus_ids_and_the_piix3_is_multi_function)
{
    Rig r;

    rig_setup(&r, false);
    CHECK_EQ(cfg_read(&r, PM_FN, 0, 4), 0x71138086);
    CHECK_EQ(cfg_read(&r, PM_FN, 0x08, 4), 0x06800003); /* class, revision 3 */
    CHECK_EQ(cfg_read(&r, PM_FN, 0x3d, 1), 1);          /* INTA */
    CHECK_EQ(cfg_read(&r, PM_FN, 0x5b, 1), 0x02);       /* SMM "done" */
    CHECK_EQ(cfg_read(&r, PCI_MAKE_DEVFN(1, 0), 0x0e, 1), 0x80);
    CHECK_EQ(cfg_read(&r, PCI_MAKE_DEVFN(1, 1), 0, 4), 0xffffffff); /* no IDE */
    rig_teardown(&r);
}

UNIT_TEST(pm_block_goes_where_config_puts_it_and_only_when_enabled)
{
    Rig r;

    rig_setup(&r, false);
    CHECK_EQ(cfg_read(&r, PM_FN, 0x40, 4), 1);
    CHECK_EQ(piix4_pm_block_base(r.pm), 0);
    CHECK_EQ(in(&r, 0x604, 2), 0xffff);   /* nothing there yet */
    cfg_write(&r, PM_FN, 0x40, 4, 0x601); /* what SeaBIOS writes */
    CHECK_EQ(piix4_pm_block_base(r.pm), 0);
    cfg_write(&r, PM_FN, 0x80, 1, 1);
    CHECK_EQ(piix4_pm_block_base(r.pm), 0x600);
    CHECK_EQ(in(&r, 0x604, 2), 0);
    cfg_write(&r, PM_FN, 0x40, 4, 0xb03f); /* low bits stay read-only */
    CHECK_EQ(cfg_read(&r, PM_FN, 0x40, 4), 0xb001);
    CHECK_EQ(piix4_pm_block_base(r.pm), 0xb000);
    CHECK_EQ(in(&r, 0x604, 2), 0xffff);
    CHECK_EQ(in(&r, 0xb004, 2), 0);
    cfg_write(&r, PM_FN, 0x40, 4, 0xcf8 | 1); /* over the config ports: refused */
    CHECK_EQ(piix4_pm_block_base(r.pm), 0);
    CHECK_EQ(cfg_read(&r, 0, 0, 4), 0x12378086); /* config ports still work */
    cfg_write(&r, PM_FN, 0x40, 4, 0x601);
    cfg_write(&r, PM_FN, 0x80, 1, 0);
    CHECK_EQ(piix4_pm_block_base(r.pm), 0);
    rig_teardown(&r);
}

UNIT_TEST(direct_boot_has_the_block_at_0x600_from_every_reset)
{
    Rig r;

    rig_setup(&r, true);
    CHECK_EQ(piix4_pm_block_base(r.pm), 0x600);
    CHECK_EQ(cfg_read(&r, PM_FN, 0x40, 4), 0x601);
    CHECK_EQ(cfg_read(&r, PM_FN, 0x3c, 1), 9);
    cfg_write(&r, PM_FN, 0x80, 1, 0);
    CHECK_EQ(piix4_pm_block_base(r.pm), 0);
    pci_pc_reset(r.pci);
    CHECK_EQ(piix4_pm_block_base(r.pm), 0x600);
    rig_teardown(&r);
}

UNIT_TEST(pm1_registers_at_every_width_and_reserved_bits_read_0)
{
    Rig r;

    rig_setup(&r, true);
    out(&r, 0x600, 2, 0xffff); /* clear every status bit */
    CHECK_EQ(in(&r, 0x600, 2), 0);
    out(&r, 0x602, 2, 0xffff); /* enable: only the bits PM1_EN has */
    CHECK_EQ(in(&r, 0x602, 2), 0x0521);
    CHECK_EQ(in(&r, 0x603, 1), 0x05);
    CHECK_EQ(in(&r, 0x600, 4), 0x05210000); /* status and enable in one dword */
    out(&r, 0x603, 1, 0x01);                /* a byte write keeps the other byte */
    CHECK_EQ(in(&r, 0x602, 2), 0x0121);
    out(&r, 0x604, 2,
        0xffff & ~(1u << 13)); /* control: SCI_EN, BM_RLD, GBL_RLS, SLP_TYP */
    CHECK_EQ(in(&r, 0x604, 2), 0x1c07);
    CHECK_EQ(soft_offs, 0);
    out(&r, 0x604, 2, 0);
    for (uint16_t p = 0x606; p < 0x608; p++) {
        CHECK_EQ(in(&r, p, 1), 0);
    }
    for (uint16_t p = 0x60c; p < 0x640; p++) {
        out(&r, p, 1, 0xff);
        CHECK_EQ(in(&r, p, 1), 0);
    }
    CHECK_EQ(in(&r, 0x63e, 4), 0xffff0000); /* past the block: nobody's */
    CHECK_EQ(soft_offs, 0);
    rig_teardown(&r);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

UNIT_TEST(pm_timer_counts_at_3_58_mhz_in_24_bits_and_ignores_writes)
{
    Rig r;
    struct timespec pause = { 0, 20 * 1000 * 1000 };

    rig_setup(&r, true);
    pci_pc_resume(r.pci); /* the VM runs */
    uint64_t a0 = now_ns();
    uint32_t t0 = in(&r, 0x608, 4);
    uint64_t a1 = now_ns();
    out(&r, 0x608, 4, 0);
    nanosleep(&pause, NULL);
    uint64_t b0 = now_ns();
    uint32_t t1 = in(&r, 0x608, 4);
    uint64_t b1 = now_ns();
    CHECK(t0 <= 0xffffff && t1 <= 0xffffff);
    /* the ticks between the reads match the time between them at 3579545 Hz
     * (bracketed by the clock reads around each, +-1 for rounding) */
    uint64_t ticks = (t1 - t0) & 0xffffff;
    CHECK(ticks + 1 >= (b0 - a1) * 3579545 / 1000000000);
    CHECK(ticks <= (b1 - a0) * 3579545 / 1000000000 + 1);
    CHECK_EQ(in(&r, 0x60b, 1), 0); /* bits 24-31 */
    /* TMR_STS reads 1 after reset (as QEMU); writing it back clears it */
    CHECK_EQ(in(&r, 0x600, 2) & 1, 1);
    out(&r, 0x600, 2, 1);
    CHECK_EQ(in(&r, 0x600, 2) & 1, 0);
    rig_teardown(&r);
}

/* QEMU's PM timer counts the virtual clock: a stopped VM's stands still, and
 * a migrated VM's goes on from the count the source saved. */
UNIT_TEST(pm_timer_stands_still_while_stopped_and_migrates_its_count)
{
    Rig a, b;
    GError *err = NULL;
    GByteArray *blob = g_byte_array_new();
    struct timespec pause = { 0, 20 * 1000 * 1000 };

    rig_setup(&a, true);
    CHECK_EQ(in(&a, 0x608, 4), 0); /* not started yet (-S): 0 */
    pci_pc_resume(a.pci);
    nanosleep(&pause, NULL);
    pci_pc_pause(a.pci);
    uint32_t stopped = in(&a, 0x608, 4);
    CHECK(stopped > 0);
    nanosleep(&pause, NULL);
    CHECK_EQ(in(&a, 0x608, 4), stopped);
    pci_pc_pause(a.pci); /* stopping twice changes nothing */
    CHECK_EQ(in(&a, 0x608, 4), stopped);
    DeviceStateEntry *e = device_state_find(&a.states, "piix4_pm");
    CHECK(e->ops->save(e->opaque, blob, &err));
    pci_pc_resume(a.pci);
    nanosleep(&pause, NULL);
    CHECK(in(&a, 0x608, 4) != stopped); /* running again: it moves on */
    rig_teardown(&a);

    rig_setup(&b, true);
    DeviceStateEntry *f = device_state_find(&b.states, "piix4_pm");
    CHECK(f->ops->load(f->opaque, blob->data, blob->len, f->version, &err));
    CHECK_EQ(in(&b, 0x608, 4), stopped);
    nanosleep(&pause, NULL);
    CHECK_EQ(in(&b, 0x608, 4), stopped); /* the destination is not running yet */
    pci_pc_resume(b.pci);
    nanosleep(&pause, NULL);
    CHECK(((in(&b, 0x608, 4) - stopped) & 0xffffff) > 0);
    rig_teardown(&b);
    g_byte_array_free(blob, TRUE);
}

UNIT_TEST(apm_port_sets_and_clears_sci_en)
{
    Rig r;

    rig_setup(&r, true);
    out(&r, 0xb2, 1, 0xf1);
    CHECK_EQ(in(&r, 0x604, 2), 1);
    CHECK_EQ(in(&r, 0xb2, 1), 0xf1);
    out(&r, 0xb2, 1, 0x42); /* any other command: nothing */
    CHECK_EQ(in(&r, 0x604, 2), 1);
    out(&r, 0xb2, 1, 0xf0);
    CHECK_EQ(in(&r, 0x604, 2), 0);
    out(&r, 0xb3, 1, 0x5a);
    CHECK_EQ(in(&r, 0xb2, 2), 0x5af0);
    CHECK_EQ(in(&r, 0xb3, 2), 0xff5a); /* 0xb4: nobody's */
    rig_teardown(&r);
}

UNIT_TEST(power_button_needs_pwrbtn_en_then_raises_the_sci_until_cleared)
{
    Rig r;

    rig_setup(&r, true);
    out(&r, 0x600, 2, 0xffff);
    piix4_pm_power_button(r.pm); /* not enabled: dropped, as on QEMU */
    CHECK_EQ(in(&r, 0x600, 2), 0);
    CHECK(sci_level <= 0);
    out(&r, 0x602, 2, 0x100);
    piix4_pm_power_button(r.pm);
    CHECK_EQ(in(&r, 0x600, 2), 0x100);
    CHECK_EQ(sci_level, 1);
    out(&r, 0x600, 1, 0xff); /* the low byte: not PWRBTN_STS */
    CHECK_EQ(sci_level, 1);
    out(&r, 0x601, 1, 0x01);
    CHECK_EQ(in(&r, 0x600, 2), 0);
    CHECK_EQ(sci_level, 0);
    /* pending status, enable turned off and on again */
    piix4_pm_power_button(r.pm);
    out(&r, 0x602, 2, 0);
    CHECK_EQ(sci_level, 0);
    out(&r, 0x602, 2, 0x100);
    CHECK_EQ(sci_level, 1);
    rig_teardown(&r);
}

UNIT_TEST(gpe0_status_is_write_1_to_clear_and_storms_change_nothing_else)
{
    Rig r;

    rig_setup(&r, true);
    for (int i = 0; i < 10000; i++) { /* a storm of writes */
        out(&r, 0xafe0, 4, 0xffffffff);
        out(&r, 0xafe0, 1, 0xff);
    }
    CHECK_EQ(in(&r, 0xafe0, 2), 0);      /* status: nothing to clear */
    CHECK_EQ(in(&r, 0xafe2, 2), 0xffff); /* enable holds what was written */
    CHECK_EQ(sci_level, 0);
    out(&r, 0xafe2, 2, 0x0002);
    piix4_pm_gpe_raise(r.pm, 1);
    CHECK_EQ(in(&r, 0xafe0, 1), 0x02);
    CHECK_EQ(sci_level, 1);
    CHECK_EQ(in(&r, 0xafe1, 2), 0x0200); /* odd address, two bytes */
    CHECK_EQ(in(&r, 0xafe0, 4), 0x00020002);
    out(&r, 0xafe0, 1, 0x01); /* another bit: stays */
    CHECK_EQ(sci_level, 1);
    out(&r, 0xafe0, 1, 0x02);
    CHECK_EQ(sci_level, 0);
    piix4_pm_gpe_raise(r.pm, 99); /* no such bit */
    CHECK_EQ(in(&r, 0xafe0, 4), 0x00020000);
    CHECK_EQ(in(&r, 0xafe3, 2), 0xff00); /* past the block */
    piix4_pm_gpe_raise(r.pm, 1);
    out(&r, 0xafe2, 2, 0); /* disabled: SCI drops */
    CHECK_EQ(sci_level, 0);
    CHECK_EQ(in(&r, 0xafe0, 1), 0x02); /* status stays */
    rig_teardown(&r);
}

UNIT_TEST(slp_en_with_type_0_is_soft_off_and_other_types_are_not)
{
    Rig r;

    rig_setup(&r, true);
    out(&r, 0x604, 2, 5u << 10 | 1u << 13); /* SLP_TYP 5: no \_Sx of ours */
    CHECK_EQ(soft_offs, 0);
    CHECK_EQ(in(&r, 0x604, 2), 5u << 10); /* SLP_EN never reads back */
    out(&r, 0x605, 1, 0x20);              /* SLP_EN alone, SLP_TYP 0 */
    CHECK_EQ(soft_offs, 1);
    out(&r, 0x604, 4, 1u << 13 | 1);
    CHECK_EQ(soft_offs, 2);
    CHECK_EQ(in(&r, 0x604, 2), 1);
    rig_teardown(&r);
}

UNIT_TEST(reset_clears_the_registers_and_the_sci)
{
    Rig r;

    rig_setup(&r, true);
    out(&r, 0x602, 2, 0x100);
    out(&r, 0xb2, 1, 0xf1);
    piix4_pm_power_button(r.pm);
    out(&r, 0xafe2, 1, 2);
    piix4_pm_gpe_raise(r.pm, 1);
    CHECK_EQ(sci_level, 1);
    pci_pc_reset(r.pci);
    CHECK_EQ(sci_level, 0);
    CHECK_EQ(in(&r, 0x600, 4) & ~1u, 0);
    CHECK_EQ(in(&r, 0x604, 2), 0);
    CHECK_EQ(in(&r, 0xafe0, 4), 0);
    rig_teardown(&r);
}

UNIT_TEST(state_round_trip_and_a_bad_blob_changes_nothing)
{
    Rig a, b;
    GError *err = NULL;
    GByteArray *blob = g_byte_array_new();

    rig_setup(&a, false);
    cfg_write(&a, PM_FN, 0x40, 4, 0x601);
    cfg_write(&a, PM_FN, 0x80, 1, 1);
    out(&a, 0x602, 2, 0x100);
    out(&a, 0xb2, 1, 0xf1);
    piix4_pm_power_button(a.pm);
    out(&a, 0xafe2, 1, 2);
    piix4_pm_gpe_raise(a.pm, 1);
    DeviceStateEntry *e = device_state_find(&a.states, "piix4_pm");
    CHECK(e != NULL);
    CHECK(e->ops->save(e->opaque, blob, &err));
    rig_teardown(&a);

    rig_setup(&b, false);
    DeviceStateEntry *f = device_state_find(&b.states, "piix4_pm");
    CHECK(!f->ops->load(f->opaque, blob->data, blob->len - 1, f->version, &err));
    CHECK(err != NULL);
    g_clear_error(&err);
    CHECK_EQ(piix4_pm_block_base(b.pm), 0);
    CHECK(!f->ops->load(f->opaque, blob->data, blob->len, f->version + 1, &err));
    g_clear_error(&err);
    CHECK(f->ops->load(f->opaque, blob->data, blob->len, f->version, &err));
    CHECK(err == NULL);
    CHECK_EQ(piix4_pm_block_base(b.pm), 0x600);
    CHECK_EQ(in(&b, 0x600, 4) & ~1u, 0x01000100);
    CHECK_EQ(in(&b, 0x604, 2), 1);
    CHECK_EQ(in(&b, 0xafe0, 4), 0x00020002);
    CHECK_EQ(sci_level, 1);
    rig_teardown(&b);
    g_byte_array_free(blob, TRUE);
}

/* ---- the ACPI PCI hot-plug registers (hw/acpi/pcihp.c) ---- */

#include "hw/acpi/pcihp.h"

static unsigned gpe_raised, ejects[32];

static void count_gpe(void *opaque)
{
    gpe_raised++;
}

static void count_eject(void *opaque, unsigned slot)
{
    ejects[slot]++;
}

typedef struct HpRig {
    Bus io;
    DeviceStateList states;
    AcpiPciHp *hp;
} HpRig;

static void hp_setup(HpRig *r)
{
    GError *err = NULL;
    AcpiPciHpConfig cfg = {
        .io_bus = &r->io,
        .base = 0xae00,
        .states = &r->states,
        .fixed_slots = 3,
        .raise_gpe = count_gpe,
        .eject = count_eject,
    };

    bus_init(&r->io, "io");
    device_state_list_init(&r->states);
    gpe_raised = 0;
    memset(ejects, 0, sizeof(ejects));
    r->hp = acpi_pcihp_new(&cfg, &err);
    CHECK(r->hp && !err);
}

static void hp_teardown(HpRig *r)
{
    acpi_pcihp_free(r->hp);
    CHECK(bus_find(&r->io, 0xae00) == NULL);
    CHECK_EQ(r->states.entries->len, 0);
    bus_destroy(&r->io);
    device_state_list_destroy(&r->states);
}

static void hp_out(HpRig *r, uint16_t port, unsigned len, uint32_t val)
{
    bus_write_le(&r->io, port, len, val);
}

static uint32_t hp_in(HpRig *r, uint16_t port, unsigned len)
{
    return bus_read_le(&r->io, port, len);
}

static unsigned total_ejects(void)
{
    unsigned n = 0;

    for (unsigned i = 0; i < 32; i++) {
        n += ejects[i];
    }
    return n;
}

UNIT_TEST(pcihp_unplug_request_sets_down_and_the_guests_eject_completes_it)
{
    HpRig r;

    hp_setup(&r);
    CHECK_EQ(hp_in(&r, 0xae0c, 4), 0xfffffffc); /* RMV: all but slots 0 and 1 */
    acpi_pcihp_unplug_request(r.hp, 5);
    CHECK_EQ(gpe_raised, 1);
    CHECK_EQ(hp_in(&r, 0xae04, 4), 1u << 5);
    CHECK_EQ(acpi_pcihp_pending(r.hp), 1u << 5);
    hp_out(&r, 0xae08, 4, 1u << 5);
    CHECK_EQ(ejects[5], 1);
    CHECK_EQ(hp_in(&r, 0xae04, 4), 0);
    CHECK_EQ(hp_in(&r, 0xae08, 4), 0); /* EJ reads 0 */
    acpi_pcihp_plug(r.hp, 7);
    CHECK_EQ(hp_in(&r, 0xae00, 4), 1u << 7);
    CHECK_EQ(hp_in(&r, 0xae00, 4), 0); /* reading UP clears it */
    hp_teardown(&r);
}

UNIT_TEST(pcihp_withdrawn_unplug_leaves_the_device_and_a_late_eject_still_counts)
{
    HpRig r;

    hp_setup(&r);
    acpi_pcihp_unplug_request(r.hp, 6);  /* failover: migrate asks ... */
    acpi_pcihp_unplug_withdraw(r.hp, 6); /* ... and migrate_cancel takes it back */
    CHECK_EQ(hp_in(&r, 0xae04, 4), 0);
    CHECK_EQ(acpi_pcihp_pending(r.hp), 0);
    CHECK_EQ(total_ejects(), 0);
    hp_out(&r, 0xae08, 4, 1u << 6); /* a guest that had read DOWN before */
    CHECK_EQ(ejects[6], 1);         /* the board plugs a failover primary back */
    hp_teardown(&r);
}

UNIT_TEST(pcihp_hostile_ejects_and_odd_widths_change_nothing)
{
    HpRig r;

    hp_setup(&r);
    hp_out(&r, 0xae08, 4, 0);       /* no slot */
    hp_out(&r, 0xae08, 4, 1u << 0); /* the host bridge */
    hp_out(&r, 0xae08, 4, 1u << 1); /* the PIIX */
    CHECK_EQ(total_ejects(), 0);
    hp_out(&r, 0xae08, 4, 0xffffffff); /* many bits: only the lowest counts */
    CHECK_EQ(total_ejects(), 0);       /* ... and that is slot 0 */
    hp_out(&r, 0xae08, 4, 0xfffffff8);
    CHECK_EQ(ejects[3], 1); /* an empty slot: the board's to ignore */
    CHECK_EQ(total_ejects(), 1);
    acpi_pcihp_unplug_request(r.hp, 9);
    for (uint16_t p = 0xae00; p < 0xae18; p++) {
        for (unsigned len = 1; len <= 2; len++) {
            CHECK_EQ(hp_in(&r, p, len), 0); /* not a dword: reads 0 */
            hp_out(&r, p, len, 0xffff);     /* ... and writes nothing */
        }
        if (p & 3) {
            CHECK_EQ(hp_in(&r, p, 4), 0); /* unaligned dword: same */
            hp_out(&r, p, 4, 0xffffffff);
        }
    }
    CHECK_EQ(total_ejects(), 1);
    CHECK_EQ(hp_in(&r, 0xae04, 4), 1u << 9);
    CHECK_EQ(hp_in(&r, 0xae10, 4), 0);
    CHECK_EQ(hp_in(&r, 0xae18, 4), 0xffffffff); /* past the block */
    hp_teardown(&r);
}

UNIT_TEST(pcihp_other_bus_selects_name_no_bus)
{
    HpRig r;

    hp_setup(&r);
    acpi_pcihp_unplug_request(r.hp, 4);
    hp_out(&r, 0xae10, 4, 1);
    CHECK_EQ(hp_in(&r, 0xae10, 4), 1);
    CHECK_EQ(hp_in(&r, 0xae04, 4), 0);
    CHECK_EQ(hp_in(&r, 0xae0c, 4), 0xffffffff);
    hp_out(&r, 0xae08, 4, 1u << 4);
    CHECK_EQ(total_ejects(), 0);
    hp_out(&r, 0xae10, 4, 0x100); /* out of range: everything reads 0 */
    CHECK_EQ(hp_in(&r, 0xae10, 4), 0);
    CHECK_EQ(hp_in(&r, 0xae0c, 4), 0);
    hp_out(&r, 0xae10, 4, 0);
    CHECK_EQ(hp_in(&r, 0xae04, 4), 1u << 4);
    hp_teardown(&r);
}

UNIT_TEST(pcihp_reset_carries_out_pending_unplugs_and_state_round_trips)
{
    HpRig a, b;
    GError *err = NULL;
    GByteArray *blob = g_byte_array_new();

    hp_setup(&a);
    acpi_pcihp_unplug_request(a.hp, 6);
    acpi_pcihp_plug(a.hp, 8);
    DeviceStateEntry *e = device_state_find(&a.states, "acpi-pcihp");
    CHECK(e && e->ops->save(e->opaque, blob, &err));
    acpi_pcihp_reset(a.hp);
    CHECK_EQ(ejects[6], 1);
    CHECK_EQ(acpi_pcihp_pending(a.hp), 0);
    hp_teardown(&a);

    hp_setup(&b);
    DeviceStateEntry *f = device_state_find(&b.states, "acpi-pcihp");
    CHECK(!f->ops->load(f->opaque, blob->data, blob->len - 1, f->version, &err));
    g_clear_error(&err);
    CHECK_EQ(acpi_pcihp_pending(b.hp), 0);
    CHECK(f->ops->load(f->opaque, blob->data, blob->len, f->version, &err));
    CHECK_EQ(acpi_pcihp_pending(b.hp), 1u << 6);
    CHECK_EQ(hp_in(&b, 0xae00, 4), 1u << 8);
    hp_teardown(&b);
    g_byte_array_free(blob, TRUE);
}
