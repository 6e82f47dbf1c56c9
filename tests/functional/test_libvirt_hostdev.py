"""A passthrough NIC under Debian's libvirt 9.0 (issue 17: `<hostdev>`).

The guide's Directvisor domain (test_libvirt_domain.py builds it from
docs/user-guide.md) plus the guide's `<hostdev>` block, aimed at the rig's
first e1000e behind the IOMMU, bound to vfio-pci beforehand
(managed='no').  testos's vfio-e1000e scenario then checks, inside the
guest, that the NIC's MSI-X vectors arrive and that its DMA reaches guest
RAM through the IOMMU.  Besides what the guest says, what a user of virsh
sees: libvirt's -device for it, the group's node in the VMM's /dev, the
locked-memory limit libvirt set, the NIC in query-pci, the sandbox."""
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from harness import TESTOS, VMM
from rignic import bind, e1000e_nics, group_of
from test_libvirt_domain import GUIDE, Pty, domain_xml, guide_map_text
from test_libvirt_domain import lv, netns  # noqa: F401 (fixtures)


def guide_hostdev_xml(bdf):
    """The guide's <hostdev> block, its address set to bdf (DDDD:BB:SS.F)."""
    with open(GUIDE) as f:
        m = re.search(r"```\n(<hostdev .*?</hostdev>)\n```", f.read(), re.S)
    assert m, "docs/user-guide.md should show a <hostdev> block"
    hostdev = ET.fromstring(m.group(1))
    dom, bus, rest = bdf.split(":")
    slot, fn = rest.split(".")
    addr = hostdev.find("source/address")
    addr.attrib.update(domain=f"0x{dom}", bus=f"0x{bus}", slot=f"0x{slot}",
                       function=f"0x{fn}")
    return hostdev


@pytest.fixture
def vfio_nic():
    """The first e1000e behind the IOMMU, on vfio-pci (rebound in the rig
    only: on a real host it could be the host's own network)."""
    nics = e1000e_nics()
    assert nics, "no e1000e behind an IOMMU here (make check runs this in the rig's --iommu L1)"
    if os.environ.get("DV_RIG") == "1":
        subprocess.run(["modprobe", "vfio-pci"], check=True)
        bind(nics[0], "vfio-pci")
    elif os.path.basename(os.path.realpath(os.path.join(nics[0], "driver"))) != "vfio-pci":
        pytest.fail("bind the first e1000e to vfio-pci first (make check does it in the rig)")
    return nics[0]


@pytest.mark.iommu
def test_hostdev_nic_reaches_the_guest(lv, vfio_nic):
    virsh, d = lv
    bdf = os.path.basename(vfio_nic)
    map_path = os.path.join(d, "map.txt")
    with open(map_path, "w") as f:
        f.write(guide_map_text())
    disk = os.path.join(d, "empty.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "16M"], check=True,
                   timeout=30)
    dom = ET.fromstring(domain_xml("dvnic", TESTOS, "testos.run=vfio-e1000e", disk, map_path,
                                   memory_mib=256, on_reboot="destroy"))
    dom.find("devices").append(guide_hostdev_xml(bdf))
    path = os.path.join(d, "dvnic.xml")
    with open(path, "w") as f:
        f.write(ET.tostring(dom, encoding="unicode"))
    virsh("define", path)

    pty = None
    virsh("start", "dvnic", "--paused")
    try:
        pid = virsh.pid("dvnic")
        with open(f"/proc/{pid}/cmdline") as f:
            argv = f.read().split("\0")
        assert argv[0] == VMM
        devices = [a for a in argv if "vfio-pci" in a]
        assert len(devices) == 1, argv
        # libvirt 9.0 spells this one -device with commas, not JSON
        opts = dict(kv.split("=", 1) for kv in devices[0].split(",")[1:])
        assert devices[0].startswith("vfio-pci,") and opts["host"] == bdf \
            and opts["id"] == "hostdev0", devices
        # libvirt's private /dev has the group's node; the limit covers guest RAM
        group = group_of(vfio_nic)
        assert os.path.exists(f"/proc/{pid}/root/dev/vfio/{group}")
        with open(f"/proc/{pid}/limits") as f:
            locked = re.search(r"^Max locked memory\s+(\d+)", f.read(), re.M)
        # libvirt 9.0 on x86: guest RAM + 1 GiB, as the user guide says
        assert locked and int(locked.group(1)) == (256 << 20) + (1 << 30), locked
        with open(f"/proc/{pid}/status") as f:
            assert re.search(r"^Seccomp:\s+2$", f.read(), re.M)
        # the NIC is on the guest's bus before it runs
        reply = virsh("qemu-monitor-command", "dvnic", '{"execute":"query-pci"}')
        found = [(dev["id"]["vendor"], dev["id"]["device"], dev.get("qdev_id"))
                 for bus in json.loads(reply.splitlines()[-1])["return"]
                 for dev in bus["devices"]]
        assert (0x8086, 0x10d3, "hostdev0") in found, found

        live = ET.fromstring(virsh("dumpxml", "dvnic"))
        pty = Pty(live.find("devices/serial/source").get("path"))
        virsh("resume", "dvnic")
        pty.wait_for(r"testos: vfio irq ok")
        pty.wait_for(r"testos: vfio dma ok")
        pty.wait_for(r"testos: done")
        text = pty.buf.decode(errors="replace")
        assert "FAILED" not in text, text[-2000:]
        # testos resets at the end; <on_reboot>destroy</on_reboot> ends the domain
        virsh.wait_state("dvnic", "shut off")
    finally:
        if pty:
            pty.close()
