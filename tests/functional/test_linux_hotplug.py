"""A stock Linux guest (acpiphp, built into Debian's kernel) and ACPI PCI
hot-plug, under this VMM and under Debian's QEMU with the same command
line: device_del of a virtio disk ends with the guest letting it go and
DEVICE_DELETED; device_add of a virtio disk on a -drive if=none makes a
disk appear that reads back the pattern written into its image; several
times in a row.  The QMP events must be the same under both VMMs."""
import os
import re
import tempfile
import time

import pytest

from linuxguest import Guest

pytestmark = pytest.mark.hwkvm

CYCLES = 5        # unplug, then plug a fresh disk, this many times
BOOT_TIMEOUT = 240
EVENT_TIMEOUT = 60

# The guest prints its PCI functions and block devices whenever they
# change, and the first 8 bytes of each vd* disk, for 3 minutes.
WATCH = r'''prev=""; i=0
while [ $i -lt 1800 ]; do
  cur=$(ls /sys/bus/pci/devices | tr '\n' ' ')
  blk=""
  for b in /sys/block/vd*; do
    [ -e "$b" ] || continue
    n=${b##*/}
    blk="$blk $n:$(head -c 8 /dev/$n 2>/dev/null | od -An -c | tr -d ' ')"
  done
  [ "$cur|$blk" != "$prev" ] && echo "linux: hp $cur|$blk"
  prev="$cur|$blk"; i=$((i+1)); sleep 0.1
done'''


def slot_of(cycle):
    return 6 + cycle


def wait_after(g, start, pattern, timeout):
    """The first match of pattern in what the guest printed after offset
    start of its log (what it printed before says nothing of this step)."""
    deadline = time.time() + timeout
    rx = re.compile(pattern, re.M)
    while True:
        m = rx.search(g.complete_lines()[start:])
        if m:
            return m
        if time.time() > deadline or g.vmm.proc.poll() is not None:
            raise AssertionError(f"no {pattern!r} from {g.which} in {timeout} s:\n{g.tail()}")
        time.sleep(0.1)


def run(which, workdir):
    d = tempfile.mkdtemp(dir=workdir)
    disks = []
    for n in range(CYCLES + 1):
        path = os.path.join(d, f"d{n}.img")
        with open(path, "wb") as f:
            f.write(f"disk{n}...".encode())
            f.truncate(1 << 20)
        disks += ["-drive", f"file={path},if=none,id=d{n},format=raw"]
    sock = os.path.join(d, "qmp.sock")
    g = Guest(which, d, "hotplug-" + which, sh=WATCH, extra=disks + [
        "-device", "virtio-blk-pci,drive=d0,id=blk0,addr=5",
        "-qmp", f"unix:{sock},server=on,wait=off"])
    events, seen = [], []
    try:
        q = g.qmp(sock)
        g.wait_for(r"^linux: hp .*0000:00:05\.0.*vda:disk0", BOOT_TIMEOUT)
        for n in range(CYCLES):
            old, new = (f"blk{n}", slot_of(n - 1) if n else 5), (f"blk{n + 1}", slot_of(n))
            start = len(g.text())
            assert q.execute("device_del", id=old[0]) == {"return": {}}
            for _ in range(2):
                ev = q.wait_event("DEVICE_DELETED", EVENT_TIMEOUT)
                events.append(ev["data"])
            wait_after(g, start, rf"^linux: hp (?!.*0000:00:{old[1]:02x}\.0)[^|]*\|$",
                       EVENT_TIMEOUT)
            start = len(g.text())
            reply = q.execute("device_add", driver="virtio-blk-pci", drive=f"d{n + 1}",
                              id=new[0], addr=f"{new[1]:x}")  # hex, as -device takes it
            assert reply == {"return": {}}, reply
            line = wait_after(g, start, rf"^linux: hp .*0000:00:{new[1]:02x}\.0.*\| vda:\S+$",
                              EVENT_TIMEOUT)
            seen.append(line.group(0).split("| ")[-1])
        assert q.execute("query-status")["return"]["status"] == "running"
        q.close()
    finally:
        g.kill()
        g.__exit__(None, None, None)
    return events, seen, g.fails()


@pytest.fixture(scope="module")
def results():
    with tempfile.TemporaryDirectory(dir="/tmp") as workdir:
        yield {w: run(w, workdir) for w in ("vmm", "peer")}


@pytest.mark.parametrize("which", ["vmm", "peer"])
def test_guest_lets_go_of_and_takes_hot_plugged_disks(results, which):
    events, seen, fails = results[which]
    assert seen == [f"vda:disk{n + 1}..." for n in range(CYCLES)]
    assert not fails, fails
    assert len(events) == 2 * CYCLES


def test_the_same_events_as_debian_qemu(results):
    assert results["vmm"][0] == results["peer"][0]
    assert results["vmm"][0][:2] == [
        {"path": "/machine/peripheral/blk0/virtio-backend"},
        {"device": "blk0", "path": "/machine/peripheral/blk0"}]
