"""The guest's clock across a stop: `stop`, a few seconds, `cont`.  KVM's
TSC runs on while a VM is stopped; QEMU sets the guest's kvmclock back to
where the VM stopped, so the stop is not guest time (no timer storm, no
clock jump the guest must explain), and with KVM_KVMCLOCK_CTRL has KVM set
PVCLOCK_GUEST_STOPPED in each vCPU's clock page, which the guest's
soft-lockup watchdog reads instead of reporting a lockup.  testos's
`kvmclock` scenario reads its kvmclock against the TSC and prints both
clocks' advance across the stop, under this VMM and Debian's QEMU."""
import re
import time

import pytest

from testosguest import TestosGuest, guest_maker

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 60  # Debian's QEMU boots testos through SeaBIOS: seconds
STOP_S = 3         # how long the VM stays stopped
GAP = re.compile(r"testos: kvmclock gap tsc_ms=(\d+) clock_ms=(\d+) stopped=(\d)")


@pytest.fixture
def guests():
    yield from guest_maker(TestosGuest)


def stop_and_cont(g, command):
    """Stop the VM for STOP_S seconds, QMP or HMP; the guest's gap line."""
    g.serial.wait_for(r"testos: kvmclock up ns=\d+ flags=\d+", BOOT_TIMEOUT)
    for name in ("stop", "cont"):
        if command == "hmp":
            reply = g.qmp.cmd("human-monitor-command", {"command-line": name})
            assert reply == {"return": ""}
        else:
            assert g.qmp.cmd(name) == {"return": {}}
        g.qmp.wait_event("STOP" if name == "stop" else "RESUME")
        if name == "stop":
            time.sleep(STOP_S)
    return g.serial.wait_for(GAP, 60)


@pytest.mark.parametrize("which,command", [("vmm", "qmp"), ("vmm", "hmp"), ("qemu", "qmp")])
def test_a_stop_is_not_guest_time(guests, which, command):
    """The TSC counted the stop; the kvmclock did not (it lost at least two
    of the three seconds: both read once just before the stop and once just
    after), and the guest finds the stopped flag."""
    g = guests(which, "kvmclock")
    tsc_ms, clock_ms, stopped = (int(x) for x in stop_and_cont(g, command).groups())
    # testos's TSC rate comes from 10 ms of PIT: good to a few per cent
    assert tsc_ms >= STOP_S * 900, (tsc_ms, clock_ms)
    assert tsc_ms - clock_ms >= (STOP_S - 1) * 1000, (tsc_ms, clock_ms)
    assert stopped == 1


def test_a_second_stop_keeps_the_first_stops_clock(guests):
    """`stop` twice, then `cont`: the guest's clock resumes from the first
    stop (QEMU's kvmclock keeps the value it read first), not the second."""
    g = guests("vmm", "kvmclock")
    g.serial.wait_for(r"testos: kvmclock up", BOOT_TIMEOUT)
    assert g.qmp.cmd("stop") == {"return": {}}
    g.qmp.wait_event("STOP")
    time.sleep(STOP_S)
    assert g.qmp.cmd("stop") == {"return": {}}
    assert g.qmp.cmd("cont") == {"return": {}}
    g.qmp.wait_event("RESUME")
    tsc_ms, clock_ms, _ = (int(x) for x in g.serial.wait_for(GAP, 60).groups())
    assert tsc_ms - clock_ms >= (STOP_S - 1) * 1000, (tsc_ms, clock_ms)
