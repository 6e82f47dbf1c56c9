"""Automatic virtio-net failover with a stock Linux guest and a real
passthrough NIC (issue 16 item 5), in the rig's --iommu L1: the guest's
virtio-net (`failover=on`, mac= the e1000e's own MAC) is the standby, the
e1000e passed with `-device vfio-pci,...,failover_pair_id=net1` the
primary; the guest's net_failover (pulled in by virtio_net) pairs them by
that MAC and carries 198.18.0.2 on its master interface.  L1's other e1000e
(the only other port of their hub) and both VMMs' taps are ports of one
bridge holding 198.18.0.1, so the guest reaches the peer through either
NIC.  bench/outage.py streams UDP from the peer to the guest's dv-udpecho.

Checked: the primary appears only once the guest negotiates STANDBY (a
guest without virtio_net never sees it; loading virtio_net brings it);
migration to a second VMM in the same L1 (UNPLUG_PRIMARY, wait-unplug, the
guest ejects the e1000e and runs on virtio-net, the destination plugs the
same BDF after the load) keeps the stream going, the e1000e carries it
again on the destination (its counters rise in the guest) and dv-dirty's
memory check passes; migrate_cancel right at UNPLUG_PRIMARY leaves the
source's guest running with its e1000e carrying the stream.  Lost packets
and the longest gap are printed and written to
build/failover-linux-*.json, never asserted."""
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from harness import BUILD, ROOT, Qmp, wait_for_path
from linuxguest import Guest, ensure_initramfs, module, newc, sh
from rignic import bind, bridge_down, bridge_up, e1000e_nics, netdev

sys.path.insert(0, os.path.join(ROOT, "tests", "guest"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import dirtycheck  # noqa: E402
import outage  # noqa: E402

pytestmark = pytest.mark.iommu

UDPECHO_SRC = os.path.join(ROOT, "tests", "guest", "linux", "udpecho.c")
PEER_IP, GUEST_IP = "198.18.0.1", "198.18.0.2"
PORT = 7777
BRIDGE, TAPS = "dvflbr0", ("dvfltap0", "dvfltap1")
BOOT_TIMEOUT = 240
STEP = 120
# 10 ms: in the rig a 1 ms stream loses most of its packets before any
# migration (see test_failover_manual.py)
INTERVAL_MS = float(os.environ.get("DV_OUTAGE_MS", "10"))
# loglevel=5: the kernel's warnings on the console too (quiet shows errors
# only): two source guests that double-faulted after a failed or cancelled
# migration were tainted by a warning (W) their consoles did not show
APPEND = (f"loglevel=5 dv.ip={GUEST_IP}/24 dv.wss_mib=8 dv.mibps=2 dv.period_ms=500 "
          f"dv.echo_port={PORT}")

# The guest's side.  e1000e is loaded first (the initramfs loads virtio
# only), so that a primary plugged at any time gets its driver.  With
# dv.late_virtio=1 (an initramfs loading no virtio_net) the guest first
# waits dv.late_s seconds and reports the e1000e it sees (none: STANDBY was
# never negotiated), then loads virtio_net.  The failover master is the
# interface with lower_* links (net_failover's slaves); it takes dv.ip.
# Lines:
#   linux: fo before-virtio pci=N netdevs=N
#   linux: fo up master=M standby=S mac=MAC
#   linux: fo vf=DEV|none                      (each change, polled every 0.5 s:
#                                               the shell's forks on one vCPU
#                                               cost the UDP echo datagrams)
#   linux: fo stat vf=DEV enslaved=0|1 vf_rx=N vf_tx=N sb_rx=N sb_tx=N  (every 2 s)
#   linux: fo garp vf=DEV                      (a gratuitous ARP sent through
#                                               the master once the VF is
#                                               enslaved with carrier)
SCENARIO = r"""
. /etc/dv/lib.sh
ip=$(arg ip 198.18.0.2/24)
port=$(arg echo_port 7777)
insmod /modules/e1000e.ko || { fail "fo: insmod e1000e"; exit 1; }
dev_of() {
    local d drv
    for d in /sys/class/net/*; do
        drv=$(readlink "$d/device/driver" 2>/dev/null) || continue
        [ "${drv##*/}" = "$1" ] && { echo "${d##*/}"; return; }
    done
}
e1000e_pci() {
    local n=0 d
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat $d/vendor):$(cat $d/device)" = 0x8086:0x10d3 ] && n=$((n + 1))
    done
    echo $n
}
if [ "$(arg late_virtio 0)" = 1 ]; then
    sleep "$(arg late_s 5)"
    say "fo before-virtio pci=$(e1000e_pci) netdevs=$(dev_of e1000e | wc -w)"
    modprobe virtio_net || { fail "fo: modprobe virtio_net"; exit 1; }
fi
if [ "$(arg rescan 0)" = 1 ]; then
    # acpiphp.disable=1: no ACPI hot-plug, so the primary plugged at the
    # STANDBY negotiation is found by a rescan (and never ejected)
    n=0
    while [ "$(e1000e_pci)" = 0 ] && [ $n -lt 150 ]; do
        echo 1 > /sys/bus/pci/rescan
        sleep 0.2
        n=$((n + 1))
    done
fi
m=
n=0
while [ -z "$m" ] && [ $n -lt 300 ]; do
    for d in /sys/class/net/*; do
        ls -d "$d"/lower_* > /dev/null 2>&1 && m=${d##*/}
    done
    [ -n "$m" ] || sleep 0.1
    n=$((n + 1))
done
[ -n "$m" ] || { fail "fo: no failover master (STANDBY not negotiated?)"; exit 1; }
sb=
for l in /sys/class/net/$m/lower_*; do
    drv=$(readlink "$l/device/driver" 2>/dev/null)
    [ "${drv##*/}" = virtio_net ] && sb=${l##*/lower_}
done
ip addr add "$ip" dev "$m" && ip link set "$m" up || { fail "fo: ip"; exit 1; }
# Linux 6.1 gives net_failover's standby IPv6 of its own (DAD, MLD, router
# solicitations with backoff) and answers ARP for the master's address on it
# (arp_ignore=0): those frames leave through the standby with the VF's MAC and
# move the switch's entry for that MAC to the standby's port, where
# net_failover drops what arrives while the VF is primary (frames on the
# standby go to the standby alone), until the guest sends through the VF
# again: 2% to 45% of the stream lost in steady state, under both VMMs.
# dv.fo_quiet_standby=0 keeps the kernel's defaults.
if [ "$(arg fo_quiet_standby 1)" = 1 ] && [ -n "$sb" ]; then
    echo 1 > /proc/sys/net/ipv6/conf/$sb/disable_ipv6
    echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore
fi
say "fo up master=$m standby=$sb mac=$(cat /sys/class/net/$m/address)"
[ -x /bin/dv-udpecho ] && /bin/dv-udpecho "$port" &
(
    prev=x
    ticks=0
    garp=
    s=/sys/class/net
    while :; do
        vf=$(dev_of e1000e)
        if [ "${vf:-none}" != "$prev" ]; then
            say "fo vf=${vf:-none}"
            prev=${vf:-none}
            garp=
        fi
        # Once the VF is enslaved with carrier (net_failover then sends
        # through it), one gratuitous ARP through the master moves the
        # switch's entry for the MAC to the VF's port at once, instead of at
        # the guest's next frame: after boot and after the replug.
        if [ -z "$garp" ] && [ -n "$vf" ] && [ -e "$s/$m/lower_$vf" ] &&
           [ "$(cat $s/$vf/carrier 2>/dev/null)" = 1 ]; then
            garp=1
            arping -U -c 1 -I "$m" "${ip%/*}" > /dev/null 2>&1 &
            say "fo garp vf=$vf"
        fi
        ticks=$((ticks + 1))
        if [ $ticks -ge 4 ]; then
            ticks=0
            e=0
            [ -n "$vf" ] && [ -e "$s/$m/lower_$vf" ] && e=1
            say "fo stat vf=${vf:-none} enslaved=$e" \
                "vf_rx=$(cat $s/$vf/statistics/rx_packets 2>/dev/null || echo 0)" \
                "vf_tx=$(cat $s/$vf/statistics/tx_packets 2>/dev/null || echo 0)" \
                "sb_rx=$(cat $s/$sb/statistics/rx_packets) sb_tx=$(cat $s/$sb/statistics/tx_packets)"
        fi
        sleep 0.5
    done
) &
exit 0
"""


def initrd(directory, late_virtio=False):
    """The built initramfs plus the scenario, e1000e.ko and dv-udpecho;
    late_virtio: /etc/dv/modules without virtio_net (the guest loads it
    itself later)."""
    echo = os.path.join(directory, "dv-udpecho")
    if not os.path.exists(echo):
        subprocess.run(["gcc", "-static", "-O2", "-o", echo, UDPECHO_SRC], check=True,
                       timeout=120)
    files = {"modules/e1000e.ko": module("e1000e"),
             "bin/dv-udpecho": open(echo, "rb").read(),
             "scenarios/failover.sh": SCENARIO}
    if late_virtio:
        files["etc/dv/modules"] = "virtio_pci\n"
    path = os.path.join(directory, "initrd-fo%s.cpio" % ("-late" if late_virtio else ""))
    with open(ensure_initramfs(), "rb") as base, open(path, "wb") as out:
        out.write(base.read())
        out.write(newc(files))
    return path


@pytest.fixture(scope="module")
def net():
    """(BDF, MAC): the first e1000e on vfio-pci and its own MAC (read while
    L1's driver has it: the guest's net_failover pairs the VF with the
    standby by this permanent address); the second on L1's driver, bridged
    with the two taps, the bridge holding PEER_IP."""
    assert os.environ.get("DV_RIG") == "1", "only in the rig, where the test may rebind NICs"
    found = e1000e_nics()
    assert len(found) >= 2, "the rig's --iommu L1 has two e1000e joined to each other"
    for mod in ("vfio-pci", "e1000e", "bridge", "tun"):
        sh("modprobe", mod)

    bind(found[0], "e1000e")
    mac = open(f"/sys/class/net/{netdev(found[0])}/address").read().strip()
    bind(found[0], "vfio-pci")
    bind(found[1], "e1000e")
    peer = netdev(found[1])
    bridge_up(BRIDGE, peer, TAPS, PEER_IP)
    try:
        yield os.path.basename(found[0]), mac
    finally:
        bridge_down(BRIDGE, TAPS)


def vm(d, name, net, tap, rd, incoming=None, append=APPEND, more=()):
    """A VMM with the failover pair (and the options more); the guest runs
    the failover scenario, then dv-dirty (which never ends: the guest stays
    up)."""
    bdf, mac = net
    sock = os.path.join(d, name + ".qmp")
    extra = ["-qmp", f"unix:{sock},server,nowait", *more,
             "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
             "-device", f"virtio-net-pci,netdev=n0,mac={mac},id=net1,failover=on",
             "-device", f"vfio-pci,host={bdf},id=pnic,failover_pair_id=net1"]
    if incoming:
        extra += ["-incoming", incoming]
    g = Guest("vmm", d, name, run="failover,dirty", mem="256M", initrd_path=rd,
              extra_append=append, extra=extra)
    return g, sock


def vfio_group(bdf):
    return os.path.basename(os.readlink(f"/sys/bus/pci/devices/{bdf}/iommu_group"))


class CloseProbe(threading.Thread):
    """Asks the source (on a monitor of its own) for query-pci over and
    over while a migration runs, and after each answer looks whether the
    VMM still holds the VF's IOMMU group (/dev/vfio/N among its fds).  An
    answer without pnic given while the group was still held came while
    the ejected VF was being closed: the main loop answered meanwhile.
    The longest wait for an answer is the main loop's longest stall seen
    from QMP."""

    def __init__(self, sock, pid, group):
        super().__init__(daemon=True)
        self.sock, self.pid, self.node = sock, pid, f"/dev/vfio/{group}"
        self.samples = []  # (asked, answered, pnic on the bus, group held after)
        self.stopping = threading.Event()
        self.error = None

    def held(self):
        fds = f"/proc/{self.pid}/fd"
        for fd in os.listdir(fds):
            try:
                if os.readlink(os.path.join(fds, fd)) == self.node:
                    return True
            except OSError:
                pass  # closed meanwhile
        return False

    def run(self):
        try:
            with Qmp(self.sock) as q:
                while not self.stopping.is_set():
                    t0 = time.monotonic()
                    devices = [dev.get("qdev_id") for bus in q.ok("query-pci")
                               for dev in bus["devices"]]
                    t1 = time.monotonic()
                    self.samples.append((t0, t1, "pnic" in devices, self.held()))
                    time.sleep(0.02)
        except Exception as e:  # reported by stop()
            self.error = e

    def stop(self):
        self.stopping.set()
        self.join(30)
        assert not self.is_alive(), "the QMP probe did not end in 30 s"
        assert self.error is None, f"the QMP probe failed: {self.error!r}"
        gone = [s for s in self.samples if not s[2]]
        closing = [s for s in gone if s[3]]
        return {"qmp_answers": len(self.samples),
                "qmp_longest_ms": round(max(b - a for a, b, _, _ in self.samples) * 1000, 1),
                "answers_while_closing": len(closing),
                "closing_seen_s": round(closing[-1][1] - gone[0][0], 2) if closing else 0,
                "released_seen": any(not s[3] for s in gone)}


STAT = re.compile(r"^linux: fo stat vf=(\S+) enslaved=(\d) vf_rx=(\d+) vf_tx=(\d+) "
                  r"sb_rx=(\d+) sb_tx=(\d+)$", re.M)


def stats(g, after):
    return [dict(vf=v, enslaved=e == "1", vf_rx=int(r), vf_tx=int(t), sb_rx=int(sr),
                 sb_tx=int(st))
            for v, e, r, t, sr, st in STAT.findall(g.complete_lines()[after:])]


def vf_carries_traffic(g, after, stream, timeout=STEP):
    """Waits until the e1000e is a slave of the failover master and its
    receive and transmit counters rise between two stat lines while the
    stream runs; returns the last two lines."""
    deadline = time.time() + timeout
    while True:
        lines = stats(g, after)
        if len(lines) >= 2:
            a, b = lines[-2], lines[-1]
            if (b["enslaved"] and a["vf"] == b["vf"] and b["vf_rx"] > a["vf_rx"] + 10
                    and b["vf_tx"] > a["vf_tx"] + 10):
                return a, b
        assert g.vmm.proc.poll() is None, f"the VMM exited:\n{g.tail()}"
        assert time.time() < deadline, (
            f"the e1000e does not carry the stream: {lines[-2:]} "
            f"(echoes {stream.received()})\n{g.tail()}")
        time.sleep(0.3)


def boot(g, mac):
    g.ready(BOOT_TIMEOUT)
    up = g.wait_for(r"^linux: fo up master=(\S+) standby=(\S+) mac=(\S+)$", BOOT_TIMEOUT)
    assert not g.fails(), g.tail()
    assert up.group(3) == mac, up.group(0)
    g.wait_for(r"^linux: fo vf=(?!none)\S+$", BOOT_TIMEOUT)
    g.wait_for(r"^linux: seq 2 sum ", STEP)
    return up


def migration_statuses(q, last, timeout=STEP):
    statuses = []
    deadline = time.time() + timeout
    while not statuses or statuses[-1] != last:
        assert time.time() < deadline, f"no {last!r}: {statuses}"
        ev = q.wait_event("MIGRATION", max(1, deadline - time.time()))
        statuses.append(ev["data"]["status"])
        assert statuses[-1] not in ("failed",) or last == "failed", statuses
    return statuses


def save(name, data):
    data["interval_ms"] = INTERVAL_MS
    with open(os.path.join(BUILD, f"failover-linux-{name}.json"), "w") as f:
        json.dump(data, f, indent=1)
    print(f"\n{name}: {json.dumps(data)}", flush=True)


def test_no_standby_no_vf_until_virtio_net(net):
    """virtio_net not loaded: STANDBY is never negotiated, the guest sees no
    e1000e for dv.late_s seconds and the VMM has none on its bus; once the
    guest loads virtio_net, FAILOVER_NEGOTIATED and the e1000e arrives and
    is enslaved."""
    with tempfile.TemporaryDirectory() as d:
        g, sock = vm(d, "late", net, TAPS[0], initrd(d, late_virtio=True),
                     append=APPEND + " dv.late_virtio=1 dv.late_s=8")
        with g:
            g.ready(BOOT_TIMEOUT)
            with Qmp(sock) as q:
                devices = [dev.get("qdev_id") for bus in q.ok("query-pci")
                           for dev in bus["devices"]]
                assert "pnic" not in devices and "net1" in devices, devices
                before = g.wait_for(r"^linux: fo before-virtio pci=(\d+) netdevs=(\d+)$",
                                    STEP)
                print(before.group(0))
                assert before.group(1) == "0" and before.group(2) == "0", before.group(0)
                ev = q.wait_event("FAILOVER_NEGOTIATED", STEP)
                assert ev["data"] == {"device-id": "net1"}, ev
                g.wait_for(r"^linux: fo up ", STEP)
                vf = g.wait_for(r"^linux: fo vf=(?!none)(\S+)$", STEP).group(1)
                deadline = time.time() + STEP
                while not any(s["enslaved"] and s["vf"] == vf for s in stats(g, 0)):
                    assert time.time() < deadline, f"{vf} not enslaved\n{g.tail()}"
                    time.sleep(0.3)
                devices = [dev.get("qdev_id") for bus in q.ok("query-pci")
                           for dev in bus["devices"]]
                assert "pnic" in devices, devices
            assert not g.fails(), g.tail()


def test_failover_migration_keeps_the_stream(net):
    bdf, mac = net
    with tempfile.TemporaryDirectory() as d:
        rd = initrd(d)
        t0 = time.time()
        src, src_sock = vm(d, "src", net, TAPS[0], rd,
                           more=["-qmp", f"unix:{os.path.join(d, 'src-probe.qmp')},server,nowait",
                                 "-d", "stall"])
        with src:
            boot(src, mac)
            stream = outage.Stream(GUEST_IP, PORT, INTERVAL_MS).start()
            marks = {}
            try:
                assert stream.wait_received(20, STEP), (
                    f"no echoes from the guest in {STEP} s (sent {stream.sent})\n{src.tail()}")
                vf_before = vf_carries_traffic(src, 0, stream)[1]
                booted = time.time() - t0
                dst, dst_sock = vm(d, "dst", net, TAPS[1], rd, incoming=f"unix:{d}/mig.sock")
                with dst:
                    wait_for_path(dst_sock, 60)
                    probe = CloseProbe(os.path.join(d, "src-probe.qmp"), src.vmm.proc.pid,
                                       vfio_group(bdf))
                    with Qmp(src_sock) as qs, Qmp(dst_sock) as qd:
                        qs.ok("migrate-set-capabilities",
                              capabilities=[{"capability": "events", "state": True}])
                        before = stream.received()
                        src_mark = len(src.complete_lines())
                        t1 = time.time()
                        marks["migrate"] = time.monotonic()
                        probe.start()
                        qs.ok("migrate", uri=f"unix:{d}/mig.sock")
                        ev = qs.wait_event("UNPLUG_PRIMARY", STEP)
                        assert ev["data"] == {"device-id": "pnic"}, ev
                        statuses = migration_statuses(qs, "completed", 300)
                        marks["completed"] = time.monotonic()
                        migrate_s = time.time() - t1
                        qmp = probe.stop()
                        print(f"\nQMP during the migration: {qmp}", flush=True)
                        # the destination got the same BDF, so the source's
                        # close was over by then; while it ran (seconds in
                        # the rig: a bus reset, RAM unpinned) QMP answered
                        assert qmp["released_seen"], qmp
                        assert qmp["answers_while_closing"] > 0, (
                            f"no QMP answer while the ejected VF was being closed: {qmp}")
                        assert statuses[:3] == ["setup", "wait-unplug", "active"], statuses
                        info = qs.ok("query-migrate")
                        ev = qd.wait_event("FAILOVER_NEGOTIATED", STEP)
                        assert ev["data"] == {"device-id": "net1"}, ev
                        qd.wait_event("RESUME", STEP)
                    # the guest ejected the e1000e on the source...
                    assert re.search(r"^linux: fo vf=none$",
                                     src.complete_lines()[src_mark:] + dst.complete_lines(),
                                     re.M), src.tail()
                    # ...and gets it back on the destination, carrying the stream
                    dst.wait_for(r"^linux: fo vf=(?!none)\S+$", STEP)
                    marks["vf-back-seen"] = time.monotonic()
                    vf_after = vf_carries_traffic(dst, 0, stream)
                    assert stream.received() > before + 20, "the stream stopped at the migration"
                    last = max(int(x) for x in re.findall(r"^linux: seq (\d+) sum ",
                                                          src.text(), re.M))
                    dst.wait_for(rf"^linux: seq {last + 4} sum ", STEP)
                    result = stream.stop()
                    result.update(outage.phases(stream, marks))
                    data = (src.text() + dst.text()).encode()
                    check = dirtycheck.check(data.replace(b"linux: ", b"testos: "))
                    assert check.startswith("ok"), check
                    assert not dst.fails(), dst.tail()
                    save("completed", {
                        "outage": result, "boot_s": round(booted, 1),
                        "migrate_s": round(migrate_s, 1), "statuses": statuses,
                        "wait_unplug_ms": info.get("wait-unplug-time"),
                        "setup_ms": info.get("setup-time"),
                        "downtime_ms": info.get("downtime"),
                        "total_ms": info.get("total-time"), "qmp": qmp,
                        "vf_before": vf_before, "vf_after": vf_after[1]})
            finally:
                if not stream.stopping.is_set():
                    stream.stop(0)
        # whether a long QMP wait above was the source's main loop (-d stall)
        stalls = re.findall(r"-d stall: (.*)$", src.vmm.stderr_tail or "", re.M)
        print(f"\nsource's main loop stalls: {stalls or 'none of 200 ms or more'}", flush=True)


def test_cancel_at_unplug_keeps_the_vf(net):
    """migrate_cancel as soon as UNPLUG_PRIMARY comes: whether the guest had
    ejected the e1000e yet or not, the source's guest runs on with it
    (withdrawn request, or plugged straight back) and it carries the
    stream again."""
    bdf, mac = net
    with tempfile.TemporaryDirectory() as d:
        src, src_sock = vm(d, "src", net, TAPS[0], initrd(d))
        with src:
            boot_ok = src.ready(BOOT_TIMEOUT)
            src.wait_for(r"^linux: fo up ", BOOT_TIMEOUT)
            src.wait_for(r"^linux: fo vf=(?!none)\S+$", BOOT_TIMEOUT)
            stream = outage.Stream(GUEST_IP, PORT, INTERVAL_MS).start()
            try:
                assert stream.wait_received(20, STEP), f"no echoes\n{src.tail()}"
                vf_carries_traffic(src, 0, stream)
                with Qmp(src_sock) as q:
                    q.ok("migrate-set-capabilities",
                         capabilities=[{"capability": "events", "state": True}])
                    mark = len(src.complete_lines())
                    # slow: the cancel comes long before it could end
                    q.ok("migrate-set-parameters", **{"max-bandwidth": 1 << 20})
                    q.ok("migrate", uri="exec:cat > /dev/null")
                    q.wait_event("UNPLUG_PRIMARY", STEP)
                    status = q.ok("query-migrate")["status"]
                    q.ok("migrate_cancel")
                    statuses = migration_statuses(q, "cancelled", STEP)
                    # cancelled in setup or wait-unplug: nothing comes between
                    # cancelling and cancelled
                    assert status in ("setup", "wait-unplug"), status
                    assert statuses[-2:] == ["cancelling", "cancelled"], statuses
                    assert q.ok("query-status")["status"] == "running"
                    # a guest that ejected it first gets it back once its
                    # close and a fresh open (unpin, pin: seconds in the rig)
                    # are through
                    deadline = time.time() + STEP
                    while True:
                        devices = [dev.get("qdev_id") for bus in q.ok("query-pci")
                                   for dev in bus["devices"]]
                        if "pnic" in devices:
                            break
                        assert time.time() < deadline, f"pnic not back in {STEP} s: {devices}"
                        time.sleep(0.5)
                ejected = bool(re.search(r"^linux: fo vf=none$",
                                         src.complete_lines()[mark:], re.M))
                vf_carries_traffic(src, len(src.complete_lines()), stream)
                result = stream.stop()
                save("cancelled", {"outage": result, "status_at_cancel": status,
                                   "statuses": statuses, "guest_ejected": ejected})
            finally:
                if not stream.stopping.is_set():
                    stream.stop(0)
            assert boot_ok and not src.fails(), src.tail()


def pnic_back(q, timeout=STEP):
    """Waits until query-pci shows pnic on the source's bus again."""
    deadline = time.time() + timeout
    while True:
        devices = [dev.get("qdev_id") for bus in q.ok("query-pci") for dev in bus["devices"]]
        if "pnic" in devices:
            return
        assert time.time() < deadline, f"pnic not back in {timeout} s: {devices}"
        time.sleep(0.5)


@contextlib.contextmanager
def source_with_stream(net, d, rd, append=APPEND):
    """The source VMM booted with its e1000e, the peer's stream to the guest
    running and carried by the e1000e: (guest, QMP socket, stream).  The
    stream is stopped if the body did not stop it; the guest must not have
    failed."""
    src, src_sock = vm(d, "src", net, TAPS[0], rd, append=append)
    with src:
        boot(src, net[1])
        stream = outage.Stream(GUEST_IP, PORT, INTERVAL_MS).start()
        try:
            assert stream.wait_received(20, STEP), f"no echoes\n{src.tail()}"
            vf_carries_traffic(src, 0, stream)
            yield src, src_sock, stream
        finally:
            if not stream.stopping.is_set():
                stream.stop(0)
        assert not src.fails(), src.tail()


def test_destination_killed_in_each_phase_source_replugs(net):
    """The destination is killed while RAM is being sent (1 MiB/s), and
    then, with a second destination, at pre-switchover (the source's guest
    stopped, pause-before-switchover) before migrate-continue: each time
    the migration fails on the source, whose guest runs on and gets its
    e1000e back, which carries the stream again."""
    with tempfile.TemporaryDirectory() as d:
        rd = initrd(d)
        with source_with_stream(net, d, rd) as (src, src_sock, stream):
            with Qmp(src_sock) as qs:
                qs.ok("migrate-set-capabilities",
                      capabilities=[{"capability": "events", "state": True}])
                for phase in ("active", "pre-switchover"):
                    pause = phase == "pre-switchover"
                    qs.ok("migrate-set-capabilities", capabilities=[
                        {"capability": "pause-before-switchover", "state": pause}])
                    qs.ok("migrate-set-parameters",
                          **{"max-bandwidth": (128 << 20) if pause else (1 << 20)})
                    path = os.path.join(d, f"mig-{phase}.sock")
                    dst, dst_sock = vm(d, "dst-" + phase, net, TAPS[1], rd,
                                       incoming="unix:" + path)
                    with dst:
                        wait_for_path(dst_sock, 60)
                        wait_for_path(path, 60)
                        mark = len(src.complete_lines())
                        qs.ok("migrate", uri="unix:" + path)
                        try:
                            statuses = migration_statuses(qs, phase, 300)
                        except AssertionError as e:
                            raise AssertionError(f"{e}: {qs.ok('query-migrate')}") from e
                        dst.kill()
                        if pause:
                            qs.ok("migrate-continue", state="pre-switchover")
                        statuses += migration_statuses(qs, "failed", STEP)
                    print(f"\nkilled at {phase}: {statuses}", flush=True)
                    assert statuses[:3] == ["setup", "wait-unplug", "active"], statuses
                    assert qs.ok("query-status")["status"] == "running"
                    pnic_back(qs)
                    # the guest had ejected it (its line may come a moment
                    # after QMP shows pnic back: the guest's serial output
                    # lags), and runs on (dv-dirty's lines go on; a report
                    # of the VMM's threads if not)
                    src.wait_for(r"^linux: fo vf=none$", STEP, after=mark)
                    last = max(int(x) for x in re.findall(r"^linux: seq (\d+) sum ",
                                                          src.complete_lines(), re.M))
                    src.wait_for(rf"^linux: seq {last + 3} sum ", STEP)
                    vf_carries_traffic(src, len(src.complete_lines()), stream)
            result = stream.stop()
            save("dst-killed", {"outage": result})


def test_guest_that_never_ejects_cancel_keeps_the_vf(net):
    """acpiphp.disable=1: the guest handles no ACPI hot-plug (it finds the
    primary by a PCI rescan), so it never ejects it.  The migration stays
    in wait-unplug while the guest runs on with the e1000e carrying the
    stream; migrate_cancel ends it (cancelled), the e1000e stays and still
    carries the stream."""
    append = APPEND + " dv.rescan=1 acpiphp.disable=1"
    with tempfile.TemporaryDirectory() as d:
        with source_with_stream(net, d, initrd(d), append) as (src, src_sock, stream):
            with Qmp(src_sock) as q:
                q.ok("migrate-set-capabilities",
                     capabilities=[{"capability": "events", "state": True}])
                q.ok("migrate", uri="exec:cat > /dev/null")
                q.wait_event("UNPLUG_PRIMARY", STEP)
                statuses = migration_statuses(q, "wait-unplug", STEP)
                # the guest goes on with its VF while the migration waits
                vf_carries_traffic(src, len(src.complete_lines()), stream)
                assert q.ok("query-migrate")["status"] == "wait-unplug"
                q.ok("migrate_cancel")
                statuses += migration_statuses(q, "cancelled", STEP)
                assert statuses == ["setup", "wait-unplug", "cancelling", "cancelled"], \
                    statuses
                assert q.ok("query-status")["status"] == "running"
                devices = [dev.get("qdev_id") for bus in q.ok("query-pci")
                           for dev in bus["devices"]]
                assert "pnic" in devices, devices
            assert not re.search(r"^linux: fo vf=none$", src.complete_lines(), re.M), \
                "the guest lost its e1000e"
            vf_carries_traffic(src, len(src.complete_lines()), stream)
            save("never-ejects", {"outage": stream.stop(), "statuses": statuses})
