#!/usr/bin/env python3
"""Seeds for tests/fuzz/fuzz-migration.c from one real migration stream.

Make the stream with a source shaped like the target's machine (8 MiB,
one vCPU, one virtio drive, COM1), paused, migrated to a file:

    build/qemu-system-x86_64 -enable-kvm -smp 1 -m 8M -display none \\
        -nodefaults -serial null -qmp unix:/tmp/s.sock,server,nowait \\
        -kernel build/tests/guest/testos -append testos.run=hello \\
        -drive file=/tmp/disk.img,if=virtio,format=raw
    (QMP: stop; migrate uri=exec:cat > /tmp/stream.bin)

then:  tests/fuzz/make-corpus-migration.py /tmp/stream.bin tests/fuzz/corpus-migration

Each seed is one mode byte (0: the stream as it is; 1: the target puts
right every section's checksum first, so that the fuzzer can change what is
inside a section) and then the stream.  To keep the seeds small, the vCPU
blob is cut down to the records a load needs (the FPU record instead of
XSAVE, four MSRs) and RAM to a few records; only `valid-real` keeps the
source's vCPU blob whole.  Every seed but `checksum-*` carries right checksums.
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "functional"))
import migstream  # noqa: E402

SEC_CONFIG, SEC_RAM, SEC_KVM, SEC_CPU, SEC_DEVICE, SEC_END, SEC_GLOBAL = 1, 2, 3, 4, 5, 6, 7
TAG_REGS, TAG_SREGS, TAG_XSAVE, TAG_XCRS, TAG_MSRS = 1, 2, 3, 4, 5
TAG_LAPIC, TAG_EVENTS, TAG_MP_STATE, TAG_DEBUGREGS, TAG_FPU = 6, 7, 8, 9, 10
TAG_PIC_MASTER, TAG_PIT, TAG_CLOCK = 32, 35, 36
KVM_FPU_SIZE = 416
RAM_ZERO, RAM_PAGE = 1, 2


def parse(data):
    return migstream.split(data)


def section(kind, name, version, payload, checksum=None):
    return migstream.section(kind, name, version, payload, checksum)


def join(header, sections):
    return migstream.join(header, sections)


def records(blob):
    pos, out = 0, []
    while pos < len(blob):
        tag, size = struct.unpack_from("<II", blob, pos)
        out.append([tag, blob[pos + 8:pos + 8 + size]])
        pos += 8 + size
    return out


def unrecords(recs):
    return b"".join(struct.pack("<II", t, len(p)) + p for t, p in recs)


def small_cpu(blob):
    keep = []
    for tag, payload in records(blob):
        if tag == TAG_XSAVE:
            keep.append([TAG_FPU, bytes(KVM_FPU_SIZE)])
        elif tag == TAG_MSRS:
            n = min(4, struct.unpack_from("<I", payload)[0])
            keep.append([tag, struct.pack("<II", n, 0) + payload[8:8 + 16 * n]])
        elif tag in (TAG_XCRS, TAG_DEBUGREGS):
            continue
        else:
            keep.append([tag, payload])
    return unrecords(keep)


ram_records = migstream.ram_records
ram_payload = migstream.ram_payload
RAM_V = 2


def main():
    src, outdir = sys.argv[1], sys.argv[2]
    header, secs = parse(open(src, "rb").read())
    by_name = {s[1]: s for s in secs}
    config = by_name[b"config"]
    kvm, cpu = by_name[b"kvm"], by_name[b"cpu0"]
    # the devices of the target's machine (a source sends more since: the
    # ACPI PM device and its PCI hot-plug, which the target does not build)
    devices = [s for s in secs if s[0] == SEC_DEVICE and s[1] not in (b"piix4_pm",
                                                                      b"acpi-pcihp")]
    glob = by_name[b"globalstate"]
    end = [SEC_END, b"end", 1, b""]
    pages = [r for s in secs if s[0] == SEC_RAM for r in ram_records(s[3])]
    data_pages = [r for r in pages if r[1]]
    # one page with data (the first the source sent), three zero pages
    ram_small = [SEC_RAM, b"ram", RAM_V,
                 ram_payload(data_pages[:1] + [(0x1000 | RAM_ZERO, b""), (0x2000 | RAM_ZERO, b""),
                                               (0x7ff000 | RAM_ZERO, b"")])]
    ram_zero = [SEC_RAM, b"ram", RAM_V, ram_payload([(0x3000 | RAM_ZERO, b"")])]
    cpu_small = [SEC_CPU, b"cpu0", 1, small_cpu(cpu[3])]

    def base(ram=ram_zero, cpu_sec=cpu_small, kvm_sec=kvm, devs=None, glob_sec=glob,
             extra=()):
        devs = devices if devs is None else devs
        out = [config, ram, kvm_sec, cpu_sec] + list(devs) + list(extra)
        if glob_sec:
            out.append(glob_sec)
        return out + [end]

    def dev_replaced(name, payload=None, version=None):
        out = []
        for k, n, v, p in devices:
            if n == name:
                out.append([k, n, v if version is None else version,
                            p if payload is None else payload])
            else:
                out.append([k, n, v, p])
        return out

    def kvm_recs(fn):
        return [SEC_KVM, b"kvm", 1, unrecords(fn(records(kvm[3])))]

    def cpu_recs(fn):
        return [SEC_CPU, b"cpu0", 1, unrecords(fn(records(cpu_small[3])))]

    def global_with(payload, version=1):
        return [SEC_GLOBAL, b"globalstate", version, payload]

    blob = dict((n, p) for _, n, _, p in devices)
    virtio = [n for n in blob if n.startswith(b"virtio-blk@")][0]
    stream = {}
    mode1 = set()
    # loads
    stream["valid-real"] = join(header, base(ram=ram_small, cpu_sec=cpu))
    stream["valid-small"] = join(header, base(ram=ram_small))
    stream["valid-no-ram"] = join(header, [s for s in base() if s[0] != SEC_RAM])
    stream["valid-running-no-global"] = join(header, base(glob_sec=None))
    stream["valid-global-shutdown"] = join(header, base(glob_sec=global_with(
        b'{"runstate":"shutdown"}')))
    stream["valid-two-ram-sections"] = join(header, base(extra=[ram_zero]))
    # framing
    stream["empty"] = b""
    stream["header-short"] = header[:10]
    stream["header-bad-magic"] = b"DVMIGRAX" + header[8:]
    stream["header-version-1"] = header[:8] + struct.pack("<I", 1) + header[12:]
    stream["header-only"] = header
    stream["section-bad-type"] = join(header, [[9, b"x", 1, b"{}"]])
    stream["section-too-long"] = header + section(SEC_CONFIG, b"config", 1, b"")[:13] + \
        struct.pack("<Q", (64 << 20) + 1)
    stream["section-truncated"] = join(header, [config])[:-10]
    stream["checksum-flipped"] = join(header, [config])[:-1] + b"\xee"
    stream["checksum-wrong-fixed-by-mode1"] = header + section(*config, checksum=0x12345678) + \
        section(*ram_zero, checksum=0) + section(*end)
    mode1.add("checksum-wrong-fixed-by-mode1")
    flipped = section(*ram_small)   # the last byte of its page's data
    stream["checksum-page-data-flipped"] = join(header, [config]) + flipped[:-9] + \
        bytes([flipped[-9] ^ 1]) + flipped[-8:]
    stream["no-end"] = join(header, base())[:-len(section(*end))]
    # CONFIG and RAM
    stream["config-not-first"] = join(header, [ram_zero, config])
    stream["config-other-machine"] = join(header, [[SEC_CONFIG, b"config", 1, json.dumps(
        dict(json.loads(config[3]), **{"ram-size": 16 << 20}),
        separators=(",", ":")).encode()]])
    stream["config-not-json"] = join(header, [[SEC_CONFIG, b"config", 1, b"{ram"]])
    stream["ram-count-short"] = join(header, [config, [SEC_RAM, b"ram", RAM_V, b"\x01\x10\0\0"]])
    stream["ram-count-beyond-payload"] = join(header, [config, [SEC_RAM, b"ram", RAM_V,
                                                                struct.pack("<QQ", 2, 0x1001)]])
    stream["ram-count-huge"] = join(header, [config, [SEC_RAM, b"ram", RAM_V,
                                                      struct.pack("<Q", 1 << 62) + bytes(64)]])
    stream["ram-old-version"] = join(header, [config, [SEC_RAM, b"ram", 1,
                                                       ram_payload([(0x1000 | RAM_ZERO, b"")])]])
    # (kept from version 1, where an empty section's checksum was special)
    stream["regress-empty-ram-section"] = join(header, [config, [SEC_RAM, b"ram", RAM_V, b""],
                                                        end])
    stream["ram-bad-flags"] = join(header, [config, [SEC_RAM, b"ram", RAM_V,
                                                     struct.pack("<QQ", 1, 0x1003)]])
    stream["ram-page-short"] = join(header, [config, [SEC_RAM, b"ram", RAM_V, struct.pack(
        "<QQ", 1, 0x1000 | RAM_PAGE) + bytes(100)]])
    stream["ram-data-left-over"] = join(header, [config, [SEC_RAM, b"ram", RAM_V, struct.pack(
        "<QQ", 1, 0x1000 | RAM_ZERO) + bytes(4096)]])
    stream["ram-outside-guest"] = join(header, [config, [SEC_RAM, b"ram", RAM_V, struct.pack(
        "<QQ", 1, 0x800000 | RAM_ZERO)]])
    stream["ram-last-page-wraps"] = join(header, [config, [SEC_RAM, b"ram", RAM_V, struct.pack(
        "<QQ", 1, 0xfffffffffffff000 | RAM_ZERO)]])
    # GLOBAL
    stream["global-newer"] = join(header, base(glob_sec=global_with(glob[3], 2)))
    stream["global-unknown-state"] = join(header, base(glob_sec=global_with(
        b'{"runstate":"inmigrate"}')))
    stream["global-not-json"] = join(header, base(glob_sec=global_with(b"[")))
    # KVM and vCPU records
    stream["kvm-missing"] = join(header, [s for s in base() if s[0] != SEC_KVM])
    stream["kvm-record-truncated"] = join(header, base(kvm_sec=[SEC_KVM, b"kvm", 1,
                                                                kvm[3][:-1]]))
    stream["kvm-pit-missing"] = join(header, base(kvm_sec=kvm_recs(
        lambda r: [x for x in r if x[0] != TAG_PIT])))
    stream["kvm-irqchip-short"] = join(header, base(kvm_sec=kvm_recs(
        lambda r: [[t, p[:-4]] if t == TAG_PIC_MASTER else [t, p] for t, p in r])))
    stream["kvm-irqchip-wrong-chip"] = join(header, base(kvm_sec=kvm_recs(
        lambda r: [[t, struct.pack("<I", 2) + p[4:]] if t == TAG_PIC_MASTER else [t, p]
                   for t, p in r])))
    stream["cpu-missing"] = join(header, [s for s in base() if s[0] != SEC_CPU])
    stream["cpu-regs-missing"] = join(header, base(cpu_sec=cpu_recs(
        lambda r: [x for x in r if x[0] != TAG_REGS])))
    stream["cpu-fpu-missing"] = join(header, base(cpu_sec=cpu_recs(
        lambda r: [x for x in r if x[0] != TAG_FPU])))
    stream["cpu-msrs-count-wrong"] = join(header, base(cpu_sec=cpu_recs(
        lambda r: [[t, struct.pack("<I", 5) + p[4:]] if t == TAG_MSRS else [t, p]
                   for t, p in r])))
    stream["cpu-lapic-short"] = join(header, base(cpu_sec=cpu_recs(
        lambda r: [[t, p[:100]] if t == TAG_LAPIC else [t, p] for t, p in r])))
    # devices
    stream["section-twice"] = join(header, base(extra=[cpu_small]))
    stream["section-cpu-unexpected"] = join(header, base(extra=[[SEC_CPU, b"cpu1", 1,
                                                                 cpu_small[3]]]))
    stream["section-kvm-other-name"] = join(header, base(extra=[[SEC_KVM, b"kvm2", 1,
                                                                 kvm[3]]]))
    stream["device-unknown"] = join(header, base(extra=[[SEC_DEVICE, b"floppy", 1, b"\0"]]))
    stream["device-missing"] = join(header, base(devs=[d for d in devices
                                                       if d[1] != b"rtc"]))
    stream["device-newer"] = join(header, base(devs=dev_replaced(b"i8042", version=9)))
    stream["serial-bad-version"] = join(header, base(devs=dev_replaced(
        b"serial0", bytes([9]) + blob[b"serial0"][1:])))
    stream["serial-short"] = join(header, base(devs=dev_replaced(
        b"serial0", blob[b"serial0"][:-1])))
    stream["i8042-short"] = join(header, base(devs=dev_replaced(b"i8042", b"\0")))
    stream["rtc-long"] = join(header, base(devs=dev_replaced(b"rtc", blob[b"rtc"] + b"\0")))
    stream["pci-host-old-version"] = join(header, base(devs=dev_replaced(b"pci-host",
                                                                         version=0)))
    stream["pci-host-stray-bytes"] = join(header, base(devs=dev_replaced(
        b"pci-host", blob[b"pci-host"] + b"\0")))
    stream["pci-host-other-device"] = join(header, base(devs=dev_replaced(
        b"pci-host", blob[b"pci-host"][:5 + 4] + b"\x86\x81" + blob[b"pci-host"][11:])))
    v = blob[virtio]
    magic = v.index(b"1OIV")                    # VIRTIO_STATE_MAGIC, little-endian
    config_len = struct.unpack_from("<I", v, magic + 27)[0]
    queue0 = magic + 33 + config_len           # after the queue count

    def virtio_with(offset, data):
        return base(devs=dev_replaced(virtio, v[:offset] + data + v[offset + len(data):]))

    stream["virtio-truncated"] = join(header, base(devs=dev_replaced(virtio, v[:-3])))
    stream["virtio-bad-magic"] = join(header, virtio_with(magic, b"XXXX"))
    stream["virtio-pci-bad-magic"] = join(header, virtio_with(0, b"XXXX"))
    stream["virtio-features-not-offered"] = join(header, virtio_with(
        magic + 7, struct.pack("<Q", 1 << 63)))
    stream["virtio-config-len"] = join(header, virtio_with(magic + 27, struct.pack("<I", 7)))
    stream["virtio-queue-size-3"] = join(header, virtio_with(
        queue0, struct.pack("<HHB", 3, 0, 1)))
    stream["virtio-queue-outside-ram"] = join(header, virtio_with(
        queue0, struct.pack("<HHBBQ", 256, 0, 1, 0, 0x7fffff000)))
    for name, payload in sorted(stream.items()):
        mode = b"\x01" if name in mode1 else b"\x00"
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(mode + payload)


if __name__ == "__main__":
    main()
