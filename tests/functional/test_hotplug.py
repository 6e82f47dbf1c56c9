"""device_del through ACPI PCI hot-plug, driven by testos's `hotplug`
scenario (it polls the registers at 0xAE00 as the DSDT's methods would and
ejects what the host asks to remove), under this VMM and under Debian's
QEMU side by side: the same replies, errors and QMP events in the same
order; and a guest that never ejects keeps the device and its VM."""
import os

import pytest

from testosguest import TestosGuest, guest_maker

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 60  # Debian's QEMU boots testos through SeaBIOS: seconds


class Guest(TestosGuest):
    """testos (a scenario) with one virtio-blk-pci, id blk0, in slot 5."""

    def devices(self):
        disk = os.path.join(self.dir.name, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(1 << 20)
        return ["-drive", f"file={disk},if=none,id=d0,format=raw",
                "-device", "virtio-blk-pci,drive=d0,id=blk0,addr=5"]

    def slot5(self, slot=5):
        """What query-pci says is in a slot: (qdev_id, vendor) or None (the
        device ID differs: this VMM's virtio-blk-pci is modern-only)."""
        for dev in self.qmp.cmd("query-pci")["return"][0]["devices"]:
            if dev["slot"] == slot:
                return dev["qdev_id"], f"{dev['id']['vendor']:x}"
        return None


@pytest.fixture
def guests():
    yield from guest_maker(Guest)


def test_device_del_ejects_like_debian_qemu(guests):
    """device_del: an unknown id refused, {} at once for blk0; the guest
    ejects slot 5 and both DEVICE_DELETED events follow (the virtio
    backend's, then the device's); the slot is empty and a later
    device_del (QMP or HMP) finds nothing."""
    result = {}
    for which in ("vmm", "qemu"):
        g = guests(which, "hotplug")
        waiting = g.serial.wait_for(r"testos: hotplug waiting .*\n", BOOT_TIMEOUT).group(0)
        before = g.slot5()
        replies = [g.qmp.cmd("device_del", {"id": "nope"}),
                   g.qmp.cmd("device_del", {"id": "blk0"})]
        events = g.events("DEVICE_DELETED", "DEVICE_DELETED")
        g.serial.wait_for(r"testos: ejected 5\n", 20)
        hmp = lambda line: g.qmp.cmd("human-monitor-command", {"command-line": line})
        after = [g.slot5(), g.qmp.cmd("device_del", {"id": "blk0"}),
                 hmp("device_del blk0"), hmp("device_del")]
        assert g.qmp.cmd("query-status")["return"]["status"] == "running"
        assert g.qmp.events == []
        result[which] = (waiting.strip(), before, replies, events, after)
    not_found = {"class": "DeviceNotFound", "desc": "Device 'blk0' not found"}
    assert result["vmm"] == (
        "testos: hotplug waiting rmv=fffffffc",
        ("blk0", "1af4"),
        [{"error": {"class": "DeviceNotFound", "desc": "Device 'nope' not found"}},
         {"return": {}}],
        [("DEVICE_DELETED", {"path": "/machine/peripheral/blk0/virtio-backend"}),
         ("DEVICE_DELETED", {"device": "blk0", "path": "/machine/peripheral/blk0"})],
        [None, {"error": not_found}, {"return": "Error: Device 'blk0' not found\r\n"},
         {"return": 'device_del: string expected\r\n'
                    'Try "help device_del" for more information\r\n'}])
    assert result["vmm"] == result["qemu"]


def test_a_guest_that_never_ejects_keeps_the_device(guests):
    """testos idle ignores the request: the device stays and the VM runs
    on; asking again is accepted (QEMU 7.2's pc gives no error for it)."""
    for which in ("vmm", "qemu"):
        g = guests(which, "idle")
        g.serial.wait_for("testos: idle", BOOT_TIMEOUT)
        assert g.qmp.cmd("device_del", {"id": "blk0"}) == {"return": {}}
        assert g.qmp.cmd("device_del", {"id": "blk0"}) == {"return": {}}, which
        assert g.slot5() == ("blk0", "1af4")
        assert g.qmp.cmd("query-status")["return"]["status"] == "running"
        assert not [e for e in g.qmp.events if e["event"] == "DEVICE_DELETED"]


def test_device_add_plugs_a_disk_the_guest_sees_like_debian_qemu(tmp_path, guests):
    """device_add of a virtio-blk-pci on a -drive if=none: {} and the guest
    hears of slot 6 (UP) with a virtio device there; query-pci lists it;
    QEMU's errors for a taken id, a taken slot, a drive in use; HMP's
    device_add too; then device_del takes it away again."""
    result = {}
    for which in ("vmm", "qemu"):
        disks = []
        for n in ("d1", "d2"):
            path = tmp_path / f"{which}-{n}.img"
            path.write_bytes(bytes(1 << 20))
            disks += ["-drive", f"file={path},if=none,id={n},format=raw"]
        g = guests(which, "hotplug", disks)
        g.serial.wait_for(r"testos: hotplug waiting .*\n", BOOT_TIMEOUT)
        add = lambda **a: g.qmp.cmd("device_add", a)
        hmp = lambda line: g.qmp.cmd("human-monitor-command", {"command-line": line})
        replies = [add(driver="virtio-blk-pci", drive="d1", id="blk1", addr="6")]
        plugged = g.serial.wait_for(r"testos: plugged 6 (\w+):", 20).group(1)
        replies += [add(driver="virtio-blk-pci", drive="d2", id="blk1", addr="7"),
                    add(driver="virtio-blk-pci", drive="d2", id="blk2", addr="6"),
                    add(driver="virtio-blk-pci", drive="d1", id="blk3", addr="8"),
                    add(driver="no-such-device", id="x"),
                    hmp("device_add virtio-blk-pci,drive=d2,id=blk2,addr=9")]
        g.serial.wait_for(r"testos: plugged 9 (\w+):", 20)
        slots = [g.slot5(6), g.slot5(7), g.slot5(8), g.slot5(9)]
        replies.append(g.qmp.cmd("device_del", {"id": "blk1"}))
        events = g.events("DEVICE_DELETED", "DEVICE_DELETED")
        g.serial.wait_for(r"testos: ejected 6\n", 20)
        assert g.qmp.cmd("query-status")["return"]["status"] == "running"
        result[which] = (replies, plugged, slots, events, g.slot5(6))
    ours = result["vmm"]
    assert ours[0][0] == {"return": {}} and ours[0][5] == {"return": ""}, ours
    assert ours[1] == "1af4"
    assert ours[2] == [("blk1", "1af4"), None, None, ("blk2", "1af4")]
    assert ours[3][1] == ("DEVICE_DELETED", {"device": "blk1", "path": "/machine/peripheral/blk1"})
    assert ours[4] is None
    assert ours == result["qemu"]


def test_virtio_net_pci_plugs_and_unplugs_like_debian_qemu(guests):
    """device_add of a virtio-net-pci on a -netdev tap: the guest sees it
    arrive; a second NIC on the same netdev is refused (it's in use);
    device_del ejects it with both DEVICE_DELETED events; the netdev is
    free again and a new NIC on it plugs."""
    result = {}
    for which in ("vmm", "qemu"):
        tap = f"dvhp{os.getpid() % 10000}{which[0]}"
        g = guests(which, "hotplug", ["-netdev", f"tap,id=n1,ifname={tap},script=no,downscript=no"])
        g.serial.wait_for(r"testos: hotplug waiting .*\n", BOOT_TIMEOUT)
        add = lambda id, addr: g.qmp.cmd("device_add", {"driver": "virtio-net-pci",
                                                        "netdev": "n1", "id": id, "addr": addr})
        replies = [add("nic1", "6")]
        g.serial.wait_for(r"testos: plugged 6 1af4:", 20)
        replies += [add("nic2", "7"), g.qmp.cmd("device_del", {"id": "nic1"})]
        events = g.events("DEVICE_DELETED", "DEVICE_DELETED")
        g.serial.wait_for(r"testos: ejected 6\n", 20)
        replies.append(add("nic3", "6"))
        g.serial.wait_for(r"(?s)plugged 6 .*plugged 6 1af4:", 20)
        slots = [g.slot5(6), g.slot5(7)]
        result[which] = (replies, events, slots)
    assert result["vmm"] == (
        [{"return": {}},
         {"error": {"class": "GenericError", "desc": "Property 'virtio-net-device.netdev' "
                                                     "can't take value 'n1', it's in use"}},
         {"return": {}}, {"return": {}}],
        [("DEVICE_DELETED", {"path": "/machine/peripheral/nic1/virtio-backend"}),
         ("DEVICE_DELETED", {"device": "nic1", "path": "/machine/peripheral/nic1"})],
        [("nic3", "1af4"), None])
    assert result["vmm"] == result["qemu"]
