/*
 * Address-space dispatch: a sorted array of non-overlapping ranges searched
 * by bisection.  Locking: callers hold the machine lock (see bus.h).
 */
#include <string.h>

#include "hw/bus.h"
#include "util/error.h"

void bus_init(Bus *bus, const char *name)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
}

void bus_destroy(Bus *bus)
{
    g_free(bus->ranges);
    bus->ranges = NULL;
    bus->nr_ranges = bus->capacity = 0;
}

/* Index of the first range whose base is greater than addr. */
static size_t bus_upper_bound(const Bus *bus, uint64_t addr)
{
    size_t lo = 0, hi = bus->nr_ranges;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bus->ranges[mid].base <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const BusRange *bus_find(const Bus *bus, uint64_t addr)
{
    size_t i = bus_upper_bound(bus, addr);
    const BusRange *r;

    if (i == 0) {
        return NULL;
    }
    r = &bus->ranges[i - 1];
    return addr - r->base < r->len ? r : NULL;
}

bool bus_register(Bus *bus, uint64_t base, uint64_t len, BusIoFn fn, void *opaque,
                  const char *name, GError **errp)
{
    size_t i;

    if (len == 0 || base + len - 1 < base) {
        error_setg(errp,
                   "%s: bad %s range 0x%" G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER "x",
                   name, bus->name, base, len);
        return false;
    }
    i = bus_upper_bound(bus, base);
    if (i > 0) {
        const BusRange *prev = &bus->ranges[i - 1];
        if (base - prev->base < prev->len) {
            error_setg(errp, "%s: %s range 0x%" G_GINT64_MODIFIER "x overlaps %s", name,
                       bus->name, base, prev->name);
            return false;
        }
    }
    if (i < bus->nr_ranges && bus->ranges[i].base - base < len) {
        error_setg(errp, "%s: %s range 0x%" G_GINT64_MODIFIER "x overlaps %s", name,
                   bus->name, base, bus->ranges[i].name);
        return false;
    }
    if (bus->nr_ranges == bus->capacity) {
        bus->capacity = bus->capacity ? bus->capacity * 2 : 16;
        bus->ranges = g_renew(BusRange, bus->ranges, bus->capacity);
    }
    memmove(&bus->ranges[i + 1], &bus->ranges[i],
            (bus->nr_ranges - i) * sizeof(BusRange));
    bus->ranges[i] = (BusRange){ base, len, fn, opaque, name };
    bus->nr_ranges++;
    return true;
}

bool bus_unregister(Bus *bus, uint64_t base)
{
    size_t i = bus_upper_bound(bus, base);

    if (i == 0 || bus->ranges[i - 1].base != base) {
        return false;
    }
    i--;
    memmove(&bus->ranges[i], &bus->ranges[i + 1],
            (bus->nr_ranges - i - 1) * sizeof(BusRange));
    bus->nr_ranges--;
    return true;
}

bool bus_dispatch(const Bus *bus, uint64_t addr, uint8_t *data, unsigned len,
                  bool is_write)
{
    const BusRange *r = bus_find(bus, addr);

    if (!r) {
        if (!is_write) {
            memset(data, 0xff, len);
        }
        return false;
    }
    r->fn(r->opaque, addr - r->base, data, len, is_write);
    return true;
}
