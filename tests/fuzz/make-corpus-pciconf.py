#!/usr/bin/env python3
"""Seeds for tests/fuzz/fuzz-pciconf.c (the input format is described
there): what firmware and drivers do (IDs, BAR sizing and placement,
MSI-X set-up, PIRQ routes, the virtio PCI_CFG window) and what they should
not (disabled or other-bus addresses, odd sizes, clashing BARs, BARs over
RAM, writes to read-only and write-1-to-clear bits, a reset through 0xCF9).
Usage: make-corpus-pciconf.py OUTDIR"""
import os
import struct
import sys

HOST, ISA, DISK, EMPTY = 0x00, 0x08, 0x10, 0x18
MSIX_CAP, CFG_CAP = 0x98, 0x84        # where virtio-pci puts them (fuzz-pc.h's disk)
SIZES = {1: 0, 2: 1, 4: 2, 8: 3}
MSIX_BAR_AT, MODERN_BAR_AT = 0xfebf0000, 0xfe000000


def address(value):
    return struct.pack("<BI", 0, value)


def port(offset, size, write, value=0):
    return struct.pack("<BBBBI", 1, offset, SIZES[size], write, value)


def cfg(devfn, reg, size, write=0, value=0):
    return struct.pack("<BBBBBI", 2, devfn, reg, SIZES[size], write, value)


def msix(offset, size, write=0, value=0):
    return struct.pack("<BHBBQ", 3, offset, SIZES[size], write, value)


def modern(offset, size):
    return struct.pack("<BHB", 4, offset, SIZES[size])


def map_bars(command=0x0006):
    return (cfg(DISK, 0x14, 4, 1, MSIX_BAR_AT) + cfg(DISK, 0x20, 4, 1, MODERN_BAR_AT)
            + cfg(DISK, 0x24, 4, 1, 0) + cfg(DISK, 0x04, 2, 1, command))


def msix_vector0(unmask=True):
    return (msix(0, 8, 1, 0xfee00000) + msix(8, 4, 1, 0x4041)
            + msix(12, 4, 1, 0 if unmask else 1))


def main():
    out = sys.argv[1]
    seeds = {
        "empty": b"",
        "ids": cfg(HOST, 0, 4) + cfg(ISA, 0, 4) + cfg(DISK, 0, 4),
        "ids-host": cfg(HOST, 0, 4),
        "ids-isa": cfg(ISA, 0, 4),
        "class-disk": cfg(DISK, 0x08, 4),
        "empty-slot": cfg(EMPTY, 0, 4),
        "address-disabled": address(0x00001000) + port(4, 4, 0),
        "address-bus-one": address(0x80010000) + port(4, 4, 0),
        "address-readback": address(0xffffffff) + port(0, 4, 0),
        "bar1-sizing": cfg(DISK, 0x14, 4, 1, 0xffffffff) + cfg(DISK, 0x14, 4),
        "bar4-sizing": cfg(DISK, 0x20, 4, 1, 0xffffffff) + cfg(DISK, 0x24, 4, 1, 0xffffffff)
        + cfg(DISK, 0x20, 4),
        "bars-mapped": map_bars(),
        "bars-memory-off": map_bars(command=0x0004),
        "bars-clash": cfg(DISK, 0x14, 4, 1, MODERN_BAR_AT) + cfg(DISK, 0x20, 4, 1, MODERN_BAR_AT)
        + cfg(DISK, 0x04, 2, 1, 0x0002),
        "bar-over-ram": cfg(DISK, 0x14, 4, 1, 0x00100000) + cfg(DISK, 0x04, 2, 1, 0x0002),
        "bar-above-4g": cfg(DISK, 0x20, 4, 1, 0) + cfg(DISK, 0x24, 4, 1, 0x10)
        + cfg(DISK, 0x04, 2, 1, 0x0002),
        "bar-moved": map_bars() + cfg(DISK, 0x14, 4, 1, 0xfebe0000),
        "msix-route": map_bars() + msix_vector0() + cfg(DISK, MSIX_CAP + 3, 1, 1, 0x80),
        "msix-masked-vector": map_bars() + msix_vector0(unmask=False)
        + cfg(DISK, MSIX_CAP + 3, 1, 1, 0x80),
        "msix-function-masked": map_bars() + msix_vector0() + cfg(DISK, MSIX_CAP + 3, 1, 1, 0xc0),
        "msix-bad-address": map_bars() + msix(0, 8, 1, 0x12345678) + msix(12, 4, 1, 0)
        + cfg(DISK, MSIX_CAP + 3, 1, 1, 0x80),
        "msix-enable-then-disable": map_bars() + msix_vector0()
        + cfg(DISK, MSIX_CAP + 3, 1, 1, 0x80) + cfg(DISK, MSIX_CAP + 3, 1, 1, 0x00),
        "msix-table-readback": map_bars() + msix_vector0() + msix(8, 4) + msix(12, 4),
        "msix-pba-read": map_bars() + msix(2048, 8),
        "msix-cap-read": cfg(DISK, MSIX_CAP, 4) + cfg(DISK, MSIX_CAP + 4, 4)
        + cfg(DISK, MSIX_CAP + 8, 4),
        "virtio-common-read": map_bars() + modern(0x00, 4) + modern(0x04, 4) + modern(0x12, 2),
        "virtio-isr-read": map_bars() + modern(0x1000, 1),
        "virtio-device-config": map_bars() + modern(0x2000, 4) + modern(0x2004, 4),
        "cfg-window-read": cfg(DISK, CFG_CAP + 4, 1, 1, 4) + cfg(DISK, CFG_CAP + 8, 4, 1, 0x12)
        + cfg(DISK, CFG_CAP + 12, 4, 1, 2) + cfg(DISK, CFG_CAP + 16, 4),
        "cfg-window-msix": cfg(DISK, CFG_CAP + 4, 1, 1, 1) + cfg(DISK, CFG_CAP + 8, 4, 1, 8)
        + cfg(DISK, CFG_CAP + 12, 4, 1, 4) + cfg(DISK, CFG_CAP + 16, 4, 1, 0x4041)
        + cfg(DISK, CFG_CAP + 16, 4),
        "cfg-window-bad": cfg(DISK, CFG_CAP + 4, 1, 1, 9) + cfg(DISK, CFG_CAP + 12, 4, 1, 3)
        + cfg(DISK, CFG_CAP + 16, 4),
        "cfg-window-status": cfg(DISK, CFG_CAP + 4, 1, 1, 4) + cfg(DISK, CFG_CAP + 8, 4, 1, 0x14)
        + cfg(DISK, CFG_CAP + 12, 4, 1, 1) + cfg(DISK, CFG_CAP + 16, 1, 1, 0x0f)
        + cfg(DISK, CFG_CAP + 16, 1),
        "pirq-routes": cfg(ISA, 0x60, 4, 1, 0x0b0a0b0a) + cfg(ISA, 0x60, 4)
        + cfg(DISK, 0x3c, 1, 1, 10) + cfg(DISK, 0x3d, 1),
        "pirq-bad-irq": cfg(ISA, 0x60, 1, 1, 0x02) + cfg(ISA, 0x60, 1),
        "pam-write": cfg(HOST, 0x59, 1, 1, 0x30) + cfg(HOST, 0x5a, 4, 1, 0xffffffff)
        + cfg(HOST, 0x58, 4),
        "reset-control": port(1, 1, 1, 0x02) + port(1, 1, 0) + port(1, 1, 1, 0x06),
        "odd-sizes": address(0x80001000) + port(5, 4, 0) + port(6, 2, 0) + port(7, 4, 0)
        + port(5, 4, 1, 0xffffffff) + port(2, 2, 0),
        "readonly-and-w1c": cfg(DISK, 0x00, 4, 1, 0) + cfg(DISK, 0x06, 2, 1, 0xffff)
        + cfg(DISK, 0x00, 4) + cfg(DISK, 0x04, 4),
        "intx-disable": cfg(DISK, 0x04, 2, 1, 0x0400) + cfg(DISK, 0x04, 2),
        "config-end": cfg(DISK, 0xfc, 4, 1, 0xffffffff) + cfg(DISK, 0xfc, 4),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
