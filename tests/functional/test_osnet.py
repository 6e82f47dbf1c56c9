"""osnet: dedicated cores from map.txt, DID controls and exit statistics,
driven the way a user drives them (command line, QMP, /proc, taskset)."""
import os
import subprocess
import tempfile
import time

import pytest

from harness import QEMU, TESTOS, VMM, Qmp, Vmm, free_port, reply_shape

# The cpumap's errors come before /dev/kvm is opened: those tests carry no
# marker and run on any machine; the others are marked vm.

NCPU = os.cpu_count()


def write_map(d, text, name="map.txt"):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def start(d, smp, cpumap_opt=None, scenario="idle", extra=()):
    sock = os.path.join(d, "qmp.sock")
    args = ["-enable-kvm", "-smp", str(smp), "-m", "64M", "-display", "none",
            "-nodefaults", "-qmp", f"unix:{sock},server,nowait", "-kernel", TESTOS,
            "-append", f"testos.run={scenario}", *extra]
    if cpumap_opt:
        args += ["-osnet_cpumap", cpumap_opt]
    return Vmm(args), sock


def affinity(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":")[1].strip()
    return None


def cpu_list(cpus):
    return ",".join(str(c) for c in cpus)


@pytest.mark.parametrize("text,where", [
    ("0 0\n1\n", "map.txt:2: expected two numbers"),
    ("0 0\n5 0\n", "map.txt:2: vCPU 5 does not exist"),
    ("0 0\n0 0\n", "map.txt:2: vCPU 0 is listed twice"),
    ("0 0\n", "map.txt: vCPU 1 has no pCPU"),
    ("0 0\n1 4096\n", "map.txt:2: pCPU 4096 is not online"),
    ("# comment only\n", "map.txt: vCPU 0 has no pCPU"),
])
def test_bad_cpumap_is_refused_with_file_and_line(text, where):
    with tempfile.TemporaryDirectory() as d:
        path = write_map(d, text)
        proc = subprocess.run([VMM, "-enable-kvm", "-smp", "2", "-nodefaults",
                               "-osnet_cpumap", f"path={path}", "-kernel", TESTOS],
                              capture_output=True, text=True, timeout=30)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1
    assert len(lines) == 1 and where in lines[0], lines


def test_unreadable_cpumap_and_bad_option():
    proc = subprocess.run([VMM, "-enable-kvm", "-osnet_cpumap", "path=/nonexistent/m",
                           "-kernel", TESTOS], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "/nonexistent/m: cannot read the cpumap" in proc.stderr
    proc = subprocess.run([VMM, "-enable-kvm", "-osnet_cpumap", "file=x",
                           "-kernel", TESTOS], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "Invalid parameter 'file'" in proc.stderr


@pytest.mark.vm
def test_shared_pcpu_warns_and_runs():
    with tempfile.TemporaryDirectory() as d:
        path = write_map(d, "0 0\n1 0\n")
        vm, sock = start(d, 2, f"path={path}")
        with vm:
            q = Qmp(sock)
            assert q.ok("query-status")["status"] == "running"
            q.close()
            vm.kill()
            vm.wait(10)
        assert "share pCPU 0" in vm.stderr


@pytest.mark.vm
def test_vcpu_affinity_equals_the_map():
    cpus = list(reversed(range(min(NCPU, 4))))
    with tempfile.TemporaryDirectory() as d:
        path = write_map(d, "".join(f"{i} {c}\n" for i, c in enumerate(cpus)))
        vm, sock = start(d, len(cpus), f"path={path}")
        with vm:
            q = Qmp(sock)
            entries = q.ok("query-osnet-cpumap")
            assert [e["pcpu"] for e in entries] == cpus
            for e in entries:
                assert affinity(vm.pid, e["thread-id"]) == str(e["pcpu"])
                assert e["affinity"] == [e["pcpu"]]
            q.close()


@pytest.mark.vm
@pytest.mark.skipif(NCPU < 2, reason="needs 2 host CPUs")
def test_other_threads_leave_the_dedicated_core():
    with tempfile.TemporaryDirectory() as d:
        path = write_map(d, f"0 {NCPU - 1}\n")
        vm, sock = start(d, 1, f"path={path}")
        with vm:
            q = Qmp(sock)
            vcpu_tid = q.ok("query-osnet-cpumap")[0]["thread-id"]
            others = []
            for t in os.listdir(f"/proc/{vm.pid}/task"):
                with open(f"/proc/{vm.pid}/task/{t}/comm") as f:
                    comm = f.read().strip()
                # KVM's own kernel workers (kvm-nx-lpage-recovery) cannot move
                if int(t) != vcpu_tid and not comm.startswith("kvm-"):
                    others.append(int(t))
            assert others
            for tid in others:
                allowed = affinity(vm.pid, tid)
                assert str(NCPU - 1) not in allowed.replace("-", ",").split(","), allowed
            q.close()


@pytest.mark.vm
def test_seed_taskset_flow_still_works():
    """Without -osnet_cpumap the guide's query-cpus + taskset flow pins."""
    with tempfile.TemporaryDirectory() as d:
        vm, sock = start(d, 2)
        with vm:
            q = Qmp(sock)
            tids = [c["thread_id"] for c in q.ok("query-cpus")]
            for i, tid in enumerate(tids):
                cpu = i % NCPU
                subprocess.run(["taskset", "-cp", str(cpu), str(tid)], check=True,
                               capture_output=True)
                assert affinity(vm.pid, tid) == str(cpu)
            q.close()


@pytest.mark.vm
@pytest.mark.skipif(NCPU < 2, reason="needs 2 host CPUs")
def test_qmp_reload_moves_threads_and_failed_reload_changes_nothing():
    with tempfile.TemporaryDirectory() as d:
        first = write_map(d, "0 0\n1 1\n")
        swapped = write_map(d, "0 1\n1 0\n", "swapped.txt")
        bad = write_map(d, "0 1\n1 1\n0 0\n", "bad.txt")
        vm, sock = start(d, 2, f"path={first}")
        with vm:
            q = Qmp(sock)
            tids = [e["thread-id"] for e in q.ok("query-osnet-cpumap")]
            assert [affinity(vm.pid, t) for t in tids] == ["0", "1"]
            q.ok("osnet-set-cpumap", path=swapped)
            assert [affinity(vm.pid, t) for t in tids] == ["1", "0"]
            assert [e["pcpu"] for e in q.ok("query-osnet-cpumap")] == [1, 0]
            reply = q.execute("osnet-set-cpumap", path=bad)
            assert "bad.txt:3: vCPU 0 is listed twice" in reply["error"]["desc"]
            reply = q.execute("osnet-set-cpumap", path=os.path.join(d, "missing.txt"))
            assert "cannot read" in reply["error"]["desc"]
            assert [affinity(vm.pid, t) for t in tids] == ["1", "0"]
            assert [e["pcpu"] for e in q.ok("query-osnet-cpumap")] == [1, 0]
            out = q.ok("human-monitor-command", **{"command-line":
                                                   f"osnet_set_cpumap {first}"})
            assert out == ""
            assert [affinity(vm.pid, t) for t in tids] == ["0", "1"]
            q.close()


@pytest.mark.vm
def test_did_on_disables_what_kvm_offers():
    with tempfile.TemporaryDirectory() as d:
        path = write_map(d, "0 0\n")
        vm, sock = start(d, 1, f"path={path},did=on")
        with vm:
            q = Qmp(sock)
            did = q.ok("query-osnet-did")
            assert did["mode"] == "kvm"          # no Directvisor module here
            assert did["did-at-start"] and did["active"]
            for mech in ("hlt", "pause", "mwait", "cstate"):
                assert did[f"{mech}-exits-disabled"] == (mech in did["exits-supported"])
            assert did["kernel-extension"] is False
            assert did["cpumap-in-kernel"] is False
            q.ok("osnet-did-disable")
            off = q.ok("query-osnet-did")
            assert off["active"] is False
            # KVM cannot take back exits it gave the guest: they stay off
            assert off["hlt-exits-disabled"] == did["hlt-exits-disabled"]
            q.ok("osnet-did-enable")
            on = q.ok("query-osnet-did")
            assert on["active"] is True
            # DID turns the VM's halt polling off (KVM_CAP_HALT_POLL)
            assert on["halt-poll-ns"] == 0
            q.close()


@pytest.mark.vm
def test_overcommit_cpu_pm_is_did_and_did_needs_it_at_start():
    with tempfile.TemporaryDirectory() as d:
        vm, sock = start(d, 1, extra=["-overcommit", "cpu-pm=on"])
        with vm:
            q = Qmp(sock)
            assert q.ok("query-osnet-did")["did-at-start"] is True
            q.close()
        vm2, sock2 = start(d, 1)
        with vm2:
            q = Qmp(sock2)
            did = q.ok("query-osnet-did")
            assert did["did-at-start"] is False and did["active"] is False
            assert not did["hlt-exits-disabled"]
            # on every host, whatever exits its KVM offers: an error, no change
            err = q.execute("osnet-did-enable")["error"]["desc"]
            assert "did=on" in err
            assert q.ok("query-osnet-did") == did
            q.close()


def total_exits(q):
    return [s["total"]["exits"] for s in q.ok("query-osnet-stats")]


def wait_stats(q, what, check, timeout=20):
    """Poll query-osnet-stats (vCPU 0) until check(stats) holds."""
    deadline = time.time() + timeout
    while True:
        stats = q.ok("query-osnet-stats")[0]
        if check(stats):
            return stats
        assert time.time() < deadline, f"after {timeout} s, {what}: {stats}"
        time.sleep(0.05)


@pytest.mark.vm
def test_exit_counters_rise_while_running_and_stay_flat_when_paused():
    # port I/O in a loop far longer than the test: the guest never stops
    # on its own
    with tempfile.TemporaryDirectory() as d:
        vm, sock = start(d, 1, scenario="pio", extra=[
            "-append", "testos.run=pio testos.n=1000000000"])
        with vm:
            q = Qmp(sock)
            a = total_exits(q)[0]
            wait_stats(q, "1000 more exits while running",
                       lambda s: s["total"]["exits"] > a + 1000)
            wait_stats(q, "1000 port I/O exits handled in userspace",
                       lambda s: s["userspace"]["io"] > 1000)
            wait_stats(q, "an exit rate above 1000/s while running",
                       lambda s: s["per-second"]["exits"] > 1000)
            q.ok("stop")
            c = total_exits(q)[0]
            # the sampler's window holds only paused time once the rate is 0
            wait_stats(q, "an exit rate of 0 while paused",
                       lambda s: s["per-second"]["exits"] == 0)
            assert total_exits(q)[0] == c
            q.ok("cont")
            wait_stats(q, "an exit rate above 1000/s after cont",
                       lambda s: s["per-second"]["exits"] > 1000)
            assert total_exits(q)[0] > c
            hmp = q.ok("human-monitor-command", **{"command-line": "info osnet"})
            assert "DID: off" in hmp and "exits/s" in hmp
            q.close()


@pytest.mark.vm
def test_query_stats_keeps_qemus_shape():
    assert QEMU, "Debian's qemu-system-x86_64, the reference here, is not installed"
    with tempfile.TemporaryDirectory() as d:
        ours, sock = start(d, 1)
        qsock = os.path.join(d, "qemu.sock")
        theirs = Vmm(["-enable-kvm", "-S", "-display", "none", "-nodefaults", "-m", "64M",
                      "-qmp", f"unix:{qsock},server,nowait"], binary=QEMU)
        with ours, theirs:
            a, b = Qmp(sock), Qmp(qsock, timeout=60)
            for cmd, args in [("query-stats", {"target": "vcpu"}),
                              ("query-stats", {"target": "vm"}),
                              ("query-stats-schemas", {})]:
                ra, rb = a.ok(cmd, **args), b.ok(cmd, **args)
                assert len(ra) == len(rb)
                for ea, eb in zip(ra, rb):
                    assert set(ea) == set(eb)
                    sa = {s["name"]: s for s in ea["stats"]}
                    sb = {s["name"]: s for s in eb["stats"]}
                    common = set(sa) & set(sb)
                    assert "exits" in common or cmd != "query-stats" or "vcpu" not in str(args)
                    for name in common:
                        assert reply_shape(sa[name]) == reply_shape(sb[name]), name
            r = a.ok("query-stats", target="vcpu",
                     providers=[{"provider": "kvm", "names": ["exits", "halt_exits"]}])
            assert sorted(s["name"] for s in r[0]["stats"]) == ["exits", "halt_exits"]
            a.close()
            b.close()
