"""virtio-net across a live migration (issue 13): testos `net` answers on
the source's tap, migrates to a destination on another tap of the same
namespace, and answers there; the destination announces the guest's MAC
with a RARP frame on its tap (testos negotiates no GUEST_ANNOUNCE, so the
VMM sends it, as QEMU does).

The namespace is the test's own (two taps, nothing routed); the host end
is tests/guest/netprobe.py on an AF_PACKET socket, addresses only from
198.18.0.0/15."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from harness import ROOT, TESTOS, VMM, Qmp, Vmm, wait_for_path

pytestmark = [pytest.mark.vm]

NETPROBE = os.path.join(ROOT, "tests", "guest", "netprobe.py")
PYTHON = "/usr/bin/python3"
GUEST_IP = "198.18.0.2"
GUEST_MAC = "52:54:00:12:34:56"
SLOW = 5 if os.environ.get("DV_RIG") == "1" else 1

# Listens on a tap for RARP (EtherType 0x8035) and prints each sender's MAC.
RARP_LISTENER = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
s.bind((sys.argv[1], 0))
s.settimeout(float(sys.argv[2]))
print("listening", flush=True)
try:
    while True:
        f = s.recv(2048)
        if len(f) >= 42 and f[12:14] == b"\x80\x35" and f[20:22] == b"\x00\x03":
            print("rarp", f[6:12].hex(":"), f[22:28].hex(":"), flush=True)
            break
except socket.timeout:
    print("none", flush=True)
"""


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not shutil.which("ip"):
        pytest.skip("needs root, /dev/net/tun and ip(8)")
    name = f"dvnetmig-{os.getpid()}-{time.monotonic_ns() % 1000000}"
    cmds = [["ip", "netns", "add", name], ["ip", "-n", name, "link", "set", "lo", "up"]]
    for tap in ("dvtap0", "dvtap1"):
        cmds += [["ip", "-n", name, "tuntap", "add", "dev", tap, "mode", "tap"],
                 ["ip", "-n", name, "link", "set", tap, "mtu", "9000", "up"]]
    try:
        for c in cmds:
            p = subprocess.run(c, capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, f"{' '.join(c)}: {p.stderr.strip()}"
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def vm(ns, d, name, tap, vhost, extra=()):
    args = ["netns", "exec", ns, VMM, "-enable-kvm", "-m", "128M", "-display", "none",
            "-nodefaults", "-serial", f"file:{os.path.join(d, name + '.log')}",
            "-qmp", f"unix:{os.path.join(d, name + '.sock')},server,nowait",
            "-kernel", TESTOS, "-append", f"testos.run=net testos.ip={GUEST_IP}",
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no,vhost={vhost}",
            "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC},id=nic0", *extra]
    return Vmm(args, binary="ip")


def log(d, name):
    try:
        with open(os.path.join(d, name + ".log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_log(d, name, text, timeout=60):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if text in log(d, name):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in {name}'s serial within {timeout} s:\n"
                         f"{log(d, name)}")


def probe(ns, *args, timeout=120):
    cmd = ["ip", "netns", "exec", ns, PYTHON, NETPROBE] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SLOW)
    assert p.returncode == 0 and p.stdout.startswith("ok"), \
        f"netprobe {' '.join(map(str, args))}: {p.stdout}{p.stderr}"
    return p.stdout.strip()


@pytest.mark.parametrize("vhost", ["off", pytest.param("on", marks=pytest.mark.hwkvm)])
def test_guest_answers_on_the_destination_which_announces_its_mac(netns, vhost):
    """ARP and echo on the source's tap; migrate; a RARP from the guest's
    MAC on the destination's tap, and ARP and echo (60..1514 bytes)
    answered there.  With vhost=on (the rig: /dev/vhost-net) vhost-net
    moves the frames on both sides and logs its writes for the migration."""
    if vhost == "on" and not os.path.exists("/dev/vhost-net"):
        pytest.skip("no /dev/vhost-net here (the rig's L1 has it)")
    with tempfile.TemporaryDirectory() as d:
        uri = f"unix:{os.path.join(d, 'mig.sock')}"
        with vm(netns, d, "src", "dvtap0", vhost) as src:
            wait_log(d, "src", f"testos: net up mac={GUEST_MAC}")
            assert probe(netns, "arp", "dvtap0", GUEST_IP) == f"ok arp mac={GUEST_MAC}"
            line = probe(netns, "echo", "dvtap0", GUEST_IP, "--min", 60, "--max", 200)
            assert line.startswith("ok echo icmp=141 udp=141 "), line
            listener = subprocess.Popen(
                ["ip", "netns", "exec", netns, PYTHON, "-c", RARP_LISTENER, "dvtap1",
                 str(60 * SLOW)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True)
            try:
                assert listener.stdout.readline().strip() == "listening"
                with vm(netns, d, "dst", "dvtap1", vhost, ["-incoming", uri]) as dst:
                    q_src = Qmp(os.path.join(d, "src.sock"))
                    wait_for_path(os.path.join(d, "dst.sock"))
                    q_dst = Qmp(os.path.join(d, "dst.sock"))
                    q_src.ok("migrate", uri=uri)
                    deadline = time.time() + 120 * SLOW
                    while time.time() < deadline:
                        info = q_src.ok("query-migrate")
                        if info.get("status") in ("completed", "failed", "cancelled"):
                            break
                        time.sleep(0.1)
                    assert info.get("status") == "completed", info
                    out, _ = listener.communicate(timeout=90 * SLOW)
                    assert out.split() == ["rarp", GUEST_MAC, GUEST_MAC], out
                    assert q_dst.ok("query-status")["status"] == "running"
                    assert probe(netns, "arp", "dvtap1", GUEST_IP) == \
                        f"ok arp mac={GUEST_MAC}"
                    line = probe(netns, "echo", "dvtap1", GUEST_IP, "--min", 60,
                                 "--max", 1514)
                    assert line.startswith("ok echo icmp=1455 udp=1455 "), line
                    assert "exception" not in log(d, "dst"), log(d, "dst")
                    q_dst.close()
                    q_src.close()
            finally:
                if listener.poll() is None:
                    listener.kill()
                    listener.communicate(timeout=30)
