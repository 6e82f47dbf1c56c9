#!/bin/bash
# rig.sh -- a nested-KVM test rig for machines without /dev/kvm.
#
# Debian's qemu-system-x86_64 runs in pure TCG (software emulation) as an
# "L1" machine whose emulated CPU has AMD SVM with nested paging (-cpu max:
# QEMU's TCG implements SVM incl. NPT, but not Intel VMX).  L1 boots Debian's
# stock kernel (package linux-image-amd64) with a small busybox initramfs that
# loads kvm + kvm_amd, so /dev/kvm exists inside L1 and a VMM can run L2
# guests there.  Optionally (--iommu) L1 gets an emulated Intel IOMMU (VT-d,
# interrupt remapping) and an emulated e1000e NIC with no route outside this
# machine, so VFIO passthrough (vfio-pci) can be exercised in L1.
#
# Inside L1:
#   /usr     host /usr, read-only over 9p (all host binaries and libraries:
#            Debian's qemu, python3, pytest, bash, the VMM's glib/jansson...)
#   /share   --share DIR, read-write over 9p (default cwd of the command)
#   /tmp     ext4 on a fresh sparse scratch disk (--scratch; O_DIRECT works,
#            unlike tmpfs in 6.1); /run /var/tmp /dev/shm tmpfs; lo is up
#   /etc     minimal + the host's /etc/alternatives and ld.so.cache
#   /dev/kvm (mode 666), /dev/vfio/vfio
#   modprobe works for the modules packed (e1000e, igb, vfio-pci, tun, ...)
#   nk-vfio-bind [BDF|VENDOR:DEVICE...]  binds devices (default: every
#            Ethernet controller) to vfio-pci, prints "BDF /dev/vfio/GROUP"
#
# Usage:
#   rig.sh [options] [-- 'shell command']
#     --share DIR     share DIR at /share (rw, 9p); the command starts there
#     --iommu         q35 + intel-iommu(intremap,caching-mode) + an e1000e NIC
#                     (netdev: user,restrict=on -> no external route);
#                     L1 cmdline gets intel_iommu=on iommu=pt
#     --nic MODEL     NIC model for --iommu (default e1000e; QEMU 7.2 has no igb)
#     --cpu MODEL     L1 CPU model (default max; e.g. EPYC,+svm,+npt)
#     --smp N         L1 vCPUs (default: host CPUs)       --mem SIZE (4G)
#     --append ARGS   extra L1 kernel command-line words (e.g. loglevel=7)
#     --qemu-arg ARG  extra argument for the L1 QEMU (repeatable), e.g.
#                     --qemu-arg -drive --qemu-arg file=x.img,if=virtio
#     --timeout SEC   kill L1 after SEC seconds (default 1800)
#     --scratch SIZE  size of the sparse scratch disk for /tmp (default 16G;
#                     0 = /tmp on tmpfs); recreated empty on every run
#     --shell         interactive L1 shell on this terminal (no command)
#     --build-only    just build kernel + initramfs      --rebuild  force it
#     --work DIR      cache/log dir (default ${TMPDIR:-/tmp}/nested-kvm, or $NK_WORK)
#     -q              no rig progress messages on stderr
#   The command runs as root under /usr/bin/bash (busybox sh if none) with
#   stdin /dev/null; its stdout+stderr are streamed to this stdout (through
#   L1's second serial port) and its exit status is this script's exit status.
#   NK_QEMU=/path/to/qemu-system-x86_64 picks the L0 emulator.
#   Rig failures exit 125 (no status came back; see WORK/console.log, the L1
#   kernel log) or 124 (timeout).
#
# Examples:
#   rig.sh -- 'ls -l /dev/kvm; dmesg | grep -i svm'
#   rig.sh --share . -- './build/qemu-system-x86_64 -enable-kvm \
#       -smp 2 -m 128M -kernel build/tests/guest/testos -append testos.run=smp \
#       -nographic -no-reboot'
#   rig.sh --iommu -- 'nk-vfio-bind && qemu-system-x86_64 -enable-kvm \
#       -device vfio-pci,host=0000:00:02.0 ...'       (Debian's QEMU as the L1 VMM)
#
# Needs: root (or read access to /usr), qemu-system-x86 (Debian 12: 7.2),
# apt-get + dpkg-deb (downloads linux-image-amd64 + busybox-static .debs once;
# nothing is installed on the host), coreutils, util-linux (flock), awk.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${RIG_WORK:-$ROOT/build/rig}
SHARE="" IOMMU=0 NIC=e1000e CPU=max SMP=$(nproc) MEM=4G APPEND="" TIMEOUT=1800
SCRATCH=16G SHELL_MODE=0 BUILD_ONLY=0 REBUILD=0 QUIET=0 CMD="" EXTRA=()
QEMU=${NK_QEMU:-qemu-system-x86_64}

die() { echo "rig: $*" >&2; exit 125; }
say() { [ "$QUIET" = 1 ] || echo "rig: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --share) SHARE=$(realpath "$2"); shift 2 ;;
        --iommu) IOMMU=1; shift ;;
        --nic) NIC=$2; shift 2 ;;
        --cpu) CPU=$2; shift 2 ;;
        --smp) SMP=$2; shift 2 ;;
        --mem) MEM=$2; shift 2 ;;
        --append) APPEND="$APPEND $2"; shift 2 ;;
        --qemu-arg) EXTRA+=("$2"); shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --scratch) SCRATCH=$2; shift 2 ;;
        --shell) SHELL_MODE=1; shift ;;
        --build-only) BUILD_ONLY=1; shift ;;
        --rebuild) REBUILD=1; shift ;;
        --work) WORK=$2; shift 2 ;;
        -q) QUIET=1; shift ;;
        --) shift; CMD="$*"; break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d;s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[ -n "$CMD" ] || [ "$SHELL_MODE" = 1 ] || [ "$BUILD_ONLY" = 1 ] ||
    die "no command: give -- 'command', --shell or --build-only"
[ -z "$SHARE" ] || [ -d "$SHARE" ] || die "--share $SHARE: not a directory"
case "$SHARE" in *,*) die "--share path must not contain a comma (QEMU option syntax)";; esac
command -v "$QEMU" >/dev/null || die "$QEMU not found (apt-get install qemu-system-x86)"
mkdir -p "$WORK"
exec 9>"$WORK/.lock"            # one build at a time; runs go in parallel
flock -w 600 9 || die "another rig.sh holds $WORK/.lock for 10 minutes"

# Modules packed into the initramfs (with their dependencies).  Loaded at
# boot: see BOOT_MODS in /init.  The NIC drivers are packed but not loaded,
# so the NIC stays free for vfio-pci (modprobe e1000e to use it in L1).
MODS="kvm kvm_amd kvm_intel vfio vfio_iommu_type1 vfio_pci virtio_pci
virtio_blk virtio_net virtio_console 9p 9pnet_virtio e1000 e1000e igb
overlay tun vhost_net loop ext4 crc32c_generic crc32c_intel af_packet
bonding net_failover failover bridge veth"

# ---------------------------------------------------------------- build ----
build() {
    local b=$WORK/build; rm -rf "$b"; mkdir -p "$WORK/debs" "$b/pkg" "$b/root"
    local kpkg
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
           sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
    if [ -z "$kpkg" ]; then            # no apt lists yet: update once
        apt-get update -qq >/dev/null 2>&1 || true
        kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
               sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
    fi
    if [ -z "$kpkg" ]; then            # offline: whatever kernel .deb is cached
        kpkg=$(ls "$WORK"/debs/linux-image-[0-9]*.deb 2>/dev/null | head -1 |
               sed 's|.*/||; s|_.*||')
    fi
    [ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
    if ! ls "$WORK/debs/${kpkg}_"*.deb "$WORK/debs/busybox-static_"*.deb >/dev/null 2>&1; then
        say "downloading $kpkg + busybox-static (apt-get download; nothing installed)"
        rm -f "$WORK"/debs/*.deb
        ( cd "$WORK/debs" && apt-get -q -o APT::Sandbox::User=root download \
              "$kpkg" busybox-static >/dev/null ) || die "apt-get download failed"
    fi
    for d in "$WORK"/debs/*.deb; do dpkg-deb -x "$d" "$b/pkg"; done
    local kver; kver=$(ls "$b/pkg/lib/modules" | head -1)
    cp "$b/pkg/boot/vmlinuz-$kver" "$b/vmlinuz"
    local r=$b/root bb=$b/pkg/bin/busybox
    # --- busybox at /nk/busybox, applet links in /bin (until host /usr is
    # mounted; then /bin and /sbin become links to usr/bin, usr/sbin as on
    # the host, and the applets stay reachable in /nk/bb, last in PATH)
    mkdir -p "$r"/{bin,sbin,dev,proc,sys,tmp,run,etc,usr,share,mnt,root,var/tmp,nk/bin}
    cp "$bb" "$r/nk/busybox"
    for a in $("$bb" --list); do ln -s /nk/busybox "$r/bin/$a"; done
    ln -sf /nk/busybox "$r/bin/busybox"
    # tools that must be busybox's even when host /usr has its own (host's
    # poweroff is systemctl; host's kmod wants modules.dep.bin): first in PATH
    for a in modprobe insmod rmmod lsmod depmod modinfo poweroff reboot halt; do
        ln -s /nk/busybox "$r/nk/bin/$a"
    done
    # host libraries are under /usr (merged-usr): ld.so finds them through
    # these links; /lib itself stays real to hold /lib/modules
    mkdir -p "$r/lib"; ln -s usr/lib64 "$r/lib64"
    ln -s ../usr/lib/x86_64-linux-gnu "$r/lib/x86_64-linux-gnu"
    # --- kernel modules: closure of $MODS over the modinfo "depends=" field
    local src=$b/pkg/lib/modules/$kver dst=$r/lib/modules/$kver
    mkdir -p "$dst"; cp "$src"/modules.builtin* "$src"/modules.order "$dst"/
    declare -A path=() seen=()
    local f n
    while read -r f; do n=${f##*/}; n=${n%.ko}; path[${n//-/_}]=$f; done \
        < <(cd "$src" && find kernel -name '*.ko')
    local todo=() m
    for m in $MODS; do todo+=("${m//-/_}"); done
    while [ ${#todo[@]} -gt 0 ]; do
        m=${todo[0]}; todo=("${todo[@]:1}")
        [ -z "${seen[$m]:-}" ] || continue; seen[$m]=1
        if [ -z "${path[$m]:-}" ]; then   # builtin or absent
            grep -q "/${m//_/[-_]}\.ko$" "$src/modules.builtin" ||
                say "warning: module $m not found"; continue
        fi
        mkdir -p "$dst/$(dirname "${path[$m]}")"
        cp "$src/${path[$m]}" "$dst/${path[$m]}"
        for n in $(tr '\0' '\n' < "$src/${path[$m]}" |
                   sed -n 's/^depends=//p' | head -1 | tr ',' ' '); do
            todo+=("${n//-/_}")
        done
    done
    "$bb" depmod -b "$r" "$kver"
    cat > "$r/nk/bin/nk-vfio-bind" <<'EOF'
#!/nk/busybox sh
# nk-vfio-bind [BDF|VENDOR:DEVICE ...]: bind PCI devices to vfio-pci (default:
# every Ethernet controller, class 0x0200); prints "BDF /dev/vfio/GROUP".
/nk/bin/modprobe vfio-pci || exit 1
n=0
for d in /sys/bus/pci/devices/*; do
    bdf=${d##*/}; id=$(sed 's/^0x//' $d/vendor):$(sed 's/^0x//' $d/device)
    if [ $# = 0 ]; then case $(cat $d/class) in 0x0200*) ;; *) continue ;; esac
    else echo " $* " | grep -qiF -e " $bdf " -e " ${bdf#0000:} " -e " $id " || continue; fi
    [ -e $d/iommu_group ] || { echo "$bdf: no IOMMU group (L1 needs --iommu)" >&2; exit 1; }
    [ -e $d/driver ] && echo $bdf > $d/driver/unbind
    echo vfio-pci > $d/driver_override; echo $bdf > /sys/bus/pci/drivers_probe
    [ "$(basename $(readlink $d/driver))" = vfio-pci ] || { echo "$bdf: bind failed" >&2; exit 1; }
    echo "$bdf /dev/vfio/$(basename $(readlink $d/iommu_group))"; n=$((n+1))
done
[ $n -gt 0 ] || { echo "nk-vfio-bind: no matching device" >&2; exit 1; }
EOF
    chmod 755 "$r/nk/bin/nk-vfio-bind"
    # --- /etc and /init
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$r/etc/passwd"
    printf 'root:x:0:\nkvm:x:104:\n' > "$r/etc/group"
    printf '127.0.0.1 localhost\n::1 localhost\n' > "$r/etc/hosts"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$r/etc/nsswitch.conf"
    echo nested-l1 > "$r/etc/hostname"
    cat > "$r/init" <<'EOF'
#!/nk/busybox sh
# L1 init (rig.sh): mounts, modules, shares; runs /etc/nk/cmd.sh with
# output on ttyS1 followed by "@@NK_RC=<status>", then powers off.
export PATH=/nk/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/nk/bb
export HOME=/root TERM=dumb LANG=C.UTF-8
/nk/busybox mount -t proc proc /proc
/nk/busybox mount -t sysfs sysfs /sys
/nk/busybox mount -t devtmpfs devtmpfs /dev
echo /nk/bin/modprobe > /proc/sys/kernel/modprobe
mkdir -p /dev/pts /dev/shm /dev/hugepages
mount -t devpts devpts /dev/pts; mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/mounts /etc/mtab
hostname nested-l1; ip link set lo up
log() { echo "nk: [$(cut -d' ' -f1 /proc/uptime)] $*" > /dev/console; }
arg() { sed -n "s/.*\bnk\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
log "init started"
BOOT_MODS="virtio_pci virtio_blk 9pnet_virtio 9p vfio vfio_iommu_type1 vfio_pci tun overlay af_packet"
if grep -qw svm /proc/cpuinfo; then BOOT_MODS="kvm_amd $BOOT_MODS";
elif grep -qw vmx /proc/cpuinfo; then BOOT_MODS="kvm_intel $BOOT_MODS"; fi
for m in $BOOT_MODS; do modprobe $m || log "modprobe $m failed"; done
[ -e /dev/kvm ] && chmod 666 /dev/kvm
log "modules loaded; /dev/kvm: $(ls -l /dev/kvm 2>&1)"
if [ "$(arg usr)" = 1 ]; then
    if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro \
        hostusr /usr; then
        # merged-usr like the host: /etc/alternatives etc. point into /bin
        mv /bin /nk/bb; ln -s usr/bin /bin; rm -rf /sbin; ln -s usr/sbin /sbin
        [ -x /bin/sh ] || { rm /bin; mv /nk/bb /bin; }   # no host shell: undo
    else log "mount host /usr failed"; fi
fi
# /tmp: ext4 (host mkfs.ext4; else busybox's ext2) on the scratch disk, the
# virtio disk with serial nk-scratch, if there is one; else tmpfs
SCR=$(grep -l '^nk-scratch$' /sys/block/*/serial 2>/dev/null | head -1 | cut -d/ -f4)
if [ -n "$SCR" ] && { modprobe crc32c_generic || :; } && modprobe ext4 &&
   { if [ -x /usr/sbin/mkfs.ext4 ]; then /usr/sbin/mkfs.ext4 -q -F -O ^has_journal /dev/$SCR
     else /nk/busybox mke2fs -F /dev/$SCR >/dev/null; fi; } &&
   /nk/busybox mount -o noatime /dev/$SCR /tmp; then chmod 1777 /tmp
else /nk/busybox mount -t tmpfs -o mode=1777 tmpfs /tmp; fi
cd /
if [ "$(arg share)" = 1 ]; then
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap,access=any \
        share /share && cd /share || log "mount /share failed"
fi
if [ "$(arg shell)" = 1 ]; then
    log "interactive shell (exit or poweroff -f to stop L1)"
    SH="/nk/busybox sh"; [ -x /usr/bin/bash ] && SH=/usr/bin/bash
    /nk/busybox setsid /nk/busybox cttyhack $SH -l
else
    /nk/busybox stty -F /dev/ttyS1 raw -echo 2>/dev/null
    SH="/nk/busybox sh"; [ -x /usr/bin/bash ] && SH=/usr/bin/bash
    log "running command"
    $SH /etc/nk/cmd.sh > /dev/ttyS1 2>&1 < /dev/null
    rc=$?
    log "command exited with status $rc"
    echo "@@NK_RC=$rc" > /dev/ttyS1
fi
cd /; sync
/nk/busybox umount /share 2>/dev/null
/nk/busybox poweroff -f
EOF
    chmod 755 "$r/init"
    ( cd "$r" && find . | sort | "$bb" cpio -o -H newc 2>/dev/null ) > "$b/initrd.cpio"
    echo "$kver" > "$b/kver"; cp "$bb" "$b/busybox"   # busybox cpio for per-run archives
    rm -rf "$WORK/kernel"; mv "$b" "$WORK/kernel"
    rm -rf "$WORK/kernel/pkg"          # keep vmlinuz, cpio, busybox (+ root/)
    say "built $WORK/kernel/{vmlinuz,initrd.cpio} (kernel $kver)"
}

if [ "$REBUILD" = 1 ] || [ ! -s "$WORK/kernel/initrd.cpio" ] ||
   [ ! -s "$WORK/kernel/vmlinuz" ] || [ "$WORK/kernel/initrd.cpio" -ot "$0" ]; then
    t0=$(date +%s); build; say "build took $(( $(date +%s) - t0 ))s"
fi
exec 9>&-                       # the cache is ready: release the lock
[ "$BUILD_ONLY" = 1 ] && exit 0

# ------------------------------------------------------------------ run ----
# Per-run initramfs: the cached one plus an appended cpio with the command and
# the host's current ld.so.cache (the kernel unpacks concatenated archives).
mkdir -p "$WORK/runs"
RUN=$(mktemp -d "$WORK/runs/run.XXXXXX"); mkdir -p "$RUN/root/etc/nk"
printf '%s\n' "$CMD" > "$RUN/root/etc/nk/cmd.sh"
[ -r /etc/ld.so.cache ] && cp /etc/ld.so.cache "$RUN/root/etc/"
# Debian's alternatives (awk, nc, telnet, editor... are links through them)
[ -d /etc/alternatives ] && cp -a /etc/alternatives "$RUN/root/etc/"
( cd "$RUN/root" && find . | sort | "$WORK/kernel/busybox" cpio -o -H newc 2>/dev/null ) \
    > "$RUN/extra.cpio"
cat "$WORK/kernel/initrd.cpio" "$RUN/extra.cpio" > "$RUN/initrd"

KAPPEND="console=ttyS0 panic=-1 nk.usr=1 quiet loglevel=4"
QARGS=(-accel tcg -cpu "$CPU" -smp "$SMP" -m "$MEM" -nodefaults -display none
       -no-reboot -kernel "$WORK/kernel/vmlinuz" -initrd "$RUN/initrd"
       -virtfs "local,path=/usr,mount_tag=hostusr,security_model=none,readonly=on")
if [ "$IOMMU" = 1 ]; then
    # VT-d with interrupt remapping (VFIO wants IR); caching-mode is harmless
    # for emulated devices.  The NIC's backend is user-mode networking with
    # restrict=on: the NIC exists, nothing it sends can leave this machine.
    QARGS+=(-machine q35,kernel-irqchip=split
            -device intel-iommu,intremap=on,caching-mode=on
            -netdev hubport,id=n0,hubid=0 -device "$NIC,netdev=n0"
            -netdev hubport,id=n1,hubid=0 -device "$NIC,netdev=n1")
    KAPPEND="$KAPPEND intel_iommu=on iommu=pt"
else
    QARGS+=(-machine q35)
fi
if [ -n "$SHARE" ]; then
    QARGS+=(-virtfs "local,path=$SHARE,mount_tag=share,security_model=none")
    KAPPEND="$KAPPEND nk.share=1"
fi
if [ "$SCRATCH" != 0 ]; then
    rm -f "$RUN/scratch.img"; truncate -s "$SCRATCH" "$RUN/scratch.img"
    QARGS+=(-drive "file=$RUN/scratch.img,if=none,id=nkscratch,format=raw,cache=unsafe"
            -device virtio-blk-pci,drive=nkscratch,serial=nk-scratch)
fi
QARGS+=(${EXTRA[@]+"${EXTRA[@]}"})
if [ "$SHELL_MODE" = 1 ]; then
    KAPPEND="$KAPPEND nk.shell=1"
    say "interactive L1 shell; Ctrl-A X quits QEMU"
    exec "$QEMU" "${QARGS[@]}" -append "$KAPPEND $APPEND" -serial mon:stdio
fi

: > "$RUN/console.log"; : > "$RUN/out.log"
QARGS+=(-serial "file:$RUN/console.log" -serial "file:$RUN/out.log")
say "booting L1 ($CPU, smp $SMP, $MEM$([ "$IOMMU" = 1 ] && echo ', iommu+nic')); L1 kernel log: $RUN/console.log"
t0=$(date +%s.%N)
timeout -k 10 "$TIMEOUT" "$QEMU" "${QARGS[@]}" -append "$KAPPEND $APPEND" \
    > "$RUN/qemu.log" 2>&1 &
QPID=$!
# Ctrl-C / kill of this script must not leave L1 running (background jobs of a
# non-interactive shell ignore SIGINT): stop it through timeout, by PID
trap 'kill $QPID 2>/dev/null; wait $QPID 2>/dev/null; exit 130' INT TERM HUP
# stream the command's output (ttyS1) while L1 runs, minus the status line
tail -n +1 -s 0.2 -f --pid=$QPID "$RUN/out.log" |
    sed -u -e '/^@@NK_RC=[0-9]*$/d' -e 's/@@NK_RC=[0-9]*$//' || true
set +e; wait $QPID; qrc=$?; set -e
trap - INT TERM HUP
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
rc=$(tr -d '\r' < "$RUN/out.log" | sed -n 's/.*@@NK_RC=\([0-9]*\)$/\1/p' | tail -1)
if [ -z "$rc" ]; then
    [ "$qrc" = 124 ] && { say "TIMEOUT after ${TIMEOUT}s"; rc=124; } || rc=125
    say "no exit status from L1 (qemu rc=$qrc); last L1 console lines:"
    tail -n 25 "$RUN/console.log" | tr -d '\r' | sed 's/^/  | /' >&2
    cat "$RUN/qemu.log" >&2
fi
rm -rf "$RUN/scratch.img" "$RUN/initrd" "$RUN/extra.cpio" "$RUN/root"
say "L1 wall time ${secs}s; command status $rc (logs: $RUN)"
exit "$rc"
