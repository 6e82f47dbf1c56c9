"""Debian's libvirt 9.0 probes this binary (issue 17 item 1).

libvirt starts `qemu-system-x86_64 -S -no-user-config -nodefaults
-nographic -machine none,accel=kvm:tcg -qmp unix:P,server=on,wait=off
-pidfile F -daemonize` and asks it over QMP what it can do.  Here:

- `virsh domcapabilities --emulatorbin build/qemu-system-x86_64` through
  libvirt's embedded QEMU driver (qemu:///embed?root=DIR: the driver runs
  inside virsh, with every file under DIR, and stops with it), and the
  probe's errors in libvirt's log compared with Debian QEMU's probe;
- the probe line itself and each QMP query libvirt sends, side by side
  with Debian's qemu-system-x86_64 on the same line: the same outcome and
  error class, and where both answer, this VMM's names, members and
  property types are among QEMU's.

No guest runs, so no KVM is needed: without a usable /dev/kvm both
binaries carry on under accel=kvm:tcg and query-kvm says so."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import pytest

from harness import QEMU, VMM, QmpClient

VIRSH = shutil.which("virsh")
PROBE_ARGS = ["-S", "-no-user-config", "-nodefaults", "-nographic",
              "-machine", "none,accel=kvm:tcg"]
# libvirt's embedded driver also reads these; nothing else of the host's
QEMU_CONF = 'user = "root"\ngroup = "root"\n'


def need(tool, what):
    if not tool:
        pytest.fail(f"{what} is not installed: run scripts/install-deps.sh")


def run_domcapabilities(binary, root, prefix=(), conf=QEMU_CONF):
    """virsh domcapabilities for binary with libvirt's embedded QEMU driver
    under root (virsh run behind prefix); (completed process, log text)."""
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", "qemu.conf"), "w") as f:
        f.write(conf)
    log = os.path.join(root, "libvirt.log")
    env = dict(os.environ,
               LIBVIRT_LOG_FILTERS="1:qemu.qemu_monitor 1:qemu.qemu_capabilities "
                                   "1:qemu.qemu_process 3:*",
               LIBVIRT_LOG_OUTPUTS=f"1:file:{log}")
    proc = subprocess.run(list(prefix) + [VIRSH, "-c", f"qemu:///embed?root={root}", "domcapabilities",
                           "--emulatorbin", binary], env=env, capture_output=True,
                          text=True, timeout=120)
    with open(log) as f:
        return proc, f.read()


def cached_machines(root):
    """The machine types libvirt's capabilities cache under root holds."""
    folder = os.path.join(root, "cache", "qemu", "capabilities")
    names = []
    for name in os.listdir(folder):
        names += [m.get("name") for m in ET.parse(os.path.join(folder, name)).iter("machine")]
    return names


def log_errors(text, binary):
    """libvirt's error lines, without time, thread and the binary's path."""
    out = set()
    for line in text.splitlines():
        m = re.match(r"\S+ \S+: \d+: (error|warning) : (.*)$", line)
        if m:
            out.add(re.sub(r"process \d+", "process N", m.group(2).replace(binary, "BIN")))
    return out


def qmp_replies(text):
    """(command, arguments, reply) of each QMP exchange in libvirt's log."""
    sent, out = {}, []
    decoder = json.JSONDecoder()
    for line in text.splitlines():
        m = re.search(r"QEMU_MONITOR_SEND_MSG: mon=\S+ msg=(.*)$", line)
        if m:
            req, _ = decoder.raw_decode(m.group(1))
            sent[req["id"]] = req
        m = re.search(r"QEMU_MONITOR_RECV_REPLY: mon=\S+ reply=(.*)$", line)
        if m:
            reply = json.loads(m.group(1))
            req = sent.pop(reply["id"])
            out.append((req["execute"], req.get("arguments"), reply))
    return out


def test_virsh_domcapabilities_probes_this_binary():
    need(VIRSH, "virsh (libvirt-clients)")
    need(QEMU, "Debian's qemu-system-x86_64")
    with tempfile.TemporaryDirectory() as d:
        ours, ours_log = run_domcapabilities(VMM, os.path.join(d, "ours"))
        theirs, theirs_log = run_domcapabilities(QEMU, os.path.join(d, "qemu"))
        machines = cached_machines(os.path.join(d, "ours"))
    assert machines == ["pc-i440fx-4.2"]  # libvirt leaves "none" out
    assert theirs.returncode == 0, theirs.stderr
    # Debian QEMU's domain type tells whether KVM works on this host
    if ET.fromstring(theirs.stdout).findtext("domain") != "kvm":
        # probed, but there is no domain type to offer: this VMM has no TCG
        assert ours.returncode == 1
        assert "does not support virt type" in ours.stderr
        return
    assert ours.returncode == 0, ours.stderr
    assert theirs.returncode == 0, theirs.stderr
    caps = ET.fromstring(ours.stdout)
    assert caps.findtext("path") == VMM
    assert caps.findtext("machine") == "pc-i440fx-4.2"
    assert caps.findtext("arch") == "x86_64"
    assert caps.find("vcpu").get("max") == "255"
    assert caps.findtext("domain") == "kvm"
    disk_buses = [v.text for v in caps.findall("devices/disk/enum[@name='bus']/value")]
    assert "virtio" in disk_buses
    assert caps.find("devices/hostdev").get("supported") == "yes"
    assert "pci" in [v.text for v in
                     caps.findall("devices/hostdev/enum[@name='subsysType']/value")]
    # the probe left nothing in libvirt's log that Debian QEMU's did not
    # (libvirt's own complaints about this host appear in both); the host
    # CPU model is the one exception: without query-cpu-model-expansion
    # libvirt decodes the host's CPUID itself, and names what it cannot
    extra = log_errors(ours_log, VMM) - log_errors(theirs_log, QEMU)
    extra = {e for e in extra if not e.startswith("x86Decode:")}
    assert extra == set()
    # and every QMP command libvirt sent was one this binary has
    exchanges = qmp_replies(ours_log)
    assert [c for c, _, _ in exchanges][:2] == ["qmp_capabilities", "query-version"]
    not_found = [c for c, _, r in exchanges
                 if r.get("error", {}).get("class") == "CommandNotFound"]
    theirs_not_found = [c for c, _, r in qmp_replies(theirs_log)
                        if r.get("error", {}).get("class") == "CommandNotFound"]
    # QEMU built without a TPM answers query-tpm-* so too; libvirt goes on
    assert set(not_found) <= {"query-tpm-models", "query-tpm-types"} | set(theirs_not_found)


def test_libvirt_probes_it_as_libvirt_qemu_too():
    """As libvirt's system daemon runs it: as the libvirt-qemu user with
    every capability cleared (QMP socket, pidfile and -daemonize all made
    without privileges).  KVM then works only where /dev/kvm lets the kvm
    group in; without it libvirt has no domain type for this binary."""
    need(VIRSH, "virsh (libvirt-clients)")
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        root = os.path.join(d, "libvirt")
        proc, text = run_domcapabilities(VMM, root,
                                         conf='user = "libvirt-qemu"\ngroup = "kvm"\n')
        assert re.search(r"runUid=[1-9]", text), "the probe did not run unprivileged"
        assert cached_machines(root) == ["pc-i440fx-4.2"]
    if proc.returncode == 0:
        assert ET.fromstring(proc.stdout).findtext("domain") == "kvm"
    else:
        assert "does not support virt type" in proc.stderr


# ---- the probe line and its QMP, side by side with Debian QEMU ----

class Probe:
    """binary started on libvirt's probe line; the parent has exited once
    the QMP socket is there (-daemonize), the child's pid is in the pidfile."""

    def __init__(self, binary, workdir, extra=(), prefix=()):
        self.sock = os.path.join(workdir, "qmp.sock")
        self.pidfile = os.path.join(workdir, "qemu.pid")
        args = list(prefix) + [binary] + PROBE_ARGS + list(extra) + [
            "-qmp", f"unix:{self.sock},server=on,wait=off",
            "-pidfile", self.pidfile, "-daemonize"]
        self.parent = subprocess.run(args, capture_output=True, text=True, timeout=60)
        self.pid = None
        if self.parent.returncode == 0:
            with open(self.pidfile) as f:
                self.pid = int(f.read())

    def alive(self):
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(self):
        """quit over QMP; the daemon must go within 20 s."""
        if self.pid is None:
            return
        try:
            with QmpClient(self.sock, timeout=5) as c:
                c.cmd("quit")
        except OSError:
            pass
        deadline = time.time() + 20
        while self.alive() and time.time() < deadline:
            time.sleep(0.05)
        if self.alive():
            os.kill(self.pid, 9)
            raise AssertionError(f"pid {self.pid} still there 20 s after quit")


# what libvirt 9.0 asks during probing (seen in its log with Debian QEMU)
PROBE_QUERIES = [
    ("query-version", None), ("query-target", None), ("query-kvm", None),
    ("query-commands", None), ("query-qmp-schema", None), ("qom-list-types", None),
    ("qom-list-types", {"abstract": True, "implements": "machine"}),
    ("device-list-properties", {"typename": "virtio-blk-pci"}),
    ("device-list-properties", {"typename": "virtio-net-pci"}),
    ("device-list-properties", {"typename": "vfio-pci"}),
    ("device-list-properties", {"typename": "isa-serial"}),
    ("device-list-properties", {"typename": "virtio-net-ccw"}),
    ("device-list-properties", {"typename": "pc-i440fx-4.2-machine"}),
    ("qom-list-properties", {"typename": "memory-backend-file"}),
    ("qom-list-properties", {"typename": "none-machine"}),
    ("query-machines", None), ("query-cpu-definitions", None),
    ("query-command-line-options", None),
    ("query-command-line-options", {"option": "no-such-option"}),
    ("query-migrate-capabilities", None),
]


def ask(sock, queries):
    with QmpClient(sock, timeout=20) as c:
        return [c.cmd(cmd, args) for cmd, args in queries]


def by_name(items, key="name"):
    return {x[key]: x for x in items}


def compare(cmd, args, ours, theirs):
    """Lines where our reply is not one QEMU could give."""
    where = f"{cmd} {json.dumps(args)}" if args else cmd
    if "error" in theirs or "error" in ours:
        if set(ours) != set(theirs) or \
                ours.get("error", {}).get("class") != theirs.get("error", {}).get("class"):
            if cmd == "qom-list-properties" and ours == {"return": []}:
                return []  # an error there crashes libvirt 9.0: [] instead
            return [f"{where}: {ours} here, {theirs} in QEMU"]
        return []
    o, t = ours["return"], theirs["return"]
    out = []
    if cmd in ("device-list-properties", "qom-list-properties"):
        tp = by_name(t)
        for p in o:
            q = tp.get(p["name"])
            if q is None:
                out.append(f"{where}: property {p['name']} QEMU has not")
            elif p["type"] != q["type"] or set(p) - set(q) - {"default-value"}:
                out.append(f"{where}: property {p} here, {q} in QEMU")
    elif cmd == "qom-list-types":
        tt = by_name(t)
        for x in o:
            if x.get("parent") != tt.get(x["name"], {}).get("parent"):
                out.append(f"{where}: {x} here, {tt.get(x['name'])} in QEMU")
    elif cmd == "query-machines":
        tm = by_name(t)
        keys = set().union(*(set(m) for m in t))
        for m in o:
            if m["name"] not in tm or set(m) - keys:
                out.append(f"{where}: {m} is not a machine QEMU describes so")
    elif cmd == "query-cpu-definitions":
        for c in o:
            if set(c) != set(by_name(t)[c["name"]]):
                out.append(f"{where}: {c} has other members than QEMU's")
    elif cmd == "query-command-line-options":
        to = by_name(t, "option")
        for opt in o:
            params = {p["name"]: p["type"] for p in to.get(opt["option"], {}).get(
                "parameters", [])}
            for p in opt["parameters"]:
                if params.get(p["name"]) != p["type"]:
                    out.append(f"{where}: {opt['option']}.{p['name']} is not QEMU's")
    elif cmd == "query-migrate-capabilities":
        names = {c["capability"] for c in t}
        out += [f"{where}: {c} QEMU has not" for c in o if c["capability"] not in names]
    elif cmd in ("query-commands", "query-qmp-schema"):
        pass  # the schema is held to QEMU's by test_qmp_schema
    elif isinstance(o, dict) and set(o) != set(t):
        out.append(f"{where}: members {sorted(o)} here, {sorted(t)} in QEMU")
    return out


def test_the_probe_line_and_its_queries_answer_as_debian_qemu():
    need(QEMU, "Debian's qemu-system-x86_64")
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "ours"))
        os.mkdir(os.path.join(d, "qemu"))
        ours = Probe(VMM, os.path.join(d, "ours"))
        theirs = Probe(QEMU, os.path.join(d, "qemu"))
        try:
            assert ours.parent.returncode == 0, ours.parent.stderr
            assert theirs.parent.returncode == 0, theirs.parent.stderr
            assert ours.alive()
            ours_replies = ask(ours.sock, PROBE_QUERIES)
            theirs_replies = ask(theirs.sock, PROBE_QUERIES)
        finally:
            ours.stop()
            theirs.stop()
        # quit ends the daemon and takes its pidfile away
        assert not os.path.exists(ours.pidfile)
    out = []
    for (cmd, args), o, t in zip(PROBE_QUERIES, ours_replies, theirs_replies):
        out += compare(cmd, args, o, t)
    assert out == []
    replies = {(c, json.dumps(a)): r["return"] for (c, a), r in
               zip(PROBE_QUERIES, ours_replies) if "return" in r}
    # the same /dev/kvm answers both
    assert replies[("query-kvm", "null")] == theirs_replies[2]["return"]
    machines = by_name(replies[("query-machines", "null")])
    assert machines["pc-i440fx-4.2"]["alias"] == "pc"
    assert machines["pc-i440fx-4.2"]["is-default"] is True
    types = by_name(replies[("qom-list-types", "null")])
    for t in ("pc-i440fx-4.2-machine", "none-machine", "virtio-blk-pci", "virtio-net-pci",
              "vfio-pci", "isa-serial"):
        assert t in types
    assert "machine" not in types  # abstract: listed only when asked
    blk = by_name(replies[("device-list-properties", '{"typename": "virtio-blk-pci"}')])
    assert {"drive", "addr", "bootindex", "serial"} <= set(blk)
    ccw = ours_replies[PROBE_QUERIES.index(("device-list-properties",
                                            {"typename": "virtio-net-ccw"}))]
    assert ccw == {"error": {"class": "DeviceNotFound",
                             "desc": "Device 'virtio-net-ccw' not found"}}
    commands = {c["name"] for c in replies[("query-commands", "null")]}
    schema = {e["name"] for e in replies[("query-qmp-schema", "null")]
              if e["meta-type"] == "command"}
    assert commands == schema


def test_without_kvm_the_probe_goes_on_and_query_kvm_says_so():
    """In a mount namespace whose /dev/kvm is /dev/null: accel=kvm:tcg
    carries on without KVM on both binaries, accel=kvm alone fails."""
    need(QEMU, "Debian's qemu-system-x86_64")
    unshare = shutil.which("unshare")
    need(unshare, "unshare (util-linux)")
    if not os.path.exists("/dev/kvm"):
        prefix = []
    else:
        prefix = [unshare, "-m", "--propagation", "private", "sh", "-c",
                  'mount --bind /dev/null /dev/kvm && exec "$@"', "sh"]
    with tempfile.TemporaryDirectory() as d:
        for binary in (VMM, QEMU):
            work = os.path.join(d, os.path.basename(os.path.dirname(binary)))
            os.mkdir(work)
            probe = Probe(binary, work, prefix=prefix)
            try:
                assert probe.parent.returncode == 0, probe.parent.stderr
                kvm, cpus = ask(probe.sock, [("query-kvm", None),
                                             ("query-cpu-definitions", None)])
            finally:
                probe.stop()
            assert kvm == {"return": {"enabled": False, "present": True}}, binary
            host = by_name(cpus["return"])["host"]
            assert host["unavailable-features"] == ["kvm"], binary
        # accel=kvm with no usable KVM: the process does not start
        args = prefix + [VMM, "-S", "-nodefaults", "-machine", "none,accel=kvm",
                         "-qmp", f"unix:{d}/k.sock,server=on,wait=off"]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert "KVM" in proc.stderr or "kvm" in proc.stderr
        # libvirt probes it there too, and has no domain type to offer
        if VIRSH:
            root = os.path.join(d, "libvirt")
            virsh, _ = run_domcapabilities(VMM, root, prefix=prefix)
            assert virsh.returncode == 1
            assert "does not support virt type" in virsh.stderr
            assert cached_machines(root) == ["pc-i440fx-4.2"]


def test_machine_none_takes_no_devices_and_quits():
    with tempfile.TemporaryDirectory() as d:
        probe = Probe(VMM, d)
        try:
            assert probe.parent.returncode == 0, probe.parent.stderr
            with QmpClient(probe.sock) as c:
                r = c.cmd("device_add", {"driver": "virtio-net-pci"})
                assert r["error"] == {"class": "GenericError", "desc":
                                      "No 'PCI' bus found for device 'virtio-net-pci'"}
                r = c.cmd("device_del", {"id": "x"})
                assert r["error"]["class"] == "DeviceNotFound"
                assert c.cmd("system_reset") == {"return": {}}
                assert c.cmd("query-cpus-fast") == {"return": []}
        finally:
            probe.stop()


def test_nographic_with_daemonize_is_refused_only_with_default_devices():
    """QEMU's rule: -nographic would put a serial port and a monitor on
    stdio, which a daemon has not; with -nodefaults it puts nothing there."""
    with tempfile.TemporaryDirectory() as d:
        for binary in (VMM, QEMU):
            proc = subprocess.run([binary, "-nographic", "-daemonize", "-machine", "none",
                                   "-pidfile", f"{d}/p"], capture_output=True, text=True,
                                  timeout=60)
            assert proc.returncode == 1, binary
            assert "-nographic cannot be used with -daemonize" in proc.stderr, binary
