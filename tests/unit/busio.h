/*
 * What the device unit tests share to drive a bus as a guest does: a
 * little-endian value of 1 to 8 bytes written to or read from an address
 * (a port or MMIO), and PCI config space through CONFIG_ADDRESS (0xCF8)
 * and CONFIG_DATA (0xCFC) on the port bus.
 */
#ifndef TESTS_UNIT_BUSIO_H
#define TESTS_UNIT_BUSIO_H

#include <stdint.h>

#include "hw/bus.h"

static inline void bus_write_le(Bus *bus, uint64_t addr, unsigned len, uint64_t val)
{
    uint8_t d[8];

    for (unsigned i = 0; i < len; i++) {
        d[i] = val >> (8 * i);
    }
    bus_dispatch(bus, addr, d, len, true);
}

static inline uint64_t bus_read_le(Bus *bus, uint64_t addr, unsigned len)
{
    uint8_t d[8] = { 0 };
    uint64_t v = 0;

    bus_dispatch(bus, addr, d, len, false);
    for (unsigned i = 0; i < len; i++) {
        v |= (uint64_t)d[i] << (8 * i);
    }
    return v;
}

static inline uint32_t pci_cfg_read(Bus *io, unsigned devfn, unsigned reg, unsigned len)
{
    bus_write_le(io, 0xcf8, 4, 0x80000000u | devfn << 8 | (reg & 0xfc));
    return bus_read_le(io, 0xcfc + (reg & 3), len);
}

static inline void pci_cfg_write(Bus *io, unsigned devfn, unsigned reg, unsigned len,
                                 uint32_t val)
{
    bus_write_le(io, 0xcf8, 4, 0x80000000u | devfn << 8 | (reg & 0xfc));
    bus_write_le(io, 0xcfc + (reg & 3), len, val);
}

#endif
