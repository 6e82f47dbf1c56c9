#!/bin/sh
# The main job: build the VMM and the test guest, then boot testos with the
# boot command line of the user's guide (docs/user-guide.md): serial console
# on telnet 127.0.0.1:7000, the human monitor on telnet 127.0.0.1:8000, QMP
# on /tmp/qmp0.sock, vCPUs pinned by map.txt.  Stop it with Ctrl-C or `q`.
set -e
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./configure
make -j"$(nproc)"
vcpu=${VCPU:-2}
memory=${MEMORY:-2G}
scenario=${SCENARIO:-idle}
BASE=7000
index=0
tport=$(( BASE + index ))
mport=$(( 1000 + BASE + index ))
qsock="/tmp/qmp${index}.sock"
cpumap=build/map.txt
# one dedicated pCPU per vCPU, from the last CPUs this process may use
ncpu=$(nproc)
for i in $(seq 0 $(( vcpu - 1 ))); do echo "$i $(( (ncpu - vcpu + i) % ncpu ))"; done > $cpumap
echo "run: serial console: telnet 127.0.0.1 $tport"
echo "run: monitor (HMP):  telnet 127.0.0.1 $mport"
echo "run: QMP:            nc -N -U $qsock"
echo "run: vCPU threads:   echo '{\"execute\":\"qmp_capabilities\"}{\"execute\":\"query-cpus\"}' | nc -N -U $qsock | tail -n 1 | tr ',{}[]' '\\n' | awk '/thread_id/ {print \$2}'"
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
