#!/usr/bin/python3
"""Passthrough NIC (issue 15's target): a stock Linux guest's iperf3 TCP
throughput both ways over an e1000e passed through with -device vfio-pci,
and the NIC's interrupt rate on the host while it runs, under this VMM and
Debian's QEMU (the same guest, NIC and command line), beside the same guest
over virtio-net (a tap, vhost=off) under this VMM.  Rig only: the --iommu
L1 (tests/rig/rig.sh --iommu) has the IOMMU and the two e1000e joined only
to each other; the first goes to the guest, the second stays with L1's
e1000e driver at HOST_IP and runs the iperf3 client.  The figures measure
TCG's emulation of L1 (and of its e1000e) more than either VMM.

Used by bench/run.py (section `passthrough`: from the host one rig run);
inside the rig `python3 bench/passthrough.py [--runs N] [--json PATH]`."""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchenv  # noqa: E402

ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "functional"))
PEERS = {"directvisor": benchenv.VMM, "qemu": benchenv.QEMU}
HOST_IP, GUEST_IP = "198.18.0.1", "198.18.0.2"
IPERF_SECONDS = 5
BOOT_TIMEOUT = 300

# The guest loads e1000e (MSI-X), takes GUEST_IP on it, waits for carrier,
# serves iperf3 and holds the NIC.
SCENARIO = f"""\
. /etc/dv/lib.sh
insmod /e1000e.ko || {{ fail "pt: insmod e1000e"; exit 1; }}
dev=$(e1000e_up {GUEST_IP}/24) || {{ fail "pt: no e1000e interface up"; exit 1; }}
iperf3 -s -D
say "pt iperf3 server dev=$dev carrier=$(cat /sys/class/net/$dev/carrier)"
n=0
while [ $n -lt 180 ]; do
    sleep 5
    say "pt irqs $(grep "$dev" /proc/interrupts | tr -s ' ' | cut -d' ' -f2,3 | tr '\n' ' ')"
    dmesg -c 2>/dev/null | grep -iE 'e1000e|hang|reset' | sed 's/^/linux: dmesg /'
    n=$((n + 1))
done
"""


def host_nics():
    """The first e1000e bound to vfio-pci (its BDF), the second to L1's
    e1000e with HOST_IP."""
    from rignic import bind, e1000e_nics
    found = e1000e_nics()
    if len(found) < 2:
        raise RuntimeError("needs the rig's --iommu L1 (two e1000e joined to each other)")
    for mod in ("vfio-pci", "e1000e"):
        subprocess.run(["modprobe", mod], check=True)
    bind(found[0], "vfio-pci")
    bind(found[1], "e1000e")
    deadline = time.time() + 20
    while not glob.glob(os.path.join(found[1], "net", "*")):
        if time.time() > deadline:
            raise RuntimeError("L1's e1000e made no interface")
        time.sleep(0.1)
    dev = os.path.basename(glob.glob(os.path.join(found[1], "net", "*"))[0])
    subprocess.run(["ip", "addr", "flush", "dev", dev], check=True)
    subprocess.run(["ip", "addr", "add", f"{HOST_IP}/24", "dev", dev], check=True)
    subprocess.run(["ip", "link", "set", dev, "up"], check=True)
    return os.path.basename(found[0])


def initrd(directory):
    from linuxguest import ensure_initramfs, module, newc
    path = os.path.join(directory, "initrd-pt.cpio")
    with open(ensure_initramfs(), "rb") as base, open(path, "wb") as out:
        out.write(base.read())
        out.write(newc({"scenarios/ptperf.sh": SCENARIO, "e1000e.ko": module("e1000e")}))
    return path


def nic_irqs(bdf):
    """Interrupts so far on the host IRQs VFIO requested for bdf's vectors
    (vfio-msix[N](BDF), vfio-msi, vfio-intx lines of /proc/interrupts)."""
    total = 0
    with open("/proc/interrupts") as f:
        ncpu = len(f.readline().split())
        for line in f:
            if "vfio-" in line and f"({bdf})" in line:
                total += sum(int(x) for x in line.split()[1:1 + ncpu])
    return total


def iperf3(reverse, bdf):
    """One run from L1: Mbit/s the receiver got, and the NIC's host
    interrupts per second over the run (None without a bdf)."""
    irq0, t0 = (nic_irqs(bdf) if bdf else 0), time.time()
    p = subprocess.run(["iperf3", "-c", GUEST_IP, "-t", str(IPERF_SECONDS), "-J",
                        "--connect-timeout", "10000"] + (["-R"] if reverse else []),
                       capture_output=True, text=True, timeout=IPERF_SECONDS + 60)
    rate = (nic_irqs(bdf) - irq0) / (time.time() - t0) if bdf else None
    try:
        mbps = json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
    except (ValueError, KeyError):
        raise RuntimeError(f"iperf3{' -R' if reverse else ''}: {p.stdout[-600:]}"
                           f"{p.stderr[-300:]}") from None
    return mbps, rate


def wait_line(log, text, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(log, errors="replace") as f:
            body = f.read()
        if text in body:
            return
        if "linux: FAIL" in body or proc.poll() is not None:
            raise RuntimeError(f"guest: {body[-600:]}")
        time.sleep(0.5)
    raise RuntimeError(f"no '{text}' within {timeout} s")


def passthrough_boot(binary, bdf, workdir, runs):
    """Boots the guest with the NIC passed and runs iperf3 runs times each
    way; medians of Mbit/s and interrupts/s."""
    from linuxguest import vm_args
    log = os.path.join(workdir, "pt.log")
    open(log, "wb").close()
    args = vm_args(log, smp=1, mem="256M", run="ptperf", initrd_path=initrd(workdir),
                   extra=["-device", f"vfio-pci,host={bdf},id=pnic"])
    if binary == benchenv.QEMU:
        args[args.index("-cpu") + 1] = benchenv.cpu_args(binary)[1]
    err = open(os.path.join(workdir, "pt.err"), "wb")
    proc = subprocess.Popen([binary] + args, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_line(log, "linux: pt iperf3 server", proc, BOOT_TIMEOUT)
        subprocess.run(["dmesg", "-c"], capture_output=True)
        got = {"host_to_guest_mbps": [], "guest_to_host_mbps": [],
               "host_to_guest_irqs": [], "guest_to_host_irqs": []}
        for _ in range(runs):
            for reverse, way in ((False, "host_to_guest"), (True, "guest_to_host")):
                mbps, rate = iperf3(reverse, bdf)
                got[f"{way}_mbps"].append(mbps)
                got[f"{way}_irqs"].append(rate)
        return {k: statistics.median(v) for k, v in got.items()}
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        err.close()
        keep = os.path.join(ROOT, "build", "bench", f"passthrough-{os.path.basename(binary)}"
                            f"-{'ours' if binary == benchenv.VMM else 'qemu'}.log")
        os.makedirs(os.path.dirname(keep), exist_ok=True)
        with open(log, "rb") as f, open(keep, "wb") as out:
            out.write(f.read())
            with open(err.name, "rb") as e:
                out.write(b"-- the VMM's stderr\n" + e.read()[-4000:])
            out.write(b"-- L1's dmesg\n")
            out.write(subprocess.run(["dmesg"], capture_output=True).stdout[-4000:])


def virtio_boot(workdir, runs):
    """The same guest over virtio-net on a tap (vhost=off), this VMM."""
    import net
    with net.Netns() as ns:
        return net.iperf_boot(ns, benchenv.VMM, "off", workdir, runs)


def measure(runs, log=print, peers=None):
    bdf = host_nics()
    out = {"bdf": bdf}
    with tempfile.TemporaryDirectory() as d:
        for name, binary in PEERS.items():
            if peers and name not in peers:
                continue
            log(f"passthrough: {name}")
            try:
                out[name] = passthrough_boot(binary, bdf, d, runs)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                out[name] = {"error": str(e)[:300]}
        if peers and "virtio" not in peers:
            return out
        log("passthrough: virtio-net")
        try:
            out["virtio"] = virtio_boot(d, runs)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            out["virtio"] = {"error": str(e)[:300]}
    return out


def run_anywhere(runs, log=print):
    """For bench/run.py: in the rig's --iommu L1 directly, elsewhere through
    one rig run.  {"caption", "runs", ...} or {"skipped": why}."""
    if os.environ.get("DV_RIG") == "1":
        return {"caption": benchenv.caption(), "runs": runs, **measure(runs, log)}
    if not os.path.exists(os.path.join(ROOT, "build", "rig", "kernel", "vmlinuz")):
        return {"skipped": "no rig kernel cache (bash tests/rig/rig.sh --build-only)"}
    out = os.path.join("build", "bench", "passthrough.json")
    os.makedirs(os.path.join(ROOT, "build", "bench"), exist_ok=True)
    if os.path.exists(os.path.join(ROOT, out)):
        os.unlink(os.path.join(ROOT, out))
    budget = 600 + runs * 300
    cmd = ["bash", os.path.join(ROOT, "tests", "rig", "rig.sh"), "--iommu", "--share", ROOT,
           "--timeout", str(budget), "--",
           f"/usr/bin/python3 bench/passthrough.py --runs {runs} --json {out}"]
    p = subprocess.run(cmd, cwd=ROOT, timeout=budget + 300)
    if p.returncode != 0 or not os.path.exists(os.path.join(ROOT, out)):
        return {"skipped": f"the rig run failed (exit {p.returncode}; see build/rig/runs/)"}
    with open(os.path.join(ROOT, out)) as f:
        return json.load(f)


ROWS = [("host_to_guest_mbps", "iperf3 TCP host to guest (Mbit/s)", "{:.0f}"),
        ("guest_to_host_mbps", "iperf3 TCP guest to host (Mbit/s)", "{:.0f}"),
        ("host_to_guest_irqs", "NIC interrupts on the host, host to guest (/s)", "{:.0f}"),
        ("guest_to_host_irqs", "NIC interrupts on the host, guest to host (/s)", "{:.0f}")]


def cell(r, key, fmt):
    if "error" in r:
        return "failed: " + r["error"].replace("|", "/").replace("\n", " ")[:120]
    v = r.get(key)
    return "-" if v is None else fmt.format(v)


def render(r):
    ours, theirs, virtio = r.get("directvisor", {}), r.get("qemu", {}), r.get("virtio", {})
    lines = ["| figure | directvisor passthrough | QEMU passthrough | ratio | target | met "
             "| directvisor virtio-net (vhost=off) |",
             "|---|---|---|---|---|---|---|"]
    for key, label, fmt in ROWS:
        a, b = ours.get(key), theirs.get(key)
        mbps = key.endswith("_mbps")
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        met = ("yes" if a >= b else "no") if mbps and a is not None and b else "-"
        lines.append(f"| {label} | {cell(ours, key, fmt)} | {cell(theirs, key, fmt)} | "
                     f"{ratio} | {'≥1.0' if mbps else '-'} | {met} | "
                     f"{cell(virtio, key, fmt) if mbps else '-'} |")
    return "\n".join(lines)


def render_section(r):
    """docs/benchmarks.md's passthrough block: the rig's caption and the table."""
    if "skipped" in r:
        return f"_Not measured: {r['skipped']}._"
    return (r.get("caption", "_Measured in the rig._") +
            f" Medians of {r.get('runs', '?')} runs each way per boot; NIC {r.get('bdf')}."
            "\n\n" + render(r))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    r = run_anywhere(args.runs, log=lambda s: print(s, flush=True))
    if args.json:
        with open(os.path.join(ROOT, args.json), "w") as f:
            json.dump(r, f, indent=2)
    print(render_section(r))
    return 0 if "skipped" not in r else 1


if __name__ == "__main__":
    sys.exit(main())
