#!/usr/bin/python3
"""Run every functional test where it can run, and count them all.

`make check` calls this.  The tests carry markers (tests/functional/
conftest.py): `vm` needs a working /dev/kvm, `hwkvm` needs a hardware-like
one (a stock Linux guest, an IOMMU), `rig_too` also runs in the rig.  What
this machine's /dev/kvm is decides the split:

  hardware   everything natively; no rig
  pvm        natively all but hwkvm; in the rig: hwkvm and rig_too
  none       natively what needs no KVM; in the rig: vm and hwkvm

and everywhere, the tests that need no VM once more against the ASan +
UBSan build in build/san (`make sanitize` runs that part alone).

The rig (tests/rig/rig.sh) is Debian's QEMU in TCG running Debian's kernel
with a real (SVM) /dev/kvm: nothing is skipped for lack of KVM.  The last
line printed is "N passed, N failed" over both runs."""
import argparse
import os
import re
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "functional"))

from harness import RIG_WEDGED, kvm_kind  # noqa: E402

RESULTS = os.path.join(ROOT, "build", "test-results")
PYTEST = ["/usr/bin/python3", "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider"]
# The rig's whole share, every attempt included, must finish well inside
# CI's budget.  A test counts as failed once it has failed RIG_ATTEMPTS
# times; an L1 that wedged before a test ended does not count against the
# test, but the rig boots at most RIG_BOOTS L1s in all.
# The default grows with the share: 10 s a test (passes of the whole suite
# in one L1 took 4-5 s a test, and 8 s in an L1 that ran slow for an hour),
# so a machine without /dev/kvm, whose rig share is the whole suite, is not
# cut short where this machine's 93 tests fit in 2400 s.
RIG_TIMEOUT = int(os.environ.get("DV_RIG_TIMEOUT", "2400"))
RIG_SECONDS_PER_TEST = 10
RIG_ATTEMPTS = 3
RIG_BOOTS = 5
RIG_IOMMU_TIMEOUT = int(os.environ.get("DV_RIG_IOMMU_TIMEOUT", "1200"))
# No test may hang: pytest-timeout fails one that runs longer than this
# (nested TCG in the rig is slow, hence the larger bound there).
NATIVE_TEST_TIMEOUT = 300
RIG_TEST_TIMEOUT = 420

# (native, rig) selections by the /dev/kvm here.  Tests marked iommu need
# the rig's --iommu L1 (intel-iommu and two e1000e NICs for VFIO) on every
# host: they run in an L1 of their own (IOMMU_SEL).
PLANS = {
    "hardware": ("not iommu", None),
    "pvm": ("not hwkvm and not iommu", "(hwkvm or rig_too) and not iommu"),
    "none": ("not vm and not hwkvm and not iommu", "(vm or hwkvm) and not iommu"),
}
IOMMU_SEL = "iommu"
# The --iommu L1, plus two more e1000e behind a conventional PCI bridge:
# they share one IOMMU group, which a group-not-viable test needs.
IOMMU_RIG = ["--iommu",
             "--qemu-arg", "-device", "--qemu-arg", "pci-bridge,id=br9,chassis_nr=9,addr=0x7",
             "--qemu-arg", "-device", "--qemu-arg", "e1000e,bus=br9,addr=1",
             "--qemu-arg", "-device", "--qemu-arg", "e1000e,bus=br9,addr=2"]


def count(xml_path):
    """(passed, failed, skipped) from a pytest JUnit XML file."""
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = failed = skipped = 0
    for s in suites:
        tests += int(s.get("tests", 0))
        failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    return tests - failed - skipped, failed, skipped


def rig_argv(inner, timeout, extra=()):
    return ["bash", "tests/rig/rig.sh", "--share", ROOT, "--timeout", str(int(timeout)),
            *extra, "--", inner]


# The first line of an L1 kernel's own failure in its console.log (the
# rig's ttyS0): a die() header (`stack guard page: 0000 [#1]`, `general
# protection fault, ...: 0000 [#1]`, `Oops: 0002 [#1]`, `invalid opcode`,
# `double fault`), a `BUG: ...` (the stack-guard line, a soft lockup, a NULL
# dereference), `kernel BUG at`, `Kernel panic - not syncing`, an RCU
# stall.  Only lines the kernel stamped (`[  301.123456] `, six decimals)
# count: l1-init's own lines there say `rig: [12.34]`, and L2 guests'
# consoles go to their VMMs' chardevs and the tests' output (out.log),
# never to this file.  A WARNING (whose trace also shows `RIP:`) is not
# one: a VMM's misuse of an ioctl can cause it, so it must not excuse a
# failure.
L1_OOPS = re.compile(r"\[\s*\d+\.\d{6}\]\s+(?:\[\s*[CT]\d+\]\s*)?(?:[\w.-]+: )?"
                     r"(BUG: .*|kernel BUG at .*|Kernel panic - not syncing.*"
                     r"|INFO: \S+ (?:self-)?detected stall.*"
                     r"|[A-Za-z][\w ,.()-]*?: [0-9a-f]{4} \[#\d+\].*)")


def l1_oops(console_log):
    """The first line of L1's own kernel failure (L1_OOPS) in console_log,
    as the kernel wrote it, or None (no such line, no such file)."""
    try:
        with open(console_log, errors="replace") as f:
            for line in f:
                m = L1_OOPS.search(line)
                if m:
                    return line[m.start():].strip()[:200]
    except OSError:
        pass
    return None


RUN_DIR = re.compile(r"logs in (\S+/runs/run\.\w+)")


def run_l1(argv):
    """Run rig.sh (argv), its output passed on as it comes; return its exit
    status and its run directory (console.log, out.log), or None where it
    named none."""
    run_dir = None
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            errors="replace")
    for line in proc.stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        m = RUN_DIR.search(line)
        if m and run_dir is None:
            run_dir = m.group(1)
    return proc.wait(), run_dir


def collect(sel, tests):
    """The node ids pytest selects with `-m sel`, collected here (fast)."""
    out = subprocess.run(PYTEST + ["--collect-only", "-m", sel] + tests, cwd=ROOT,
                         capture_output=True, text=True)
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    if out.returncode not in (0, 5):
        print(out.stdout + out.stderr, flush=True)
        raise SystemExit(f"check: collecting the rig's tests failed ({out.returncode})")
    return ids


def read_progress(path):
    """Outcome of each test that ended, from conftest.py's DV_PROGRESS
    lines: failed if any phase failed, else the call's outcome (skipped
    when setup skipped it).  A test with no teardown line never ended."""
    phases = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) == 3:
                    phases.setdefault(parts[2], {})[parts[1]] = parts[0]
    except FileNotFoundError:
        pass
    outcomes = {}
    for nodeid, ph in phases.items():
        if "failed" in ph.values():
            outcomes[nodeid] = "failed"
        elif "teardown" in ph:
            outcomes[nodeid] = ph.get("call", ph.get("setup"))
    return outcomes


COUNTED = {"passed": 0, "xpassed": 0, "failed": 1, "skipped": 2, "xfailed": 2}


def run_rig(rig_sel, tests, label="rig", extra=(), budget=None):
    """The rig's share, in up to RIG_BOOTS fresh L1s.

    TCG's emulation of AMD SVM (the rig's L1) has bugs of its own: an L2
    that stops being scheduled, registers of L1 leaking into an L2 (see
    docs/migration.md), an L1 whose CPUs stall.  Each test's outcome is
    recorded as it ends (DV_PROGRESS), so after a failure or a wedged L1
    only the tests that failed or never ended run again, in a new L1.  A
    test that fails and then passes counts as passed but is named FLAKY,
    so the flakiness stays visible; one that failed RIG_ATTEMPTS times
    counts as failed (a wedged L1 is the rig's failure, not the test's:
    a test it cut short runs again without losing an attempt, within
    RIG_BOOTS L1s; so do the failures of an L1 whose own kernel oopsed,
    panicked or locked up (L1_OOPS in its console.log), named in one line
    with the log and the kernel's first such line, while an L1 without one
    keeps its failures as failures).  All attempts together get budget
    seconds (default RIG_TIMEOUT, or RIG_SECONDS_PER_TEST a test where
    that is more).  extra: more rig.sh options (--iommu); label names the
    part in what it prints."""
    share = collect(rig_sel, tests)
    if not share:
        print(f"check: {label}: no tests selected", flush=True)
        return 0, 0, 0
    progress = os.path.join(RESULTS, f"{label}-progress.txt")
    rel = os.path.relpath(progress, ROOT)
    if not budget:
        budget = RIG_TIMEOUT
        if "DV_RIG_TIMEOUT" not in os.environ:
            budget = max(budget, RIG_SECONDS_PER_TEST * len(share))
    print(f"check: {label}: {len(share)} test(s), {budget} s for every attempt", flush=True)
    deadline = time.time() + budget
    final, fails, in_oops, pending = {}, {}, {}, list(share)
    for attempt in range(1, RIG_BOOTS + 1):
        left = deadline - time.time()
        if left < 120:
            print(f"check: {label}: no time left for attempt {attempt}", flush=True)
            break
        for stale in (progress, progress + ".state"):
            if os.path.exists(stale):
                os.unlink(stale)
        inner = "env " + shlex.join([f"DV_PROGRESS={rel}"] + PYTEST + [
            f"--timeout={RIG_TEST_TIMEOUT}", "--durations=10"] + pending)
        name = label if attempt == 1 else f"{label} attempt {attempt}"
        print(f"check: {name}: {len(pending)} test(s) in a fresh L1", flush=True)
        t0 = time.time()
        rc, run_dir = run_l1(rig_argv(inner, left, extra))
        ended = read_progress(progress)
        console = os.path.join(run_dir, "console.log") if run_dir else None
        oops = l1_oops(console) if console else None
        if oops:
            failed_here = sum(1 for n in pending if ended.get(n) == "failed")
            then = (f"its {failed_here} failed test(s) run again in a fresh L1 without "
                    f"losing an attempt" if failed_here else "no test failed in it")
            print(f"check: {name}: L1's own kernel failed ({os.path.relpath(console, ROOT)}: "
                  f"\"{oops}\"): {then}", flush=True)
        again = []
        for nodeid in pending:
            outcome = ended.get(nodeid)
            if outcome in (None, "failed"):
                final[nodeid] = "failed"
                if outcome is None:
                    print(f"check: {name}: never ended: {nodeid}", flush=True)
                elif oops:
                    in_oops[nodeid] = in_oops.get(nodeid, 0) + 1
                else:
                    fails[nodeid] = fails.get(nodeid, 0) + 1
                if fails.get(nodeid, 0) < RIG_ATTEMPTS:
                    again.append(nodeid)
                continue
            final[nodeid] = outcome
            if fails.get(nodeid):
                print(f"check: FLAKY in the rig (failed, then {outcome}): {nodeid}",
                      flush=True)
            elif in_oops.get(nodeid):
                print(f"check: {name}: {outcome} in a fresh L1 after failing in one whose "
                      f"kernel failed: {nodeid}", flush=True)
        counts = [0, 0, 0]
        for nodeid in pending:
            counts[COUNTED[final[nodeid]]] += 1
        why = {RIG_WEDGED: " (L1 wedged)", 124: " (L1 timed out or stopped responding)",
               125: " (L1 did not boot or stopped)"}.get(rc, "")
        print(f"check: {name}: {counts[0]} passed, {counts[1]} failed, {counts[2]} skipped "
              f"in {time.time() - t0:.0f} s; exit status {rc}{why}", flush=True)
        if again:
            show_state(progress + ".state", [n for n in pending if final[n] == "failed"])
        pending = again
        if not pending:
            break
    totals = [0, 0, 0]
    for nodeid in share:
        totals[COUNTED[final.get(nodeid, "failed")]] += 1
    for nodeid in share:
        if final.get(nodeid, "failed") == "failed":
            also = (f", {in_oops[nodeid]} more in L1s whose kernel failed"
                    if in_oops.get(nodeid) else "")
            print(f"check: {label}: FAILED every time it ran ({fails.get(nodeid, 0)} failures"
                  f"{also}): {nodeid}", flush=True)
    return tuple(totals)


def show_state(path, failed):
    """Print L1's state (conftest.py's machine_state lines) after the first
    failed test and the last two lines, so a log shows whether a failure
    came with a loaded, full or leaking L1."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return
    show = [i for i, line in enumerate(lines) if any(line.endswith(" " + n) for n in failed)][:1]
    show += [i for i in range(len(lines) - 2, len(lines)) if i >= 0]
    for i in sorted(set(show)):
        print(f"check: L1 state, test {i + 1}: {lines[i]}", flush=True)


def run_part(name, argv, xml_path, env=None):
    """Run one pytest invocation; return its counts.  A part that produced
    no report (the rig did not boot, a timeout) counts as one failure."""
    if os.path.exists(xml_path):
        os.unlink(xml_path)
    print(f"check: {name}: {' '.join(argv)}", flush=True)
    t0 = time.time()
    rc = subprocess.call(argv, cwd=ROOT, env=env)
    took = time.time() - t0
    if rc == 5:                      # pytest: no test selected
        print(f"check: {name}: no tests selected ({took:.0f} s)", flush=True)
        return 0, 0, 0, rc
    if not os.path.exists(xml_path):
        print(f"check: {name}: FAILED: exit status {rc} and no test report "
              f"({took:.0f} s)", flush=True)
        return 0, 1, 0, rc
    passed, failed, skipped = count(xml_path)
    if rc != 0 and failed == 0:
        print(f"check: {name}: exit status {rc} with no failed test: counted as one failure",
              flush=True)
        failed = 1
    print(f"check: {name}: {passed} passed, {failed} failed, {skipped} skipped "
          f"in {took:.0f} s", flush=True)
    return passed, failed, skipped, rc


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--native-only", action="store_true", help="skip the rig's share")
    ap.add_argument("--rig-only", action="store_true", help="skip the native share")
    ap.add_argument("--iommu-only", action="store_true",
                    help="only the tests that need the rig's --iommu L1")
    ap.add_argument("--sanitized-only", action="store_true",
                    help="only the tests that need no VM, against the ASan+UBSan build")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()

    kind = kvm_kind()
    native_sel, rig_sel = PLANS[kind]
    print(f"check: /dev/kvm here: {kind}", flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    totals = [0, 0, 0]
    tests = ["tests/functional"] + args.pytest_args

    if not args.rig_only and not args.iommu_only:
        xml = os.path.join(RESULTS, "sanitized.xml")
        argv = PYTEST + [f"--junitxml={xml}", f"--timeout={NATIVE_TEST_TIMEOUT}",
                         "-m", "not vm and not hwkvm and not iommu",
                         "--ignore=tests/functional/test_fuzz_corpus.py",
                         "--ignore=tests/functional/test_tsan.py"]
        env = dict(os.environ, DV_SANITIZED="1")
        for i, n in enumerate(run_part("sanitized", argv + tests, xml, env)[:3]):
            totals[i] += n

    if not args.rig_only and not args.sanitized_only and not args.iommu_only:
        xml = os.path.join(RESULTS, "native.xml")
        argv = PYTEST + [f"--junitxml={xml}", f"--timeout={NATIVE_TEST_TIMEOUT}"]
        if native_sel:
            argv += ["-m", native_sel]
        for i, n in enumerate(run_part("native", argv + tests, xml)[:3]):
            totals[i] += n

    if rig_sel and not args.native_only and not args.sanitized_only and not args.iommu_only:
        for i, n in enumerate(run_rig(rig_sel, tests)):
            totals[i] += n

    if not args.native_only and not args.sanitized_only:
        for i, n in enumerate(run_rig(IOMMU_SEL, tests, label="rig-iommu",
                                      extra=IOMMU_RIG, budget=RIG_IOMMU_TIMEOUT)):
            totals[i] += n

    passed, failed, skipped = totals
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
