"""A stock Linux guest stopped for half a minute (`stop` ... `cont`, as
`virsh suspend` and `virsh resume` do), under this VMM and Debian's QEMU
side by side.  QEMU sets the guest's kvmclock back to where the VM stopped
and flags the pause (KVM_KVMCLOCK_CTRL), so the guest's monotonic clock
does not count the stop and its watchdog reports no soft lockup.  The
guest prints its uptime every half second of its own time; the two lines
around the stop must be seconds apart, not the stop's 25.  Before this
VMM did as QEMU (2026-12-07), its guest's lines were 25.3 s apart in the
rig (no soft lockup was printed then either)."""
import re
import tempfile
import time

import pytest

from linuxguest import Guest, close_all

pytestmark = pytest.mark.hwkvm

WHICH = ["vmm", "peer"]
BOOT_TIMEOUT = 240  # nested, two guests at once
STEP_TIMEOUT = 60
STOP_S = 25         # above the soft-lockup threshold (2 x watchdog_thresh, 10 s)
TICK = 'while :; do echo "linux: clock $(cut -d" " -f1 /proc/uptime)"; sleep 0.5; done'
CLOCK = re.compile(r"^linux: clock ([\d.]+)$", re.M)


def test_a_stop_is_neither_guest_time_nor_a_soft_lockup():
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        guests, qmps, at_stop, out = {}, {}, {}, {}
        try:
            for which in WHICH:
                guests[which] = Guest(which, d, "clock-" + which, sh=TICK, extra=[
                    "-qmp", f"unix:{d}/{which}.sock,server=on,wait=off"])
            for which, g in guests.items():
                g.wait_for(CLOCK.pattern, BOOT_TIMEOUT, count=3)
                qmps[which] = g.qmp(f"{d}/{which}.sock")
            for which, q in qmps.items():
                assert q.execute("stop") == {"return": {}}
                # the vCPUs are out of the guest: nothing more reaches COM1
                at_stop[which] = len(guests[which].complete_lines())
            time.sleep(STOP_S)
            for which, q in qmps.items():
                assert q.execute("cont") == {"return": {}}
            for which, g in guests.items():
                g.wait_for(CLOCK.pattern, STEP_TIMEOUT, count=2, after=at_stop[which])
                text = g.complete_lines()
                before = float(CLOCK.findall(text[:at_stop[which]])[-1])
                after = float(CLOCK.findall(text[at_stop[which]:])[0])
                out[which] = (round(after - before, 1), re.findall(r"soft lockup.*", text))
                print(f"{which}: uptime {before} before the stop, {after} after", flush=True)
        finally:
            close_all(guests.values())
        for which in WHICH:
            # half a second of guest time apart, seconds more in the rig
            assert out[which][0] < STOP_S - 10, (which, out[which])
            assert out[which][1] == [], (which, out[which])
