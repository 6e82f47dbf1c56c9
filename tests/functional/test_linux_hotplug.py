"""A stock Linux guest (acpiphp and the ACPI button driver of Debian's
kernel) under this VMM and under Debian's QEMU with the same command line,
one boot each, in a network namespace the test makes with a tap in it
(198.18.0.1/24 on the host end):

1. netdev_add of a tap, then device_add virtio-net-pci on it: a new
   interface appears, takes 198.18.0.2/24 and pings the namespace's end of
   the tap (3 echoes the first time, 1 after); device_del ends with
   DEVICE_DELETED and the interface is gone; CYCLES times in a row, in the
   same slot;
2. device_del of a virtio disk, then device_add of the next one (a -drive
   if=none whose image starts with its own pattern): the guest lets go of
   the old disk and reads the new one's pattern; CYCLES times in a row,
   alternating between two slots;
3. system_powerdown: the guest's acpid (the button scenario) powers off,
   SHUTDOWN follows and the VMM exits with status 0.

Every QMP event of the boot is kept in order (timestamps aside), step by
step: each step must give the same events under both VMMs.  Debian's QEMU
does fewer cycles (its cycles take twice as long in the rig, and repeating
them says little about this VMM); this VMM's later cycles must give the
events QEMU gave for its first, with the ids of theirs.  The two boots run
side by side (one L2 vCPU each on the rig's two L1 vCPUs), each printing
its timings.  test_linux_powerdown.py has the
-no-shutdown case.

In the rig, TCG's SVM emulation now and then stalls an L2 guest (under
Debian's QEMU as under this VMM; tests/rig/README.md): every wait is
bounded, and a failure says whether the guest was still printing."""
import collections
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from linuxguest import Guest, close_all, initrd, tap_netns

pytestmark = pytest.mark.hwkvm

CYCLES = {"vmm": 20, "peer": 5}     # NIC cycles, then as many disk cycles
WHICH = ["vmm", "peer"]
BOOT_TIMEOUT = 240      # nested: Linux's boot to `button armed`
STEP_TIMEOUT = 60       # one plug or unplug, seen by the guest
EXIT_TIMEOUT = 60       # from the button to the VMM's exit
TAP = "dvtap0"          # one per namespace, so the name never clashes
HOST_IP, GUEST_IP = "198.18.0.1", "198.18.0.2"
GUEST_MAC = "52:54:00:12:34:60"
NIC_SLOT = 7
DISK_SLOTS = (5, 6)     # disk n sits in DISK_SLOTS[n % 2]
PINGS_FIRST, PINGS = 3, 1     # echoes the first NIC sends, then every later one
GUEST_OFF = {"guest": True, "reason": "guest-shutdown"}

# The guest's watcher (run after the button scenario): every 0.1 s it
# looks at its PCI functions, vd* disks (with the first 8 bytes of each)
# and network interfaces, and prints one `hp` line whenever they change.  A
# new interface gets GUEST_IP, goes up and pings the host end of the tap
# first (one `hp nic` line; dv.pings_first echoes the first time, dv.pings
# after).  After 30 rounds without a change (3 s, more when nested) it
# prints an `hp alive` line, so a test can tell a guest that stalled from
# one that did not see a device.
WATCH = r'''. /etc/dv/lib.sh
ip=$(arg ip 198.18.0.2/24)
peer=$(arg peer 198.18.0.1)
pings=$(arg pings_first 3)
nic_up() {
    local d=$1 pci drv out sent got
    pci=$(readlink -f /sys/class/net/$d/device/..)
    drv=$(readlink /sys/class/net/$d/device/driver)
    ip addr add "$ip" dev "$d" || fail "hp: ip addr add $ip dev $d"
    ip link set "$d" up || fail "hp: ip link set $d up"
    wait_carrier "$d" 100
    out=$(ping -c "$pings" -W 5 "$peer" 2>&1)
    sent=$(echo "$out" | sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p')
    got=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
    say "hp nic $d pci=${pci##*/} driver=${drv##*/} mac=$(cat /sys/class/net/$d/address)" \
        "carrier=$(cat /sys/class/net/$d/carrier 2>/dev/null) ping=$peer sent=${sent:-0} received=${got:-0}"
    pings=$(arg pings 1)
}
known=""; prev=""; quiet=0; i=0
while [ $i -lt 18000 ]; do
    pci=$(ls /sys/bus/pci/devices | tr '\n' ' ')
    blk=""
    for b in /sys/block/vd*; do
        [ -e "$b" ] || continue
        d=${b##*/}
        blk="$blk $d:$(head -c 8 /dev/$d 2>/dev/null | od -An -c | tr -d ' ')"
    done
    net=""
    for n in /sys/class/net/*; do
        d=${n##*/}
        [ "$d" = lo ] || [ ! -e "$n" ] && continue
        net="$net $d"
        case " $known " in *" $d "*) ;; *) nic_up "$d" ;; esac
    done
    known=$net
    cur="pci=$pci| blk=$blk| net=$net"
    if [ "$cur" != "$prev" ]; then
        say "hp $cur"
        quiet=0
    elif [ $quiet -ge 30 ]; then
        say "hp alive $(cut -d' ' -f1 /proc/uptime)"
        quiet=0
    fi
    prev=$cur; quiet=$((quiet + 1)); i=$((i + 1))
    sleep 0.1
done'''


def pattern(n):
    """The first 8 bytes of disk n's image, as the guest prints them."""
    return f"disk{n:02d}.."


def disk_slot(n):
    return DISK_SLOTS[n % 2]


def hp_line(slot_in=None, slot_out=None, blk=None, net=None):
    """A regex for a watcher state line: a PCI slot there or not, the disk
    list (a regex), the interface list (a regex)."""
    pci = ""
    if slot_in is not None:
        pci += rf"(?=[^|]*0000:00:{slot_in:02x}\.0)"
    if slot_out is not None:
        pci += rf"(?![^|]*0000:00:{slot_out:02x}\.0)"
    return (rf"^linux: hp pci={pci}[^|]*\| blk={blk or '[^|]*'}\| "
            rf"net={net if net is not None else '.*'}$")


def make_netns(tag):
    return tap_netns(f"dvlhp-{tag}-{os.getpid()}", TAP, HOST_IP)


class Session:
    """One boot: the guest, its QMP client, every event in order, and what
    each phase found.  Waits raise AssertionError naming the step."""

    def __init__(self, which):
        self.which = which
        self.cycles = CYCLES[which]
        self.events = []        # (name, data) in arrival order
        self.steps = []         # (step, its events): boot, nic N, disk N, power
        self.nics = []          # the guest's `hp nic` line per NIC cycle
        self.nics_gone = 0      # NIC cycles whose unplug the guest saw
        self.disks = []         # the pattern read per disk cycle
        self.times = {}         # phase -> seconds
        self.exit = None        # the VMM's exit status after the button
        self.button = None      # the guest's `power button` line
        self.error = None       # the AssertionError that ended the boot early
        self.fails = []         # the guest's `linux: fail` lines

    def wait_guest(self, pattern, start, step, timeout=STEP_TIMEOUT):
        """The first match of pattern in the complete lines the guest
        printed after offset start (what it printed before says nothing of
        this step)."""
        g = self.g
        deadline = time.time() + timeout
        rx = re.compile(pattern, re.M)
        size, last_growth = -1, time.time()
        while True:
            text = g.complete_lines()
            m = rx.search(text[start:])
            if m:
                return m
            if len(text) != size:
                size, last_growth = len(text), time.time()
            if g.vmm.proc.poll() is not None:
                m = rx.search(g.text()[start:])     # what it printed before it ended
                if m:
                    return m
                raise AssertionError(f"{self.which} exited ({g.vmm.proc.returncode}) while "
                                     f"waiting for {step}:\n{g.tail()}")
            if time.time() > deadline:
                silent = time.time() - last_growth
                why = (f"the guest printed nothing for the last {silent:.0f} s, its watcher "
                       "not even `hp alive`: stalled (in the rig: TCG's SVM emulation?)"
                       if silent > 20 else
                       "the guest kept printing but never showed it")
                raise AssertionError(f"{self.which}: no {step} in {timeout} s ({why}); "
                                     f"wanted {pattern!r}; guest's last lines:\n{g.tail(15)}"
                                     f"\n{g.threads_report()}")
            time.sleep(0.1)

    def wait_event(self, name, step, timeout=STEP_TIMEOUT):
        """The next event called name; every event read on the way is kept."""
        deadline = time.time() + timeout
        while True:
            while self.q.events:
                ev = self.q.events.pop(0)
                self.events.append((ev["event"], ev.get("data")))
                if ev["event"] == name:
                    return ev
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{self.which}: no {name} in {timeout} s after {step}; "
                                     f"events so far: {self.events[-6:]}; guest's last "
                                     f"lines:\n{self.g.tail(15)}")
            try:
                msg = self.q.recv(left)
            except TimeoutError:
                continue
            except EOFError:
                raise AssertionError(f"{self.which} closed QMP waiting for {name} after "
                                     f"{step}:\n{self.g.tail(15)}") from None
            assert "event" in msg, msg
            self.q.events.append(msg)

    def events_until_closed(self, timeout=EXIT_TIMEOUT):
        """Keeps every event until the VMM closes QMP (it is ending)."""
        deadline = time.time() + timeout
        while True:
            while self.q.events:
                ev = self.q.events.pop(0)
                self.events.append((ev["event"], ev.get("data")))
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{self.which} kept QMP open {timeout} s after "
                                     f"SHUTDOWN; events: {self.events[-4:]}")
            try:
                msg = self.q.recv(left)
            except TimeoutError:
                continue
            except (EOFError, ConnectionResetError):  # QEMU's close may reset
                return
            assert "event" in msg, msg
            self.q.events.append(msg)

    def step(self, name):
        """The events read since the last step are this step's."""
        done = sum(len(evs) for _, evs in self.steps)
        self.steps.append((name, self.events[done:]))

    def ok(self, name, **args):
        reply = self.q.execute(name, **args)
        assert reply == {"return": {}}, f"{self.which}: {name} {args}: {reply}"

    def nic_cycle(self, n):
        start = len(self.g.text())
        nic = f"nic{n}"
        self.ok("device_add", driver="virtio-net-pci", netdev="n1", id=nic, mac=GUEST_MAC,
                addr=f"{NIC_SLOT:x}")
        m = self.wait_guest(rf"^linux: hp nic .* pci=0000:00:{NIC_SLOT:02x}\.0 .*$", start,
                            f"interface for {nic} (NIC cycle {n})")
        self.nics.append(m.group(0))
        self.wait_guest(hp_line(slot_in=NIC_SLOT, net=r" \S+"), start,
                        f"{nic} in the watcher's list (NIC cycle {n})")
        start = len(self.g.text())
        self.ok("device_del", id=nic)
        for _ in range(2):
            self.wait_event("DEVICE_DELETED", f"device_del {nic} (NIC cycle {n})")
        self.wait_guest(hp_line(slot_out=NIC_SLOT, net=""), start,
                        f"{nic} gone from PCI and interfaces (NIC cycle {n})")
        self.nics_gone += 1

    def disk_cycle(self, n):
        old, new = f"blk{n}", f"blk{n + 1}"
        start = len(self.g.text())
        self.ok("device_del", id=old)
        for _ in range(2):
            self.wait_event("DEVICE_DELETED", f"device_del {old} (disk cycle {n})")
        self.wait_guest(hp_line(slot_out=disk_slot(n), blk=""), start,
                        f"{old} gone from PCI and block devices (disk cycle {n})")
        start = len(self.g.text())
        self.ok("device_add", driver="virtio-blk-pci", drive=f"d{n + 1}", id=new,
                addr=f"{disk_slot(n + 1):x}")  # hex, as -device takes it
        m = self.wait_guest(hp_line(slot_in=disk_slot(n + 1), blk=r" vda:([^|\s]+)"), start,
                            f"{new}'s disk with its pattern (disk cycle {n})")
        self.disks.append(m.group(1))

    def run(self, workdir):
        d = tempfile.mkdtemp(dir=workdir)
        drives = []
        for n in range(self.cycles + 1):
            path = os.path.join(d, f"d{n}.img")
            with open(path, "wb") as f:
                f.write(pattern(n).encode())
                f.truncate(1 << 20)
            drives += ["-drive", f"file={path},if=none,id=d{n},format=raw"]
        sock = os.path.join(d, "qmp.sock")
        ns = make_netns(self.which)
        self.g = None
        try:
            self.g = Guest(self.which, d, "hotplug-" + self.which, netns=ns, run="button,hp",
                           initrd_path=initrd(d, {"hp": WATCH}),
                           extra_append=f"dv.ip={GUEST_IP}/24 dv.peer={HOST_IP} "
                                        f"dv.pings_first={PINGS_FIRST} dv.pings={PINGS}",
                           extra=drives + [
                               "-device", f"virtio-blk-pci,drive=d0,id=blk0,addr={disk_slot(0):x}",
                               "-qmp", f"unix:{sock},server=on,wait=off"])
            t = time.time()
            # QMP once it has booted: in the rig a guest may be started
            # again (linuxguest.Guest._silent_reset_in_rig)
            self.g.wait_for(r"^linux: (button armed .*|fail .*)$", BOOT_TIMEOUT)
            assert not self.g.fails(), self.g.fails()
            self.q = self.g.qmp(sock)
            self.wait_guest(hp_line(slot_in=disk_slot(0), blk=" vda:" + re.escape(pattern(0)),
                                    net=""),
                            0, "the watcher's first line", BOOT_TIMEOUT)
            self.times["boot"] = time.time() - t
            self.ok("netdev_add", type="tap", id="n1", ifname=TAP, script="no",
                    downscript="no")
            t = time.time()
            self.step("boot")
            for n in range(self.cycles):
                self.nic_cycle(n)
                self.step(f"nic {n}")
            self.times["nic"] = time.time() - t
            t = time.time()
            for n in range(self.cycles):
                self.disk_cycle(n)
                self.step(f"disk {n}")
            self.times["disk"] = time.time() - t
            start = len(self.g.text())
            self.ok("system_powerdown")
            self.wait_event("POWERDOWN", "system_powerdown")
            self.button = self.wait_guest(r"^linux: power button$", start,
                                          "the guest's acpid handler").group(0)
            self.wait_event("SHUTDOWN", "the guest's power off", EXIT_TIMEOUT)
            self.events_until_closed()
            self.step("power")
            self.exit = self.g.wait_exit(EXIT_TIMEOUT)
        except AssertionError as e:
            self.error = e
        finally:
            if self.g:
                self.fails = self.g.fails()
            close_all([self.g])
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        print(f"{self.which}: boot {self.times.get('boot', 0):.1f} s, "
              + ", ".join(f"{self.cycles} {k} cycles {v:.1f} s ({v / self.cycles:.2f} s each)"
                          for k, v in self.times.items() if k != "boot")
              + "; events: " + ", ".join(f"{name} x{n}" for name, n in
                                         collections.Counter(e[0] for e in self.events).items()),
              flush=True)
        return self

    def need(self, what):
        """Fails with the error that ended the boot if it ended before what."""
        if self.error is not None:
            raise AssertionError(f"{self.which} ended before {what}: {self.error}")


@pytest.fixture(scope="module")
def sessions():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not shutil.which("ip"):
        pytest.skip("needs root, /dev/net/tun and ip (network namespaces and taps)")
    with tempfile.TemporaryDirectory(dir="/tmp") as workdir:
        sessions = {w: Session(w) for w in WHICH}
        raised = []

        def run(s):
            try:
                s.run(workdir)
            except BaseException as e:     # pytest.exit from a wedged L1 too
                raised.append(e)
        threads = [threading.Thread(target=run, args=(s,)) for s in sessions.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if raised:
            raise raised[0]
        yield sessions


@pytest.mark.parametrize("which", WHICH)
def test_a_hot_plugged_nic_carries_traffic_and_goes_away(sessions, which):
    """The first NIC: virtio_net drives it with the MAC given, its link is
    up, the guest's pings to the tap's host end all come back; after
    device_del the slot and the interface are gone (NIC cycle 0)."""
    s = sessions[which]
    if s.nics_gone < 1:
        s.need("the first NIC cycle ended")
    assert re.fullmatch(rf"linux: hp nic \S+ pci=0000:00:{NIC_SLOT:02x}\.0 driver=virtio_net "
                        rf"mac={GUEST_MAC} carrier=1 ping={HOST_IP} sent={PINGS_FIRST} "
                        rf"received={PINGS_FIRST}", s.nics[0]), s.nics[0]


@pytest.mark.parametrize("which", WHICH)
def test_nic_and_disk_plugged_and_unplugged_many_times(sessions, which):
    """CYCLES NICs in one slot, each carrying traffic, then as many disks
    in two slots, each read back with its own pattern."""
    s = sessions[which]
    s.need(f"{s.cycles} NIC and {s.cycles} disk cycles")
    want = [PINGS_FIRST] + [PINGS] * (s.cycles - 1)
    bad = [line for n, line in enumerate(s.nics)
           if not line.endswith(f" sent={want[n]} received={want[n]}")]
    assert len(s.nics) == s.cycles and not bad, bad
    assert s.disks == [pattern(n + 1) for n in range(s.cycles)]
    assert not s.fails, s.fails


@pytest.mark.parametrize("which", WHICH)
def test_power_button_ends_the_vm_with_status_0(sessions, which):
    s = sessions[which]
    s.need("the power button")
    assert s.button == "linux: power button"
    assert s.events[-2:] == [("POWERDOWN", None), ("SHUTDOWN", GUEST_OFF)], s.events[-4:]
    assert s.exit == 0


def as_cycle(events, step):
    """Cycle 0's events of a kind (nic, disk) as those of the cycle step
    names: its device's id (nic0, blk0) becomes that cycle's."""
    kind, n = step.split()
    dev = {"nic": "nic", "disk": "blk"}[kind]
    return [tuple(e) for e in json.loads(re.sub(rf"\b{dev}0\b", f"{dev}{n}",
                                                json.dumps(events)))]


def test_the_same_events_as_debian_qemu(sessions):
    """Step by step, the events of the boot, in order, timestamps aside:
    under Debian's QEMU and this VMM the same (NIC_RX_FILTER_CHANGED when
    the guest first sets a NIC's receive filter, DEVICE_DELETED for the
    virtio backend then for the device per unplug; POWERDOWN, SHUTDOWN with
    the guest's reason); this VMM's cycles beyond QEMU's as QEMU's first."""
    for s in sessions.values():
        s.need("the end of the boot")
    ours, peer = dict(sessions["vmm"].steps), dict(sessions["peer"].steps)
    assert peer["nic 0"][-2:] == [
        ("DEVICE_DELETED", {"path": "/machine/peripheral/nic0/virtio-backend"}),
        ("DEVICE_DELETED", {"device": "nic0", "path": "/machine/peripheral/nic0"})], peer["nic 0"]
    assert peer["power"][:2] == [("POWERDOWN", None), ("SHUTDOWN", GUEST_OFF)], peer["power"]
    differ = []
    for step, events in ours.items():
        want = peer[step] if step in peer else as_cycle(peer[step.split()[0] + " 0"], step)
        if events != want:
            differ.append(f"{step}: here {events}, QEMU {'' if step in peer else '(as cycle 0) '}"
                          f"{want}")
    assert not differ, "\n".join(differ)
