"""Expansion ROM BARs (romfile=, rombar=) on emulated PCI devices, beside
Debian's QEMU: on a -kernel boot the guest finds each ROM BAR where the
firmware (SeaBIOS there, this VMM itself here) placed it, aligned to its
size and left disabled, and reads the option ROM once it enables the BAR;
query-pci and `info pci` show it as QEMU's bar 6; a bad romfile= is QEMU's
one-line error."""
import os
import re
import subprocess
import tempfile

import pytest

from harness import QEMU, TESTOS, VMM, QmpClient, Vmm, wait_for_path
from test_vfio_pci import bdf  # noqa: F401 (a fixture)

WHICH = {"vmm": VMM, "qemu": QEMU}
ROM = "efi-virtio.rom"               # Debian's ipxe-qemu: QEMU's default for virtio-net-pci
ROM_PATH = os.path.join("/usr/lib/ipxe/qemu", ROM)
ROM_BAR = 256 << 10                  # its 249344 bytes, to the next power of two
DEVICES = ["-device", f"virtio-net-pci,addr=4,romfile={ROM}",
           "-device", "virtio-net-pci,addr=5,romfile=",                 # no ROM
           "-device", f"virtio-net-pci,addr=6,romfile={ROM},rombar=0"]  # no ROM BAR


def binary(which):
    if not WHICH[which]:
        pytest.fail("Debian's qemu-system-x86_64, the reference here, is not installed")
    if not os.path.exists(ROM_PATH):
        pytest.fail(f"{ROM_PATH} (Debian's ipxe-qemu) is missing")
    return WHICH[which]


def guest_roms(which, devices):
    """testos pci-rom under which: {slot: (addr, size, enabled, first two
    bytes)} for each function with a ROM BAR, and the serial text."""
    cmd = [binary(which), "-enable-kvm", "-m", "128M", "-display", "none", "-nodefaults",
           "-serial", "stdio", "-no-reboot", "-kernel", TESTOS,
           "-append", "testos.run=pci-rom", *devices]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert "testos: done" in proc.stdout, proc.stdout + proc.stderr
    return {int(m.group(1), 16): (int(m.group(2), 16), int(m.group(3), 16), m.group(4),
                                  m.group(5)) for m in re.finditer(
        r"^testos: pci-rom 0:(\w+)\.0 addr=(\w+) size=(\w+) enabled=(\d) sig=(\w+)$",
        proc.stdout, re.M)}, proc.stdout


def check_placed(rom, size, text):
    """A ROM BAR as SeaBIOS leaves it: placed, aligned, disabled, a ROM there."""
    addr, got_size, enabled, sig = rom
    assert got_size == size, text
    assert addr != 0 and addr % size == 0, f"ROM BAR at {addr:#x}:\n{text}"
    assert enabled == "0", text
    assert sig == "aa55", f"the guest read {sig} at the ROM's start:\n{text}"


@pytest.mark.vm
@pytest.mark.parametrize("which", WHICH)
def test_guest_finds_the_rom_bar_placed_disabled_and_reads_the_rom(which):
    roms, text = guest_roms(which, DEVICES)
    # only slot 4 has one: romfile= (empty) and rombar=0 show none
    assert set(roms) == {4}, text
    check_placed(roms[4], ROM_BAR, text)


@pytest.mark.iommu
@pytest.mark.parametrize("which", WHICH)
def test_passed_through_nic_rom_bar_placed_as_seabios_does(bdf, which):  # noqa: F811
    """vfio-pci: the host NIC's own ROM (QEMU 7.2's e1000e in the rig has
    efi-e1000e.rom, 256 KiB), placed and disabled, read through VFIO when
    the guest enables it; rombar=0 hides it."""
    host_rom = os.path.getsize(f"/sys/bus/pci/devices/{bdf}/rom")
    roms, text = guest_roms(which, ["-device", f"vfio-pci,host={bdf},addr=4"])
    assert set(roms) == {4}, text
    check_placed(roms[4], host_rom, text)
    roms, text = guest_roms(which, ["-device", f"vfio-pci,host={bdf},addr=4,rombar=0"])
    assert roms == {}, text


def rom_regions(which):
    """(query-pci's regions of slot 4, `info pci`) before the guest runs."""
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "qmp.sock")
        with Vmm(["-enable-kvm", "-m", "128M", "-display", "none", "-nodefaults", "-S",
                  "-qmp", f"unix:{sock},server=on,wait=off", "-kernel", TESTOS, *DEVICES],
                 binary=binary(which)) as vm:
            wait_for_path(sock)
            with QmpClient(sock) as q:
                devices = q.cmd("query-pci")["return"][0]["devices"]
                hmp = q.cmd("human-monitor-command", {"command-line": "info pci"})
            assert vm.proc.poll() is None, vm.proc.stderr.read().decode()
    slot4 = [d for d in devices if d["slot"] == 4]
    assert slot4, devices
    return slot4[0]["regions"], [d["regions"] for d in devices if d["slot"] in (5, 6)], \
        hmp["return"]


@pytest.mark.vm
def test_query_pci_and_info_pci_show_bar_6_as_qemu():
    ours, ours_none, ours_hmp = rom_regions("vmm")
    theirs, theirs_none, theirs_hmp = rom_regions("qemu")
    rom = {"bar": 6, "type": "memory", "prefetch": False, "mem_type_64": False,
           "size": ROM_BAR, "address": -1}   # disabled: no address, as QEMU says
    assert rom in ours, ours
    assert rom in theirs, theirs
    for regions in ours_none + theirs_none:
        assert not [r for r in regions if r["bar"] == 6], regions
    line = "      BAR6: 32 bit memory at 0xffffffffffffffff [0x0003fffe]."
    assert line in ours_hmp.splitlines(), ours_hmp
    assert line in theirs_hmp.splitlines(), theirs_hmp


@pytest.mark.parametrize("which", WHICH)
def test_bad_romfile_is_qemus_error(which):
    with tempfile.TemporaryDirectory() as d:
        empty = os.path.join(d, "empty.rom")
        open(empty, "wb").close()
        for rom, why in (("/nonexistent/x.rom", 'failed to find romfile "/nonexistent/x.rom"'),
                         (empty, f'romfile "{empty}" is empty')):
            arg = f"virtio-net-pci,romfile={rom}"
            proc = subprocess.run([binary(which), "-display", "none", "-nodefaults", "-S",
                                   "-device", arg],
                                  capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
            assert proc.returncode == 1, proc.stderr
            assert f"qemu-system-x86_64: -device {arg}: {why}\n" in proc.stderr
