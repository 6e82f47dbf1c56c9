"""DID and the cpumap around live migration (issue 16 item 3): with
did=on the source switches direct interrupt delivery off just before its
final stop and the destination switches it on again, pinned by its own
map, before the guest runs there; a cancel or a failure after the switch-off
gives the source its DID back; a source without DID leaves DID as the
destination's own command line says.  query-osnet-did's `active` and
`reason` on both sides show each step, testos's hello lines that the guest
goes on."""
import os
import signal
import tempfile
import time

import pytest

from harness import (SLOW, TESTOS, Qmp, Vmm, free_port, serial_log, wait_log_count,
                     wait_migration_status)

pytestmark = [pytest.mark.vm, pytest.mark.rig_too]

CPUS = sorted(os.sched_getaffinity(0))


def write_map(d, name, pcpus):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("".join(f"{v} {p}\n" for v, p in enumerate(pcpus)))
    return path


# The source's vCPUs 0,1 on the first two CPUs; the destination's crossed
# over where there are two, so that its placement is visibly its own map's.
SRC_PCPUS = [CPUS[0], CPUS[1 % len(CPUS)]]
DST_PCPUS = [CPUS[1 % len(CPUS)], CPUS[0]]


def vm_args(d, name, cpumap=None, extra=()):
    args = ["-enable-kvm", "-smp", "2", "-m", "128M", "-display", "none", "-nodefaults",
            "-serial", f"file:{os.path.join(d, name + '.log')}",
            "-qmp", f"unix:{os.path.join(d, name + '.sock')},server,nowait",
            "-kernel", TESTOS, "-append", "testos.run=hello", *extra]
    if cpumap:
        args += ["-osnet_cpumap", cpumap]
    return args


def hellos(d, name):
    return serial_log(d, name).count("testos: hello")


def wait_hellos(d, name, more_than, timeout=30):
    """name's guest printed a hello line more than more_than."""
    wait_log_count(d, name, "testos: hello", more_than + 1, timeout * SLOW)


def wait_running(q, timeout=30):
    deadline = time.time() + timeout * SLOW
    status = None
    while time.time() < deadline:
        status = q.ok("query-status")["status"]
        if status == "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"not running after {timeout * SLOW} s: {status}")


def did(q):
    info = q.ok("query-osnet-did")
    return info["active"], info["reason"]


def did_pair(d, src_did=True, dst_did=True, port=None):
    """A source (with did=on when src_did) and a destination waiting on
    -incoming tcp, both with maps; returns (src, dst, q_src, q_dst, uri)."""
    port = port or free_port()
    uri = f"tcp:127.0.0.1:{port}"
    src_map = write_map(d, "src.map", SRC_PCPUS)
    dst_map = write_map(d, "dst.map", DST_PCPUS)
    src = Vmm(vm_args(d, "src", f"path={src_map}" + (",did=on" if src_did else "")))
    dst = Vmm(vm_args(d, "dst", f"path={dst_map}" + (",did=on" if dst_did else ""),
                      ["-incoming", uri]))
    return src, dst, Qmp(os.path.join(d, "src.sock")), Qmp(os.path.join(d, "dst.sock")), uri


def test_did_moves_with_the_guest_and_follows_the_destinations_map():
    with tempfile.TemporaryDirectory() as d:
        src, dst, q_src, q_dst, uri = did_pair(d)
        with src, dst:
            assert did(q_src) == (True, "start")
            # the destination waits for the stream before it switches DID on
            assert did(q_dst) == (False, "incoming-wait")
            wait_hellos(d, "src", 0)
            q_src.ok("migrate", uri=uri)
            info = wait_migration_status(q_src, {"completed", "failed", "cancelled"})
            assert info["status"] == "completed", info
            wait_running(q_dst)
            # the source gave its dedicated cores up: stopped, DID off
            assert q_src.ok("query-status")["status"] == "postmigrate"
            assert did(q_src) == (False, "migration-stop")
            # the destination: DID on as the source had it, its own map
            dst_did = q_dst.ok("query-osnet-did")
            assert (dst_did["active"], dst_did["reason"]) == (True, "incoming-source")
            assert dst_did["did-at-start"] is True
            if dst_did["halt-poll-ns"] != -1:
                assert dst_did["halt-poll-ns"] == 0   # halt polling off again
            for e in q_dst.ok("query-osnet-cpumap"):
                assert e["pcpu"] == DST_PCPUS[e["vcpu"]]
                assert e["affinity"] == [DST_PCPUS[e["vcpu"]]], e
            before = hellos(d, "dst")
            wait_hellos(d, "dst", before)
            q_src.close()
            q_dst.close()


@pytest.mark.parametrize("how", ["cancel", "destination-killed"])
def test_source_gets_did_back_when_the_migration_ends_after_the_switch_off(how):
    """pause-before-switchover holds the migration with the source stopped
    and DID already off; a cancel there, or a destination gone before
    migrate-continue, leaves the guest running on the source with DID on."""
    with tempfile.TemporaryDirectory() as d:
        src, dst, q_src, q_dst, uri = did_pair(d)
        with src, dst:
            q_src.ok("migrate-set-capabilities", capabilities=[
                {"capability": "pause-before-switchover", "state": True}])
            wait_hellos(d, "src", 0)
            q_src.ok("migrate", uri=uri)
            wait_migration_status(q_src, {"pre-switchover"})
            assert q_src.ok("query-status")["status"] == "finish-migrate"
            assert did(q_src) == (False, "migration-stop")
            if how == "cancel":
                q_src.ok("migrate_cancel")
                info = wait_migration_status(q_src, {"cancelled", "failed", "completed"})
                assert info["status"] == "cancelled", info
            else:
                dst.proc.send_signal(signal.SIGKILL)
                dst.proc.wait(timeout=30)
                q_src.ok("migrate-continue", state="pre-switchover")
                info = wait_migration_status(q_src, {"cancelled", "failed", "completed"})
                assert info["status"] == "failed", info
            wait_running(q_src)
            assert did(q_src) == (True, "migration-failed")
            src_did = q_src.ok("query-osnet-did")
            if src_did["halt-poll-ns"] != -1:
                assert src_did["halt-poll-ns"] == 0
            before = hellos(d, "src")
            wait_hellos(d, "src", before)
            q_src.close()


def test_destination_without_did_refuses_a_guest_that_had_it():
    """A destination started without did=on cannot give the guest back its
    exits (only possible at VM creation): it refuses the stream with a line
    that says how to start it, and the source runs on with DID."""
    with tempfile.TemporaryDirectory() as d:
        src, dst, q_src, q_dst, uri = did_pair(d, dst_did=False)
        with src, dst:
            assert did(q_dst) == (False, "not-requested")
            q_dst.close()
            wait_hellos(d, "src", 0)
            q_src.ok("migrate", uri=uri)
            info = wait_migration_status(q_src, {"completed", "failed", "cancelled"})
            assert info["status"] == "failed", info
            assert dst.wait(timeout=30 * SLOW) == 1
            assert "did=on" in dst.stderr and "direct interrupt delivery" in dst.stderr, \
                dst.stderr
            wait_running(q_src)
            assert did(q_src) == (True, "migration-failed")
            before = hellos(d, "src")
            wait_hellos(d, "src", before)
            q_src.close()


@pytest.mark.parametrize("dst_did,want", [
    (False, (False, "not-requested")),
    (True, (True, "incoming-own")),
])
def test_a_source_without_did_leaves_the_destination_to_its_own_command_line(
        dst_did, want):
    with tempfile.TemporaryDirectory() as d:
        src, dst, q_src, q_dst, uri = did_pair(d, src_did=False, dst_did=dst_did)
        with src, dst:
            assert did(q_src) == (False, "not-requested")
            wait_hellos(d, "src", 0)
            q_src.ok("migrate", uri=uri)
            info = wait_migration_status(q_src, {"completed", "failed", "cancelled"})
            assert info["status"] == "completed", info
            wait_running(q_dst)
            assert did(q_src) == (False, "not-requested")
            assert did(q_dst) == want
            before = hellos(d, "dst")
            wait_hellos(d, "dst", before)
            q_src.close()
            q_dst.close()
