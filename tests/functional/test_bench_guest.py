"""What the benchmarks (bench/, `make bench`) rely on: testos's `cpuid`
scenario, testos booting under Debian QEMU's fastest -kernel paths (qboot,
microvm), and the migration benchmark's guest-seen gap across a switch-over
that cuts a line in two."""
import os
import select
import subprocess
import sys
import time

import pytest

from harness import QEMU, ROOT, TESTOS, VMM

sys.path.insert(0, os.path.join(ROOT, "bench"))
import migration  # noqa: E402

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
