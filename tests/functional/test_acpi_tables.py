"""The ACPI tables the VMM generates (hw/acpi/), as a guest's firmware or
kernel reads them: the unit test binary writes the full set (RSDP, RSDT,
FADT, FACS, MADT, DSDT) linked at 0xE0040 as a direct boot places them,
and Debian's iasl (acpica-tools) disassembles each one and compiles the
DSDT back.  Any iasl error or warning (a wrong checksum is a "Firmware
Warning") fails; the DSDT must hold what ACPI PCI hot-plug and a Linux
guest's acpiphp need.  No KVM needed."""
import os
import re
import shutil
import subprocess

import pytest

from harness import TOOLS

TEST_ACPI = os.path.join(TOOLS, "tests", "unit", "test-acpi")
TABLES = ("RSDT", "FACP", "FACS", "APIC", "DSDT")
PROBLEM = re.compile(r"\b(Error|Warning)\b")

pytestmark = pytest.mark.skipif(shutil.which("iasl") is None,
                                reason="iasl missing: apt-get install acpica-tools "
                                       "(scripts/install-deps.sh)")


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    """The folder the tables were written to, each disassembled (SIG.dsl)."""
    folder = tmp_path_factory.mktemp("acpi")
    env = dict(os.environ, ACPI_DUMP_DIR=str(folder))
    proc = subprocess.run([TEST_ACPI, "dump_tables"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = {}
    for sig in TABLES:
        proc = subprocess.run(["iasl", "-d", f"{sig}.dat"], cwd=folder,
                              capture_output=True, text=True, timeout=60)
        outputs[sig] = (proc.returncode, proc.stdout + proc.stderr)
    return folder, outputs


def read(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
        return f.read()


def blob(folder, sig):
    with open(os.path.join(folder, f"{sig}.dat"), "rb") as f:
        return f.read()


@pytest.mark.parametrize("sig", TABLES)
def test_iasl_disassembles_the_table_without_errors_or_warnings(dump, sig):
    folder, outputs = dump
    rc, out = outputs[sig]
    assert rc == 0, out
    problems = [line for line in out.splitlines() if PROBLEM.search(line)]
    assert not problems, "\n".join(problems)
    assert os.path.exists(os.path.join(folder, f"{sig}.dsl")), out


def test_every_table_and_the_rsdp_check_sum_to_zero(dump):
    folder, _ = dump
    for sig in TABLES:
        data = blob(folder, sig)
        assert data[:4] == sig.encode()
        assert int.from_bytes(data[4:8], "little") == len(data)
        if sig != "FACS":                   # the FACS has no checksum
            assert sum(data) % 256 == 0, f"{sig} checksum"
    rsdp = blob(folder, "RSDP")
    assert rsdp[:8] == b"RSD PTR " and len(rsdp) == 20
    assert sum(rsdp) % 256 == 0
    assert rsdp[15] == 0                    # ACPI 1.0 RSDP: RSDT only
    assert 0xE0040 <= int.from_bytes(rsdp[16:20], "little") < 0xF0000


def test_dsdt_compiles_back_with_no_errors_or_warnings(dump, tmp_path):
    folder, _ = dump
    shutil.copy(os.path.join(folder, "DSDT.dsl"), tmp_path)
    proc = subprocess.run(["iasl", "DSDT.dsl"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Compilation successful. 0 Errors, 0 Warnings" in out, out


def test_fadt_points_at_the_piix4_blocks_as_qemu_pc(dump):
    folder, _ = dump
    fadt = read(folder, "FACP.dsl")

    def field(name):
        m = re.search(rf"(?:\]|^) *{re.escape(name)} : ([0-9A-F]+)", fadt, re.M)
        assert m, f"no '{name}' in FACP.dsl"
        return int(m.group(1), 16)

    assert field("Revision") == 1
    assert field("SCI Interrupt") == 9
    assert field("SMI Command Port") == 0xB2
    assert field("ACPI Enable Value") == 0xF1
    assert field("PM1A Event Block Address") == 0x600
    assert field("PM1A Control Block Address") == 0x604
    assert field("PM Timer Block Address") == 0x608
    assert field("GPE0 Block Address") == 0xAFE0
    assert field("PM1 Event Block Length") == 4
    assert field("PM1 Control Block Length") == 2
    assert field("PM Timer Block Length") == 4
    assert field("GPE0 Block Length") == 4
    assert field("Control Method Power Button (V1)") == 0   # fixed-feature button
    assert field("FACS Address") % 64 == 0
    assert field("DSDT Address") != 0


def test_madt_lists_every_cpu_and_the_io_apic(dump):
    folder, _ = dump
    madt = read(folder, "APIC.dsl")
    assert len(re.findall(r"Subtable Type : 00 \[Processor Local APIC\]", madt)) == 4
    assert "Subtable Type : 01 [I/O APIC]" in madt
    assert re.search(r"Address : FEC00000", madt)


def test_dsdt_has_the_pci_root_slots_and_hotplug_handler(dump):
    folder, _ = dump
    dsdt = read(folder, "DSDT.dsl")
    assert re.search(r'Device \(PCI0\)\s*\{\s*Name \(_HID, EisaId \("PNP0A03"\)', dsdt)
    assert re.search(r"OperationRegion \(PHPC, SystemIO, 0xAE00, 0x14\)", dsdt)
    for field in ("PCIU", "PCID", "B0EJ", "PCRM", "BNUM"):
        assert re.search(rf"{field}, +32", dsdt), field
    # one slot device per hot-pluggable slot, 2..31 (0 is the host bridge,
    # 1 the PIIX3, described as ISA)
    assert "Device (S01)" not in dsdt
    for slot in range(2, 32):
        name = f"S{slot:02X}"
        m = re.search(rf"Device \({name}\)\s*\{{(.*?)\n            \}}", dsdt, re.S)
        assert m, f"no Device ({name})"
        body = m.group(1)
        assert f"Name (_ADR, 0x{slot:04X}0000)" in body, name
        assert re.search(r"Name \(_SUN, (0x[0-9A-F]+|One)\)", body), name
        assert "Method (_EJ0, 1" in body and "PCEJ (_SUN)" in body, name
        assert re.search(rf"If \(\(Arg0 & 0x0*{1 << slot:X}\)\)\s*\{{\s*Notify \({name}, Arg1\)",
                         dsdt), f"DVNT does not notify {name}"
    m = re.search(r"Method \(PCNT, 0.*?\{(.*?)\n            \}", dsdt, re.S)
    assert m, "no PCNT"
    assert "DVNT (PCIU, One)" in m.group(1)        # inserted: device check
    assert "DVNT (PCID, 0x03)" in m.group(1)       # removal: eject request
    assert re.search(r"Scope \(\\_GPE\)\s*\{\s*Method \(_E01, 0.*?\\_SB\.PCI0\.PCNT \(\)",
                     dsdt, re.S)
    assert re.search(r"B0EJ = \(One << Arg0\)", dsdt)


def test_dsdt_routes_every_slot_through_the_pirq_links(dump):
    folder, _ = dump
    dsdt = read(folder, "DSDT.dsl")
    assert "Name (_PRT, Package (0x80)" in dsdt
    entries = re.findall(r"Package \(0x04\)\s*\{\s*0x00([0-9A-F]{2})FFFF,\s*(Zero|One|0x02|0x03),"
                         r"\s*(LNK[A-DS]),", dsdt)
    assert len(entries) == 128
    pins = {"Zero": 0, "One": 1, "0x02": 2, "0x03": 3}
    for slot, pin, link in entries:
        slot, pin = int(slot, 16), pins[pin]
        want = "LNKS" if (slot, pin) == (1, 0) else "LNK" + "ABCD"[(slot + pin - 1) % 4]
        assert link == want, (slot, pin, link)
    for link in ("LNKA", "LNKB", "LNKC", "LNKD", "LNKS"):
        assert re.search(rf'Device \({link}\)\s*\{{\s*Name \(_HID, EisaId \("PNP0C0F"\)',
                         dsdt), link
    assert re.search(r"Name \(_S5, Package \(0x04\)", dsdt)
