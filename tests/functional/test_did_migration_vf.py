"""DID and the cpumap around a failover migration with a real passthrough
NIC (issue 16 item 3), in the rig's --iommu L1: the guest of
test_failover_linux.py (virtio-net failover=on standby, the e1000e passed
with vfio-pci as its primary) runs with `-osnet_cpumap path=...,did=on` on
both sides, its one vCPU on L1's CPU 0 at the source and on CPU 1 at the
destination.  Checked: the e1000e's MSI-X vectors are steered to CPU 0
at the source; after the migration the primary plugged at the destination
has its vectors on CPU 1 (query-osnet-did and /proc/irq agree), DID is on
there (`incoming-source`) and off at the source (`migration-stop`)."""
import os
import tempfile
import time

import pytest

from harness import Qmp, wait_for_path
import test_failover_linux as fl
from test_failover_linux import BOOT_TIMEOUT, STEP, TAPS, boot, initrd
from test_failover_linux import migration_statuses

pytestmark = pytest.mark.iommu

SRC_PCPU, DST_PCPU = 0, 1

net = fl.net  # the fixture: the VF on vfio-pci, the peer's bridge and the taps


def vm(d, name, nic, tap, rd, pcpu, incoming=None):
    path = os.path.join(d, name + ".map")
    with open(path, "w") as f:
        f.write(f"0 {pcpu}\n")
    return fl.vm(d, name, nic, tap, rd, incoming=incoming,
                 more=["-osnet_cpumap", f"path={path},did=on"])


def steered_vectors(q, g, timeout=STEP):
    """The pnic's enabled vectors aimed at a vCPU, once there are some."""
    deadline = time.time() + timeout
    while True:
        did = q.ok("query-osnet-did")
        vectors = [v for v in did["passthrough-vectors"]
                   if v.get("device") == "pnic" and v["enabled"] and v["vcpu"] >= 0]
        if vectors and all(v["pcpu"] >= 0 for v in vectors):
            return did, vectors
        assert time.time() < deadline, (
            f"no steered vector of pnic in {timeout} s: {did['passthrough-vectors']}"
            f"\n{g.tail()}")
        time.sleep(0.5)


def irq_affinity(v):
    with open(f"/proc/irq/{v['host-irq']}/smp_affinity_list") as f:
        return f.read().strip()


def test_vf_vectors_follow_each_sides_map_and_did_moves(net):
    bdf, mac = net
    with tempfile.TemporaryDirectory() as d:
        rd = initrd(d)
        src, src_sock = vm(d, "src", net, TAPS[0], rd, SRC_PCPU)
        with src:
            boot(src, mac)
            with Qmp(src_sock) as qs:
                did, vectors = steered_vectors(qs, src)
                assert (did["active"], did["reason"]) == (True, "start"), did
                for v in vectors:
                    assert v["pcpu"] == SRC_PCPU and irq_affinity(v) == str(SRC_PCPU), v
            dst, dst_sock = vm(d, "dst", net, TAPS[1], rd, DST_PCPU,
                               incoming=f"unix:{d}/mig.sock")
            with dst:
                wait_for_path(dst_sock, 60)
                with Qmp(src_sock) as qs, Qmp(dst_sock) as qd:
                    assert qd.ok("query-osnet-did")["reason"] == "incoming-wait"
                    qs.ok("migrate-set-capabilities",
                          capabilities=[{"capability": "events", "state": True}])
                    qs.ok("migrate", uri=f"unix:{d}/mig.sock")
                    statuses = migration_statuses(qs, "completed", 300)
                    assert "wait-unplug" in statuses, statuses
                    qd.wait_event("RESUME", STEP)
                    src_did = qs.ok("query-osnet-did")
                    assert (src_did["active"], src_did["reason"]) == (
                        False, "migration-stop"), src_did
                    dst.wait_for(r"^linux: fo vf=(?!none)\S+$", BOOT_TIMEOUT)
                    did, vectors = steered_vectors(qd, dst)
                    assert (did["active"], did["reason"]) == (True, "incoming-source"), did
                    for v in vectors:
                        assert v["pcpu"] == DST_PCPU, v
                        assert irq_affinity(v) == str(DST_PCPU), v
                    aff = qd.ok("query-osnet-cpumap")
                    assert aff[0]["pcpu"] == DST_PCPU and aff[0]["affinity"] == [DST_PCPU]
                assert not dst.fails(), dst.tail()
