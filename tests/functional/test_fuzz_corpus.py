"""Replays every fuzz target's seed corpus (tests/fuzz/corpus-NAME: seeds
plus inputs that once crashed the fuzzer) through the target's code built
with ASan and UBSan (build/san/tests/fuzz/replay-NAME, `make fuzz-replay`).
Each seed must give exactly the outcome tests/fuzz/corpus-NAME.expect
holds for it (what opened, with which contents, or which error refused
it), and no sanitizer may fire: a seed that stops opening, opens with
other contents, or is refused with another error fails here."""
import glob
import os
import signal
import subprocess

import pytest

from harness import BUILD, ROOT

FUZZ = os.path.join(ROOT, "tests", "fuzz")
TARGETS = sorted(os.path.basename(p)[len("fuzz-"):-len(".c")]
                 for p in glob.glob(os.path.join(FUZZ, "fuzz-*.c")))
SANITIZER_WORDS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ERROR: UndefinedBehaviorSanitizer")


def seeds(name):
    d = os.path.join(FUZZ, f"corpus-{name}")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def expected(name):
    path = os.path.join(FUZZ, f"corpus-{name}.expect")
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


@pytest.mark.parametrize("name", TARGETS)
def test_every_seed_gives_its_expected_outcome(name):
    replay = os.path.join(BUILD, "san", "tests", "fuzz", f"replay-{name}")
    assert os.path.exists(replay), f"{replay} missing: `make fuzz-replay` builds it"
    files = seeds(name)
    assert files, f"tests/fuzz/corpus-{name} has no seeds"
    want = expected(name)
    assert sorted(w.split(": ", 1)[0] for w in want) == files, (
        f"corpus-{name}.expect and corpus-{name}/ name different seeds")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run([replay] + files, cwd=os.path.join(FUZZ, f"corpus-{name}"),
                          capture_output=True, text=True, timeout=300, env=env)
    why = (f"signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
           else f"exit status {proc.returncode}")
    assert proc.returncode == 0, f"replay-{name}: {why}\n{proc.stderr[-4000:]}"
    fired = [w for w in SANITIZER_WORDS if w in proc.stderr]
    assert not fired, f"replay-{name}: {fired}\n{proc.stderr[-4000:]}"
    got = proc.stdout.splitlines()
    diff = [f"  want {w}\n  got  {g}" for w, g in zip(want, got) if w != g]
    assert len(got) == len(want) and not diff, (
        f"replay-{name}: {len(diff)} seed(s) changed outcome:\n" + "\n".join(diff[:10]))


def test_corpora_are_small_and_present():
    assert TARGETS, "no fuzz targets in tests/fuzz"
    for name in TARGETS:
        assert len(seeds(name)) >= 5, f"corpus-{name}: fewer than 5 seeds"
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(FUZZ, "corpus-*", "*")))
    assert total < 1024 * 1024, f"the corpora hold {total} bytes (keep them under 1 MiB)"
