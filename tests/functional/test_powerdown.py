"""The power button and the guest's soft off (the PIIX4 PM function):
system_powerdown (QMP and HMP) presses the button, testos's `powerdown`
scenario answers by writing SLP_EN to PM1a_CNT, and the VMM ends with
status 0 or, under -no-shutdown, stays with the VM stopped in run state
`shutdown` until system_reset and cont.  Every sequence runs under this VMM
and under Debian's QEMU, and the QMP events must be the same, in the same
order (libvirt's `virsh shutdown` relies on exactly these)."""
import pytest

from testosguest import TestosGuest, guest_maker

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 60  # Debian's QEMU boots testos through SeaBIOS: seconds
EXIT_TIMEOUT = 20
RUNNING = {"running": True, "singlestep": False, "status": "running"}
STOPPED_OFF = {"running": False, "singlestep": False, "status": "shutdown"}
GUEST_OFF = {"guest": True, "reason": "guest-shutdown"}


class Guest(TestosGuest):
    """testos with a scenario under one VMM, its serial port and a QMP client."""

    def events_until_closed(self, timeout=EXIT_TIMEOUT):
        """Every event (name, data) until the VMM closes the monitor."""
        seen = list(self.qmp.events)
        self.qmp.events.clear()
        while True:
            try:
                msg = self.qmp.recv(timeout)
            except EOFError:
                return [(e["event"], e.get("data")) for e in seen]
            assert "event" in msg, msg
            seen.append(msg)

    def events_now(self, *names):
        """Wait for the events named, in this order, and no other; return all
        seen (name, data)."""
        got = self.events(*names)
        assert self.qmp.events == [], self.qmp.events
        return got


@pytest.fixture
def guests():
    yield from guest_maker(Guest)


def press_when_waiting(g, hmp=False):
    """Once the scenario waits for it, press the button (QMP, or HMP's
    system_powerdown through human-monitor-command); the guest's line."""
    line = g.serial.wait_for(r"testos: powerdown waiting .*\n", BOOT_TIMEOUT).group(0)
    if hmp:
        reply = g.qmp.cmd("human-monitor-command", {"command-line": "system_powerdown"})
        assert reply == {"return": ""}
    else:
        assert g.qmp.cmd("system_powerdown") == {"return": {}}
    return line.strip()


@pytest.mark.parametrize("which", ["vmm", "qemu"])
def test_the_guest_sees_the_same_pm_registers_and_button(guests, which):
    """What the powerdown scenario reads before and after the press: timer
    status set since reset, the button enabled, SCI_EN after 0xF1 to 0xB2,
    and the button's status cleared by writing it back."""
    g = guests(which, "powerdown")
    assert press_when_waiting(g) == "testos: powerdown waiting sts=1 en=100 cnt=1"
    g.serial.wait_for(r"testos: powerdown button sts=0", EXIT_TIMEOUT)


def test_powerdown_events_and_exit_status_match_debian_qemu(guests):
    """system_powerdown: POWERDOWN, then the guest's S5 gives SHUTDOWN
    (guest-shutdown) and the process exits 0, under both VMMs alike."""
    result = {}
    for which in ("vmm", "qemu"):
        g = guests(which, "powerdown")
        press_when_waiting(g)
        events = g.events_until_closed()
        result[which] = (events, g.vm.wait(EXIT_TIMEOUT))
    assert result["vmm"] == ([("POWERDOWN", None), ("SHUTDOWN", GUEST_OFF)], 0)
    assert result["vmm"] == result["qemu"]


def test_hmp_system_powerdown_presses_the_button_too(guests):
    g = guests("vmm", "powerdown")
    press_when_waiting(g, hmp=True)
    assert g.events_until_closed() == [("POWERDOWN", None), ("SHUTDOWN", GUEST_OFF)]
    assert g.vm.wait(EXIT_TIMEOUT) == 0


def test_no_shutdown_stops_the_vm_and_reset_brings_it_back(guests):
    """-no-shutdown: SHUTDOWN then STOP, run state `shutdown`, cont refused
    until system_reset; then the guest boots again.  Same under QEMU."""
    result = {}
    for which in ("vmm", "qemu"):
        g = guests(which, "powerdown", ["-no-shutdown"])
        press_when_waiting(g)
        events = g.events_now("POWERDOWN", "SHUTDOWN", "STOP")
        status = g.qmp.cmd("query-status")["return"]
        cont = g.qmp.cmd("cont")
        alive = g.vm.proc.poll() is None
        assert g.qmp.cmd("system_reset") == {"return": {}}
        events += g.events_now("RESET")
        after_reset = g.qmp.cmd("query-status")["return"]["status"]
        assert g.qmp.cmd("cont") == {"return": {}}
        events += g.events_now("RESUME")
        g.serial.wait_for(r"(?s)powerdown waiting.*powerdown waiting", BOOT_TIMEOUT)
        result[which] = (events, status, cont["error"], alive, after_reset)
    assert result["vmm"] == (
        [("POWERDOWN", None), ("SHUTDOWN", GUEST_OFF), ("STOP", None),
         ("RESET", {"guest": False, "reason": "host-qmp-system-reset"}),
         ("RESUME", None)],
        STOPPED_OFF,
        {"class": "GenericError", "desc": "Resetting the Virtual Machine is required"},
        True, "prelaunch")
    assert result["vmm"] == result["qemu"]


def test_a_guest_that_ignores_the_button_keeps_running(guests):
    """testos idle never enables the button: POWERDOWN, nothing else."""
    for which in ("vmm", "qemu"):
        g = guests(which, "idle")
        g.serial.wait_for("testos: idle", BOOT_TIMEOUT)
        assert g.qmp.cmd("system_powerdown") == {"return": {}}
        assert g.events_now("POWERDOWN") == [("POWERDOWN", None)]
        assert g.qmp.cmd("system_powerdown") == {"return": {}}
        g.qmp.wait_event("POWERDOWN")
        assert g.qmp.cmd("query-status")["return"] == RUNNING, which
        assert g.vm.proc.poll() is None
