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
the serial logs, as test_migration.py)."""
import array
import os
import socket
import subprocess
import tempfile
import time

import pytest

from harness import QEMU, VMM, Qmp, Vmm, fd_count, free_port, image_write_locked
from test_migration import (DIRTY, SLOW, dirtycheck, log, migration_events, seqs,
                            vm_args, wait_seq, wait_status)

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
        with Vmm(vm_args(d, "src", append=DIRTY)) as src, \
                Vmm(vm_args(d, "dst", ["-incoming", "defer"], append=DIRTY)) as dst:
            q_src = Qmp(os.path.join(d, "src.sock"))
            q_dst = Qmp(os.path.join(d, "dst.sock"))
            wait_seq(d, "src", 20)
            a, b = socket.socketpair()
            with a, b:
                assert getfd(q_dst, a.fileno(), "in") == {"return": {}}
                assert getfd(q_src, b.fileno(), "out") == {"return": {}}
            q_dst.ok("migrate-incoming", uri="fd:in")
            q_src.ok("migrate", uri="fd:out")
            info = wait_status(q_src, {"completed", "failed", "cancelled"})
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


def start_pair(d, exe, src_extra=(), dst_extra=(), append=DIRTY):
    src = Vmm(vm_args(d, "src", list(src_extra), append=append), binary=exe)
    dst = Vmm(vm_args(d, "dst", ["-incoming", "defer", *dst_extra], append=append),
              binary=exe)
    return src, dst


@pytest.mark.parametrize("binary", ["vmm", "qemu"])
def test_pause_before_switchover(binary):
    """pause-before-switchover: the source stops its VM and waits in
    pre-switchover (run state finish-migrate) until migrate-continue
    {"state": "pre-switchover"}; a continue naming another state is
    refused with QEMU's text; then device and completed, and the guest goes
    on at the destination having lost nothing.  The MIGRATION events'
    statuses are Debian QEMU's, in the same order."""
    exe = exe_of(binary)
    with tempfile.TemporaryDirectory() as d:
        src, dst = start_pair(d, exe)
        with src, dst:
            q_src = Qmp(os.path.join(d, "src.sock"))
            q_dst = Qmp(os.path.join(d, "dst.sock"))
            wait_seq(d, "src", 3)
            for q in (q_src, q_dst):
                q.ok("migrate-set-capabilities",
                     capabilities=[{"capability": "events", "state": True}])
            q_src.ok("migrate-set-capabilities", capabilities=[
                {"capability": "pause-before-switchover", "state": True}])
            port = free_port()
            q_dst.ok("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
            q_src.ok("migrate", uri=f"tcp:127.0.0.1:{port}")
            info = wait_status(q_src, {"pre-switchover", "completed", "failed"})
            assert info["status"] == "pre-switchover", info
            assert q_src.ok("query-status")["status"] == "finish-migrate"
            # it stays there: nothing moves until migrate-continue
            time.sleep(0.5)
            assert q_src.ok("query-migrate")["status"] == "pre-switchover"
            wrong = error_of(q_src.cmd("migrate-continue", {"state": "active"}))
            assert wrong == "Migration not in expected state: pre-switchover", wrong
            q_src.ok("migrate-continue", state="pre-switchover")
            info = wait_status(q_src, {"completed", "failed"})
            assert info["status"] == "completed", info
            statuses = [s for i, s in enumerate(migration_events(q_src))
                        if i == 0 or s != migration_events(q_src)[i - 1]]
            assert statuses == ["setup", "active", "pre-switchover", "device",
                                "completed"], f"{binary}: {statuses}"
            deadline = time.time() + 30 * SLOW
            while q_dst.ok("query-status")["status"] != "running":
                assert time.time() < deadline, "the destination never ran"
                time.sleep(0.05)
            wait_seq(d, "dst", max(seqs(d, "src")) + 20, q=q_dst)
            problem = dirtycheck(d, "src", "dst")
            assert not problem, f"{binary}: {problem}"
            q_src.close()
            q_dst.close()


@pytest.mark.parametrize("binary", ["vmm", "qemu"])
def test_cancel_in_pre_switchover_resumes_the_source(binary):
    """migrate_cancel while the source waits in pre-switchover: the
    migration ends cancelled and the guest runs on at the source."""
    exe = exe_of(binary)
    with tempfile.TemporaryDirectory() as d:
        src, dst = start_pair(d, exe)
        with src, dst:
            q_src = Qmp(os.path.join(d, "src.sock"))
            q_dst = Qmp(os.path.join(d, "dst.sock"))
            wait_seq(d, "src", 3)
            q_src.ok("migrate-set-capabilities", capabilities=[
                {"capability": "pause-before-switchover", "state": True}])
            port = free_port()
            q_dst.ok("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
            q_src.ok("migrate", uri=f"tcp:127.0.0.1:{port}")
            assert wait_status(q_src, {"pre-switchover", "failed"})["status"] == \
                "pre-switchover"
            q_src.ok("migrate_cancel")
            info = wait_status(q_src, {"cancelled", "failed", "completed"})
            assert info["status"] == "cancelled", f"{binary}: {info}"
            deadline = time.time() + 30 * SLOW
            while q_src.ok("query-status")["status"] != "running":
                assert time.time() < deadline, "the source never ran again"
                time.sleep(0.05)
            wait_seq(d, "src", max(seqs(d, "src")) + 20, q=q_src)
            q_src.close()
            q_dst.close()


@pytest.mark.parametrize("binary", ["vmm", "qemu"])
@pytest.mark.parametrize("late", [True, False])
def test_late_block_activate(binary, late):
    """A destination started -S -incoming defer with a disk on shared
    storage: with late-block-activate it holds no lock on the image when
    the migration completes, only from cont on; without it, it holds the
    image's write permission at once.  The lock bytes (/proc/locks) are
    Debian QEMU's in each case."""
    exe = exe_of(binary)
    with tempfile.TemporaryDirectory() as d:
        image = os.path.join(d, "disk.img")
        with open(image, "wb") as f:
            f.truncate(16 << 20)
        drive = ["-drive", f"file={image},format=raw,if=virtio"]
        src, dst = start_pair(d, exe, drive, ["-S", *drive],
                              append="testos.run=hello")
        with src, dst:
            q_src = Qmp(os.path.join(d, "src.sock"))
            q_dst = Qmp(os.path.join(d, "dst.sock"))
            assert image_write_locked(image)
            if late:
                q_dst.ok("migrate-set-capabilities", capabilities=[
                    {"capability": "late-block-activate", "state": True}])
            port = free_port()
            q_dst.ok("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
            q_src.ok("migrate", uri=f"tcp:127.0.0.1:{port}")
            assert wait_status(q_src, {"completed", "failed"})["status"] == "completed"
            deadline = time.time() + 30 * SLOW
            while q_dst.ok("query-status")["status"] == "inmigrate":
                assert time.time() < deadline, "the destination never loaded"
                time.sleep(0.05)
            assert q_dst.ok("query-status")["status"] == "paused"
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
            q_src.close()
            q_dst.close()
