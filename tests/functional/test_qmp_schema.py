"""The QMP schema checks (qmpcheck.py) themselves: a reply or event that
drifts from qapi/*.json fails, with the command or event and the path
named; Debian's QEMU is left alone; raw input is paired like the VMM
pairs it.  Most of these need no VM: a fake QMP server on a unix socket
answers what each test scripts."""
import collections
import json
import os
import socket
import tempfile
import threading

import pytest

from harness import BUILD, QEMU, TESTOS, QmpClient, Vmm, wait_for_path
from qmpcheck import JUNK, QmpChecker, QmpDrift, RawRequests, check_exchange, qapi_schema

OURS = {"QMP": {"version": {"qemu": {"major": 4, "minor": 2, "micro": 0},
                            "package": "directvisor 0.1"}, "capabilities": []}}
DEBIAN = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 22},
                              "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"},
                  "capabilities": ["oob"]}}
TS = {"seconds": 1700000000, "microseconds": 5}
STATS = {"transferred": 1, "remaining": 0, "total": 2, "duplicate": 0, "skipped": 0,
         "normal": 0, "normal-bytes": 0, "dirty-pages-rate": 0, "mbps": 1.5,
         "dirty-sync-count": 1, "postcopy-requests": 0, "page-size": 4096,
         "multifd-bytes": 0, "pages-per-second": 0, "precopy-bytes": 0,
         "downtime-bytes": 0, "postcopy-bytes": 0}


def checker():
    """A checker of this VMM's connection that counts apart from the
    suite's real traffic."""
    c = QmpChecker(stats=collections.Counter())
    c.received(OURS)
    return c


def drift(c, msg):
    """The message the checker refuses msg with."""
    with pytest.raises(QmpDrift) as e:
        c.received(msg)
    return str(e.value)


# ---- the checker on hand-made messages ----

def test_a_reply_matching_the_schema_passes():
    c = checker()
    c.sent({"execute": "query-migrate"})
    c.received({"return": {"status": "active", "ram": STATS, "total-time": 5}})
    c.sent({"execute": "stop", "id": "x"})
    c.received({"return": {}, "id": "x"})
    c.received({"event": "STOP", "timestamp": TS})
    c.received({"event": "MIGRATION", "timestamp": TS, "data": {"status": "completed"}})
    c.sent({"execute": "no-such"})
    c.received({"error": {"class": "CommandNotFound", "desc": "no-such"}})


@pytest.mark.parametrize("command,reply,expected", [
    ("query-migrate", {"status": "active", "ram": dict(STATS, remaining="0")},
     "query-migrate.ram.remaining: expected int, got str"),
    ("query-migrate", {"ram": {k: v for k, v in STATS.items() if k != "total"}},
     "query-migrate.ram: missing member 'total'"),
    ("query-migrate", {"status": "running"},
     "query-migrate.status: 'running' is not a MigrationStatus value"),
    ("query-status", {"running": True, "singlestep": False, "status": "running",
                      "verbose": 1},
     "query-status: unexpected member 'verbose'"),
    ("query-kvm", {"enabled": 1, "present": True},
     "query-kvm.enabled: expected bool, got int"),
    ("query-cpus-fast", [{"cpu-index": 0, "qom-path": "/m", "thread-id": 9,
                          "props": {"core-id": "0"}, "target": "x86_64"}],
     "query-cpus-fast[0].props.core-id: expected int, got str"),
    ("query-migrate", {"ram": dict(STATS, mbps="fast")},
     "query-migrate.ram.mbps: expected number, got str"),
    ("query-migrate", {"total-time": 1 << 63},
     "query-migrate.total-time: 9223372036854775808 is out of range for int"),
    ("stop", {"stopped": True}, "stop: unexpected member 'stopped'"),
    ("human-monitor-command", {"text": "x"},
     "human-monitor-command: expected str, got object"),
    ("query-no-such", {}, "query-no-such: command not in the schema"),
])
def test_a_drifting_return_fails_naming_command_and_path(command, reply, expected):
    c = checker()
    c.sent({"execute": command})
    assert expected in drift(c, {"return": reply})


@pytest.mark.parametrize("event,expected", [
    ({"event": "RESET", "timestamp": TS, "data": {"guest": "no", "reason": "guest-reset"}},
     "RESET.data.guest: expected bool, got str"),
    ({"event": "SHUTDOWN", "timestamp": TS, "data": {"guest": False, "reason": "power"}},
     "SHUTDOWN.data.reason: 'power' is not a ShutdownCause value"),
    ({"event": "MIGRATION", "timestamp": TS}, "MIGRATION: missing data"),
    ({"event": "STOP", "timestamp": TS, "data": {}}, "STOP: has data, the schema declares none"),
    ({"event": "STOP", "timestamp": {"seconds": 1}}, "STOP.timestamp"),
    ({"event": "BALLOON_CHANGE", "timestamp": TS, "data": {"actual": 1}},
     "event 'BALLOON_CHANGE': not in the schema"),
])
def test_a_drifting_event_fails(event, expected):
    assert expected in drift(checker(), event)


@pytest.mark.parametrize("reply,expected", [
    ({"error": {"class": "GenericError"}}, "expected members class and desc"),
    ({"error": {"class": "Oops", "desc": "x"}}, "'Oops' is not an ErrorClass"),
    ({"error": {"class": "GenericError", "desc": 5}}, "error.desc: expected str, got int"),
    ({"return": {}, "error": {"class": "GenericError", "desc": "x"}}, "not one of return/error"),
    ({"return": {}, "timestamp": TS}, "not one of return/error"),
])
def test_a_malformed_reply_fails(reply, expected):
    c = checker()
    c.sent({"execute": "stop"})
    assert expected in drift(c, reply)


def test_replies_pair_with_requests_by_order_and_id():
    c = checker()
    c.sent({"execute": "query-kvm", "id": 1})
    c.sent({"execute": "stop", "id": 2})
    # a reply without the request's id, or with no request, is a drift
    assert "the request's id is missing" in drift(checker_with(["query-kvm", 1]),
                                                  {"return": {}})
    assert "is no pending request's" in drift(c, {"return": {}, "id": 3})
    c.received({"return": {"enabled": True, "present": True}, "id": 1})
    assert "stop: unexpected member 'enabled'" in drift(
        c, {"return": {"enabled": True}, "id": 2})
    assert "no request pending" in drift(c, {"return": {}})
    # ids compare as JSON: 1 and true differ
    c.sent({"execute": "stop", "id": True})
    assert "is no pending request's" in drift(c, {"return": {}, "id": 1})


def checker_with(request):
    c = checker()
    c.sent({"execute": request[0], "id": request[1]})
    return c


def test_an_unknown_peer_fails_and_debian_qemu_is_not_checked():
    c = QmpChecker(stats=collections.Counter())
    with pytest.raises(QmpDrift, match="neither this VMM"):
        c.received({"QMP": {"version": {"package": "someone else"}, "capabilities": []}})
    c = QmpChecker(stats=collections.Counter())
    c.received(DEBIAN)
    c.sent({"execute": "query-status"})
    c.received({"return": {"running": True, "status": "running"}})    # no singlestep
    c.received({"event": "DEVICE_DELETED", "timestamp": TS, "data": {}})
    off = QmpChecker(False, stats=collections.Counter())
    off.received(OURS)
    off.received({"return": {"anything": 1}})


def test_every_type_of_the_schema_compiles_and_unknown_types_fail():
    schema = qapi_schema.load()
    assert {"query-migrate", "query-status", "qmp_capabilities"} <= set(schema.commands)
    assert {"STOP", "RESUME", "RESET", "SHUTDOWN", "MIGRATION"} <= set(schema.events)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bad.json")
        with open(path, "w") as f:
            f.write("{ 'command': 'query-x', 'returns': 'NoSuchInfo' }\n")
        with pytest.raises(qapi_schema.SchemaError, match="unknown type 'NoSuchInfo'"):
            qapi_schema.Schema([path])


def test_unions_alternates_and_sized_ints():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.json")
        with open(path, "w") as f:
            f.write("""
{ 'enum': 'Kind', 'data': [ 'a', 'b' ] }
{ 'struct': 'B', 'data': { 'n': 'uint8' } }
{ 'union': 'U', 'base': { 'kind': 'Kind' }, 'discriminator': 'kind',
  'data': { 'b': 'B' } }
{ 'alternate': 'Alt', 'data': { 'i': 'int', 's': 'str' } }
{ 'command': 'q', 'returns': ['U'] }
{ 'command': 'r', 'returns': 'Alt' }
{ 'event': 'E', 'data': 'B' }
""")
        s = qapi_schema.Schema([path])
    assert s.check_return("q", [{"kind": "a"}, {"kind": "b", "n": 255}]) == []
    assert s.check_return("q", [{"kind": "a", "n": 1}]) == ["q[0]: unexpected member 'n'"]
    assert s.check_return("q", [{"kind": "b", "n": 256}]) == [
        "q[0].n: 256 is out of range for uint8"]
    assert s.check_return("r", 5) == [] and s.check_return("r", "x") == []
    assert s.check_return("r", True) == ["r: bool fits no branch of Alt"]
    assert s.check_event({"event": "E", "timestamp": TS, "data": {"n": -1}}) == [
        "E.data.n: -1 is out of range for uint8"]


def test_an_exchange_made_without_the_client_is_checked_too():
    sent = b'{"execute":"qmp_capabilities"}{"execute":"query-kvm","id":1}'
    good = [json.dumps(OURS), '{"return": {}}',
            '{"return": {"enabled": true, "present": true}, "id": 1}']
    counts = collections.Counter()
    check_exchange(sent, good, counts)
    assert counts["returns"] == 2 and counts["greetings"] == 1
    with pytest.raises(QmpDrift, match="query-kvm: missing member 'present'"):
        check_exchange(sent, good[:2] + ['{"return": {"enabled": true}, "id": 1}'], counts)


# ---- raw input, cut as monitor/qmp.c cuts it ----

def test_raw_input_is_cut_like_the_vmm_cuts_it():
    r = RawRequests()
    data = b'{"execute": "query-kvm", "id": "h\xc3\xa9"}{"execute":"stop"}\n42 '
    got = []
    for b in data:                         # one byte at a time
        got += r.feed(bytes([b]))
    assert got == [{"execute": "query-kvm", "id": "h\u00e9"}, {"execute": "stop"}, 42]
    assert r.feed(b'{"execute" 1}{"execute": "cont"}') == [JUNK, {"execute": "cont"}]
    assert r.feed(b'{"execute": "query-status"\n{"execute": "stop"}') == [
        JUNK, {"execute": "stop"}]
    assert r.feed(b"xyzzy\n[1]") == [JUNK, [1]]
    # a value open after 1 MiB: one error, the rest of its line is lost
    assert r.feed(b'{"a": "' + b"x" * (1 << 20) + b"x") == [JUNK]
    assert r.feed(b'x"}{"execute": "stop"}\n{"execute": "cont"}') == [{"execute": "cont"}]


# ---- the client: a drift fails the test that received it ----

class FakeQmp:
    """A unix-socket QMP server that greets, then answers each request line
    with the next scripted line."""

    def __init__(self, greeting, script):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "qmp.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.server.settimeout(20)
        self.thread = threading.Thread(target=self.serve, args=(greeting, script))
        self.thread.start()

    def serve(self, greeting, script):
        conn, _ = self.server.accept()
        with conn:
            conn.settimeout(20)
            conn.sendall(json.dumps(greeting).encode() + b"\r\n")
            f = conn.makefile("rb")
            for answer in script:
                if not f.readline():
                    return
                conn.sendall("".join(json.dumps(m) + "\r\n" for m in answer).encode())

    def close(self):
        self.thread.join(20)
        self.server.close()
        self.dir.cleanup()


BAD_MIGRATE = {"return": {"status": "completed", "ram": dict(STATS, remaining="0")}}


def test_the_client_fails_on_a_drifting_reply_of_this_vmm():
    fake = FakeQmp(OURS, [[{"return": {}}], [BAD_MIGRATE]])
    try:
        with QmpClient(fake.path) as c:
            with pytest.raises(AssertionError,
                               match=r"query-migrate\.ram\.remaining: expected int, got str"):
                c.cmd("query-migrate")
    finally:
        fake.close()


def test_the_client_fails_on_a_drifting_event_while_waiting():
    event = {"event": "MIGRATION", "timestamp": TS, "data": {"status": "done"}}
    fake = FakeQmp(OURS, [[{"return": {}}], [event, {"return": {}}]])
    try:
        with QmpClient(fake.path) as c:
            with pytest.raises(AssertionError,
                               match="MIGRATION.data.status: 'done' is not a MigrationStatus"):
                c.cmd("stop")
    finally:
        fake.close()


def test_the_client_leaves_debian_qemu_and_opted_out_peers_alone():
    for greeting, opt in ((DEBIAN, None), (OURS, False)):
        fake = FakeQmp(greeting, [[{"return": {}}], [BAD_MIGRATE]])
        try:
            with QmpClient(fake.path, schema_check=opt) as c:
                assert c.cmd("query-migrate") == BAD_MIGRATE
        finally:
            fake.close()


# ---- the VMM: its commands are the schema's ----

@pytest.mark.vm
def test_query_commands_lists_exactly_the_schema_commands():
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "qmp.sock")
        with Vmm(["-enable-kvm", "-display", "none", "-nodefaults", "-m", "64M",
                  "-qmp", f"unix:{sock},server=on,wait=off",
                  "-kernel", TESTOS, "-append", "testos.run=idle"]):
            wait_for_path(sock)
            with QmpClient(sock) as c:
                names = {x["name"] for x in c.cmd("query-commands")["return"]}
    assert names == set(qapi_schema.load().commands)


# The arguments each query needs (more than one call: each argument set).
QUERY_ARGS = {
    "query-stats": [{"target": "vm"}, {"target": "vcpu"},
                    {"target": "vcpu", "providers": [{"provider": "kvm",
                                                      "names": ["exits"]}]}],
    "query-stats-schemas": [{}, {"provider": "kvm"}],
}


@pytest.mark.vm
def test_every_query_reply_matches_the_schema():
    """Each query-* command of the schema, on a VM with a drive, a name and
    two vCPUs: the client checks every reply, so a query no other test
    sends still cannot drift unseen."""
    schema = qapi_schema.load()
    queries = sorted(c for c in schema.commands if c.startswith("query-"))
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "qmp.sock")
        image = os.path.join(d, "disk.qcow2")
        with open(os.path.join(BUILD, "tests", "guest", "testos.qcow2"), "rb") as src, \
                open(image, "wb") as dst:
            dst.write(src.read())
        with Vmm(["-enable-kvm", "-display", "none", "-nodefaults", "-m", "64M",
                  "-smp", "2", "-name", "schema", "-drive", f"file={image},if=virtio",
                  "-qmp", f"unix:{sock},server=on,wait=off",
                  "-kernel", TESTOS, "-append", "testos.run=idle"]):
            wait_for_path(sock)
            with QmpClient(sock) as c:
                for name in queries:
                    for args in QUERY_ARGS.get(name, [None]):
                        reply = c.cmd(name, args)
                        assert "return" in reply, (name, args, reply)
                blocks = c.cmd("query-block")["return"]
                assert blocks and "inserted" in blocks[0]
                assert c.cmd("query-pci")["return"][0]["devices"]


# ---- the schema against Debian QEMU 7.2's own (query-qmp-schema) ----

def compare_with_qemu(schema, ours, theirs, qemu, path, out, seen=frozenset()):
    """Lines where type ours (our schema) is not a subset of QEMU's type
    theirs (a name in QEMU's introspection): a member QEMU lacks, one
    optional here but required there, another JSON type, an enum value
    QEMU does not know."""
    e = qemu[theirs]
    kind = e["meta-type"]
    if isinstance(ours, list):
        if kind != "array":
            out.append(f"{path}: an array here, {kind} in QEMU")
        else:
            compare_with_qemu(schema, ours[0], e["element-type"], qemu, path + "[]", out, seen)
        return
    if isinstance(ours, str) and ours in qapi_schema.BUILTINS:
        want = {"str": "string", "bool": "boolean", "number": "number",
                "null": "null", "any": None}.get(ours, "int")
        if want and (kind != "builtin" or e["json-type"] != want):
            out.append(f"{path}: {ours} here, {e.get('json-type', kind)} in QEMU")
        return
    if isinstance(ours, str) and ours in schema.enums:
        extra = set(schema.enums[ours]["data"]) - set(e.get("values", []))
        if kind != "enum" or extra:
            out.append(f"{path}: enum {ours} has {sorted(extra)} QEMU's has not")
        return
    if isinstance(ours, str) and schema.types[ours]["kind"] == "alternate":
        if kind != "alternate":
            out.append(f"{path}: an alternate here, {kind} in QEMU")
        return
    if isinstance(ours, str) and schema.types[ours]["kind"] == "union":
        # the base against QEMU's members, each branch against its variant
        union = schema.types[ours]
        compare_with_qemu(schema, union["base"], theirs, qemu, path, out, seen)
        variants = {v["case"]: v["type"] for v in e.get("variants", [])}
        for case, branch in union["data"].items():
            if case not in variants:
                out.append(f"{path}: variant {case} QEMU has not")
            else:
                compare_with_qemu(schema, qapi_schema.member_type(branch), variants[case],
                                  qemu, f"{path}<{case}>", out, seen)
        return
    members = schema._members(ours, path)
    if kind != "object":
        out.append(f"{path}: an object here, {kind} in QEMU")
        return
    if (str(ours), theirs) in seen:
        return
    seen = seen | {(str(ours), theirs)}
    qm = {m["name"]: m for m in e["members"]}
    for v in e.get("variants", []):
        for m in qemu[v["type"]]["members"]:
            qm.setdefault(m["name"], m)
    for key, t in members.items():
        name = key.lstrip("*")
        if name not in qm and f"{path}.{name}" not in OWN_MEMBERS:
            out.append(f"{path}.{name}: QEMU has no such member")
        elif name not in qm:
            continue
        elif key.startswith("*") and "default" not in qm[name]:
            out.append(f"{path}.{name}: optional here, required in QEMU")
        else:
            compare_with_qemu(schema, t, qm[name]["type"], qemu, f"{path}.{name}", out, seen)


# members of this VMM's replies that QEMU 7.2 does not have (docs/migration.md)
OWN_MEMBERS = {"query-migrate.wait-unplug-time"}
# commands of this VMM that QEMU 7.2 does not have
OWN_COMMANDS = {"query-cpus", "query-osnet-cpumap", "osnet-set-cpumap", "osnet-did-enable",
                "osnet-did-disable", "query-osnet-did", "query-osnet-stats"}


def test_the_schema_is_a_subset_of_debian_qemus():
    """Every command and event both have: what this VMM promises to return
    is what QEMU 7.2's schema allows, member by member, so a client written
    for QEMU reads our replies."""
    assert QEMU, "Debian's qemu-system-x86_64, the reference here, is not installed"
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "qemu.sock")
        with Vmm(["-machine", "accel=tcg", "-S", "-display", "none", "-nodefaults",
                  "-qmp", f"unix:{sock},server=on,wait=off"], binary=QEMU):
            with QmpClient(sock, timeout=60) as c:
                qemu = {e["name"]: e for e in c.cmd("query-qmp-schema")["return"]}
    schema = qapi_schema.load()
    out = []
    assert set(schema.commands) - set(qemu) == OWN_COMMANDS
    for name, cmd in schema.commands.items():
        if name not in OWN_COMMANDS:
            compare_with_qemu(schema, cmd.get("returns", {}), qemu[name]["ret-type"],
                              qemu, name, out)
    for name, ev in schema.events.items():
        assert name in qemu, f"event {name} is not QEMU's"
        compare_with_qemu(schema, ev.get("data", {}), qemu[name]["arg-type"], qemu, name, out)
    assert out == []
