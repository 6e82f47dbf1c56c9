#!/usr/bin/env python3
"""Seeds for tests/fuzz/fuzz-virtqueue.c (the input format is described
there): rings a driver could write, valid and broken in each way the
walker refuses.  Usage: make-corpus-virtqueue.py OUTDIR"""
import os
import struct
import sys

DESC, AVAIL, USED, BUF = 0x1000, 0x2000, 0x3000, 0x10000
NEXT, WRITE, INDIRECT = 1, 2, 4
EVENT_IDX, INDIRECT_DESC, NO_NOTIFY = 1, 2, 4
RAM = 2 << 20


def header(size=16, max_size=256, flags=0, pops=16, last_avail=0, used_idx=0,
           signalled=0, signalled_valid=0, desc=DESC, avail=AVAIL, used=USED):
    return struct.pack("<HHBBHHHB3xIII", max_size, size, flags, pops, last_avail, used_idx,
                       signalled, signalled_valid, desc, avail, used)


def write(gpa, data):
    return struct.pack("<IH", gpa, len(data)) + data


def descs(table, gpa=DESC):
    return write(gpa, b"".join(struct.pack("<QIHH", a, n, f, nx) for a, n, f, nx in table))


def avail(heads, idx=None, flags=0, used_event=None, size=16):
    ring = struct.pack("<HH", flags, len(heads) if idx is None else idx)
    ring += b"".join(struct.pack("<H", h) for h in heads)
    if used_event is not None:
        ring += bytes(2 * (size - len(heads))) + struct.pack("<H", used_event)
    return write(AVAIL, ring)


# a block request: header (readable), data (writable), status (writable)
BLK = [(BUF, 16, NEXT, 1), (BUF + 0x1000, 512, NEXT | WRITE, 2), (BUF + 0x2000, 1, WRITE, 0)]


def main():
    out = sys.argv[1]
    seeds = {
        "valid-one-request": header() + descs(BLK) + avail([0]),
        "valid-three-requests": header() + descs(
            BLK + [(BUF + 0x3000, 8, 0, 0), (BUF + 0x4000, 64, WRITE, 0)]) + avail([0, 3, 4]),
        "valid-indirect": header(flags=INDIRECT_DESC)
        + descs([(0x5000, 48, INDIRECT, 0)])
        + descs([(a, n, f, nx) for a, n, f, nx in BLK], gpa=0x5000) + avail([0]),
        "valid-event-idx": header(flags=EVENT_IDX, signalled_valid=1)
        + descs([(BUF, 8, 0, 0)] * 4) + avail([0, 1, 2, 3], used_event=2),
        "valid-no-interrupt": header() + descs(BLK) + avail([0], flags=1),
        "valid-notifications-off": header(flags=NO_NOTIFY | EVENT_IDX)
        + descs(BLK) + avail([0]),
        "valid-bad-address": header() + descs([(RAM - 8, 16, WRITE, 0)]) + avail([0]),
        "valid-zero-length": header() + descs([(0, 0, NEXT, 1), (BUF, 4, WRITE, 0)])
        + avail([0]),
        "valid-wrapping-index": header(last_avail=0xffff, used_idx=0xffff)
        + descs(BLK) + write(AVAIL, struct.pack("<HH", 0, 1)) + write(
            AVAIL + 4 + 2 * 15, struct.pack("<H", 0)),
        "valid-pop-limit": header(pops=1) + descs(BLK + BLK) + avail([0, 0]),
        "valid-empty": header(),
        "short": b"\x10\x00",
        "rings-size-zero": header(size=0),
        "rings-size-not-power-of-two": header(size=12),
        "rings-size-over-max": header(size=512, max_size=256),
        "rings-misaligned": header(desc=DESC + 8),
        "rings-outside-ram": header(used=RAM - 16),
        "ring-avail-jumps": header() + avail([0], idx=17),
        "ring-head-out-of-range": header() + avail([16]),
        "chain-loops": header() + descs([(BUF, 8, NEXT, 1), (BUF, 8, NEXT, 0)]) + avail([0]),
        "chain-next-out-of-range": header() + descs([(BUF, 8, NEXT, 16)]) + avail([0]),
        "chain-read-after-write": header() + descs([(BUF, 8, NEXT | WRITE, 1), (BUF, 8, 0, 0)])
        + avail([0]),
        "chain-longer-than-max": header(size=4, max_size=4, flags=INDIRECT_DESC)
        + descs([(BUF, 8, NEXT, 1), (0x5000, 64, INDIRECT, 0)])
        + descs([(BUF, 8, NEXT, i + 1) for i in range(3)] + [(BUF, 8, 0, 0)], gpa=0x5000)
        + avail([0]),
        "indirect-not-negotiated": header() + descs([(0x5000, 16, INDIRECT, 0)]) + avail([0]),
        "indirect-nested": header(flags=INDIRECT_DESC) + descs([(0x5000, 16, INDIRECT, 0)])
        + descs([(0x6000, 16, INDIRECT, 0)], gpa=0x5000) + avail([0]),
        "indirect-with-next": header(flags=INDIRECT_DESC)
        + descs([(0x5000, 16, INDIRECT | NEXT, 1)]) + avail([0]),
        "indirect-bad-length": header(flags=INDIRECT_DESC)
        + descs([(0x5000, 20, INDIRECT, 0)]) + avail([0]),
        "indirect-outside-ram": header(flags=INDIRECT_DESC)
        + descs([(RAM - 16, 32, INDIRECT, 0)]) + avail([0]),
        # a table placed on the descriptor ring itself is still a table
        "indirect-table-is-the-ring": header(flags=INDIRECT_DESC)
        + descs([(DESC, 256, INDIRECT, 0)]) + avail([0]),
        "indirect-loops": header(flags=INDIRECT_DESC) + descs([(0x5000, 32, INDIRECT, 0)])
        + descs([(BUF, 8, NEXT, 1), (BUF, 8, NEXT, 0)], gpa=0x5000) + avail([0]),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
