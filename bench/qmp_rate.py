#!/usr/bin/python3
"""QMP round trips per second: one client on a unix socket sends
query-status and waits for each reply before the next (after negotiation),
against this VMM and Debian's QEMU booting the same testos `idle` guest in
the same run.  Prints a table and writes build/bench/qmp.json.

    /usr/bin/python3 bench/qmp_rate.py [--requests N] [--runs N]
"""
import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
VMM = os.path.join(BUILD, "qemu-system-x86_64")
TESTOS = os.path.join(BUILD, "tests", "guest", "testos")
QEMU = shutil.which("qemu-system-x86_64", path="/usr/bin")
OUT = os.path.join(BUILD, "bench", "qmp.json")
REQUEST = b'{"execute": "query-status"}\n'


def connect(path, timeout=60):
    deadline = time.time() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.time() > deadline:
                raise
            time.sleep(0.01)


class LineReader:
    """Reads "\\r\\n"-terminated QMP messages; events are skipped."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def message(self):
        while True:
            while b"\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("QMP connection closed")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if "event" not in msg:
                return msg


def round_trips_per_second(sock, reader, requests):
    start = time.perf_counter()
    for _ in range(requests):
        sock.sendall(REQUEST)
        reply = reader.message()
        if "return" not in reply:
            raise RuntimeError(f"query-status failed: {reply}")
    return requests / (time.perf_counter() - start)


def pin_process(pid, cpu):
    """Every thread of pid on one CPU."""
    subprocess.run(["taskset", "-a", "-cp", str(cpu), str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


class Peer:
    """One VMM booting testos idle, with a negotiated QMP connection; binary
    is a path or [path, extra arguments...] (bench/run.py passes -cpu)."""

    def __init__(self, name, binary, tmpdir, cpu=None):
        self.name = name
        path = os.path.join(tmpdir, f"{name}.sock")
        binary, *extra = binary if isinstance(binary, (list, tuple)) else [binary]
        args = [binary, "-enable-kvm", *extra, "-display", "none", "-nodefaults",
                "-m", "128M", "-smp", "1", "-kernel", TESTOS,
                "-append", "testos.run=idle",
                "-qmp", f"unix:{path},server=on,wait=off"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.sock = connect(path)
        if cpu is not None:
            pin_process(self.proc.pid, cpu)
        self.reader = LineReader(self.sock)
        self.reader.message()                          # greeting
        self.sock.sendall(b'{"execute": "qmp_capabilities"}\n')
        self.reader.message()
        self.rates = []

    def run(self, requests):
        self.rates.append(round_trips_per_second(self.sock, self.reader, requests))

    def close(self):
        try:
            self.sock.sendall(b'{"execute": "quit"}\n')
            self.reader.message()      # QEMU drops a request whose client left
            self.sock.close()
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def measure(peers, requests, runs, cpu=None):
    """Both VMMs run side by side; their runs alternate, so a busy moment
    on the host falls on both.  Returns {name: [rates]}."""
    with tempfile.TemporaryDirectory() as d:
        started = []
        try:
            for name, binary in peers.items():
                started.append(Peer(name, binary, d, cpu))
            for peer in started:
                round_trips_per_second(peer.sock, peer.reader, min(200, requests))
            for _ in range(runs):
                for peer in started:
                    peer.run(requests)
        finally:
            for peer in started:
                peer.close()
    return {peer.name: peer.rates for peer in started}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--cpu", type=int, default=None,
        help="run the client and every thread of both VMMs on this one CPU "
             "(default: the scheduler places them)")
    opts = parser.parse_args()
    cpu = opts.cpu
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    for path in (VMM, TESTOS):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run make first")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchenv
    peers = {"directvisor": [VMM, *benchenv.cpu_args(VMM)]}
    if QEMU:
        peers["qemu"] = [QEMU, *benchenv.cpu_args(QEMU)]
    else:
        print("Debian's qemu-system-x86_64 is not installed: measuring this VMM only")

    rates = measure(peers, opts.requests, opts.runs, cpu)
    results = {name: {"median_rps": statistics.median(r),
                      "runs_rps": [round(x, 1) for x in r]}
               for name, r in rates.items()}
    ratio = None
    if "qemu" in results:
        ratio = results["directvisor"]["median_rps"] / results["qemu"]["median_rps"]

    placement = "scheduler's choice" if cpu is None else f"client and both VMMs on CPU {cpu}"
    print(f"QMP query-status round trips/s ({opts.requests} sequential requests, "
          f"median of {opts.runs} runs, one client, unix socket, {placement})")
    print(f"{'peer':<12} {'median/s':>10}  runs")
    for name, r in results.items():
        runs = " ".join(f"{x:.0f}" for x in r["runs_rps"])
        print(f"{name:<12} {r['median_rps']:>10.0f}  {runs}")
    if ratio is not None:
        print(f"directvisor / qemu: {ratio:.2f}x")

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"benchmark": "qmp_round_trips_per_second",
                   "command": "query-status", "requests": opts.requests,
                   "runs": opts.runs, "host": platform.node(),
                   "cpu": "scheduler" if cpu is None else cpu,
                   "results": {k: {"median_rps": round(v["median_rps"], 1),
                                   "runs_rps": v["runs_rps"]}
                               for k, v in results.items()},
                   "ratio_vs_qemu": round(ratio, 2) if ratio else None},
                  f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
