"""The e1000e NICs behind an IOMMU that the nested rig's --iommu L1 has
(tests/rig/rig.sh --iommu), and moving them between host drivers: the
tests that pass one through (vfio-pci) or give it to the host (e1000e)
share these.  Rebinding is for the rig only: on a real host it could take
the host's own network away, so the tests that call bind() check DV_RIG
(or only use a NIC the user bound to vfio-pci already)."""
import glob
import os
import time

from linuxguest import sh

E1000E = ("0x8086", "0x10d3")


def read(path):
    with open(path) as f:
        return f.read().strip()


def driver_of(dev):
    """The name of the driver dev (a /sys/bus/pci/devices path) is bound
    to, or None."""
    link = os.path.join(dev, "driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def group_of(dev):
    return os.path.basename(os.readlink(os.path.join(dev, "iommu_group")))


def e1000e_nics():
    """Every 8086:10d3 with an IOMMU group, as sysfs paths, sorted."""
    return sorted(dev for dev in glob.glob("/sys/bus/pci/devices/*")
                  if (read(f"{dev}/vendor"), read(f"{dev}/device")) == E1000E
                  and os.path.exists(f"{dev}/iommu_group"))


def bind(dev, driver):
    """Bind dev to driver (rig only: on a real host this could take away
    the host's own network)."""
    bdf = os.path.basename(dev)
    if driver_of(dev) == driver:
        return
    if driver_of(dev):
        with open(f"{dev}/driver/unbind", "w") as f:
            f.write(bdf)
    with open(f"{dev}/driver_override", "w") as f:
        f.write(driver)
    with open("/sys/bus/pci/drivers_probe", "w") as f:
        f.write(bdf)
    assert driver_of(dev) == driver, f"{bdf}: binding to {driver} failed"


def unbind(dev):
    """dev on no driver, and no override left for the next probe."""
    if driver_of(dev):
        with open(f"{dev}/driver/unbind", "w") as f:
            f.write(os.path.basename(dev))
    with open(f"{dev}/driver_override", "w") as f:
        f.write("\n")


def netdev(dev, timeout=20):
    """The interface name L1's driver made for dev (waited for)."""
    deadline = time.time() + timeout
    while not glob.glob(os.path.join(dev, "net", "*")):
        assert time.time() < deadline, f"L1's e1000e made no interface for {dev}"
        time.sleep(0.1)
    return os.path.basename(glob.glob(os.path.join(dev, "net", "*"))[0])


def bridge_up(bridge, peer, taps, ip):
    """A bridge holding ip/24 with the interface peer and new taps in it
    (rig only: the peer loses its own addresses)."""
    sh("ip", "link", "del", bridge, check=False)
    sh("ip", "link", "add", bridge, "type", "bridge")
    sh("ip", "addr", "flush", "dev", peer)
    sh("ip", "link", "set", peer, "master", bridge)
    for tap in taps:
        sh("ip", "link", "del", tap, check=False)
        sh("ip", "tuntap", "add", "dev", tap, "mode", "tap")
        sh("ip", "link", "set", tap, "master", bridge)
        sh("ip", "link", "set", tap, "up")
    sh("ip", "link", "set", peer, "up")
    sh("ip", "addr", "add", f"{ip}/24", "dev", bridge)
    sh("ip", "link", "set", bridge, "up")


def bridge_down(bridge, taps):
    for tap in taps:
        sh("ip", "link", "del", tap, check=False)
    sh("ip", "link", "del", bridge, check=False)
