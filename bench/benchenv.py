"""What every benchmark shares: where it runs (PVM, the nested rig or
hardware-backed KVM, and the load average), the guest CPU both VMMs get
(`-cpu host` on both; what QEMU needs on top of it on this host) and the
CPUID table each VMM's `-cpu host` really shows testos."""
import os
import re
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTOS = os.path.join(ROOT, "build", "tests", "guest", "testos")
VMM = os.path.join(ROOT, "build", "qemu-system-x86_64")
QEMU = "/usr/bin/qemu-system-x86_64"
QBOOT = "/usr/share/qemu/qboot.rom"
MICROVM_BIOS = "/usr/share/qemu/bios-microvm.bin"


def rig_settings():
    """In the rig's L1: the kvm_amd options, clock source and idle tick that
    shape its timings ("npt=0, clock source acpi_pm, nohz=off"), or what
    could not be read."""
    parts = []
    for name, path in (("npt", "/sys/module/kvm_amd/parameters/npt"),
                       ("clock source",
                        "/sys/devices/system/clocksource/clocksource0/current_clocksource")):
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            value = "?"
        if name == "npt":
            value = {"Y": "1", "N": "0"}.get(value, value)
            parts.append(f"npt={value}")
        else:
            parts.append(f"{name} {value}")
    try:
        with open("/proc/cmdline") as f:
            words = f.read().split()
        # the kernel takes the last nohz= (rig.sh --append can add one)
        parts.append(([w for w in words if w.startswith("nohz=")] or ["nohz=on"])[-1])
    except OSError:
        parts.append("nohz=?")
    return ", ".join(parts)


def place():
    """Where the figures come from, in words: never mix two places in a ratio."""
    if os.environ.get("DV_RIG") == "1":
        return (f"nested rig (L2 guest under L1's kvm_amd, L1 under Debian QEMU TCG; "
                f"L1's {rig_settings()}): not comparable with native figures")
    if os.path.isdir("/sys/module/kvm_pvm"):
        return "PVM (kvm_pvm: guest kernel mode emulated), this host natively"
    return "hardware-backed KVM, this host natively"


def place_short():
    if os.environ.get("DV_RIG") == "1":
        return "rig"
    return "PVM" if os.path.isdir("/sys/module/kvm_pvm") else "hardware KVM"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def caption(began=None):
    """One line above each table: where, on how many CPUs, at what load.
    began: (load average, date) taken when the runs began, for a caption
    written once they are over (it gives the load at both ends)."""
    now = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    if began:
        return (f"_Measured: {place()}; {os.cpu_count()} host CPUs; "
                f"load average {began[0]} (1/5/15 min) when this table's runs began, "
                f"{began[1]}, and {loadavg()} when they ended, {now}._")
    return (f"_Measured: {place()}; {os.cpu_count()} host CPUs; "
            f"load average {loadavg()} (1/5/15 min) when this table's runs began, {now}._")


_qemu_cpu = None


def qemu_cpu_args():
    """`-cpu host` for Debian's QEMU, less arch-capabilities where QEMU 7.2
    cannot set MSR 0x10a (PVM refuses the write and QEMU aborts at start);
    probed once with qboot (a fraction of a second)."""
    global _qemu_cpu
    if _qemu_cpu is not None:
        return _qemu_cpu
    _qemu_cpu = ["-cpu", "host"]
    if not os.path.exists(QEMU):
        return _qemu_cpu
    bios = ["-bios", QBOOT] if os.path.exists(QBOOT) else []
    probe = subprocess.run(
        [QEMU, "-enable-kvm", "-cpu", "host", *bios, "-display", "none", "-nodefaults",
         "-serial", "stdio", "-no-reboot", "-m", "128M", "-kernel", TESTOS,
         "-append", "testos.run=hello"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if probe.returncode != 0 and "MSR 0x10a" in probe.stderr:
        _qemu_cpu = ["-cpu", "host,-arch-capabilities"]
    return _qemu_cpu


def cpu_args(binary):
    """The guest CPU for either VMM: this VMM's -cpu host, QEMU's -cpu host."""
    return qemu_cpu_args() if os.path.realpath(binary) == os.path.realpath(QEMU) \
        else ["-cpu", "host"]


def cpuid_table(binary):
    """{"leaf.sub": (eax, ebx, ecx, edx)} from testos's cpuid scenario."""
    proc = subprocess.run(
        [binary, "-enable-kvm", *cpu_args(binary), "-display", "none", "-nodefaults",
         "-serial", "stdio", "-no-reboot", "-m", "128M", "-smp", "1", "-kernel", TESTOS,
         "-append", "testos.run=cpuid"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    table = {}
    for m in re.finditer(r"testos: cpuid (\w+)\.(\w+) (\w+) (\w+) (\w+) (\w+)", proc.stdout):
        table[f"{int(m.group(1), 16):x}.{int(m.group(2), 16):x}"] = \
            tuple(int(x, 16) for x in m.groups()[2:])
    return table


def cpuid_diff(ours, theirs):
    """Leaves (and registers) where the two VMMs' guests see different CPUID."""
    regs = ("eax", "ebx", "ecx", "edx")
    out = []
    for key in sorted(set(ours) | set(theirs),
                      key=lambda k: tuple(int(x, 16) for x in k.split("."))):
        a, b = ours.get(key), theirs.get(key)
        if a == b:
            continue
        if a is None or b is None:
            out.append({"leaf": key, "directvisor": a and [f"{x:x}" for x in a],
                        "qemu": b and [f"{x:x}" for x in b]})
            continue
        for r, x, y in zip(regs, a, b):
            if x != y:
                out.append({"leaf": key, "reg": r, "directvisor": f"{x:x}", "qemu": f"{y:x}"})
    return out
