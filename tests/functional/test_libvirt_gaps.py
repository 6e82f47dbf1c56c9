"""Options libvirt 9.0 puts on a domain's command line that need more than
a table row: -add-fd (a file libvirt opened, handed over by descriptor and
opened by name as /dev/fdset/N, as libvirt does for <serial type='file'>).
Every bad value gives one error line, Debian's QEMU 7.2's."""
import os
import subprocess
import tempfile

import pytest

from harness import QEMU, TESTOS, VMM

BAD_ADD_FD = [
    "fd=99,set=1",
    "set=1",
    "fd=3",
    "fd=x,set=1",
    "fd=3,set=x",
    "fd=3,set=1,foo=2",
    "fd=1,set=1",
    "fd=2,set=1",
    "fd=3,set=-1",
    "fd=-1,set=1",
]


def run_bad_add_fd(binary, value):
    args = [binary, "-machine", "none", "-nodefaults", "-display", "none",
            "-add-fd", value]
    if binary == QEMU:
        args += ["-accel", "tcg"]
    # fd 3 is open (read-only /dev/null) in the VMM, as libvirt's would be.
    p = subprocess.run(["sh", "-c", 'exec "$@" 3</dev/null', "sh"] + args,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("value", BAD_ADD_FD)
def test_bad_add_fd_gives_qemus_error(value):
    got = run_bad_add_fd(VMM, value)
    assert got[0] == 1, got
    assert len(got[1].strip().splitlines()) == 1, got
    assert f"-add-fd {value}: " in got[1], got
    if not QEMU:
        pytest.skip("Debian's qemu-system-x86_64 is not installed")
    assert got == run_bad_add_fd(QEMU, value)


def test_unknown_fdset_is_refused():
    p = subprocess.run(
        [VMM, "-nodefaults", "-display", "none", "-chardev",
         "file,id=charserial0,path=/dev/fdset/3,append=on",
         "-device", "isa-serial,chardev=charserial0", "-kernel", TESTOS],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "Could not open '/dev/fdset/3': No such file or directory" in p.stderr


@pytest.mark.vm
def test_serial_file_through_fdset_receives_guest_output():
    """libvirt's <serial type='file'><source path=... append='on'/>: the log
    opened by the manager, passed by descriptor in set 0, COM1 writes into it
    after what was already there."""
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "serial.log")
        with open(log, "w") as f:
            f.write("before\n")
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            args = [VMM, "-enable-kvm", "-m", "64M", "-nodefaults",
                    "-display", "none", "-no-reboot",
                    "-add-fd", f"fd={fd},set=0,opaque=serial0-log",
                    "-chardev", "file,id=charserial0,path=/dev/fdset/0,append=on",
                    "-device", "isa-serial,chardev=charserial0,id=serial0",
                    "-kernel", TESTOS, "-append", "testos.run=hello"]
            p = subprocess.run(args, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=120,
                               pass_fds=(fd,))
        finally:
            os.close(fd)
        with open(log) as f:
            text = f.read()
        assert p.returncode == 0, p.stderr
        assert text.startswith("before\n"), text
        assert "testos: hello" in text, text + p.stderr
        assert "testos: done" in text, text


# -no-acpi, which libvirt passes for a domain without <features><acpi/>:
# no ACPI tables, so the guest finds its CPUs in the MP table, and
# system_powerdown still gives the POWERDOWN event but the guest sees no
# button press, as under QEMU without ACPI.

@pytest.mark.vm
def test_no_acpi_boots_testos_on_two_cpus():
    p = subprocess.run(
        [VMM, "-enable-kvm", "-smp", "2", "-m", "128M", "-nodefaults",
         "-display", "none", "-no-reboot", "-no-acpi", "-serial", "stdio",
         "-kernel", TESTOS, "-append", "testos.run=smp"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "testos: cpu 1 online" in p.stdout, p.stdout + p.stderr
    assert "testos: ready cpus=2 mem=128" in p.stdout, p.stdout


@pytest.mark.vm
def test_no_acpi_power_button_does_nothing():
    from testosguest import TestosGuest

    g = TestosGuest("vmm", "powerdown", ["-no-acpi"])
    try:
        g.serial.wait_for(r"testos: powerdown waiting .*\n", 60)
        assert g.qmp.cmd("system_powerdown") == {"return": {}}
        assert g.events("POWERDOWN") == [("POWERDOWN", None)]
        # The guest polls for the press; give it ample time to see one.
        with pytest.raises(TimeoutError):
            g.serial.wait_for(r"testos: powerdown button", 3)
        status = g.qmp.cmd("query-status")["return"]
        assert status["status"] == "running", status
    finally:
        g.close()
