"""-d stall (system/stall.c): a main loop that sits 200 ms or more in one
dispatch is said on stderr with the system call it sat in, so a monitor
that stops answering names its cause.  The stall here is a real one: QEMU
and this VMM run a tap's ifup script and wait for it on the main loop."""
import os
import re
import subprocess
import tempfile

from harness import VMM, Qmp, end_process, wait_for_path

STALL = re.compile(r"^qemu-system-x86_64: -d stall: the main loop was busy for (\d+) ms "
                   r"without polling; every 20 ms it was in: (.*)$", re.M)


def run_slow_script(log_items):
    """netdev_add with an ifup script that sleeps a second; the VMM's stderr."""
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "ifup.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nsleep 1\n")
        os.chmod(script, 0o755)
        sock = os.path.join(d, "qmp.sock")
        proc = subprocess.Popen([VMM, "-machine", "none", "-nodefaults", "-display", "none",
                                 *log_items, "-qmp", f"unix:{sock},server=on,wait=off"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_for_path(sock)
            with Qmp(sock) as q:
                q.ok("netdev_add", type="tap", id="n1", ifname="dvstall0", script=script,
                     downscript="no")
                q.ok("query-status")  # a dispatch after the stall: its report is out
                q.ok("netdev_del", id="n1")
                q.ok("quit")
            assert proc.wait(30) == 0
        finally:
            end_process(proc)
        return proc.stderr.read()


def test_d_stall_names_the_wait_for_an_ifup_script():
    err = run_slow_script(["-d", "stall"])
    stalls = STALL.findall(err)
    assert len(stalls) == 1, err
    ms, seen = int(stalls[0][0]), stalls[0][1]
    assert ms >= 1000, err
    # wait4 for the script's process, most of the time (the rest is the fork)
    top = re.match(r"(\d+) x wait4\b", seen)
    assert top and int(top.group(1)) * 20 >= 500, err


def test_without_d_stall_nothing_is_said():
    err = run_slow_script([])
    assert "-d stall" not in err, err


def test_d_help_lists_stall():
    out = subprocess.run([VMM, "-d", "help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert re.search(r"^stall\s+say each time the main loop", out.stdout, re.M), out.stdout
