"""testos's vfio-e1000e and vfio-hostile scenarios against the e1000e that
Debian's QEMU emulates (TCG, so no KVM is needed): the same device model the
rig's L1 passes through with vfio-pci, here without VFIO.  What a user of the
guest sees: each MSI-X cause raised through ICS arrives on its vector, a
frame looped through the PHY comes back byte for byte, and hostile DMA
addresses and MSI-X garbage leave the guest running to its end."""
import subprocess

import pytest

from harness import QEMU, TESTOS

TIMEOUT = 60


def run_testos(scenario, devices, machine="pc"):
    """Debian QEMU (TCG) boots testos with scenario; returns its exit status
    and the serial lines that start with `testos: `."""
    assert QEMU, "Debian's qemu-system-x86_64 is not installed (package qemu-system-x86)"
    args = [QEMU, "-machine", f"{machine},accel=tcg", "-m", "128M", "-nodefaults",
            "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", TESTOS,
            "-append", f"testos.run={scenario}"] + devices
    try:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        pytest.fail(f"testos {scenario} did not finish within {TIMEOUT} s; serial so far:\n"
                    f"{out}", pytrace=False)
    lines = [line.strip() for line in proc.stdout.splitlines() if line.startswith("testos: ")]
    return proc.returncode, lines, proc.stderr


@pytest.mark.parametrize("machine", ["pc", "q35"])
def test_irq_and_dma_through_loopback(machine):
    rc, lines, err = run_testos("vfio-e1000e", ["-device", "e1000e"], machine)
    assert rc == 0, (rc, err, lines)
    assert not [line for line in lines if "FAILED" in line], lines
    assert "testos: vfio irq ok" in lines, lines
    # a fresh device sends each cause's message once (a NIC a Linux driver
    # used before may repeat one: tests/guest/e1000e.c, irq_test)
    assert not [line for line in lines if line.startswith("testos: vfio irq repeated")], lines
    assert "testos: vfio dma ok" in lines, lines
    assert lines[-1] == "testos: done", lines
    device = [line for line in lines if line.startswith("testos: vfio device ")]
    assert len(device) == 1 and " 8086:10d3 " in device[0] and " msix=5 " in device[0], lines


def test_msi_causes_arrive():
    """MSI instead of MSI-X: each cause raised through ICS arrives once on the
    one message the guest programmed."""
    rc, lines, err = run_testos("vfio-e1000e-msi", ["-device", "e1000e"])
    assert rc == 0, (rc, err, lines)
    assert not [line for line in lines if "FAILED" in line], lines
    assert "testos: vfio msi ok" in lines, lines
    assert lines[-1] == "testos: done", lines


def test_hostile_dma_and_msix_garbage_survived():
    rc, lines, err = run_testos("vfio-hostile", ["-device", "e1000e"])
    assert rc == 0, (rc, err, lines)
    assert not [line for line in lines if "FAILED" in line], lines
    cases = [line.split()[3] for line in lines if line.startswith("testos: vfio hostile ")]
    assert cases == ["tx-far", "tx-past-ram", "tx-straddle", "rx-far", "tx-ring-far",
                     "msix-garbage", "done"], lines
    assert lines[-1] == "testos: done", lines


def test_no_device_is_said():
    rc, lines, err = run_testos("vfio-e1000e", [])
    assert rc == 0, (rc, err, lines)
    assert lines[-2:] == ["testos: vfio no device", "testos: done"], lines
