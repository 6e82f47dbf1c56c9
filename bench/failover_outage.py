#!/usr/bin/python3
"""The guest's network outage across a migration with a passthrough NIC
(issue 16's target), this VMM beside Debian's QEMU 7.2, in the rig's
--iommu L1 (it needs an IOMMU and a NIC to pass; never on a real host,
where it would rebind the host's NICs).

One L1, the same L2 Linux guest (tests/guest/linux) and the same VF (L1's
first e1000e on vfio-pci) for every scenario:

    dv-auto      this VMM on pc: virtio-net failover=on + vfio-pci
                 failover_pair_id (the guest's net_failover), `migrate`
    dv-manual    this VMM on pc: the guest bonds the VF and virtio-net
                 (active-backup); tools/dv-migrate-passthrough (device_del,
                 migrate, device_add on the destination)
    qemu-auto    Debian QEMU 7.2 with its failover on q35 (-M q35, the VF
                 and the virtio-net each on a pcie-root-port)
    qemu-auto-pciehp  the same with the root ports' native PCIe hot-plug
                 (ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off) instead
                 of 7.2's default ACPI hot-plug
    qemu-manual  Debian QEMU 7.2 on pc, the bond guest and the same script

L1's other e1000e (the VF's only hub peer) and both VMMs' taps are ports of
one bridge holding 198.18.0.1; bench/outage.py streams UDP (10 ms apart)
to the guest's dv-udpecho from before the migration until the VF carries
the stream again on the destination.  Per run: datagrams lost, the longest
gap between echoes and where it fell, and the phases:

    wait-unplug  the source asks the guest to eject the VF until it has
                 (auto: the MIGRATION events wait-unplug -> active; manual:
                 device_del -> DEVICE_DELETED)
    pre-copy     RAM pre-copy until completed (query-migrate's total-time
                 less wait-unplug), of which downtime (query-migrate's)
    replug       the destination's guest runs (RESUME; manual: the
                 script's device_add) until the VF carries the stream to
                 stay (the peer's e1000e counts echoes from it again, and
                 no 0.5 s after without, the stream going to a standby's
                 tap: Ports.carrying)

    python3 bench/failover_outage.py [--runs N] [--only dv-auto,...]
        [--json FILE] [--vmm NAME=PATH ...]

prints one markdown table (render()), --json writes every run's figures.
The stream starts once the guest's VF has carrier and its gratuitous ARP
(failover=on), and "before" (the rig's own loss) counts from the moment
the VF carries it: what is lost until then ("bring-up", net_failover
dropping what still arrives on the standby while the VF's link comes up)
is the guest's boot, not a steady state (until 2026-12-07 it was counted
in "before", 26-29% for this VMM, whose VF comes up later in the boot
than QEMU's: it plugs the primary from its main loop, QEMU in the vCPU's
feature write).  failover=on runs also keep, to tell where L1's CPUs
went before the migrate: "cpu" (each VMM's and the bench's CPU time per
thread and L1's /proc/stat every 0.5 s), "src_lines" (the guest's
`linux: fo` lines as read), "ports_before" (the bridge ports' counters
every 0.1 s until the destination starts) and "before_marks_s".
Inside the rig only (DV_RIG=1); bench/run.py starts the rig for it."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
FUNC = os.path.join(ROOT, "tests", "functional")
sys.path[:0] = [BENCH, FUNC]
import benchenv  # noqa: E402

outage = linuxguest = Qmp = Guest = sh = auto_test = bond_test = None


def load():
    """The test guests' helpers (they need pytest: /usr/bin/python3), only
    where the scenarios run."""
    global outage, linuxguest, Qmp, Guest, sh, auto_test, bond_test
    import outage
    import linuxguest
    from harness import Qmp
    from linuxguest import Guest, sh
    import test_failover_linux as auto_test
    import test_failover_manual as bond_test

TOOL = os.path.join(ROOT, "tools", "dv-migrate-passthrough")
PEER_IP, GUEST_IP, PORT = "198.18.0.1", "198.18.0.2", 7777
BOND_MAC = "52:54:00:12:34:56"
BRIDGE, TAPS = "dvobr0", ("dvotap0", "dvotap1")
INTERVAL_MS = 10.0
BOOT_TIMEOUT, STEP = 300, 120
APPEND = (f"dv.ip={GUEST_IP}/24 dv.wss_mib=8 dv.mibps=2 dv.period_ms=500 "
          f"dv.echo_port={PORT}")
SCENARIOS = ("dv-auto", "qemu-auto", "qemu-auto-pciehp", "dv-manual", "qemu-manual")
LABELS = {"dv-auto": "this VMM, failover=on, pc",
          "qemu-auto": "QEMU 7.2, failover=on, q35",
          "qemu-auto-pciehp": "QEMU 7.2, failover=on, q35, native PCIe hot-plug",
          "dv-manual": "this VMM, bond + script, pc",
          "qemu-manual": "QEMU 7.2, bond + script, pc"}


# The L1 QEMU arguments for a third e1000e on the rig's hub with the first
# one's MAC (QEMU's default for the first NIC without mac=): the source's VF
# and the destination's are then two NICs, as on two hosts.  QEMU keeps an
# ejected failover primary open on the source (to plug it back on failure),
# so its destination cannot open the same BDF in one L1; this VMM closes it.
RIG_ARGS = ["--qemu-arg", "-device", "--qemu-arg", "pcie-root-port,id=rigport2,chassis=3",
            "--qemu-arg", "-netdev", "--qemu-arg", "hubport,id=rignic2,hubid=0",
            "--qemu-arg", "-device",
            "--qemu-arg", "e1000e,netdev=rignic2,bus=rigport2,mac=52:54:00:12:34:56"]


class Net:
    """The VFs on vfio-pci (bdf for the source, bdf_dst for the
    destination: two NICs with one MAC where L1 has three e1000e, else the
    same one), that MAC, and the bridge with the peer e1000e and the taps."""

    def __enter__(self):
        assert os.environ.get("DV_RIG") == "1", "rig only: this rebinds NICs"
        found = auto_test.e1000e_nics()
        assert len(found) >= 2, "no --iommu L1 (two e1000e joined to each other)"
        for mod in ("vfio-pci", "e1000e", "bridge", "tun"):
            sh("modprobe", mod)
        macs = {}
        for dev in found[:3]:
            auto_test.bind(dev, "e1000e")
            macs[dev] = open(f"/sys/class/net/{auto_test.netdev(dev)}/address").read().strip()
        pair = [d for d in found[:3] if list(macs.values()).count(macs[d]) == 2]
        vfs = pair if len(found) >= 3 and len(pair) == 2 else [found[0], found[0]]
        peer = [d for d in found[:3] if d not in vfs][0]
        self.mac = macs[vfs[0]]
        for dev in vfs:
            auto_test.bind(dev, "vfio-pci")
        self.bdf, self.bdf_dst = os.path.basename(vfs[0]), os.path.basename(vfs[1])
        self.peer = auto_test.netdev(peer)
        auto_test.bridge_up(BRIDGE, self.peer, TAPS, PEER_IP)
        return self

    def __exit__(self, *exc):
        auto_test.bridge_down(BRIDGE, TAPS)


class Sampler(threading.Thread):
    """A daemon thread that calls sample() every `period` seconds until
    stop() and keeps [(monotonic, what sample() returned)]; a sample() of
    None keeps nothing."""

    period = 0.5

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self.stopping = threading.Event()

    def sample(self):
        raise NotImplementedError

    def run(self):
        while not self.stopping.is_set():
            got = self.sample()
            if got is not None:
                self.samples.append((time.monotonic(), got))
            self.stopping.wait(self.period)

    def stop(self):
        self.stopping.set()
        self.join(2)

    def rel(self, t0):
        """The samples with times in seconds from t0."""
        return [[round(t - t0, 2), v] for t, v in self.samples]


class Ports(Sampler):
    """Samples the packet counters of the peer's e1000e (frames from the VF)
    and of both taps every 10 ms: [(monotonic, {name_rx|name_tx: n})]."""

    period = 0.01

    def __init__(self, net):
        super().__init__()
        self.names = {"vf": net.peer, "tap0": TAPS[0], "tap1": TAPS[1]}

    def sample(self):
        out = {}
        for k, dev in self.names.items():
            for d in ("rx", "tx"):
                try:
                    with open(f"/sys/class/net/{dev}/statistics/{d}_packets") as f:
                        out[f"{k}_{d}"] = int(f.read())
                except OSError:
                    out[f"{k}_{d}"] = 0
        return out

    def flowing(self, key, after, rate=3, window=0.2):
        """The first time after `after` from which key rises by `rate` within
        `window` seconds (traffic, not a stray ARP), or None."""
        s = [(t, c[key]) for t, c in self.samples if t >= after]
        j = 0
        for i, (t, n) in enumerate(s):
            j = max(j, i)
            while j < len(s) and s[j][0] - t <= window:
                if s[j][1] - n >= rate:
                    return t
                j += 1
        return None

    def carrying(self, key, after, quiet=0.5, away=10):
        """The first time after `after` from which key kept rising (the VF
        carries the stream to stay): flowing() from the end of the last
        stretch of `quiet` seconds in which key did not rise while the
        bridge sent `away` frames or more to the taps (the stream went to a
        standby, where net_failover drops it once the VF is registered:
        the bridge's entry moved back by the guest's announce through the
        standby), or None.  A stall with nothing sent to the taps (the
        guest or the peer not scheduled in a loaded L1) is not the
        migration's and does not count."""
        start, rise, prev = after, None, None
        for t, c in self.samples:
            if t < after:
                continue
            n, taps = c[key], c["tap0_tx"] + c["tap1_tx"]
            if prev is None or n > prev:
                rise = (t, taps)
            elif t - rise[0] >= quiet and taps - rise[1] >= away:
                start = t
            prev = n
        return self.flowing(key, start)

    def stopped(self, key, before):
        """The last time before `before` that key rose."""
        s = [(t, c[key]) for t, c in self.samples if t <= before]
        for (t0, n0), (t1, n1) in zip(reversed(s[:-1]), reversed(s)):
            if n1 > n0:
                return t1
        return None

    def delta(self, key, t0, t1):
        """How much key rose between t0 and t1."""
        vals = [c[key] for t, c in self.samples if t0 <= t <= t1]
        return vals[-1] - vals[0] if vals else 0


class Cpu(Sampler):
    """Samples every 0.5 s the CPU time (utime + stime, in clock ticks) of
    named processes in L1, each thread's by its comm, and L1's /proc/stat
    cpu line: where L1's two CPUs went while the guest streamed.
    [(monotonic, {"l1": [user, nice, system, idle, ...],
                  name: {"total": ticks, comm: ticks, ...}})]"""

    def __init__(self, pids):
        super().__init__()
        self.pids = dict(pids)

    @staticmethod
    def ticks(path):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return None, None
        comm = text[text.index("(") + 1:text.rindex(")")]
        f = text[text.rindex(")") + 2:].split()
        return comm, int(f[11]) + int(f[12])

    def sample(self):
        out = {}
        with open("/proc/stat") as f:
            out["l1"] = [int(v) for v in f.readline().split()[1:]]
        for name, pid in list(self.pids.items()):
            per = {}
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                comm, n = self.ticks(f"/proc/{pid}/task/{tid}/stat")
                if comm is not None:
                    per[comm] = per.get(comm, 0) + n
            _, total = self.ticks(f"/proc/{pid}/stat")
            if total is not None:
                per["total"] = total
                out[name] = per
        return out


class Lines(Sampler):
    """The guest's `linux: fo ...` console lines (its failover watcher: the
    VF appearing, its gratuitous ARP once it has carrier, its counters),
    each with the monotonic time this thread first read it (0.1 s steps)."""

    period = 0.1

    def __init__(self, path, prefix="linux: fo "):
        super().__init__()
        self.path, self.prefix = path, prefix
        self.pos, self.part = 0, b""

    def run(self):
        while not self.stopping.is_set():
            now = time.monotonic()
            self.samples += [(now, line) for line in self.read_lines()]
            self.stopping.wait(self.period)

    def read_lines(self):
        """The whole lines with the prefix written since the last call."""
        try:
            if os.path.getsize(self.path) < self.pos:    # the guest booted again
                self.pos, self.part = 0, b""
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            data = b""
        self.pos += len(data)
        *done, self.part = (self.part + data).split(b"\n")
        lines = (raw.decode(errors="replace").strip("\r") for raw in done)
        return [line for line in lines if line.startswith(self.prefix)]


def mono(ev):
    """A QMP event's timestamp on time.monotonic()'s clock."""
    ts = ev["timestamp"]
    return ts["seconds"] + ts["microseconds"] / 1e6 - (time.time() - time.monotonic())


def binary_for(which, vmms):
    if which in vmms:
        linuxguest.BINARIES[which] = vmms[which]
    return which


def auto_vm(which, d, name, net, tap, rd, incoming=None, pciehp=False):
    sock = os.path.join(d, name + ".qmp")
    extra = ["-qmp", f"unix:{sock},server,nowait",
             "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no"]
    nic = f"virtio-net-pci,netdev=n0,mac={net.mac},id=net1,failover=on"
    vf = f"vfio-pci,host={net.bdf_dst if incoming else net.bdf},id=pnic,failover_pair_id=net1"
    if which == "peer":
        # QEMU 7.2 refuses a primary on a conventional PCI bus
        extra = ["-M", "q35",
                 "-device", "pcie-root-port,id=rp1,chassis=1",
                 "-device", "pcie-root-port,id=rp2,chassis=2"] + extra
        nic += ",bus=rp1"
        vf += ",bus=rp2"
        if pciehp:
            # the root ports' own hot-plug instead of 7.2's default ACPI one
            extra += ["-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]
    extra += ["-device", nic, "-device", vf]
    if incoming:
        extra += ["-incoming", incoming]
    g = Guest(which, d, name, run="failover,dirty", mem="256M", initrd_path=rd,
              extra_append=APPEND, extra=extra)
    return g, sock


def bond_vm(which, d, name, net, tap, rd, incoming=None):
    sock = os.path.join(d, name + ".qmp")
    extra = ["-qmp", f"unix:{sock},server,nowait",
             "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
             "-device", f"virtio-net-pci,netdev=n0,mac={BOND_MAC},id=net0"]
    if incoming:
        extra += ["-incoming", incoming]
    else:
        extra += ["-device", f"vfio-pci,host={net.bdf},id=pnic"]
    g = Guest(which, d, name, run="bond,dirty", mem="256M", initrd_path=rd,
              extra_append=APPEND + f" dv.bond_mac={BOND_MAC}", extra=extra)
    return g, sock


def pci_ids(buses):
    """Every device's qdev_id (or class) in a query-pci answer, bridges'
    buses included."""
    out = []
    for bus in buses:
        for dev in bus.get("devices", []):
            out.append(dev.get("qdev_id") or dev.get("class_info", {}).get("desc", "?"))
            br = dev.get("pci_bridge", {}).get("devices")
            if br:
                out += pci_ids([{"devices": br}])
    return out


def wait_vf_settled(ports, after, hold=3.0, timeout=STEP, settle=30.0):
    """Waits until the VF has carried the stream for `hold` seconds without
    a stall (Ports.carrying): its onset; at most `timeout` seconds for the
    first traffic on it and `settle` more from then, after which the latest
    onset seen (None: the VF never carried it)."""
    deadline = time.monotonic() + timeout
    t = None
    while time.monotonic() < deadline:
        t = ports.carrying("vf_rx", after)
        if t:
            if time.monotonic() - t >= hold:
                return t
            deadline = min(deadline, t + settle)
        time.sleep(0.25)
    return t


def wait_vf_traffic(ports, after, timeout=STEP):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = ports.flowing("vf_rx", after)
        if t:
            return t
        time.sleep(0.1)
    return None


def window_lost(stretches, first, last, sent=False):
    """Datagrams lost (with sent=True: (lost, sent)) in the stretches from
    mark `first` up to mark `last` (None: to the end)."""
    lost = total = 0
    inside = False
    for s in stretches:
        inside = inside or s["from"] == first
        if inside:
            lost, total = lost + s["lost"], total + s["sent"]
        if s["to"] == last:
            break
    return (lost, total) if sent else lost


# Where the datagrams were lost: the phases of a run, each from its mark to
# the next phase's (a mark missing from a run: the phase is left out).
PHASES = (("bring-up", "stream"),      # the stream's start until the VF first carries it
          ("before", "vf-up"),         # the VF carrying the stream, to migrate
          ("wait-unplug", "start"),    # migrate (device_del) until ejected
          ("pre-copy", "precopy"),     # RAM sent, the guest on its standby
          ("stopped", "src-stop"),     # the source's STOP to the destination's run
          ("replug", "dst-run"),       # the guest runs until the VF carries the stream
          ("after", "vf-carries"))     # to the end of the stream


# the phases outside the migration's window
OUTSIDE = ("bring-up", "before", "after")


def before_loss(r):
    """(lost, sent) before the migration once the VF carried the stream;
    for runs measured before the bring-up was split off (no "vf-up" mark),
    from the stream's start."""
    pl = r.get("phase_loss", {})
    if "bring-up" in pl and "before" in pl:
        return pl["before"][0], pl["before"][1]
    st = r["outage"]["stretches"][0]
    return st["lost"], st["sent"]


def phase_loss(stream, marks):
    """{phase: [lost, sent, late, late_lost]} of the datagrams sent in each
    phase (PHASES); late: sent in a catch-up burst, the peer stalled
    (outage.LATE_S)."""
    at = dict(marks, stream=stream.started)
    bounds = [(name, at[m]) for name, m in PHASES if m in at]
    out = {}
    for (name, t0), (_, t1) in zip(bounds, bounds[1:] + [("end", float("inf"))]):
        w = stream.window(t0, t1)
        out[name] = [w["lost"], w["sent"], w["late"], w["late_lost"]]
    return out


def loss_timeline(stream, t0, step=0.5):
    """Datagrams lost in each `step` seconds of the stream, from its start:
    [[seconds from t0 (the migrate), lost, sent, sent late], ...] with
    losses only."""
    out = []
    t = stream.started
    end = stream.send_times[stream.sent - 1] if stream.sent else t0
    while t < end:
        w = stream.window(t, t + step)
        if w["lost"]:
            out.append([round(t - t0, 2), w["lost"], w["sent"], w["late"]])
        t += step
    return out


def summarize(stream, ports, marks, switch, resume, replug_from, phase_marks=None):
    """The figures of one run (stream stopped).  phase_marks: the marks of
    PHASES (vf-up, start, precopy, src-stop, dst-run) by monotonic time."""
    vf_back = ports.carrying("vf_rx", replug_from)
    if vf_back:
        marks = dict(marks, **{"vf-carries": vf_back})
    res = stream.result()
    res.update(outage.phases(stream, marks))
    g = stream.gaps(1)
    out = {"lost": res["lost"], "sent": res["sent"],
           # the migration's own: from its first step until the VF carries
           # the stream again; and the rig's loss before it began
           "lost_window": window_lost(res["stretches"], "start", "vf-carries"),
           "baseline": window_lost(res["stretches"], "stream", "start", sent=True),
           "longest_gap_ms": res["longest_gap_ms"],
           "replug_s": round(vf_back - replug_from, 3) if vf_back else None,
           "marks_rel_s": {k: round(v - marks["start"], 3) for k, v in marks.items()},
           "outage": res}
    if phase_marks:
        pm = dict(phase_marks, **({"vf-carries": vf_back} if vf_back else {}))
        out["phase_loss"] = phase_loss(stream, pm)
        out["loss_timeline"] = loss_timeline(stream, marks["start"])
    if vf_back:
        out["marks_rel_s"]["vf-carries"] = round(vf_back - marks["start"], 3)
    if g:
        g0, g1 = g[0]
        out["gap_from_switch_s"] = [round(g0 - switch, 3), round(g1 - switch, 3)]
        # what each port did during the gap: did the peer's frames go to the
        # source's tap (the bridge still learning the old port)?
        out["gap_ports"] = {k: ports.delta(k, g0, g1)
                            for k in ("vf_rx", "vf_tx", "tap0_rx", "tap0_tx",
                                      "tap1_rx", "tap1_tx")}
    return out


def run_auto(which, net, d, vmms, pciehp=False):
    which = binary_for(which, vmms)
    rd = auto_test.initrd(d)
    src, src_sock = auto_vm(which, d, "src", net, TAPS[0], rd, pciehp=pciehp)
    with src:
        lines = Lines(src.log)
        lines.start()
        try:
            auto_test.boot(src, net.mac)
            # the VF with carrier and the guest's gratuitous ARP through it:
            # the stream then starts on the VF, not in its bring-up (the
            # bring-up phase still counts what is lost before it carries)
            src.wait_for(r"^linux: fo garp vf=\S+$", STEP)
        except BaseException:
            lines.stop()
            raise
        ports = Ports(net)
        ports.start()
        cpu = Cpu({"src": src.vmm.proc.pid, "bench": os.getpid()})
        cpu.start()
        stream = outage.Stream(GUEST_IP, PORT, INTERVAL_MS).start()
        try:
            assert stream.wait_received(20, STEP), f"no echoes\n{src.tail()}"
            pre = {"echoes": time.monotonic()}
            vf_up = wait_vf_traffic(ports, stream.started)
            assert vf_up, "the VF carries nothing"
            pre["vf-up"] = vf_up
            time.sleep(2)
            pre["dst-spawn"] = time.monotonic()
            dst, dst_sock = auto_vm(which, d, "dst", net, TAPS[1], rd,
                                    incoming=f"unix:{d}/mig.sock", pciehp=pciehp)
            cpu.pids["dst"] = dst.vmm.proc.pid
            with dst:
                dst.qmp(dst_sock, 90).close()   # up, or its stderr
                pre["dst-up"] = time.monotonic()
                with Qmp(src_sock) as qs, Qmp(dst_sock) as qd:
                    qs.ok("migrate-set-capabilities",
                          capabilities=[{"capability": "events", "state": True}])
                    marks = {"start": time.monotonic()}
                    qs.ok("migrate", uri=f"unix:{d}/mig.sock")
                    deadline = time.time() + 300
                    while "completed" not in marks:
                        assert time.time() < deadline, f"no completed: {marks}"
                        ev = qs.wait_event("MIGRATION", max(1, deadline - time.time()))
                        st = ev["data"]["status"]
                        assert st not in ("failed", "cancelled"), ev
                        marks.setdefault(st, mono(ev))
                    info = qs.ok("query-migrate")
                    settle = time.monotonic() + 2
                    while not info.get("total-time") and time.monotonic() < settle:
                        # QEMU 7.2 says completed a moment before it has set
                        # total-time and downtime (0 until then)
                        time.sleep(0.05)
                        info = qs.ok("query-migrate")
                    try:
                        marks["src-stop"] = mono(qs.wait_event("STOP", 10))
                    except TimeoutError:
                        marks["src-stop"] = marks["completed"] - info.get("downtime", 0) / 1e3
                    resume = mono(qd.wait_event("RESUME", STEP))
                    marks["dst-resume"] = resume
                    back = wait_vf_settled(ports, resume)
                    assert back, (f"the VF carries nothing on the destination (its PCI "
                                  f"devices: {pci_ids(qd.ok('query-pci'))})\n{dst.tail(8)}")
                stream.stop()
                ports.stop()
                cpu.stop()
                lines.stop()
                out = summarize(stream, ports, marks, marks["src-stop"], resume, resume,
                                phase_marks={"vf-up": vf_up, "start": marks["start"],
                                             "precopy": marks.get("active", marks["start"]),
                                             "src-stop": marks["src-stop"],
                                             "dst-run": resume})
                wu = marks["active"] - marks["wait-unplug"] if "wait-unplug" in marks else 0
                out.update({
                    "wait_unplug_s": round(wu, 3),
                    "precopy_s": round(marks["completed"] - marks["active"], 3),
                    "downtime_ms": info.get("downtime"),
                    "total_ms": info.get("total-time"),
                    "qmp_wait_unplug_ms": info.get("wait-unplug-time"),
                    # the guest's own stop: the source's STOP to the destination's RESUME
                    "stopped_s": round(resume - marks["src-stop"], 3),
                    # before the migrate, from it: echoes back, the VF
                    # carrying them, the destination started and answering
                    "before_marks_s": {k: round(v - marks["start"], 3) for k, v in
                                       dict(pre, stream=stream.started).items()},
                    "cpu": cpu.rel(marks["start"]),
                    "src_lines": lines.rel(marks["start"]),
                    "ports_before": [[round(t - marks["start"], 2), c] for t, c in
                                     ports.samples[::10] if t < pre["dst-spawn"]]})
                return out
        finally:
            if not stream.stopping.is_set():
                stream.stop(0)
            ports.stop()
            cpu.stop()
            lines.stop()


def run_manual(which, net, d, vmms):
    which = binary_for(which, vmms)
    rd = bond_test.initrd(d)
    src, src_sock = bond_vm(which, d, "src", net, TAPS[0], rd)
    with src:
        bond_test.boot_with_bond(src)
        ports = Ports(net)
        ports.start()
        stream = outage.Stream(GUEST_IP, PORT, INTERVAL_MS).start()
        try:
            assert stream.wait_received(20, STEP), f"no echoes\n{src.tail()}"
            vf_up = wait_vf_traffic(ports, stream.started)
            assert vf_up, "the VF carries nothing"
            time.sleep(2)
            dst, dst_sock = bond_vm(which, d, "dst", net, TAPS[1], rd,
                                    incoming=f"unix:{d}/mig.sock")
            with dst:
                dst.qmp(dst_sock, 90).close()   # up, or its stderr
                p = subprocess.run(["/usr/bin/python3", TOOL, "--src", src_sock,
                                    "--dst", dst_sock, "--uri", f"unix:{d}/mig.sock",
                                    "--host", net.bdf_dst, "--json"],
                                   capture_output=True, text=True, timeout=600)
                assert p.returncode == 0, f"{p.stdout}{p.stderr}\n{dst.tail()}"
                script = json.loads(p.stdout.strip().splitlines()[-1])
                marks = dict(script["marks"])
                back = wait_vf_settled(ports, marks["running"])
                assert back, f"the VF carries nothing on the destination\n{dst.tail()}"
                stream.stop()
                ports.stop()
                ph = script["phases"]
                stop = marks["migrated"] - ph["qmp-downtime"]
                out = summarize(stream, ports, marks, stop, marks["running"], marks["running"],
                                phase_marks={"vf-up": vf_up, "start": marks["start"],
                                             "precopy": marks["unplugged"],
                                             "src-stop": stop,
                                             "dst-run": marks["migrated"]})
                out.update({
                    "wait_unplug_s": ph["unplug"],
                    "precopy_s": ph["qmp-total-time"],
                    "downtime_ms": round(ph["qmp-downtime"] * 1000),
                    "total_ms": round(ph["qmp-total-time"] * 1000),
                    "device_add_s": ph["replug"]})
                return out
        finally:
            if not stream.stopping.is_set():
                stream.stop(0)
            ports.stop()


RUNNERS = {"dv-auto": (run_auto, "vmm"), "qemu-auto": (run_auto, "peer"),
           "qemu-auto-pciehp": (lambda *a: run_auto(*a, pciehp=True), "peer"),
           "dv-manual": (run_manual, "vmm"), "qemu-manual": (run_manual, "peer")}


def measure(runs, only, vmms, log=print, save=None):
    """{scenario: [run figures or {"error": text}]} over `runs` rounds, the
    scenarios taking turns."""
    load()
    res = {s: [] for s in only}
    with Net() as net:
        log(f"outage: VF {net.bdf} -> {net.bdf_dst} (MAC {net.mac}), peer {net.peer}",
            flush=True)
        for r in range(runs):
            for s in only:
                fn, which = RUNNERS[s]
                which = s.split("-")[0] if s.split("-")[0] in vmms else which
                t0 = time.time()
                with tempfile.TemporaryDirectory(dir="/tmp") as d:
                    try:
                        out = fn(which, net, d, vmms)
                    except (AssertionError, Exception) as e:  # a failed run is a result too
                        text = str(e)
                        out = {"error": text if len(text) < 2000
                               else text[:600] + "\n...\n" + text[-1400:]}
                out["run_s"] = round(time.time() - t0, 1)
                res[s].append(out)
                if save:
                    save(res)   # so far: a run cut short still leaves its figures
                log(f"outage: run {r + 1} {s}: " + json.dumps(
                    {k: v for k, v in out.items() if k != "outage"}), flush=True)
    return res


def lost_window(r):
    """lost_window, or for runs measured before it existed, everything lost
    from the migration's start to the end of the stream (3 s more)."""
    if "lost_window" in r:
        return r["lost_window"]
    return window_lost(r["outage"]["stretches"], "start", None)


def window_longest(r):
    """(length, start) in seconds from the migrate of the longest gap between
    echoes inside the migration's window (from the migrate until the VF
    carries the stream again), a gap that crosses its ends clipped to them:
    of the run's five longest gaps (outage.phases), so a window whose own
    longest is not among them reads low (never seen: the window holds the
    run's worst); (0.0, None) when none falls in it, None without the marks."""
    rel = r.get("marks_rel_s", {})
    end = rel.get("vf-carries")
    st = r.get("outage", {}).get("stretches", [])
    if end is None or not st:
        return None
    at = dict(rel, stream=-st[0]["seconds"])
    best = (0.0, None)
    for g in r["outage"].get("gaps", []):
        if g["after"] not in at:
            continue
        g0 = at[g["after"]] + g["starts_s_after_mark"]
        g1 = g0 + g["ms"] / 1000.0
        length = min(g1, end) - max(g0, 0.0)
        if length > best[0]:
            best = (length, max(g0, 0.0))
    return best


def window_gap_ms(r):
    """window_longest's length in ms, or None without the marks."""
    w = window_longest(r)
    return None if w is None else round(w[0] * 1000.0, 1)


def window_gap(r):
    """(ms, start from the switch-over in s) of window_longest's gap, or
    None (no switch-over mark, no gap in the window)."""
    rel = r.get("marks_rel_s", {})
    if "src-stop" in rel:
        switch = rel["src-stop"]
    elif "migrated" in rel and r.get("downtime_ms") is not None:
        switch = rel["migrated"] - r["downtime_ms"] / 1000.0
    else:
        return None
    w = window_longest(r)
    if w is None or w[1] is None:
        return None
    return (round(w[0] * 1000.0, 1), round(w[1] - switch, 3))


def span(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    lo, hi = fmt(min(vals)), fmt(max(vals))
    return lo if lo == hi else f"{lo} to {hi}"


def qmp_times_set(r):
    """Whether the run's query-migrate times are real: QEMU 7.2 answers
    "completed" with total-time and downtime 0 for a moment (runs before
    the bench asked again show 0 ms; the script's pre-copy is total-time)."""
    return r.get("total_ms") != 0


def render(res):
    """The table: one column per scenario, ranges over its good runs."""
    cols = [s for s in SCENARIOS if s in res] + [s for s in res if s not in SCENARIOS]
    ok = {s: [r for r in res[s] if "error" not in r] for s in cols}
    sec = lambda v: f"{v:.2f} s"  # noqa: E731
    rows = [
        ("runs (good / all)", lambda s: f"{len(ok[s])} / {len(res[s])}"),
        ("datagrams lost, migrate until the VF carries the stream again", lambda s: span(
            [lost_window(r) for r in ok[s]], str)),
        ("lost at the stream's start, until the VF first carries it", lambda s: span(
            [r["phase_loss"]["bring-up"][0] for r in ok[s]
             if "bring-up" in r.get("phase_loss", {})], str)),
        ("lost before the migration, the VF carrying (the rig's own loss)", lambda s: span(
            [100.0 * before_loss(r)[0] / max(1, before_loss(r)[1]) for r in ok[s]],
            lambda v: f"{v:.0f}%")),
    ] + [
        (f"lost in {name}", lambda s, name=name: span(
            [r["phase_loss"][name][0] for r in ok[s] if name in r.get("phase_loss", {})],
            str))
        for name, _ in PHASES if name not in OUTSIDE
    ] + [
        ("of the lost, sent late (the peer in L1 stalled > 50 ms)", lambda s: span(
            [sum(v[3] for p, v in r["phase_loss"].items() if p not in OUTSIDE)
             for r in ok[s] if len(r.get("phase_loss", {}).get("before", [])) > 3], str)),
        ("longest gap, migrate until the VF carries the stream again", lambda s: span(
            [window_gap_ms(r) for r in ok[s]], lambda v: f"{v:.0f} ms")),
        ("longest gap over the whole stream (before the migrate too)", lambda s: span(
            [r["longest_gap_ms"] for r in ok[s]], lambda v: f"{v:.0f} ms")),
        ("that gap starts, from the switch-over", lambda s: span(
            [window_gap(r)[1] for r in ok[s] if window_gap(r)], sec)),
        ("wait-unplug (guest ejects the VF)", lambda s: span(
            [r["wait_unplug_s"] for r in ok[s]], sec)),
        ("pre-copy and switch-over (migrate's active to completed)", lambda s: span(
            [r["precopy_s"] for r in ok[s] if qmp_times_set(r) or r["precopy_s"]], sec)),
        ("downtime (query-migrate)", lambda s: span(
            [r["downtime_ms"] for r in ok[s]
             if r.get("downtime_ms") is not None and qmp_times_set(r)],
            lambda v: f"{v:.0f} ms")),
        ("guest stopped (source STOP to destination RESUME)", lambda s: span(
            [r["stopped_s"] for r in ok[s] if "stopped_s" in r], sec)),
        ("replug (guest runs on the destination to the VF carrying the stream)",
         lambda s: span([r["replug_s"] for r in ok[s]], sec)),
    ]
    head = "| | " + " | ".join(LABELS.get(s, s) for s in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for name, fn in rows:
        lines.append(f"| {name} | " + " | ".join(fn(s) for s in cols) + " |")
    errors = [f"- {s} run {i + 1}: {r['error'].strip().splitlines()[0][:200]}"
              for s in cols for i, r in enumerate(res[s]) if "error" in r]
    if errors:
        lines += ["", "Failed runs:", ""] + errors
    return "\n".join(lines)


def rig_caption(runs):
    return (f"_Measured: {benchenv.place()}; {runs} round(s), the scenarios taking "
            f"turns; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}._")


def run_anywhere(runs, log=print):
    """For bench/run.py: every scenario `runs` times; in the rig's --iommu
    L1 directly, elsewhere through one rig run (tests/rig/rig.sh --iommu).
    {"caption", "interval_ms", "runs"} or {"skipped": why}."""
    if os.environ.get("DV_RIG") == "1":
        res = measure(runs, SCENARIOS, {}, log)
        return {"caption": rig_caption(runs), "interval_ms": INTERVAL_MS, "runs": res}
    if not os.path.exists(os.path.join(ROOT, "build", "rig", "kernel", "vmlinuz")):
        return {"skipped": "no rig kernel cache (bash tests/rig/rig.sh --build-only)"}
    out = os.path.join("build", "bench", "outage.json")
    os.makedirs(os.path.join(ROOT, "build", "bench"), exist_ok=True)
    if os.path.exists(os.path.join(ROOT, out)):
        os.unlink(os.path.join(ROOT, out))
    budget = 300 + runs * len(SCENARIOS) * 240
    cmd = ["bash", os.path.join(ROOT, "tests", "rig", "rig.sh"), "--iommu", "--share", ROOT,
           "--timeout", str(budget)] + RIG_ARGS + ["--",
           f"/usr/bin/python3 bench/failover_outage.py --runs {runs} --json {out}"]
    p = subprocess.run(cmd, cwd=ROOT, timeout=budget + 300)
    failed = f"the rig run failed (exit {p.returncode}; see build/rig/runs/)"
    if not os.path.exists(os.path.join(ROOT, out)):
        return {"skipped": failed}
    with open(os.path.join(ROOT, out)) as f:
        res = json.load(f)       # written after every run: what finished is kept
    if p.returncode != 0:
        if not any(res.get("runs", {}).values()):
            return {"skipped": failed}
        done = sum(len(v) for v in res["runs"].values())
        res["caption"] = (res["caption"].rstrip("._") + f"; {failed} "
                          f"after {done} of {runs * len(SCENARIOS)} runs: those are shown._")
    return res


def render_section(r):
    """docs/benchmarks.md's outage block: the rig's caption and the table."""
    if "skipped" in r:
        return f"_Not measured: {r['skipped']}._"
    return (r.get("caption", "_Measured in the rig._") + "\n\n" + render(r["runs"]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--only", default=",".join(SCENARIOS),
                   help="comma-separated scenarios (" + ", ".join(SCENARIOS) + ")")
    p.add_argument("--json", help="write every run's figures here")
    p.add_argument("--vmm", action="append", default=[],
                   help="NAME=PATH: a further binary (scenario NAME-auto / NAME-manual)")
    args = p.parse_args(argv)
    vmms = dict(v.split("=", 1) for v in args.vmm)
    only = [s for s in args.only.split(",") if s]
    for s in only:
        kind = s.split("-")[-1]
        if s not in RUNNERS and (s.split("-")[0] not in vmms or kind not in ("auto", "manual")):
            p.error(f"unknown scenario {s!r}")
        if s not in RUNNERS:
            RUNNERS[s] = (run_auto if kind == "auto" else run_manual, s.split("-")[0])
            LABELS[s] = f"{s.split('-')[0]}, " + ("failover=on, pc" if kind == "auto"
                                                  else "bond + script, pc")
    caption = rig_caption(args.runs)

    def save(res):
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"caption": caption, "interval_ms": INTERVAL_MS, "runs": res}, f,
                          indent=1)
    res = measure(args.runs, only, vmms, save=save)
    save(res)
    print(render(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
