"""Replays the qcow2 fuzz corpus (tests/fuzz/corpus-qcow2: seeds plus inputs
that once crashed the fuzzer) through the normal build of the block layer:
each image is opened, read, written, zeroed, discarded and flushed
(build/tests/unit/test-block --open-corpus).  Failing to open is fine; a
crash, a hang or a sanitizer abort is not."""
import glob
import os
import signal
import subprocess

import pytest

from harness import BUILD, ROOT

DRIVER = os.path.join(BUILD, "tests", "unit", "test-block")
CORPUS = sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", "corpus-qcow2", "*")))


@pytest.mark.skipif(not os.path.exists(DRIVER), reason="build/tests/unit/test-block not built")
@pytest.mark.parametrize("image", CORPUS, ids=[os.path.basename(p) for p in CORPUS])
def test_corpus_file_does_not_crash(image):
    proc = subprocess.run([DRIVER, "--open-corpus", image], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode in (0, 1), (
        f"{os.path.basename(image)}: "
        f"{'signal ' + signal.Signals(-proc.returncode).name if proc.returncode < 0 else proc.returncode}"
        f"\n{proc.stderr}")
    assert "1 files" in proc.stdout


def test_corpus_is_small_and_present():
    assert len(CORPUS) >= 10
    assert sum(os.path.getsize(p) for p in CORPUS) < 200 * 1024
