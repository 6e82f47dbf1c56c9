"""Live migration as libvirt 9.0 drives it (issue 17, items 3 and 6).

libvirt's source connects to the destination itself and hands QEMU the
socket: `getfd` with the descriptor attached to the command (SCM_RIGHTS
over the QMP unix socket), then `migrate {"uri": "fd:NAME"}`.  It switches
on `pause-before-switchover` on the source (the migration stops in
`pre-switchover` with the VM stopped until `migrate-continue`) and
`late-block-activate` on the destination (started `-S -incoming defer`: the
disk images are taken only on `cont`).  Each behaviour is compared with
Debian's QEMU 7.2 where the same steps can run on both, and a dirtying
testos guest checks that nothing is lost (tests/guest/dirtycheck.py over
the serial logs, as test_migration.py).

Last, `virsh migrate --live` between two libvirtd daemons on this host,
each in its own mount namespace (libvirt's fixed state paths under /run,
/var/lib, /var/cache, /var/log on tmpfs, its own /etc/libvirt with
libvirtd.conf and qemu.conf) with its own socket folder and host UUID; the
domain's serial port is a pty on each side, copied to a file by the test.
Serial as a file would need -add-fd, which libvirt 9.0 uses for it."""
import array
import contextlib
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tty
import uuid
import xml.etree.ElementTree as ET

import pytest

from harness import (QEMU, SLOW, TESTOS, VMM, Qmp, Vmm, end_process, fd_count, free_port,
                     image_write_locked, libvirt_user_binds, serial_log,
                     wait_migration_status)
from test_migration import (DIRTY, dirtycheck, migration_events, seqs, vm_args,
                            wait_runstate_settles, wait_seq)

pytestmark = [pytest.mark.vm]

BINARIES = {"vmm": VMM, "qemu": QEMU}


def send_with_fd(q, fd, name, arguments):
    """One QMP command with fd attached (SCM_RIGHTS), as libvirt sends
    getfd; the reply."""
    req = {"execute": name, "arguments": arguments}
    q.checker.sent(req)
    import json
    q.sock.sendmsg([json.dumps(req).encode() + b"\n"],
                   [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    return q.reply()


def getfd(q, fd, fdname):
    return send_with_fd(q, fd, "getfd", {"fdname": fdname})


def error_of(reply):
    assert "error" in reply, reply
    return reply["error"]["desc"]


def lock_bytes(image):
    """The bytes of image locked by anyone (QEMU's scheme: 100 + n, "I
    hold permission n"; 200 + n, "nobody else may take it"), from
    /proc/locks."""
    st = os.stat(image)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    held = set()
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if dev in fields:
                start, end = fields[-2:]
                held.update(range(int(start), int(end) + 1))
    return held


def exe_of(binary):
    exe = BINARIES[binary]
    if not exe:
        pytest.fail("Debian's qemu-system-x86_64, the oracle here, is not installed")
    return exe


def wait_running(q, failure, timeout=30):
    """Wait until q's VM runs (query-status "running"); else fail with failure."""
    deadline = time.time() + timeout * SLOW
    while q.ok("query-status")["status"] != "running":
        assert time.time() < deadline, failure
        time.sleep(0.05)


@pytest.mark.parametrize("binary", ["vmm", "qemu"])
def test_getfd_closefd_and_their_errors(binary):
    """getfd keeps the descriptor that came with it under a name, closefd
    closes it (the process holds one descriptor fewer), and the errors are
    QEMU's: no descriptor attached, a name starting with a digit, an
    unknown name for closefd and for migrate fd:NAME, migrate-continue
    outside pre-switchover."""
    exe = exe_of(binary)
    with tempfile.TemporaryDirectory() as d:
        with Vmm(vm_args(d, "vm", ["-S"]), binary=exe) as vm:
            q = Qmp(os.path.join(d, "vm.sock"))
            got = {}
            got["getfd without a descriptor"] = error_of(
                q.cmd("getfd", {"fdname": "mig"}))
            a, b = socket.socketpair()
            with a, b:
                got["getfd with a digit"] = error_of(getfd(q, a.fileno(), "1mig"))
                before = fd_count(vm.pid)
                assert getfd(q, a.fileno(), "mig") == {"return": {}}
                assert fd_count(vm.pid) == before + 1
                # the same name again: the new descriptor replaces the old
                assert getfd(q, b.fileno(), "mig") == {"return": {}}
                assert fd_count(vm.pid) == before + 1
                assert q.cmd("closefd", {"fdname": "mig"}) == {"return": {}}
                assert fd_count(vm.pid) == before
            got["closefd unknown"] = error_of(q.cmd("closefd", {"fdname": "mig"}))
            got["migrate-continue, nothing started"] = error_of(
                q.cmd("migrate-continue", {"state": "pre-switchover"}))
            got["migrate fd:unknown"] = error_of(q.cmd("migrate", {"uri": "fd:nosuch"}))
            # as QEMU: the migration that could not open its channel failed
            info = q.ok("query-migrate")
            got["query-migrate"] = (info.get("status"), info.get("error-desc"))
            got["migrate-continue"] = error_of(
                q.cmd("migrate-continue", {"state": "pre-switchover"}))
            caps = {c["capability"] for c in q.ok("query-migrate-capabilities")}
            assert {"events", "return-path", "pause-before-switchover",
                    "late-block-activate"} <= caps
            q.close()
    assert got == {
        "getfd without a descriptor": "No file descriptor supplied via SCM_RIGHTS",
        "getfd with a digit": "Parameter 'fdname' expects a name not starting with a digit",
        "closefd unknown": "File descriptor named 'mig' not found",
        "migrate fd:unknown": "File descriptor named 'nosuch' has not been found",
        "migrate-continue, nothing started": "Migration not in expected state: none",
        "query-migrate": ("failed", "File descriptor named 'nosuch' has not been found"),
        "migrate-continue": "Migration not in expected state: failed",
    }, f"{binary}: {got}"


@pytest.mark.rig_too
def test_migrate_over_descriptors_passed_with_getfd():
    """Both ends on descriptors passed with getfd, as libvirt does: a
    socket pair, one end to the destination's migrate-incoming fd:in
    (-incoming defer), the other to the source's migrate fd:out.  A guest
    dirtying 50 MiB/s loses nothing and runs on at the destination."""
    with tempfile.TemporaryDirectory() as d:
        with Vmm(vm_args(d, "src", append=DIRTY)), \
                Vmm(vm_args(d, "dst", ["-incoming", "defer"], append=DIRTY)):
            q_src = Qmp(os.path.join(d, "src.sock"))
            q_dst = Qmp(os.path.join(d, "dst.sock"))
            wait_seq(d, "src", 20)
            a, b = socket.socketpair()
            with a, b:
                assert getfd(q_dst, a.fileno(), "in") == {"return": {}}
                assert getfd(q_src, b.fileno(), "out") == {"return": {}}
            q_dst.ok("migrate-incoming", uri="fd:in")
            q_src.ok("migrate", uri="fd:out")
            info = wait_migration_status(q_src, {"completed", "failed", "cancelled"})
            assert info["status"] == "completed", info
            assert q_src.ok("query-status")["status"] == "postmigrate"
            assert q_dst.ok("query-status")["status"] == "running"
            # the descriptor left the table: its name is unknown now
            for q, name in ((q_src, "out"), (q_dst, "in")):
                assert error_of(q.cmd("closefd", {"fdname": name})) == \
                    f"File descriptor named '{name}' not found"
            wait_seq(d, "dst", max(seqs(d, "src")) + 50, q=q_dst)
            problem = dirtycheck(d, "src", "dst")
            assert not problem, problem
            q_src.close()
            q_dst.close()


class InheritingVmm(Vmm):
    """A VMM started with some descriptors of the test's left open."""

    def __init__(self, args, pass_fds, binary=VMM):
        super().__init__(args, binary=binary, pass_fds=pass_fds)


@pytest.mark.parametrize("binary", ["vmm", "qemu"])
def test_incoming_on_an_inherited_socket(binary):
    """-incoming fd:N: the destination reads the stream from a socket it
    inherited (a socket pair's end), the source writes to the other end
    passed with getfd; the guest goes on at the destination, nothing lost.
    The same steps run on Debian's QEMU."""
    exe = exe_of(binary)
    with tempfile.TemporaryDirectory() as d:
        a, b = socket.socketpair()
        with a, b, Vmm(vm_args(d, "src", append=DIRTY), binary=exe):
            with InheritingVmm(vm_args(d, "dst", ["-incoming", f"fd:{a.fileno()}"],
                                       append=DIRTY), [a.fileno()], binary=exe):
                q_src = Qmp(os.path.join(d, "src.sock"))
                q_dst = Qmp(os.path.join(d, "dst.sock"))
                wait_seq(d, "src", 5)
                assert getfd(q_src, b.fileno(), "out") == {"return": {}}
                q_src.ok("migrate", uri="fd:out")
                info = wait_migration_status(q_src, {"completed", "failed", "cancelled"})
                assert info["status"] == "completed", f"{binary}: {info}"
                wait_running(q_dst, f"{binary}: the destination never ran")
                wait_seq(d, "dst", max(seqs(d, "src")) + 20, q=q_dst)
                problem = dirtycheck(d, "src", "dst")
                assert not problem, f"{binary}: {problem}"
                q_src.close()
                q_dst.close()


@contextlib.contextmanager
def pair(d, binary, src_extra=(), dst_extra=(), append=DIRTY, seq=3):
    """A source and a destination (-incoming defer) under binary, QMP to each:
    yields (q_src, q_dst) once the source's guest has printed `testos: seq
    SEQ` (seq None: at once); closes both clients after the test's steps."""
    exe = exe_of(binary)
    src = Vmm(vm_args(d, "src", list(src_extra), append=append), binary=exe)
    dst = Vmm(vm_args(d, "dst", ["-incoming", "defer", *dst_extra], append=append),
              binary=exe)
    with src, dst:
        q_src = Qmp(os.path.join(d, "src.sock"))
        q_dst = Qmp(os.path.join(d, "dst.sock"))
        if seq is not None:
            wait_seq(d, "src", seq)
        yield q_src, q_dst
        q_src.close()
        q_dst.close()


def migrate_tcp(q_src, q_dst):
    """The destination listens on a free TCP port (migrate-incoming), the
    source migrates there."""
    port = free_port()
    q_dst.ok("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
    q_src.ok("migrate", uri=f"tcp:127.0.0.1:{port}")


def migrate_to_pre_switchover(q_src, q_dst):
    """With pause-before-switchover on the source, a migration that stops
    in pre-switchover."""
    q_src.ok("migrate-set-capabilities", capabilities=[
        {"capability": "pause-before-switchover", "state": True}])
    migrate_tcp(q_src, q_dst)
    info = wait_migration_status(q_src, {"pre-switchover", "completed", "failed"})
    assert info["status"] == "pre-switchover", info


@pytest.mark.parametrize("binary", ["vmm", "qemu"])
def test_pause_before_switchover(binary):
    """pause-before-switchover: the source stops its VM and waits in
    pre-switchover (run state finish-migrate) until migrate-continue
    {"state": "pre-switchover"}; a continue naming another state is
    refused with QEMU's text; then device and completed, and the guest goes
    on at the destination having lost nothing.  The MIGRATION events'
    statuses are Debian QEMU's, in the same order."""
    with tempfile.TemporaryDirectory() as d:
        with pair(d, binary) as (q_src, q_dst):
            for q in (q_src, q_dst):
                q.ok("migrate-set-capabilities",
                     capabilities=[{"capability": "events", "state": True}])
            migrate_to_pre_switchover(q_src, q_dst)
            assert q_src.ok("query-status")["status"] == "finish-migrate"
            # it stays there: nothing moves until migrate-continue
            time.sleep(0.5)
            assert q_src.ok("query-migrate")["status"] == "pre-switchover"
            wrong = error_of(q_src.cmd("migrate-continue", {"state": "active"}))
            assert wrong == "Migration not in expected state: pre-switchover", wrong
            q_src.ok("migrate-continue", state="pre-switchover")
            info = wait_migration_status(q_src, {"completed", "failed"})
            assert info["status"] == "completed", info
            statuses = [s for i, s in enumerate(migration_events(q_src))
                        if i == 0 or s != migration_events(q_src)[i - 1]]
            assert statuses == ["setup", "active", "pre-switchover", "device",
                                "completed"], f"{binary}: {statuses}"
            wait_running(q_dst, "the destination never ran")
            wait_seq(d, "dst", max(seqs(d, "src")) + 20, q=q_dst)
            problem = dirtycheck(d, "src", "dst")
            assert not problem, f"{binary}: {problem}"


@pytest.mark.parametrize("binary", ["vmm", "qemu"])
def test_cancel_in_pre_switchover_resumes_the_source(binary):
    """migrate_cancel while the source waits in pre-switchover: the
    migration ends cancelled and the guest runs on at the source."""
    with tempfile.TemporaryDirectory() as d:
        with pair(d, binary) as (q_src, q_dst):
            migrate_to_pre_switchover(q_src, q_dst)
            q_src.ok("migrate_cancel")
            info = wait_migration_status(q_src, {"cancelled", "failed", "completed"})
            assert info["status"] == "cancelled", f"{binary}: {info}"
            wait_running(q_src, "the source never ran again")
            wait_seq(d, "src", max(seqs(d, "src")) + 20, q=q_src)


@pytest.mark.parametrize("binary", ["vmm", "qemu"])
@pytest.mark.parametrize("late", [True, False])
def test_late_block_activate(binary, late):
    """A destination started -S -incoming defer with a disk on shared
    storage: with late-block-activate it holds no lock on the image when
    the migration completes, only from cont on; without it, it holds the
    image's write permission at once.  The lock bytes (/proc/locks) are
    Debian QEMU's in each case."""
    with tempfile.TemporaryDirectory() as d:
        image = os.path.join(d, "disk.img")
        with open(image, "wb") as f:
            f.truncate(16 << 20)
        drive = ["-drive", f"file={image},format=raw,if=virtio"]
        with pair(d, binary, drive, ["-S", *drive], append="testos.run=hello",
                  seq=None) as (q_src, q_dst):
            assert image_write_locked(image)
            if late:
                q_dst.ok("migrate-set-capabilities", capabilities=[
                    {"capability": "late-block-activate", "state": True}])
            migrate_tcp(q_src, q_dst)
            assert wait_migration_status(q_src, {"completed", "failed"})["status"] == "completed"
            assert wait_runstate_settles(q_dst) == "paused"
            paused = lock_bytes(image)
            q_dst.ok("cont")
            running = lock_bytes(image)
            why = f"{binary}, late-block-activate {late}: paused {sorted(paused)}, " \
                  f"running {sorted(running)}"
            if late:
                assert paused == set(), why        # the image is not touched
            else:
                # consistent read and write held at once (Debian's QEMU
                # leaves "nobody else writes", 201, to the first cont)
                assert {100, 101} <= paused, why
            assert running == {100, 101, 201}, why


# ---- virsh migrate --live between two libvirt daemons ----

VIRSH = shutil.which("virsh")
LIBVIRTD = "/usr/sbin/libvirtd"
# libvirt keeps its state under fixed paths when it runs as root: each
# daemon gets fresh ones in its own mount namespace, and its own
# configuration over /etc/libvirt
PRIVATE = ["/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"]
QEMU_CONF = """user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
migration_port_min = {port}
migration_port_max = {port_max}
"""
DOMAIN = """<domain type='kvm'>
  <name>dvmig</name>
  <memory unit='MiB'>128</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-4.2'>hvm</type>
    <kernel>{kernel}</kernel>
    <cmdline>{append}</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>{emulator}</emulator>
{disk}    <serial type='pty'><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


class Libvirtd:
    """A libvirtd of its own: configuration, sockets, state and log in
    folder (state on tmpfs in a private mount namespace), its own host
    UUID (libvirt refuses a migration to the host it runs on)."""

    def __init__(self, folder, port):
        self.folder = folder
        etc = os.path.join(folder, "etc")
        os.makedirs(etc)
        os.makedirs(os.path.join(folder, "sock"))
        self.log = os.path.join(folder, "libvirtd.log")
        with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
            f.write(f'unix_sock_dir = "{folder}/sock"\n'
                    f'host_uuid = "{uuid.uuid4()}"\n'
                    f'log_outputs = "1:file:{self.log}"\n'
                    'log_filters = "1:qemu.qemu_monitor 3:*"\n')
        with open(os.path.join(etc, "qemu.conf"), "w") as f:
            f.write(QEMU_CONF.format(port=port, port_max=port + 20))
        # the rig's L1 has none of these folders, nor the libvirt-qemu user
        binds = [(etc, "/etc/libvirt")] + libvirt_user_binds(etc)
        mounts = " && ".join([f"mkdir -p {' '.join(PRIVATE)} /etc/libvirt"] +
                             [f"mount -t tmpfs none {p}" for p in PRIVATE] +
                             [f"mount --bind {a} {b}" for a, b in binds])
        script = (f"{mounts} && exec {LIBVIRTD} "
                  f"-f /etc/libvirt/libvirtd.conf -p {folder}/libvirtd.pid")
        self.uri = f"qemu+unix:///system?socket={folder}/sock/libvirt-sock"
        self.out = open(os.path.join(folder, "out"), "w")
        # unshare and sh exec: the Popen's pid is libvirtd's
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                      "--", "sh", "-c", "exec sh -c " + shlex.quote(script)],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + 30 * SLOW
        while self.virsh("version").returncode != 0:
            if self.proc.poll() is not None or time.time() > deadline:
                with open(os.path.join(folder, "out"), errors="replace") as f:
                    out = f.read()[-1500:]
                raise AssertionError(f"libvirtd in {folder} did not start "
                                     f"(exit {self.proc.poll()}): {out}{self.tail()}")
            time.sleep(0.2)

    def virsh(self, *args, timeout=120):
        return subprocess.run([VIRSH, "-c", self.uri, *args], capture_output=True,
                              text=True, timeout=timeout)

    def ok(self, *args, timeout=120):
        r = self.virsh(*args, timeout=timeout)
        assert r.returncode == 0, f"virsh {' '.join(args)}: {r.stderr}{self.tail()}"
        return r.stdout

    def tail(self):
        try:
            with open(self.log, errors="replace") as f:
                errors = [ln for ln in f if " error : " in ln]
            return "; libvirtd errors: " + " | ".join(errors[-5:])
        except FileNotFoundError:
            return ""

    def run_file(self, name):
        """A file of the daemon's QEMU driver state (run/libvirt/qemu), as
        seen from here through its private mount namespace."""
        return f"/proc/{self.proc.pid}/root/run/libvirt/qemu/{name}"

    def domain_pid(self, name):
        """The domain's VMM process, from the pid file in the daemon's
        namespace (None when it has none)."""
        try:
            with open(self.run_file(f"{name}.pid")) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None

    def stop(self):
        pid = self.domain_pid("dvmig")
        self.virsh("destroy", "dvmig", timeout=30)
        if pid and self.domain_pid("dvmig") == pid:
            os.kill(pid, signal.SIGKILL)   # libvirtd leaves its VMs behind
        self.proc.terminate()
        end_process(self.proc)
        self.out.close()


class PtyLog(threading.Thread):
    """Copies what the guest prints on a pty to a file until the VMM
    closes it (the source's VMM ends after the migration)."""

    def __init__(self, pty, path):
        super().__init__(daemon=True)
        self.fd = os.open(pty, os.O_RDONLY | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.path = path
        self.stopping = False
        self.start()

    def run(self):
        with open(self.path, "wb", buffering=0) as out:
            while not self.stopping:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if not ready:
                    continue
                try:
                    data = os.read(self.fd, 65536)
                except OSError:   # EIO: the other end is gone
                    break
                if not data:
                    break
                out.write(data)
        os.close(self.fd)

    def stop(self):
        self.stopping = True
        self.join(timeout=10)


def status_pty(daemon, name="dvmig"):
    """The domain's serial pty as the daemon's status file names it (what
    dumpxml says, without two virsh round trips, which in the rig's L1 take
    a second or more), or None while it names none."""
    try:
        source = ET.parse(daemon.run_file(f"{name}.xml")).getroot().find(".//domain/devices/serial/source")
    except (OSError, ET.ParseError):   # not there yet, or being rewritten
        return None
    pty = source.get("path", "") if source is not None else ""
    return pty if pty.startswith("/dev/pts/") else None


class DumpxmlPty(threading.Thread):
    """Asks the daemon with virsh, once a second, for the domain's pty
    until it names one (self.pty) or stop() is called."""

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.daemon_ = daemon
        self.pty = None
        self.stopping = threading.Event()
        self.start()

    def run(self):
        while not self.stopping.wait(1):
            try:
                if self.daemon_.virsh("domstate", "dvmig", timeout=30).returncode != 0:
                    continue
                self.pty = pty_path(self.daemon_)
                return
            except (AssertionError, subprocess.TimeoutExpired):
                pass   # not started far enough yet, or the daemon slow

    def stop(self):
        self.stopping.set()
        self.join(timeout=60)


def pty_path(daemon):
    xml = ET.fromstring(daemon.ok("dumpxml", "dvmig"))
    source = xml.find("./devices/serial/source")
    assert source is not None and source.get("path", "").startswith("/dev/pts/"), \
        ET.tostring(xml.find("./devices/serial")).decode()
    return source.get("path")


DISK = """    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{image}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
"""


@pytest.mark.parametrize("mode", ["direct", "p2p", "disk"])
def test_virsh_migrate_live_between_two_daemons(mode):
    """`virsh migrate --live` of a testos guest dirtying 50 MiB/s from one
    libvirtd to another (each with its own state and host UUID, the
    stream over TCP on 127.0.0.1, libvirt's own socket handed over with
    getfd): libvirt sets pause-before-switchover and return-path on the
    source and late-block-activate on the destination, continues from
    pre-switchover, and the domain ends up running at the destination and
    gone from the source, its serial output (read from each side's pty)
    whole across the switch.  direct: virsh talks to both daemons; p2p
    (--p2p): the source daemon talks to the destination's itself; disk:
    direct with a raw disk on storage both see (--unsafe: libvirt cannot
    tell this folder is shared), which the destination holds afterwards
    (its lock bytes as QEMU's while running)."""
    if not VIRSH or not os.path.exists(LIBVIRTD):
        pytest.fail("Debian's libvirt is not installed: run scripts/install-deps.sh")
    with tempfile.TemporaryDirectory() as d:
        src = Libvirtd(os.path.join(d, "src"), 49200 + os.getpid() % 200)
        try:
            dst = Libvirtd(os.path.join(d, "dst"), 49600 + os.getpid() % 200)
            try:
                xml = os.path.join(d, "dom.xml")
                with open(xml, "w") as f:
                    image = os.path.join(d, "disk.img")
                    with open(image, "wb") as img:
                        img.truncate(16 << 20)
                    disk = DISK.format(image=image) if mode == "disk" else ""
                    f.write(DOMAIN.format(kernel=TESTOS, emulator=VMM, append=DIRTY,
                                          disk=disk))
                # paused until its pty is read: the guest's first lines count
                src.ok("create", xml, "--paused")
                src_log = PtyLog(pty_path(src), os.path.join(d, "src.log"))
                src.ok("resume", "dvmig")
                wait_seq(d, "src", 20)
                t_migrate = time.time()
                migrate = subprocess.Popen(
                    [VIRSH, "-c", src.uri, "migrate", "--live",
                     *(["--p2p"] if mode == "p2p" else []),
                     *(["--unsafe"] if mode == "disk" else []), "dvmig", dst.uri,
                     "--migrateuri", "tcp://127.0.0.1"],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                try:
                    # the destination's pty, read before its guest runs: a VMM
                    # drops what it writes to a pty nobody has open (QEMU's
                    # pty chardev too).  Its status file, looked at every
                    # 20 ms, names the pty as soon as libvirt knows it; virsh
                    # dumpxml besides, on a thread of its own (a virsh round
                    # trip takes a second or more in the rig's L1, and must
                    # not hold up the status file's reading).
                    fallback = DumpxmlPty(dst)
                    dst_log = None
                    deadline = time.time() + 120 * SLOW
                    dst_pid_at = None   # when the destination's VMM had a pid
                    try:
                        while dst_log is None:
                            assert time.time() < deadline, \
                                f"no destination pty in {120 * SLOW} s"
                            assert migrate.poll() is None or migrate.returncode == 0, \
                                f"{migrate.stdout.read()}{src.tail()}{dst.tail()}"
                            if dst_pid_at is None and dst.domain_pid("dvmig"):
                                dst_pid_at = time.time()
                            pty, found_by = status_pty(dst), "status file"
                            if pty is None and fallback.pty:
                                pty, found_by = fallback.pty, "virsh dumpxml"
                            if pty:
                                dst_log = PtyLog(pty, os.path.join(d, "dst.log"))
                                dst_opened = time.time()
                            time.sleep(0.02)
                    finally:
                        fallback.stop()
                    out, _ = migrate.communicate(timeout=180 * SLOW)
                    t_done = time.time()
                finally:
                    if migrate.poll() is None:
                        migrate.kill()
                        migrate.wait()
                assert migrate.returncode == 0, f"{out}{src.tail()}{dst.tail()}"
                assert "dvmig" not in src.ok("list", "--all", "--name").split()
                assert dst.ok("domstate", "dvmig").strip() == "running"
                if mode == "disk":
                    assert lock_bytes(image) == {100, 101, 201}, sorted(lock_bytes(image))
                wait_seq(d, "dst", max(seqs(d, "src")) + 50, limit=60)
                assert min(seqs(d, "dst")) <= max(seqs(d, "src")) + 2, (
                    f"the serial output has a gap across the switch: the source's pty "
                    f"ends {serial_log(d, 'src')[-300:]!r}, the destination's begins "
                    f"{serial_log(d, 'dst')[:300]!r} (its pty, found by {found_by}, "
                    f"read from {dst_opened - t_migrate:.1f} s after virsh migrate "
                    f"started, which ended after {t_done - t_migrate:.1f} s; the "
                    f"destination's VMM had a pid file from "
                    f"{(dst_pid_at or float('nan')) - t_migrate:.1f} s)")
                src_log.stop()
                dst_log.stop()
                problem = dirtycheck(d, "src", "dst")
                assert not problem, problem
                # what libvirt asked of each side, as its monitor log shows
                with open(src.log, errors="replace") as f:
                    sent = f.read()
                for what in ('"pause-before-switchover","state":true', '"getfd"',
                             '"uri":"fd:migrate"', '"migrate-continue"'):
                    assert what in sent, f"libvirt's source never sent {what}"
                with open(dst.log, errors="replace") as f:
                    sent = f.read()
                assert '"late-block-activate","state":true' in sent
                assert '"migrate-incoming"' in sent
            finally:
                dst.stop()
        finally:
            src.stop()
