#!/usr/bin/python3
"""make bench: run this VMM and Debian's QEMU side by side on the same testos
scenarios, repeat, and record medians and ratios in build/bench/results.json
and docs/benchmarks.md.  Timings are measured here, never asserted in tests."""
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
VMM = os.path.join(BUILD, "qemu-system-x86_64")
TESTOS = os.path.join(BUILD, "tests", "guest", "testos")
RAW = os.path.join(BUILD, "bench", "kvm-raw-loop")
QEMU = shutil.which("qemu-system-x86_64", path="/usr/bin")
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))

PEERS = {"directvisor": VMM}
if QEMU:
    PEERS["qemu"] = QEMU


def base_args(scenario, mem="128M", smp=1, extra=""):
    append = f"testos.run={scenario} {extra}".strip()
    return ["-enable-kvm", "-display", "none", "-nodefaults", "-serial", "stdio",
            "-no-reboot", "-m", mem, "-smp", str(smp), "-kernel", TESTOS,
            "-append", append]


def run_to_lines(binary, args, stop=None, timeout=120):
    """Run until exit (or until `stop` is seen); return [(t, line)] with t in
    seconds since exec, plus the time of the first output byte and the process."""
    t0 = time.monotonic()
    proc = subprocess.Popen([binary] + args, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines, first_byte, buf = [], None, b""
    fd = proc.stdout.fileno()
    while True:
        chunk = os.read(fd, 4096)
        now = time.monotonic() - t0
        if not chunk:
            break
        if first_byte is None:
            first_byte = now
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.append((now, line.decode(errors="replace").strip()))
            if stop and stop in lines[-1][1]:
                return lines, first_byte, proc
        if now > timeout:
            break
    proc.wait(timeout=timeout)
    return lines, first_byte, proc


def bench_boot(binary):
    lines, first, proc = run_to_lines(binary, base_args("hello"))
    ready = next(t for t, l in lines if "testos: ready" in l)
    return {"first_output_s": first, "ready_s": ready}


def rss_overhead_kib(pid, ram_bytes):
    """Process RSS minus what the guest RAM mapping has resident."""
    total, guest = 0, 0
    size = rss = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                size = end - start
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
                total += rss
                if size is not None and size >= ram_bytes and rss > guest:
                    guest = rss
    return total - guest


def bench_memory(binary):
    lines, _, proc = run_to_lines(binary, base_args("idle"), stop="testos: idle")
    time.sleep(0.5)
    overhead = rss_overhead_kib(proc.pid, 128 << 20)
    proc.kill()
    proc.wait()
    return {"rss_overhead_kib": overhead}


def bench_pio(binary):
    lines, _, _ = run_to_lines(binary, base_args("pio"))
    out = {}
    for _, l in lines:
        m = re.search(r"pio ring=(\d) n=(\d+) ns=(\d+)", l)
        if m:
            out[f"pio_ring{m.group(1)}_ns"] = int(m.group(3))
    return out


def bench_raw():
    proc = subprocess.run([RAW, "20000"], capture_output=True, text=True, check=True)
    return {"pio_ring0_ns": int(re.search(r"ns=(\d+)", proc.stdout).group(1))}


def median_of(fn, *args):
    runs = [fn(*args) for _ in range(REPEAT)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


FIGURES = [
    # key, label, unit, lower is better
    ("first_output_s", "exec to first guest byte on COM1", "s"),
    ("ready_s", "exec to `testos: ready`", "s"),
    ("rss_overhead_kib", "VMM RSS overhead, 1 vCPU / 128 MiB", "KiB"),
    ("pio_ring0_ns", "port-I/O exit round trip, ring 0", "ns"),
    ("pio_ring3_ns", "port-I/O exit round trip, ring 3", "ns"),
]


def main():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("bench: no usable /dev/kvm", file=sys.stderr)
        return 1
    results = {"host": platform.node(), "kernel": platform.release(),
               "date": time.strftime("%Y-%m-%d %H:%M"), "repeat": REPEAT,
               "peers": {}}
    for name, binary in PEERS.items():
        r = {}
        r.update(median_of(bench_boot, binary))
        r.update(median_of(bench_memory, binary))
        r.update(median_of(bench_pio, binary))
        results["peers"][name] = r
    results["peers"]["raw-kvm-loop"] = median_of(bench_raw)
    table = render(results)
    print(table)
    write_doc("core", table)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import qmp_rate
    rates = qmp_rate.measure(PEERS, 2000, REPEAT)
    results["qmp_rps"] = {k: statistics.median(v) for k, v in rates.items()}
    rows = ["| peer | QMP query-status round trips/s (median) |", "|---|---|"]
    rows += [f"| {k} | {v:.0f} |" for k, v in results["qmp_rps"].items()]
    if "qemu" in results["qmp_rps"]:
        rows.append(f"| ratio | {results['qmp_rps']['directvisor'] / results['qmp_rps']['qemu']:.2f} |")
    print("\n".join(rows))
    write_doc("qmp", "\n".join(rows))

    import exits
    results["exits"] = exits.run(min(REPEAT, 3))
    table = exits.render(results["exits"])
    print(table)
    write_doc("exits", table)

    import disk
    results["disk"] = disk.run(min(REPEAT, 3))
    table = disk.render(results["disk"])
    print(table)
    write_doc("disk", table)

    import migration
    results["migration"] = migration.run(1)
    table = migration.render(results["migration"])
    print(table)
    write_doc("migration", table)

    os.makedirs(os.path.join(BUILD, "bench"), exist_ok=True)
    with open(os.path.join(BUILD, "bench", "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return 0


def fmt(v, unit):
    if v is None:
        return "-"
    return f"{v:.3f}" if unit == "s" else f"{v:.0f}"


def render(results):
    p = results["peers"]
    ours, qemu, raw = p.get("directvisor", {}), p.get("qemu", {}), p["raw-kvm-loop"]
    rows = ["| figure | directvisor | Debian QEMU | ratio (ours/QEMU) | raw KVM_RUN loop |",
            "|---|---|---|---|---|"]
    for key, label, unit in FIGURES:
        a, b = ours.get(key), qemu.get(key)
        ratio = f"{a / b:.3f}" if a is not None and b else "-"
        rows.append(f"| {label} ({unit}) | {fmt(a, unit)} | {fmt(b, unit)} | {ratio} "
                    f"| {fmt(raw.get(key), unit)} |")
    return "\n".join(rows)


def write_doc(section, table):
    """Replace the table between this section's markers in docs/benchmarks.md."""
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    block = f"{begin}\n{table}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r"[\s\S]*?" + re.escape(end), block, text)
    else:
        text += "\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
