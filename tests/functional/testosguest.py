"""testos with a scenario under this VMM or under Debian's QEMU, side by
side: its serial console, a QMP client and the events in the order they
came.  The tests that compare both VMMs' events (test_hotplug.py,
test_powerdown.py) build on it."""
import os
import tempfile

import pytest

from harness import QEMU, TESTOS, VMM, QmpClient, SerialClient, Vmm, free_port

WHICH = {"vmm": VMM, "qemu": QEMU}


class TestosGuest:
    """testos.run=scenario with what devices() adds and extra arguments."""

    __test__ = False    # not a pytest class, despite its name

    def __init__(self, which, scenario, extra=()):
        if which == "qemu" and not QEMU:
            pytest.fail("Debian's qemu-system-x86_64, the reference here, is not installed")
        self.dir = tempfile.TemporaryDirectory()
        sock = os.path.join(self.dir.name, "qmp.sock")
        port = free_port()
        args = ["-enable-kvm", "-display", "none", "-nodefaults", "-m", "128M",
                "-serial", f"telnet:127.0.0.1:{port},server,nowait",
                "-qmp", f"unix:{sock},server=on,wait=off", *self.devices(), *extra,
                "-kernel", TESTOS, "-append", f"testos.run={scenario}"]
        self.vm = Vmm(args, binary=WHICH[which])
        try:
            self.serial = SerialClient(port)
            self.qmp = QmpClient(sock)
        except BaseException:
            self.vm.__exit__(None, None, None)  # never leave a VMM behind
            self.dir.cleanup()
            raise

    def devices(self):
        """Arguments for the guest's devices (files go in self.dir)."""
        return []

    def events(self, *names):
        """Wait for the events named, in this order; return (name, data) each."""
        got = []
        for name in names:
            ev = self.qmp.wait_event(name)
            got.append((ev["event"], ev.get("data")))
        return got

    def close(self):
        self.qmp.close()
        self.serial.close()
        self.vm.__exit__(None, None, None)
        self.dir.cleanup()


def guest_maker(cls):
    """For a fixture (`yield from guest_maker(Guest)`): make(which,
    scenario, extra) starts a cls; every guest made is closed after."""
    made = []

    def make(which, scenario, extra=()):
        g = cls(which, scenario, extra)
        made.append(g)
        return g

    try:
        yield make
    finally:
        for g in made:
            g.close()
