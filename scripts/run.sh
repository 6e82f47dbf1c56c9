#!/bin/sh
# The main job: build the VMM and the test guest, then boot testos with the
# boot command line of the user's guide (docs/user-guide.md): serial console
# on telnet 127.0.0.1:7000, the human monitor on telnet 127.0.0.1:8000, QMP
# on /tmp/qmp0.sock, vCPUs pinned by map.txt.  Stop it with Ctrl-C or `q`.
#
# Where /dev/kvm does not open read-write (absent, or not this user's), the
# same boot runs inside the nested rig (tests/rig/rig.sh: Debian's QEMU
# emulating a machine with a real /dev/kvm); the two ports and the QMP
# socket are forwarded to this host, so the commands above work unchanged,
# and map.txt is made for the rig's CPUs.  One line says so; the rig's
# machine takes ~10-30 s to boot before the ports answer.
#
# Environment: VCPU (2), MEMORY (2G), SCENARIO (idle: testos.run=...);
# DV_RUN_IN_RIG=1 takes the rig path even where /dev/kvm works (to try it).
# Inside the rig (DV_RIG=1) nothing is installed or built: the host did it.
set -e
cd "$(dirname "$0")/.."
if [ "${DV_RIG:-}" != 1 ]; then
    ./scripts/install-deps.sh
    ./configure
    make -j"$(nproc)"
fi
vcpu=${VCPU:-2}
memory=${MEMORY:-2G}
scenario=${SCENARIO:-idle}
BASE=7000
index=0
tport=$(( BASE + index ))
mport=$(( 1000 + BASE + index ))
qsock="/tmp/qmp${index}.sock"
cpumap=build/map.txt

# /dev/kvm works when it opens read-write (PVM's counts)
kvm_opens() { [ -c /dev/kvm ] && { : <> /dev/kvm; } 2> /dev/null; }
if [ "${DV_RIG:-}" != 1 ] && { [ "${DV_RUN_IN_RIG:-}" = 1 ] || ! kvm_opens; }; then
    if [ "${DV_RUN_IN_RIG:-}" = 1 ]; then why="DV_RUN_IN_RIG=1"
    else why="/dev/kvm does not open read-write here"; fi
    # L1 needs the VMM's memory and 2 GiB for itself
    case $memory in
        *[Gg]) l1_mib=$(( ${memory%?} * 1024 + 2048 )) ;;
        *[Mm]) l1_mib=$(( ${memory%?} + 2048 )) ;;
        *) l1_mib=$(( memory + 2048 )) ;;
    esac
    [ "$l1_mib" -ge 4096 ] || l1_mib=4096
    echo "run: $why: booting it inside the nested rig (tests/rig/rig.sh), ports $tport, $mport and $qsock forwarded here"
    exec bash tests/rig/rig.sh -q --share . --timeout 0 --mem "${l1_mib}M" \
        --forward-tcp "$tport" --forward-tcp "$mport" --forward-unix "$qsock" \
        -- "VCPU='$vcpu' MEMORY='$memory' SCENARIO='$scenario' ./scripts/run.sh"
fi

# one dedicated pCPU per vCPU, from the last CPUs this process may use
ncpu=$(nproc)
for i in $(seq 0 $(( vcpu - 1 ))); do echo "$i $(( (ncpu - vcpu + i) % ncpu ))"; done > $cpumap
echo "run: serial console: telnet 127.0.0.1 $tport"
echo "run: monitor (HMP):  telnet 127.0.0.1 $mport"
echo "run: QMP:            nc -N -U $qsock"
printf '%s\n' "run: vCPU threads:   echo '{\"execute\":\"qmp_capabilities\"}{\"execute\":\"query-cpus\"}' | nc -N -U $qsock | tail -n 1 | tr ',{}[]' '\\n' | awk '/thread_id/ {print \$2}'"
exec ./build/qemu-system-x86_64 \
    -enable-kvm \
    -cpu host,host-cache-info=on \
    -smp cpus=${vcpu},sockets=1,threads=1,maxcpus=${vcpu} \
    -m ${memory} \
    -osnet_cpumap path=${cpumap} \
    -qmp unix:${qsock},server,nowait \
    -serial telnet:127.0.0.1:${tport},server,nowait \
    -monitor telnet:127.0.0.1:${mport},server,nowait \
    -parallel none \
    -serial none \
    -net none \
    -vga none \
    -nographic \
    -nodefaults \
    -kernel build/tests/guest/testos \
    -append "testos.run=${scenario}"