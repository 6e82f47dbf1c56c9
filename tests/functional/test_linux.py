"""A stock Linux guest (Debian's kernel, tests/guest/linux/) under this VMM
and under Debian's QEMU (the peer), the same command line for both: the CPUs
and memory it sees, a virtio disk round trip, reboot, live migration while
it dirties memory, and the kernel's warnings that only this VMM causes.

Each boot takes half a minute nested (the rig), so one boot serves several
tests: for each (-smp, -m) below both VMMs boot the guest side by side once
(boots()); the tests read what those boots printed."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from harness import ROOT, free_port, wait_migration_status
from linuxguest import Guest, close_all, kmsg

sys.path.insert(0, os.path.join(ROOT, "tests", "guest"))
import dirtycheck  # noqa: E402


# hwkvm: conftest.py fails these where /dev/kvm cannot run a stock kernel
# (this host's PVM); `make check` runs them in the nested rig.
pytestmark = pytest.mark.hwkvm

WHICH = ["vmm", "peer"]
# (-smp, -m): one and several CPUs, memory below and above 1 GiB
CONFIGS = [(1, "256M"), (2, "2G"), (4, "256M")]
DISK_CONFIG = (2, "2G")  # this one also gets the two disks
DISK_MIB = 4             # written by the disk scenario from 1 MiB on
BOOT_TIMEOUT = 180       # to `linux: ready`, nested, two guests at once (seen: 59 s)


def mib(size):
    return int(size[:-1]) << (10 if size.endswith("G") else 0)


@pytest.fixture(scope="module")
def workdir():
    # /tmp: ext4 in the rig (O_DIRECT for cache=none), not the 9p checkout
    d = tempfile.mkdtemp(prefix="dv-linux-", dir="/tmp")
    yield d
    keep = os.environ.get("DV_LINUX_LOGS")  # a folder to copy the guests' logs to
    if keep:
        os.makedirs(keep, exist_ok=True)
        with open(os.path.join(keep, "boot-times.txt"), "w") as f:
            for (smp, mem), pair in _boots.items():
                for which, b in pair.items():
                    if isinstance(b, Exception):
                        continue
                    up = re.search(r"^linux: uptime ([\d.]+)", b.text, re.M)
                    f.write(f"{which} -smp {smp} -m {mem}: ready after {b.ready_s:.1f} s"
                            f" (kernel uptime {up and up.group(1)} s)\n")
        for root, _, files in os.walk(d):
            for f in files:
                if f.endswith(".log"):
                    shutil.copy(os.path.join(root, f),
                                os.path.join(keep, os.path.relpath(root, d).replace("/", "_")
                                             .replace(".", "") + f))
    shutil.rmtree(d, ignore_errors=True)


class Boot:
    """What one VMM's boot of the guest left: output, exit status, disks."""

    def __init__(self, which, text, rc, ready, ready_s, images):
        self.which, self.text, self.rc = which, text, rc
        self.cpus, self.mem = ready
        self.ready_s = ready_s
        self.images = images


_boots = {}


def boots(workdir, cfg, which=None):
    """{which: Boot} for cfg = (smp, mem), or the Boot of which: both VMMs
    boot the guest at the same time (dmesg scenario; the disk scenario
    first for DISK_CONFIG), which then reboots, under -no-reboot: the VMM
    exits.  Done once; a boot that failed fails every test that needs it."""
    if cfg not in _boots:
        _boots[cfg] = _boot_pair(workdir, cfg)
    for w in [which] if which else WHICH:
        if isinstance(_boots[cfg][w], Exception):
            raise AssertionError(f"{w}'s boot with {cfg} failed: {_boots[cfg][w]}")
    return _boots[cfg][which] if which else _boots[cfg]


def _boot_pair(workdir, cfg):
    smp, mem = cfg
    run = "dmesg"
    guests, images = {}, {}
    try:
        for which in WHICH:
            extra = []
            if cfg == DISK_CONFIG:
                run = "disk,dmesg"
                images[which] = {}
                for fmt in ("raw", "qcow2"):
                    img = os.path.join(workdir, f"{which}-{smp}-{mem}.{fmt}")
                    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, img, "16M"],
                                   check=True)
                    images[which][fmt] = img
                    extra += ["-drive", f"file={img},if=virtio,format={fmt},cache=none"]
            guests[which] = Guest(which, workdir, f"{which}-{smp}-{mem}", smp=smp,
                                  mem=mem, run=run, extra=extra)
        result = {}
        for which, g in guests.items():
            try:
                ready = g.ready(BOOT_TIMEOUT)
                g.wait_for(r"^linux: done$", timeout=300)
                rc = g.wait_exit(60)
                result[which] = Boot(which, g.text(), rc, ready, g.ready_s,
                                     images.get(which, {}))
            except AssertionError as e:
                result[which] = e
        return result
    finally:
        close_all(guests.values())


# ---- a) CPUs and memory ----

@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"smp{c[0]}-{c[1]}")
def test_guest_sees_the_cpus_and_memory_asked_for(workdir, cfg, which):
    """-smp N: N CPUs online.  -m M: the kernel finds M of RAM, less the
    legacy holes the PC keeps (below 1 MiB, the firmware's tables): its
    "Memory: A/TK available" record gives T, within 1 MiB of M.  MemTotal
    (`ready`'s mem=) is T less what the kernel keeps for itself: its image
    (this 6.1 kernel: about 40 MiB of code, data and bss; init sections are
    freed), the page array (64 bytes per 4 KiB page: M/64) and early
    allocations (page tables, per-CPU areas, logs: a few MiB).  So
    M - 64 MiB - M/32 <= MemTotal <= M - 32 MiB."""
    b = boots(workdir, cfg, which)
    smp, mem = cfg
    asked = mib(mem)
    assert b.cpus == smp, b.text
    found = re.search(r"^linux: kmsg \d Memory: \d+K/(\d+)K available", b.text, re.M)
    assert found, f"no Memory: record in {which}'s log"
    total_kib = int(found.group(1))
    assert (asked - 1) * 1024 <= total_kib <= asked * 1024, \
        f"{which}: the kernel found {total_kib} KiB of RAM for -m {mem}"
    assert asked - 64 - asked // 32 <= b.mem <= asked - 32, \
        f"{which}: MemTotal {b.mem} MiB for -m {mem}"


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"smp{c[0]}-{c[1]}")
def test_guest_init_reports_no_failure(workdir, cfg, which):
    """Every module loads, every scenario runs to its end: no `linux: fail`."""
    b = boots(workdir, cfg, which)
    fails = re.findall(r"^linux: fail .*$", b.text, re.M)
    assert not fails, "\n".join(fails)


# ---- b) virtio-blk ----

def region_sha256(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return hashlib.sha256(f.read(length)).hexdigest()


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_disk_write_reaches_the_image(workdir, fmt, which):
    """The guest writes random data to the disk (O_DIRECT, fsync), reads it
    back (O_DIRECT, caches dropped) and prints both checksums; after the
    VMM exits, the image holds the same bytes there and (qcow2) qemu-img
    check finds nothing wrong."""
    b = boots(workdir, DISK_CONFIG, which)
    dev = "vda" if fmt == "raw" else "vdb"  # -drive order: raw first
    m = re.search(rf"^linux: disk {dev} offset=(\d+) bytes=(\d+) wrote=(\w+) read=(\w+)$",
                  b.text, re.M)
    assert m, f"no disk line for {dev}:\n{b.text}"
    offset, length, wrote, read = int(m[1]), int(m[2]), m[3], m[4]
    assert length == DISK_MIB << 20
    assert read == wrote, f"{which} {fmt}: the guest read back other data"
    img = b.images[fmt]
    if fmt == "qcow2":
        check = subprocess.run(["qemu-img", "check", img], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        raw = img + ".raw"
        subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", img, raw],
                       check=True)
        img = raw
    assert region_sha256(img, offset, length) == wrote, \
        f"{which} {fmt}: the image does not hold what the guest wrote"


# ---- c) reboot ----

@pytest.mark.parametrize("which", WHICH)
def test_reboot_under_no_reboot_ends_the_vmm(workdir, which):
    """Every boot above ends with the guest's reboot -f under -no-reboot:
    the VMM exits with status 0 after `linux: done`, the guest never
    boots a second time."""
    b = boots(workdir, CONFIGS[0], which)
    assert b.rc == 0, b.text
    assert "linux: done" in b.text
    assert b.text.count("linux: ready ") == 1, b.text


@pytest.fixture(scope="module")
def reboots(workdir):
    """Both VMMs without -no-reboot, the reboot scenario: the guest resets
    itself right after `ready`, again and again.  {which: Guest text after
    the second `ready`}."""
    guests = {w: Guest(w, workdir, f"reboot-{w}", smp=1, mem="256M", run="reboot",
                       reboot=True) for w in WHICH}
    result = {}
    try:
        for w, g in guests.items():
            try:
                g.ready(BOOT_TIMEOUT, count=2)
                result[w] = (g.text(), g.vmm.proc.poll())
            except AssertionError as e:
                result[w] = (str(e), g.vmm.proc.poll())
    finally:
        close_all(guests.values())
    return result


@pytest.mark.parametrize("which", WHICH)
def test_reboot_boots_the_guest_again(reboots, which):
    text, rc = reboots[which]
    assert rc is None, f"{which} exited ({rc}) instead of resetting:\n{text}"
    assert text.count("linux: rebooting") >= 1, text
    assert len(re.findall(r"^linux: ready cpus=1 mem=\d+$", text, re.M)) >= 2, text


POWEROFF_WAIT = 30  # seconds after `linux: done` for the VMM to end


@pytest.fixture(scope="module")
def poweroffs(workdir):
    """Both VMMs (no -no-reboot) with the guest ending in poweroff -f:
    {which: (exit status or None if still running, log)}."""
    guests = {w: Guest(w, workdir, f"poweroff-{w}", smp=1, mem="256M",
                       extra_append="dv.end=poweroff", reboot=True) for w in WHICH}
    result = {}
    try:
        for w, g in guests.items():
            try:
                g.wait_for(r"^linux: done$", BOOT_TIMEOUT)
                try:
                    rc = g.vmm.wait(POWEROFF_WAIT)
                except subprocess.TimeoutExpired:
                    rc = None
                result[w] = (rc, g.text())
            except AssertionError as e:
                result[w] = (g.vmm.proc.poll(), str(e))
    finally:
        close_all(guests.values())
    return result


@pytest.mark.parametrize("which", WHICH)
def test_poweroff_ends_the_vmm(poweroffs, which):
    """The guest's poweroff -f: the VMM exits with status 0 (no -no-reboot
    needed): the kernel enters S5 through the FADT's PM1a_CNT."""
    rc, text = poweroffs[which]
    tail = "\n".join(text.splitlines()[-8:])
    assert rc == 0, (f"{which} still running {POWEROFF_WAIT} s after the guest's "
                     f"poweroff -f (exit status {rc}):\n{tail}")
    assert text.count("linux: ready ") == 1, text


# ---- d) live migration ----

def seqs(text):
    return [int(n) for n in re.findall(r"^linux: seq (\d+) sum ", text, re.M)]


@pytest.mark.parametrize("which", WHICH)
def test_migration_keeps_the_guest_running(workdir, which):
    """dv-dirty dirties 8 MiB/s of a 32 MiB working set and checks every
    word; migrated (tcp) to a second process of the same VMM, its seq lines
    go on without a gap or a repeat and every checksum is right."""
    d = os.path.join(workdir, f"mig-{which}")
    os.makedirs(d)
    params = "dv.wss_mib=32 dv.mibps=8 dv.period_ms=500"
    port = free_port()
    common = dict(smp=2, mem="256M", run="dirty", extra_append=params)
    src_sock, dst_sock = os.path.join(d, "src.qmp"), os.path.join(d, "dst.qmp")
    with Guest(which, d, "src", extra=["-qmp", f"unix:{src_sock},server,nowait"],
               **common) as src:
        src.wait_for(r"^linux: seq 6 sum ", timeout=BOOT_TIMEOUT)
        with Guest(which, d, "dst", extra=["-qmp", f"unix:{dst_sock},server,nowait",
                                           "-incoming", f"tcp:127.0.0.1:{port}"],
                   **common) as dst:
            q_src, q_dst = src.qmp(src_sock), dst.qmp(dst_sock)
            try:
                q_src.ok("migrate", uri=f"tcp:127.0.0.1:{port}")
                info = wait_migration_status(q_src, timeout=240, poll=0.2)
                assert info["status"] == "completed", info
                last_src = max(seqs(src.text()))
                dst.wait_for(rf"^linux: seq {last_src + 6} sum ", timeout=120)
                assert q_dst.ok("query-status")["status"] == "running"
            finally:
                q_src.close()
                q_dst.close()
            data = (src.text() + dst.text()).encode()
    result = dirtycheck.check(data.replace(b"linux: ", b"testos: "))
    assert result.startswith("ok"), result
    assert "CORRUPT" not in data.decode()


# ---- e) dmesg: what only this VMM makes the kernel say ----

# Differences allowed until this VMM gives -kernel guests ACPI tables:
# without an RSDP the kernel says so (an error), then runs without ACPI.
# Said by either VMM's guest, or not, depending on how busy the nested
# host is: not a difference between the VMMs.
# "Long readout interval, skipping watchdog check": the clocksource
# watchdog's timer ran more than a second late (the guest's vCPU was not
# run: the L1 under TCG was busy) and the kernel skipped its check; seen
# under this VMM in the rig (soak of 2026-12-07, round 1, load 4-7), it
# says how loaded the host was, not what the VMM offers.  A skew the
# watchdog does measure ("Marking clocksource 'tsc' as unstable") is not
# in this list: that one still fails.
TIMING_NOISE = [
    "hrtimer: interrupt took",
    "clocksource: Long readout interval, skipping watchdog check",
]


def normalise(line):
    """Numbers, addresses and hex words (a trace's code bytes) become #."""
    line = re.sub(r"0x[0-9a-fA-F]+", "#", line)
    line = re.sub(r"\b[0-9a-fA-F]*\d[0-9a-fA-F]*\b|\b[0-9a-fA-F]{2,}\b", "#", line)
    return re.sub(r"\s+", " ", line).strip()


def warnings(text):
    return {normalise(m) for level, m in kmsg(text) if level <= 4}


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"smp{c[0]}-{c[1]}")
def test_dmesg_has_no_warning_only_this_vmm_causes(workdir, cfg):
    """Kernel records at warn level or above that the guest logs under this
    VMM and not under Debian's QEMU with the same -cpu host/-smp/-m
    (numbers and addresses aside)."""
    b = boots(workdir, cfg)
    ours, peers = warnings(b["vmm"].text), warnings(b["peer"].text)
    allowed = [normalise(a) for a in TIMING_NOISE]
    only_ours = sorted(line for line in ours - peers
                       if not any(line.startswith(a) for a in allowed))
    assert not only_ours, "only under this VMM:\n" + "\n".join(only_ours)
