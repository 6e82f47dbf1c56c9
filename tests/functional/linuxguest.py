"""The Linux test guest (tests/guest/linux/README.md) for functional tests:
Debian's stock kernel from the rig's cache with the small initramfs that
tests/guest/linux/mkinitramfs.sh builds, driven over a serial port that
goes to a file.  The same command line boots it under this VMM and under
Debian's QEMU (the peer)."""
import base64
import glob
import os
import re
import stat
import subprocess
import sys
import time

from harness import BUILD, QEMU, ROOT, VMM, Qmp, Vmm

KERNEL_DIR = os.path.join(BUILD, "rig", "kernel")
KERNEL = os.path.join(KERNEL_DIR, "vmlinuz")
GUEST_SRC = os.path.join(ROOT, "tests", "guest", "linux")
INITRAMFS = os.path.join(BUILD, "tests", "guest", "linux", "initramfs.cpio")
BINARIES = {"vmm": VMM, "peer": QEMU}

# The guest's kernel command line, besides dv.* words.  Measured in L2
# (README.md, "Boot time"): quiet keeps the kernel's messages off the
# 8250 (each character a port write, costly nested; dmesg still has them
# all); the others skip nothing a test looks at.
BASE_APPEND = "console=ttyS0 quiet panic=-1"


def sources():
    return ([os.path.join(GUEST_SRC, n)
             for n in ("init", "lib.sh", "dirty.c", "mkinitramfs.sh")]
            + glob.glob(os.path.join(GUEST_SRC, "scenarios", "*.sh")))


def missing():
    """Why the guest cannot boot here, or None."""
    if not os.path.exists(KERNEL):
        return f"{KERNEL} missing: run bash tests/rig/rig.sh --build-only"
    return None


def ensure_initramfs():
    """Builds the initramfs when it is missing or older than its sources."""
    assert missing() is None, missing()
    if os.path.exists(INITRAMFS):
        built = os.path.getmtime(INITRAMFS)
        if all(os.path.getmtime(s) <= built for s in sources()):
            return INITRAMFS
    subprocess.run(["bash", os.path.join(GUEST_SRC, "mkinitramfs.sh")], check=True)
    return INITRAMFS


def newc(files):
    """A cpio archive (newc) of files: {path: text or bytes}, mode 0755."""
    out = bytearray()
    ino = 0x7000

    def entry(name, mode, data):
        nonlocal ino
        ino += 1
        name_b = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + name_b)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    dirs = sorted({os.path.dirname(p.strip("/")) for p in files} - {""})
    for d in dirs:
        entry(d, stat.S_IFDIR | 0o755, b"")
    for path, data in sorted(files.items()):
        entry(path.strip("/"), stat.S_IFREG | 0o755,
              data.encode() if isinstance(data, str) else data)
    entry("TRAILER!!!", 0, b"")
    return bytes(out)


def initrd(directory, scenarios=None):
    """The initramfs to boot: the built one, plus (when scenarios, a dict
    {name: shell text}, is given) an appended archive with
    /scenarios/NAME.sh for each, run by dv.run=NAME.  Returns the path."""
    base = ensure_initramfs()
    if not scenarios:
        return base
    path = os.path.join(directory, "initrd.cpio")
    with open(base, "rb") as f, open(path, "wb") as out:
        out.write(f.read())
        out.write(newc({f"scenarios/{n}.sh": s for n, s in scenarios.items()}))
    return path


def append(run="", extra="", sh=None):
    """The kernel command line: run (scenarios, comma-separated), extra
    words, and sh, a shell snippet the guest runs after the scenarios
    (base64 on the command line: it must stay under the kernel's 2048
    bytes in all)."""
    words = [BASE_APPEND]
    if run:
        words.append(f"dv.run={run}")
    if extra:
        words.append(extra)
    if sh:
        words.append("dv.sh=" + base64.b64encode(sh.encode()).decode())
    return " ".join(words)


def vm_args(log, smp=1, mem="256M", run="", extra_append="", initrd_path=None,
            extra=(), reboot=False, sh=None):
    """The command line both VMMs take: KVM, -cpu host, COM1 to file log."""
    args = ["-enable-kvm", "-cpu", "host", "-smp", str(smp), "-m", mem,
            "-nodefaults", "-display", "none",
            "-serial", f"file:{log}",
            "-kernel", KERNEL, "-initrd", initrd_path or ensure_initramfs(),
            "-append", append(run, extra_append, sh)]
    if not reboot:
        args.append("-no-reboot")
    return args + list(extra)


class Guest:
    """One VMM process running the Linux guest, its COM1 in a file."""

    def __init__(self, which, directory, name, netns=None, **kw):
        """netns: a network namespace to run the VMM in (`ip netns exec`,
        which execs it: the process is the VMM's)."""
        self.which = which
        self.netns = netns
        self.log = os.path.join(directory, name + ".log")
        open(self.log, "wb").close()
        self.args = vm_args(self.log, **kw)
        self.started = time.time()
        self.vmm = self._start()
        self.rebooted_silent = False

    def _start(self):
        if self.netns:
            return Vmm(["netns", "exec", self.netns, BINARIES[self.which]] + self.args,
                       binary="ip")
        return Vmm(self.args, binary=BINARIES[self.which])

    def _silent_reset_in_rig(self):
        """In the rig, TCG's SVM emulation now and then resets an L2 before
        its kernel prints a byte, under Debian's QEMU as under this VMM
        (tests/rig/README.md): under -no-reboot the VMM exits 0 with an
        empty log.  Boot such a guest once more (once: a VMM that does it
        every time still fails); anywhere else it is a failure."""
        if (os.environ.get("DV_RIG") != "1" or self.rebooted_silent
                or self.vmm.proc.returncode != 0 or self.text()):
            return False
        self.vmm.__exit__(None, None, None)
        cause = [ln for ln in (self.vmm.stderr_tail or "").splitlines()
                 if "guest reset (" in ln or "triple fault" in ln]
        print(f"rig: {self.which} reset before its first output byte (TCG): "
              f"{'; '.join(cause) or 'no cause said'}: booting it once more",
              file=sys.stderr, flush=True)
        self.rebooted_silent = True
        open(self.log, "wb").close()
        self.started = time.time()
        self.vmm = self._start()
        return True

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace").replace("\r", "")

    def complete_lines(self):
        """The log up to its last newline: a line still being written would
        match a pattern's `$` at the end of the text, cut short."""
        text = self.text()
        return text[:text.rfind("\n") + 1]

    def wait_for(self, pattern, timeout=180, count=1, after=0):
        """Waits until pattern (a regex) has matched count times in the log
        from offset after on; returns the last match.  Fails at once if the
        VMM exits first."""
        deadline = time.time() + timeout
        rx = re.compile(pattern, re.M)
        while True:
            found = list(rx.finditer(self.complete_lines()[after:]))
            if len(found) >= count:
                return found[count - 1]
            if self.vmm.proc.poll() is not None:
                found = list(rx.finditer(self.text()[after:]))
                if len(found) >= count:
                    return found[count - 1]
                if self._silent_reset_in_rig():
                    continue
                raise AssertionError(
                    f"{self.which} exited ({self.vmm.proc.returncode}) before "
                    f"{pattern!r} x{count}:\n{self.tail()}\nstderr: "
                    f"{self.vmm.proc.stderr.read().decode(errors='replace')}")
            if time.time() > deadline:
                raise AssertionError(
                    f"no {pattern!r} x{count} from {self.which} in {timeout} s:\n"
                    f"{self.tail()}\n{self.threads_report()}")
            time.sleep(0.1)

    def threads_report(self):
        """For a guest that went quiet: each thread of the VMM with its
        state and the CPU time it took over one second (a vCPU thread
        sleeping in KVM_RUN is a halted guest waiting for an interrupt; one
        running all the second is a guest spinning)."""
        def sample():
            out = {}
            for task in glob.glob(f"/proc/{self.vmm.proc.pid}/task/*"):
                try:
                    with open(f"{task}/comm") as f:
                        comm = f.read().strip()
                    with open(f"{task}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    with open(f"{task}/wchan") as f:
                        wchan = f.read().strip()
                except OSError:
                    continue
                out[os.path.basename(task)] = (comm, fields[0], int(fields[11]) + int(fields[12]),
                                               wchan)
            return out
        before = sample()
        time.sleep(1)
        after = sample()
        tick = os.sysconf("SC_CLK_TCK")
        rows = [f"{comm} {state} {(t - before[tid][2]) * 1000 // tick} ms/s in {wchan or '-'}"
                for tid, (comm, state, t, wchan) in sorted(after.items()) if tid in before]
        return f"{self.which}'s threads: " + ("; ".join(rows) or "none (it has ended)")

    def tail(self, n=40):
        return "\n".join(self.text().splitlines()[-n:])

    def ready(self, timeout=180, count=1):
        """(cpus, MemTotal in MiB) of the count-th `linux: ready` line."""
        m = self.wait_for(r"^linux: ready cpus=(\d+) mem=(\d+)$", timeout, count)
        self.ready_s = time.time() - self.started
        return int(m.group(1)), int(m.group(2))

    def wait_exit(self, timeout=120):
        """The VMM's exit status once it has ended by itself."""
        try:
            return self.vmm.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.which} still running after {timeout} s:\n"
                                 f"{self.tail()}")

    def qmp(self, path, timeout=60):
        """A Qmp client on the unix socket path this VMM was told to create;
        fails with the VMM's stderr if it exits first."""
        deadline = time.time() + timeout
        while not os.path.exists(path):
            if self.vmm.proc.poll() is not None:
                raise AssertionError(
                    f"{self.which} exited ({self.vmm.proc.returncode}) before "
                    f"creating {path}: "
                    f"{self.vmm.proc.stderr.read().decode(errors='replace')}")
            if time.time() > deadline:
                raise AssertionError(f"{self.which} did not create {path} in {timeout} s")
            time.sleep(0.05)
        return Qmp(path)

    def fails(self):
        return re.findall(r"^linux: fail .*$", self.text(), re.M)

    def kill(self):
        self.vmm.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.vmm.__exit__(*exc)


def close_all(guests):
    """A test's clean-up: kill every guest's VMM and reap it (None is
    skipped), so that none outlives the test whatever failed."""
    for g in guests:
        if g is not None:
            g.kill()
            g.__exit__(None, None, None)


def sh(*cmd, check=True):
    """Run a host command (a list of words); its stderr names a failure."""
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    assert not check or p.returncode == 0, f"{' '.join(cmd)}: {p.stderr.strip()}"
    return p


def module(name):
    """The module's bytes (uncompressed) from the rig's kernel cache."""
    kver = open(os.path.join(KERNEL_DIR, "kver")).read().strip()
    base = os.path.join(KERNEL_DIR, "root", "lib", "modules", kver, "kernel")
    found = glob.glob(os.path.join(base, "**", name + ".ko*"), recursive=True)
    assert found, f"{name}.ko is not in the rig's kernel cache (rig.sh --build-only)"
    data = open(found[0], "rb").read()
    if found[0].endswith(".xz"):
        data = subprocess.run(["xz", "-dc"], input=data, capture_output=True,
                              check=True).stdout
    return data


def tap_netns(name, tap, host_ip, multi_queue=False):
    """A fresh network namespace name (an old one of that name deleted) holding
    an up tap device with host_ip/24: the host side of a guest's -netdev tap.
    multi_queue: the tap is made with IFF_MULTI_QUEUE, which -netdev
    tap,queues=N (N > 1) needs (the kernel refuses it on a tap made without,
    as QEMU reports)."""
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    for c in (["ip", "netns", "add", name],
              ["ip", "-n", name, "link", "set", "lo", "up"],
              ["ip", "-n", name, "tuntap", "add", "dev", tap, "mode", "tap"]
              + (["multi_queue"] if multi_queue else []),
              ["ip", "-n", name, "link", "set", tap, "up"],
              ["ip", "-n", name, "addr", "add", f"{host_ip}/24", "dev", tap]):
        p = subprocess.run(c, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, f"{' '.join(c)}: {p.stderr.strip()}"
    return name


def kmsg(text):
    """[(level, message)] of a `dmesg` scenario's output."""
    return [(int(m.group(1)), m.group(2))
            for m in re.finditer(r"^linux: kmsg (\d) (.*)$", text, re.M)]
