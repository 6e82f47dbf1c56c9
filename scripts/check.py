#!/usr/bin/python3
"""Run every functional test where it can run, and count them all.

`make check` calls this.  The tests carry markers (tests/functional/
conftest.py): `vm` needs a working /dev/kvm, `hwkvm` needs a hardware-like
one (a stock Linux guest, an IOMMU), `rig_too` also runs in the rig.  What
this machine's /dev/kvm is decides the split:

  hardware   everything natively; no rig
  pvm        natively all but hwkvm; in the rig: hwkvm and rig_too
  none       natively what needs no KVM; in the rig: vm and hwkvm

The rig (tests/rig/rig.sh) is Debian's QEMU in TCG running Debian's kernel
with a real (SVM) /dev/kvm: nothing is skipped for lack of KVM.  The last
line printed is "N passed, N failed" over both runs."""
import argparse
import os
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
# The rig's whole share must finish well inside CI's budget.
RIG_TIMEOUT = int(os.environ.get("DV_RIG_TIMEOUT", "1500"))
# No test may hang: pytest-timeout fails one that runs longer than this
# (nested TCG in the rig is slow, hence the larger bound there).
NATIVE_TEST_TIMEOUT = 300
RIG_TEST_TIMEOUT = 420

PLANS = {
    "hardware": (None, None),
    "pvm": ("not hwkvm", "hwkvm or rig_too"),
    "none": ("not vm and not hwkvm", "vm or hwkvm"),
}


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


def failed_ids(xml_path):
    """Node ids of the failed or erroring tests in a JUnit XML file."""
    ids = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            path = case.get("classname", "").replace(".", "/") + ".py"
            ids.append(f"{path}::{case.get('name')}")
    return ids


def rig_argv(inner):
    return ["bash", "tests/rig/rig.sh", "--share", ROOT, "--timeout", str(RIG_TIMEOUT),
            "--", inner]


def run_rig(rig_sel, tests):
    """The rig's share, then one retry in a fresh L1 of whatever failed.

    TCG's emulation of AMD SVM (the rig's L1) has bugs of its own: an L2
    that stops being scheduled, registers of L1 leaking into an L2 (see
    docs/migration.md), an L1 whose CPUs stall.  A test that fails in the
    rig is run once more in a new L1; one that passes then is counted as
    passed but named as flaky, so the flakiness stays visible; one that
    fails twice counts as failed."""
    xml = os.path.join(RESULTS, "rig.xml")
    rel = os.path.relpath(xml, ROOT)
    inner = shlex.join(PYTEST + [f"--junitxml={rel}", f"--timeout={RIG_TEST_TIMEOUT}",
                                 "-m", rig_sel] + tests)
    passed, failed, skipped, rc = run_part("rig", rig_argv(inner), xml)
    if not failed:
        return passed, failed, skipped
    # a wedged L1 or no report: the tests that never ran must run too
    whole = rc == RIG_WEDGED or not os.path.exists(xml)
    if rc == RIG_WEDGED:
        print("check: rig: L1 wedged; its tests run again in a fresh L1", flush=True)
    again = [] if whole else failed_ids(xml)
    retry_xml = os.path.join(RESULTS, "rig-retry.xml")
    rel = os.path.relpath(retry_xml, ROOT)
    if again:
        inner = shlex.join(PYTEST + [f"--junitxml={rel}", f"--timeout={RIG_TEST_TIMEOUT}"]
                           + again)
    else:                            # no report at all: the whole share again
        inner = shlex.join(PYTEST + [f"--junitxml={rel}", f"--timeout={RIG_TEST_TIMEOUT}",
                                     "-m", rig_sel] + tests)
        passed, failed, skipped = 0, 0, 0
    print(f"check: rig: retrying {len(again) or 'every'} test(s) in a fresh L1", flush=True)
    r_passed, r_failed, r_skipped, _ = run_part("rig retry", rig_argv(inner), retry_xml)
    if again:
        for nodeid in again:
            if os.path.exists(retry_xml) and nodeid not in failed_ids(retry_xml):
                print(f"check: FLAKY in the rig (failed, then passed): {nodeid}", flush=True)
        return passed + r_passed, r_failed, skipped + r_skipped
    return r_passed, r_failed, r_skipped


def run_part(name, argv, xml_path):
    """Run one pytest invocation; return its counts.  A part that produced
    no report (the rig did not boot, a timeout) counts as one failure."""
    if os.path.exists(xml_path):
        os.unlink(xml_path)
    print(f"check: {name}: {' '.join(argv)}", flush=True)
    t0 = time.time()
    rc = subprocess.call(argv, cwd=ROOT)
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
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()

    kind = kvm_kind()
    native_sel, rig_sel = PLANS[kind]
    print(f"check: /dev/kvm here: {kind}", flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    totals = [0, 0, 0]
    tests = ["tests/functional"] + args.pytest_args

    if not args.rig_only:
        xml = os.path.join(RESULTS, "native.xml")
        argv = PYTEST + [f"--junitxml={xml}", f"--timeout={NATIVE_TEST_TIMEOUT}"]
        if native_sel:
            argv += ["-m", native_sel]
        for i, n in enumerate(run_part("native", argv + tests, xml)[:3]):
            totals[i] += n

    if rig_sel and not args.native_only:
        for i, n in enumerate(run_rig(rig_sel, tests)):
            totals[i] += n

    passed, failed, skipped = totals
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
