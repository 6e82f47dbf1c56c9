/*
 * The I/O and MMIO bus: registration rules (no overlap, no empty or
 * wrapping ranges), dispatch offsets, unclaimed accesses, removal.
 */
#include "hw/bus.h"
#include "unit.h"

typedef struct Probe {
    uint64_t last_offset;
    unsigned last_len;
    bool last_write;
    int calls;
} Probe;

static void probe_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                     bool is_write)
{
    Probe *p = opaque;

    p->last_offset = offset;
    p->last_len = len;
    p->last_write = is_write;
    p->calls++;
    if (!is_write) {
        memset(data, 0x5a, len);
    }
}

UNIT_TEST(overlaps_are_refused)
{
    Bus bus;
    Probe p = { 0 };
    GError *err = NULL;

    bus_init(&bus, "io");
    CHECK(bus_register(&bus, 0x3f8, 8, probe_io, &p, "com1", &err));
    CHECK(!bus_register(&bus, 0x3ff, 1, probe_io, &p, "x", &err));
    CHECK(err && strstr(err->message, "overlaps com1"));
    g_clear_error(&err);
    CHECK(!bus_register(&bus, 0x3f0, 9, probe_io, &p, "y", &err));
    g_clear_error(&err);
    CHECK(!bus_register(&bus, 0x3f0, 0x20, probe_io, &p, "cover", &err));
    g_clear_error(&err);
    /* adjacent ranges on both sides are fine */
    CHECK(bus_register(&bus, 0x3f0, 8, probe_io, &p, "below", &err));
    CHECK(bus_register(&bus, 0x400, 8, probe_io, &p, "above", &err));
    CHECK_EQ(bus.nr_ranges, 3);
    bus_destroy(&bus);
}

UNIT_TEST(bad_ranges_are_refused)
{
    Bus bus;
    Probe p = { 0 };
    GError *err = NULL;

    bus_init(&bus, "mmio");
    CHECK(!bus_register(&bus, 0x1000, 0, probe_io, &p, "empty", &err));
    g_clear_error(&err);
    CHECK(!bus_register(&bus, UINT64_MAX - 2, 8, probe_io, &p, "wrap", &err));
    g_clear_error(&err);
    CHECK(bus_register(&bus, UINT64_MAX - 7, 8, probe_io, &p, "top", &err));
    bus_destroy(&bus);
}

UNIT_TEST(dispatch_passes_offsets)
{
    Bus bus;
    Probe a = { 0 }, b = { 0 };
    uint8_t data[4] = { 0 };

    bus_init(&bus, "io");
    CHECK(bus_register(&bus, 0x60, 1, probe_io, &a, "a", NULL));
    CHECK(bus_register(&bus, 0xcf8, 8, probe_io, &b, "b", NULL));
    CHECK(bus_dispatch(&bus, 0xcfc, data, 4, false));
    CHECK_EQ(b.last_offset, 4);
    CHECK_EQ(b.last_len, 4);
    CHECK_EQ(data[3], 0x5a);
    CHECK(bus_dispatch(&bus, 0x60, data, 1, true));
    CHECK(a.last_write);
    CHECK_EQ(a.calls, 1);
    bus_destroy(&bus);
}

UNIT_TEST(unclaimed_reads_all_ones)
{
    Bus bus;
    uint8_t data[2] = { 0, 0 };

    bus_init(&bus, "io");
    CHECK(!bus_dispatch(&bus, 0x1234, data, 2, false));
    CHECK_EQ(data[0], 0xff);
    CHECK_EQ(data[1], 0xff);
    CHECK(!bus_dispatch(&bus, 0x1234, data, 2, true));
    bus_destroy(&bus);
}

UNIT_TEST(unregister_frees_the_range)
{
    Bus bus;
    Probe p = { 0 };
    uint8_t data = 0;

    bus_init(&bus, "io");
    for (unsigned i = 0; i < 100; i++) {
        CHECK(bus_register(&bus, 0x1000 + i * 16, 16, probe_io, &p, "dev", NULL));
    }
    CHECK(bus_unregister(&bus, 0x1000 + 50 * 16));
    CHECK(!bus_unregister(&bus, 0x1000 + 50 * 16));
    CHECK(!bus_dispatch(&bus, 0x1000 + 50 * 16 + 3, &data, 1, false));
    CHECK(bus_dispatch(&bus, 0x1000 + 51 * 16, &data, 1, false));
    CHECK(bus_find(&bus, 0x1000 + 99 * 16 + 15) != NULL);
    CHECK(bus_find(&bus, 0x1000 + 100 * 16) == NULL);
    bus_destroy(&bus);
}

UNIT_MAIN()
