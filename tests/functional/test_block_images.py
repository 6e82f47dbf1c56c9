"""Disk images through the block layer, with Debian's qemu-img as the oracle:
images qemu-img made (qcow2 v2 and v3, backing chains, compressed clusters,
internal snapshots) are written by our block layer (driven by
build/tests/unit/test-block --io), then `qemu-img check` finds no errors and
`qemu-img compare` matches a raw copy written the same way.  Also: SIGKILL in
the middle of writing leaves no corruption, corrupt images give one clear
line, and image locks exclude Debian's QEMU tools and QEMU itself."""
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from harness import TOOLS, wait_image_write_locked

DRIVER = os.path.join(TOOLS, "tests", "unit", "test-block")
QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
QEMU = shutil.which("qemu-system-x86_64", path="/usr/bin")
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def driver_and_oracles():
    """The driver and Debian's QEMU tools (qemu-utils), the oracles here:
    a missing one fails the test, it never skips it."""
    assert os.path.exists(DRIVER), f"{DRIVER} is not built: run make unit"
    assert QEMU_IMG and QEMU_IO, "qemu-img and qemu-io (Debian's qemu-utils) are needed"

# A workload: commands for the driver, applied to the image and a raw copy.
WORKLOAD = [
    "write", "0", "3000000", "1",
    "write", "5000000", "65536", "2",
    "write", "7340031", "123457", "3",
    "zero", "2000000", "300000", "0",
    "zero", "4194304", "1048576", "1",
    "discard", "2097152", "2097152",
    "write", "1048576", "4097", "4",
]


def drive(image, *commands, fmt="qcow2", cache="writeback", check=True):
    args = [DRIVER, "--io", f"--format={fmt}", f"--cache={cache}", "--discard", image]
    proc = subprocess.run(args + [str(c) for c in commands], capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def qemu_img(*args, check=True):
    proc = subprocess.run([QEMU_IMG] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def assert_consistent(image, leaks_ok=False):
    """qemu-img check: no errors (exit 2 means corruption, 3 leaked clusters)."""
    proc = qemu_img("check", image, check=False)
    allowed = (0, 3) if leaks_ok else (0,)
    assert proc.returncode in allowed, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout + proc.stderr


def assert_same(image, raw):
    proc = qemu_img("compare", "-F", "raw", image, raw, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def raw_copy(tmp_path, size, name="ref.raw", *commands):
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.truncate(size)
    if commands:
        drive(path, *commands, fmt="raw")
    return path


@pytest.mark.parametrize("opts", [
    "compat=0.10", "compat=1.1", "compat=1.1,cluster_size=512,refcount_bits=64",
    "compat=1.1,cluster_size=2M", "compat=0.10,cluster_size=4096",
    "compat=1.1,lazy_refcounts=on", "compat=1.1,preallocation=metadata",
])
@pytest.mark.parametrize("cache", ["writeback", "none"])
def test_qemu_img_images_round_trip(tmp_path, opts, cache):
    image = str(tmp_path / "x.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", "-o", opts, image, 16 * MiB)
    drive(image, *WORKLOAD, "flush", "verify", "0", "1000000", "1", cache=cache)
    ref = raw_copy(tmp_path, 16 * MiB, "ref.raw", *WORKLOAD)
    assert_consistent(image)
    assert_same(image, ref)
    drive(image, "verify", "7340031", "123457", "3")


def test_backing_chain_relative_names(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    base, mid, top = str(sub / "base.qcow2"), str(sub / "mid.qcow2"), str(tmp_path / "top.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", base, 16 * MiB)
    drive(base, "write", 0, 16 * MiB, 9)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid)
    drive(mid, "write", 100000, 5000, 10)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "sub/mid.qcow2", "-F", "qcow2", top)
    before = open(base, "rb").read()
    out = drive(top, "info", *WORKLOAD).stdout
    assert "backing=sub/mid.qcow2" in out
    ref = raw_copy(tmp_path, 16 * MiB, "ref.raw", "write", 0, 16 * MiB, 9,
                   "write", 100000, 5000, 10, *WORKLOAD)
    assert_consistent(top)
    assert_same(top, ref)
    assert open(base, "rb").read() == before
    assert qemu_img("check", mid).returncode == 0


def test_backing_loop_is_one_clear_error(tmp_path):
    a, b = str(tmp_path / "a.qcow2"), str(tmp_path / "b.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", a, MiB)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b)
    qemu_img("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", a)
    proc = drive(a, "info", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"test-block: Could not open backing file: Backing chain loop: '{a}' is "
        "already in the chain"]


def compressible(path, size):
    line = b"".join(b"sector %08d of compressible text.. " % i for i in range(size // 36 + 1))
    with open(path, "wb") as f:
        f.write(line[:size])


@pytest.mark.parametrize("compat", ["0.10", "1.1"])
def test_compressed_clusters(tmp_path, compat):
    src, image = str(tmp_path / "src.raw"), str(tmp_path / "c.qcow2")
    compressible(src, 16 * MiB)
    qemu_img("convert", "-c", "-O", "qcow2", "-o", f"compat={compat}", src, image)
    assert "compressed" in qemu_img("check", image).stdout
    want = drive(src, "read", 0, 16 * MiB, fmt="raw").stdout
    assert drive(image, "read", 0, 16 * MiB).stdout == want
    drive(image, *WORKLOAD)
    drive(src, *WORKLOAD, fmt="raw")
    assert_consistent(image)
    assert_same(image, src)


def test_internal_snapshot_stays_intact(tmp_path):
    image = str(tmp_path / "s.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", image, 16 * MiB)
    drive(image, "write", 0, 8 * MiB, 5)
    qemu_img("snapshot", "-c", "before", image)
    drive(image, *WORKLOAD)
    assert_consistent(image)
    assert_same(image, raw_copy(tmp_path, 16 * MiB, "now.raw", "write", 0, 8 * MiB, 5,
                                *WORKLOAD))
    snap = str(tmp_path / "snap.raw")
    qemu_img("convert", "-l", "snapshot.name=before", "-O", "raw", image, snap)
    assert_same(snap, raw_copy(tmp_path, 16 * MiB, "then.raw", "write", 0, 8 * MiB, 5))


@pytest.mark.parametrize("opts,cache", [
    ("compat=1.1", "writeback"), ("compat=0.10", "writethrough"),
    ("compat=1.1,cluster_size=512,refcount_bits=64", "unsafe"),
    ("compat=1.1,cluster_size=4096", "none"),
])
def test_sigkill_mid_write_leaves_no_corruption(tmp_path, opts, cache):
    image = str(tmp_path / "k.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", "-o", opts, image, 64 * MiB)
    rng = random.Random(opts)
    for round_ in range(4):
        block = rng.choice([512, 4096, 70000, 300000])
        proc = subprocess.Popen(
            [DRIVER, "--io", "--format=qcow2", f"--cache={cache}", "--discard", image,
             "writeloop", "0", str(64 * MiB), str(block), str(round_ + 1)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "running", proc.stderr.read()
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert_consistent(image, leaks_ok=True)
    qemu_img("check", "-q", "-r", "leaks", image, check=False)
    assert_consistent(image)


CORRUPTIONS = [
    (0, b"QFI\xfa", "Image is not in qcow2 format"),
    (4, b"\0\0\0\x05", "Unsupported qcow2 version 5"),
    (20, b"\0\0\0\x1e", "Unsupported cluster size: 2^30"),
    (72, b"\0\0\0\0\0\0\x01\0", "Unsupported qcow2 feature(s): Unknown incompatible feature: 100"),
    (40, b"\0\0\x10\0\0\0\0\0", "Active L1 table extends past the end of the file"),
    (48, b"\0\0\0\0\0\x03\0\x08", "Reference count table offset invalid"),
]


@pytest.mark.parametrize("offset,data,message", CORRUPTIONS)
def test_corrupt_image_is_one_clear_line(tmp_path, offset, data, message):
    image = str(tmp_path / "bad.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", image, 16 * MiB)
    with open(image, "r+b") as f:
        f.seek(offset)
        f.write(data)
    before = open(image, "rb").read()
    proc = drive(image, "write", 0, 4096, 1, check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"test-block: {message}"]
    assert open(image, "rb").read() == before


def test_probed_raw_warning_matches_qemu(tmp_path):
    image = str(tmp_path / "x.img")
    with open(image, "wb") as f:
        f.truncate(MiB)
    ours = subprocess.run([DRIVER, "--io", image, "info"], capture_output=True,
                          text=True, cwd=tmp_path).stderr
    theirs = subprocess.run([QEMU_IO, "-c", "read 0 512", image], capture_output=True,
                            text=True, cwd=tmp_path).stderr
    assert "WARNING: Image format was not specified" in ours
    assert ours == theirs


def hold(image, fmt="qcow2"):
    proc = subprocess.Popen([DRIVER, "--io", f"--format={fmt}", image, "hold", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
    return proc


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_second_writer_refused_both_ways_with_qemu_tools(tmp_path, fmt):
    image = str(tmp_path / f"l.{fmt}")
    qemu_img("create", "-q", "-f", fmt, image, 16 * MiB)
    holder = hold(image, fmt)
    try:
        proc = drive(image, "write", 0, 512, 1, fmt=fmt, check=False)
        assert proc.returncode == 1
        assert proc.stderr.strip() == (
            f'test-block: Failed to get "write" lock: Is another process using the '
            f"image [{image}]?")
        io = subprocess.run([QEMU_IO, "-f", fmt, "-c", "write 0 512", image],
                            capture_output=True, text=True)
        assert 'Failed to get "write" lock' in io.stderr
    finally:
        holder.kill()
        holder.wait()
    drive(image, "write", 0, 512, 1, fmt=fmt)


def test_qemu_img_info_refused_while_a_qcow2_is_held(tmp_path):
    """qemu-img info wants the shared lock on a qcow2 (a raw image it reads
    without one, so there is nothing to refuse)."""
    image = str(tmp_path / "l.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", image, 16 * MiB)
    holder = hold(image)
    try:
        info = qemu_img("info", image, check=False)
        assert info.returncode == 1
        assert 'Failed to get shared "write" lock' in info.stderr
    finally:
        holder.kill()
        holder.wait()
    assert "virtual size: 16 MiB" in qemu_img("info", image).stdout


def test_debian_qemu_and_this_vmm_exclude_each_other(tmp_path):
    assert QEMU, "Debian's qemu-system-x86_64, the reference here, is not installed"
    image = str(tmp_path / "q.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", image, 16 * MiB)
    qemu = subprocess.Popen([QEMU, "-S", "-display", "none", "-nodefaults", "-machine",
                             "accel=tcg", "-drive", f"file={image},if=virtio,format=qcow2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_image_write_locked(image, qemu)
        proc = drive(image, "write", 0, 512, 1, check=False)
        assert proc.returncode == 1
        assert 'Failed to get "write" lock' in proc.stderr
        assert f"[{image}]" in proc.stderr
    finally:
        qemu.kill()
        qemu.wait()
    holder = hold(image)
    try:
        qemu = subprocess.run([QEMU, "-S", "-display", "none", "-nodefaults", "-machine",
                               "accel=tcg", "-drive", f"file={image},if=virtio,format=qcow2"],
                              capture_output=True, text=True, timeout=30)
        assert qemu.returncode == 1
        assert 'Failed to get "write" lock' in qemu.stderr
    finally:
        holder.kill()
        holder.wait()
