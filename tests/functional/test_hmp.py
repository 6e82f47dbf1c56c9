"""HMP, the human monitor, as a user meets it: Debian's telnet client on
-monitor telnet:..., driven keystroke by keystroke with pexpect."""
import os
import tempfile

import pexpect
import pytest

from harness import (TESTOS, QmpClient, SerialClient, Vmm, fd_count, free_port,
                     seed_args, wait_fd_count, wait_for_path)

pytestmark = pytest.mark.vm

PROMPT = "(qemu) "
BANNER = "QEMU 4.2.0 monitor - type 'help' for more information\r\n(qemu) "
UP = "\x1b[A"
LEFT = "\x1b[D"
BACKSPACE = "\x7f"


class HmpVm:
    """The user's guide's VM with its HMP on telnet (and QMP beside it)."""

    def __init__(self, tmpdir):
        self.serial_port = free_port()
        self.monitor_port = free_port()
        self.sock = os.path.join(tmpdir, "qmp0.sock")
        args = seed_args(self.serial_port) + [
            "-qmp", f"unix:{self.sock},server,nowait",
            "-monitor", f"telnet:127.0.0.1:{self.monitor_port},server,nowait",
            "-kernel", TESTOS, "-append", "testos.run=idle"]
        self.vm = Vmm(args)
        self.serial = SerialClient(self.serial_port)
        self.serial.wait_for("testos: idle")
        wait_for_path(self.sock)
        self.idle_fds = fd_count(self.vm.pid)      # no monitor client yet

    def close(self):
        self.serial.close()
        self.vm.__exit__()

    def telnet(self):
        """Debian's telnet on the monitor port, past the banner and prompt."""
        t = pexpect.spawn("telnet", ["127.0.0.1", str(self.monitor_port)],
                          timeout=20, encoding="utf-8", codec_errors="replace")
        t.expect_exact("Escape character is '^]'.")
        t.expect_exact(BANNER)
        return t

    def qmp(self):
        return QmpClient(self.sock)


def run(t, line):
    """Type a command and Enter; return what it printed before the prompt."""
    t.send(line + "\r")
    t.expect_exact(line + "\r\n")            # echoed once: telnet is in
    t.expect_exact(PROMPT)                   # character mode, we echo
    return t.before


@pytest.fixture(scope="module")
def hmp_vm():
    with tempfile.TemporaryDirectory() as d:
        vm = HmpVm(d)
        yield vm
        vm.close()


@pytest.fixture
def telnet(hmp_vm):
    t = hmp_vm.telnet()
    yield t
    t.close()


def test_info_status_stop_and_cont(hmp_vm, telnet):
    assert run(telnet, "info status") == "VM status: running\r\n"
    assert run(telnet, "stop") == ""
    assert run(telnet, "info status") == "VM status: paused\r\n"
    with hmp_vm.qmp() as c:
        assert c.cmd("query-status")["return"]["status"] == "paused"
    assert run(telnet, "c") == ""
    assert run(telnet, "info status") == "VM status: running\r\n"
    assert run(telnet, "s") == ""               # QEMU's short names
    assert run(telnet, "cont") == ""
    with hmp_vm.qmp() as c:
        assert c.cmd("query-status")["return"]["status"] == "running"


def test_info_cpus_lists_the_thread_ids_of_query_cpus(hmp_vm, telnet):
    with hmp_vm.qmp() as c:
        cpus = c.cmd("query-cpus")["return"]
    lines = run(telnet, "info cpus").split("\r\n")
    assert lines[-1] == "" and len(lines) == len(cpus) + 1
    for cpu, line in zip(cpus, lines):
        mark = "*" if cpu["current"] else " "
        assert line.startswith(f"{mark} CPU #{cpu['CPU']}: pc=0x")
        assert line.endswith(f" thread_id={cpu['thread_id']}")


def test_line_editing_backspace_arrows_and_history(telnet):
    # a typo, rubbed out and corrected
    telnet.send("info statuz" + BACKSPACE + "s\r")
    telnet.expect_exact("VM status: running\r\n" + PROMPT)
    # up-arrow brings the last command back; Enter runs it again
    telnet.send(UP)
    telnet.expect_exact("info status")
    telnet.send("\r")
    telnet.expect_exact("VM status: running\r\n" + PROMPT)
    # two steps back in history
    run(telnet, "info kvm")
    telnet.send(UP + UP + "\r")
    telnet.expect_exact("VM status: running\r\n" + PROMPT)
    # insert in the middle of the line after moving left
    telnet.send("info sttus" + LEFT * 3 + "a\r")
    telnet.expect_exact("VM status: running\r\n" + PROMPT)


def test_unknown_command_and_extra_arguments(telnet):
    assert run(telnet, "xyz") == "unknown command: 'xyz'\r\n"
    assert run(telnet, "info xyz") == "unknown command: 'info xyz'\r\n"
    out = run(telnet, "stop now")
    assert "extraneous characters at the end of line" in out
    assert run(telnet, "") == ""


def test_help_lists_the_commands(telnet):
    out = run(telnet, "help")
    for name in ("help|?", "info", "stop|s", "cont|c", "system_reset", "quit|q",
                 "info status", "info cpus", "info kvm", "info version",
                 "info name", "info chardev", "info registers"):
        assert f"\r\n{name} " in "\r\n" + out, name
    assert run(telnet, "help stop") == "stop|s  -- stop emulation\r\n"
    assert "info status  -- show the current VM status" in run(telnet, "help info")
    assert run(telnet, "info version").startswith("4.2.0")
    assert run(telnet, "info kvm") == "kvm support: enabled\r\n"
    assert "RIP=" in run(telnet, "info registers")
    assert "compat_monitor" in run(telnet, "info chardev")


def test_system_reset_from_hmp_reaches_qmp_clients(hmp_vm, telnet):
    with hmp_vm.qmp() as c:
        assert run(telnet, "system_reset") == ""
        ev = c.wait_event("RESET")
        assert ev["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
    assert run(telnet, "info status") == "VM status: running\r\n"


def test_telnet_client_can_leave_and_come_back(hmp_vm):
    idle = hmp_vm.idle_fds
    assert wait_fd_count(hmp_vm.vm.pid, idle) == idle
    for _ in range(5):
        t = hmp_vm.telnet()            # a fresh banner and prompt each time
        assert run(t, "info status") == "VM status: running\r\n"
        t.send("info sta")             # leave with a half-typed line
        t.sendcontrol("]")
        t.expect_exact("telnet> ")
        t.send("quit\r")
        t.expect(pexpect.EOF)
        t.close()
    t = hmp_vm.telnet()
    assert run(t, "info status") == "VM status: running\r\n"   # no leftovers
    t.close()
    assert wait_fd_count(hmp_vm.vm.pid, idle) == idle


def test_q_ends_the_process_with_status_0():
    with tempfile.TemporaryDirectory() as d:
        vm = HmpVm(d)
        with vm.qmp() as c:
            t = vm.telnet()
            t.send("q\r")
            t.expect_exact("q\r\n")
            t.expect(pexpect.EOF)
            t.close()
            assert c.wait_event("SHUTDOWN")["data"] == {"guest": False,
                                                        "reason": "host-qmp-quit"}
        assert vm.vm.wait(20) == 0
        assert not os.path.exists(vm.sock)
        vm.close()
