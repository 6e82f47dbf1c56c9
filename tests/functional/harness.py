"""Shared helpers for the functional tests: start the VMM (or Debian's QEMU)
with a command line, talk to its serial port over telnet, wait for lines."""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
# DV_SANITIZED=1 (`make sanitize`): the VMM and the unit tests of the
# ASan+UBSan build in build/san.  Leaks at a VMM's exit are not checked (it
# frees nothing on the way out, as QEMU); sanitizer exit statuses are set
# apart from the VMM's own 1.
SANITIZED = os.environ.get("DV_SANITIZED") == "1"
TOOLS = os.path.join(BUILD, "san") if SANITIZED else BUILD
VMM = os.path.join(TOOLS, "qemu-system-x86_64")
if SANITIZED:
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=0:exitcode=86")
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=87")
TESTOS = os.path.join(BUILD, "tests", "guest", "testos")
BLKIMAGE = os.path.join(ROOT, "tests", "guest", "blkimage.py")
QEMU = shutil.which("qemu-system-x86_64", path="/usr/bin")

IAC = 255
# pytest's exit status when the rig's L1 is wedged (scripts/check.py)
RIG_WEDGED = 42
# how much longer waits may take in the nested rig (TCG-emulated L1) than here
SLOW = 5 if os.environ.get("DV_RIG") == "1" else 1
# query-migrate's statuses once a migration is over
MIGRATION_ENDS = ("completed", "failed", "cancelled")


def reply_shape(value):
    """A QMP reply's shape, to compare two VMMs' replies: each dict's keys
    with their values' shapes, a list as its first item's, any other value
    its type's name."""
    if isinstance(value, dict):
        return {k: reply_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reply_shape(value[0])] if value else []
    return type(value).__name__


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kvm_usable():
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def kvm_kind():
    """What /dev/kvm is here: "none" (absent or not usable), "pvm" (the
    Pagetable-based VM module: guest kernel code emulated, no stock Linux
    guest, no IOMMU) or "hardware" (kvm_amd or kvm_intel).  DV_KVM_KIND=none
    pretends there is none, to try the no-KVM path of `make check` on a
    machine that has one."""
    if os.environ.get("DV_KVM_KIND") == "none" or not kvm_usable():
        return "none"
    if os.path.isdir("/sys/module/kvm_pvm"):
        return "pvm"
    if os.path.isdir("/sys/module/kvm_amd") or os.path.isdir("/sys/module/kvm_intel"):
        return "hardware"
    return "pvm"


def seed_args(port, vcpu=2, memory="2G"):
    """The boot command line of the user's guide, less -drive, -device,
    -qmp, -monitor and -osnet_cpumap."""
    return [
        "-enable-kvm",
        "-cpu", "host,host-cache-info=on",
        "-smp", f"cpus={vcpu},sockets=1,threads=1,maxcpus={vcpu}",
        "-m", memory,
        "-serial", f"telnet:127.0.0.1:{port},server,nowait",
        "-parallel", "none",
        "-serial", "none",
        "-net", "none",
        "-vga", "none",
        "-nographic",
        "-nodefaults",
    ]


def strip_telnet(data):
    """Drop telnet commands (IAC sequences) from a byte string."""
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b != IAC:
            out.append(b)
            i += 1
            continue
        if i + 1 >= len(data):
            break
        cmd = data[i + 1]
        if cmd == IAC:
            out.append(IAC)
            i += 2
        elif cmd in (251, 252, 253, 254):      # WILL WONT DO DONT + option
            i += 3
        elif cmd == 250:                       # SB ... IAC SE
            end = data.find(bytes([IAC, 240]), i + 2)
            i = len(data) if end < 0 else end + 2
        else:
            i += 2
    return bytes(out)


# Every Vmm the tests started, in order: conftest.py adds a failed test's
# VMMs' stderr (each guest reset's cause, below) to its report.
STARTED = []


def with_reset_log(argv):
    """argv with `-d cpu_reset` after this VMM's path where it runs a VM
    (directly or under `ip netns exec`): each reset or power off the guest
    asks for is said on stderr with its cause (a triple fault, port 0xcf9,
    the i8042...) and the vCPUs' registers, so a guest that resets with no
    message (seen in the rig) says why.  Debian's QEMU is left alone."""
    if "-enable-kvm" not in argv or "-d" in argv or VMM not in argv:
        return argv
    i = argv.index(VMM) + 1
    return argv[:i] + ["-d", "cpu_reset"] + argv[i:]


RESET_NOTES = os.path.join(BUILD, "diag", "resets.log")


def note_resets(args, stderr, test=None):
    """Appends the guest resets a VMM's stderr names (with_reset_log) to
    build/diag/resets.log with the test and the time, passed tests too:
    a soak (tests/rig/soak.sh) then counts the resets nobody asked for.
    A triple fault or a cause other than testos's i8042 reset at `done`
    comes with the whole stderr (its registers); the rest in one line."""
    lines = [ln for ln in stderr.splitlines()
             if "guest reset (" in ln or "guest shutdown (" in ln or "triple fault" in ln]
    if not lines:
        return
    whole = any("i8042" not in ln and "ACPI soft off" not in ln for ln in lines)
    try:
        os.makedirs(os.path.dirname(RESET_NOTES), exist_ok=True)
        with open(RESET_NOTES, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} "
                    f"{test or os.environ.get('PYTEST_CURRENT_TEST', '?')} "
                    f"{' '.join(a for a in args if a.endswith('.log'))}\n")
            f.write((stderr[-6000:] if whole else "\n".join(lines)).rstrip("\n") + "\n")
            if "triple fault" in stderr:
                f.write(kvm_shutdown_trace())
    except OSError:
        pass


def kvm_shutdown_trace(lines=40):
    """In the rig, the tail of L1's KVM trace (tests/rig/l1-init enables
    kvm_exit for SVM_EXIT_SHUTDOWN and kvm_inj_exception): the guest's RIP
    at a triple fault, which the VMM's own report no longer has on AMD."""
    if os.environ.get("DV_RIG") != "1":
        return ""
    try:
        with open("/sys/kernel/tracing/trace") as f:
            events = [ln for ln in f.read().splitlines() if not ln.startswith("#")]
    except OSError as e:
        return f"(L1's KVM trace: {e})\n"
    # testos's ring 3 asks ring 0 for service with ud2: a #UD per line it
    # prints, which would push the shutdowns out of a plain tail
    exits = [ln for ln in events if "kvm_exit:" in ln][-lines // 2:]
    injected = [ln for ln in events if "kvm_exit:" not in ln][-lines // 2:]
    return ("L1's KVM trace: the last shutdown exits (kvm_exit, the guest's RIP):\n" +
            "".join(ln + "\n" for ln in exits) +
            "the last exceptions KVM injected (kvm_inj_exception):\n" +
            "".join(ln + "\n" for ln in injected))


class Vmm:
    """A running VMM process with its stderr captured."""

    def __init__(self, args, binary=VMM, env=None, pass_fds=()):
        self.args = with_reset_log([binary] + list(args))
        self.stderr_tail = None
        self.ended_alone = None  # its exit status where kill() found it ended
        STARTED.append(self)
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, pass_fds=pass_fds)

    @property
    def pid(self):
        return self.proc.pid

    def wait(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        self.stdout = out.decode(errors="replace")
        self.stderr = err.decode(errors="replace")
        return self.proc.returncode

    def kill(self):
        # how it ended, where it did before the test stopped it (a crash, an
        # exit of its own): a failed test's report says (conftest.py)
        self.ended_alone = self.proc.poll()
        if self.ended_alone is None:
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                # seen in the nested rig: a VMM stuck in L1's kernel (an L2
                # vCPU that TCG's SVM emulation never lets exit) ignores
                # SIGKILL, and that L1 runs nothing well any more: end the
                # session there (scripts/check.py retries in a fresh L1)
                why = f"VMM pid {self.proc.pid} still alive 60 s after SIGKILL"
                if os.environ.get("DV_RIG") == "1":
                    import pytest
                    pytest.exit(f"L1 is wedged: {why}", returncode=RIG_WEDGED)
                raise AssertionError(why) from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        self.collect()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe:
                pipe.close()

    def how_it_ended(self):
        """'' while it runs or where the test's SIGKILL ended it; else its
        exit status (a QMP or HMP quit the test sent too) or the signal
        that ended it."""
        rc = self.ended_alone
        if rc is None:
            rc = self.proc.poll()
            if rc is None or rc == -signal.SIGKILL:
                return ""
        if rc < 0:
            try:
                return f"it had ended: killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"it had ended: killed by signal {-rc}"
        return f"it had ended: exit status {rc}"

    def core_backtrace(self, limit=12000):
        """Every thread's backtrace from the core of a VMM that died of a
        signal, where the system keeps cores as the rig does
        (/tmp/cores/core.PID, tests/rig/l1-init); the core is removed."""
        core = f"/tmp/cores/core.{self.proc.pid}"
        if not os.path.exists(core):
            return ""
        try:
            out = subprocess.run(["gdb", "-batch", "-nx", "-ex", "thread apply all bt 30",
                                  self.args[0], core], capture_output=True, text=True,
                                 timeout=120).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            out = f"gdb on {core}: {e}"
        finally:
            try:
                os.unlink(core)
            except OSError:
                pass
        return out[-limit:]

    def collect(self, test=None):
        """Once the VMM has ended: keep what is left of its stderr
        (stderr_tail) and note the resets it names (note_resets).  Called
        by __exit__ and, after a test's teardown, by conftest."""
        if self.stderr_tail is not None or self.proc.poll() is None:
            return
        self.stderr_tail = self.unread_stderr()
        note_resets(self.args, (getattr(self, "stderr", None) or "") + self.stderr_tail, test)

    def unread_stderr(self, limit=16384):
        """What is left in the stderr pipe of an ended VMM, without
        waiting (a child such as `exec:cat` may still hold the pipe)."""
        pipe = self.proc.stderr
        if not pipe or pipe.closed or self.proc.poll() is None:
            return ""
        chunks = []
        try:
            os.set_blocking(pipe.fileno(), False)
            while sum(map(len, chunks)) < 4 * limit:
                chunk = pipe.read1(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (OSError, ValueError, TypeError):
            pass
        finally:
            try:
                os.set_blocking(pipe.fileno(), True)
            except (OSError, ValueError):
                pass
        return b"".join(chunks).decode(errors="replace")[-limit:]


class Captured:
    """A process (a VMM under `ip netns exec`, say) whose stdout and stderr
    two threads collect as they come: text() and stderr() so far."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out, self.err = [], []
        self.threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                        for s, b in ((self.proc.stdout, self.out),
                                     (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    @staticmethod
    def _pump(stream, buf):
        for chunk in iter(lambda: stream.read1(65536), b""):
            buf.append(chunk)

    def text(self):
        return b"".join(self.out).decode(errors="replace")

    def stderr(self):
        return b"".join(self.err).decode(errors="replace")


class SerialClient:
    """A telnet-speaking client on a serial port; collects guest output."""

    def __init__(self, port, host="127.0.0.1", timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.002)
        self.buf = b""

    def read_some(self, timeout):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("serial connection closed")
        self.buf += strip_telnet(data)
        return True

    def text(self):
        return self.buf.decode(errors="replace")

    def wait_for(self, pattern, timeout=60):
        """Wait until pattern (a regex) appears; return the match."""
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.text())
            if m:
                return m
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError(f"no {pattern!r} in serial output:\n{self.text()}")
            try:
                self.read_some(left)
            except EOFError:
                m = rx.search(self.text())
                if m:
                    return m
                raise AssertionError(f"serial closed before {pattern!r}:\n{self.text()}")

    def read_until_closed(self, timeout=60):
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                self.read_some(deadline - time.time())
        except (EOFError, ConnectionResetError):
            pass
        return self.text()

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()


# ---- monitors (QMP clients, process bookkeeping) ----

import json  # noqa: E402

from qmpcheck import QmpChecker  # noqa: E402


def libvirt_user_binds(folder):
    """libvirt's QEMU driver parses its built-in user (libvirt-qemu)
    before it reads qemu.conf: where that user is missing (the rig's L1
    knows only root), /etc/passwd and /etc/group with it added, written
    into folder, as (file, /etc/file) pairs to bind-mount in a private
    mount namespace; [] where the host has the user."""
    import pwd
    try:
        pwd.getpwnam("libvirt-qemu")
        return []
    except KeyError:
        pass
    binds = []
    for name, line in (("passwd", "libvirt-qemu:x:64055:64055::/nonexistent:/bin/false\n"),
                       ("group", "libvirt-qemu:x:64055:\n")):
        path = os.path.join(folder, name)
        with open(f"/etc/{name}") as src, open(path, "w") as f:
            f.write(src.read() + line)
        binds.append((path, f"/etc/{name}"))
    return binds


def wait_for_path(path, timeout=20):
    """Wait until path exists (a unix socket a VMM is about to create)."""
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.005)


def serial_log(d, name):
    """The text so far of d/NAME.log, a VMM's `-serial file:` log ("" while
    the VMM has not made it yet)."""
    try:
        with open(os.path.join(d, name + ".log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_log_count(d, name, text, count, timeout=30):
    """Wait until text stands count times in d/NAME.log; fails naming what
    was not seen, with the log's tail."""
    deadline = time.time() + timeout
    while serial_log(d, name).count(text) < count:
        assert time.time() < deadline, \
            f"{name}: {count} x {text!r} not seen in {timeout} s: {serial_log(d, name)[-2000:]}"
        time.sleep(0.05)


def wait_migration_status(q, want=MIGRATION_ENDS, timeout=60 * SLOW, poll=0.05):
    """query-migrate (q a Qmp or QmpClient with ok()) until its status is
    one of want; its reply, or a failure naming the last one seen."""
    deadline = time.time() + timeout
    while True:
        info = q.ok("query-migrate")
        if info.get("status") in want:
            return info
        assert time.time() < deadline, \
            f"migration never reached {'/'.join(sorted(want))} in {timeout} s: {info}"
        time.sleep(poll)


def image_write_locked(image):
    """Does some process hold QEMU's "no other writers" byte (201) of
    image, as QEMU and this VMM do while they may write it?"""
    st = os.stat(image)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        return any(dev in line and line.split()[-2:] == ["201", "201"] for line in f)


def wait_image_write_locked(image, proc, timeout=30):
    """Wait until proc (a Popen) holds image's write lock; fail with its
    stderr if it exits first."""
    deadline = time.time() + timeout
    while not image_write_locked(image):
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"exited ({proc.returncode}) before locking {image}: {err}")
        if time.time() > deadline:
            raise TimeoutError(f"{image} not write-locked after {timeout} s")
        time.sleep(0.01)


def pattern_image(d):
    """d/disk.img: a 16 MiB raw image holding blkimage.py's pattern, which
    testos's blk scenario reads and checks."""
    img = os.path.join(d, "disk.img")
    subprocess.run(["qemu-img", "create", "-f", "raw", img, "16M"], check=True,
                   capture_output=True)
    subprocess.run([sys.executable, BLKIMAGE, "pattern", img], check=True)
    return img


def check_pattern_image(img):
    """blkimage.py check: what testos's blk scenario wrote verifies."""
    check = subprocess.run([sys.executable, BLKIMAGE, "check", img],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def third_writer_refused(args):
    """A VMM started with args, which open an image another VMM holds for
    writing, exits 1 naming the lock."""
    third = subprocess.run([VMM] + list(args), capture_output=True, text=True, timeout=30)
    assert third.returncode == 1 and "lock" in third.stderr, third.stderr


def end_process(proc, timeout=20):
    """Give proc (a Popen) timeout seconds to end by itself, then SIGKILL it;
    either way it is reaped."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def fd_count(pid):
    """Number of open file descriptors of process pid."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fd_count(pid, expected, timeout=10):
    """Wait until pid has `expected` fds open; return the last count seen."""
    deadline = time.time() + timeout
    while True:
        n = fd_count(pid)
        if n == expected or time.time() > deadline:
            return n
        time.sleep(0.01)


class QmpClient:
    """A small QMP client: one JSON value per line each way.  Events that
    arrive while waiting for a reply are kept in .events.

    Every message from this VMM is checked against qapi/*.json as it
    arrives (qmpcheck.py): a reply or event that drifts from the schema
    fails the test.  Debian's QEMU, known by its greeting, is not checked;
    schema_check=False turns the checks off for one connection."""

    def __init__(self, address, negotiate=True, timeout=20, schema_check=None):
        self.checker = QmpChecker(None if schema_check is None else bool(schema_check))
        deadline = time.time() + timeout
        while True:
            # a fresh socket each try: a failed connect leaves none to reuse
            # (create_connection makes and closes its own)
            sock = None
            try:
                if isinstance(address, str):
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.connect(address)
                else:
                    sock = socket.create_connection(address, timeout=1)
                break
            except OSError as e:
                if sock is not None:
                    sock.close()
                if time.time() > deadline:
                    raise TimeoutError(f"no QMP server at {address!r} after "
                                       f"{timeout} s: {e}") from e
                time.sleep(0.005)
        self.sock = sock
        self.sock.settimeout(None)
        self.buf = b""
        self.events = []
        self.greeting = self.recv()
        if negotiate:
            reply = self.cmd("qmp_capabilities")
            assert reply == {"return": {}}, reply

    def send_raw(self, data):
        self.checker.sent_raw(data)
        self.sock.sendall(data)

    def send(self, obj):
        self.checker.sent(obj)
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv_line(self, timeout=20):
        """The next line (without its line ending); None when closed."""
        line = self._next_line(timeout)
        if line is not None and self.checker.check is not False:
            self.checker.received(json.loads(line))
        return line

    def _next_line(self, timeout):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError(f"no reply; have {self.buf[:200]!r}")
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                continue
            data = self.sock.recv(1 << 20)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def recv(self, timeout=20):
        line = self._next_line(timeout)
        if line is None:
            raise EOFError("QMP connection closed")
        msg = json.loads(line)
        self.checker.received(msg)
        return msg

    def reply(self, timeout=20):
        """The next message that is not an event."""
        while True:
            msg = self.recv(timeout)
            if "event" in msg:
                self.events.append(msg)
            else:
                return msg

    def cmd(self, name, arguments=None, **extra):
        req = {"execute": name}
        if arguments is not None:
            req["arguments"] = arguments
        req.update(extra)
        self.send(req)
        return self.reply()

    def wait_event(self, name, timeout=20):
        deadline = time.time() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("event") == name:
                    return self.events.pop(i)
            self.events.append(self.recv(max(0.01, deadline - time.time())))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Qmp(QmpClient):
    """QmpClient with keyword arguments: q.ok("migrate", uri=...)."""

    def execute(self, name, **args):
        return self.cmd(name, args or None)

    def ok(self, name, **args):
        reply = self.execute(name, **args)
        assert "return" in reply, reply
        return reply["return"]
