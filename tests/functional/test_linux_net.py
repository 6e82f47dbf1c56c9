"""A stock Linux guest (Debian's 6.1 kernel, tests/guest/linux/) on a
virtio-net NIC over a tap (issue 13), under this VMM and under Debian's QEMU
(the peer), the same command line for both, with vhost=off and vhost=on:
virtio_net binds with the MAC given, the guest takes a static address,
pings the host and is pinged, iperf3 moves TCP both ways, and `ethtool -k`
shows the offloads the device negotiated (the same under both VMMs).

Each guest runs in a network namespace the test makes, with a tap (the
host end 198.18.0.1/24, the guest 198.18.0.2/24), so nothing leaves the
machine.  One boot serves all the tests of a (vhost, VMM) pair: both VMMs
boot side by side, each in its own namespace (the guest's `net` scenario,
then it holds), and the host's ping and iperf3 client run against one, then
the other.  Timings are printed, never asserted (`make bench` has them)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from linuxguest import Guest, close_all, tap_netns

# hwkvm: a stock kernel does not boot on PVM; `make check` runs these in
# the nested rig, whose L1 has /dev/vhost-net
pytestmark = pytest.mark.hwkvm

WHICH = ["vmm", "peer"]
VHOST = ["off", "on"]
TAP = "dvtap0"                  # one per namespace, so the name never clashes
HOST_IP, GUEST_IP = "198.18.0.1", "198.18.0.2"
GUEST_MAC = "52:54:00:12:34:57"
BOOT_TIMEOUT = 240              # to the iperf3 server line, nested, two guests at once
IPERF_SECONDS = 3
# what virtio_net turns on from the features every virtio-net NIC on a tap
# offers (CSUM: sg, tx checksums, TSO; GUEST_CSUM: rx checksums); GRO is the
# kernel's own
BASE_OFFLOADS = {"rx-checksumming", "tx-checksumming", "scatter-gather",
                 "tcp-segmentation-offload", "generic-receive-offload"}


def host_missing():
    """Why the host side cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and taps)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    for tool in ("ip", "iperf3", "ping"):
        if not shutil.which(tool):
            return f"no {tool} on this host (scripts/install-deps.sh)"
    return None


def vhost_net():
    """Whether /dev/vhost-net is there, loading vhost_net if it is not (the
    rig's L1 has the module but its init does not load it)."""
    if not os.path.exists("/dev/vhost-net") and shutil.which("modprobe"):
        subprocess.run(["modprobe", "vhost_net"], capture_output=True, timeout=60)
    return os.path.exists("/dev/vhost-net")


def skip_unless_host_ready(vhost):
    """Skips the test where the host side cannot run (host_missing), or
    where vhost is "on" and there is no /dev/vhost-net."""
    why = host_missing()
    if why:
        pytest.skip(why)
    if vhost == "on" and not vhost_net():
        pytest.skip("no /dev/vhost-net here (the rig's L1 has the vhost_net module)")


def make_netns(tag):
    return tap_netns(f"dvlnet-{tag}-{os.getpid()}", TAP, HOST_IP)


def in_ns(ns, cmd, timeout):
    try:
        return subprocess.run(["ip", "netns", "exec", ns] + cmd, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(cmd)} still running after {timeout} s") from None


def iperf3(ns, reverse, streams=1):
    """The host's iperf3 client against the guest's server: TCP for
    IPERF_SECONDS, host to guest (or guest to host with -R), in streams
    parallel streams (-P).  Returns (bits/s received, bytes received), or
    raises with iperf3's error."""
    cmd = (["iperf3", "-c", GUEST_IP, "-t", str(IPERF_SECONDS), "-J",
            "--connect-timeout", "10000"] + (["-R"] if reverse else [])
           + (["-P", str(streams)] if streams > 1 else []))
    p = in_ns(ns, cmd, IPERF_SECONDS + 60)
    try:
        r = json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"iperf3 {'-R ' if reverse else ''}gave no JSON "
                             f"(status {p.returncode}): {p.stdout[-2000:]}{p.stderr}") from None
    if "error" in r:
        raise AssertionError(f"iperf3 {'-R ' if reverse else ''}: {r['error']}")
    try:
        s = r["end"]["sum_received"]
        return s["bits_per_second"], s["bytes"]
    except KeyError:
        raise AssertionError(f"iperf3: no sum_received in {p.stdout[-2000:]}") from None


class Run:
    """What one VMM's guest printed and what the host measured against it."""

    def __init__(self, which, text, host_ping, iperf):
        self.which, self.text, self.host_ping, self.iperf = which, text, host_ping, iperf

    def line(self, pattern):
        m = re.search(pattern, self.text, re.M)
        assert m, f"no {pattern!r} from the guest under {self.which}:\n{self.text[-3000:]}"
        return m


_runs = {}


def runs(vhost, which):
    """The Run of which's guest with vhost: the pair boots once per vhost."""
    if vhost not in _runs:
        _runs[vhost] = _boot_pair(vhost)
    r = _runs[vhost][which]
    if isinstance(r, Exception):
        raise AssertionError(f"{which} with vhost={vhost} failed: {r}")
    return r


def _boot_pair(vhost):
    skip_unless_host_ready(vhost)
    workdir = tempfile.mkdtemp(prefix="dv-linux-net-", dir="/tmp")
    guests, spaces, result = {}, {}, {}
    try:
        for which in WHICH:
            spaces[which] = make_netns(f"{which}{vhost}")
            guests[which] = Guest(
                which, workdir, f"{which}-vhost{vhost}", netns=spaces[which], smp=1,
                mem="256M", run="net",
                extra_append=f"dv.ip={GUEST_IP}/24 dv.peer={HOST_IP} dv.net_hold=900",
                # the user's guide's two lines, as written there (tap=TAP)
                extra=["-netdev", f"tap,ifname={TAP},id={TAP},script=no,downscript=no,"
                                  f"vhost={vhost}",
                       "-device", f"virtio-net,netdev={TAP},mac={GUEST_MAC},id={TAP}"])
        for which, g in guests.items():
            try:
                g.wait_for(r"^linux: (net iperf3 server port=5201|fail .*)$", BOOT_TIMEOUT)
                up = time.time() - g.started
                ns = spaces[which]
                ping = in_ns(ns, ["ping", "-c", "3", "-W", "5", GUEST_IP], 60).stdout
                iperf = {"host-to-guest": iperf3(ns, False),
                         "guest-to-host": iperf3(ns, True)}
                feats = re.search(r"^linux: net features=(\d+)", g.text(), re.M)
                bits = [i for i, c in enumerate(feats.group(1)) if c == "1"] if feats else None
                print(f"{which} vhost={vhost}: features {bits}", flush=True)
                print(f"{which} vhost={vhost}: server up {up:.1f} s after start; "
                      + ", ".join(f"{k} {v[0] / 1e6:.1f} Mbit/s"
                                  for k, v in iperf.items()), flush=True)
                result[which] = Run(which, g.text(), ping, iperf)
            except AssertionError as e:
                result[which] = e
        return result
    finally:
        close_all(guests.values())
        for ns in spaces.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("vhost", VHOST, ids=lambda v: f"vhost-{v}")
def test_virtio_net_binds_and_takes_a_static_address(vhost, which):
    """virtio_net drives the NIC with the MAC from `-device ...,mac=`, the
    static address goes on, the link is up (carrier), and the guest's
    scenario reports no failure."""
    r = runs(vhost, which)
    r.line(rf"^linux: net dev=\S+ driver=virtio_net mac={GUEST_MAC}$")
    r.line(rf"^linux: net up dev=\S+ ip={GUEST_IP}/24 carrier=1$")
    assert not re.findall(r"^linux: fail .*$", r.text, re.M), r.text[-3000:]


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("vhost", VHOST, ids=lambda v: f"vhost-{v}")
def test_ping_both_ways(vhost, which):
    """The guest pings the tap's address and the host pings the guest:
    three echo requests each way, three replies."""
    r = runs(vhost, which)
    r.line(rf"^linux: net ping peer={HOST_IP} sent=3 received=3$")
    assert re.search(r"3 packets transmitted, 3 (packets )?received", r.host_ping), r.host_ping


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("vhost", VHOST, ids=lambda v: f"vhost-{v}")
def test_iperf3_tcp_both_ways(vhost, which):
    """iperf3 (the host's, copied into the guest's initramfs) serves in the
    guest; the host's client sends to it for IPERF_SECONDS, then has it
    send (-R): both runs end without an error and data arrived each way."""
    r = runs(vhost, which)
    for direction, (bps, nbytes) in r.iperf.items():
        assert nbytes > 0 and bps > 0, f"{direction}: {nbytes} bytes"


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("vhost", VHOST, ids=lambda v: f"vhost-{v}")
def test_offloads_visible_in_ethtool(vhost, which):
    """`ethtool -k` in the guest: checksum offload both ways, scatter-gather
    and TSO are on; under this VMM exactly the features that are on under
    Debian's QEMU with the same vhost setting."""
    on = set(runs(vhost, which).line(r"^linux: net offloads on=(\S*)$").group(1).split(","))
    assert BASE_OFFLOADS <= on, f"missing: {sorted(BASE_OFFLOADS - on)}; on: {sorted(on)}"
    if which == "vmm":
        peer = set(runs(vhost, "peer").line(r"^linux: net offloads on=(\S*)$")
                   .group(1).split(","))
        assert on == peer, (f"only under this VMM: {sorted(on - peer)}; "
                            f"only under QEMU: {sorted(peer - on)}")
