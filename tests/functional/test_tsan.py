"""ThreadSanitizer over the threaded code: the block layer's concurrent
I/O (raw and qcow2, metadata updates included), virtio's I/O threads
and request workers (virtio-net's thread per queue against VQ_PAIRS_SET,
pause and reset), and KVM's memory slots (BARs moving while the
migration thread reads the dirty log), through their unit tests built
with -fsanitize=thread (build/tsan, `make sanitize-build`), and eight
threads writing at random into one qcow2 image through the block layer's
I/O driver; the image is then checked with Debian's qemu-img.  Any ThreadSanitizer report fails."""
import os
import shutil
import subprocess

import pytest

from harness import BUILD

TSAN = os.path.join(BUILD, "tsan", "tests", "unit")
QEMU_IMG = shutil.which("qemu-img")
ENV = dict(os.environ, TSAN_OPTIONS="halt_on_error=0:exitcode=66")


def run(argv, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=ENV, **kw)
    reports = proc.stderr.count("WARNING: ThreadSanitizer")
    return proc, reports


@pytest.mark.parametrize("name", ["test-block", "test-qcow2", "test-virtio-pci", "test-kvm-slots",
                                  "test-virtio-net"])
def test_unit_cases_have_no_data_race(name):
    binary = os.path.join(TSAN, name)
    assert os.path.exists(binary), f"{binary} missing: `make sanitize-build` builds it"
    proc, reports = run([binary])
    assert reports == 0, f"{name}: {reports} ThreadSanitizer report(s)\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert " 0 failed" in proc.stdout


def test_eight_threads_writing_one_qcow2_image(tmp_path):
    assert QEMU_IMG, "qemu-img (qemu-utils) is the oracle of this test"
    img = str(tmp_path / "disk.qcow2")
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096",
                    img, "64M"], check=True)
    proc, reports = run([os.path.join(TSAN, "test-block"), "--io", "--format=qcow2", img,
                         "bench", "randwrite", "4096", "2", "8", str(64 << 20)])
    assert reports == 0, f"{reports} ThreadSanitizer report(s)\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "errors=0" in proc.stdout, proc.stdout
    check = subprocess.run([QEMU_IMG, "check", img], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No errors were found" in check.stdout, check.stdout
