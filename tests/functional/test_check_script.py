"""scripts/check.py's handling of the rig's L1s, with no L1: which console
logs show an L1 kernel's own failure (l1_oops), and run_rig's reruns with
rig.sh replaced by a fake that writes what an L1 would (the tests'
progress lines, console.log).  The failures of an L1 whose kernel oopsed
run again in a fresh L1 without counting; an L1 without an oops keeps its
failures as failures."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("check", os.path.join(ROOT, "scripts", "check.py"))
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)

# A quiet L1 up to its command, as rig.sh's console.log has it (loglevel 4,
# l1-init's lines on /dev/console).
BOOT = """\
rig: [3.89] init started
rig: [5.60] modules loaded; /dev/kvm: crw-rw-rw-    1 root     root       10, 232 Dec  6 23:33 /dev/kvm
rig: holding a VM open
rig: [10.09] running the command
[   10.546173] hrtimer: interrupt took 33013270 ns
"""
END = """\
rig: [611.59] command exited with status 1
[  611.676230] reboot: Power down
"""

STACK_GUARD = """\
[  301.208342] BUG: TASK stack guard page was hit at 000000008b2d6f4c (stack is 00000000cc0fb0f6..00000000f5e3d3a4)
[  301.208355] stack guard page: 0000 [#1] PREEMPT SMP NOPTI
[  301.208361] CPU: 1 PID: 1712 Comm: qemu-system-x86 Not tainted 6.1.0-57-amd64 #1  Debian 6.1.158-1
[  301.208367] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[  301.208370] RIP: 0010:asm_exc_general_protection+0x4/0x30
[  301.208402] Call Trace:
[  301.208404]  <#GP(0)>
"""
GP = """\
[  455.101010] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI
[  455.101020] CPU: 0 PID: 2001 Comm: kworker/0:2 Not tainted 6.1.0-57-amd64 #1  Debian 6.1.158-1
[  455.101030] RIP: 0010:process_one_work+0x1c2/0x3c0
"""
SOFT_LOCKUP = """\
[  700.000001] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [kworker/1:1:87]
[  700.000010] RIP: 0010:finish_task_switch.isra.0+0x9f/0x2e0
"""
RCU_STALL = """\
[  800.123456] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
[  800.123470] rcu: 	1-...!: (1 GPs behind) idle=b64c/1/0x4000000000000000
"""
PANIC = "[  900.000001] Kernel panic - not syncing: Fatal exception in interrupt\n"
# What must not count: a WARNING (a VMM's misuse of an ioctl can cause it)
# with its RIP: line, a user process's #GP or segfault (a crashing VMM),
# a hung task (slow 9p under load), and l1-init's own unstamped lines.
WARNING = """\
[  500.000001] ------------[ cut here ]------------
[  500.000002] WARNING: CPU: 0 PID: 1800 at arch/x86/kvm/x86.c:10910 kvm_arch_vcpu_ioctl_run+0x5a1/0x5f0 [kvm]
[  500.000010] RIP: 0010:kvm_arch_vcpu_ioctl_run+0x5a1/0x5f0 [kvm]
[  500.000020] ---[ end trace 0000000000000000 ]---
[  510.000000] traps: qemu-system-x86[1801] general protection fault ip:55d0c0de sp:7ffd1234 error:0 in qemu-system-x86_64[55d0b000+400000]
[  511.000000] qemu-system-x86[1802]: segfault at 0 ip 000055d0c0de sp 00007ffd1234 error 4
[  726.000000] INFO: task qemu-system-x86:1900 blocked for more than 120 seconds.
rig: [730.00] BUG: a line of l1-init's, not the kernel's
"""
# An L2 guest's own oops, as a test prints it from the guest's serial log
# (pytest's output: out.log, never console.log).
L2_OOPS = """\
tests/functional/test_linux.py F
E   AssertionError: guest log:
[    3.141592] BUG: kernel NULL pointer dereference, address: 0000000000000008
[    3.141600] Oops: 0000 [#1] PREEMPT SMP NOPTI
[    3.141700] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009
"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


@pytest.mark.parametrize("body,first", [
    (STACK_GUARD, "BUG: TASK stack guard page was hit at 000000008b2d6f4c"),
    (GP, "general protection fault, probably for non-canonical address 0xdead000000000100: "
         "0000 [#1] PREEMPT SMP NOPTI"),
    (SOFT_LOCKUP, "watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [kworker/1:1:87]"),
    (RCU_STALL, "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"),
    (PANIC, "Kernel panic - not syncing: Fatal exception in interrupt"),
    (WARNING + GP, "general protection fault, probably for non-canonical address"),
], ids=["stack-guard", "gp", "soft-lockup", "rcu-stall", "panic", "warning-then-gp"])
def test_an_l1_kernel_failure_is_found_and_its_first_line_named(tmp_path, body, first):
    got = check.l1_oops(write(tmp_path / "console.log", BOOT + body + END))
    # the line as the kernel wrote it, its time stamp included
    assert got is not None and got.startswith("[") and got.split("] ", 1)[1].startswith(first), got


@pytest.mark.parametrize("body", ["", WARNING], ids=["clean", "warning-user-gp-hung-task"])
def test_an_l1_without_a_kernel_failure_has_none(tmp_path, body):
    assert check.l1_oops(write(tmp_path / "console.log", BOOT + body + END)) is None


def test_an_l2_guests_oops_in_the_tests_output_is_not_l1s(tmp_path):
    write(tmp_path / "out.log", L2_OOPS)
    assert check.l1_oops(write(tmp_path / "console.log", BOOT + END)) is None
    assert check.l1_oops(str(tmp_path / "missing.log")) is None


def test_run_l1_passes_rig_sh_output_on_and_reads_its_run_directory(capfd):
    # rig.sh's own lines are on stderr: the first "logs in" names the run
    script = ("echo 'rig: booting L1 (max, smp 2, tcg multi, 4G); logs in "
              "/work/x/build/rig/runs/run.kmsq5r' >&2; echo 'test output'; "
              "echo 'rig: L1 ran 15.2 s; the command exit status: 3 "
              "(logs in /work/x/build/rig/runs/run.kmsq5r)' >&2; exit 3")
    assert check.run_l1(["bash", "-c", script]) == (3, "/work/x/build/rig/runs/run.kmsq5r")
    out, err = capfd.readouterr()
    assert out == "test output\n"
    assert err.count("logs in") == 2
    assert check.run_l1(["bash", "-c", "echo 'rig: L1 did not boot' >&2; exit 125"]) == \
        (125, None)


A, B, C = ("tests/functional/test_a.py::test_a", "tests/functional/test_b.py::test_b",
           "tests/functional/test_c.py::test_c")


class FakeRig:
    """rig.sh as run_rig sees it: each call is one L1 in which each test
    ends as `l1s[i][test]` says ("passed", "failed", or absent: never
    ended), with `consoles[i]` as its kernel log."""

    def __init__(self, tmp_path, l1s, consoles):
        self.tmp, self.l1s, self.consoles, self.ran = tmp_path, l1s, consoles, []

    def __call__(self, argv):
        i = len(self.ran)
        inner = argv[-1]
        progress = os.path.join(check.ROOT, inner.split("DV_PROGRESS=")[1].split()[0])
        pending = [a for a in inner.split() if "::" in a]
        self.ran.append(pending)
        with open(progress, "w") as f:
            for nodeid in pending:
                outcome = self.l1s[i].get(nodeid)
                if outcome:
                    f.write(f"{outcome} call {nodeid}\npassed teardown {nodeid}\n")
        run = self.tmp / f"run.{i}"
        run.mkdir()
        write(run / "console.log", BOOT + self.consoles[i] + END)
        return (0 if all(self.l1s[i].get(n) == "passed" for n in pending) else 1), str(run)


def run_rig(monkeypatch, tmp_path, l1s, consoles):
    monkeypatch.setattr(check, "RESULTS", str(tmp_path / "results"))
    os.makedirs(check.RESULTS)
    monkeypatch.setattr(check, "collect", lambda sel, tests: [A, B, C])
    rig = FakeRig(tmp_path, l1s, consoles)
    monkeypatch.setattr(check, "run_l1", rig)
    return check.run_rig("rig_sel", [], label="fake"), rig.ran


def test_failures_in_an_l1_that_oopsed_run_again_and_pass(monkeypatch, tmp_path, capsys):
    totals, ran = run_rig(monkeypatch, tmp_path,
                          [{A: "passed", B: "failed", C: "failed"}, {B: "passed", C: "passed"}],
                          [STACK_GUARD, ""])
    assert totals == (3, 0, 0)
    assert ran == [[A, B, C], [B, C]]
    out = capsys.readouterr().out
    assert "L1's own kernel failed" in out and "run.0/console.log" in out
    assert "BUG: TASK stack guard page was hit" in out
    assert "its 2 failed test(s) run again" in out
    # not FLAKY: the failures were the L1's, and said so
    assert "FLAKY" not in out
    assert f"passed in a fresh L1 after failing in one whose kernel failed: {B}" in out


def test_failures_in_an_l1_that_oopsed_do_not_use_up_attempts(monkeypatch, tmp_path):
    # three failures without an oops would end B; two plus two oopsed L1s do not
    l1s = [{A: "passed", B: "failed", C: "passed"}, {B: "failed"}, {B: "failed"},
           {B: "failed"}, {B: "passed"}]
    totals, ran = run_rig(monkeypatch, tmp_path, l1s, [GP, "", SOFT_LOCKUP, "", ""])
    assert totals == (3, 0, 0)
    assert len(ran) == 5


def test_an_l1_without_an_oops_keeps_its_failures(monkeypatch, tmp_path, capsys):
    l1s = [{A: "passed", B: "failed", C: "passed"}, {B: "failed"}, {B: "failed"}]
    totals, ran = run_rig(monkeypatch, tmp_path, l1s, [WARNING, "", ""])
    assert totals == (2, 1, 0)
    assert ran == [[A, B, C], [B], [B]]
    out = capsys.readouterr().out
    assert "kernel failed" not in out
    assert f"FAILED every time it ran (3 failures): {B}" in out


def test_a_test_that_fails_in_every_l1_counts_as_failed_even_if_each_oopsed(
        monkeypatch, tmp_path, capsys):
    l1s = [{A: "passed", B: "failed", C: "passed"}] + [{B: "failed"}] * 4
    totals, ran = run_rig(monkeypatch, tmp_path, l1s, [PANIC] * 5)
    assert totals == (2, 1, 0)
    assert len(ran) == check.RIG_BOOTS
    out = capsys.readouterr().out
    assert f"(0 failures, 5 more in L1s whose kernel failed): {B}" in out
