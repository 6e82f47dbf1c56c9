#!/usr/bin/python3
"""virtio-blk from testos's blk-perf scenario (4 KiB random reads and writes
at queue depth 1 and 32, 1 MiB sequential reads and writes), on raw and
qcow2 images in a tmpfs and on disk, this VMM and Debian's QEMU in the same
run with the same image and scenario.  Used by bench/run.py."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchenv  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTOS = os.path.join(ROOT, "build", "tests", "guest", "testos")
PEERS = {"directvisor": os.path.join(ROOT, "build", "qemu-system-x86_64"),
         "qemu": "/usr/bin/qemu-system-x86_64"}
APPEND = "testos.run=blk-perf testos.mib=64 testos.ops=5000"
PLACES = {"tmpfs": "/dev/shm", "disk": os.path.join(ROOT, "build")}


def make_image(d, fmt):
    path = os.path.join(d, f"perf.{fmt}")
    subprocess.run(["qemu-img", "create", "-f", fmt, path, "256M"], check=True,
                   capture_output=True)
    return path


def run_once(binary, image, fmt):
    proc = subprocess.run(
        [binary, "-enable-kvm", *benchenv.cpu_args(binary), "-m", "256M", "-smp", "1",
         "-display", "none",
         "-nodefaults", "-serial", "stdio", "-no-reboot", "-kernel", TESTOS, "-append",
         APPEND, "-drive", f"file={image},if=virtio,format={fmt},cache=none"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    out = {}
    for m in re.finditer(r"blk-perf rw=(\w+) bs=(\d+) qd=(\d+) (iops|mbps)=(\d+)",
                         proc.stdout):
        rw, bs, qd, unit, value = m.groups()
        key = f"{rw} qd{qd}" if unit == "iops" else f"{rw} 1M"
        out[key] = int(value)
    return out


def run(repeat=3):
    results = {}
    for place, where in PLACES.items():
        if not os.path.isdir(where):
            continue
        for fmt in ("raw", "qcow2"):
            key = f"{fmt}/{place}"
            results[key] = {}
            runs = {name: [] for name in PEERS}
            for _ in range(repeat):
                for name, binary in PEERS.items():   # alternate the peers
                    if not os.path.exists(binary):
                        continue
                    with tempfile.TemporaryDirectory(dir=where) as d:
                        runs[name].append(run_once(binary, make_image(d, fmt), fmt))
            for name, rs in runs.items():
                if rs:
                    results[key][name] = {k: sorted(r.get(k, 0) for r in rs)[len(rs) // 2]
                                          for k in rs[0]}
    return results


def render(results):
    rows = ["| image | figure | directvisor | QEMU | ratio |", "|---|---|---|---|---|"]
    for key, peers in results.items():
        ours, theirs = peers.get("directvisor", {}), peers.get("qemu", {})
        for fig in ours:
            a, b = ours.get(fig), theirs.get(fig)
            unit = "IOPS" if "qd" in fig else "MB/s"
            ratio = f"{a / b:.2f}" if a and b else "-"
            rows.append(f"| {key} | {fig} ({unit}) | {a} | {b if b is not None else '-'} | {ratio} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if not shutil.which("qemu-img"):
        sys.exit("qemu-img is needed")
    print(render(run(int(os.environ.get("BENCH_REPEAT", "1")))))
