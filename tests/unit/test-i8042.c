/*
 * i8042 controller tests through the io bus, in the order a Linux guest
 * without ACPI probes it (flush, read CTR, write CTR, self-test, aux
 * test), the reset line both ways, and save/load.
 */
#include "hw/bus.h"
#include "hw/i386/i8042.h"
#include "hw/vmstate.h"
#include "unit.h"

typedef struct Rig {
    Bus bus;
    DeviceStateList states;
    I8042 *kbc;
    int resets;
} Rig;

static void count_reset(void *opaque)
{
    ((Rig *)opaque)->resets++;
}

static void rig_init(Rig *r)
{
    *r = (Rig){ 0 };
    bus_init(&r->bus, "io");
    device_state_list_init(&r->states);
    r->kbc = i8042_new(&r->bus, &r->states, count_reset, r, NULL);
    CHECK(r->kbc != NULL);
}

static void rig_fini(Rig *r)
{
    i8042_free(r->kbc);
    device_state_list_destroy(&r->states);
    bus_destroy(&r->bus);
}

static uint8_t in8(Rig *r, uint16_t port)
{
    uint8_t v = 0;

    CHECK(bus_dispatch(&r->bus, port, &v, 1, false));
    return v;
}

static void out8(Rig *r, uint16_t port, uint8_t v)
{
    CHECK(bus_dispatch(&r->bus, port, &v, 1, true));
}

/* A command with one reply byte, as a driver polls for it. */
static uint8_t command_reply(Rig *r, uint8_t cmd)
{
    out8(r, 0x64, cmd);
    CHECK(in8(r, 0x64) & 0x01); /* output buffer full */
    return in8(r, 0x60);
}

UNIT_TEST(linux_probe_reads_and_writes_the_configuration_byte)
{
    Rig r;
    uint8_t ctr;

    rig_init(&r);
    CHECK_EQ(in8(&r, 0x64) & 0x03, 0); /* nothing to flush, not busy */
    ctr = command_reply(&r, 0x20);
    CHECK(ctr & 0x04);                 /* system flag */
    CHECK_EQ(in8(&r, 0x64) & 0x01, 0); /* reading emptied it */
    out8(&r, 0x64, 0x60);
    out8(&r, 0x60, (ctr & ~0x01) | 0x30); /* both ports off, no irq */
    CHECK_EQ(command_reply(&r, 0x20), (ctr & ~0x01) | 0x30);
    out8(&r, 0x64, 0xae); /* keyboard port on */
    CHECK_EQ(command_reply(&r, 0x20) & 0x10, 0);
    CHECK_EQ(command_reply(&r, 0xaa), 0x55); /* self-test passed */
    CHECK_EQ(command_reply(&r, 0xab), 0x00); /* keyboard interface ok */
    CHECK(command_reply(&r, 0xa9) != 0x00);  /* no mouse */
    out8(&r, 0x60, 0xf2);                    /* to the (absent) keyboard */
    CHECK_EQ(in8(&r, 0x64) & 0x01, 0);       /* nobody answers */
    CHECK_EQ(r.resets, 0);
    rig_fini(&r);
}

UNIT_TEST(reset_line_by_pulse_and_by_output_port)
{
    Rig r;

    rig_init(&r);
    out8(&r, 0x64, 0xfe);
    CHECK_EQ(r.resets, 1);
    out8(&r, 0x64, 0xff); /* bit 0 set: no pulse */
    CHECK_EQ(r.resets, 1);
    out8(&r, 0x64, 0xd1);
    out8(&r, 0x60, 0x03); /* reset line released */
    CHECK_EQ(r.resets, 1);
    CHECK_EQ(command_reply(&r, 0xd0), 0x03);
    out8(&r, 0x64, 0xd1);
    out8(&r, 0x60, 0x02); /* bit 0 clear: reset */
    CHECK_EQ(r.resets, 2);
    rig_fini(&r);
}

UNIT_TEST(state_survives_save_and_load_and_garbage_is_refused)
{
    Rig a, b;
    DeviceStateEntry *ea, *eb;
    GByteArray *blob = g_byte_array_new();
    GError *err = NULL;

    rig_init(&a);
    rig_init(&b);
    out8(&a, 0x64, 0x60);
    out8(&a, 0x60, 0x65);
    out8(&a, 0x64, 0x20); /* reply left unread */
    ea = device_state_find(&a.states, "i8042");
    eb = device_state_find(&b.states, "i8042");
    CHECK(ea && eb);
    CHECK(ea->ops->save(ea->opaque, blob, NULL));
    CHECK(!eb->ops->load(eb->opaque, blob->data, blob->len - 1, ea->version, &err));
    CHECK(err != NULL);
    g_clear_error(&err);
    CHECK_EQ(command_reply(&b, 0x20), 0x45); /* untouched by the refusal */
    CHECK(eb->ops->load(eb->opaque, blob->data, blob->len, ea->version, NULL));
    CHECK(in8(&b, 0x64) & 0x01);
    CHECK_EQ(in8(&b, 0x60), 0x65);
    g_byte_array_free(blob, TRUE);
    rig_fini(&a);
    rig_fini(&b);
}

UNIT_MAIN()
