"""tools/dv-migrate-passthrough against two scripted QMP servers (no VMM, no
KVM: runs everywhere): the commands it sends and their order, what it does
when the guest does not eject the NIC, when the migration fails (the NIC is
plugged back on the source), and its errors.  The real flow, with a Linux
guest, a bond and a passed e1000e, is test_failover_manual.py (rig)."""
import json
import os
import socket
import subprocess
import tempfile
import threading

import pytest

from harness import ROOT

TOOL = os.path.join(ROOT, "tools", "dv-migrate-passthrough")
PYTHON = "/usr/bin/python3"
GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}},
                    "capabilities": []}}


class FakeQmp:
    """A QMP server on a unix socket: answers with handler(cmd, args), which
    returns (reply, [events sent after it]); logs every command."""

    def __init__(self, path, handler):
        self.path, self.handler, self.log = path, handler, []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.srv.accept()
        f = conn.makefile("rwb")

        def send(obj):
            f.write(json.dumps(obj).encode() + b"\n")
            f.flush()

        send(GREETING)
        for line in f:
            msg = json.loads(line)
            cmd, args = msg["execute"], msg.get("arguments", {})
            self.log.append((cmd, args))
            if cmd == "qmp_capabilities":
                send({"return": {}})
                continue
            reply, events = self.handler(cmd, args)
            send(reply)
            for ev in events:
                send(ev)
        conn.close()

    def names(self):
        return [c for c, _ in self.log if c not in ("qmp_capabilities", "query-status",
                                                    "query-migrate")]


def source(migrate_outcome="completed", eject=True, zero_times=0):
    """zero_times: how many "completed" answers come before total-time and
    downtime are set (QEMU 7.2 says completed a moment before)."""
    polls = {"n": 0}

    def handler(cmd, args):
        if cmd == "query-status":
            return {"return": {"status": "running", "running": True}}, []
        if cmd == "device_del":
            ev = [{"event": "DEVICE_DELETED", "data": {"device": args["id"],
                                                        "path": "/machine/peripheral/pnic"},
                   "timestamp": {"seconds": 0, "microseconds": 0}}]
            return {"return": {}}, ev if eject else []
        if cmd == "migrate":
            return {"return": {}}, []
        if cmd == "query-migrate":
            polls["n"] += 1
            if polls["n"] < 3:
                return {"return": {"status": "active"}}, []
            if migrate_outcome == "completed" and polls["n"] < 3 + zero_times:
                return {"return": {"status": "completed", "total-time": 0,
                                   "downtime": 0, "setup-time": 0}}, []
            if migrate_outcome == "completed":
                return {"return": {"status": "completed", "total-time": 1200,
                                   "downtime": 40, "setup-time": 3}}, []
            return {"return": {"status": "failed",
                               "error-desc": "migration channel: write failed"}}, []
        if cmd == "device_add":
            return {"return": {}}, []
        return {"error": {"class": "CommandNotFound", "desc": cmd}}, []
    return handler


def destination(status="inmigrate"):
    state = {"n": 0}

    def handler(cmd, args):
        if cmd == "query-status":
            state["n"] += 1
            s = status if state["n"] == 1 else "running"
            return {"return": {"status": s, "running": s == "running"}}, []
        if cmd == "device_add":
            return {"return": {}}, []
        return {"error": {"class": "GenericError", "desc": "unexpected"}}, []
    return handler


def run(d, src_handler, dst_handler, *extra):
    src = FakeQmp(os.path.join(d, "src.sock"), src_handler)
    dst = FakeQmp(os.path.join(d, "dst.sock"), dst_handler)
    p = subprocess.run([PYTHON, TOOL, "--src", src.path, "--dst", dst.path,
                        "--uri", "tcp:127.0.0.1:4444", "--host", "01:00.0", *extra],
                       capture_output=True, text=True, timeout=60)
    return p, src, dst


def test_unplug_migrate_replug_in_order():
    with tempfile.TemporaryDirectory() as d:
        p, src, dst = run(d, source(), destination(), "--json")
        assert p.returncode == 0, p.stderr
        assert src.names() == ["device_del", "migrate"]
        assert dict(src.log)["device_del"] == {"id": "pnic"}
        assert dict(src.log)["migrate"] == {"uri": "tcp:127.0.0.1:4444"}
        assert dst.names() == ["device_add"]
        assert dict(dst.log)["device_add"] == {"driver": "vfio-pci", "host": "01:00.0",
                                               "id": "pnic"}
        out = json.loads(p.stdout)
        assert out["outcome"] == "completed"
        assert out["phases"]["qmp-downtime"] == 0.04
        assert set(out["marks"]) == {"start", "unplugged", "migrated", "running", "replugged"}


def test_times_are_read_once_qemu_has_set_them():
    # QEMU 7.2's query-migrate: "completed" with total-time and downtime 0
    # for a moment; the tool's phases must not report a 0 ms migration
    with tempfile.TemporaryDirectory() as d:
        p, src, dst = run(d, source(zero_times=3), destination(), "--json")
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert out["phases"]["qmp-total-time"] == 1.2
        assert out["phases"]["qmp-downtime"] == 0.04


def test_failed_migration_plugs_the_nic_back_on_the_source():
    with tempfile.TemporaryDirectory() as d:
        p, src, dst = run(d, source("failed"), destination())
        assert p.returncode == 1
        assert src.names() == ["device_del", "migrate", "device_add"]
        assert dict(src.log)["device_add"]["host"] == "01:00.0"
        assert dst.names() == []
        assert "migration failed (migration channel: write failed); pnic was plugged " \
               "back on the source" in p.stderr


def test_guest_that_does_not_eject_stops_before_migrating():
    with tempfile.TemporaryDirectory() as d:
        p, src, dst = run(d, source(eject=False), destination(), "--unplug-timeout", "1")
        assert p.returncode == 1
        assert src.names() == ["device_del"]
        assert "did not eject pnic in 1 s" in p.stderr


@pytest.mark.parametrize("status", ["running", "postmigrate"])
def test_destination_not_waiting_for_a_migration_is_refused(status):
    with tempfile.TemporaryDirectory() as d:
        p, src, dst = run(d, source(), destination(status))
        assert p.returncode == 1
        assert src.names() == []
        assert f"destination: status is '{status}', not 'inmigrate'" in p.stderr


def test_bad_arguments():
    p = subprocess.run([PYTHON, TOOL, "--src", "/nonexistent", "--dst", "/nonexistent",
                        "--uri", "tcp:x:1", "--host", "01:00.0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "--src /nonexistent: no such socket" in p.stderr
    p = subprocess.run([PYTHON, TOOL, "--src", "a", "--dst", "b", "--uri", "u",
                        "--host", "nonsense"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert "is not a PCI address" in p.stderr
