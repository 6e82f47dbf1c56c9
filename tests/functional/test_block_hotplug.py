"""Hot-added drives (issue 14): HMP drive_add and drive_del, QMP
blockdev-add and blockdev-del in QEMU 7.2's shapes, device_add of a
virtio-blk-pci on either, what query-block and info block show, the image
lock held only while a device uses the image, and what goes when the
device goes (a drive with it, a node not until blockdev-del); side by side
with Debian's QEMU, which must give the same replies and events.  Then a
VM whose disks changed by hot-plug migrates to a destination started
with the same devices, and a destination with other devices refuses the
stream with one clear error while the source runs on."""
import os
import re
import subprocess
import tempfile
import time

import pytest

from harness import (TESTOS, Qmp, Vmm, check_pattern_image, free_port, image_write_locked,
                     pattern_image, serial_log, third_writer_refused, wait_log_count,
                     wait_migration_status)
from testosguest import TestosGuest, guest_maker

BOOT_TIMEOUT = 60  # Debian's QEMU boots testos through SeaBIOS: seconds


class Guest(TestosGuest):
    """testos (a scenario) with no disk of its own: the tests add them."""

    def image(self, name, size=1 << 20):
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    def hmp(self, line):
        return self.qmp.cmd("human-monitor-command", {"command-line": line})

    def block(self):
        """query-block with the node names QEMU picks at random ("#block123")
        made comparable, and the files named by their base name."""
        reply = self.qmp.cmd("query-block")
        for b in reply.get("return", []):
            ins = b.get("inserted")
            if ins:
                ins["node-name"] = re.sub(r"#block\d+", "#block", ins["node-name"])
                ins["file"] = os.path.basename(ins["file"])
                ins["image"]["filename"] = os.path.basename(ins["image"]["filename"])
        return reply

    def info_block(self):
        text = self.hmp("info block")["return"]
        return re.sub(r"#block\d+", "#block", text.replace(self.dir.name + "/", ""))

    def locked(self, name):
        return image_write_locked(os.path.join(self.dir.name, name))


@pytest.fixture
def guests():
    yield from guest_maker(Guest)


def run_both(guests, scenario, body):
    """body(guest) under this VMM and under Debian's QEMU; both results."""
    result = {}
    for which in ("vmm", "qemu"):
        g = guests(which, scenario)
        if scenario == "hotplug":
            g.serial.wait_for(r"testos: hotplug waiting .*\n", BOOT_TIMEOUT)
        result[which] = body(g)
    return result


def drive_add_errors(g):
    """drive_add's errors, each changing nothing."""
    a, b = g.image("a.img"), g.image("b.img")
    lines = [
        f"drive_add 0 file={a},if=none,id=da,format=raw",
        f"drive_add 0 file={a},if=none,id=da,format=raw",      # the id is taken
        f"drive_add file={b},if=none,id=db,format=raw",        # no address
        "drive_add",
        "drive_add 0",
        "drive_add 0 file=/nonexistent.img,if=none,id=dd,format=raw",
        "drive_add 0 if=none,id=de,format=raw",                 # no file
        f"drive_add 0 file={b},id=df,format=raw",              # IDE, pc's default
        f"drive_add 0 file={b},if=virtio,id=dg,format=raw",
        f"drive_add 0 file={b},if=none,id=#x,format=raw",
        f"drive_add 0 file={b},if=none,id=dz,format=raw,cache=bad",
        f"drive_add 0:0:5 file={b},if=none,format=raw",        # id: none1
        f"drive_add xyz file={b},if=none,id=dh,format=raw,readonly=on,cache=none",
        f"drive_add 0 file={a},if=none,id=dy,format=raw snapshot",
        "drive_del",
        "drive_del nosuch",
        "drive_del da dh",
        "drive_del none1",
    ]
    return [g.hmp(line) for line in lines], g.block(), g.info_block()


def test_drive_add_and_drive_del_like_debian_qemu(guests):
    """drive_add answers OK and the drive shows in query-block and info
    block as an unattached (removable) drive; QEMU's errors for a taken id,
    a missing address or file, a bad interface, id or cache mode, a file
    that is not there; the default id of a drive without one (none1);
    drive_del of a drive no device uses; all as Debian's QEMU does."""
    result = run_both(guests, "idle", drive_add_errors)
    ours = result["vmm"]
    replies = [r["return"] for r in ours[0]]
    assert replies[0] == "OK\r\n"
    assert replies[1] == "Duplicate ID 'da' for drive\r\n"
    assert replies[7] == "Can't hot-add drive to type 1\r\n"
    assert [b["device"] for b in ours[1]["return"]] == ["da", "dh"]
    assert ours[1]["return"][1]["inserted"]["ro"] is True
    assert ours[1]["return"][1]["removable"] is True
    assert ours == result["qemu"]


def test_malformed_drive_add_and_blockdev_add_change_nothing(guests):
    """This VMM's own refusals (what it does not offer) are one clear line
    each, and leave query-block as it was."""
    g = guests("vmm", "idle")
    a = g.image("a.img")
    before = g.block()
    bad_hmp = [
        f"drive_add -n 0 file={a},if=none,id=x1,format=raw",
        f"drive_add 0 file={a},if=none,id=x2,format=vmdk",
        f"drive_add 0 file={a},if=none,id=x3,format=raw,bogus=1",
    ]
    for line in bad_hmp:
        reply = g.hmp(line)["return"]
        assert reply.count("\n") == 1 and reply != "OK\r\n", (line, reply)
    bad_qmp = [
        {"driver": "vmdk", "node-name": "n1", "file": {"driver": "file", "filename": a}},
        {"driver": "raw", "node-name": "n1",
         "file": {"driver": "host_device", "filename": a}},
        {"driver": "raw", "node-name": "n1",
         "file": {"driver": "file", "filename": a, "locking": "off"}},
        {"driver": "raw", "node-name": "n1", "force-share": True, "file": {"driver": "file", "filename": a}},
        {"driver": "raw", "node-name": "n1", "detect-zeroes": "on", "file": {"driver": "file", "filename": a}},
        {"driver": "raw", "node-name": "n1", "cache": {"direct": True, "no-flush": True},
         "file": {"driver": "file", "filename": a}},
        {"driver": "qcow2", "node-name": "n1", "backing": "other",
         "file": {"driver": "file", "filename": a}},
        {"driver": "raw", "node-name": "n1", "backing": None,
         "file": {"driver": "file", "filename": a}},
        {"driver": "file", "node-name": "n1", "filename": a, "file": "x"},
    ]
    for args in bad_qmp:
        reply = g.qmp.cmd("blockdev-add", args)
        assert reply["error"]["class"] == "GenericError", (args, reply)
        assert "\n" not in reply["error"]["desc"]
    assert g.block() == before
    assert not g.locked("a.img")


def blockdev_add_errors(g):
    """blockdev-add and blockdev-del: the shapes QEMU 7.2 takes, its errors."""
    a, q2 = g.image("a.img"), os.path.join(g.dir.name, "q.qcow2")
    q3 = os.path.join(g.dir.name, "q3.qcow2")
    for q in (q2, q3):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", q, "1M"], check=True)
    f = lambda name: {"driver": "file", "filename": name}
    cmds = [
        {"driver": "raw", "node-name": "n1", "file": f(a)},
        {"driver": "raw", "node-name": "n1", "file": f(a)},
        {"driver": "qcow2", "node-name": "n2", "file": f(q2)},
        {"driver": "file", "node-name": "f3", "filename": g.image("b.img")},
        {"driver": "raw", "node-name": "n4", "file": "f3"},
        {"driver": "qcow2", "node-name": "n5", "file": f(a)},
        {"driver": "raw", "file": f(a)},
        {"driver": "raw", "node-name": "n7", "file": f("/nonexistent.img")},
        {"driver": "raw", "node-name": "n8"},
        {"node-name": "n8"},
        {"driver": "raw", "node-name": "n9", "file": "nosuch"},
        {"driver": "xyz", "node-name": "n10", "file": f(a)},
        {"driver": "raw", "node-name": "#x", "file": f(a)},
        {"driver": "raw", "node-name": "", "file": f(a)},
        {"driver": "raw", "node-name": "a" * 32, "file": f(a)},
        {"driver": "raw", "node-name": 5, "file": f(a)},
        {"driver": "raw", "node-name": "n11", "read-only": "yes", "file": f(a)},
        {"driver": "raw", "node-name": "n12", "bogus": 1, "file": f(a)},
        {"driver": "raw", "node-name": "n13", "file": {"driver": "file", "filename": a, "x": 2}},
        {"driver": "raw", "node-name": "n14", "file": {"filename": a}},
        {"driver": "raw", "node-name": "n15", "file": {"driver": "file"}},
        {"driver": "raw", "node-name": "n16", "file": 5},
        {"driver": "raw", "node-name": "n17", "read-only": True, "cache": {"direct": True},
         "discard": "unmap", "file": f(a)},
        {"driver": "qcow2", "node-name": "n18", "backing": None, "file": f(q3)},
    ]
    replies = [g.qmp.cmd("blockdev-add", c) for c in cmds]
    replies.append(g.hmp(f"drive_add 0 file={a},if=none,id=n1,format=raw"))
    replies.append(g.hmp(f"drive_add 0 file={a},if=none,id=dx,format=raw"))
    replies.append(g.qmp.cmd("blockdev-add", {"driver": "raw", "node-name": "dx",
                                              "file": f(a)}))
    dels = [{"node-name": "f3"}, {"node-name": "nosuch"}, {"node-name": "n4"},
            {"node-name": "f3"}, {"node-name": "f3"}, {}, {"node-name": "n2", "x": 1}]
    replies += [g.qmp.cmd("blockdev-del", d) for d in dels]
    # a node no device uses is in no query-block; a raw one locks nothing
    # yet, a writable qcow2 one locks its image at once (its metadata)
    locks = [g.locked(name) for name in ("a.img", "q.qcow2", "q3.qcow2")]
    return replies, g.block(), locks, g.hmp("drive_del n18"), g.locked("q3.qcow2")


def test_blockdev_add_and_blockdev_del_like_debian_qemu(guests):
    """blockdev-add of raw and qcow2 nodes over an inline file child or a
    driver=file node by name, and of a file node; QEMU's errors for a
    taken or malformed node-name, a missing driver or file, an unknown
    driver or member, wrong types, a file that is not there or not qcow2;
    blockdev-del of a node another node uses, of an unknown one; nodes no
    device uses are not in query-block and hold no lock."""
    result = run_both(guests, "idle", blockdev_add_errors)
    ours = result["vmm"]
    assert ours[0][0] == {"return": {}}
    assert ours[0][1] == {"error": {"class": "GenericError",
                                    "desc": "Duplicate nodes with node-name='n1'"}}
    assert ours[0][-7] == {"error": {"class": "GenericError",
                                     "desc": "Block device f3 is in use"}}
    assert [b["device"] for b in ours[1]["return"]] == ["dx"]
    assert ours[2] == [False, True, True] and ours[4] is False
    assert ours == result["qemu"]


def hot_disks(g):
    """drive_add + device_add, then device_del: the drive goes with its
    device; blockdev-add + device_add, then device_del: the node stays
    until blockdev-del; a device without id removed by its QOM path."""
    out = []
    a, b, c = g.image("a.img"), g.image("b.img"), g.image("c.img")
    add = lambda **kw: g.qmp.cmd("device_add", kw)
    out.append(g.hmp(f"drive_add 0 file={a},if=none,id=d1,format=raw"))
    out.append(g.locked("a.img"))                       # not until a device uses it
    out.append(add(driver="virtio-blk-pci", drive="d1", id="blk1", addr="6"))
    out.append(g.serial.wait_for(r"testos: plugged 6 (\w+):", 20).group(1))
    out.append(g.locked("a.img"))
    out.append(g.qmp.cmd("blockdev-add", {"driver": "raw", "node-name": "n1",
                                          "file": {"driver": "file", "filename": b}}))
    out.append(add(driver="virtio-blk-pci", drive="n1", id="blk2", addr="7"))
    out.append(g.serial.wait_for(r"testos: plugged 7 (\w+):", 20).group(1))
    out.append(add(driver="virtio-blk-pci", drive="d1", id="blk3", addr="8"))
    out.append(g.hmp(f"drive_add 0 file={c},if=none,id=d3,format=raw"))
    out.append(add(driver="virtio-blk-pci", drive="d3", addr="9"))  # no id
    out.append(g.serial.wait_for(r"testos: plugged 9 (\w+):", 20).group(1))
    out += [g.block(), g.info_block(), g.locked("b.img"), g.locked("c.img")]
    out.append(g.qmp.cmd("blockdev-del", {"node-name": "n1"}))
    out.append(g.hmp("drive_del n1"))
    out.append(g.qmp.cmd("device_del", {"id": "blk1"}))
    out.append(g.events("DEVICE_DELETED", "DEVICE_DELETED"))
    g.serial.wait_for(r"testos: ejected 6\n", 20)
    out.append(g.qmp.cmd("device_del", {"id": "blk2"}))
    out.append(g.events("DEVICE_DELETED", "DEVICE_DELETED"))
    g.serial.wait_for(r"testos: ejected 7\n", 20)
    out.append(g.qmp.cmd("device_del", {"id": "/machine/peripheral-anon/device[0]"}))
    out.append(g.events("DEVICE_DELETED", "DEVICE_DELETED"))
    g.serial.wait_for(r"testos: ejected 9\n", 20)
    # d1 and d3 went with their devices; n1 stays, unused and unlocked
    out += [g.block(), g.locked("a.img"), g.locked("b.img"), g.locked("c.img")]
    out.append(g.hmp(f"drive_add 0 file={a},if=none,id=d1,format=raw"))
    out.append(g.qmp.cmd("device_add", {"driver": "virtio-blk-pci", "drive": "n1",
                                        "id": "blk4", "addr": "6"}))
    out.append(g.serial.wait_for(r"(?s)ejected 9.*plugged 6 (\w+):", 20).group(1))
    out.append(g.qmp.cmd("device_del", {"id": "blk4"}))
    out.append(g.events("DEVICE_DELETED", "DEVICE_DELETED"))
    g.serial.wait_for(r"(?s)ejected 9.*ejected 6\n", 20)
    out.append(g.qmp.cmd("blockdev-del", {"node-name": "n1"}))
    out.append(g.qmp.cmd("blockdev-del", {"node-name": "n1"}))
    out += [g.block(), g.locked("b.img")]
    assert g.qmp.cmd("query-status")["return"]["status"] == "running"
    return out


def test_hot_added_disks_plug_and_go_like_debian_qemu(guests):
    """testos (hotplug) sees each disk arrive; query-block names each by
    its drive id or, for a node, "" with the device's backend (qdev);
    blockdev-del and drive_del of a node in use are refused; DEVICE_DELETED
    for a device without id carries only its path; the image lock is
    held exactly while a device uses the image; after device_del the
    drive is gone (its id free again) and the node stays until
    blockdev-del."""
    result = run_both(guests, "hotplug", hot_disks)
    ours = result["vmm"]
    assert ours[1] is False and ours[4] is True
    anon = "/machine/peripheral-anon/device[0]"
    assert ours[23] == [("DEVICE_DELETED", {"path": anon + "/virtio-backend"}),
                        ("DEVICE_DELETED", {"path": anon})]
    blocks = {b["device"] or b["qdev"]: b for b in ours[12]["return"]}
    assert blocks["/machine/peripheral/blk2/virtio-backend"]["inserted"]["node-name"] == "n1"
    assert ours[24]["return"] == [] and ours[25:28] == [False, False, False]
    assert ours == result["qemu"]


# ---- migration of a VM whose devices changed by hot-plug ----

def vm_args(d, name, extra=(), mem="128M"):
    return ["-enable-kvm", "-m", mem, "-display", "none", "-nodefaults",
            "-serial", f"file:{os.path.join(d, name + '.log')}",
            "-qmp", f"unix:{os.path.join(d, name + '.sock')},server,nowait",
            "-kernel", TESTOS, "-append", "testos.run=blk", *extra]


DONE = "write-ok=64 flush=ok"


def hotplugged_source(d, img):
    """A source running testos blk (which finds no disk and restarts until
    one comes) that gets its disk by drive_add + device_add in slot 6."""
    src = Vmm(vm_args(d, "src"))
    q = Qmp(os.path.join(d, "src.sock"))
    q.ok("human-monitor-command",
         **{"command-line": f"drive_add 0 file={img},if=none,id=d1,format=raw"})
    q.ok("device_add", driver="virtio-blk-pci", drive="d1", id="blk1", addr="6")
    wait_log_count(d, "src", DONE, 2)
    return src, q


def since_the_disk(d, name):
    """name's log from testos's first pass that found the disk: the passes
    before the device_add came (seen in the rig, where testos boots before
    QMP is there) say `blk FAIL no virtio-blk device`, as they should."""
    text = serial_log(d, name)
    first = text.find(DONE)
    if first < 0:
        return text
    return text[max(0, text.rfind("testos: ready", 0, first)):]


@pytest.mark.vm
def test_a_vm_with_a_hotplugged_disk_migrates_and_its_disk_keeps_working():
    """The destination, started with the hot-plugged disk on its command
    line (-drive if=none + -device in the same slot), takes the VM over:
    testos goes on reading, writing and verifying the disk there, the
    destination holds the image lock, and the disk's data verifies after."""
    with tempfile.TemporaryDirectory() as d:
        img = pattern_image(d)
        src, q = hotplugged_source(d, img)
        with src:
            dst = Vmm(vm_args(d, "dst", ["-drive", f"file={img},if=none,id=d1,format=raw",
                                         "-device", "virtio-blk-pci,drive=d1,id=blk1,addr=6",
                                         "-incoming", f"unix:{d}/m.sock"]))
            with dst:
                q_dst = Qmp(os.path.join(d, "dst.sock"))
                q.ok("migrate", uri=f"unix:{d}/m.sock")
                assert wait_migration_status(q)["status"] == "completed"
                wait_log_count(d, "dst", DONE, serial_log(d, "dst").count(DONE) + 2)
                assert "FAIL" not in since_the_disk(d, "src") + serial_log(d, "dst")
                blocks = q_dst.ok("query-block")
                assert [(b["device"], b["qdev"]) for b in blocks] == [
                    ("d1", "/machine/peripheral/blk1/virtio-backend")]
                slots = [(x["slot"], x["qdev_id"])
                         for x in q_dst.ok("query-pci")[0]["devices"] if x["qdev_id"]]
                assert slots == [(6, "blk1")]
                # the destination has the image: a third writer is refused
                third_writer_refused(vm_args(d, "third",
                                             ["-drive", f"file={img},if=virtio,format=raw"]))
                q_dst.ok("quit")
                dst.wait(30)
            q.close()
        check_pattern_image(img)


@pytest.mark.vm
@pytest.mark.parametrize("dst_devices,error", [
    ([], "load of migration failed: migration stream: unknown device 'virtio-blk@00:06.0'"),
    (["-drive", "file={img},if=none,id=d1,format=raw",
      "-device", "virtio-blk-pci,drive=d1,id=blk1,addr=6",
      "-drive", "file={other},if=none,id=d2,format=raw",
      "-device", "virtio-blk-pci,drive=d2,id=blk2,addr=7"],
     "load of migration failed: migration stream: device 'virtio-blk@00:07.0' is missing"),
], ids=["destination-lacks-the-disk", "destination-has-another-disk"])
def test_a_destination_with_other_devices_refuses_and_the_source_runs_on(dst_devices, error):
    """A destination without the hot-plugged disk, or with one more, ends
    with one clear error naming the device; the source's migration fails,
    its guest goes on using its disk, and it holds the image lock again."""
    with tempfile.TemporaryDirectory() as d:
        img = pattern_image(d)
        other = os.path.join(d, "other.img")
        with open(other, "wb") as f:
            f.truncate(1 << 20)
        src, q = hotplugged_source(d, img)
        with src:
            args = [a.format(img=img, other=other) for a in dst_devices]
            dst = Vmm(vm_args(d, "dst", args + ["-incoming", f"unix:{d}/m.sock"]))
            Qmp(os.path.join(d, "dst.sock")).close()
            q.ok("migrate", uri=f"unix:{d}/m.sock")
            info = wait_migration_status(q)
            assert info["status"] == "failed", info
            assert dst.wait(30) == 1
            lines = [line for line in dst.stderr.splitlines() if line.strip()]
            assert lines == [f"qemu-system-x86_64: {error}"], dst.stderr
            assert q.ok("query-status")["status"] == "running"
            wait_log_count(d, "src", DONE, serial_log(d, "src").count(DONE) + 2)
            assert image_write_locked(img)
            assert "FAIL" not in since_the_disk(d, "src")
            q.close()


@pytest.mark.vm
def test_device_add_and_device_del_wait_for_a_running_migration():
    """While a migration runs, device_add and device_del (QMP and HMP) get
    QEMU's refusal and change nothing; once it is cancelled they work."""
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "a.img")
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        port = free_port()
        drive = ["-drive", f"file={img},if=none,id=d1,format=raw"]
        with Vmm(vm_args(d, "src", drive, mem="512M")):
            q = Qmp(os.path.join(d, "src.sock"))
            q.ok("migrate-set-parameters", **{"max-bandwidth": 256 * 1024})
            with Vmm(vm_args(d, "dst", ["-incoming", f"tcp:127.0.0.1:{port}"], mem="512M")):
                Qmp(os.path.join(d, "dst.sock")).close()
                q.ok("migrate", uri=f"tcp:127.0.0.1:{port}")
                deadline = time.time() + 30
                while q.ok("query-migrate")["status"] != "active":
                    assert time.time() < deadline, q.ok("query-migrate")
                    time.sleep(0.05)
                add = {"driver": "virtio-blk-pci", "drive": "d1", "id": "blk1"}
                hmp = lambda line: q.ok("human-monitor-command", **{"command-line": line})
                assert q.execute("device_add", **add)["error"] == {
                    "class": "GenericError", "desc": "device_add not allowed while migrating"}
                assert q.execute("device_del", id="blk1")["error"]["desc"] == (
                    "device_del not allowed while migrating")
                assert hmp("device_add virtio-blk-pci,drive=d1,id=blk1") == (
                    "Error: device_add not allowed while migrating\r\n")
                assert hmp("device_del blk1") == "Error: device_del not allowed while migrating\r\n"
                assert not [x for x in q.ok("query-pci")[0]["devices"] if x["qdev_id"]]
                q.ok("migrate_cancel")
                while q.ok("query-migrate")["status"] != "cancelled":
                    assert time.time() < deadline + 30, q.ok("query-migrate")
                    time.sleep(0.05)
            assert q.execute("device_add", **add) == {"return": {}}
            assert [x["qdev_id"] for x in q.ok("query-pci")[0]["devices"] if x["qdev_id"]] == ["blk1"]
            q.close()
