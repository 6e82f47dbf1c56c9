"""-sandbox (seccomp), -runas and the capabilities the VMM keeps.

A testos VM under libvirt's sandbox (-sandbox on,obsolete=deny,
elevateprivileges=deny,spawn=deny,resourcecontrol=deny) boots, answers QMP,
migrates over tcp and unix to a sandboxed destination and quits; every
thread shows seccomp mode 2 and one filter in /proc; what spawn=deny
forbids (migrate exec:, a tap's script=) fails with an error while the VM
goes on.  -runas nobody: every thread runs as nobody with no capability
left.  Run as root without -runas: every thread keeps CAP_NET_ADMIN and
CAP_IPC_LOCK only (docs/user-guide.md says why), and netdev_add of a tap by
name still works.  Option errors: one line each, the same as Debian's QEMU
7.2 (which has seccomp) prints; the filter itself, read back through
ptrace, is Debian QEMU's instruction for instruction (spawn=deny: the same
syscalls, EPERM where QEMU kills).

Under DV_SANITIZED the tests that need no VM run against the ASan+UBSan
build: the option errors and the filters read back (machine none under
-sandbox); ASan's own syscalls (mmap, madvise, sigaltstack...) are in no
denied set, and leak checking, whose tracer thread clone would refuse
(CLONE_UNTRACED), is off for the VMM there (harness.py)."""
import ctypes
import glob
import os
import struct
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from harness import (BUILD, QEMU, SLOW, TESTOS, VMM, Qmp, Vmm, free_port, serial_log,
                     wait_log_count, wait_migration_status)
from test_testos_net import GUEST_IP, GUEST_MAC, NETPROBE, PYTHON, TAP
from test_testos_net import netns as tap_netns  # noqa: F401 (a fixture)

LIBVIRT_SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
CAP_NET_ADMIN, CAP_IPC_LOCK = 12, 14
KEPT = (1 << CAP_NET_ADMIN) | (1 << CAP_IPC_LOCK)


def need_seccomp():
    """The seccomp tests need a binary built with libseccomp."""
    with open(os.path.join(BUILD, "config-host.h")) as f:
        if "#define CONFIG_SECCOMP 1" not in f.read():
            pytest.fail("built without libseccomp: install libseccomp-dev "
                        "(scripts/install-deps.sh), rerun ./configure and make")


def first_line(binary, args):
    """Run a command line that must fail at once: (status, stderr lines)."""
    proc = subprocess.run([binary, *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, proc.stderr.splitlines()


BAD_OPTIONS = [
    ["-sandbox", "on,obtain=deny"],            # QEMU spells it obsolete=
    ["-sandbox", "on,spawn=foo"],
    ["-sandbox", "on,elevateprivileges=yes"],
    ["-sandbox", "on,resourcecontrol=maybe"],
    ["-sandbox", "on,obsolete=x"],
    ["-sandbox", "on,foo=bar"],
    ["-sandbox", "maybe"],
    ["-sandbox", "off,bogus=1"],
    ["-runas", "no-such-user-here"],
    ["-runas", "12:"],
    ["-runas", "1:2:3"],
    ["-runas", "-1:5"],
]


@pytest.mark.parametrize("args", BAD_OPTIONS, ids=[" ".join(a) for a in BAD_OPTIONS])
def test_bad_options_get_qemus_one_line(args):
    """Each bad value is one line naming the option, exit status 1, as
    Debian's QEMU 7.2 (built with seccomp) prints it."""
    if args[0] == "-sandbox":
        need_seccomp()
    if not QEMU:
        pytest.fail("Debian's qemu-system-x86_64, the reference here, is not installed")
    common = ["-machine", "none", "-nodefaults", "-display", "none", "-S"]
    status, lines = first_line(VMM, [*common, *args])
    q_status, q_lines = first_line(QEMU, [*common, *args])
    assert (status, lines) == (q_status, q_lines) == (1, q_lines), (lines, q_lines)
    assert len(lines) == 1 and lines[0].startswith(f"qemu-system-x86_64: {args[0]} ")


def test_runas_under_elevateprivileges_deny_is_refused_at_once():
    """QEMU 7.2 starts, then its own filter kills it (SIGSYS) when -runas
    calls setuid; here the pair is refused before anything starts."""
    need_seccomp()
    for value in ("deny", "children"):
        status, lines = first_line(VMM, ["-machine", "none", "-nodefaults", "-display", "none",
                                         "-sandbox", f"on,elevateprivileges={value}",
                                         "-runas", "65534:65534"])
        assert status == 1
        assert lines == ["qemu-system-x86_64: -runas: -sandbox "
                         f"elevateprivileges={value} forbids changing the user"]


PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SECCOMP_GET_FILTER = 16, 17, 0x420c
BPF_RET, BPF_JEQ_K = 0x06, 0x15
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO = 0x80000000, 0x00050000
EPERM = 1


def seccomp_filters(pid):
    """The classic-BPF programs of pid's filters, newest first, read
    through ptrace (as root): [(code, jt, jf, k), ...] each."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) < 0:
        raise OSError(ctypes.get_errno(), f"ptrace attach {pid}")
    try:
        os.waitpid(pid, 0x40000000)     # __WALL: the attach stop
        programs = []
        while True:
            index = ctypes.c_void_p(len(programs))
            count = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, None)
            if count < 0:
                return programs
            buf = ctypes.create_string_buffer(8 * count)
            libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, buf)
            programs.append([struct.unpack_from("HBBI", buf.raw, 8 * i) for i in range(count)])
    finally:
        libc.ptrace(PTRACE_DETACH, pid, None, None)


def filters_of(binary, *sandboxes, seccomp_mode=2):
    """Start binary as a QMP-less machine none with a -sandbox for each
    argument and read its filters once /proc shows seccomp_mode."""
    sandbox_args = [a for sb in sandboxes for a in ("-sandbox", sb)]
    proc = subprocess.Popen([binary, "-machine", "none", "-nodefaults", "-display", "none",
                             "-S", "-qmp", "stdio", *sandbox_args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20 * SLOW
        # the QMP greeting: the command line is read and set-up is done
        assert proc.stdout.readline().startswith(b'{"QMP"'), proc.stderr.read()
        while f"Seccomp:\t{seccomp_mode}" not in open(f"/proc/{proc.pid}/status").read():
            assert proc.poll() is None, f"{binary} ended: {proc.stderr.read()!r}"
            assert time.time() < deadline, f"{binary}: no filter after {20 * SLOW} s"
            time.sleep(0.02)
        return seccomp_filters(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()


def syscalls_named(program):
    return sorted({k for code, _, _, k in program if code == BPF_JEQ_K and k < 1024})


@pytest.mark.parametrize("sandbox", ["on", "on,obsolete=allow", "on,elevateprivileges=deny",
                                     "on,resourcecontrol=deny"])
def test_filter_is_debian_qemus_instruction_for_instruction(sandbox):
    """The seccomp program this VMM loads is the one Debian's QEMU 7.2
    loads for the same -sandbox, instruction for instruction (same
    syscalls, arguments and actions: kill the process, EPERM for
    resourcecontrol)."""
    need_seccomp()
    if not QEMU:
        pytest.fail("Debian's qemu-system-x86_64, the reference here, is not installed")
    ours, theirs = filters_of(VMM, sandbox), filters_of(QEMU, sandbox)
    assert len(ours) == len(theirs) == 1
    assert ours == theirs, (syscalls_named(ours[0]), syscalls_named(theirs[0]))


def test_off_installs_nothing_and_each_on_stacks_a_filter():
    """-sandbox off leaves the process unfiltered (Seccomp 0); two -sandbox
    on install two filters, each Debian QEMU's, as QEMU 7.2 does."""
    need_seccomp()
    if not QEMU:
        pytest.fail("Debian's qemu-system-x86_64, the reference here, is not installed")
    assert filters_of(VMM, "off", seccomp_mode=0) == []
    ours = filters_of(VMM, "on", "on,resourcecontrol=deny")
    assert len(ours) == 2
    assert ours == filters_of(QEMU, "on", "on,resourcecontrol=deny")


def test_spawn_deny_filters_qemus_syscalls_with_eperm():
    """spawn=deny names the syscalls QEMU 7.2's does (fork, vfork, execve,
    execveat, clone by its flags, clone3, setns, unshare) but fails them
    with EPERM where QEMU kills the process, so a monitor command that
    would spawn gets an error instead of ending the VM."""
    need_seccomp()
    if not QEMU:
        pytest.fail("Debian's qemu-system-x86_64, the reference here, is not installed")
    [ours], [theirs] = filters_of(VMM, LIBVIRT_SANDBOX), filters_of(QEMU, LIBVIRT_SANDBOX)
    assert syscalls_named(ours) == syscalls_named(theirs)
    rets = lambda prog: {k for code, _, _, k in prog if code == BPF_RET}
    assert SECCOMP_RET_ERRNO | EPERM in rets(ours) and SECCOMP_RET_ERRNO | EPERM in rets(theirs)
    assert SECCOMP_RET_KILL_PROCESS in rets(ours)     # the default set still kills


def test_query_command_line_options_lists_sandbox_as_qemu():
    """libvirt adds -sandbox on,...,elevateprivileges=deny,... only when
    query-command-line-options lists sandbox with elevateprivileges: the
    entry is Debian QEMU's."""
    need_seccomp()
    if not QEMU:
        pytest.fail("Debian's qemu-system-x86_64, the reference here, is not installed")
    seen = []
    for binary in (VMM, QEMU):
        with tempfile.TemporaryDirectory() as d:
            sock = os.path.join(d, "qmp.sock")
            with Vmm(["-machine", "none,accel=kvm:tcg", "-nodefaults", "-display", "none",
                      "-S", "-qmp", f"unix:{sock},server=on,wait=off"], binary=binary) as vm:
                q = Qmp(sock)
                seen.append(q.ok("query-command-line-options", option="sandbox"))
                q.ok("quit")
                vm.wait(timeout=30)
    assert seen[0] == seen[1], seen
    assert {"name": "elevateprivileges", "type": "string"} in seen[0][0]["parameters"]


# ---- VMs ----

def proc_status(pid):
    """Each thread's /proc status as {field: value}, keyed by thread name.
    KVM's own kernel workers (kvm-nx-lpage-recovery) live in the VMM's
    thread group but run no VMM code and keep the credentials they were
    made with (a user change does not reach them): they are left out."""
    threads = {}
    for task in sorted(glob.glob(f"/proc/{pid}/task/*")):
        try:
            with open(os.path.join(task, "comm")) as f:
                name = f.read().strip()
            if name.startswith("kvm-"):
                continue
            with open(os.path.join(task, "status")) as f:
                fields = dict(line.split(":\t", 1) for line in f.read().splitlines()
                              if ":\t" in line)
        except FileNotFoundError:
            continue    # a thread that just ended
        threads[f"{name}/{os.path.basename(task)}"] = {k: v.strip() for k, v in fields.items()}
    assert threads, f"no threads under /proc/{pid}"
    return threads


def vm_args(d, name, extra=(), append="testos.run=hello", kernel=TESTOS):
    return ["-enable-kvm", "-smp", "2", "-m", "128M", "-display", "none", "-nodefaults",
            "-serial", f"file:{os.path.join(d, name + '.log')}",
            "-qmp", f"unix:{os.path.join(d, name + '.sock')},server=on,wait=off",
            "-kernel", kernel, "-append", append, *extra]


def hellos(d, name):
    return serial_log(d, name).count("testos: hello")


def wait_more_hellos(d, name, than, timeout=30):
    """The guest goes on: its hello count grows past `than`."""
    wait_log_count(d, name, "testos: hello", than + 1, timeout * SLOW)


def quit_cleanly(vm, q):
    q.ok("quit")
    status = vm.wait(timeout=30 * SLOW)
    assert status == 0, f"exit status {status}; stderr {vm.stderr!r}"


def assert_sandboxed(pid, filters=1):
    for thread, st in proc_status(pid).items():
        assert st["Seccomp"] == "2", (thread, st["Seccomp"])
        assert st["Seccomp_filters"] == str(filters), (thread, st["Seccomp_filters"])
        assert st["NoNewPrivs"] == "1", (thread, st["NoNewPrivs"])


@pytest.mark.vm
@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_libvirt_sandbox_vm_runs_migrates_and_quits(kind):
    """Source and destination both under libvirt's -sandbox: the guest
    runs, every thread of both is filtered, the migration completes, the
    guest goes on at the destination, which quits with status 0."""
    need_seccomp()
    sandbox = ["-sandbox", LIBVIRT_SANDBOX]
    with tempfile.TemporaryDirectory() as d:
        uri = (f"tcp:127.0.0.1:{free_port()}" if kind == "tcp"
               else f"unix:{os.path.join(d, 'mig.sock')}")
        with Vmm(vm_args(d, "src", sandbox)) as src:
            q_src = Qmp(os.path.join(d, "src.sock"))
            wait_more_hellos(d, "src", 0)
            assert q_src.ok("query-status")["status"] == "running"
            assert_sandboxed(src.pid)
            with Vmm(vm_args(d, "dst", [*sandbox, "-incoming", uri])) as dst:
                q_dst = Qmp(os.path.join(d, "dst.sock"))
                assert_sandboxed(dst.pid)
                q_src.ok("migrate", uri=uri)
                info = wait_migration_status(q_src)
                assert info["status"] == "completed", info
                before = hellos(d, "dst")
                wait_more_hellos(d, "dst", before)
                assert q_dst.ok("query-status")["status"] == "running"
                assert_sandboxed(dst.pid)
                quit_cleanly(dst, q_dst)
            quit_cleanly(src, q_src)


@pytest.fixture
def netns():
    """A network namespace of its own for the taps these tests create."""
    name = f"dvsbx{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.vm
def test_spawn_deny_refuses_exec_migration_and_tap_scripts(netns):
    """Under spawn=deny, migrate exec: and netdev_add with a script= fail
    with an error (the fork is refused: EPERM) and the guest goes on; QEMU
    7.2 is killed by its own filter (SIGSYS) in both cases.  A tap without
    a script still comes (CAP_NET_ADMIN kept)."""
    need_seccomp()
    with tempfile.TemporaryDirectory() as d:
        marker = os.path.join(d, "script-ran")
        script = os.path.join(d, "ifup.sh")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\ntouch {marker}\n")
        os.chmod(script, 0o755)
        args = vm_args(d, "vm", ["-sandbox", LIBVIRT_SANDBOX])
        with Vmm(["netns", "exec", netns, VMM, *args], binary="ip") as vm:
            q = Qmp(os.path.join(d, "vm.sock"))
            wait_more_hellos(d, "vm", 0)

            out = os.path.join(d, "stream")
            reply = q.execute("migrate", uri=f"exec:cat > {out}")
            if "error" not in reply:
                info = wait_migration_status(q)
                assert info["status"] == "failed", info
                why = info.get("error-desc", "")
            else:
                why = reply["error"]["desc"]
            assert "Operation not permitted" in why, why
            assert not os.path.exists(out), "the exec: command ran"
            assert q.ok("query-status")["status"] == "running"
            wait_more_hellos(d, "vm", hellos(d, "vm"))

            reply = q.execute("netdev_add", type="tap", id="n0", ifname="dvsbx0",
                              script=script, downscript="no")
            assert reply.get("error", {}).get("desc") == (
                f"could not launch network script {script}: Operation not permitted"), reply
            assert not os.path.exists(marker), "the tap script ran"
            q.ok("netdev_add", type="tap", id="n1", ifname="dvsbx1", script="no",
                 downscript="no")
            links = subprocess.run(["ip", "-n", netns, "-o", "link"], capture_output=True,
                                   text=True, check=True).stdout
            assert "dvsbx1" in links, links
            assert q.ok("query-status")["status"] == "running"
            wait_more_hellos(d, "vm", hellos(d, "vm"))
            quit_cleanly(vm, q)


@pytest.mark.vm
def test_root_keeps_net_admin_and_ipc_lock_only():
    """Run as root without -runas: once set up, every thread (vCPUs and
    device threads included) has CAP_NET_ADMIN and CAP_IPC_LOCK and nothing
    else, in the effective, permitted and bounding sets."""
    if os.geteuid() != 0:
        pytest.skip("the test runs the VMM as root (it is started without capabilities)")
    with tempfile.TemporaryDirectory() as d:
        with Vmm(vm_args(d, "vm")) as vm:
            q = Qmp(os.path.join(d, "vm.sock"))
            wait_more_hellos(d, "vm", 0)
            threads = proc_status(vm.pid)
            assert any(t.startswith("CPU 1/KVM") for t in threads), list(threads)
            for thread, st in threads.items():
                for field in ("CapEff", "CapPrm", "CapBnd"):
                    assert int(st[field], 16) == KEPT, (thread, field, st[field])
                assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0, thread
                assert st["Seccomp"] == "0", thread
            quit_cleanly(vm, q)


@pytest.mark.vm
def test_runas_nobody_runs_with_no_capability():
    """-runas nobody: the VM starts as root, then every thread runs as
    nobody (uid, gid and groups) with no capability; the guest and QMP go
    on and quit ends the process with status 0.  (The rig's L1 has no
    passwd: there it is -runas 65534:65534.)"""
    try:
        nobody = pwd.getpwnam("nobody")
        uid, gid, runas = nobody.pw_uid, nobody.pw_gid, "nobody"
    except KeyError:
        uid, gid, runas = 65534, 65534, "65534:65534"
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)     # the guest's serial file is opened before the change
        with Vmm(vm_args(d, "vm", ["-runas", runas])) as vm:
            q = Qmp(os.path.join(d, "vm.sock"))
            wait_more_hellos(d, "vm", 0)
            deadline = time.time() + 10 * SLOW
            while proc_status(vm.pid)[next(iter(proc_status(vm.pid)))]["Uid"].split()[0] == "0":
                assert time.time() < deadline, "still root 10 s after the guest started"
                time.sleep(0.05)
            for thread, st in proc_status(vm.pid).items():
                assert st["Uid"].split() == [str(uid)] * 4, (thread, st["Uid"])
                assert st["Gid"].split() == [str(gid)] * 4, (thread, st["Gid"])
                assert str(gid) in st["Groups"].split(), (thread, st["Groups"])
                for field in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                    assert int(st[field], 16) == 0, (thread, field, st[field])
            assert q.ok("query-status")["status"] == "running"
            wait_more_hellos(d, "vm", hellos(d, "vm"))
            quit_cleanly(vm, q)


@pytest.mark.vm
def test_runas_root_fails_as_qemu():
    """-runas root cannot drop anything: QEMU's 'Dropping privileges
    failed', status 1."""
    with tempfile.TemporaryDirectory() as d:
        with Vmm(vm_args(d, "vm", ["-runas", "root"])) as vm:
            status = vm.wait(timeout=60 * SLOW)
            assert status == 1
            assert vm.stderr.splitlines() == ["qemu-system-x86_64: Dropping privileges failed"]


@pytest.mark.vm
def test_daemonize_with_spawn_deny():
    """-daemonize forks before the filter goes in (QEMU 7.2's own filter
    kills that fork under spawn=deny): the daemon runs sandboxed."""
    need_seccomp()
    with tempfile.TemporaryDirectory() as d:
        pidfile = os.path.join(d, "pid")
        proc = subprocess.run([VMM, *vm_args(d, "vm", ["-sandbox", LIBVIRT_SANDBOX,
                                                       "-daemonize", "-pidfile", pidfile])],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60 * SLOW)
        assert proc.returncode == 0, proc.stderr
        with open(pidfile) as f:
            pid = int(f.read())
        try:
            q = Qmp(os.path.join(d, "vm.sock"))
            wait_more_hellos(d, "vm", 0)
            assert_sandboxed(pid)
            q.ok("quit")
            deadline = time.time() + 30 * SLOW
            while os.path.exists(f"/proc/{pid}"):
                assert time.time() < deadline, "the daemon did not end after quit"
                time.sleep(0.05)
        finally:
            if os.path.exists(f"/proc/{pid}"):
                os.kill(pid, 9)


@pytest.mark.vm
def test_as_libvirt_runs_it():
    """As libvirt 9.0 starts it: user libvirt-qemu (group kvm), every
    capability cleared (bounding set too), a private /dev holding only
    null, zero, random, urandom and a kvm node given to that user, and
    libvirt's -sandbox.  The guest runs, QMP answers, /proc shows the user,
    no capability and the filter on every thread; quit ends it with 0.
    (The rig's L1 has no passwd: there the ids are Debian's 64055:64055.)"""
    need_seccomp()
    try:
        user, groups = pwd.getpwnam("libvirt-qemu"), "--init-groups"
    except KeyError:
        user = pwd.struct_passwd(("libvirt-qemu", "x", 64055, 64055, "", "/", "/bin/false"))
        groups = "--clear-groups"
    kvm = os.stat("/dev/kvm").st_rdev
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        os.chown(d, user.pw_uid, user.pw_gid)
        setup = (
            "set -e; mount -t tmpfs -o mode=755,size=64k dev /dev; "
            "mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; "
            "mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; "
            f"mknod -m 600 /dev/kvm c {os.major(kvm)} {os.minor(kvm)}; "
            f"chown {user.pw_uid}:{user.pw_gid} /dev/kvm; "
            f"exec setpriv --reuid={user.pw_uid} --regid={user.pw_gid} {groups} "
            "--inh-caps=-all --bounding-set=-all -- \"$@\"")
        # the user must reach the binary and the kernel: a checkout under a
        # private directory (CI's fresh clone in mktemp -d) is not theirs
        # to enter, so both are copied where libvirt would have them readable
        vmm, kernel = os.path.join(d, "qemu-system-x86_64"), os.path.join(d, "testos")
        shutil.copy(VMM, vmm)
        shutil.copy(TESTOS, kernel)
        args = ["--mount", "--propagation", "private", "--", "sh", "-c", setup, "sh",
                vmm, *vm_args(d, "vm", ["-sandbox", LIBVIRT_SANDBOX], kernel=kernel)]
        with Vmm(args, binary="unshare") as vm:
            q = Qmp(os.path.join(d, "vm.sock"))
            wait_more_hellos(d, "vm", 0)
            assert q.ok("query-status")["status"] == "running"
            assert_sandboxed(vm.pid)
            for thread, st in proc_status(vm.pid).items():
                assert st["Uid"].split()[0] == str(user.pw_uid), (thread, st["Uid"])
                for field in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
                    assert int(st[field], 16) == 0, (thread, field, st[field])
            with open(f"/proc/{vm.pid}/root/dev/kvm", "rb"):
                pass    # the VMM's /dev is the private one
            assert sorted(os.listdir(f"/proc/{vm.pid}/root/dev")) == [
                "kvm", "null", "random", "urandom", "zero"]
            quit_cleanly(vm, q)


@pytest.mark.iommu
def test_vfio_hotplug_under_libvirt_sandbox_with_capabilities_dropped(tmp_path):
    """The reason CAP_IPC_LOCK stays: a VM started as root under libvirt's
    -sandbox, with no vfio-pci, drops to CAP_NET_ADMIN + CAP_IPC_LOCK; a
    vfio-pci hot-plugged afterwards (container, group, all guest RAM
    pinned for DMA, MSI-X eventfds) reaches the guest, which sees
    8086:10d3 in its slot, and device_del ejects it again."""
    need_seccomp()
    from harness import SerialClient
    from rignic import bind, driver_of, e1000e_nics, unbind
    nics = e1000e_nics()
    assert nics, "no e1000e behind an IOMMU (the rig's --iommu L1 has two)"
    dev, before = nics[0], driver_of(nics[0])
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    bind(dev, "vfio-pci")
    try:
        sock, port = str(tmp_path / "vm.sock"), free_port()
        args = ["-enable-kvm", "-display", "none", "-nodefaults", "-m", "128M",
                "-serial", f"telnet:127.0.0.1:{port},server,nowait",
                "-qmp", f"unix:{sock},server=on,wait=off", "-sandbox", LIBVIRT_SANDBOX,
                "-kernel", TESTOS, "-append", "testos.run=hotplug"]
        with Vmm(args) as vm:
            serial = SerialClient(port)
            q = Qmp(sock)
            serial.wait_for(r"testos: hotplug waiting .*\n", 90 * SLOW)
            assert_sandboxed(vm.pid)
            for thread, st in proc_status(vm.pid).items():
                assert int(st["CapEff"], 16) == KEPT, (thread, st["CapEff"])
            q.ok("device_add", driver="vfio-pci", host=os.path.basename(dev), id="pnic",
                 addr="6")
            serial.wait_for(r"testos: plugged 6 8086:10d3\n", 30 * SLOW)
            q.ok("device_del", id="pnic")
            q.wait_event("DEVICE_DELETED", timeout=30 * SLOW)
            serial.wait_for(r"testos: ejected 6\n", 30 * SLOW)
            assert q.ok("query-status")["status"] == "running"
            serial.close()
            quit_cleanly(vm, q)
    finally:
        if before:
            bind(dev, before)
        else:
            unbind(dev)


@pytest.mark.parametrize("vhost", [
    pytest.param(False, marks=pytest.mark.vm, id="vhost=off"),
    pytest.param(True, marks=pytest.mark.hwkvm, id="vhost=on")])
def test_virtio_net_on_a_tap_under_libvirt_sandbox(vhost, tap_netns):
    """testos net on a tap (vhost=on: the kernel's vhost-net moves the
    frames) under libvirt's -sandbox, capabilities dropped: the guest
    brings its NIC up and answers ARP from the namespace."""
    need_seccomp()
    with tempfile.TemporaryDirectory() as d:
        args = vm_args(d, "vm", ["-sandbox", LIBVIRT_SANDBOX, "-no-reboot",
                                 "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no,"
                                            f"vhost={'on' if vhost else 'off'}",
                                 "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC}"],
                       append=f"testos.run=net testos.ip={GUEST_IP}")
        with Vmm(["netns", "exec", tap_netns, VMM, *args], binary="ip") as vm:
            q = Qmp(os.path.join(d, "vm.sock"))
            deadline = time.time() + 60 * SLOW
            while f"testos: net up mac={GUEST_MAC}" not in open(os.path.join(d, "vm.log")).read():
                assert time.time() < deadline, "the guest never brought its NIC up"
                time.sleep(0.05)
            assert_sandboxed(vm.pid)
            probe = subprocess.run(["ip", "netns", "exec", tap_netns, PYTHON, NETPROBE, "arp",
                                    TAP, GUEST_IP], capture_output=True, text=True, timeout=60)
            assert probe.returncode == 0 and probe.stdout.startswith("ok"), probe
            quit_cleanly(vm, q)
