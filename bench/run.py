#!/usr/bin/python3
"""make bench: run this VMM and Debian's QEMU side by side on the same testos
scenarios, both with -cpu host, repeat, and record medians and ratios in
build/bench/results.json and docs/benchmarks.md, each section with where it
was measured (PVM, nested rig, hardware KVM) and the load average.  Start-up
and memory are measured against every QEMU path that boots testos from
-kernel (pc with SeaBIOS, pc with qboot, microvm).  BENCH_ONLY=a,b runs only
those sections (cpu, boot, memory, core, qmp, exits, disk, migration, net,
outage, passthrough).
Timings are measured here, never asserted in tests."""
import json
import os
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchenv  # noqa: E402

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


def base_args(binary, scenario, mem="128M", smp=1, extra=""):
    append = f"testos.run={scenario} {extra}".strip()
    return ["-enable-kvm", *benchenv.cpu_args(binary), "-display", "none", "-nodefaults",
            "-serial", "stdio", "-no-reboot", "-m", mem, "-smp", str(smp),
            "-kernel", TESTOS, "-append", append]


# Every way each VMM boots testos from -kernel: this VMM's direct 64-bit
# entry; Debian QEMU's default pc path (SeaBIOS, then the linuxboot_dma
# option ROM running testos's real-mode setup), pc with qboot as the BIOS,
# and the microvm machine (its default firmware bios-microvm.bin, qboot
# again; no PCI, ISA serial, ACPI with an XSDT only, no i8042 and no port
# 0x61).  (name, binary, extra arguments, firmware file it needs)
BOOT_PEERS = [
    ("directvisor", VMM, [], None),
    ("QEMU pc, SeaBIOS + linuxboot_dma (default)", QEMU, [], None),
    ("QEMU pc, -bios qboot.rom", QEMU, ["-bios", benchenv.QBOOT], benchenv.QBOOT),
    ("QEMU -M microvm (bios-microvm.bin)", QEMU, ["-M", "microvm"], benchenv.MICROVM_BIOS),
]


def boot_peers():
    return [(n, b, x) for n, b, x, need in BOOT_PEERS
            if b and os.path.exists(b) and (need is None or os.path.exists(need))]


def run_to_lines(binary, args, stop=None, timeout=120):
    """Run until exit (or until `stop` is seen, or `timeout` s); return
    [(t, line)] with t in seconds since exec, plus the time of the first
    output byte and the process (still running when stopped early)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([binary] + args, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines, first_byte, buf = [], None, b""
    fd = proc.stdout.fileno()
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return lines, first_byte, proc      # timed out: the caller ends it
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
    proc.wait(timeout=timeout)
    return lines, first_byte, proc


def end(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def bench_boot(binary, extra):
    """Exec to the first byte and to `testos: ready` on COM1; the run stops at
    `testos: hello` (microvm has no i8042, so testos cannot end it by reset)."""
    lines, first, proc = run_to_lines(binary, base_args(binary, "hello") + extra,
                                      stop="testos: hello", timeout=60)
    end(proc)
    ready = next((t for t, l in lines if "testos: ready" in l), None)
    if ready is None or not any("testos: hello" in l for _, l in lines):
        raise RuntimeError(f"testos did not boot: {[l for _, l in lines][-3:]}")
    return {"first_output_s": first, "ready_s": ready}


def memory_kib(pid, ram_bytes):
    """RSS and PSS of the whole process (smaps_rollup) and of the guest-RAM
    mapping (the largest mapping at least ram_bytes long, from smaps)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("Rss", "Pss"):
                out[key.lower()] = int(line.split()[1])
    guest = {"rss": 0, "pss": 0}
    size, cur = None, {}
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                if size is not None and size >= ram_bytes and cur.get("rss", 0) > guest["rss"]:
                    guest = dict(cur)
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                size, cur = end - start, {}
            elif line.startswith(("Rss:", "Pss:")):
                cur[line[:3].lower()] = int(line.split()[1])
    if size is not None and size >= ram_bytes and cur.get("rss", 0) > guest["rss"]:
        guest = dict(cur)
    return {"rss_kib": out["rss"], "pss_kib": out["pss"],
            "rss_overhead_kib": out["rss"] - guest["rss"],
            "pss_overhead_kib": out["pss"] - guest.get("pss", 0)}


def bench_memory(binary, extra):
    lines, _, proc = run_to_lines(binary, base_args(binary, "idle") + extra,
                                  stop="testos: idle", timeout=60)
    try:
        if not any("testos: idle" in l for _, l in lines):
            raise RuntimeError("testos idle did not start")
        time.sleep(0.5)
        return memory_kib(proc.pid, 128 << 20)
    finally:
        end(proc)


def bench_pio(binary):
    lines, _, proc = run_to_lines(binary, base_args(binary, "pio"))
    end(proc)
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


def interleaved(fn, peers):
    """fn(*args) REPEAT times for each (name, args) peer, the peers taking
    turns (a busy moment on the host falls on all of them); the median of
    each figure per peer, or {"error": ...} for a peer that failed."""
    runs = {name: [] for name, _ in peers}
    errors = {}
    for _ in range(REPEAT):
        for name, args in peers:
            if name in errors:
                continue
            try:
                runs[name].append(fn(*args))
            except RuntimeError as e:
                errors[name] = str(e)
    return {name: {"error": errors[name]} if name in errors else
            {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]}
            for name, _ in peers}


def section_meta():
    return {"place": benchenv.place(), "place_short": benchenv.place_short(),
            "loadavg": benchenv.loadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime())}


def measure_cpu():
    """Both VMMs get -cpu host; what each guest then sees, leaf by leaf."""
    ours = benchenv.cpuid_table(VMM)
    out = {"directvisor_args": benchenv.cpu_args(VMM), "leaves": len(ours)}
    if QEMU:
        theirs = benchenv.cpuid_table(QEMU)
        out["qemu_args"] = benchenv.cpu_args(QEMU)
        out["diff"] = benchenv.cpuid_diff(ours, theirs)
    return out


def render_cpu(r):
    rows = [f"Both get `{' '.join(r['directvisor_args'])}`"
            + (f" (QEMU: `{' '.join(r['qemu_args'])}`)" if "qemu_args" in r else "")
            + f"; testos `cpuid` read {r['leaves']} leaf/subleaf pairs under each.", ""]
    if "diff" not in r:
        return "\n".join(rows + ["(Debian QEMU not installed: no comparison.)"])
    if not r["diff"]:
        return "\n".join(rows + ["Every leaf identical."])
    rows += ["| leaf.subleaf | register | directvisor | Debian QEMU |", "|---|---|---|---|"]
    for d in r["diff"]:
        rows.append(f"| {d['leaf']} | {d.get('reg', 'all')} | {d['directvisor']} | {d['qemu']} |")
    return "\n".join(rows)


def measure_boot():
    return interleaved(bench_boot, [(n, (b, x)) for n, b, x in boot_peers()])


def fastest_qemu(boot):
    ok = {k: v for k, v in boot.items() if k != "directvisor" and "ready_s" in v}
    return min(ok, key=lambda k: ok[k]["ready_s"]) if ok else None


def render_boot(boot):
    ours = boot.get("directvisor", {}).get("ready_s")
    rows = ["| VMM, boot path | exec to first guest byte (s) | exec to `testos: ready` (s) "
            "| ratio, ready (directvisor / this) |", "|---|---|---|---|"]
    for name, r in boot.items():
        if "error" in r:
            rows.append(f"| {name} | does not boot: {r['error']} | - | - |")
            continue
        ratio = f"{ours / r['ready_s']:.3f}" if ours and name != "directvisor" else "-"
        rows.append(f"| {name} | {r['first_output_s']:.3f} | {r['ready_s']:.3f} | {ratio} |")
    best = fastest_qemu(boot)
    if ours and best:
        rows += ["", f"**Headline: exec to ready {ours:.3f} s against QEMU's fastest working "
                 f"path ({best}) {boot[best]['ready_s']:.3f} s: ratio "
                 f"{ours / boot[best]['ready_s']:.3f}.**"]
    return "\n".join(rows)


def measure_memory():
    return interleaved(bench_memory, [(n, (b, x)) for n, b, x in boot_peers()])


def render_memory(mem):
    rows = ["| VMM, machine | RSS (KiB) | PSS (KiB) | RSS less guest RAM (KiB) "
            "| PSS less guest RAM (KiB) |", "|---|---|---|---|---|"]
    for name, r in mem.items():
        if "error" in r:
            rows.append(f"| {name} | {r['error']} | - | - | - |")
            continue
        rows.append(f"| {name} | {r['rss_kib']:.0f} | {r['pss_kib']:.0f} | "
                    f"{r['rss_overhead_kib']:.0f} | {r['pss_overhead_kib']:.0f} |")
    return "\n".join(rows)


def measure_pio():
    out = interleaved(bench_pio, [(name, (binary,)) for name, binary in PEERS.items()])
    out["raw-kvm-loop"] = median_of(bench_raw)
    return out


def render_pio(p):
    ours, qemu, raw = p.get("directvisor", {}), p.get("qemu", {}), p["raw-kvm-loop"]
    rows = ["| figure | directvisor | Debian QEMU (pc) | ratio (ours/QEMU) | raw KVM_RUN loop |",
            "|---|---|---|---|---|"]
    for key, label in (("pio_ring0_ns", "port-I/O exit round trip, ring 0 (ns)"),
                       ("pio_ring3_ns", "port-I/O exit round trip, ring 3 (ns)")):
        a, b, c = ours.get(key), qemu.get(key), raw.get(key)
        ratio = f"{a / b:.3f}" if a is not None and b else "-"
        rows.append(f"| {label} | {a if a is not None else '-'} | "
                    f"{b if b is not None else '-'} | {ratio} | {c if c is not None else '-'} |")
    return "\n".join(rows)


def measure_qmp():
    import qmp_rate
    peers = {name: [binary, *benchenv.cpu_args(binary)] for name, binary in PEERS.items()}
    rates = qmp_rate.measure(peers, 2000, REPEAT)
    return {k: statistics.median(v) for k, v in rates.items()}


def render_qmp(r):
    rows = ["| peer | QMP query-status round trips/s (median) |", "|---|---|"]
    rows += [f"| {k} | {v:.0f} |" for k, v in r.items()]
    if "qemu" in r:
        rows.append(f"| ratio | {r['directvisor'] / r['qemu']:.2f} |")
    return "\n".join(rows)


def measure_exits():
    import exits
    return exits.run(min(REPEAT, 3))


def measure_disk():
    import disk
    return disk.run(min(REPEAT, 3))


def measure_migration():
    import migration
    return migration.run(max(3, min(REPEAT, 5)))


def measure_net():
    import net
    return net.run(REPEAT)


def render_net(r):
    import net
    return net.render(r)


def measure_outage():
    """issue 16's outage table: in the rig's --iommu L1 only (an IOMMU and a
    NIC to pass); from the host, one rig run does every scenario."""
    import failover_outage
    return failover_outage.run_anywhere(int(os.environ.get("BENCH_OUTAGE_RUNS", "2")))


def render_outage(r):
    import failover_outage
    return failover_outage.render_section(r)


def measure_passthrough():
    """issue 15's passthrough iperf3 table: in the rig's --iommu L1 only;
    from the host, one rig run."""
    import passthrough
    return passthrough.run_anywhere(int(os.environ.get("BENCH_PASSTHROUGH_RUNS", "2")))


def render_passthrough(r):
    import passthrough
    return passthrough.render_section(r)


def render_exits(r):
    import exits
    return exits.render(r)


def render_disk(r):
    import disk
    return disk.render(r)


def render_migration(r):
    import migration
    return migration.render(r)


# section: (measure, render); docs/benchmarks.md has a marker pair for each
SECTIONS = {
    "cpu": (measure_cpu, render_cpu),
    "boot": (measure_boot, render_boot),
    "memory": (measure_memory, render_memory),
    "core": (measure_pio, render_pio),
    "qmp": (measure_qmp, render_qmp),
    "exits": (measure_exits, render_exits),
    "disk": (measure_disk, render_disk),
    "migration": (measure_migration, render_migration),
    "net": (measure_net, render_net),
    "outage": (measure_outage, render_outage),
    "passthrough": (measure_passthrough, render_passthrough),
}
# sections measured elsewhere (the rig), whose render gives its own caption
OWN_CAPTION = {"outage", "passthrough"}
# sections whose rig figures go to a table of their own ("NAME-rig" in
# results.json and docs/benchmarks.md), beside the native one
RIG_TABLES = {"net"}


def main():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("bench: no usable /dev/kvm", file=sys.stderr)
        return 1
    only = [x for x in os.environ.get("BENCH_ONLY", "").split(",") if x]
    for name in only:
        if name not in SECTIONS:
            print(f"bench: unknown section {name!r} in BENCH_ONLY "
                  f"(sections: {', '.join(SECTIONS)})", file=sys.stderr)
            return 2
    path = os.path.join(BUILD, "bench", "results.json")
    results = {}
    if only and os.path.exists(path):
        with open(path) as f:
            results = json.load(f)     # keep the sections not run this time
    results.update({"host": platform.node(), "kernel": platform.release(),
                    "repeat": REPEAT})
    results.setdefault("sections", {})
    for name, (measure, render_fn) in SECTIONS.items():
        if only and name not in only:
            continue
        meta = section_meta()
        data = measure()
        meta["loadavg_end"] = benchenv.loadavg()
        caption = benchenv.caption(began=(meta["loadavg"], meta["date"]))
        where = name + "-rig" if name in RIG_TABLES and meta["place_short"] == "rig" \
            else name
        results["sections"][where] = {"measured": meta, "results": data}
        table = render_fn(data) if name in OWN_CAPTION else caption + "\n\n" + render_fn(data)
        print(f"== {where}\n{table}\n", flush=True)
        write_doc(where, table)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def write_doc(section, table):
    """Replace the table between this section's markers in docs/benchmarks.md."""
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    block = f"{begin}\n{table}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r"[\s\S]*?" + re.escape(end), lambda m: block, text)
    else:
        text += "\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
