"""What the benchmarks (bench/, `make bench`) rely on: testos's `cpuid`
scenario, testos booting under Debian QEMU's fastest -kernel paths (qboot,
microvm), the migration benchmark's guest-seen gap across a switch-over
that cuts a line in two, and the network table's verdict on runs that
scatter (the rig's iperf3)."""
import os
import select
import subprocess
import sys
import time

import pytest

from harness import QEMU, ROOT, TESTOS, VMM

sys.path.insert(0, os.path.join(ROOT, "bench"))
import migration  # noqa: E402
import net  # noqa: E402

QBOOT = "/usr/share/qemu/qboot.rom"
MICROVM_BIOS = "/usr/share/qemu/bios-microvm.bin"


def boot(binary, scenario, extra=(), smp=1, timeout=60, until=None):
    """testos's serial output; with `until`, the VMM is ended once that line
    is out (microvm has no i8042: testos cannot end the run by reset)."""
    args = [binary, "-enable-kvm", "-display", "none", "-nodefaults", "-serial", "stdio",
            "-no-reboot", "-m", "128M", "-smp", str(smp), "-kernel", TESTOS,
            "-append", f"testos.run={scenario}", *extra]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if until is None:
            out, err = proc.communicate(timeout=timeout)
            return out, err, proc.returncode
        deadline = time.monotonic() + timeout
        buf = ""
        while until not in buf and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], deadline - time.monotonic())[0]:
                chunk = os.read(proc.stdout.fileno(), 4096).decode(errors="replace")
                if not chunk:
                    break
                buf += chunk
        assert until in buf, f"no {until!r} within {timeout} s: {buf[-300:]!r}"
        return buf, "", None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def cpuid_lines(text):
    return {l.split()[2]: l.split()[3:] for l in text.splitlines()
            if l.startswith("testos: cpuid ")}


@pytest.mark.vm
def test_cpuid_scenario_lists_the_basic_hypervisor_and_extended_leaves():
    out, err, rc = boot(VMM, "cpuid", ["-cpu", "host"])
    leaves = cpuid_lines(out)
    assert rc == 0 and "testos: done" in out, err
    assert "0.0" in leaves and "80000000.0" in leaves, out[-500:]
    # KVM's signature "KVMKVMKVM" at 0x40000000, as this VMM sets it
    assert leaves["40000000.0"][1:3] == ["4b4d564b", "564b4d56"], leaves["40000000.0"]
    assert "7.1" in leaves and "7.f" in leaves      # subleaves of leaf 7


@pytest.mark.vm
@pytest.mark.skipif(QEMU is None or not os.path.exists(QBOOT),
                    reason="Debian's qemu-system-x86_64 or its qboot.rom not installed")
def test_testos_boots_under_debian_qemu_with_qboot():
    out, err, rc = boot(QEMU, "smp", ["-bios", QBOOT], smp=2)
    assert "testos: ready cpus=2 mem=128" in out, out + err
    assert "testos: done" in out and rc == 0, out + err


@pytest.mark.vm
@pytest.mark.skipif(QEMU is None or not os.path.exists(MICROVM_BIOS),
                    reason="Debian's qemu-system-x86_64 or its bios-microvm.bin not installed")
def test_testos_finds_every_cpu_in_microvm_xsdt_only_acpi():
    # microvm's RSDP has no RSDT (address 0), only an XSDT; with acpi=off
    # testos finds one CPU of two there, so the MADT is what lists them all
    out, _, _ = boot(QEMU, "smp", ["-M", "microvm"], smp=2, until="testos: done")
    assert "testos: ready cpus=2 mem=128" in out, out
    assert "testos: cpu 1 online" in out, out


class FakeStream:
    def __init__(self, chunks):
        self.chunks = chunks


def test_migration_gap_is_measured_across_a_line_cut_by_the_switch():
    src = FakeStream([(1.00, b"testos: seq 7 sum 1\n"), (1.01, b"testos: seq 8 sum 2\nt")])
    dst = FakeStream([(1.25, b"estos: seq 9 sum 3\n"), (1.26, b"testos: seq 10 sum 4\n")])
    lines = migration.seq_lines(src, dst)
    assert [s for _, s, _ in lines] == [7, 8, 9, 10]
    switch, during, continuous = migration.guest_gaps(lines, 0.0, 1.3)
    assert switch == 240.0 and during == 240.0 and continuous


def test_net_table_says_when_scattered_iperf_runs_cannot_tell_the_vmms_apart():
    # every split of 3 + 3 ranks: 2 of the 20 are as extreme as 1,2,3 / 4,5,6
    assert abs(net.rank_test([1, 2, 3], [4, 5, 6]) - 0.1) < 1e-9
    assert net.rank_test([5, 5], [5, 5]) == 1.0
    low, high = list(range(1, 13)), list(range(20, 32))     # 12 + 12: the approximation
    assert net.rank_test(low, high) < 0.001
    # the rig's 11 + 11 vhost=on runs of 2026-12-07 (Mbit/s, guest to host)
    ours = [103, 272, 41, 48, 77, 37, 17, 38, 16, 98, 40]
    qemu = [191, 218, 119, 16, 59, 73, 54, 55, 78, 25, 42]
    res = {"vhost": ["on"], "blast": {}, "iperf": {
        "directvisor vhost=on": {"host_to_guest_mbps": 30.0, "guest_to_host_mbps": 40.0,
                                 "runs": {"host_to_guest_mbps": low,
                                          "guest_to_host_mbps": ours},
                                 "boots_failed": 1},
        "qemu vhost=on": {"host_to_guest_mbps": 60.0, "guest_to_host_mbps": 58.0,
                          "runs": {"host_to_guest_mbps": high, "guest_to_host_mbps": qemu},
                          "boots_failed": 0}}}
    rows = {line.split(" | ")[1]: line for line in net.render(res).splitlines()
            if "iperf3" in line}
    h2g = rows["Linux iperf3 TCP host to guest (Mbit/s)"]
    g2h = rows["Linux iperf3 TCP guest to host (Mbit/s)"]
    assert "| no (p=0.00) |" in h2g and "12 runs: 1-12, 1 boot(s) failed" in h2g
    assert "cannot tell (rank test p=0.38)" in g2h and "11 runs: 16-218" in g2h
    # 1.3 times QEMU's median but within the scatter: not met, not missed
    assert net.iperf_verdict(1.5, 1.3, ours, qemu).startswith("cannot tell")
    assert net.iperf_verdict(1.5, 1.3, high, low).startswith("yes")
