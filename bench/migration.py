#!/usr/bin/python3
"""Live migration of 1 GiB testos `dirty` guests (idle, 50 and 200 MiB/s
dirtied), this VMM and Debian's QEMU side by side over tcp on loopback:
total time and downtime as each VMM reports them, bytes sent, and the
guest's own view of the downtime (the largest host-timed gap between its
seq lines, which it prints every 10 ms).  Used by bench/run.py."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTOS = os.path.join(ROOT, "build", "tests", "guest", "testos")
VMM = os.path.join(ROOT, "build", "qemu-system-x86_64")
QEMU = "/usr/bin/qemu-system-x86_64"
RATES = [0, 50, 200]
BANDWIDTH = 1 << 30          # the same limit for both: 1 GiB/s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Qmp:
    def __init__(self, path, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.s.sendall(json.dumps(msg).encode())
        while True:
            r = json.loads(self.f.readline())
            if "event" not in r:
                return r.get("return", r)


class Lines:
    """Host-timestamped seq lines from a process's stdout."""

    def __init__(self, proc):
        self.seqs = []
        self.t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.t.start()

    def _read(self, proc):
        for line in proc.stdout:
            m = re.search(r"testos: seq (\d+) ", line)
            if m:
                self.seqs.append((time.monotonic(), int(m.group(1))))


def vm(binary, mem, append, sock, extra=()):
    return subprocess.Popen(
        [binary, "-enable-kvm", "-m", mem, "-smp", "1", "-display", "none", "-nodefaults",
         "-serial", "stdio", "-qmp", f"unix:{sock},server,nowait", "-kernel", TESTOS,
         "-append", append, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        text=True)


def migrate_once(binary, mibps):
    append = f"testos.run=dirty testos.mibps={mibps}"
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        src = vm(binary, "1G", append, os.path.join(d, "s.sock"))
        dst = vm(binary, "1G", append, os.path.join(d, "d.sock"),
                 ["-incoming", f"tcp:127.0.0.1:{port}"])
        try:
            ls, ld = Lines(src), Lines(dst)
            qs = Qmp(os.path.join(d, "s.sock"))
            Qmp(os.path.join(d, "d.sock"))
            deadline = time.time() + 120
            while len(ls.seqs) < 100 and time.time() < deadline:
                time.sleep(0.05)
            qs.cmd("migrate-set-parameters", **{"max-bandwidth": BANDWIDTH})
            qs.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
            while time.time() < deadline:
                info = qs.cmd("query-migrate")
                if info.get("status") in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.05)
            t_done = time.monotonic()
            while (not ld.seqs or ld.seqs[-1][0] < t_done + 0.5) and time.time() < deadline:
                time.sleep(0.05)
            both = sorted(ls.seqs + ld.seqs)
            gap = max((b[0] - a[0] for a, b in zip(both, both[1:])), default=0)
            return {"status": info.get("status"),
                    "total_ms": info.get("total-time"),
                    "downtime_ms": info.get("downtime"),
                    "transferred": info.get("ram", {}).get("transferred"),
                    "guest_gap_ms": round(gap * 1000, 1)}
        finally:
            for p in (src, dst):
                p.kill()
                p.wait()


def run(repeat=1):
    results = {}
    for name, binary in (("directvisor", VMM), ("qemu", QEMU)):
        if not os.path.exists(binary):
            continue
        results[name] = {}
        for rate in RATES:
            runs = [migrate_once(binary, rate) for _ in range(repeat)]
            runs.sort(key=lambda r: r["total_ms"] or 0)
            results[name][f"{rate} MiB/s"] = runs[len(runs) // 2]
    return results


def render(results):
    rows = ["| peer | dirtied | status | total (ms) | downtime, VMM (ms) | largest guest gap (ms) | MiB sent |",
            "|---|---|---|---|---|---|---|"]
    for peer, per_rate in results.items():
        for rate, r in per_rate.items():
            sent = f"{r['transferred'] / (1 << 20):.1f}" if r["transferred"] else "-"
            rows.append(f"| {peer} | {rate} | {r['status']} | {r['total_ms']} | "
                        f"{r['downtime_ms']} | {r['guest_gap_ms']} | {sent} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(render(run(int(os.environ.get("BENCH_REPEAT", "1")))))
    sys.exit(0)
