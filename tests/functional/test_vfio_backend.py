"""The VFIO backend (hw/vfio/container.c) on a real host device, through
build/tests/unit/vfio-probe: what the vfio-pci device model will get from
it (regions, IRQs, config space, BAR0, MSI-X eventfds, reset) and the one-
line errors a user reads when the host is not ready (no IOMMU, the device
not bound to vfio-pci, memlock too low).  The e1000e tests need the nested
rig's --iommu NICs (tests/rig/rig.sh --iommu); the no-IOMMU error runs on
any host without an IOMMU, this one included."""
import glob
import os
import subprocess

import pytest

from harness import TOOLS
from rignic import bind, driver_of, e1000e_nics, group_of, unbind

PROBE = os.path.join(TOOLS, "tests", "unit", "vfio-probe")


def probe(*args, shell_prefix=None, timeout=60):
    assert os.path.exists(PROBE), f"{PROBE} is not built (make unit)"
    argv = [PROBE, *args]
    if shell_prefix:
        argv = ["bash", "-c", shell_prefix + ' "$@"', "probe", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def nics():
    """The rig's two e1000e NICs: the first bound to vfio-pci, the second to
    e1000e (as a host NIC the user forgot to rebind).  Afterwards every
    e1000e is back on the driver it had (the rig starts them unbound, with
    e1000e not loaded), so later tests find L1 as it was."""
    found = e1000e_nics()
    if os.environ.get("DV_RIG") != "1":
        found = [dev for dev in found if driver_of(dev) == "vfio-pci"]
        if not found:
            pytest.skip("no e1000e bound to vfio-pci with an IOMMU group here "
                        "(tests/rig/rig.sh --iommu has two)")
        yield found[0], None
        return
    if len(found) < 2:
        pytest.skip("the rig was started without --iommu: no e1000e NICs behind an IOMMU")
    before = {dev: driver_of(dev) for dev in found}
    e1000e_loaded = os.path.isdir("/sys/module/e1000e")
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    subprocess.run(["modprobe", "e1000e"], check=True)
    try:
        bind(found[0], "vfio-pci")
        bind(found[1], "e1000e")
        yield found[0], found[1]
    finally:
        for dev, driver in before.items():
            unbind(dev)
            if driver:
                bind(dev, driver)
        if not e1000e_loaded:
            subprocess.run(["modprobe", "-r", "e1000e"], check=False)


def host_without_iommu_group():
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        if not os.path.exists(f"{dev}/iommu_group"):
            return os.path.basename(dev)
    return None


def test_no_iommu_is_one_clear_error():
    bdf = host_without_iommu_group()
    if not bdf:
        pytest.skip("every PCI device of this host has an IOMMU group")
    rc, out, err = probe("--error", bdf)
    assert rc == 0, out + err
    assert out.strip() == (f"error: vfio {bdf}: no iommu_group found: No such file or "
                           "directory (the host has no IOMMU: boot it with intel_iommu=on "
                           "or amd_iommu=on, or load vfio with enable_unsafe_noiommu_mode=1)"), out


def test_bad_host_addresses_are_one_clear_error():
    rc, out, err = probe("--error", "01:20.0")
    assert out.strip() == "error: Property 'vfio-pci.host' doesn't take value '01:20.0'", out
    rc, out, err = probe("--error", "7f:1f.7")
    assert out.strip() == ("error: vfio /sys/bus/pci/devices/0000:7f:1f.7: no such host "
                           "device: No such file or directory"), out


@pytest.mark.iommu
def test_e1000e_through_vfio(nics):
    vfio_nic, _ = nics
    bdf = os.path.basename(vfio_nic)
    rc, out, err = probe(bdf)
    print(out)
    assert rc == 0, out + err
    lines = out.splitlines()
    assert lines[-1] == "probe ok", out
    assert f"device {bdf} flags 0x3 regions 9 irqs 5" in lines, out  # RESET | PCI
    assert "config vendor 8086 device 10d3" in lines, out
    bar0 = [line for line in lines if line.startswith("region 0 ")]
    assert bar0 and bar0[0].startswith("region 0 size 0x20000 "), out
    assert " areas 0x0+" in bar0[0], out  # mmap-able from its start
    config = [line for line in lines if line.startswith("region 7 ")]
    assert config and config[0].endswith(" areas"), out  # config: never mmapped
    assert "irq 2 count 5 flags 0x9" in lines, out  # MSI-X: EVENTFD | NORESIZE
    assert "msix eventfds on and off ok" in lines, out
    assert "ram map and unmap of 2 MiB at 4 GiB ok" in lines, out
    assert f"second open: vfio {bdf}: device is already attached" in lines, out
    assert "reset ok" in lines and "reopen ok" in lines, out
    status = [line for line in lines if line.startswith("bar0 status ")]
    mmap_value, pread_value = status[0].split()[3], status[0].split()[5]
    assert mmap_value == pread_value, out  # BAR0 reads the same both ways


@pytest.mark.iommu
def test_device_not_bound_to_vfio_pci(nics):
    vfio_nic, host_nic = nics
    if host_nic is None:
        pytest.skip("only in the rig, where the test may rebind a NIC")
    bdf = os.path.basename(host_nic)
    rc, out, err = probe("--error", bdf)
    print(out)
    assert rc == 0, out + err
    if group_of(host_nic) == group_of(vfio_nic):
        # one group: the vfio-pci NIC's group is what is not viable
        rc, out, err = probe("--error", os.path.basename(vfio_nic))
        assert f"is not viable: {bdf} (bound to e1000e)" in out, out
    else:
        assert out.strip() == (f"error: vfio {bdf}: /dev/vfio/{group_of(host_nic)}: No such "
                               "file or directory (the device is bound to e1000e, not to "
                               "vfio-pci)"), out


@pytest.mark.iommu
def test_memlock_too_low(nics):
    """Without CAP_IPC_LOCK (which root has) the pinned guest RAM counts
    against RLIMIT_MEMLOCK: 64 MiB of RAM with a 1 MiB limit."""
    vfio_nic, _ = nics
    bdf = os.path.basename(vfio_nic)
    rc, out, err = probe("--ram", "64", "--error", bdf,
                         shell_prefix="ulimit -l 1024; exec setpriv --inh-caps=-ipc_lock "
                                      "--bounding-set=-ipc_lock")
    print(out)
    assert rc == 0, out + err
    assert out.strip() == (f"error: vfio {bdf}: VFIO_IOMMU_MAP_DMA of guest RAM at 0x0: "
                           "Cannot allocate memory: the locked-memory limit (RLIMIT_MEMLOCK, "
                           "ulimit -l) is 1024 KiB and a passthrough device pins all guest "
                           "RAM, 65536 KiB: raise it to at least that"), out


def shared_groups():
    """e1000e NICs that share their IOMMU group with another device, by group."""
    groups = {}
    for dev in e1000e_nics():
        members = os.listdir(f"/sys/kernel/iommu_groups/{group_of(dev)}/devices")
        if len(members) > 1:
            groups.setdefault(group_of(dev), []).append(dev)
    return groups


@pytest.mark.iommu
def test_group_not_viable_names_the_device_in_the_way(nics):
    """Two NICs behind one conventional PCI bridge share its IOMMU group;
    with one on vfio-pci and the other on e1000e the group is not viable.
    The rig's standard --iommu NICs have a group each (so do two functions
    of one slot), so make check's --iommu L1 (scripts/check.py IOMMU_RIG)
    adds
      --qemu-arg -device --qemu-arg pci-bridge,id=br9,chassis_nr=9,addr=0x7
      --qemu-arg -device --qemu-arg e1000e,bus=br9,addr=1
      --qemu-arg -device --qemu-arg e1000e,bus=br9,addr=2"""
    groups = shared_groups()
    assert os.environ.get("DV_RIG") == "1", "only in the rig, where the test may rebind NICs"
    assert groups, "no e1000e shares its IOMMU group here (see the docstring)"
    first, *others = next(iter(groups.values()))
    assert others, "the group's other devices are not e1000e NICs this test may rebind"
    bind(first, "vfio-pci")
    bind(others[0], "e1000e")
    bdf, other = os.path.basename(first), os.path.basename(others[0])
    rc, out, err = probe("--error", bdf)
    print(out)
    assert rc == 0, out + err
    assert out.strip() == (f"error: vfio {bdf}: group {group_of(first)} is not viable: "
                           f"{other} (bound to e1000e); bind every device of the group to "
                           "vfio-pci"), out
    # every device of the group on vfio-pci: the group is viable
    bind(others[0], "vfio-pci")
    rc, out, err = probe(bdf)
    assert rc == 0 and out.splitlines()[-1] == "probe ok", out + err
