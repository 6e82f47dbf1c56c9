#!/usr/bin/env python3
"""Host-side helpers for testos's disk scenarios (see README.md).

    blkimage.py pattern IMAGE [--sectors N] [--size BYTES]
        write the host pattern into sectors 0..N-1 of a raw IMAGE (created or
        extended to --size, default 64 MiB)
    blkimage.py check IMAGE [--sectors N] [--wstart S]
        exit 0 if sectors 0..N-1 hold the host pattern and S..S+N-1 testos's
    blkimage.py cmdline IMAGE 'testos.run=blk ...'
        set the command line stored in a raw copy of build/tests/guest/testos.img

Patterns (byte i of sector S, S absolute):
    host (written before boot):  (S * 31 + i * 7 + 1) & 0xff
    testos (blk writes it):      (S * 13 + i * 3 + 5) & 0xff
"""
import argparse
import os
import sys

SECTOR = 512
CMDLINE_MAGIC = b"TESTOS-CMDLINE-1"
CMDLINE_OFFSET = 0x210  # right after the magic at 0x200
CMDLINE_SIZE = 256      # NUL-terminated: at most 255 characters


def host_sector(s):
    return bytes((s * 31 + i * 7 + 1) & 0xFF for i in range(SECTOR))


def guest_sector(s):
    return bytes((s * 13 + i * 3 + 5) & 0xFF for i in range(SECTOR))


def write_pattern(path, sectors=64, size=64 << 20):
    """Raw image at path: the host pattern in sectors 0..sectors-1, zeros after."""
    mode = "r+b" if os.path.exists(path) else "w+b"
    with open(path, mode) as f:
        f.truncate(max(size, sectors * SECTOR))
        f.seek(0)
        f.write(b"".join(host_sector(s) for s in range(sectors)))


def check(path, sectors=64, wstart=128):
    """None if the image holds both patterns, else the first difference."""
    with open(path, "rb") as f:
        data = f.read((wstart + sectors) * SECTOR)
    for first, pattern in ((0, host_sector), (wstart, guest_sector)):
        for s in range(first, first + sectors):
            got = data[s * SECTOR:(s + 1) * SECTOR]
            if got != pattern(s):
                return f"sector {s} differs"
    return None


def set_cmdline(path, cmdline):
    """Stores cmdline in the raw testos boot image at path (in place)."""
    text = cmdline.encode()
    if len(text) >= CMDLINE_SIZE or b"\0" in text:
        raise ValueError(f"command line longer than {CMDLINE_SIZE - 1} bytes")
    with open(path, "r+b") as f:
        f.seek(CMDLINE_OFFSET - len(CMDLINE_MAGIC))
        if f.read(len(CMDLINE_MAGIC)) != CMDLINE_MAGIC:
            raise ValueError(f"{path}: no {CMDLINE_MAGIC.decode()} at 0x200")
        f.write(text.ljust(CMDLINE_SIZE, b"\0"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pattern")
    p.add_argument("image")
    p.add_argument("--sectors", type=int, default=64)
    p.add_argument("--size", type=int, default=64 << 20)
    c = sub.add_parser("check")
    c.add_argument("image")
    c.add_argument("--sectors", type=int, default=64)
    c.add_argument("--wstart", type=int, default=128)
    m = sub.add_parser("cmdline")
    m.add_argument("image")
    m.add_argument("cmdline")
    args = ap.parse_args()
    if args.cmd == "pattern":
        write_pattern(args.image, args.sectors, args.size)
    elif args.cmd == "check":
        err = check(args.image, args.sectors, args.wstart)
        if err:
            print(f"{args.image}: {err}", file=sys.stderr)
            return 1
    else:
        set_cmdline(args.image, args.cmdline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
