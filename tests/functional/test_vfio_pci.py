"""-device vfio-pci: a host e1000e passed through to testos (the nested
rig's --iommu NICs, tests/rig/rig.sh --iommu).  What a user sees: the
option errors are QEMU's; the guest finds 8086:10d3, takes its MSI-X
interrupts and moves a frame by DMA; query-pci shows the real device;
`migrate` is refused with QEMU's error while the VM runs on; device_del
and device_add through ACPI hot-plug; a hostile guest leaves the VMM up."""
import os
import shutil
import subprocess
import sys

import pytest

from harness import (BUILD, QEMU, ROOT, TESTOS, VMM, QmpClient, SerialClient, Vmm, free_port,
                     seed_args)
from rignic import bind, e1000e_nics

TIMEOUT = 90


@pytest.mark.parametrize("device", [
    "vfio-pci",
    "vfio-pci,host=zz",
    "vfio-pci,host=00:1f.7",
    "vfio-pci,host=00:1f.7,foo=1",
    "vfio-pci,sysfsdev=/nonexistent",
    "vfio-pci,host=00:1f.7,rombar=x",
])
def test_option_errors_match_debian_qemu(device):
    """No KVM needed: the first line of the error and the exit status are
    Debian QEMU's (QEMU adds a hint line after 'No provided host device').
    failover_pair_id= is not compared: QEMU 7.2 refuses it on pc after
    opening the device ("failover primary device must be on PCIExpress
    bus"), this VMM takes it (the seed's failover route on pc)."""
    assert QEMU, "Debian's qemu-system-x86_64, the reference here, is not installed"
    args = ["-display", "none", "-nodefaults", "-device", device]
    ours = subprocess.run([VMM, *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    theirs = subprocess.run([QEMU, "-machine", "accel=tcg", *args], capture_output=True,
                            text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert ours.returncode == theirs.returncode == 1, (ours.stderr, theirs.stderr)
    assert ours.stderr.splitlines() == theirs.stderr.splitlines()[:1]


@pytest.fixture(scope="module")
def bdf():
    """The first e1000e behind the IOMMU on vfio-pci: in the rig, bound here;
    elsewhere only one the user bound already (rebinding could take a
    host's own network away)."""
    found = e1000e_nics()
    if os.environ.get("DV_RIG") != "1":
        found = [dev for dev in found if os.path.basename(
            os.path.realpath(os.path.join(dev, "driver"))) == "vfio-pci"]
        assert found, "no e1000e bound to vfio-pci here (make check runs this in the rig)"
        return os.path.basename(found[0])
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    bind(found[0], "vfio-pci")
    return os.path.basename(found[0])


def run_testos(binary, scenario, device):
    args = [binary, "-enable-kvm", "-m", "128M", "-smp", "2", "-nodefaults", "-display",
            "none", "-serial", "stdio", "-no-reboot", "-kernel", TESTOS, "-append",
            f"testos.run={scenario}", "-device", device]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"testos {scenario} did not end within {TIMEOUT} s: {e.stdout!r}",
                    pytrace=False)
    lines = [line.strip() for line in proc.stdout.splitlines() if line.startswith("testos:")]
    return proc.returncode, lines, proc.stderr


@pytest.mark.iommu
def test_guest_gets_msix_and_dma_through_the_passed_nic(bdf):
    rc, lines, err = run_testos(VMM, "vfio-e1000e", f"vfio-pci,host={bdf},id=pnic")
    assert rc == 0, (rc, err, lines)
    assert "testos: vfio irq ok" in lines, lines
    assert "testos: vfio dma ok" in lines, lines
    assert lines[-1] == "testos: done", lines


@pytest.mark.iommu
@pytest.mark.parametrize("which", ["vmm", "qemu"])
def test_guest_gets_msi_through_the_passed_nic(bdf, which):
    """MSI, not MSI-X: the NIC's MSI capability aimed at the BSP, each cause
    raised through ICS arrives once, under this VMM and Debian's QEMU."""
    rc, lines, err = run_testos({"vmm": VMM, "qemu": QEMU}[which], "vfio-e1000e-msi",
                                f"vfio-pci,host={bdf},id=pnic")
    assert rc == 0, (rc, err, lines)
    assert not [line for line in lines if "FAILED" in line], lines
    assert "testos: vfio msi ok" in lines, lines
    assert lines[-1] == "testos: done", lines


@pytest.mark.iommu
def test_hostile_guest_leaves_the_vmm_up(bdf):
    rc, lines, err = run_testos(VMM, "vfio-hostile", f"vfio-pci,host={bdf}")
    assert rc == 0, (rc, err, lines)
    assert any(line.startswith("testos: vfio hostile done") for line in lines), lines
    assert lines[-1] == "testos: done", lines


class Guest:
    """testos `hotplug` with the NIC in slot 5, serial and QMP."""

    def __init__(self, binary, bdf, tmp_path, paused=False):
        sock = str(tmp_path / f"{os.path.basename(binary)}.sock")
        port = free_port()
        args = ["-enable-kvm", "-display", "none", "-nodefaults", "-m", "128M",
                "-serial", f"telnet:127.0.0.1:{port},server,nowait",
                "-qmp", f"unix:{sock},server=on,wait=off",
                "-device", f"vfio-pci,host={bdf},id=pnic,addr=5",
                "-kernel", TESTOS, "-append", "testos.run=hotplug"] + (["-S"] if paused else [])
        self.vm = Vmm(args, binary=binary)
        try:
            self.serial = SerialClient(port)
            self.qmp = QmpClient(sock)
        except BaseException:
            self.vm.__exit__(None, None, None)
            raise

    def slot(self, slot):
        for dev in self.qmp.cmd("query-pci")["return"][0]["devices"]:
            if dev["slot"] == slot:
                return dev
        return None

    def close(self):
        self.qmp.close()
        self.serial.close()
        self.vm.__exit__(None, None, None)


def shape(dev):
    """What both VMMs show of the device before firmware runs."""
    return (dev["id"]["vendor"], dev["id"]["device"], dev["class_info"]["class"],
            dev["irq_pin"], dev["qdev_id"],
            [(r["bar"], r["type"], r["size"]) for r in dev["regions"] if r["bar"] < 6])


@pytest.mark.iommu
def test_query_pci_and_migrate_refused_like_debian_qemu(bdf, tmp_path):
    """Paused (-S) under each VMM in turn: query-pci shows 8086:10d3 with its
    BARs, and `migrate` gives QEMU's GenericError; the VM is not harmed."""
    assert QEMU, "Debian's qemu-system-x86_64, the reference here, is not installed"
    seen = {}
    for binary in (VMM, QEMU):
        g = Guest(binary, bdf, tmp_path, paused=True)
        try:
            dev = g.slot(5)
            before = g.qmp.cmd("query-status")["return"]
            reply = g.qmp.cmd("migrate", {"uri": "exec:cat >/dev/null"})
            # the run state stays what it was
            assert g.qmp.cmd("query-status")["return"] == before, binary
            seen[binary] = (shape(dev), reply.get("error"), before["status"])
        finally:
            g.close()
    ours = seen[VMM]
    assert ours[0][:5] == (0x8086, 0x10d3, 0x0200, 1, "pnic"), ours
    assert ours[1] == {"class": "GenericError",
                       "desc": "VFIO device doesn't support migration"}, ours
    assert ours == seen[QEMU]


@pytest.mark.iommu
def test_unplug_and_replug_while_the_guest_runs(bdf, tmp_path):
    """device_del: the guest ejects slot 5 and DEVICE_DELETED follows; the
    same NIC added again lands in slot 6 and the guest sees 8086:10d3
    there; system_reset with the device keeps the VM going."""
    g = Guest(VMM, bdf, tmp_path)
    try:
        g.serial.wait_for(r"testos: hotplug waiting .*\n", TIMEOUT)
        assert g.qmp.cmd("device_del", {"id": "pnic"}) == {"return": {}}
        ev = g.qmp.wait_event("DEVICE_DELETED")
        assert ev["data"] == {"device": "pnic", "path": "/machine/peripheral/pnic"}
        g.serial.wait_for(r"testos: ejected 5\n", 20)
        assert g.slot(5) is None
        reply = g.qmp.cmd("device_add", {"driver": "vfio-pci", "host": bdf, "id": "pnic2",
                                         "addr": "6"})
        assert reply == {"return": {}}
        g.serial.wait_for(r"testos: plugged 6 8086:10d3\n", 20)
        assert g.slot(6)["qdev_id"] == "pnic2"
        assert g.qmp.cmd("system_reset") == {"return": {}}
        g.serial.wait_for(r"testos: hotplug waiting .*\n", TIMEOUT)
        assert g.qmp.cmd("query-status")["return"]["status"] == "running"
    finally:
        g.close()


@pytest.mark.iommu
def test_host_not_ready_is_one_line_and_status_1(bdf):
    """The other NIC still on L1's e1000e driver, and guest RAM over the
    locked-memory limit without CAP_IPC_LOCK: the VMM stops at start with
    the backend's one line and status 1, as QEMU does with its own."""
    other = os.path.basename(e1000e_nics()[1])
    subprocess.run(["modprobe", "e1000e"], check=True)
    bind(os.path.join("/sys/bus/pci/devices", other), "e1000e")
    base = [VMM, "-enable-kvm", "-m", "64M", "-nodefaults", "-display", "none",
            "-kernel", TESTOS, "-append", "testos.run=idle"]
    cases = [
        (base + ["-device", f"vfio-pci,host={other}"], f"-device vfio-pci,host={other}: vfio ",
         "e1000e"),
        (["bash", "-c", 'ulimit -l 1024; exec setpriv --inh-caps=-ipc_lock '
          '--bounding-set=-ipc_lock "$@"', "vmm"] + base + ["-device", f"vfio-pci,host={bdf}"],
         f"-device vfio-pci,host={bdf}: vfio ", "RLIMIT_MEMLOCK"),
    ]
    for argv, prefix, word in cases:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        lines = proc.stderr.splitlines()
        print(lines)
        assert proc.returncode == 1, (proc.returncode, lines)
        assert len(lines) == 1 and lines[0].startswith("qemu-system-x86_64: " + prefix), lines
        assert word in lines[0], lines


@pytest.mark.iommu
def test_seed_boot_line_firmware_and_cpumap(bdf, tmp_path):
    """The user's guide's boot line whole, -device vfio-pci and
    -osnet_cpumap included: SeaBIOS boots testos from its disk image
    (scenario vfio-e1000e), places the NIC's BARs, and the guest gets its
    MSI-X interrupts and loopback DMA there."""
    image = str(tmp_path / "testos.img")
    shutil.copy(os.path.join(BUILD, "tests", "guest", "testos.img"), image)
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "guest", "blkimage.py"),
                    "cmdline", image, "testos.run=vfio-e1000e"], check=True)
    cpumap = tmp_path / "map.txt"
    cpumap.write_text("0 1\n1 0\n")
    port = free_port()
    args = seed_args(port, 2, "256M") + [
        "-drive", f"file={image},if=virtio", "-device", f"vfio-pci,host={bdf},id=pnic",
        "-osnet_cpumap", f"path={cpumap}", "-no-reboot"]
    with Vmm(args) as vm:
        client = SerialClient(port)
        text = client.read_until_closed(timeout=TIMEOUT)
        client.close()
        rc = vm.wait(timeout=60)
    assert rc == 0, text
    assert "testos: vfio irq ok" in text, text
    assert "testos: vfio dma ok" in text, text
    assert "testos: done" in text, text
