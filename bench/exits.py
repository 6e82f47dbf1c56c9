#!/usr/bin/python3
"""Per-vCPU VM exits per second, from KVM's own statistics (QMP query-stats
on both VMMs), for testos scenarios with DID off and on, beside Debian's
QEMU with and without -overcommit cpu-pm=on; plus the `latency` scenario's
timer wake-up latency.  Run by bench/run.py; standalone prints a table."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchenv  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTOS = os.path.join(ROOT, "build", "tests", "guest", "testos")
VMM = os.path.join(ROOT, "build", "qemu-system-x86_64")
QEMU = "/usr/bin/qemu-system-x86_64"

# scenario name, kernel command line, line that starts the window, line
# that ends it (None: a fixed 3 s window)
SCENARIOS = [
    ("idle", "testos.run=idle", "testos: idle", None),
    ("ticks-idle 1 kHz", "testos.run=ticks-idle testos.hz=1000 testos.seconds=0",
     "testos: ticks-idle", None),
    ("latency 1 ms", "testos.run=latency testos.n=3000 testos.period_us=1000",
     "testos: ready", "testos: latency"),
]


def qmp_connect(path, timeout=60):
    deadline = time.time() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            break
        except OSError:
            s.close()
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b'{"execute":"qmp_capabilities"}')
    f.readline()
    return s, f


def vcpu_exits(s, f):
    s.sendall(b'{"execute":"query-stats","arguments":{"target":"vcpu","providers":'
              b'[{"provider":"kvm","names":["exits"]}]}}')
    while True:
        r = json.loads(f.readline())
        if "return" in r:
            return sum(st["value"] for e in r["return"] for st in e["stats"])


def measure(binary, extra, append):
    """Exits per second of vCPU 0 over the scenario's window, and its lines."""
    scen = next(x for x in SCENARIOS if x[1] == append)
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "q.sock")
        args = [binary, "-enable-kvm", *benchenv.cpu_args(binary), "-display", "none",
                "-nodefaults", "-m", "128M",
                "-smp", "1", "-serial", "stdio", "-qmp",
                f"unix:{sock},server,nowait", "-kernel", TESTOS, "-append", append,
                *extra]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, text=True)
        try:
            s, f = qmp_connect(sock)
            lines = []
            for line in proc.stdout:
                lines.append(line.strip())
                if scen[2] in line:
                    break
            t0, e0 = time.monotonic(), vcpu_exits(s, f)
            if scen[3]:
                for line in proc.stdout:
                    lines.append(line.strip())
                    if scen[3] in line:
                        break
            else:
                time.sleep(3)
            t1, e1 = time.monotonic(), vcpu_exits(s, f)
            s.close()
        finally:
            proc.kill()
            proc.wait()
        return (e1 - e0) / (t1 - t0), lines


def run(repeat=3):
    with tempfile.NamedTemporaryFile("w", suffix=".map", delete=False) as m:
        m.write("0 0\n")
        cpumap = m.name
    peers = [
        ("directvisor did=off", VMM, []),
        ("directvisor did=on", VMM, ["-osnet_cpumap", f"path={cpumap},did=on"]),
        ("QEMU", QEMU, []),
        ("QEMU cpu-pm=on", QEMU, ["-overcommit", "cpu-pm=on"]),
    ]
    peers = [p for p in peers if os.path.exists(p[1])]
    rates = {(p[0], s[0]): [] for p in peers for s in SCENARIOS}
    lat = {}
    for _ in range(repeat):             # the peers take turns, run by run
        for scen, append, _, _ in SCENARIOS:
            for name, binary, extra in peers:
                rate, lines = measure(binary, extra, append)
                rates[name, scen].append(rate)
                for l in lines:
                    m = re.search(r"min_us=(-?\d+) avg_us=(-?\d+) max_us=(-?\d+)", l)
                    if m:
                        lat[name, scen] = [int(x) for x in m.groups()]
    results = {}
    for name, _, _ in peers:
        results[name] = {}
        for scen, _, _, _ in SCENARIOS:
            r = sorted(rates[name, scen])
            results[name][scen] = {"exits_per_s": r[len(r) // 2]}
            if (name, scen) in lat:
                results[name][scen]["latency_us"] = lat[name, scen]
    os.unlink(cpumap)
    return results


def render(results):
    scen_names = [s[0] for s in SCENARIOS]
    rows = ["| peer | " + " | ".join(f"{s} exits/s" for s in scen_names) +
            " | latency min/avg/max (us) |",
            "|---|" + "---|" * (len(scen_names) + 1)]
    for peer, r in results.items():
        cells = [f"{r[s]['exits_per_s']:.0f}" for s in scen_names]
        lat = r[scen_names[-1]].get("latency_us")
        cells.append("/".join(str(x) for x in lat) if lat else "-")
        rows.append(f"| {peer} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    res = run(int(os.environ.get("BENCH_REPEAT", "3")))
    print(render(res))
    sys.exit(0)
