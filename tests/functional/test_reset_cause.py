"""A guest reset names its cause: the QMP RESET/SHUTDOWN events' `reason`
as QEMU 7.2 spells it (qapi/run-state.json), and on stderr what the guest
did (`-d cpu_reset`: a triple fault, port 0xcf9, port 0x92, the i8042)
with the vCPUs' registers.  A triple fault is said even without `-d`: a
guest that resets with no message (seen in the nested rig) must leave
something to go on.  testos's reset scenarios (tests/guest/README.md) do
one each."""
import os
import re
import tempfile

import pytest

from harness import TESTOS, VMM, Qmp, Vmm, kvm_shutdown_trace, wait_log_count

pytestmark = pytest.mark.vm

CAUSES = {
    "triple-fault": "triple fault (KVM_EXIT_SHUTDOWN)",
    "reset-cf9": "PIIX3 reset control register (port 0xcf9)",
    "reset-92": "fast reset (port 0x92 bit 0)",
    "hello": "i8042 reset line",  # testos resets through the i8042 when done
}


def reset_vm_args(d, scenario, log=True, reboot=False):
    # -accel kvm rather than -enable-kvm: harness.Vmm adds -d cpu_reset to
    # every -enable-kvm command line of this VMM, and these say it themselves
    args = ["-accel", "kvm", "-smp", "2", "-m", "64M", "-display", "none", "-nodefaults",
            "-serial", f"file:{os.path.join(d, 'vm.log')}",
            "-qmp", f"unix:{os.path.join(d, 'vm.sock')},server=on,wait=off", "-S",
            "-kernel", TESTOS, "-append", f"testos.run={scenario}"]
    if log:
        args += ["-d", "cpu_reset"]
    if not reboot:
        args.append("-no-reboot")
    return args


def run_to_reset(scenario, log=True):
    """Runs testos's scenario under -no-reboot: (SHUTDOWN event, stderr)."""
    with tempfile.TemporaryDirectory() as d:
        with Vmm(reset_vm_args(d, scenario, log)) as vm:
            q = Qmp(os.path.join(d, "vm.sock"))
            q.ok("cont")
            event = q.wait_event("SHUTDOWN", timeout=60)
            assert vm.wait(30) == 0, vm.stderr
            with open(os.path.join(d, "vm.log")) as f:
                assert "testos: ready" in f.read()
            return event, vm.stderr


@pytest.mark.parametrize("scenario", sorted(CAUSES))
def test_reset_names_its_cause(scenario):
    event, err = run_to_reset(scenario)
    # QEMU 7.2: a guest's reset under -no-reboot is a SHUTDOWN with the
    # reset's reason
    assert event["data"] == {"guest": True, "reason": "guest-reset"}, event
    line = f"qemu-system-x86_64: guest reset (guest-reset): {CAUSES[scenario]}"
    assert line in err, err
    assert "(-no-reboot: shutting down); " in err, err
    # when: how long the vCPUs had run (a reset on a migration's arrival
    # shows as a fraction of a second after an incoming guest's start)
    assert re.search(r"; \d+\.\d{3} s after the vCPUs last started\n", err), err
    # each vCPU's registers as it stopped, the way QEMU's -d cpu_reset has them
    for cpu in (0, 1):
        assert f"CPU Reset (CPU {cpu})" in err, err
    assert len(re.findall(r"^RIP=[0-9a-f]{16} RFL=[0-9a-f]{8}$", err, re.M)) >= 2, err
    assert re.search(r"^CR0=[0-9a-f]+ CR2=[0-9a-f]{16} CR3=[0-9a-f]{16} CR4=[0-9a-f]+$",
                     err, re.M), err
    assert re.search(r"^EFER=[0-9a-f]{16} ", err, re.M), err


def test_triple_fault_is_said_without_d():
    """The triple fault alone is said always, with the faulting vCPU's
    registers (its IDT empty: what the scenario did); a reset through
    port 0xcf9 stays as quiet as on QEMU."""
    event, err = run_to_reset("triple-fault", log=False)
    assert event["data"] == {"guest": True, "reason": "guest-reset"}, event
    assert "qemu-system-x86_64: vCPU 0: triple fault (KVM_EXIT_SHUTDOWN): the guest resets" \
        in err, err
    assert re.search(r"^RIP=[0-9a-f]{16} ", err, re.M), err
    # on PVM and VMX the state is the faulting one; AMD's SVM loses it
    # (KVM INITs the vCPU) and the report says so instead
    assert (re.search(r" IDT=0{16} 0000 ", err) or
            "these are not the faulting state" in err), err
    assert "guest reset (guest-reset)" not in err, err
    if os.environ.get("DV_RIG") == "1":
        # in the rig, L1's kvm_exit trace (tests/rig/l1-init) has the RIP
        # the SVM report lost: testos's ud2 with its IDT gone
        trace = kvm_shutdown_trace()
        assert re.search(r"kvm_exit: .*reason .*rip 0x[0-9a-f]+", trace), trace

    event, err = run_to_reset("reset-cf9", log=False)
    assert event["data"] == {"guest": True, "reason": "guest-reset"}, event
    assert err.strip() == "", err


def test_reset_event_reason_and_the_guest_runs_again():
    """Without -no-reboot: a RESET event with the reason, the guest boots
    again, and each reset is said."""
    with tempfile.TemporaryDirectory() as d:
        with Vmm(reset_vm_args(d, "reset-cf9", reboot=True)) as vm:
            q = Qmp(os.path.join(d, "vm.sock"))
            q.ok("cont")
            for _ in range(2):
                event = q.wait_event("RESET", timeout=60)
                assert event["data"] == {"guest": True, "reason": "guest-reset"}, event
            wait_log_count(d, "vm", "testos: reset-cf9 now", 2)
            q.ok("quit")
            assert vm.wait(30) == 0
            causes = re.findall(r"^qemu-system-x86_64: guest reset \(guest-reset\): ([^;]*);",
                                vm.stderr, re.M)
            assert len(causes) >= 2, vm.stderr
            assert set(causes) == {CAUSES["reset-cf9"]}, vm.stderr


def test_d_refuses_what_it_does_not_have():
    """QEMU's TCG log items are not this VMM's: refused by name, not ignored."""
    vm = Vmm(["-d", "in_asm", "-machine", "none"], binary=VMM)
    assert vm.wait(30) == 1
    assert "log item 'in_asm' is not one this VMM has (cpu_reset, stall, help)" in vm.stderr
    vm = Vmm(["-d", "help"], binary=VMM)
    assert vm.wait(30) == 0
    assert "cpu_reset" in vm.stdout


def test_harness_turns_the_reset_log_on():
    """Every -enable-kvm run of this VMM in the tests says its resets'
    causes (a flaky reset in the rig then names itself)."""
    with tempfile.TemporaryDirectory() as d:
        args = reset_vm_args(d, "hello", log=False)
        args[args.index("-accel"):args.index("-accel") + 2] = ["-enable-kvm"]
        with Vmm(args) as vm:
            assert vm.args[:3] == [VMM, "-d", "cpu_reset"]
            q = Qmp(os.path.join(d, "vm.sock"))
            q.ok("cont")
            q.wait_event("SHUTDOWN", timeout=60)
            assert vm.wait(30) == 0
            assert f"guest reset (guest-reset): {CAUSES['hello']}" in vm.stderr
