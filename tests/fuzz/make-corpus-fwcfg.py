#!/usr/bin/env python3
"""Seeds for tests/fuzz/fuzz-fwcfg.c (the input format is described there):
what SeaBIOS does (signature, ID, file directory, DMA reads of files) and
what a hostile guest could (DMA writes, descriptors and buffers outside
RAM, lengths past the item, a descriptor overwritten by its own read).
Usage: make-corpus-fwcfg.py OUTDIR"""
import os
import struct
import sys

SELECT, READ, DATA, DMA, PORT, WRAM, RRAM = 0, 1, None, 2, 3, 4, 5
CTL_ERROR, CTL_READ, CTL_SKIP, CTL_SELECT, CTL_WRITE = 1, 2, 4, 8, 0x10
RAM = 2 << 20


def select(key):
    return struct.pack("<BH", 0, key)


def read(count):
    return struct.pack("<BB", 1, count)


def dma(addr):
    return struct.pack("<BI", 2, addr)


def port(offset, size, write, value=0):
    return struct.pack("<BBBBI", 3, offset, {1: 0, 2: 1, 4: 2}[size], write, value)


def wram(gpa, data):
    return struct.pack("<BIH", 4, gpa, len(data)) + data


def rram(gpa, length):
    return struct.pack("<BIH", 5, gpa, length)


def desc(control, length, addr, key=0):
    return struct.pack(">IIQ", key << 16 | control, length, addr)


def dma_at(gpa, control, length, addr, key=0):
    return wram(gpa, desc(control, length, addr, key)) + dma(gpa) + rram(gpa, 4)


def main():
    out = sys.argv[1]
    seeds = {
        "empty": b"",
        "port-signature": select(0) + read(4),
        "port-id": select(1) + read(4),
        "port-file-dir": select(0x19) + read(255),
        "port-read-past-end": select(0x05) + read(8),
        "port-unknown-key": select(0x7777) + read(4),
        "port-dma-signature": port(4, 4, 0) + port(8, 4, 0) + port(6, 2, 0),
        "port-odd-accesses": port(0, 1, 1, 0x19) + port(1, 4, 0) + port(1, 2, 1, 0xffff)
        + port(3, 1, 0) + port(11, 4, 1, 0x12345678) + read(4),
        "dma-select-read": dma_at(0x1000, CTL_SELECT | CTL_READ, 4, 0x2000) + rram(0x2000, 4),
        "dma-read-file": dma_at(0x1000, CTL_SELECT | CTL_READ, 20, 0x2000, key=0x20)
        + rram(0x2000, 20),
        "dma-skip-then-read": dma_at(0x1000, CTL_SELECT | CTL_SKIP, 10, 0, key=0x22)
        + dma_at(0x1010, CTL_READ, 32, 0x3000) + rram(0x3000, 32),
        "dma-read-past-end": dma_at(0x1000, CTL_SELECT | CTL_READ, 1000, 0x2000, key=0x21)
        + rram(0x2000, 1000),
        "dma-then-port": dma_at(0x1000, CTL_SELECT | CTL_READ, 8, 0x2000, key=0x19) + read(8),
        "dma-write-refused": dma_at(0x1000, CTL_SELECT | CTL_WRITE, 4, 0x2000, key=0x20),
        "dma-nothing": dma_at(0x1000, 0, 4, 0x2000),
        "dma-desc-outside-ram": dma(RAM - 8) + dma(0xfffffff0),
        "dma-target-outside-ram": dma_at(0x1000, CTL_SELECT | CTL_READ, 16, RAM - 8),
        "dma-target-wraps": dma_at(0x1000, CTL_SELECT | CTL_READ, 0xffffffff,
                                   0xffffffffffffff00),
        "dma-reads-into-its-descriptor": dma_at(0x1000, CTL_SELECT | CTL_READ, 16, 0x1000,
                                                key=0x20) + rram(0x1000, 16),
        # high half 1, low half 0x1000 (big-endian on the wire): above 4 GiB
        "dma-desc-above-4g": wram(0x1000, desc(CTL_SELECT | CTL_READ, 4, 0x2000))
        + port(4, 4, 1, 0x01000000) + port(8, 4, 1, 0x00100000) + rram(0x1000, 4),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
