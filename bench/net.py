#!/usr/bin/python3
"""virtio-net on a tap (issue 13): testos's net-blast packets per second
both ways, and a stock Linux guest's iperf3 TCP throughput both ways, under
this VMM and Debian's QEMU on the same tap, guest and command line, with
vhost=off on both and (where /dev/vhost-net exists) vhost=on on both.
Used by bench/run.py; runs on its own too (prints the table).

The tap lives in a network namespace made here (the host end 198.18.0.1/24,
the guest 198.18.0.2), so nothing leaves the machine.  The host end of
net-blast is bench/netblast (C: it sends 60-byte UDP frames to the guest's
MAC as fast as the tap takes them and counts the guest's frames on a packet
socket); testos counts what its device took and what it received.  The
Linux guest (tests/guest/linux, scenario `net`) serves iperf3; the host's
iperf3 client runs IPERF_SECONDS each way.  A stock kernel does not boot on
PVM, so the iperf3 rows are measured only where KVM is hardware-like (the
nested rig, whose timings measure TCG more than a VMM)."""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchenv  # noqa: E402

ROOT = os.path.dirname(HERE)
TESTOS = os.path.join(ROOT, "build", "tests", "guest", "testos")
NETBLAST = os.path.join(ROOT, "build", "bench", "netblast")
PEERS = {"directvisor": benchenv.VMM, "qemu": benchenv.QEMU}
TAP = "dvtap0"
HOST_IP, GUEST_IP, PROBE_IP = "198.18.0.1", "198.18.0.2", "198.18.0.3"
GUEST_MAC = "52:54:00:12:34:56"
PROBE_MAC = "02:00:00:00:00:03"
BLAST_SECONDS = 3
IPERF_SECONDS = 5
IPERF_BOOTS = int(os.environ.get("BENCH_IPERF_BOOTS", "3"))
SIGNIFICANT = 0.05      # a rank test's p below this tells the VMMs apart


def vhost_settings():
    if not os.path.exists("/dev/vhost-net") and shutil.which("modprobe"):   # the rig's L1 has the module, unloaded
        subprocess.run(["modprobe", "vhost_net"], capture_output=True, timeout=60)
    return ["off", "on"] if os.path.exists("/dev/vhost-net") else ["off"]


def linux_missing():
    """Why the Linux guest's iperf3 rows cannot be measured here, or None."""
    if benchenv.place_short() == "PVM":
        return "a stock Linux kernel does not boot on PVM"
    if not os.path.exists(os.path.join(ROOT, "build", "rig", "kernel", "vmlinuz")):
        return "no build/rig/kernel (bash tests/rig/rig.sh --build-only)"
    if not shutil.which("iperf3"):
        return "no iperf3 on the host (scripts/install-deps.sh)"
    return None


class Netns:
    """A network namespace with the tap (MTU 1500, the host end up)."""

    def __enter__(self):
        self.name = f"dvbench-{os.getpid()}"
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        for c in (["ip", "netns", "add", self.name],
                  ["ip", "-n", self.name, "link", "set", "lo", "up"],
                  ["ip", "-n", self.name, "tuntap", "add", "dev", TAP, "mode", "tap"],
                  ["ip", "-n", self.name, "link", "set", TAP, "up"],
                  ["ip", "-n", self.name, "addr", "add", f"{HOST_IP}/24", "dev", TAP]):
            subprocess.run(c, check=True, capture_output=True, timeout=30)
        return self

    def run(self, cmd, timeout):
        return subprocess.run(["ip", "netns", "exec", self.name] + cmd,
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, cmd, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name] + cmd,
                                stdin=subprocess.DEVNULL, **kw)

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)


def nic_args(vhost):
    return ["-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no,vhost={vhost}",
            "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC}"]


def wait_line(path, pattern, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path, "rb") as f:
            m = re.search(pattern, f.read().decode(errors="replace"), re.M)
        if m:
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(path, "rb") as f:
        tail = f.read().decode(errors="replace")[-1500:]
    raise RuntimeError(f"no {pattern!r} (exit {proc.poll()}): {tail}")


def blast_once(ns, binary, vhost, workdir):
    """net-blast twice: with netblast sending too (both ways at once), then
    with netblast only counting (the guest's sending alone)."""
    both = blast_run(ns, binary, vhost, workdir, send=True)
    alone = blast_run(ns, binary, vhost, workdir, send=False)
    return {**both, "tx_alone_pps": alone["tx_pps"],
            "host_got_alone_pps": alone["host_got_pps"]}


def blast_run(ns, binary, vhost, workdir, send):
    """One net-blast run: testos's figures and what netblast saw."""
    log = os.path.join(workdir, "blast.log")
    counter = None
    if not send:
        # counting from before the VMM starts: every frame of the guest's
        # window is seen (stopped once testos has printed its figures)
        counter = ns.popen([NETBLAST, TAP, GUEST_MAC, GUEST_IP, "120", "60", "--no-send"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.2)
    with open(log, "wb") as out:
        proc = ns.popen([binary, "-enable-kvm", *benchenv.cpu_args(binary), "-m", "128M",
                         "-display", "none", "-nodefaults", "-serial", "stdio",
                         "-no-reboot", "-kernel", TESTOS, "-append",
                         f"testos.run=net-blast testos.seconds={BLAST_SECONDS} "
                         f"testos.ip={GUEST_IP} testos.dst_ip={PROBE_IP} "
                         f"testos.dst_mac={PROBE_MAC}", *nic_args(vhost)],
                        stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_line(log, r"testos: net-blast up ", proc, 60)
        if send:
            host = ns.run([NETBLAST, TAP, GUEST_MAC, GUEST_IP, str(BLAST_SECONDS + 1)], 60)
            host_out = host.stdout + host.stderr
        m = wait_line(log, r"net-blast frame=\d+ seconds=\d+ tx=\d+ rx=\d+ "
                      r"tx_pps=(\d+) rx_pps=(\d+)", proc, 30)
        if counter:
            time.sleep(0.3)
            counter.send_signal(signal.SIGINT)
            host_out = counter.communicate(timeout=30)[0]
        h = re.search(r"sent=(\d+) send_full=\d+ got=(\d+)", host_out)
        if not h:
            raise RuntimeError(f"netblast: {host_out}")
        return {"tx_pps": int(m.group(1)), "rx_pps": int(m.group(2)),
                "host_got_pps": int(h.group(2)) / BLAST_SECONDS}
    finally:
        for p in (proc, counter):
            if p and p.poll() is None:
                p.kill()
            if p:
                p.wait(30)


def iperf3(ns, reverse):
    p = ns.run(["iperf3", "-c", GUEST_IP, "-t", str(IPERF_SECONDS), "-J",
                "--connect-timeout", "10000"] + (["-R"] if reverse else []),
               IPERF_SECONDS + 60)
    try:
        return json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
    except (ValueError, KeyError):
        raise RuntimeError(f"iperf3{' -R' if reverse else ''}: {p.stdout[-1000:]}"
                           f"{p.stderr}") from None


def iperf_boot(ns, binary, vhost, workdir, repeat):
    """Boots the Linux guest (scenario net, then it holds) and runs iperf3
    repeat times each way; every run's Mbit/s."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "functional"))
    import linuxguest
    log = os.path.join(workdir, "linux.log")
    open(log, "wb").close()
    args = linuxguest.vm_args(log, smp=1, mem="256M", run="net",
                              extra_append=f"dv.ip={GUEST_IP}/24 dv.peer={HOST_IP} "
                                           "dv.net_hold=900",
                              extra=nic_args(vhost))
    if binary == benchenv.QEMU:
        args[args.index("-cpu") + 1] = benchenv.cpu_args(binary)[1]
    proc = ns.popen([binary] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_line(log, r"^linux: net iperf3 server port=5201", proc, 300)
        runs = {"host_to_guest_mbps": [], "guest_to_host_mbps": []}
        for _ in range(repeat):
            runs["host_to_guest_mbps"].append(iperf3(ns, False))
            runs["guest_to_host_mbps"].append(iperf3(ns, True))
        return runs
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def iperf_rounds(ns, vhost, workdir, boots, repeat):
    """boots Linux boots per VMM, the VMMs taking turns and the first of
    each pair alternating (a slow stretch of the host lands on both), repeat
    iperf3 runs each way per boot.  Per VMM: every run, their median, and
    the boots that failed; a VMM whose every boot failed gets its last
    error instead."""
    runs = {name: {"host_to_guest_mbps": [], "guest_to_host_mbps": []} for name in PEERS}
    failed = {name: [] for name in PEERS}
    names = list(PEERS)
    for i in range(boots):
        for name in (names if i % 2 == 0 else names[::-1]):
            try:
                got = iperf_boot(ns, PEERS[name], vhost, workdir, repeat)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                failed[name].append(str(e)[:300])
                continue
            for k, v in got.items():
                runs[name][k] += v
    out = {}
    for name in PEERS:
        if not runs[name]["host_to_guest_mbps"]:
            out[name] = {"error": failed[name][-1] if failed[name] else "no boot"}
            continue
        out[name] = {k: statistics.median(v) for k, v in runs[name].items()}
        out[name]["runs"] = runs[name]
        out[name]["boots_failed"] = len(failed[name])
    return out


def rank_test(a, b):
    """Two-sided Mann-Whitney rank test of samples a and b: the chance of a
    rank sum at least as far from its mean as a's if both came from one
    distribution.  Exact (every split of the pooled ranks) while that is at
    most 200,000 splits, else the normal approximation with ties."""
    import itertools
    import math
    pooled = sorted(a + b)
    ranks = {}
    i = 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j] == pooled[i]:
            j += 1
        ranks[pooled[i]] = (i + j + 1) / 2      # ties share their mean rank
        i = j
    n, m = len(a), len(b)
    all_ranks = [ranks[x] for x in a + b]
    mean = n * (n + m + 1) / 2
    dev = abs(sum(ranks[x] for x in a) - mean)
    if math.comb(n + m, n) <= 200000:
        splits = hits = 0
        for pick in itertools.combinations(all_ranks, n):
            splits += 1
            hits += abs(sum(pick) - mean) >= dev - 1e-9
        return hits / splits
    counts = {}
    for r in all_ranks:
        counts[r] = counts.get(r, 0) + 1
    ties = sum(t ** 3 - t for t in counts.values())
    var = n * m / 12 * ((n + m + 1) - ties / ((n + m) * (n + m - 1)))
    z = max(dev - 0.5, 0) / math.sqrt(var) if var > 0 else 0
    return math.erfc(z / math.sqrt(2))


def run(repeat=5):
    """net-blast repeat times per VMM and vhost setting (the VMMs taking
    turns); IPERF_BOOTS Linux boots per VMM (taking turns), iperf3
    min(repeat, 2) times each way per boot; medians (and every iperf3 run)."""
    import tempfile
    out = {"blast": {}, "iperf": {}, "vhost": vhost_settings()}
    why = linux_missing()
    if why:
        out["iperf_missing"] = why
    with tempfile.TemporaryDirectory(prefix="dvbench-net-") as workdir, Netns() as ns:
        for vhost in out["vhost"]:
            runs = {name: [] for name in PEERS}
            errors = {}
            for _ in range(repeat):
                for name, binary in PEERS.items():   # the peers take turns
                    if name in errors:
                        continue
                    if not os.path.exists(binary):
                        errors[name] = f"{binary} missing"
                        continue
                    try:
                        runs[name].append(blast_once(ns, binary, vhost, workdir))
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        errors[name] = str(e)[:300]
            for name in PEERS:
                key = f"{name} vhost={vhost}"
                if name in errors:
                    out["blast"][key] = {"error": errors[name]}
                elif runs[name]:
                    out["blast"][key] = {k: statistics.median(r[k] for r in runs[name])
                                         for k in runs[name][0]}
            if why:
                continue
            got = iperf_rounds(ns, vhost, workdir, IPERF_BOOTS, min(repeat, 2))
            for name in PEERS:
                out["iperf"][f"{name} vhost={vhost}"] = got[name]
    return out


FIGURES = [("blast", "tx_alone_pps", "net-blast guest to host alone: frames the device "
                                      "took (pps)"),
           ("blast", "host_got_alone_pps", "net-blast guest to host alone: frames seen on "
                                            "the tap (pps)"),
           ("blast", "tx_pps", "net-blast both ways at once, guest to host: frames the "
                               "device took (pps)"),
           ("blast", "host_got_pps", "net-blast both ways at once, guest to host: frames "
                                     "seen on the tap (pps)"),
           ("blast", "rx_pps", "net-blast both ways at once, host to guest: frames the "
                               "guest received (pps)"),
           ("iperf", "host_to_guest_mbps", "Linux iperf3 TCP host to guest (Mbit/s)"),
           ("iperf", "guest_to_host_mbps", "Linux iperf3 TCP guest to host (Mbit/s)")]
TARGET = {"off": 1.3, "on": 1.0}


def short_error(text):
    """An error for a table cell: testos's exception line when there is one."""
    m = re.search(r"testos: exception \d+ at RIP=\S+", text)
    if m:
        return m.group(0) + " before net-blast started"
    return text.replace("|", "/").replace("\n", " ")[:120]


def iperf_cell(x, key):
    """The median, and where every run is known their number and range."""
    if "runs" not in x:
        return f"{x[key]:.1f}"
    v = x["runs"][key]
    failed = f", {x['boots_failed']} boot(s) failed" if x.get("boots_failed") else ""
    return f"{x[key]:.1f} ({len(v)} runs: {min(v):.0f}-{max(v):.0f}{failed})"


def iperf_verdict(ratio, target, ours, theirs):
    """Whether the target is met, from the medians' ratio and a rank test of
    the two VMMs' runs.  "At least equal" (1.0) is met when this VMM's
    median is at least QEMU's and missed when its runs are significantly
    lower; "1.3 times" is met only when the ratio is there and the runs are
    significantly higher.  Between the two, the runs cannot tell."""
    p = rank_test(ours, theirs)
    apart = p < SIGNIFICANT
    if ratio >= target and (apart or target <= 1.0):
        return f"yes (p={p:.2f})"
    if ratio < min(target, 1.0) and not apart:
        return f"cannot tell (rank test p={p:.2f})"
    if ratio >= target:
        return f"cannot tell (rank test p={p:.2f})"
    return f"no (p={p:.2f})"


def render(r):
    rows = ["| vhost | figure | directvisor | QEMU | ratio | target | met |",
            "|---|---|---|---|---|---|---|"]
    for vhost in r["vhost"]:
        for part, key, label in FIGURES:
            ours = r[part].get(f"directvisor vhost={vhost}")
            theirs = r[part].get(f"qemu vhost={vhost}")
            if part == "iperf" and "iperf_missing" in r:
                rows.append(f"| {vhost} | {label} | not measured: {r['iperf_missing']} "
                            "| - | - | - | - |")
                continue
            cells = []
            for x in (ours, theirs):
                if x is None:
                    cells.append("-")
                elif "error" in x:
                    cells.append("failed: " + short_error(x["error"]))
                elif part == "blast":
                    cells.append(f"{x[key]:.0f}")
                else:
                    cells.append(iperf_cell(x, key))
            ratio = met = "-"
            if ours and theirs and key in ours and key in theirs and theirs[key]:
                q = ours[key] / theirs[key]
                ratio = f"{q:.2f}"
                met = "yes" if q >= TARGET[vhost] else "no"
                if "runs" in ours and "runs" in theirs:
                    met = iperf_verdict(q, TARGET[vhost], ours["runs"][key],
                                        theirs["runs"][key])
            rows.append(f"| {vhost} | {label} | {cells[0]} | {cells[1]} | {ratio} | "
                        f"≥{TARGET[vhost]} | {met} |")
    if "on" not in r["vhost"]:
        rows += ["", "vhost=on not measured here: no /dev/vhost-net."]
    return "\n".join(rows)


if __name__ == "__main__":
    res = run(int(os.environ.get("BENCH_REPEAT", "5")))
    print(benchenv.caption() + "\n\n" + render(res))
