#!/bin/sh
# The main job: build the VMM and the test guest, then boot testos with the
# boot command line of the user's guide (docs/user-guide.md).  The serial
# console is on telnet 127.0.0.1:7000.  Stop it with Ctrl-C.
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
echo "run: serial console: telnet 127.0.0.1 $tport"
exec ./build/qemu-system-x86_64 \
    -enable-kvm \
    -cpu host,host-cache-info=on \
    -smp cpus=${vcpu},sockets=1,threads=1,maxcpus=${vcpu} \
    -m ${memory} \
    -serial telnet:127.0.0.1:${tport},server,nowait \
    -parallel none \
    -serial none \
    -net none \
    -vga none \
    -nographic \
    -nodefaults \
    -kernel build/tests/guest/testos \
    -append "testos.run=${scenario}"
