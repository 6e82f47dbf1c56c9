"""The power button with a stock Linux guest under -no-shutdown, as libvirt
starts every VM (`virsh shutdown` is system_powerdown): the guest's acpid
(the button scenario: Debian's button module and busybox acpid) powers off,
and the VMM stays with the VM stopped in run state `shutdown` until `quit`.
Under this VMM and under Debian's QEMU, booted side by side with the same
command line; the QMP events must be the same, in the same order.
test_linux_hotplug.py has the plain case (the VMM exits with status 0)."""
import tempfile
import time

import pytest

from linuxguest import Guest, close_all

pytestmark = pytest.mark.hwkvm

WHICH = ["vmm", "peer"]
BOOT_TIMEOUT = 240      # nested, two guests at once
STEP_TIMEOUT = 60
STOPPED_OFF = {"running": False, "singlestep": False, "status": "shutdown"}


def events_until(q, name, which, g, timeout=STEP_TIMEOUT):
    """Every event (name, data) up to and with the first called name, or
    (name None) until the VMM closes QMP."""
    seen = []
    deadline = time.time() + timeout
    while True:
        while q.events:
            ev = q.events.pop(0)
            seen.append((ev["event"], ev.get("data")))
            if ev["event"] == name:
                return seen
        left = deadline - time.time()
        if left <= 0:
            raise AssertionError(f"{which}: no {name} in {timeout} s; events: {seen}; "
                                 f"guest's last lines:\n{g.tail(15)}")
        try:
            msg = q.recv(left)
        except TimeoutError:
            continue
        except (EOFError, ConnectionResetError):   # Debian's QEMU resets after quit
            if name is None:
                return seen
            raise AssertionError(f"{which} closed QMP before {name}; events: {seen}; "
                                 f"guest's last lines:\n{g.tail(15)}") from None
        assert "event" in msg, msg
        q.events.append(msg)


@pytest.fixture(scope="module")
def results():
    """which -> (events, query-status after the button, alive then, the
    guest's button line, exit status after quit), or the AssertionError."""
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        guests, out = {}, {}
        try:
            for which in WHICH:
                guests[which] = Guest(which, d, "powerdown-" + which, run="button",
                                      sh="sleep 900", extra=[
                                          "-no-shutdown",
                                          "-qmp", f"unix:{d}/{which}.sock,server=on,wait=off"])
            for which, g in guests.items():
                try:
                    # QMP once it has booted: in the rig a guest may be
                    # started again (linuxguest.Guest._silent_reset_in_rig)
                    g.wait_for(r"^linux: (button armed .*|fail .*)$", BOOT_TIMEOUT)
                    q = g.qmp(f"{d}/{which}.sock")
                    assert not g.fails(), g.fails()
                    assert q.execute("system_powerdown") == {"return": {}}
                    line = g.wait_for(r"^linux: power button$", STEP_TIMEOUT).group(0)
                    events = events_until(q, "STOP", which, g)
                    status = q.execute("query-status")["return"]
                    alive = g.vmm.proc.poll() is None
                    assert q.execute("quit") == {"return": {}}
                    events += events_until(q, None, which, g)
                    out[which] = (events, status, alive, line, g.wait_exit(STEP_TIMEOUT))
                except (AssertionError, OSError) as e:
                    out[which] = e
                print(f"{which}: {out[which]}", flush=True)
        finally:
            close_all(guests.values())
        yield out


def get(results, which):
    r = results[which]
    if isinstance(r, Exception):
        raise AssertionError(f"{which}: {r}")
    return r


@pytest.mark.parametrize("which", WHICH)
def test_the_button_stops_the_vm_and_quit_ends_it(results, which):
    """POWERDOWN, the guest's acpid powers off: SHUTDOWN (the guest's),
    STOP; the VMM still runs, run state `shutdown`; quit ends it (SHUTDOWN,
    the host's), status 0."""
    events, status, alive, line, rc = get(results, which)
    assert line == "linux: power button"
    assert events == [("POWERDOWN", None),
                      ("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"}),
                      ("STOP", None),
                      ("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})], events
    assert status == STOPPED_OFF
    assert alive
    assert rc == 0


def test_the_same_events_as_debian_qemu(results):
    assert get(results, "vmm")[0] == get(results, "peer")[0]
