"""Debian's libvirt 9.0 runs domains on this binary (issue 17 items 5 and 6).

libvirt's embedded QEMU driver (qemu:///embed?root=DIR: the driver runs
inside one interactive virsh, every file under DIR) is run by each test in
a network namespace of its own, whose tap (`dvtap0`, 198.18.0.1/24) the
domain's `<interface type='ethernet'>` names: libvirt opens it and passes
it as -netdev tap,fd=N, and nothing leaves the machine.  The domain XML is
the Directvisor VM of docs/user-guide.md, read from that page, with the
paths, name, memory and kernel command line changed: testos kernel-booted
with a qcow2 disk (libvirt writes the -blockdev nodes), the tap, COM1 on a
pty the test reads, no balloon or USB, `<vcpupin>` and -osnet_cpumap in
`<qemu:commandline>`.  libvirt adds its default sandbox
(resourcecontrol=deny).  What is checked is what a user of virsh sees:
the guest's console, its answers on the tap, `virsh domstate`, the vCPU
threads' affinity in /proc, the VMM's own monitor commands through
`virsh qemu-monitor-command`.  The stock Linux guest (hwkvm) runs in the
rig's L1."""
import json
import os
import queue
import re
import select
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import pytest

import linuxguest
from harness import ROOT, TESTOS, VMM, end_process, libvirt_user_binds
from test_libvirt_cmdline import make_qcow2_disk

VIRSH = shutil.which("virsh")
GUIDE = os.path.join(ROOT, "docs", "user-guide.md")
NETPROBE = os.path.join(ROOT, "tests", "guest", "netprobe.py")
PYTHON = "/usr/bin/python3"
TAP = "dvtap0"
HOST_IP, GUEST_IP = "198.18.0.1", "198.18.0.2"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
# root's driver; no virtlogd (the log goes straight to a file)
QEMU_CONF = 'user = "root"\ngroup = "root"\nstdio_handler = "file"\n'
BOOT_TIMEOUT = 60


def guide_domain_xml():
    """The Directvisor domain XML of docs/user-guide.md (its one xml block)."""
    with open(GUIDE) as f:
        blocks = re.findall(r"```xml\n(.*?)```", f.read(), re.S)
    assert len(blocks) == 1, "docs/user-guide.md should hold one ```xml block"
    return blocks[0]


def guide_map_text():
    """map.txt as the guide writes it, after the domain XML."""
    with open(GUIDE) as f:
        text = f.read()
    m = re.search(r"vm0-map.txt` holding.*?```\n(.*?)```", text, re.S)
    assert m, "docs/user-guide.md should show vm0-map.txt"
    return m.group(1)


def domain_xml(name, kernel, cmdline, disk, map_path, initrd=None, memory_mib=128,
               vcpupin=True, on_reboot=None):
    ET.register_namespace("qemu", QEMU_NS)
    dom = ET.fromstring(guide_domain_xml())
    dom.find("name").text = name
    dom.find("memory").text = str(memory_mib)
    dom.find("os/kernel").text = kernel
    dom.find("os/cmdline").text = cmdline
    if initrd:
        ET.SubElement(dom.find("os"), "initrd").text = initrd
    dom.find("devices/emulator").text = VMM
    dom.find("devices/disk/source").set("file", disk)
    dom.find("devices/interface/target").set("dev", TAP)
    args = dom.findall(f"{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}arg")
    assert [a.get("value") for a in args][0] == "-osnet_cpumap"
    args[1].set("value", f"path={map_path}")
    if not vcpupin:
        dom.remove(dom.find("cputune"))
    if on_reboot:
        dom.find("on_reboot").text = on_reboot
    return ET.tostring(dom, encoding="unicode")


class Virsh:
    """One interactive virsh on libvirt's embedded QEMU driver under root,
    in network namespace ns.  The driver, and the domains it started, live
    as long as this virsh does."""

    def __init__(self, root, ns, qemu_conf=QEMU_CONF):
        self.root = root
        os.makedirs(os.path.join(root, "etc"))
        with open(os.path.join(root, "etc", "qemu.conf"), "w") as f:
            f.write(qemu_conf)
        self.n = 0
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns] + self.users_prefix() +
            [VIRSH, "-q", "-c", f"qemu:///embed?root={root}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def users_prefix(self):
        """virsh in a mount namespace with the libvirt-qemu user where the
        host lacks it (harness.libvirt_user_binds)."""
        binds = libvirt_user_binds(os.path.join(self.root, "etc"))
        if not binds:
            return []
        mounts = " && ".join(f"mount --bind {a} {b}" for a, b in binds)
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                f'{mounts} && exec "$@"', "sh"]

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def __call__(self, *words, timeout=60, check=True):
        """virsh WORDS; its output.  Each command is followed by an unknown
        one whose error (on stderr, unbuffered) comes after the command's
        output (flushed with the next prompt): that ends the answer."""
        command = " ".join(shlex.quote(w) for w in words)
        self.n += 1
        mark = f"__dv_end_{self.n}__"
        self.proc.stdin.write(f"{command}\n{mark}\n")
        self.proc.stdin.flush()
        out = []
        deadline = time.time() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                raise AssertionError(f"virsh {command}: no answer within {timeout} s: "
                                     f"{out}") from None
            if line is None:
                raise AssertionError(f"virsh ended during {command}: {out}")
            if line == f"error: unknown command: '{mark}'":
                break
            while line.startswith("virsh # "):
                line = line[len("virsh # "):]
            if line not in (command, mark):
                out.append(line)
        text = "\n".join(out).strip()
        if check and re.search(r"^error:", text, re.M):
            raise AssertionError(f"virsh {command}: {text}")
        return text

    def domstate(self, name):
        return self("domstate", name)

    def wait_state(self, name, state, timeout=30):
        deadline = time.time() + timeout
        while (now := self.domstate(name)) != state:
            assert time.time() < deadline, f"domain {name} still {now!r}, not {state!r}, " \
                                           f"after {timeout} s"
            time.sleep(0.2)

    def pid(self, name):
        with open(os.path.join(self.root, "run", "qemu", f"{name}.pid")) as f:
            return int(f.read())

    def log(self, name):
        with open(os.path.join(self.root, "log", "qemu", f"{name}.log")) as f:
            return f.read()

    def close(self):
        try:
            for name in self("list", "--name", check=False).split():
                self("destroy", name, check=False)
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except (OSError, AssertionError):
            pass
        end_process(self.proc, 30)


class Pty:
    """COM1's pseudo-terminal, held open for the whole test."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        self.buf = b""

    def wait_for(self, pattern, timeout=BOOT_TIMEOUT, start=0):
        """The first match of pattern in the output from offset start."""
        deadline = time.time() + timeout
        while True:
            m = re.compile(pattern.encode()).search(self.buf, start)
            if m:
                return m
            left = deadline - time.time()
            assert left > 0, f"no {pattern!r} on COM1 within {timeout} s; " \
                             f"got {self.buf[-800:]!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.buf += os.read(self.fd, 4096)
                except (BlockingIOError, OSError):
                    time.sleep(0.05)

    def close(self):
        os.close(self.fd)


@pytest.fixture
def netns():
    if not VIRSH:
        pytest.fail("virsh (libvirt-clients) is not installed: run scripts/install-deps.sh")
    if not os.path.exists("/dev/net/tun"):
        pytest.fail("no /dev/net/tun (the tun module)")
    name = f"dvlvd-{os.getpid()}-{time.monotonic_ns() % 1000000}"
    cmds = [["ip", "netns", "add", name],
            ["ip", "-n", name, "link", "set", "lo", "up"],
            ["ip", "-n", name, "tuntap", "add", "dev", TAP, "mode", "tap", "vnet_hdr"],
            ["ip", "-n", name, "addr", "add", f"{HOST_IP}/24", "dev", TAP],
            ["ip", "-n", name, "link", "set", TAP, "up"]]
    try:
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True, timeout=30)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
def lv(netns):
    """(virsh on a fresh embedded driver in netns, a scratch directory)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        os.chmod(d, 0o755)
        virsh = Virsh(os.path.join(d, "lv"), netns)
        try:
            yield virsh, d
        finally:
            virsh.close()


def define(virsh, d, name, cmdline, disk=None, **kw):
    map_path = os.path.join(d, "map.txt")
    with open(map_path, "w") as f:
        f.write(guide_map_text())
    if disk is None:
        disk = os.path.join(d, "empty.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "16M"],
                       check=True, timeout=30)
    path = os.path.join(d, f"{name}.xml")
    with open(path, "w") as f:
        f.write(domain_xml(name, kw.pop("kernel", TESTOS), cmdline, disk, map_path, **kw))
    virsh("define", path)


def start_paused_with_console(virsh, name):
    """virsh start --paused, COM1's pty (from the live XML) opened, resume:
    the console holds everything from the first line on."""
    virsh("start", name, "--paused")
    live = ET.fromstring(virsh("dumpxml", name))
    pty = Pty(live.find("devices/serial/source").get("path"))
    virsh("resume", name)
    return pty


def vcpu_threads(pid):
    """vCPU index -> (thread id, Cpus_allowed_list) from /proc."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            m = re.fullmatch(r"CPU (\d+)/KVM", f.read().strip())
        if m:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                allowed = re.search(r"Cpus_allowed_list:\s*(\S+)", f.read()).group(1)
            out[int(m.group(1))] = (int(tid), allowed)
    return out


def netprobe(ns, *args, timeout=60):
    p = subprocess.run(["ip", "netns", "exec", ns, PYTHON, NETPROBE] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def host_cpus():
    return len(os.sched_getaffinity(0))


@pytest.mark.vm
def test_directvisor_domain_runs_pins_and_answers(lv, netns):
    """The guide's domain with testos's net scenario: it answers on the tap;
    the vCPUs sit on the map's pCPUs; virsh vcpupin moves one; the VMM's own
    commands answer through qemu-monitor-command; suspend, resume, reset
    and destroy reach the guest and virsh's view."""
    virsh, d = lv
    if host_cpus() < 2:
        pytest.fail("needs 2 host CPUs (the guide's map uses pCPUs 0 and 1)")
    define(virsh, d, "dv0", f"testos.run=net testos.ip={GUEST_IP}")
    assert virsh.domstate("dv0") == "shut off"
    pty = start_paused_with_console(virsh, "dv0")
    try:
        pty.wait_for(r"testos: net up mac=52:54:00:12:34:56 ip=198\.18\.0\.2")
        assert virsh.domstate("dv0") == "running"
        pid = virsh.pid("dv0")
        with open(f"/proc/{pid}/cmdline") as f:
            argv = f.read().split("\0")
        assert argv[0] == VMM
        # libvirt's own spelling: -blockdev nodes, the tap by descriptor, its sandbox
        assert "-blockdev" in argv and any(a.startswith("tap,fd=") for a in argv), argv
        assert "-sandbox" in argv and "resourcecontrol=deny" in argv[argv.index("-sandbox") + 1]
        assert argv[argv.index("-osnet_cpumap") + 1] == f"path={d}/map.txt"
        with open(f"/proc/{pid}/status") as f:
            assert re.search(r"^Seccomp:\s+2$", f.read(), re.M)
        # the guest on the tap: ARP, then ICMP and UDP echo up to a full frame
        rc, out = netprobe(netns, "arp", TAP, GUEST_IP)
        assert rc == 0 and "ok arp mac=52:54:00:12:34:56" in out, out
        rc, out = netprobe(netns, "echo", TAP, GUEST_IP, "--max", "1514")
        assert rc == 0 and out.startswith("ok echo"), out

        # <vcpupin> carried the map (vCPU 0 on pCPU 1, 1 on 0)
        threads = vcpu_threads(pid)
        assert {i: a for i, (_, a) in threads.items()} == {0: "1", 1: "0"}
        assert "cannot pin" not in virsh.log("dv0")  # the VMM found them in place
        pins = virsh("vcpupin", "dv0")
        assert re.search(r"^\s*0\s+1$", pins, re.M) and re.search(r"^\s*1\s+0$", pins, re.M), pins
        # the VMM's monitor: its map, the thread libvirt pinned
        # (libvirt's own log lines, such as its custom-monitor taint, come first)
        reply = virsh("qemu-monitor-command", "dv0", '{"execute":"query-osnet-stats"}')
        stats = json.loads(reply.splitlines()[-1])["return"]
        assert [(v["cpu-index"], v["pcpu"], v["thread-id"]) for v in stats] == \
            [(0, 1, threads[0][0]), (1, 0, threads[1][0])], stats
        assert stats[0]["total"]["exits"] > 0, stats  # the guest has run
        info = virsh("qemu-monitor-command", "dv0", "--hmp", "info osnet")
        rows = {int(m.group(1)): (int(m.group(2)), int(m.group(3))) for m in
                re.finditer(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s", info, re.M)}
        assert rows == {0: (1, threads[0][0]), 1: (0, threads[1][0])}, info
        # virsh vcpupin moves a vCPU live (libvirt pins from outside the sandbox)
        virsh("vcpupin", "dv0", "0", "0")
        assert vcpu_threads(pid)[0][1] == "0"
        virsh("vcpupin", "dv0", "0", "1")
        assert vcpu_threads(pid)[0][1] == "1"

        # suspend: the guest stops answering; resume: it answers again
        virsh("suspend", "dv0")
        assert virsh.domstate("dv0") == "paused"
        status = virsh("qemu-monitor-command", "dv0", '{"execute":"query-status"}')
        assert '"status":"paused"' in status.replace(" ", ""), status
        rc, out = netprobe(netns, "arp", TAP, GUEST_IP)
        assert rc == 1 and "FAIL no ARP reply" in out, out
        virsh("resume", "dv0")
        assert virsh.domstate("dv0") == "running"
        rc, out = netprobe(netns, "arp", TAP, GUEST_IP)
        assert rc == 0, out

        # reset: testos boots again
        before = len(pty.buf)
        virsh("reset", "dv0")
        pty.wait_for(r"testos: ready cpus=2", start=before)
        pty.wait_for(r"testos: net up", start=before)
        assert virsh.domstate("dv0") == "running"
        assert virsh.pid("dv0") == pid

        virsh("destroy", "dv0")
        assert virsh.domstate("dv0") == "shut off"
        deadline = time.time() + 20
        while os.path.exists(f"/proc/{pid}"):
            assert time.time() < deadline, "the VMM still runs 20 s after virsh destroy"
            time.sleep(0.1)
    finally:
        pty.close()


@pytest.mark.vm
def test_disk_scenario_and_reboot_to_shut_off(lv, netns):
    """testos's blk scenario on the qcow2 disk libvirt opens as -blockdev;
    with <on_reboot>destroy</on_reboot> its reset at the end leaves the
    domain shut off."""
    virsh, d = lv
    disk = make_qcow2_disk(d)
    define(virsh, d, "dvblk", "testos.run=blk", disk=disk, on_reboot="destroy")
    pty = start_paused_with_console(virsh, "dvblk")
    try:
        m = pty.wait_for(r"testos: blk capacity=\d+ read-ok=(\d+) write-ok=(\d+) flush=ok")
        assert int(m.group(1)) > 0 and int(m.group(2)) > 0
        pty.wait_for(r"testos: done")
        virsh.wait_state("dvblk", "shut off")
    finally:
        pty.close()


@pytest.mark.vm
def test_virsh_shutdown_presses_the_power_button(lv, netns):
    """virsh shutdown: ACPI's power button reaches testos's powerdown
    scenario, which enters S5; libvirt then shows the domain shut off."""
    virsh, d = lv
    define(virsh, d, "dvpwr", "testos.run=powerdown")
    pty = start_paused_with_console(virsh, "dvpwr")
    try:
        pty.wait_for(r"testos: powerdown waiting sts=1 en=100 cnt=1")
        virsh("shutdown", "dvpwr")
        pty.wait_for(r"testos: powerdown button sts=0")
        virsh.wait_state("dvpwr", "shut off")
        assert "shutting down, reason=shutdown" in virsh.log("dvpwr")
    finally:
        pty.close()


def wait_log(virsh, name, text, timeout=30):
    deadline = time.time() + timeout
    while text not in (log := virsh.log(name)):
        assert time.time() < deadline, f"no {text!r} in the domain's log within {timeout} s: " \
                                       f"{log[-1500:]}"
        time.sleep(0.2)
    return log


@pytest.mark.vm
def test_the_map_alone_does_not_pin_under_libvirts_sandbox(lv, netns):
    """Why the guide writes the map twice: without <vcpupin> libvirt puts
    every vCPU on all host CPUs and its sandbox keeps the VMM from pinning
    them back; the VMM says so in the domain's log, with the <vcpupin>
    that would do it.  info osnet still shows the map."""
    virsh, d = lv
    if host_cpus() < 2:
        pytest.fail("needs 2 host CPUs (the guide's map uses pCPUs 0 and 1)")
    define(virsh, d, "dvmap", "testos.run=idle", vcpupin=False)
    pty = start_paused_with_console(virsh, "dvmap")
    try:
        pty.wait_for(r"testos: idle")
        every = f"0-{host_cpus() - 1}"
        pid = virsh.pid("dvmap")
        for i, pcpu in ((0, 1), (1, 0)):
            wait_log(virsh, "dvmap", f"vCPU {i}: cannot pin to pCPU {pcpu}: it runs on pCPUs "
                                     f"{every} (pin it from outside, e.g. libvirt's "
                                     f"<vcpupin vcpu='{i}' cpuset='{pcpu}'/>)")
        assert {i: a for i, (_, a) in vcpu_threads(pid).items()} == {0: every, 1: every}
        info = virsh("qemu-monitor-command", "dvmap", "--hmp", "info osnet")
        assert re.search(r"^\s*0\s+1\s", info, re.M) and re.search(r"^\s*1\s+0\s", info, re.M), \
            info
    finally:
        pty.close()


@pytest.mark.vm
def test_without_the_sandbox_the_map_alone_pins(netns):
    """With libvirt's sandbox off (seccomp_sandbox = 0 in qemu.conf) the VMM
    binds each vCPU to its map's pCPU again just before the guest first
    runs, after libvirt has set the threads' affinity: -osnet_cpumap alone
    is enough, and nothing is warned."""
    if host_cpus() < 2:
        pytest.fail("needs 2 host CPUs (the guide's map uses pCPUs 0 and 1)")
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        os.chmod(d, 0o755)
        virsh = Virsh(os.path.join(d, "lv"), netns, QEMU_CONF + "seccomp_sandbox = 0\n")
        try:
            define(virsh, d, "dvnosb", "testos.run=idle", vcpupin=False)
            pty = start_paused_with_console(virsh, "dvnosb")
            try:
                pty.wait_for(r"testos: idle")
                pid = virsh.pid("dvnosb")
                with open(f"/proc/{pid}/cmdline") as f:
                    argv = f.read().split("\0")
                assert argv[argv.index("-sandbox") + 1] == "off"  # libvirt's spelling
                assert {i: a for i, (_, a) in vcpu_threads(pid).items()} == {0: "1", 1: "0"}
                assert "cannot pin" not in virsh.log("dvnosb")
            finally:
                pty.close()
        finally:
            virsh.close()


@pytest.mark.hwkvm
def test_stock_linux_guest_under_libvirt(lv, netns):
    """Debian's stock kernel with the Linux test guest in the guide's
    domain: its disk and net scenarios pass, the vCPUs sit where <vcpupin>
    says, and virsh shutdown powers it off through its acpid."""
    virsh, d = lv
    why = linuxguest.missing()
    if why:
        pytest.fail(why)
    cmdline = linuxguest.append(run="disk,net,button", extra=f"dv.ip={GUEST_IP}/24",
                                sh="sleep 900")
    define(virsh, d, "dvlinux", cmdline, kernel=linuxguest.KERNEL,
           initrd=linuxguest.ensure_initramfs(), memory_mib=256)
    pty = start_paused_with_console(virsh, "dvlinux")
    try:
        pty.wait_for(r"linux: ready cpus=2", timeout=300)
        m = pty.wait_for(r"linux: disk vda offset=\d+ bytes=\d+ wrote=(\w+) read=(\w+)\r?\n",
                         timeout=120)
        assert m.group(1) == m.group(2)
        m = pty.wait_for(r"linux: net ping peer=198\.18\.0\.1 sent=(\d+) received=(\d+)\r?\n",
                         timeout=120)
        assert int(m.group(2)) > 0, m.group(0)
        pty.wait_for(r"linux: button armed", timeout=60)
        threads = vcpu_threads(virsh.pid("dvlinux"))
        assert {i: a for i, (_, a) in threads.items()} == {0: "1", 1: "0"}
        assert not re.search(rb"linux: fail", pty.buf), pty.buf[-800:]
        virsh("shutdown", "dvlinux")
        pty.wait_for(r"linux: power button", timeout=60)
        virsh.wait_state("dvlinux", "shut off", timeout=60)
    finally:
        pty.close()
