"""The migration stream's framing (docs/migration.md, version 2), for tests
and tests/fuzz/make-corpus-migration.py: XXH64, sections split and joined."""

M = (1 << 64) - 1
P1, P2, P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
P4, P5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5
SEC_RAM = 2
RAM_ZERO, RAM_PAGE = 1, 2


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def _round(acc, w):
    return (_rotl((acc + w * P2) & M, 31) * P1) & M


def xxh64(data, seed=0):
    """XXH64 (the section checksum; checked against zstd's frame checksum)."""
    n, pos = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        words = memoryview(data).cast("B")
        while n - pos >= 32:
            for i in range(4):
                v[i] = _round(v[i], int.from_bytes(words[pos + 8 * i:pos + 8 * i + 8], "little"))
            pos += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M
        for x in v:
            h = ((h ^ _round(0, x)) * P1 + P4) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while n - pos >= 8:
        h ^= _round(0, int.from_bytes(data[pos:pos + 8], "little"))
        h = (_rotl(h, 27) * P1 + P4) & M
        pos += 8
    if n - pos >= 4:
        h ^= (int.from_bytes(data[pos:pos + 4], "little") * P1) & M
        h = (_rotl(h, 23) * P2 + P3) & M
        pos += 4
    while pos < n:
        h ^= (data[pos] * P5) & M
        h = _rotl(h, 11) * P1 & M
        pos += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    return h ^ (h >> 32)


def split(data):
    """A stream's 16-byte header and its sections as [type, name, version,
    payload] (whole sections only)."""
    pos, out = 16, []
    while pos < len(data):
        kind, name_len = data[pos], int.from_bytes(data[pos + 1:pos + 3], "little")
        name = data[pos + 3:pos + 3 + name_len]
        pos += 3 + name_len
        version = int.from_bytes(data[pos:pos + 4], "little")
        size = int.from_bytes(data[pos + 4:pos + 12], "little")
        out.append([kind, name, version, data[pos + 12:pos + 12 + size]])
        pos += 12 + size + 8
    return data[:16], out


def section(kind, name, version, payload, checksum=None):
    sec = (bytes([kind]) + len(name).to_bytes(2, "little") + name
           + version.to_bytes(4, "little") + len(payload).to_bytes(8, "little") + payload)
    return sec + (xxh64(sec) if checksum is None else checksum).to_bytes(8, "little")


def join(header, sections):
    return header + b"".join(section(*s) for s in sections)


def ram_records(payload):
    """A RAM section's payload as [(record, 4096 bytes or b"")]."""
    count = int.from_bytes(payload[:8], "little")
    recs = [int.from_bytes(payload[8 + 8 * i:16 + 8 * i], "little") for i in range(count)]
    pos, out = 8 + 8 * count, []
    for r in recs:
        if r & 0xfff == RAM_PAGE:
            out.append((r, payload[pos:pos + 4096]))
            pos += 4096
        else:
            out.append((r, b""))
    return out


def ram_payload(recs):
    return (len(recs).to_bytes(8, "little") + b"".join(r.to_bytes(8, "little") for r, _ in recs)
            + b"".join(d for _, d in recs))
