#!/usr/bin/python3
"""Live migration of 1 GiB testos `dirty` guests (idle, 50 and 200 MiB/s
dirtied), this VMM and Debian's QEMU side by side over tcp on loopback, both
with -cpu host and the same max-bandwidth.  The downtime figure is the
guest's: testos prints a seq line every 10 ms; the source's output and then
the destination's, read as one byte stream and timestamped on the host as
each line's newline arrives, give the gap across the switch (last line from
the source to the first from the destination).  The VMMs' own downtime
counters are shown beside it but start at different points.  Every run is
checked by tests/guest/dirtycheck.py (seq continuous, every sum right, no
CORRUPT line); each figure is the median of at least 3 runs.  CPU seconds
per VMM process over the migration (CpuMeter): all its threads' user +
system time from the migrate command to completion, its vCPU threads'
left out (the guest's own work).  Used by
bench/run.py; standalone it prints the table."""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchenv  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRTYCHECK = os.path.join(ROOT, "tests", "guest", "dirtycheck.py")
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


class Stream:
    """A process's stdout as host-timestamped chunks of bytes (read as they
    arrive, by a thread)."""

    def __init__(self, proc):
        self.chunks = []
        self.t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.t.start()

    def _read(self, proc):
        fd = proc.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                return
            self.chunks.append((time.monotonic(), data))

    def seq_count(self):
        return sum(c.count(b"testos: seq ") for _, c in list(self.chunks))

    def data(self):
        return b"".join(c for _, c in list(self.chunks))


def seq_lines(src, dst):
    """The source's output then the destination's read as one byte stream
    (the switch-over can cut a line in two), as [(t, seq, from_dst)]: t is
    when the line's newline arrived on the host."""
    out, buf = [], b""
    for from_dst, stream in ((False, src), (True, dst)):
        for t, chunk in list(stream.chunks):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                m = re.search(rb"testos: seq (\d+) ", line)
                if m:
                    out.append((t, int(m.group(1)), from_dst))
    return out


def guest_gaps(lines, t_start, t_done):
    """The guest's view of the migration from its seq lines: the host-timed
    gap across the switch (last line the source printed to the first the
    destination printed), the largest gap from the migrate command to 0.5 s
    after completion, and whether seq went on by exactly 1 across it."""
    last_src = max((i for i, x in enumerate(lines) if not x[2]), default=None)
    if last_src is None or last_src + 1 >= len(lines):
        return None, None, False
    a, b = lines[last_src], lines[last_src + 1]
    window = [x for x in lines if t_start <= x[0] <= t_done + 0.5]
    during = max((y[0] - x[0] for x, y in zip(window, window[1:])), default=0)
    return round((b[0] - a[0]) * 1000, 1), round(during * 1000, 1), b[1] == a[1] + 1


TICK = os.sysconf("SC_CLK_TCK")


def _ticks(stat):
    """utime + stime from a /proc stat line (the name may hold spaces)."""
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def cpu_sample(pid):
    """(the process's CPU ticks, exited threads included; {tid: (name,
    ticks)} of its live threads)."""
    with open(f"/proc/{pid}/stat") as f:
        total = _ticks(f.read())
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        threads[tid] = (st[st.index("(") + 1:st.rindex(")")], _ticks(st))
    return total, threads


class CpuMeter:
    """CPU seconds a VMM process spends on the migration: its whole CPU time
    over the window less its vCPU threads' ("CPU N/KVM" in both VMMs: the
    testos guest checks memory in every spare moment, which is no migration
    cost), and the busiest other thread's (sampled while it lives: the
    migration thread exits at the end)."""

    def __init__(self, pid):
        self.pid = pid
        self.t0, self.threads0 = cpu_sample(pid)
        self.last = dict(self.threads0)

    def poll(self):
        try:
            self.total, threads = cpu_sample(self.pid)
        except OSError:
            return
        self.last.update(threads)
        self.live = threads

    def result(self):
        self.poll()
        vcpu = sum(t - self.threads0.get(tid, (n, 0))[1]
                   for tid, (n, t) in self.live.items() if n.startswith("CPU "))
        busiest = max(((t - self.threads0.get(tid, (n, 0))[1], n)
                       for tid, (n, t) in self.last.items() if not n.startswith("CPU ")),
                      default=(0, "-"))
        return {"cpu_s": round((self.total - self.t0 - vcpu) / TICK, 2),
                "thread_cpu_s": round(busiest[0] / TICK, 2), "thread": busiest[1]}


def vm(binary, mem, append, sock, extra=()):
    if os.path.realpath(binary) == os.path.realpath(QEMU):
        # thread names ("CPU 0/KVM"), which CpuMeter needs; nothing else
        extra = ["-name", "debug-threads=on", *extra]
    return subprocess.Popen(
        [binary, "-enable-kvm", *benchenv.cpu_args(binary), "-m", mem, "-smp", "1",
         "-display", "none", "-nodefaults", "-serial", "stdio",
         "-qmp", f"unix:{sock},server,nowait", "-kernel", TESTOS, "-append", append, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def dirtycheck(d, src, dst):
    """dirtycheck.py over the two logs joined: 'ok' or its FAIL line."""
    paths = []
    for name, stream in (("src.log", src), ("dst.log", dst)):
        paths.append(os.path.join(d, name))
        with open(paths[-1], "wb") as f:
            f.write(stream.data())
    proc = subprocess.run([sys.executable, DIRTYCHECK, *paths], capture_output=True,
                          text=True, timeout=300)
    return "ok" if proc.returncode == 0 else (proc.stdout.strip() or proc.stderr.strip())


def migrate_once(binary, mibps, on_start=None, mem="1G"):
    append = f"testos.run=dirty testos.mibps={mibps}"
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        src = vm(binary, mem, append, os.path.join(d, "s.sock"))
        dst = vm(binary, mem, append, os.path.join(d, "d.sock"),
                 ["-incoming", f"tcp:127.0.0.1:{port}"])
        try:
            ls, ld = Stream(src), Stream(dst)
            qs = Qmp(os.path.join(d, "s.sock"))
            Qmp(os.path.join(d, "d.sock"))
            deadline = time.time() + 180
            while ls.seq_count() < 100 and time.time() < deadline:
                time.sleep(0.05)
            if ls.seq_count() < 100:
                raise RuntimeError("the source guest printed fewer than 100 seq lines")
            qs.cmd("migrate-set-parameters", **{"max-bandwidth": BANDWIDTH})
            meters = CpuMeter(src.pid), CpuMeter(dst.pid)
            if on_start:
                on_start(src, dst)
            t_start = time.monotonic()
            qs.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
            info = {}
            while time.time() < deadline:
                for mt in meters:
                    mt.poll()
                info = qs.cmd("query-migrate")
                if info.get("status") in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.05)
            t_done = time.monotonic()
            cpu = [mt.result() for mt in meters]
            # the destination runs on for a second (its check cursor covers
            # the working set many times), then both stop
            while time.monotonic() < t_done + 1.0:
                time.sleep(0.05)
            switch, during, seq_ok = guest_gaps(seq_lines(ls, ld), t_start, t_done)
            for p in (src, dst):
                p.kill()
                p.wait()
            ls.t.join(5)
            ld.t.join(5)
            return {"status": info.get("status"),
                    "total_ms": info.get("total-time"),
                    "downtime_ms": info.get("downtime"),
                    "transferred": info.get("ram", {}).get("transferred"),
                    "src_cpu_s": cpu[0]["cpu_s"], "dst_cpu_s": cpu[1]["cpu_s"],
                    "src_thread": [cpu[0]["thread"], cpu[0]["thread_cpu_s"]],
                    "dst_thread": [cpu[1]["thread"], cpu[1]["thread_cpu_s"]],
                    "switch_gap_ms": switch, "max_gap_ms": during,
                    "seq_continuous": seq_ok, "dirtycheck": dirtycheck(d, ls, ld)}
        finally:
            for p in (src, dst):
                if p.poll() is None:
                    p.kill()
                p.wait()


FIGURES = ("switch_gap_ms", "max_gap_ms", "total_ms", "downtime_ms", "transferred",
           "src_cpu_s", "dst_cpu_s")


def median(values):
    values = sorted(v for v in values if v is not None)
    return statistics.median(values) if values else None


def run(repeat=3):
    """Each figure is the median over `repeat` runs (at least 3) per VMM and
    rate; the runs themselves are kept too."""
    repeat = max(3, repeat)
    peers = [(n, b) for n, b in (("directvisor", VMM), ("qemu", QEMU)) if os.path.exists(b)]
    all_runs = {(n, rate): [] for n, _ in peers for rate in RATES}
    for _ in range(repeat):             # the VMMs take turns, run by run
        for rate in RATES:
            for name, binary in peers:
                try:
                    all_runs[name, rate].append(migrate_once(binary, rate))
                except RuntimeError as e:
                    all_runs[name, rate].append({"status": f"error: {e}"})
    results = {}
    for name, _ in peers:
        results[name] = {}
        for rate in RATES:
            runs = all_runs[name, rate]
            ok = [r for r in runs if r.get("status") == "completed"]
            med = {k: median(r.get(k) for r in ok) for k in FIGURES}
            med["completed"] = f"{len(ok)}/{len(runs)}"
            med["checks"] = (f"{sum(r.get('dirtycheck') == 'ok' and r.get('seq_continuous') for r in runs)}"
                             f"/{len(runs)}")
            results[name][f"{rate} MiB/s"] = {"median": med, "runs": runs}
    return results


def render(results):
    rows = ["| peer | dirtied | completed | guest-seen downtime: gap across the switch (ms) "
            "| largest guest gap during migration (ms) | total (ms) "
            "| VMM's own downtime counter (ms) | MiB sent | CPU s, source | CPU s, destination "
            "| dirtycheck + seq continuous |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(v, fmt="{:.0f}"):
        return "-" if v is None else fmt.format(v)

    for peer, per_rate in results.items():
        for rate, r in per_rate.items():
            m = r["median"]
            sent = cell(m["transferred"] and m["transferred"] / (1 << 20), "{:.1f}")
            rows.append(f"| {peer} | {rate} | {m['completed']} | {cell(m['switch_gap_ms'], '{:.1f}')} | "
                        f"{cell(m['max_gap_ms'], '{:.1f}')} | {cell(m['total_ms'])} | "
                        f"{cell(m['downtime_ms'])} | {sent} | {cell(m['src_cpu_s'], '{:.2f}')} | "
                        f"{cell(m['dst_cpu_s'], '{:.2f}')} | {m['checks']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(render(run(int(os.environ.get("BENCH_REPEAT", "3")))))
    sys.exit(0)
