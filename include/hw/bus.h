/*
 * One bus per address space (port I/O, MMIO): an ordered interval map from
 * guest addresses to device handlers.  Registration happens with the
 * machine lock held; dispatch runs on vCPU threads with the machine lock
 * held, so handlers never race with each other.
 */
#ifndef HW_BUS_H
#define HW_BUS_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

/*
 * A device's access handler.  offset is relative to the registered base;
 * data holds len bytes (1, 2, 4 or 8) in guest (little-endian) order: the
 * handler fills it on a read and consumes it on a write.
 */
typedef void (*BusIoFn)(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                        bool is_write);

typedef struct BusRange {
    uint64_t base;
    uint64_t len;
    BusIoFn fn;
    void *opaque;
    const char *name;
} BusRange;

typedef struct Bus {
    const char *name; /* "io" or "mmio", for messages */
    BusRange *ranges; /* sorted by base, never overlapping */
    size_t nr_ranges;
    size_t capacity;
} Bus;

void bus_init(Bus *bus, const char *name);
void bus_destroy(Bus *bus);

/* Add [base, base+len).  Refuses empty, wrapping or overlapping ranges. */
bool bus_register(Bus *bus, uint64_t base, uint64_t len, BusIoFn fn, void *opaque,
                  const char *name, GError **errp);
/* Remove the range that starts at base; false when there is none. */
bool bus_unregister(Bus *bus, uint64_t base);
/* The range holding addr, or NULL. */
const BusRange *bus_find(const Bus *bus, uint64_t addr);

/*
 * Route one access.  An access that no device claims reads as all ones and
 * its writes are dropped (as on a PC); returns false in that case.
 */
bool bus_dispatch(const Bus *bus, uint64_t addr, uint8_t *data, unsigned len,
                  bool is_write);

#endif
