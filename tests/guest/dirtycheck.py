#!/usr/bin/env python3
"""Checks the serial output of testos's `dirty` scenario (README.md,
"Migration workload").

    dirtycheck.py LOG [LOG ...]

The logs are read as one byte stream, in the order given (a migration's
source log, then its destination's: a line cut in two by the switch-over
joins up again). Checks: the `testos: dirty pages=...` header is there; the
`seq` lines count 0, 1, 2, ... with nothing skipped or repeated; each line's
sum is the one the rules give for that seq; no `testos: CORRUPT` and no
`testos: exception` line. A line the log ends in the middle of (the VMM
was stopped while the guest printed it) is ignored. Prints one line, `ok seq=0..N lines=L` or
`FAIL ...`, and exits 0 or 1.

As a module: expected_sums(pages, mibps, period_ms, last_seq) yields the sum
of every seq line from 0 to last_seq.
"""
import re
import sys

M64 = (1 << 64) - 1


def word_value(p, g):
    """The word page p holds at generation g (splitmix64's finaliser)."""
    z = (p + (g << 32) + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def pages_dirtied(seq, pages, mibps, period_ms):
    """Pages touched between seq 0 and seq line `seq`."""
    return seq * mibps * 256 * period_ms // 1000 if pages else 0


def expected_sums(pages, mibps, period_ms, last_seq):
    """Yields (seq, sum) for seq = 0..last_seq."""
    total = 0
    for p in range(pages):
        total += word_value(p, 0)
    total &= M64
    touched = 0  # pages [0, touched % pages) are one generation ahead
    for seq in range(last_seq + 1):
        target = pages_dirtied(seq, pages, mibps, period_ms)
        while touched < target:
            p, g = touched % pages, touched // pages
            total = (total + word_value(p, g + 1) - word_value(p, g)) & M64
            touched += 1
        yield seq, total


HEADER = re.compile(rb"testos: dirty pages=(\d+) wss_mib=\d+ mibps=(\d+) period_ms=(\d+)")
SEQ = re.compile(rb"testos: seq (\d+) sum ([0-9a-f]+)$")


def around(lines, n, before=3, after=1):
    """The raw lines around line n, to see what the guest really wrote."""
    shown = lines[max(n - before, 0):n + after + 1]
    return "; around it: " + " | ".join(repr(x)[2:-1] for x in shown)


def check(data):
    lines = data.split(b"\n")[:-1]  # the last is empty or a line cut off
    header = None
    seqs = []
    for n, line in enumerate(lines):
        line = line.rstrip(b"\r")
        if line.startswith(b"testos: CORRUPT") or line.startswith(b"testos: exception"):
            return f"FAIL {line.decode(errors='replace')}"
        m = HEADER.match(line)
        if m:
            if header is not None:
                return ("FAIL a second dirty header (the guest started again?)"
                        + around(lines, n, before=6))
            header = tuple(int(x) for x in m.groups())
            continue
        m = SEQ.match(line)
        if m:
            seqs.append((int(m.group(1)), int(m.group(2), 16), n))
    if header is None:
        return "FAIL no 'testos: dirty pages=' header"
    if not seqs:
        return "FAIL no seq lines"
    for i, (seq, _, _) in enumerate(seqs):
        if seq != i:
            return (f"FAIL seq line {i} says seq {seq} (after {seqs[i - 1][0] if i else None})"
                    + around(lines, seqs[i][2]))
    pages, mibps, period_ms = header
    for (seq, got, n), (_, want) in zip(seqs, expected_sums(pages, mibps, period_ms, len(seqs) - 1)):
        if got != want:
            return f"FAIL seq {seq} sum {got:x}, expected {want:x}" + around(lines, n)
    return f"ok seq=0..{len(seqs) - 1} lines={len(seqs)}"


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    data = b""
    for path in argv[1:]:
        with open(path, "rb") as f:
            data += f.read()
    result = check(data)
    print(result)
    return 0 if result.startswith("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
