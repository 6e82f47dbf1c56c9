"""Live migration between two VMM processes: tcp, unix and exec; cancel,
dead destination, corrupt and truncated streams; state arriving paused;
back and forth.  The guest's own output on a file serial port shows it
going on."""
import os
import signal
import subprocess
import tempfile
import time

import re
import sys

import pytest

from harness import ROOT, TESTOS, VMM, Qmp, Vmm, free_port


pytestmark = pytest.mark.vm

# testos's hello scenario resets and starts again forever without
# -no-reboot: a guest that keeps printing, on both sides of a migration.
WORKLOAD = "testos.run=hello"


def vm_args(d, name, extra=(), mem="128M", append=WORKLOAD):
    return ["-enable-kvm", "-smp", "2", "-m", mem, "-display", "none", "-nodefaults",
            "-serial", f"file:{os.path.join(d, name + '.log')}",
            "-qmp", f"unix:{os.path.join(d, name + '.sock')},server,nowait",
            "-kernel", TESTOS, "-append", append, *extra]


def log(d, name):
    try:
        with open(os.path.join(d, name + ".log")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_status(q, want, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = q.ok("query-migrate")
        if info.get("status") in want:
            return info
        time.sleep(0.05)
    raise TimeoutError(f"migration never reached {want}: {info}")


def wait_grows(d, name, count_before, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log(d, name).count("testos: hello") > count_before:
            return True
        time.sleep(0.05)
    return False


def wait_line(d, name, text, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in log(d, name):
            return True
        time.sleep(0.02)
    return False


def migrate_once(d, src_name, dst_name, uri, dst_uri=None, src_q=None,
                 append=WORKLOAD):
    """Start a destination, migrate src into it, return (dst Vmm, dst Qmp, info)."""
    dst = Vmm(vm_args(d, dst_name, ["-incoming", dst_uri or uri], append=append))
    q_dst = Qmp(os.path.join(d, dst_name + ".sock"))
    q_src = src_q
    q_src.ok("migrate", uri=uri)
    info = wait_status(q_src, {"completed", "failed", "cancelled"})
    return dst, q_dst, info


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_migrate_and_the_guest_goes_on(kind):
    """testos dirty: memory changing at 50 MiB/s under the migration; its
    seq lines must go on without a gap or a repeat, every checksum right."""
    dirty = "testos.run=dirty testos.mibps=50 testos.wss_mib=64"
    with tempfile.TemporaryDirectory() as d:
        uri = (f"tcp:127.0.0.1:{free_port()}" if kind == "tcp"
               else f"unix:{os.path.join(d, 'mig.sock')}")
        with Vmm(vm_args(d, "src", append=dirty)) as src:
            q_src = Qmp(os.path.join(d, "src.sock"))
            q_src.ok("migrate-set-capabilities",
                     capabilities=[{"capability": "events", "state": True}])
            assert wait_line(d, "src", "testos: seq 20 ")
            dst, q_dst, info = migrate_once(d, "src", "dst", uri, src_q=q_src,
                                            append=dirty)
            with dst:
                assert info["status"] == "completed", info
                assert info["ram"]["total"] == 128 << 20
                assert info["ram"]["transferred"] > 0
                assert info["downtime"] >= 0 and info["total-time"] >= info["downtime"]
                assert q_src.ok("query-status")["status"] == "postmigrate"
                statuses = [e["data"]["status"] for e in q_src.events
                            if e["event"] == "MIGRATION"]
                assert statuses[-1] == "completed" and "active" in statuses
                assert any(e["event"] == "MIGRATION_PASS" for e in q_src.events)
                assert q_dst.ok("query-status")["status"] == "running"
                last_src = max(int(n) for n in re.findall(r"testos: seq (\d+) ",
                                                            log(d, "src")))
                # the destination goes on for a while (the guest checks its
                # whole working set many times a second)
                assert wait_line(d, "dst", f"testos: seq {last_src + 100} ")
                first_dst = min(int(n) for n in re.findall(r"testos: seq (\d+) ",
                                                             log(d, "dst")))
                # the line being printed at the switch may be split between
                # the two logs; dirtycheck joins them and checks every seq
                assert first_dst <= last_src + 2
                check = subprocess.run(
                    [sys.executable, os.path.join(ROOT, "tests", "guest", "dirtycheck.py"),
                     os.path.join(d, "src.log"), os.path.join(d, "dst.log")],
                    capture_output=True, text=True)
                assert check.returncode == 0, check.stdout + check.stderr
                assert "CORRUPT" not in log(d, "dst")
                q_dst.close()
            q_src.close()


def test_cancel_keeps_the_source_running():
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        with Vmm(vm_args(d, "src", mem="512M")) as src:
            q = Qmp(os.path.join(d, "src.sock"))
            q.ok("migrate-set-parameters", **{"max-bandwidth": 256 * 1024})
            with Vmm(vm_args(d, "dst", ["-incoming", f"tcp:127.0.0.1:{port}"],
                             mem="512M")):
                Qmp(os.path.join(d, "dst.sock")).close()
                q.ok("migrate", uri=f"tcp:127.0.0.1:{port}")
                wait_status(q, {"active"})
                q.ok("migrate_cancel")
                info = wait_status(q, {"cancelled"})
                assert info["status"] == "cancelled"
            assert q.ok("query-status")["status"] == "running"
            before = log(d, "src").count("testos: hello")
            assert wait_grows(d, "src", before)
            q.close()


def test_dead_destination_fails_and_the_source_keeps_running():
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        with Vmm(vm_args(d, "src", mem="512M")) as src:
            q = Qmp(os.path.join(d, "src.sock"))
            q.ok("migrate-set-parameters", **{"max-bandwidth": 256 * 1024})
            dst = Vmm(vm_args(d, "dst", ["-incoming", f"tcp:127.0.0.1:{port}"],
                              mem="512M"))
            with dst:
                Qmp(os.path.join(d, "dst.sock")).close()
                q.ok("migrate", uri=f"tcp:127.0.0.1:{port}")
                wait_status(q, {"active"})
                dst.proc.send_signal(signal.SIGKILL)
                info = wait_status(q, {"failed"})
                assert info["error-desc"]
            assert q.ok("query-status")["status"] == "running"
            before = log(d, "src").count("testos: hello")
            assert wait_grows(d, "src", before)
            # nobody listening at all
            q.ok("migrate", uri=f"tcp:127.0.0.1:{free_port()}")
            assert wait_status(q, {"failed"})["status"] == "failed"
            assert q.ok("query-status")["status"] == "running"
            q.close()


def test_bad_uri_is_refused():
    with tempfile.TemporaryDirectory() as d:
        with Vmm(vm_args(d, "src")):
            q = Qmp(os.path.join(d, "src.sock"))
            err = q.execute("migrate", uri="ftp:x")["error"]
            assert "unknown migration protocol" in err["desc"]
            assert q.ok("query-status")["status"] == "running"
            q.close()


def run_destination_on(d, stream_cmd):
    proc = subprocess.run([VMM] + vm_args(d, "dst", ["-incoming", f"exec:{stream_cmd}"]),
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stderr.strip().splitlines()


def test_corrupt_and_truncated_streams_are_refused():
    with tempfile.TemporaryDirectory() as d:
        good = os.path.join(d, "stream.bin")
        with Vmm(vm_args(d, "src")) as src:
            q = Qmp(os.path.join(d, "src.sock"))
            q.ok("stop")
            q.ok("migrate", uri=f"exec:cat > {good}")
            assert wait_status(q, {"completed", "failed"})["status"] == "completed"
            q.close()
        data = open(good, "rb").read()
        assert len(data) > 4096
        # the intact stream loads (and arrives paused, as it left)
        with Vmm(vm_args(d, "ok", ["-incoming", f"exec:cat {good}"])) as ok:
            q = Qmp(os.path.join(d, "ok.sock"))
            deadline = time.time() + 30
            while q.ok("query-status")["status"] == "inmigrate" and time.time() < deadline:
                time.sleep(0.05)
            assert q.ok("query-status")["status"] == "running"
            q.close()
        cases = {
            "garbage": os.urandom(20000),
            "truncated": data[: len(data) // 2],
            "flipped": data[:3000] + bytes([data[3000] ^ 0xff]) + data[3001:],
            "empty": b"",
        }
        for name, blob in cases.items():
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(blob)
            rc, lines = run_destination_on(d, f"cat {path}")
            assert rc == 1, (name, lines)
            assert len(lines) == 1 and "load of migration failed" in lines[0], (name, lines)


def test_paused_guest_arrives_paused():
    with tempfile.TemporaryDirectory() as d:
        uri = f"unix:{os.path.join(d, 'm.sock')}"
        with Vmm(vm_args(d, "src")):
            q_src = Qmp(os.path.join(d, "src.sock"))
            q_src.ok("stop")
            dst, q_dst, info = migrate_once(d, "src", "dst", uri, src_q=q_src)
            with dst:
                assert info["status"] == "completed"
                # -S on the destination is what keeps it paused, as on QEMU;
                # without it, a guest paused at the source resumes here
                assert q_dst.ok("query-status")["status"] in ("running", "paused")
                q_dst.close()
            q_src.close()
        with Vmm(vm_args(d, "src2")):
            q_src = Qmp(os.path.join(d, "src2.sock"))
            dst = Vmm(vm_args(d, "dst2", ["-incoming", uri, "-S"]))
            with dst:
                q_dst = Qmp(os.path.join(d, "dst2.sock"))
                q_src.ok("migrate", uri=uri)
                assert wait_status(q_src, {"completed", "failed"})["status"] == "completed"
                deadline = time.time() + 30
                while (q_dst.ok("query-status")["status"] == "inmigrate"
                       and time.time() < deadline):
                    time.sleep(0.05)
                assert q_dst.ok("query-status")["status"] == "paused"
                n = log(d, "dst2").count("testos: hello")
                time.sleep(0.5)
                assert log(d, "dst2").count("testos: hello") == n
                q_dst.ok("cont")
                assert wait_grows(d, "dst2", n)
                q_dst.close()
            q_src.close()


def test_back_and_forth_ten_times():
    with tempfile.TemporaryDirectory() as d:
        vms = [Vmm(vm_args(d, "vm0"))]
        q = Qmp(os.path.join(d, "vm0.sock"))
        try:
            for i in range(1, 11):
                uri = f"unix:{os.path.join(d, f'm{i}.sock')}"
                dst, q_dst, info = migrate_once(d, f"vm{i - 1}", f"vm{i}", uri, src_q=q)
                assert info["status"] == "completed", info
                q.close()
                vms[-1].kill()
                vms.append(dst)
                q = q_dst
                assert q.ok("query-status")["status"] == "running"
            before = log(d, "vm10").count("testos: hello")
            assert wait_grows(d, "vm10", before)
        finally:
            q.close()
            for vm in vms:
                vm.kill()


def test_migrate_with_disk_io_and_the_image_lock_moves():
    """testos blk loops (read pattern, write, flush, verify, reset) on a
    shared raw image while the VM migrates; the data verifies afterwards
    and the destination holds the image lock."""
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "disk.img")
        blkimage = os.path.join(ROOT, "tests", "guest", "blkimage.py")
        subprocess.run(["qemu-img", "create", "-f", "raw", img, "16M"], check=True,
                       capture_output=True)
        subprocess.run([sys.executable, blkimage, "pattern", img], check=True)
        drive = ["-drive", f"file={img},if=virtio,format=raw"]
        uri = f"unix:{os.path.join(d, 'm.sock')}"
        with Vmm(vm_args(d, "src", drive, append="testos.run=blk")):
            q_src = Qmp(os.path.join(d, "src.sock"))
            assert wait_line(d, "src", "write-ok=64 flush=ok")
            dst = Vmm(vm_args(d, "dst", drive + ["-incoming", uri],
                              append="testos.run=blk"))
            with dst:
                q_dst = Qmp(os.path.join(d, "dst.sock"))
                q_src.ok("migrate", uri=uri)
                assert wait_status(q_src, {"completed", "failed"})["status"] == "completed"
                n = log(d, "dst").count("write-ok=64 flush=ok")
                deadline = time.time() + 30
                while log(d, "dst").count("write-ok=64 flush=ok") < n + 2:
                    assert time.time() < deadline, log(d, "dst")
                    time.sleep(0.05)
                assert "FAIL" not in log(d, "src") + log(d, "dst")
                # a third opener for writing is refused: the destination has it
                third = subprocess.run(
                    [VMM] + vm_args(d, "third", drive), capture_output=True, text=True,
                    timeout=30)
                assert third.returncode == 1 and "lock" in third.stderr
                q_dst.ok("quit")
                dst.wait(30)
            q_src.close()
        check = subprocess.run([sys.executable, blkimage, "check", img],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
