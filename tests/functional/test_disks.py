"""Disks: the seed's command line booting testos's disk image through
SeaBIOS, and testos's virtio-blk driver on raw and qcow2 images (v2, v3,
a backing file, compressed clusters), checked afterwards with qemu-img."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from harness import BUILD, ROOT, TESTOS, VMM, reply_shape, wait_image_write_locked

# qemu-img is the oracle here: without it these tests fail, never skip.
# A corrupt image is refused before /dev/kvm is opened: those tests carry no
# marker and run on any machine; the others boot testos (marked vm).


@pytest.fixture(autouse=True)
def qemu_img_oracle():
    assert shutil.which("qemu-img"), \
        "qemu-img (Debian's qemu-utils), these tests' oracle, is not installed"

GUEST = os.path.join(BUILD, "tests", "guest")
BLKIMAGE = os.path.join(ROOT, "tests", "guest", "blkimage.py")


def seed_disk_args(image):
    return ["-enable-kvm", "-cpu", "host,host-cache-info=on",
            "-smp", "cpus=2,sockets=1,threads=1,maxcpus=2", "-m", "2G",
            "-drive", f"file={image},if=virtio", "-parallel", "none",
            "-serial", "stdio", "-serial", "none", "-net", "none", "-vga", "none",
            "-nographic", "-nodefaults", "-no-reboot"]


def run(args, timeout=120):
    return subprocess.run([VMM] + args, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def boot_seed_disk(d, name):
    """Boot a copy of testos's disk image with the seed's command line."""
    image = os.path.join(d, name)
    shutil.copy(os.path.join(GUEST, name), image)
    proc = run(seed_disk_args(image))
    assert "SeaBIOS" in proc.stdout
    assert "testos: ready cpus=2 mem=2048" in proc.stdout, proc.stdout + proc.stderr
    assert "testos: hello" in proc.stdout
    assert proc.returncode == 0
    return image


@pytest.mark.vm
def test_seed_command_line_boots_the_qcow2_disk_image():
    with tempfile.TemporaryDirectory() as d:
        image = boot_seed_disk(d, "testos.qcow2")
        check = subprocess.run(["qemu-img", "check", image], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.vm
def test_seed_command_line_boots_the_raw_disk_image():
    with tempfile.TemporaryDirectory() as d:
        image = boot_seed_disk(d, "testos.img")
        # the guest only reads its boot disk
        assert digest(image) == digest(os.path.join(GUEST, "testos.img"))


def make_disk(d, kind):
    """A 64 MiB data disk holding testos's read pattern, in the given form."""
    raw = os.path.join(d, "pattern.raw")
    subprocess.run([sys.executable, BLKIMAGE, "pattern", raw], check=True)
    if kind == "raw":
        return raw, "raw"
    path = os.path.join(d, "disk.qcow2")
    if kind in ("qcow2-v2", "qcow2-v3"):
        compat = "0.10" if kind == "qcow2-v2" else "1.1"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o",
                        f"compat={compat}", raw, path], check=True)
    elif kind == "qcow2-compressed":
        subprocess.run(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw,
                        path], check=True)
    elif kind == "qcow2-backing":
        base = os.path.join(d, "base.qcow2")
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, base],
                       check=True)
        # a relative backing name, resolved against the overlay's directory
        subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F",
                        "qcow2", path], check=True, capture_output=True, cwd=d)
    return path, "qcow2"


def run_blk_scenario(d, kind):
    """testos's blk scenario on a data disk; then the host's view of what
    the guest wrote, read back through qemu-img."""
    image, fmt = make_disk(d, kind)
    proc = run(["-enable-kvm", "-m", "128M", "-display", "none", "-nodefaults",
                "-serial", "stdio", "-no-reboot", "-kernel", TESTOS, "-append",
                "testos.run=blk", "-drive", f"file={image},if=virtio,format={fmt}"])
    assert "testos: blk capacity=131072 read-ok=64 write-ok=64 flush=ok" in \
        proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0
    flat = os.path.join(d, "flat.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", image, flat], check=True)
    verify = subprocess.run([sys.executable, BLKIMAGE, "check", flat],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    return image


@pytest.mark.vm
def test_blk_scenario_reads_writes_and_flushes_raw():
    with tempfile.TemporaryDirectory() as d:
        run_blk_scenario(d, "raw")


@pytest.mark.vm
@pytest.mark.parametrize("kind", ["qcow2-v2", "qcow2-v3", "qcow2-compressed",
                                  "qcow2-backing"])
def test_blk_scenario_reads_writes_and_flushes_qcow2(kind):
    with tempfile.TemporaryDirectory() as d:
        image = run_blk_scenario(d, kind)
        # what the guest wrote left consistent metadata
        check = subprocess.run(["qemu-img", "check", image], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.vm
def test_hostile_guest_gets_errors_and_the_image_is_untouched():
    with tempfile.TemporaryDirectory() as d:
        image, _ = make_disk(d, "raw")
        before = digest(image)
        proc = run(["-enable-kvm", "-m", "128M", "-display", "none", "-nodefaults",
                    "-serial", "stdio", "-no-reboot", "-kernel", TESTOS, "-append",
                    "testos.run=blk-hostile", "-drive", f"file={image},if=virtio,format=raw"])
        assert "testos: blk-hostile survived" in proc.stdout, proc.stdout + proc.stderr
        assert "timeout" not in proc.stdout
        assert proc.returncode == 0
        assert digest(image) == before


@pytest.mark.parametrize("content,words", [
    (b"QFI\xfb" + b"\x00\x00\x00\x09" + b"\x00" * 504, "Unsupported qcow2 version 9"),
    # qemu-img info words it the same: the version read as unsigned
    (b"QFI\xfb" + b"\xff" * 508, "Unsupported qcow2 version 4294967295"),
], ids=["version-9", "all-ones"])
def test_corrupt_image_is_refused_with_one_line(content, words):
    with tempfile.TemporaryDirectory() as d:
        image = os.path.join(d, "bad.qcow2")
        with open(image, "wb") as f:
            f.write(content)
        proc = run(["-enable-kvm", "-nodefaults", "-kernel", TESTOS, "-drive",
                    f"file={image},if=virtio,format=qcow2"], timeout=30)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1
        assert len(lines) == 1 and image in lines[0], lines
        assert words in lines[0]
        theirs = subprocess.run(["qemu-img", "info", image], capture_output=True,
                                text=True)
        assert words in theirs.stderr


@pytest.mark.vm
def test_second_writer_is_refused():
    with tempfile.TemporaryDirectory() as d:
        image, _ = make_disk(d, "qcow2-v3")
        first = subprocess.Popen([VMM, "-enable-kvm", "-m", "64M", "-display", "none",
                                  "-nodefaults", "-kernel", TESTOS, "-append",
                                  "testos.run=idle", "-drive",
                                  f"file={image},if=virtio,format=qcow2"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
        try:
            wait_image_write_locked(image, first)
            proc = run(["-enable-kvm", "-nodefaults", "-kernel", TESTOS, "-drive",
                        f"file={image},if=virtio,format=qcow2"], timeout=30)
            assert proc.returncode == 1
            assert 'Failed to get "write" lock' in proc.stderr
            assert first.poll() is None
        finally:
            first.kill()
            first.wait()


def subset_shape(ours, theirs, path="reply"):
    """Every key we send, QEMU sends too, with the same JSON type."""
    if isinstance(ours, dict):
        assert isinstance(theirs, dict), path
        for k, v in ours.items():
            assert k in theirs, f"{path}.{k} is not in QEMU's reply"
            subset_shape(v, theirs[k], f"{path}.{k}")
    elif isinstance(ours, list):
        assert isinstance(theirs, list), path
        if ours and theirs:
            subset_shape(ours[0], theirs[0], path + "[0]")
    else:
        assert ours == theirs, f"{path}: {ours} vs {theirs}"


@pytest.mark.vm
def test_query_block_and_info_block_look_like_qemus():
    from harness import QEMU, Qmp, Vmm
    assert QEMU, "Debian's qemu-system-x86_64, the reference here, is not installed"
    with tempfile.TemporaryDirectory() as d:
        a, b = os.path.join(d, "a.qcow2"), os.path.join(d, "b.qcow2")
        for p in (a, b):
            shutil.copy(os.path.join(GUEST, "testos.qcow2"), p)
        common = ["-enable-kvm", "-S", "-m", "64M", "-display", "none", "-nodefaults"]
        ours = Vmm(common + ["-qmp", f"unix:{d}/o.sock,server,nowait", "-drive",
                             f"file={a},if=virtio"])
        theirs = Vmm(common + ["-qmp", f"unix:{d}/t.sock,server,nowait", "-drive",
                               f"file={b},if=virtio"], binary=QEMU)
        with ours, theirs:
            qa, qb = Qmp(f"{d}/o.sock"), Qmp(f"{d}/t.sock", timeout=60)
            ra, rb = qa.ok("query-block"), qb.ok("query-block")
            assert len(ra) == len(rb) == 1
            assert ra[0]["device"] == rb[0]["device"] == "virtio0"
            assert ra[0]["inserted"]["drv"] == "qcow2"
            assert ra[0]["inserted"]["image"]["virtual-size"] == \
                rb[0]["inserted"]["image"]["virtual-size"]
            subset_shape(reply_shape(ra[0]), reply_shape(rb[0]))
            text = qa.ok("human-monitor-command", **{"command-line": "info block"})
            assert text.startswith(f"virtio0 (#block") and a in text
            pci = qa.ok("human-monitor-command", **{"command-line": "info pci"})
            assert "1af4:1042" in pci and "8086:1237" in pci
            qa.close()
            qb.close()
