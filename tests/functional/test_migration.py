"""Live migration between two VMM processes: tcp, unix and exec; cancel,
dead destination, corrupt and truncated streams; state arriving paused (as
on Debian's QEMU); back and forth.  The guest's own output on a file serial
port shows it going on: testos's `dirty` lines, checked by dirtycheck.py
across the switch, lose or repeat nothing (not even one byte).

Runs natively and in the nested rig (a hardware-like KVM: an unfinished
port I/O instruction at the switch showed only there).  Bounds are wider in
the rig (DV_RIG=1), where the guest runs in nested TCG."""
import os
import signal
import subprocess
import tempfile
import time

import json
import re
import sys

import pytest

import migstream
from harness import (QEMU, ROOT, SLOW, TESTOS, VMM, Qmp, Vmm, check_pattern_image,
                     free_port, pattern_image, serial_log, third_writer_refused,
                     wait_log_count, wait_migration_status)


# Every test but the ten hops runs in the rig too (rig_too).  The ten hops
# do not: in the rig, TCG's SVM emulation now and then restarts or stalls
# a guest at or near a switch, Debian's QEMU's as much as this VMM's (see
# docs/migration.md), so ten switches in a row fail there about every other
# run for reasons outside this VMM.
pytestmark = [pytest.mark.vm]

DIRTY = "testos.run=dirty testos.mibps=50 testos.wss_mib=64"

# testos's hello scenario resets and starts again forever without
# -no-reboot: a guest that keeps printing, on both sides of a migration.
WORKLOAD = "testos.run=hello"


def vm_args(d, name, extra=(), mem="128M", append=WORKLOAD):
    return ["-enable-kvm", "-smp", "2", "-m", mem, "-display", "none", "-nodefaults",
            "-serial", f"file:{os.path.join(d, name + '.log')}",
            "-qmp", f"unix:{os.path.join(d, name + '.sock')},server,nowait",
            "-kernel", TESTOS, "-append", append, *extra]


def wait_runstate_settles(q, timeout=30):
    """The destination's run state once the incoming migration is over."""
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        status = q.ok("query-status")["status"]
        if status != "inmigrate":
            return status
        time.sleep(0.05)
    raise TimeoutError(f"still inmigrate after {timeout * SLOW} s")


def migration_events(q, timeout=10):
    """The MIGRATION events' statuses, once the last one has come (the
    event follows the status query-migrate shows)."""
    deadline = time.time() + timeout * SLOW
    while True:
        statuses = [e["data"]["status"] for e in q.events if e["event"] == "MIGRATION"]
        if statuses and statuses[-1] in ("completed", "failed", "cancelled"):
            return statuses
        if time.time() > deadline:
            return statuses
        q.ok("query-status")   # reading a reply collects events
        time.sleep(0.05)


def seqs(d, name):
    return [int(n) for n in re.findall(r"testos: seq (\d+) ", serial_log(d, name))]


def vcpu_report(q):
    """Where the guest's vCPUs are, for a failure message: HMP `info cpus`
    and each CPU's RIP and RFLAGS (the guest stopped: halted, spinning,
    or never started on a destination)."""
    try:
        hmp = lambda c: q.ok("human-monitor-command", **{"command-line": c})
        regs = hmp("info registers")
        keep = [ln for ln in regs.splitlines() if ln.startswith(("RAX", "RIP", "CS ", "CPU"))]
        return (f"; run state {q.ok('query-status')['status']}; info cpus: "
                f"{hmp('info cpus').strip()!r}; registers: {' | '.join(keep)!r}")
    except Exception as e:  # the VMM may be gone: say so, keep the real failure
        return f"; no vCPU report ({e})"


def wait_seq(d, name, target, stall=30, limit=300, q=None):
    """Wait for `testos: seq TARGET` in name's log.  Fails as soon as the
    guest prints nothing new for `stall` seconds (it stopped), or when
    it is still short of target after `limit` seconds (it is too slow):
    the message says which, with the log's tail (and, given q, where the
    vCPUs are)."""
    start = last_change = time.time()
    seen = None
    while True:
        text = serial_log(d, name)
        if f"testos: seq {target} " in text:
            return
        now = time.time()
        if len(text) != seen:
            seen, last_change = len(text), now
        if now - last_change > stall * SLOW:
            what = f"stopped printing: nothing new for {stall * SLOW} s"
        elif now - start > limit * SLOW:
            what = f"too slow: not there after {limit * SLOW} s"
        else:
            time.sleep(0.05)
            continue
        got = seqs(d, name)
        raise AssertionError(f"{name} never printed seq {target} ({what}); seq lines "
                             f"{got[:1]}..{got[-1:]}, log ends {text[-300:]!r}"
                             + (vcpu_report(q) if q else ""))


def dirtycheck(d, *names):
    """dirtycheck.py over the logs joined in order: '' when they pass."""
    check = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "guest", "dirtycheck.py")]
        + [os.path.join(d, n + ".log") for n in names], capture_output=True, text=True)
    return "" if check.returncode == 0 else check.stdout + check.stderr


def wait_grows(d, name, timeout=30):
    """Whether name's guest prints one more `testos: hello` within timeout."""
    count_before = serial_log(d, name).count("testos: hello")
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if serial_log(d, name).count("testos: hello") > count_before:
            return True
        time.sleep(0.05)
    return False


def start_slow_migration(q, d, port):
    """Once the destination (listening on port) answers QMP, the source
    (q) migrates to it at 256 KiB/s, long enough to be caught active."""
    Qmp(os.path.join(d, "dst.sock")).close()
    q.ok("migrate-set-parameters", **{"max-bandwidth": 256 * 1024})
    q.ok("migrate", uri=f"tcp:127.0.0.1:{port}")
    wait_migration_status(q, {"active"})


def wait_line(d, name, text, timeout=60):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if text in serial_log(d, name):
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
    info = wait_migration_status(q_src, {"completed", "failed", "cancelled"})
    return dst, q_dst, info


@pytest.mark.rig_too
@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_migrate_and_the_guest_goes_on(kind):
    """testos dirty: memory changing at 50 MiB/s under the migration; its
    seq lines must go on without a gap or a repeat, every checksum right,
    and the serial output must join up byte for byte across the switch
    (a port I/O instruction the source had not finished was once executed
    again by the destination: one character twice)."""
    dirty = DIRTY
    with tempfile.TemporaryDirectory() as d:
        uri = (f"tcp:127.0.0.1:{free_port()}" if kind == "tcp"
               else f"unix:{os.path.join(d, 'mig.sock')}")
        with Vmm(vm_args(d, "src", append=dirty)) as src:
            q_src = Qmp(os.path.join(d, "src.sock"))
            q_src.ok("migrate-set-capabilities",
                     capabilities=[{"capability": "events", "state": True}])
            wait_seq(d, "src", 20)
            dst, q_dst, info = migrate_once(d, "src", "dst", uri, src_q=q_src,
                                            append=dirty)
            with dst:
                assert info["status"] == "completed", info
                assert info["ram"]["total"] == 128 << 20
                assert info["ram"]["transferred"] > 0
                assert info["ram"]["remaining"] == 0, info   # as on QEMU
                assert info["downtime"] >= 0 and info["total-time"] >= info["downtime"]
                assert q_src.ok("query-status")["status"] == "postmigrate"
                statuses = migration_events(q_src)
                assert statuses[-1] == "completed" and "active" in statuses, statuses
                assert any(e["event"] == "MIGRATION_PASS" for e in q_src.events)
                assert q_dst.ok("query-status")["status"] == "running"
                last_src = max(seqs(d, "src"))
                # the destination goes on for a while (the guest checks its
                # whole working set many times a second)
                wait_seq(d, "dst", last_src + 100, q=q_dst)
                first_dst = min(seqs(d, "dst"))
                # the line being printed at the switch may be split between
                # the two logs; dirtycheck joins them and checks every seq
                assert first_dst <= last_src + 2
                assert not dirtycheck(d, "src", "dst"), dirtycheck(d, "src", "dst")
                assert "CORRUPT" not in serial_log(d, "dst")
                q_dst.close()
            q_src.close()


@pytest.mark.rig_too
def test_cancel_keeps_the_source_running():
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        with Vmm(vm_args(d, "src", mem="512M")) as src:
            q = Qmp(os.path.join(d, "src.sock"))
            with Vmm(vm_args(d, "dst", ["-incoming", f"tcp:127.0.0.1:{port}"],
                             mem="512M")):
                start_slow_migration(q, d, port)
                q.ok("migrate_cancel")
                info = wait_migration_status(q, {"cancelled"})
                assert info["status"] == "cancelled"
            assert q.ok("query-status")["status"] == "running"
            assert wait_grows(d, "src")
            q.close()


@pytest.mark.rig_too
def test_dead_destination_fails_and_the_source_keeps_running():
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        with Vmm(vm_args(d, "src", mem="512M")) as src:
            q = Qmp(os.path.join(d, "src.sock"))
            dst = Vmm(vm_args(d, "dst", ["-incoming", f"tcp:127.0.0.1:{port}"],
                              mem="512M"))
            with dst:
                start_slow_migration(q, d, port)
                dst.proc.send_signal(signal.SIGKILL)
                info = wait_migration_status(q, {"failed"})
                assert info["error-desc"]
            assert q.ok("query-status")["status"] == "running"
            assert wait_grows(d, "src")
            # nobody listening at all
            q.ok("migrate", uri=f"tcp:127.0.0.1:{free_port()}")
            assert wait_migration_status(q, {"failed"})["status"] == "failed"
            assert q.ok("query-status")["status"] == "running"
            q.close()


@pytest.mark.rig_too
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
                          capture_output=True, text=True, timeout=60 * SLOW)
    return proc.returncode, proc.stderr.strip().splitlines()


def stream_sections(data):
    """Split a stream (docs/migration.md) into its header and its sections
    as [type, name, version, payload]."""
    return migstream.split(data)


def stream_join(header, sections):
    return migstream.join(header, sections)


SEC_GLOBAL = 7


@pytest.mark.rig_too
def test_corrupt_and_truncated_streams_are_refused():
    with tempfile.TemporaryDirectory() as d:
        good = os.path.join(d, "stream.bin")
        with Vmm(vm_args(d, "src")) as src:
            q = Qmp(os.path.join(d, "src.sock"))
            q.ok("stop")
            q.ok("migrate", uri=f"exec:cat > {good}")
            assert wait_migration_status(q, {"completed", "failed"})["status"] == "completed"
            q.close()
        data = open(good, "rb").read()
        assert len(data) > 4096
        header, sections = stream_sections(data)
        assert stream_join(header, sections) == data
        glob = [s for s in sections if s[0] == SEC_GLOBAL]
        assert [(s[1], s[2], json.loads(s[3])) for s in glob] == [
            (b"globalstate", 1, {"runstate": "paused"})]
        # the intact stream loads, and arrives paused, as it left
        older = os.path.join(d, "older.bin")
        with open(older, "wb") as f:
            f.write(stream_join(header, [s for s in sections if s[0] != SEC_GLOBAL]))
        for name, path, arrives in (("ok", good, "paused"), ("old", older, "running")):
            # a stream from before the run state was sent arrives running
            with Vmm(vm_args(d, name, ["-incoming", f"exec:cat {path}"])):
                q = Qmp(os.path.join(d, name + ".sock"))
                assert wait_runstate_settles(q) == arrives, name
                q.close()

        def with_global(version, payload):
            return stream_join(header, [[k, n, version, payload] if k == SEC_GLOBAL
                                        else [k, n, v, p] for k, n, v, p in sections])

        def with_ram(payload):
            """The stream with its first RAM section's payload replaced (the
            checksum put right)."""
            first = next(i for i, sec in enumerate(sections) if sec[0] == migstream.SEC_RAM)
            return stream_join(header, [[k, n, v, payload if i == first else p]
                                        for i, (k, n, v, p) in enumerate(sections)])

        # one byte of a page's data changed, the checksum left as it was
        pos = 16
        for kind, name, version, payload in sections:
            head = 3 + len(name) + 12
            if kind == migstream.SEC_RAM and any(d for _, d in migstream.ram_records(payload)):
                count = int.from_bytes(payload[:8], "little")
                page_byte = pos + head + 8 + 8 * count + 100
                break
            pos += head + len(payload) + 8
        ram = next(p for k, _, _, p in sections if k == migstream.SEC_RAM)
        recs = migstream.ram_records(ram)
        cases = {
            "garbage": (os.urandom(20000), ""),
            "version 1": (data[:8] + (1).to_bytes(4, "little") + data[12:],
                          "migration stream version 1, this VMM reads version 2"),
            "page data flipped": (data[:page_byte] + bytes([data[page_byte] ^ 1])
                                  + data[page_byte + 1:],
                                  "checksum mismatch in section 'ram'"),
            "RAM count too large": (with_ram((len(recs) + 1).to_bytes(8, "little") + ram[8:]),
                                    "malformed RAM section"),
            "RAM data cut": (with_ram(ram[:-1]), "malformed RAM section"),
            "page outside RAM": (with_ram(migstream.ram_payload(
                [((1 << 40) | migstream.RAM_ZERO, b"")])), "outside this guest's RAM"),
            "truncated": (data[: len(data) // 2], ""),
            "flipped": (data[:3000] + bytes([data[3000] ^ 0xff]) + data[3001:], ""),
            "empty": (b"", ""),
            "newer global state": (with_global(2, glob[0][3]), "version 2 is newer"),
            "unknown run state": (with_global(1, b'{"runstate":"inmigrate"}'),
                                  "unknown run state 'inmigrate'"),
        }
        for name, (blob, why) in cases.items():
            path = os.path.join(d, name.replace(" ", "-"))
            with open(path, "wb") as f:
                f.write(blob)
            rc, lines = run_destination_on(d, f"cat {path}")
            assert rc == 1, (name, lines)
            assert len(lines) == 1 and "load of migration failed" in lines[0], (name, lines)
            assert why in lines[0], (name, lines)


def assert_paused_then_cont(d, name, q, last_seq, why):
    """name's guest is paused (prints nothing), then goes on after cont
    (past last_seq, the last seq line before the switch)."""
    assert wait_runstate_settles(q) == "paused", why
    before = serial_log(d, name)
    time.sleep(0.5)
    assert serial_log(d, name) == before, f"{why}: a paused guest printed"
    q.ok("cont")
    wait_seq(d, name, last_seq + 3)


@pytest.mark.rig_too
@pytest.mark.parametrize("binary", ["vmm", "qemu"])
def test_paused_guest_arrives_paused(binary):
    """A guest paused at the source arrives paused, -S or not; a running
    one stays paused under -S until `cont`.  Debian's QEMU 7.2 is the
    oracle (its "globalstate" section carries the run state).  One guest
    goes through all three cases in a chain, its output joined at the end."""
    exe = {"vmm": VMM, "qemu": QEMU}[binary]
    assert exe, "Debian's qemu-system-x86_64, the oracle here, is not installed"
    dirty = "testos.run=dirty testos.mibps=50 testos.wss_mib=8"
    hops = [("paused at the source, no -S", True, []),
            ("running at the source, -S", False, ["-S"]),
            ("paused at the source, -S", True, ["-S"])]
    with tempfile.TemporaryDirectory() as d:
        vms = [Vmm(vm_args(d, "vm0", append=dirty), binary=exe)]
        q = Qmp(os.path.join(d, "vm0.sock"))
        try:
            wait_seq(d, "vm0", 3)   # Debian's QEMU boots through SeaBIOS: slower
            for i, (why, stop, extra) in enumerate(hops, 1):
                why = f"{binary}: {why}"
                if stop:
                    q.ok("stop")
                    assert q.ok("query-status")["status"] == "paused"
                uri = f"unix:{os.path.join(d, f'm{i}.sock')}"
                vms.append(Vmm(vm_args(d, f"vm{i}", ["-incoming", uri] + extra,
                                       append=dirty), binary=exe))
                q_dst = Qmp(os.path.join(d, f"vm{i}.sock"))
                q.ok("migrate", uri=uri)
                assert wait_migration_status(q, {"completed", "failed"})["status"] == "completed", why
                q.close()
                vms[-2].kill()
                q = q_dst
                assert_paused_then_cont(d, f"vm{i}", q, max(seqs(d, f"vm{i - 1}")), why)
            problem = dirtycheck(d, *[f"vm{i}" for i in range(len(hops) + 1)])
            assert not problem, f"{binary}: {problem}"
        finally:
            q.close()
            for vm in vms:
                vm.kill()


def test_back_and_forth_ten_times():
    """Ten hops of a dirtying guest: the eleven logs, joined, read as one
    run's output with nothing lost, repeated or corrupted at any switch."""
    dirty = "testos.run=dirty testos.mibps=50 testos.wss_mib=16"
    with tempfile.TemporaryDirectory() as d:
        vms = [Vmm(vm_args(d, "vm0", append=dirty))]
        q = Qmp(os.path.join(d, "vm0.sock"))
        try:
            wait_seq(d, "vm0", 5)
            for i in range(1, 11):
                uri = f"unix:{os.path.join(d, f'm{i}.sock')}"
                dst, q_dst, info = migrate_once(d, f"vm{i - 1}", f"vm{i}", uri, src_q=q,
                                                append=dirty)
                assert info["status"] == "completed", info
                q.close()
                vms[-1].kill()
                vms.append(dst)
                q = q_dst
                assert q.ok("query-status")["status"] == "running"
                # each destination prints before it moves on
                wait_seq(d, f"vm{i}", max(seqs(d, f"vm{i - 1}") or [0]) + 3, q=q)
            wait_seq(d, "vm10", max(seqs(d, "vm10")) + 50, q=q)
            problem = dirtycheck(d, *[f"vm{i}" for i in range(11)])
            assert not problem, problem
        finally:
            q.close()
            for vm in vms:
                vm.kill()


@pytest.mark.rig_too
def test_migrate_with_disk_io_and_the_image_lock_moves():
    """testos blk loops (read pattern, write, flush, verify, reset) on a
    shared raw image while the VM migrates; the data verifies afterwards
    and the destination holds the image lock."""
    with tempfile.TemporaryDirectory() as d:
        img = pattern_image(d)
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
                assert wait_migration_status(q_src, {"completed", "failed"})["status"] == "completed"
                done = "write-ok=64 flush=ok"
                wait_log_count(d, "dst", done, serial_log(d, "dst").count(done) + 2, 30 * SLOW)
                assert "FAIL" not in serial_log(d, "src") + serial_log(d, "dst")
                # a third opener for writing is refused: the destination has it
                third_writer_refused(vm_args(d, "third", drive))
                q_dst.ok("quit")
                dst.wait(30)
            q_src.close()
        check_pattern_image(img)


def hmp(q, line):
    return q.ok("human-monitor-command", **{"command-line": line})


def deferred_incoming_errors(binary, d):
    """migrate-incoming without -incoming, then twice with -incoming defer:
    the replies, from this VMM or Debian's QEMU (no guest needed)."""
    replies = []
    port = free_port()
    for name, extra in (("plain", []), ("defer", ["-incoming", "defer"])):
        sock = os.path.join(d, f"{binary}-{name}.sock")
        args = ["-S", "-m", "64M", "-display", "none", "-nodefaults",
                "-qmp", f"unix:{sock},server,nowait", *extra]
        args = (["-machine", "accel=tcg"] if binary == "qemu" else ["-enable-kvm"]) + args
        with Vmm(args, binary=QEMU if binary == "qemu" else VMM):
            q = Qmp(sock, timeout=60)
            for _ in range(1 if name == "plain" else 2):
                replies.append(q.execute("migrate-incoming", uri=f"tcp:127.0.0.1:{port}"))
            q.close()
    return replies


@pytest.mark.rig_too
def test_incoming_defer_waits_for_migrate_incoming():
    """-incoming defer: the destination waits, in state inmigrate, until
    migrate-incoming names where to listen; then a migration arrives and
    the guest goes on there.  The errors around it are QEMU 7.2's."""
    assert QEMU, "Debian's qemu-system-x86_64, the reference here, is not installed"
    with tempfile.TemporaryDirectory() as d:
        ours = deferred_incoming_errors("vmm", d)
        theirs = deferred_incoming_errors("qemu", d)
        assert ours[0] == theirs[0] == {"error": {
            "class": "GenericError",
            "desc": "'-incoming' was not specified on the command line"}}
        assert ours[1] == theirs[1] == {"return": {}}
        assert ours[2] == theirs[2] == {"error": {
            "class": "GenericError",
            "desc": "The incoming migration has already been started"}}

        uri = f"tcp:127.0.0.1:{free_port()}"
        with Vmm(vm_args(d, "src")) as src, \
                Vmm(vm_args(d, "dst", ["-incoming", "defer"])) as dst:
            q_src = Qmp(os.path.join(d, "src.sock"))
            q_dst = Qmp(os.path.join(d, "dst.sock"))
            assert q_dst.ok("query-status")["status"] == "inmigrate"
            assert wait_line(d, "src", "testos: hello")
            q_dst.ok("migrate-incoming", uri=uri)
            q_src.ok("migrate", uri=uri)
            assert wait_migration_status(q_src, {"completed", "failed"})["status"] == "completed"
            assert wait_runstate_settles(q_dst) == "running"
            assert wait_grows(d, "dst"), serial_log(d, "dst")[-500:]
            q_src.close()
            q_dst.close()


@pytest.mark.rig_too
def test_hmp_migrate_set_speed_downtime_and_info_migrate():
    """QEMU 4.2's HMP spellings set what migrate-set-parameters sets, and
    info migrate shows the capabilities, then the status and counters."""
    with tempfile.TemporaryDirectory() as d:
        uri = f"unix:{os.path.join(d, 'mig.sock')}"
        with Vmm(vm_args(d, "src")) as src:
            q = Qmp(os.path.join(d, "src.sock"))
            assert hmp(q, "migrate_set_speed 32M") == ""
            assert hmp(q, "migrate_set_downtime 0.3") == ""
            params = q.ok("query-migrate-parameters")
            assert params["max-bandwidth"] == 32 << 20
            assert params["downtime-limit"] == 300
            assert hmp(q, "migrate_set_downtime abc") == \
                "migrate_set_downtime: expected seconds, e.g. 0.3\r\n"
            assert "expects a size value" in hmp(q, "migrate_set_speed x")
            assert hmp(q, "migrate_set_downtime 3000") == (
                "Error: Parameter 'downtime_limit' expects an integer in the range "
                "of 0 to 2000000 milliseconds\r\n")
            assert q.ok("query-migrate-parameters") == params     # unchanged
            before = hmp(q, "info migrate")
            assert before.startswith("capabilities: xbzrle: off ")
            assert "events: off" in before and "Migration status" not in before
            q.ok("migrate-set-capabilities",
                 capabilities=[{"capability": "events", "state": True}])
            assert "events: on" in hmp(q, "info migrate")

            dst, q_dst, info = migrate_once(d, "src", "dst", uri, src_q=q)
            with dst:
                assert info["status"] == "completed", info
                text = hmp(q, "info migrate")
                lines = dict(l.split(": ", 1) for l in text.split("\r\n")[1:] if l)
                assert lines["Migration status"] == "completed"
                assert int(lines["total"]) == 128 << 20
                assert int(lines["transferred"]) == info["ram"]["transferred"] > 0
                assert lines["downtime"] == f"{info['downtime']} ms"
                assert "Migration status: completed" in hmp(q_dst, "info migrate")
                q_dst.close()
            q.close()
