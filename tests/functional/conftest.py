"""Where each functional test may run, by marker.

  vm       needs a working /dev/kvm (testos is enough).
  hwkvm    needs a hardware-like KVM (a stock Linux guest, an IOMMU, VFIO,
           vhost): AMD SVM or Intel VMX, not PVM.
  rig_too  runs natively and, in `make check`, inside the rig as well.
  iommu    needs e1000e NICs behind an IOMMU (VFIO): `make check` runs it
           in the rig's --iommu L1, on every host.

scripts/check.py picks which tests run natively and which in the rig.  A
test whose KVM is missing here is not skipped: it fails with the reason, so
a machine that cannot run it never passes quietly."""
import glob
import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402
from harness import kvm_kind  # noqa: E402


def iommu_nics():
    """The e1000e NICs (8086:10d3) that sit in an IOMMU group here."""
    found = []
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        try:
            with open(f"{dev}/vendor") as v, open(f"{dev}/device") as d:
                ids = (v.read().strip(), d.read().strip())
        except OSError:
            continue
        if ids == ("0x8086", "0x10d3") and os.path.exists(f"{dev}/iommu_group"):
            found.append(dev)
    return found


def pytest_configure(config):
    # Every process this pytest starts inherits the variable, daemonized
    # VMMs included: how no_vm_left_behind tells its own VMMs from others'.
    os.environ["DV_PYTEST_PID"] = str(os.getpid())
    config.addinivalue_line("markers", "vm: needs a working /dev/kvm (testos)")
    config.addinivalue_line("markers", "hwkvm: needs a hardware-like KVM (SVM/VMX, not PVM)")
    config.addinivalue_line("markers", "rig_too: also run inside the nested rig by make check")
    config.addinivalue_line("markers", "iommu: needs the rig's --iommu L1 (intel-iommu and "
                            "e1000e NICs for VFIO); make check runs it there")


def pytest_runtest_setup(item):
    kind = kvm_kind()
    if item.get_closest_marker("hwkvm") and kind != "hardware":
        pytest.fail(f"needs a hardware-like /dev/kvm, this one is {kind}: "
                    "run it through `make check`, which runs it in the nested rig "
                    "(tests/rig/rig.sh)", pytrace=False)
    if item.get_closest_marker("iommu") and not iommu_nics():
        pytest.fail("needs e1000e NICs behind an IOMMU, as the nested rig's --iommu L1 has: "
                    "run it through `make check`, which runs it there (tests/rig/rig.sh "
                    "--iommu)", pytrace=False)
    if item.get_closest_marker("vm") and kind == "none":
        pytest.fail("no usable /dev/kvm: run it through `make check`, which runs it "
                    "in the nested rig (tests/rig/rig.sh)", pytrace=False)


def own_vmms():
    """{pid: command line} of the qemu-system processes (this VMM or
    Debian's QEMU) that this pytest started, however far down."""
    mark = f"DV_PYTEST_PID={os.getpid()}".encode()
    found = {}
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if not os.path.basename(argv[0]).startswith(b"qemu-system"):
                continue
            with open(f"{d}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        found[int(os.path.basename(d))] = b" ".join(argv).decode(errors="replace")[:200]
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the last test of a module (its module fixtures torn down
    too), a VMM that any of its tests started and nobody stopped fails it:
    a leaked VM keeps a CPU busy and a port or a NIC taken, and in the
    rig's TCG L1 it slows every later test until their guests seem to
    hang.  Leftovers get 10 s to go, then are killed so that the tests
    after run as they would have."""
    yield
    if nextitem is not None and nextitem.module is item.module:
        return
    deadline = time.monotonic() + 10
    left = own_vmms()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = own_vmms()
    if not left:
        return
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    pytest.fail(f"{len(left)} VMM process(es) left running after the tests of "
                f"{item.module.__name__} (killed): "
                + "; ".join(f"{p}: {c}" for p, c in left.items()), pytrace=False)


def pytest_runtest_logreport(report):
    """With DV_PROGRESS=FILE, one line per test phase as it ends
    (`OUTCOME WHEN NODEID`), flushed at once: when the rig's L1 wedges
    before pytest writes its report, scripts/check.py still knows which
    tests ran and how they ended, and runs only the others again."""
    path = os.environ.get("DV_PROGRESS")
    if not path:
        return
    outcome = report.outcome
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    with open(path, "a") as f:
        f.write(f"{outcome} {report.when} {report.nodeid}\n")
        f.flush()
        os.fsync(f.fileno())
    if report.when == "teardown":
        with open(path + ".state", "a") as f:
            f.write(f"{machine_state()} after {report.nodeid}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item.dv_first_vmm = len(harness.STARTED)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report gets the stderr of each VMM it started
    (harness.Vmm) that said something: the cause of any guest reset (`-d
    cpu_reset`, a triple fault's registers), an error it died of; and how
    each one that ended before the test stopped it ended (an exit status,
    a signal such as SIGSEGV)."""
    outcome = yield
    report = outcome.get_result()
    mine = harness.STARTED[getattr(item, "dv_first_vmm", 0):]
    if call.when == "teardown":
        for vmm in mine:
            vmm.collect(item.nodeid)  # the ended ones: resets into build/diag/resets.log
    if not report.failed:
        return
    triple = False
    for n, vmm in enumerate(mine):
        text = "".join(t for t in (getattr(vmm, "stderr", None), vmm.stderr_tail) if t)
        if vmm.stderr_tail is None:
            vmm.collect(item.nodeid)  # an ended VMM the test did not close: noted too
            text += vmm.stderr_tail or ""
        triple = triple or "triple fault" in text
        ended = vmm.how_it_ended()
        if text.strip() or ended:
            name = next((a for a in vmm.args if a.endswith(".log") or a.endswith(".sock")),
                        vmm.args[0])
            report.sections.append((f"VMM {n} stderr (pid {vmm.pid}, {name}"
                                    f"{'; ' + ended if ended else ''})", text[-6000:]))
        if ended:
            bt = vmm.core_backtrace()  # "" unless it left a core
            if bt:
                report.sections.append((f"VMM {n}'s threads at its death (its core)", bt))
    if triple and harness.kvm_shutdown_trace():
        report.sections.append(("L1's KVM trace", harness.kvm_shutdown_trace()))


def machine_state():
    """Load, free memory, free /tmp and process count, in one line: what
    scripts/check.py shows of the rig's L1 around a failure."""
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        with open("/proc/meminfo") as f:
            avail = next(int(x.split()[1]) for x in f if x.startswith("MemAvailable:"))
        st = os.statvfs("/tmp")
        nproc = len(glob.glob("/proc/[0-9]*"))
    except (OSError, StopIteration, ValueError):
        return "state unreadable"
    return (f"load {load}, {avail // 1024} MiB available, "
            f"/tmp {st.f_bavail * st.f_frsize >> 20} MiB free, {nproc} processes")
