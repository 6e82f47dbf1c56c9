#!/usr/bin/env python3
"""dirty-ab.py -- do testos guests reset while KVM logs their dirty pages,
under this VMM and under Debian's QEMU alike?  (issue 10: the rig's silent
L2 resets were triple faults while a #PF was delivered, each in a VMM with
dirty logging on.)  Run inside the rig's L1:

    bash tests/rig/rig.sh --share . --timeout 2400 -- \\
        python3 tests/rig/dirty-ab.py --rounds 4 --seconds 60

Each round boots testos's `dirty` scenario under each VMM in turn (the
first alternating between rounds), twice: "logging", where a migration
to `exec:cat > /dev/null` limited to 64 MiB/s while the guest dirties 200
MiB/s (so no pass converges) copies pass after pass for --seconds, KVM
write-protecting the dirtied pages again at each, and is then cancelled;
and "control", the same time with no migration.  A reset is a `testos:
ready` line after the first (a guest that started again); a broken sum is
a `CORRUPT` line or a seq line out of order.  The last line:

    dirty-ab: vmm logging R resets in S s (P passes), control R in S s
    (B broken); qemu ...

It only counts: how often each VMM's guest reset, with the same guest,
kernel and L1.  Nothing here is a test (it asserts nothing).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARIES = {"vmm": os.path.join(ROOT, "build", "qemu-system-x86_64"),
            "qemu": "/usr/bin/qemu-system-x86_64"}
TESTOS = os.path.join(ROOT, "build", "tests", "guest", "testos")
APPEND = "testos.run=dirty testos.mibps=200 testos.wss_mib=64"
BANDWIDTH = 64 << 20  # bytes/s: less than the guest dirties, so no pass converges

sys.path.insert(0, os.path.join(ROOT, "bench"))
from migration import Qmp  # noqa: E402  (bench/migration.py's QMP client)


def count(log):
    try:
        with open(log, errors="replace") as f:
            text = f.read()
    except OSError:
        return 0, 0, 0
    seqs = [int(x) for x in re.findall(r"testos: seq (\d+)", text)]
    ready = text.count("testos: ready")
    broken = text.count("CORRUPT")
    # a seq that does not follow its predecessor, other than the restart
    # of a guest that started again (seq 0 after a ready line)
    broken += sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1 and b != 0)
    return ready, len(seqs), broken


def one(name, phase, seconds, work):
    log = os.path.join(work, f"{name}-{phase}.log")
    # not in `work`: a unix socket cannot live on the rig's 9p share
    sock = os.path.join(tempfile.gettempdir(), f"dirty-ab-{os.getpid()}-{name}-{phase}.sock")
    for p in (log, sock):
        if os.path.exists(p):
            os.unlink(p)
    err = open(os.path.join(work, f"{name}-{phase}.stderr"), "w")
    passes = 0
    proc = subprocess.Popen([BINARIES[name], "-enable-kvm", "-smp", "2", "-m", "256M",
                             "-display", "none", "-nodefaults", "-d", "cpu_reset",
                             "-serial", f"file:{log}", "-qmp", f"unix:{sock},server,nowait",
                             "-kernel", TESTOS, "-append", APPEND],
                            stdout=subprocess.DEVNULL, stderr=err)
    try:
        q = Qmp(sock)
        deadline = time.time() + 120
        while count(log)[1] < 2 and time.time() < deadline:
            time.sleep(0.2)
        logging_s = 0.0
        if phase == "logging":
            # as fast as it goes, and a downtime it never reaches: pass
            # after pass, each write-protecting the pages dirtied since
            q.cmd("migrate-set-parameters", **{"max-bandwidth": BANDWIDTH,
                                               "downtime-limit": 1})
            q.cmd("migrate", uri="exec:cat > /dev/null")
            t0 = time.time()
            time.sleep(seconds)
            info = q.cmd("query-migrate")
            status = info.get("status")
            passes = info.get("ram", {}).get("dirty-sync-count", 0)
            q.cmd("migrate_cancel")
            deadline = time.time() + 60
            while time.time() < deadline:
                status = q.cmd("query-migrate").get("status")
                if status in ("cancelled", "failed", "completed"):
                    break
                time.sleep(0.2)
            logging_s = time.time() - t0
            if status != "cancelled":
                print(f"dirty-ab: {name} {phase}: migration ended {status}", flush=True)
        else:
            time.sleep(seconds)
        time.sleep(1)
        ready, seqs, broken = count(log)
        q.cmd("quit")
    except (RuntimeError, OSError, ValueError) as e:
        print(f"dirty-ab: {name} {phase}: {e}", flush=True)
        ready, seqs, broken = count(log)
        logging_s = 0.0
    finally:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()
    resets = max(0, ready - 1)
    return {"resets": resets, "seqs": seqs, "broken": broken, "passes": passes,
            "seconds": logging_s if phase == "logging" else seconds}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--keep", default=None, help="folder for the logs (default: a temporary one)")
    args = ap.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("dirty-ab: no /dev/kvm (run it in the rig's L1)", file=sys.stderr)
        return 2
    total = {(n, p): {"resets": 0, "seconds": 0.0, "broken": 0, "passes": 0}
             for n in BINARIES for p in ("logging", "control")}
    work = args.keep or tempfile.mkdtemp(prefix="dirty-ab-")
    os.makedirs(work, exist_ok=True)
    for r in range(args.rounds):
        order = list(BINARIES) if r % 2 == 0 else list(reversed(BINARIES))
        for name in order:
            for phase in ("logging", "control"):
                got = one(name, phase, args.seconds, work)
                for k in ("resets", "seconds", "broken", "passes"):
                    total[(name, phase)][k] += got[k]
                print(f"dirty-ab: round {r + 1} {name} {phase}: {got['resets']} reset(s), "
                      f"{got['seqs']} seq lines, {got['broken']} broken, "
                      f"{got['passes']} dirty-log passes, "
                      f"{got['seconds']:.0f} s", flush=True)
                if got["resets"]:
                    os.rename(os.path.join(work, f"{name}-{phase}.stderr"),
                              os.path.join(work, f"{name}-{phase}-round{r + 1}.stderr"))
    print("dirty-ab: " + "; ".join(
        f"{n} logging {total[(n, 'logging')]['resets']} resets in "
        f"{total[(n, 'logging')]['seconds']:.0f} s ({total[(n, 'logging')]['passes']} passes), "
        f"control "
        f"{total[(n, 'control')]['resets']} in {total[(n, 'control')]['seconds']:.0f} s"
        f" ({total[(n, 'logging')]['broken'] + total[(n, 'control')]['broken']} broken)"
        for n in BINARIES), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
