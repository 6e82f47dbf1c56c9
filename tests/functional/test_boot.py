"""Booting testos under the VMM from the user's guide's command line, with
the usual QEMU spellings, and clear failures for bad input."""
import contextlib
import os
import re
import select
import signal
import subprocess
import tempfile
import time

import pytest

from harness import (QEMU, TESTOS, VMM, Qmp, SerialClient, Vmm, free_port,
                     seed_args, wait_for_path)

# A bad command line is refused before /dev/kvm is opened: those tests carry
# no marker and run on any machine.  The others boot testos: marked vm.


def seed_testos(scenario, vcpu=2, memory="128M", extra=()):
    """(port, args): the seed's command line with COM1 on telnet port,
    booting testos's scenario."""
    port = free_port()
    return port, seed_args(port, vcpu, memory) + [
        "-kernel", TESTOS, "-append", f"testos.run={scenario}", *extra]


def run_seed(scenario, vcpu=2, memory="2G", extra=()):
    """Boot testos with the seed's command line; return (serial text, rc)."""
    port, args = seed_testos(scenario, vcpu, memory, ["-no-reboot", *extra])
    with Vmm(args) as vm:
        client = SerialClient(port)
        text = client.read_until_closed(timeout=120)
        client.close()
        rc = vm.wait(timeout=60)
        return text, rc, vm.stderr


@pytest.mark.vm
def test_seed_command_line_boots_smp_over_telnet():
    text, rc, err = run_seed("smp")
    assert "testos: cpu 0 online" in text
    assert "testos: cpu 1 online" in text
    assert "testos: ready cpus=2 mem=2048" in text
    assert "testos: done" in text
    assert rc == 0, err


@pytest.mark.vm
@pytest.mark.parametrize("vcpu", [1, 2, 4])
def test_smp_counts(vcpu):
    text, rc, err = run_seed("smp", vcpu=vcpu, memory="128M")
    assert f"testos: ready cpus={vcpu} mem=128" in text, text + err
    for i in range(vcpu):
        assert f"testos: cpu {i} online" in text
    assert rc == 0


@pytest.mark.vm
@pytest.mark.parametrize("memory,mib", [("64M", 64), ("4G", 4096)])
def test_memory_sizes(memory, mib):
    text, rc, err = run_seed("hello", vcpu=1, memory=memory)
    assert f"testos: ready cpus=1 mem={mib}" in text, text + err
    assert "testos: hello" in text
    assert rc == 0


@pytest.mark.vm
def test_vcpu_threads_are_named_like_qemu():
    port, args = seed_testos("idle")
    with Vmm(args) as vm:
        client = SerialClient(port)
        client.wait_for("testos: idle")
        names = {}
        for tid in os.listdir(f"/proc/{vm.pid}/task"):
            with open(f"/proc/{vm.pid}/task/{tid}/comm") as f:
                names[f.read().strip()] = int(tid)
        assert "CPU 0/KVM" in names and "CPU 1/KVM" in names
        client.close()


@pytest.mark.vm
def test_reset_reboots_the_guest():
    """Without -no-reboot the i8042 reset starts the guest again."""
    port, args = seed_testos("hello")
    with Vmm(args) as vm:
        client = SerialClient(port)
        client.wait_for(r"(testos: hello[\s\S]*){3}")
        assert vm.proc.poll() is None
        client.close()


@pytest.mark.vm
def test_telnet_client_can_reconnect():
    port, args = seed_testos("hello", 1, "64M")
    with Vmm(args) as vm:
        for _ in range(3):
            client = SerialClient(port)
            client.wait_for("testos: hello")
            client.close()
            time.sleep(0.05)
        assert vm.proc.poll() is None


@pytest.mark.vm
def test_nographic_puts_com1_on_stdio():
    args = ["-enable-kvm", "-nographic", "-m", "64M", "-kernel", TESTOS,
            "-append", "testos.run=hello", "-no-reboot"]
    proc = subprocess.run([VMM] + args, capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    out = proc.stdout.decode(errors="replace")
    assert "testos: hello" in out
    assert proc.returncode == 0


@pytest.mark.vm
def test_serial_file_backend_and_pidfile():
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "serial.log")
        pidfile = os.path.join(d, "vm.pid")
        args = ["-accel", "kvm", "-display", "none", "-nodefaults",
                "-serial", f"file:{log}", "-pidfile", pidfile, "-name", "t1",
                "-machine", "pc,accel=kvm", "-kernel", TESTOS,
                "-append", "testos.run=hello", "-no-reboot"]
        with Vmm(args) as vm:
            # like QEMU, the VMM creates, locks, then writes the file: wait
            # for the whole line, not just the file
            deadline = time.time() + 20
            content = ""
            while not content.endswith("\n") and time.time() < deadline:
                if os.path.exists(pidfile):
                    with open(pidfile) as f:
                        content = f.read()
                time.sleep(0.01)
            assert content.endswith("\n"), f"PID file after 20 s: {content!r}"
            assert int(content) == vm.pid
            assert vm.wait(60) == 0
        with open(log) as f:
            assert "testos: hello" in f.read()
        assert not os.path.exists(pidfile)


@pytest.mark.vm
def test_daemonize_detaches_and_runs():
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "serial.log")
        pidfile = os.path.join(d, "vm.pid")
        args = ["-enable-kvm", "-display", "none", "-nodefaults", "-daemonize",
                "-serial", f"file:{log}", "-pidfile", pidfile, "-kernel", TESTOS,
                "-append", "testos.run=idle"]
        proc = subprocess.run([VMM] + args, capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        with open(pidfile) as f:
            pid = int(f.read())
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                with open(log) as f:
                    if "testos: idle" in f.read():
                        break
                time.sleep(0.05)
            with open(log) as f:
                assert "testos: idle" in f.read()
        finally:
            os.kill(pid, 15)


def one_error_line(args, binary=VMM):
    proc = subprocess.run([binary] + args, capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    lines = proc.stderr.decode().strip().splitlines()
    return proc.returncode, lines


def qemu_error_lines(args):
    """Debian QEMU's exit status and stderr lines for args (TCG, no
    display, no default devices): the reference for error texts."""
    assert QEMU, "Debian's qemu-system-x86_64, the reference here, is not installed"
    return one_error_line(["-machine", "accel=tcg", "-display", "none", "-nodefaults"]
                          + args, binary=QEMU)


def test_unknown_option_exits_1_with_qemu_wording():
    rc, lines = one_error_line(["-foo"])
    assert rc == 1
    assert lines == ["qemu-system-x86_64: -foo: invalid option"]


def test_tcg_is_refused():
    rc, lines = one_error_line(["-accel", "tcg", "-kernel", TESTOS])
    assert rc == 1 and len(lines) == 1
    assert "needs KVM" in lines[0]


def test_bad_smp_is_refused():
    rc, lines = one_error_line(["-smp", "4,sockets=1,cores=2,threads=1"])
    assert rc == 1
    assert lines == ["qemu-system-x86_64: Invalid CPU topology: product of the "
                     "hierarchy must match maxcpus: sockets (1) * dies (1) * "
                     "cores (2) * threads (1) != maxcpus (4)"]


@pytest.mark.parametrize("cut", [100, 700, 2048, -1000])
def test_truncated_kernel_is_refused(cut):
    with open(TESTOS, "rb") as f:
        image = f.read()
    with tempfile.NamedTemporaryFile(suffix=".bz") as bad:
        bad.write(image[:cut])
        bad.flush()
        rc, lines = one_error_line(["-enable-kvm", "-nodefaults", "-kernel",
                                    bad.name])
    assert rc == 1
    assert len(lines) == 1 and bad.name in lines[0], lines


def test_non_bzimage_kernel_is_refused():
    with tempfile.NamedTemporaryFile() as bad:
        bad.write(os.urandom(64 * 1024))
        bad.flush()
        rc, lines = one_error_line(["-enable-kvm", "-nodefaults", "-kernel",
                                    bad.name])
    assert rc == 1
    assert len(lines) == 1 and "not a Linux bzImage" in lines[0]


def test_missing_kernel_and_initrd_are_refused():
    rc, lines = one_error_line(["-enable-kvm", "-kernel", "/nonexistent/k"])
    assert rc == 1 and len(lines) == 1 and "/nonexistent/k" in lines[0]
    rc, lines = one_error_line(["-enable-kvm", "-kernel", TESTOS,
                                "-initrd", "/nonexistent/initrd"])
    assert rc == 1 and len(lines) == 1 and "/nonexistent/initrd" in lines[0]


def test_later_features_are_refused_by_name():
    rc, lines = one_error_line(["-enable-kvm", "-kernel", TESTOS, "-device",
                                "vfio-pci,host=07:10.1,id=pnic"])
    assert rc == 1 and len(lines) == 1 and "vfio-pci" in lines[0]


def test_bad_incoming_uri_is_refused_as_qemu_words_it():
    rc, lines = one_error_line(["-enable-kvm", "-kernel", TESTOS, "-incoming",
                                "ftp:host:1"])
    assert rc == 1
    assert lines == ["qemu-system-x86_64: -incoming ftp:host:1: unknown migration "
                     "protocol: ftp:host:1"]
    assert qemu_error_lines(["-incoming", "ftp:host:1"]) == (1, lines)


def test_monitor_socket_that_cannot_bind_is_refused_before_kvm():
    """Chardevs open before /dev/kvm, as QEMU's do: a socket that cannot
    be bound gives its own error on any machine, KVM or not (QEMU puts the
    option before it; this VMM does not yet)."""
    spec = "unix:/nonexistent/dir/x.sock,server=on,wait=off"
    rc, lines = one_error_line(["-kernel", TESTOS, "-display", "none", "-qmp", spec])
    why = "Failed to bind socket to /nonexistent/dir/x.sock: No such file or directory"
    assert rc == 1
    assert lines == [f"qemu-system-x86_64: {why}"]
    assert qemu_error_lines(["-qmp", spec]) == (1, [f"qemu-system-x86_64: -qmp {spec}: {why}"])


def test_netdev_errors_are_qemus():
    """A bad -netdev tap line is one error line, QEMU's own, and a backend
    this VMM lacks is refused by name."""
    for arg in ["tap,id=n0,vhost=maybe", "tap,ifname=dvx0", "tap,id=n0,fd=99",
                "tap,id=n0,fds=3:4,vhostfds=5", "tap,id=n0,vhostfds=3:4",
                "tap,id=n0,fds=3:4,queues=2", "tap,id=n0,fd=3,fds=4:5"]:
        rc, lines = one_error_line(["-enable-kvm", "-kernel", TESTOS, "-netdev", arg])
        assert (rc, lines) == qemu_error_lines(["-netdev", arg]), arg
        assert rc == 1 and len(lines) == 1, lines
    dup = ["-netdev", "tap,id=n0,ifname=dvx0", "-netdev", "tap,id=n0,ifname=dvx1"]
    assert one_error_line(["-enable-kvm", "-kernel", TESTOS] + dup) == qemu_error_lines(dup)
    rc, lines = one_error_line(["-enable-kvm", "-kernel", TESTOS, "-netdev", "user,id=n0"])
    assert rc == 1
    assert lines == ["qemu-system-x86_64: -netdev user,id=n0: network backend 'user' is "
                     "not supported by this VMM (only 'tap' is)"]


def test_netdev_help_lists_tap():
    p = subprocess.run([VMM, "-netdev", "help"], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0
    assert p.stdout.splitlines() == ["Available netdev backend types:", "tap"]


def test_virtio_net_device_errors_are_qemus():
    """-device virtio-net-pci (and its alias virtio-net): a bad mac=, a bad
    failover=, mq= or vectors= and an unknown property, each one error line
    as QEMU words it."""
    for dev in ["virtio-net-pci,mac=zz", "virtio-net,mac=52:54:00:12:34",
                "virtio-net-pci,failover=maybe", "virtio-net-pci,foo=1",
                "virtio-net-pci,mq=maybe", "virtio-net-pci,vectors=x"]:
        rc, lines = one_error_line(["-enable-kvm", "-kernel", TESTOS, "-device", dev])
        assert (rc, lines) == qemu_error_lines(["-device", dev]), dev


@pytest.mark.vm
def test_virtio_net_netdev_must_exist_and_be_free():
    """netdev= names a -netdev that no other NIC has, as in QEMU."""
    rc, lines = one_error_line(["-enable-kvm", "-kernel", TESTOS, "-display", "none",
                                "-device", "virtio-net-pci,netdev=nope"])
    assert rc == 1
    assert lines == ["qemu-system-x86_64: -device virtio-net-pci,netdev=nope: Property "
                     "'virtio-net-device.netdev' can't find value 'nope'"]


@pytest.mark.vm
def test_initrd_is_loaded():
    """A kernel that fits with an initrd boots."""
    with tempfile.NamedTemporaryFile() as rd:
        rd.write(b"\0" * (1 << 20))
        rd.flush()
        port, args = seed_testos("hello", 1, "64M", ["-initrd", rd.name, "-no-reboot"])
        with Vmm(args) as vm:
            client = SerialClient(port)
            assert "testos: hello" in client.read_until_closed(60)
            assert vm.wait(60) == 0


def test_initrd_too_big_for_ram_is_refused():
    with tempfile.NamedTemporaryFile() as rd:
        rd.truncate(80 << 20)
        rc, lines = one_error_line(["-enable-kvm", "-m", "64M", "-kernel", TESTOS,
                                    "-initrd", rd.name])
        assert rc == 1 and len(lines) == 1 and "does not fit" in lines[0]


@pytest.mark.vm
def test_testos_boots_under_debian_qemu():
    """The same guest boots through SeaBIOS and the real-mode setup entry."""
    assert QEMU, "Debian's qemu-system-x86_64, the reference here, is not installed"
    proc = subprocess.run(
        [QEMU, "-enable-kvm", "-kernel", TESTOS, "-append", "testos.run=smp",
         "-smp", "2", "-m", "128M", "-display", "none", "-nodefaults",
         "-serial", "stdio", "-no-reboot"],
        capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    out = proc.stdout.decode(errors="replace")
    assert "testos: ready cpus=2 mem=128" in out, out
    assert "testos: done" in out
    assert proc.returncode == 0


@pytest.mark.vm
def test_console_opened_after_boot_shows_boot_messages():
    """Output made before any client connects is kept (64 KiB) for the first."""
    port, args = seed_testos("idle", 1, "64M")
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "qmp.sock")
        with Vmm(args + ["-qmp", f"unix:{sock},server,nowait"]) as vm:
            wait_for_path(sock)
            q = Qmp(sock)
            # testos's only vCPU halts for good right after "testos: idle":
            # by then every line is in the backlog, with no client yet
            deadline = time.time() + 30
            while not q.ok("query-cpus")[0]["halted"]:
                assert time.time() < deadline, "testos never went idle (halted)"
                time.sleep(0.01)
            q.close()
            client = SerialClient(port)
            client.wait_for("testos: ready cpus=1 mem=64[\\s\\S]*testos: idle")
            client.close()
            assert vm.proc.poll() is None


@pytest.mark.vm
def test_without_kernel_seabios_runs_and_finds_no_disk():
    """No -kernel: Debian's SeaBIOS boots from the reset vector over fw_cfg."""
    port = free_port()
    args = seed_args(port, 1, "64M")
    with Vmm(args) as vm:
        client = SerialClient(port)
        client.wait_for("SeaBIOS \\(version", timeout=60)
        client.wait_for("No bootable device", timeout=60)
        client.close()
        assert vm.proc.poll() is None


def read_until(proc, marker, timeout=30):
    """Read proc's stdout until marker appears; bounded, never blocks past
    the deadline.  Returns everything read."""
    buf = b""
    deadline = time.time() + timeout
    fd = proc.stdout.fileno()
    while marker not in buf:
        left = deadline - time.time()
        assert left > 0, f"no {marker!r} on stdout after {timeout} s: {buf[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data = os.read(fd, 4096)
            if not data:
                break
            buf += data
    return buf


@contextlib.contextmanager
def nographic_idle():
    """This VMM with -nographic (COM1 and the monitor on stdio) running
    testos idle: its Popen, killed at the end if still running."""
    proc = subprocess.Popen([VMM, "-enable-kvm", "-m", "64M", "-nographic", "-kernel",
                             TESTOS, "-append", "testos.run=idle"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def type_in(proc, data):
    proc.stdin.write(data)
    proc.stdin.flush()


@pytest.mark.vm
def test_ctrl_a_x_on_the_stdio_console_quits():
    with nographic_idle() as proc:
        buf = read_until(proc, b"testos: idle")
        type_in(proc, b"\x01x")
        out, _ = proc.communicate(timeout=30)
        assert b"QEMU: Terminated" in buf + out
        assert proc.returncode == 0


@pytest.mark.vm
def test_ctrl_a_c_switches_the_stdio_console_to_the_monitor():
    """-nographic's default console is mon:stdio: Ctrl-A c reaches HMP."""
    with nographic_idle() as proc:
        assert b"testos: idle" in read_until(proc, b"testos: idle")
        type_in(proc, b"\x01c")
        assert b"(qemu) " in read_until(proc, b"(qemu) ")
        type_in(proc, b"info status\r")
        assert b"VM status: running" in read_until(proc, b"VM status: running")
        type_in(proc, b"\x01cq\r\x01x")     # back to the console: 'q' is the guest's
        proc.communicate(timeout=30)
        assert proc.returncode == 0


@pytest.mark.vm
@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("binary", ["vmm", "qemu"])
def test_termination_signal_shuts_down_with_status_0(binary, signo):
    """SIGINT, SIGTERM and SIGHUP end the VM cleanly, with status 0 and a
    SHUTDOWN event (reason host-signal), under this VMM as under QEMU."""
    if binary == "qemu":
        assert QEMU, "Debian's qemu-system-x86_64 is not installed"
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "qmp.sock")
        args = ["-enable-kvm", "-m", "64M", "-display", "none", "-nodefaults",
                "-qmp", f"unix:{sock},server,nowait", "-kernel", TESTOS,
                "-append", "testos.run=idle"]
        with Vmm(args, binary=VMM if binary == "vmm" else QEMU) as vm:
            q = Qmp(sock, timeout=60)
            assert q.ok("query-status")["status"] == "running"
            vm.proc.send_signal(signo)
            event = q.wait_event("SHUTDOWN")
            assert event["data"] == {"guest": False, "reason": "host-signal"}
            assert vm.wait(30) == 0, vm.stderr
            assert f"terminating on signal {int(signo)}" in vm.stderr
            q.close()
