#!/bin/bash
# rig.sh -- the project's nested-KVM rig: run one command where /dev/kvm is
# real, on a machine whose own /dev/kvm is missing or PVM.  tests/rig/README.md
# tells why, what L1 holds, the timings and the limits.
#
# Debian's qemu-system-x86_64 emulates (TCG, -cpu max: AMD SVM with nested
# paging) an "L1" machine that boots Debian's stock kernel with kvm_amd, so
# /dev/kvm works in L1 and a VMM there runs L2 guests.  L1 is built from
# Debian packages only (linux-image-amd64 and busybox-static, fetched with
# `apt-get download` into build/rig/debs, unpacked into build/rig/kernel,
# never installed); the host's /dev/kvm is never used.
#
# Usage:
#   rig.sh [options] -- 'shell command'
#   rig.sh [options] --shell | --build-only
#
# The command runs as root under bash in L1, in /share when --share is given,
# with DV_RIG=1 exported and stdin /dev/null; its stdout and stderr stream to
# this stdout and its exit status is this script's.  Rig failures: 124 (the
# --timeout ran out, or L1 wedged: no heartbeat for --wedge seconds), 125 (L1 did not boot or died: a one-line message names
# the log), 128+N when this script got signal N (L1 is stopped).
#
# Options:
#   --share DIR        share DIR read-write at /share (9p); the command's cwd
#   --forward-tcp PORT forward the host's 127.0.0.1:PORT to L1's 127.0.0.1:PORT
#                      (repeatable)
#   --forward-unix PATH  forward a unix socket PATH on the host to PATH in L1
#                      (repeatable); removed when the rig ends
#                      A forward's client is closed at once while L1 boots;
#                      once L1 is up, it waits up to 5 s for L1's end to listen.
#   --iommu            q35 + intel-iommu (intremap, caching-mode) and two e1000e
#                      NICs joined only to each other, each alone behind a PCIe
#                      root port (reset by a secondary bus reset); L1 boots with
#                      intel_iommu=on iommu=pt; rig-vfio-bind binds the NICs
#   --nic MODEL        NIC model for --iommu (default e1000e; QEMU 7.2 has no igb)
#   --cpu MODEL        L1 CPU model (default max; e.g. EPYC,+svm,+npt)
#   --smp N            L1 vCPUs (default: the host's CPUs)
#   --tcg-thread MODE  multi: one host thread per L1 vCPU (MTTCG); single: all
#                      L1 vCPUs take turns on one host thread (default: multi,
#                      or $RIG_TCG_THREAD)
#   --mem SIZE         L1 memory (default 4G)
#   --append WORDS     extra L1 kernel command-line words (e.g. loglevel=7)
#   --qemu-arg ARG     extra argument for the L1 QEMU (repeatable)
#   --timeout SEC      stop L1 after SEC seconds, exit 124 (default 1800; 0: none)
#   --wedge SEC        stop L1 once its heartbeat (a line on its ttyS2 every
#                      10 s from early in l1-init) has been missing for SEC
#                      seconds, exit 124 (default 180; 0: never)
#   --scratch SIZE     sparse scratch disk holding L1's /tmp as ext4 (default
#                      16G; 0: /tmp on tmpfs); empty on every run
#   --shell            an interactive L1 shell on this terminal (Ctrl-A x quits)
#   --build-only       build the kernel cache and stop;  --rebuild: force it
#   --work DIR         cache and logs (default build/rig, or $RIG_WORK)
#   -q                 no progress messages (errors are still printed)
#   RIG_QEMU=PATH      the emulator for L1 (default qemu-system-x86_64)
#
# Inside L1: host /usr read-only (9p; every host binary and library), /share,
# /tmp on ext4, /dev/kvm (mode 666), /dev/vfio/vfio, modprobe for the modules
# in MODULES below, rig-vfio-bind [BDF|VENDOR:DEVICE ...] (alias nk-vfio-bind)
# printing "BDF /dev/vfio/GROUP" per device bound to vfio-pci.
#
# Files: build/rig/kernel/{vmlinuz,vmlinux,busybox,kver,initrd.cpio} and
# root/lib/modules/<kver>/ (built under a lock, rebuilt when the recipe
# changes; L1 boots vmlinux, the ELF inside vmlinuz, through its PVH entry);
# each run in build/rig/runs/run.XXXXXX (console.log: L1's kernel log,
# out.log: the command's output, qemu.log), the newest 10 kept.
#
# Examples:
#   rig.sh -- 'ls -l /dev/kvm; dmesg | grep -i svm'
#   rig.sh --share . -- './build/qemu-system-x86_64 -enable-kvm -smp 2 -m 128M
#       -kernel build/tests/guest/testos -append testos.run=smp -nographic -no-reboot'
#   rig.sh --iommu -- 'rig-vfio-bind && qemu-system-x86_64 -enable-kvm ...'
#
# Needs root, qemu-system-x86, apt-get and dpkg-deb (first build only), xz-utils
# and binutils (readelf) for the PVH kernel (else L1 boots vmlinuz, slower),
# util-linux (flock), coreutils; socat for the forwards (host and L1 use it).
set -euo pipefail

RIG_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$RIG_DIR/../.." && pwd)
WORK=${RIG_WORK:-$ROOT/build/rig}
QEMU=${RIG_QEMU:-qemu-system-x86_64}
KEEP_RUNS=10
# L1's end of the forwards: slirp's network, L1's address on it and the MAC
# its init finds the NIC by (tests/rig/l1-init); 198.18.0.0/15 is reserved
# for tests, and restrict=on keeps L1 off every network but these forwards.
FWD_NET=198.19.255.0/24 FWD_ADDR=198.19.255.15 FWD_MAC=52:54:00:52:49:47

# Modules packed into the initramfs with their dependencies (l1-init loads
# the KVM and device ones; the NIC drivers stay unloaded so the --iommu NICs
# are free for vfio-pci: modprobe e1000e to use them in L1).  button and
# evdev are for the Linux test guest (tests/guest/linux), whose initramfs
# takes its modules from this cache: the ACPI power button as an input device.
MODULES="kvm kvm_amd kvm_intel vfio vfio_iommu_type1 vfio_pci virtio_pci
virtio_blk virtio_net virtio_console 9p 9pnet_virtio e1000 e1000e igb
overlay tun vhost_net loop ext4 crc32c_generic crc32c_intel af_packet
bonding net_failover failover bridge veth button evdev"

SHARE="" IOMMU=0 NIC=e1000e CPU=max SMP=$(nproc) MEM=4G APPEND="" TIMEOUT=1800 WEDGE=180
TCG_THREAD=${RIG_TCG_THREAD:-multi}
SCRATCH=16G SHELL_MODE=0 BUILD_ONLY=0 REBUILD=0 QUIET=0 CMD=""
QEMU_EXTRA=() FWD_TCP=() FWD_UNIX=()

die() { echo "rig: $*" >&2; exit 125; }
say() { [ "$QUIET" = 1 ] || echo "rig: $*" >&2; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
        --share) SHARE=$(realpath "$2"); shift 2 ;;
        --forward-tcp)
            [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 65535 ] ||
                die "--forward-tcp $2: not a port number"
            FWD_TCP+=("$2"); shift 2 ;;
        --forward-unix)
            [[ "$2" =~ ^/[A-Za-z0-9_./+-]+$ ]] ||
                die "--forward-unix $2: give an absolute path of [A-Za-z0-9_./+-]"
            FWD_UNIX+=("$2"); shift 2 ;;
        --iommu) IOMMU=1; shift ;;
        --nic) NIC=$2; shift 2 ;;
        --cpu) CPU=$2; shift 2 ;;
        --smp) SMP=$2; shift 2 ;;
        --tcg-thread) TCG_THREAD=$2; shift 2 ;;
        --mem) MEM=$2; shift 2 ;;
        --append) APPEND="$APPEND $2"; shift 2 ;;
        --qemu-arg) QEMU_EXTRA+=("$2"); shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --wedge) WEDGE=$2; shift 2 ;;
        --scratch) SCRATCH=$2; shift 2 ;;
        --shell) SHELL_MODE=1; shift ;;
        --build-only) BUILD_ONLY=1; shift ;;
        --rebuild) REBUILD=1; shift ;;
        --work) WORK=$2; shift 2 ;;
        -q) QUIET=1; shift ;;
        --) shift; CMD="$*"; break ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
        esac
    done
    [ -n "$CMD" ] || [ "$SHELL_MODE" = 1 ] || [ "$BUILD_ONLY" = 1 ] ||
        die "no command: give -- 'command', --shell or --build-only"
    [[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout $TIMEOUT: not a number of seconds"
    [[ "$WEDGE" =~ ^[0-9]+$ ]] || die "--wedge $WEDGE: not a number of seconds"
    case "$TCG_THREAD" in single|multi) ;; *) die "--tcg-thread $TCG_THREAD: single or multi" ;; esac
    [ -z "$SHARE" ] || [ -d "$SHARE" ] || die "--share $SHARE: not a directory"
    case "$SHARE" in *,*) die "--share: the path must not hold a comma" ;; esac
    if [ "$SHELL_MODE" = 1 ] && [ ${#FWD_UNIX[@]} -gt 0 ]; then
        die "--forward-unix does not go with --shell"
    fi
    command -v "$QEMU" > /dev/null || die "$QEMU not found (apt-get install qemu-system-x86)"
    if [ $((${#FWD_TCP[@]} + ${#FWD_UNIX[@]})) -gt 0 ]; then
        [ -x /usr/bin/socat ] || die "forwarding needs /usr/bin/socat (apt-get install socat)"
    fi
}

# ---------------------------------------------------------------- build ----
# The cache: the kernel, busybox and the module closure of $MODULES in a
# cpio archive.  What changes often (init, helpers, /etc, the command) goes
# in each run's own archive instead, so editing those rebuilds nothing.

# Prints the Debian package name of the kernel linux-image-amd64 depends on.
kernel_package() {
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2> /dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
    if [ -z "$pkg" ]; then                  # no apt lists yet
        apt-get update -qq > /dev/null 2>&1 || true
        pkg=$(apt-cache depends linux-image-amd64 2> /dev/null |
            sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
    fi
    if [ -z "$pkg" ]; then                  # offline: a cached .deb
        pkg=$(ls "$WORK"/debs/linux-image-[0-9]*.deb 2> /dev/null | head -1 |
            sed 's|.*/||; s|_.*||')
    fi
    [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
    echo "$pkg"
}

# Copies the modules $MODULES and their dependencies (modinfo "depends=")
# from the unpacked package tree $1 to the initramfs tree $2, runs depmod.
copy_modules() {
    local src=$1/lib/modules/$KVER dst=$2/lib/modules/$KVER
    local -A path=() seen=()
    local file name m dep todo=()
    mkdir -p "$dst"
    cp "$src"/modules.builtin* "$src"/modules.order "$dst"/
    while read -r file; do
        name=${file##*/}; name=${name%.ko}; path[${name//-/_}]=$file
    done < <(cd "$src" && find kernel -name '*.ko')
    for m in $MODULES; do todo+=("${m//-/_}"); done
    while [ ${#todo[@]} -gt 0 ]; do
        m=${todo[0]}; todo=("${todo[@]:1}")
        [ -z "${seen[$m]:-}" ] || continue
        seen[$m]=1
        if [ -z "${path[$m]:-}" ]; then     # built in, or absent
            grep -q "/${m//_/[-_]}\.ko$" "$src/modules.builtin" ||
                say "warning: module $m not found"
            continue
        fi
        mkdir -p "$dst/$(dirname "${path[$m]}")"
        cp "$src/${path[$m]}" "$dst/${path[$m]}"
        for dep in $(tr '\0' '\n' < "$src/${path[$m]}" |
            sed -n 's/^depends=//p' | head -1 | tr ',' ' '); do
            todo+=("${dep//-/_}")
        done
    done
    "$2/rig/busybox" depmod -b "$2" "$KVER"
}

# Writes to $2 the ELF kernel inside the compressed bzImage $1, if it has a
# PVH entry (XEN_ELFNOTE_PHYS32_ENTRY, note type 0x12): QEMU boots that
# directly, which spares L1 the decompression (seconds under TCG).
extract_vmlinux() {
    local magic tool offset
    for magic in '\xfd7zXZ\x00:xz -dc' '\x28\xb5\x2f\xfd:zstd -dcq' '\x1f\x8b\x08:gzip -dc'; do
        tool=${magic#*:}
        command -v "${tool%% *}" > /dev/null || continue
        for offset in $(LC_ALL=C grep -obUaP "${magic%%:*}" "$1" | head -n 3 | cut -d: -f1); do
            tail -c +$((offset + 1)) "$1" | $tool > "$2" 2> /dev/null || true
            if readelf -n "$2" 2> /dev/null | grep -q '(0x00000012)'; then
                return 0
            fi
        done
    done
    rm -f "$2"
    return 1
}

build() {
    local new=$WORK/kernel.new kpkg deb
    rm -rf "$new"
    mkdir -p "$WORK/debs" "$new/pkg" "$new/root"
    kpkg=$(kernel_package)
    if ! ls "$WORK/debs/${kpkg}_"*.deb "$WORK/debs/busybox-static_"*.deb > /dev/null 2>&1; then
        say "downloading $kpkg and busybox-static (apt-get download; nothing is installed)"
        rm -f "$WORK"/debs/*.deb
        (cd "$WORK/debs" && apt-get -q -o APT::Sandbox::User=root download \
            "$kpkg" busybox-static > /dev/null) || die "apt-get download failed"
    fi
    for deb in "$WORK/debs/${kpkg}_"*.deb "$WORK/debs/busybox-static_"*.deb; do
        dpkg-deb -x "$deb" "$new/pkg"
    done
    KVER=$(ls "$new/pkg/lib/modules" | head -1)
    cp "$new/pkg/boot/vmlinuz-$KVER" "$new/vmlinuz"
    extract_vmlinux "$new/vmlinuz" "$new/vmlinux" ||
        say "no PVH kernel in vmlinuz (readelf missing?): L1 boots the compressed one"
    cp "$new/pkg/bin/busybox" "$new/busybox"
    echo "$KVER" > "$new/kver"

    # busybox at /rig/busybox with its applets in /bin (l1-init makes /bin
    # the host's usr/bin once /usr is mounted, and keeps these in /rig/bb);
    # /rig/bin, first in PATH, holds the applets that must win over the
    # host's (its poweroff is systemd's, its kmod wants modules.dep.bin)
    local r=$new/root a
    mkdir -p "$r"/{bin,sbin,dev,proc,sys,tmp,run,etc,usr,share,mnt,root,var/tmp,rig/bin,lib}
    cp "$new/busybox" "$r/rig/busybox"
    for a in $("$r/rig/busybox" --list); do ln -s /rig/busybox "$r/bin/$a"; done
    for a in modprobe insmod rmmod lsmod depmod modinfo poweroff reboot halt; do
        ln -s /rig/busybox "$r/rig/bin/$a"
    done
    # the host's libraries come with /usr (merged-usr): ld.so finds them
    # through these links; /lib stays a real directory for /lib/modules
    ln -s usr/lib64 "$r/lib64"
    ln -s ../usr/lib/x86_64-linux-gnu "$r/lib/x86_64-linux-gnu"
    copy_modules "$new/pkg" "$r"

    (cd "$r" && find . | sort | "$new/busybox" cpio -o -H newc 2> /dev/null) > "$new/initrd.cpio"
    rm -rf "$new/pkg"
    build_stamp > "$new/stamp"
    rm -rf "$WORK/kernel"
    mv "$new" "$WORK/kernel"
    say "built $WORK/kernel (kernel $KVER)"
}

# What the cache was built from: a change to the recipe rebuilds it.
build_stamp() {
    { declare -f build copy_modules extract_vmlinux; echo "$MODULES"; } | sha256sum | cut -c1-16
}

cache_ready() {
    local k=$WORK/kernel
    [ -s "$k/vmlinuz" ] && [ -s "$k/initrd.cpio" ] && [ -x "$k/busybox" ] &&
        [ "$(cat "$k/stamp" 2> /dev/null)" = "$(build_stamp)" ]
}

# ------------------------------------------------------------- one run ----

# Removes old run directories beyond the newest $KEEP_RUNS; one whose lock
# is held belongs to a rig still running and stays, and so does one without
# a lock file (an older rig.sh's) that changed in the last hour.
prune_runs() {
    local dir old
    old=$(ls -1dt "$WORK"/runs/run.* 2> /dev/null | tail -n +$((KEEP_RUNS + 1)) || true)
    for dir in $old; do
        if [ ! -e "$dir/lock" ] && [ -n "$(find "$dir" -mmin -60 | head -1)" ]; then
            continue
        fi
        flock -n "$dir/lock" rm -rf "$dir" 2> /dev/null || true
    done
}

# Prints a TCP port nothing on this host listens on or uses, below the
# ephemeral range; for the host end of a forwarded unix socket.
free_port() {
    local used p addr
    used=" $(tail -q -n +2 /proc/net/tcp /proc/net/tcp6 2> /dev/null |
        while read -r _ addr _; do echo $((16#${addr##*:})); done | tr '\n' ' ') "
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 12000))
        case "$used" in *" $p "*) continue ;; esac
        echo "$p"
        return
    done
    die "no free TCP port found for a forward"
}

# Fills $RUN/root with this run's part of the initramfs: /init, the helpers,
# /etc, the command and the forwards; appends it to the cached archive.
make_run_initrd() {
    local r=$RUN/root
    mkdir -p "$r/etc/rig" "$r/rig/bin"
    install -m 755 "$RIG_DIR/l1-init" "$r/init"
    install -m 755 "$RIG_DIR/rig-vfio-bind" "$r/rig/bin/rig-vfio-bind"
    ln -s rig-vfio-bind "$r/rig/bin/nk-vfio-bind"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$r/etc/passwd"
    printf 'root:x:0:\nkvm:x:104:\n' > "$r/etc/group"
    printf '127.0.0.1 localhost\n::1 localhost\n' > "$r/etc/hosts"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$r/etc/nsswitch.conf"
    echo rig-l1 > "$r/etc/hostname"
    [ ! -r /etc/ld.so.cache ] || cp /etc/ld.so.cache "$r/etc/"
    [ ! -d /etc/alternatives ] || cp -a /etc/alternatives "$r/etc/"
    printf '%s\n' "$CMD" > "$r/etc/rig/cmd.sh"
    cp "$RUN/forwards" "$r/etc/rig/forwards"
    (cd "$r" && find . | sort | "$WORK/kernel/busybox" cpio -o -H newc 2> /dev/null) \
        > "$RUN/run.cpio"
    cat "$WORK/kernel/initrd.cpio" "$RUN/run.cpio" > "$RUN/initrd"
    # a link: a rebuild of the cache leaves this run's kernel alone
    if [ -e "$WORK/kernel/vmlinux" ]; then
        ln "$WORK/kernel/vmlinux" "$RUN/kernel"
    else
        ln "$WORK/kernel/vmlinuz" "$RUN/kernel"
    fi
    rm -rf "$r" "$RUN/run.cpio"
}

# Sets QARGS and KAPPEND for L1; writes $RUN/forwards for l1-init.
make_qemu_args() {
    local i fwd="" gport hport
    # clocksource=acpi_pm: L1's TSCs fail the kernel's sync check under
    # TCG, so it would read the HPET, whose reader lock (read_hpet) once
    # held an L1 CPU spinning with interrupts off for good (a wedge,
    # tests/rig/README.md, Stability); the PM timer's read takes no lock.
    # nohz=off: an idle L1 CPU still takes its 250 Hz tick, so an IPI that
    # TCG latched without waking the CPU from HLT is taken within 4 ms (an
    # L1 wedged with CPU 0 halted and CPU 1 waiting for it to answer a TLB
    # shootdown, khugepaged's, for minutes: tests/rig/README.md, Stability)
    KAPPEND="console=ttyS0 panic=-1 rig.usr=1 quiet loglevel=4 clocksource=acpi_pm nohz=off"
    QARGS=(-accel "tcg,thread=$TCG_THREAD" -cpu "$CPU" -smp "$SMP" -m "$MEM" -nodefaults -display none
        -no-reboot -kernel "$RUN/kernel" -initrd "$RUN/initrd"
        -virtfs "local,path=/usr,mount_tag=hostusr,security_model=none,readonly=on")
    if [ "$IOMMU" = 1 ]; then
        # VT-d with interrupt remapping (VFIO wants it).  The two NICs are the
        # only ports of hub 0: a frame one sends reaches the other and
        # nothing else, so no traffic leaves L1.  Each sits alone behind a
        # PCIe root port, so that L1 can reset it by a secondary bus reset
        # (l1-init makes that its reset_method): QEMU 7.2's e1000e has no
        # FLR and ignores the PM D3hot-D0 cycle the kernel would use instead,
        # so vfio-pci's reset on open and close, and VFIO_DEVICE_RESET, would
        # leave it as the last user left it, receive ring and interrupt
        # set-up included (its DMA then lands in the next guest's RAM).  The
        # ports' link is 2.5 GT/s x1, as the 82574's own: after a bus reset
        # of a faster port the kernel waits for Data Link Layer Link Active,
        # which QEMU 7.2's port did not set within the kernel's 1 s, and
        # calls the reset failed (vfio-pci then offers no VFIO_DEVICE_RESET).
        QARGS+=(-machine q35,kernel-irqchip=split
            -device intel-iommu,intremap=on,caching-mode=on
            -device pcie-root-port,id=rigport0,chassis=1,x-speed=2_5,x-width=1
            -netdev hubport,id=rignic0,hubid=0 -device "$NIC,netdev=rignic0,bus=rigport0"
            -device pcie-root-port,id=rigport1,chassis=2,x-speed=2_5,x-width=1
            -netdev hubport,id=rignic1,hubid=0 -device "$NIC,netdev=rignic1,bus=rigport1")
        # no_timer_check: with interrupt remapping the kernel panics ("timer
        # doesn't work through Interrupt-remapped IO-APIC") when its boot
        # check of the IO-APIC timer sees no tick in time, which a TCG L1
        # on two loaded host cores now and then does not deliver (5 of
        # about 25 --iommu boots on 2026-12-06 at load 10-15); the timer
        # itself works, and the kernel uses the LAPIC timer anyway.
        KAPPEND="$KAPPEND intel_iommu=on iommu=pt no_timer_check"
    else
        QARGS+=(-machine q35)
    fi
    : > "$RUN/forwards"
    FWD_UNIX_HOSTPORT=()
    for i in "${!FWD_TCP[@]}"; do
        gport=$((40000 + i))
        fwd="$fwd,hostfwd=tcp:127.0.0.1:${FWD_TCP[i]}-$FWD_ADDR:$gport"
        echo "tcp $gport ${FWD_TCP[i]}" >> "$RUN/forwards"
    done
    for i in "${!FWD_UNIX[@]}"; do
        gport=$((41000 + i)) hport=$(free_port)
        FWD_UNIX_HOSTPORT+=("$hport")
        fwd="$fwd,hostfwd=tcp:127.0.0.1:$hport-$FWD_ADDR:$gport"
        echo "unix $gport ${FWD_UNIX[i]}" >> "$RUN/forwards"
    done
    if [ -n "$fwd" ]; then
        QARGS+=(-netdev "user,id=rigfwd,restrict=on,net=$FWD_NET,ipv6=off$fwd"
            -device "virtio-net-pci,netdev=rigfwd,mac=$FWD_MAC")
    fi
    if [ -n "$SHARE" ]; then
        QARGS+=(-virtfs "local,path=$SHARE,mount_tag=share,security_model=none")
        KAPPEND="$KAPPEND rig.share=1"
        # l1-init writes L1's kallsyms there (wedge_report)
        case "$RUN" in "$SHARE"/*) KAPPEND="$KAPPEND rig.run=${RUN#"$SHARE"/}" ;; esac
    fi
    if [ "$SCRATCH" != 0 ]; then
        truncate -s "$SCRATCH" "$RUN/scratch.img"
        QARGS+=(-drive "file=$RUN/scratch.img,if=none,id=rigscratch,format=raw,cache=unsafe"
            -device virtio-blk-pci,drive=rigscratch,serial=rig-scratch)
    fi
    QARGS+=(${QEMU_EXTRA[@]+"${QEMU_EXTRA[@]}"})
    KAPPEND="$KAPPEND $APPEND"
}

# The host's ends of the forwarded unix sockets: each connection goes to
# the slirp port forwarded to L1's relay (l1-init).  socat -t: the time a
# half-closed connection waits for the other way (`nc -N`: the reply).
serve_unix_forwards() {
    local i
    for i in "${!FWD_UNIX[@]}"; do
        socat -t 60 UNIX-LISTEN:"${FWD_UNIX[i]}",fork,unlink-early \
            TCP:127.0.0.1:"${FWD_UNIX_HOSTPORT[i]}",retry=100,interval=0.1 \
            < /dev/null >> "$RUN/socat.log" 2>&1 &
        echo $! >> "$RUN/helpers"
    done
}

# L1's heartbeat (l1-init writes its uptime to ttyS2 every 10 s, from just
# after its pseudo file systems are mounted): once it has started, WEDGE
# seconds without a beat mean L1's CPUs no longer run its tasks (seen under
# TCG's SVM emulation: soft lockups, a VMM SIGKILL cannot end); stop L1
# rather than wait for --timeout.
watch_heartbeat() {
    local size last=-1 since=$SECONDS
    while kill -0 "$QPID" 2> /dev/null; do
        sleep 5
        size=$(stat -c %s "$RUN/heartbeat.log" 2> /dev/null || echo 0)
        if [ "$size" != "$last" ]; then
            last=$size since=$SECONDS
        elif [ "$size" -gt 0 ] && [ $((SECONDS - since)) -ge "$WEDGE" ]; then
            wedge_report > "$RUN/wedge.txt" 2>&1
            echo "$((SECONDS - since))" > "$RUN/wedged"
            kill -TERM "$QPID" 2> /dev/null
            sleep 15
            kill -KILL $(ps -o pid= --ppid "$QPID") "$QPID" 2> /dev/null
            return
        fi
    done
}

# Where a wedged L1's CPUs are: QEMU's `info registers -a` three times,
# 2 s apart, through L1's monitor socket (no answer: QEMU itself is stuck),
# each vCPU's RIP named from the kallsyms l1-init wrote into $RUN (with
# --share of a folder that holds $RUN), then the last static branches L1
# patched (l1-init's jump-labels.log).  Written to $RUN/wedge.txt.
wedge_report() {
    python3 - "$RUN/monitor.sock" "$RUN/kallsyms" "$RUN/jump-labels.log" <<'PY'
import bisect, re, socket, sys, time
sock_path, syms_path, jl_path = sys.argv[1:4]
syms = []
try:
    with open(syms_path) as f:
        for line in f:
            addr, _, name = line.split()[:3]
            syms.append((int(addr, 16), name))
except (OSError, ValueError):
    pass
syms.sort()
addrs = [a for a, _ in syms]

def name(rip):
    i = bisect.bisect_right(addrs, rip) - 1
    if i < 0 or rip - addrs[i] > 0x100000:
        return "?"
    return f"{syms[i][1]}+{rip - addrs[i]:#x}"

def hmp(cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock_path)
    buf = b""
    while not buf.endswith(b"(qemu) "):
        buf += s.recv(65536)
    s.sendall(cmd.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"(qemu) "):
        buf += s.recv(65536)
    s.close()
    return buf.decode(errors="replace")

print(f"{len(syms)} L1 code symbols" if syms else "no L1 symbols (rig.sh --share of a folder that holds the run)")
for n in range(3):
    try:
        out = hmp("info registers -a")
    except OSError as e:
        print(f"sample {n + 1}: L1's monitor did not answer ({e}): QEMU itself is stuck")
        break
    rips = re.findall(r"RIP=([0-9a-f]{16})", out)
    flags = re.findall(r"RFL=([0-9a-f]+)", out)
    cpl = re.findall(r"CPL=(\d)", out)
    print(f"sample {n + 1}: " + "; ".join(
        f"CPU {i} RIP {r} {name(int(r, 16))} RFL {f} CPL {c}"
        for i, (r, f, c) in enumerate(zip(rips, flags, cpl))))
    with open(sock_path + f".regs{n + 1}", "w") as f:
        f.write(out)
    # each CPU's local APIC: an interrupt (an IPI) latched in IRR on a
    # CPU that sleeps in HLT is a wake-up TCG lost; none there, a lost IPI
    # (ICR: the last IPI that CPU sent)
    for i in range(len(rips)):
        try:
            lapic = hmp(f"info lapic {i}")
        except OSError:
            break
        regs = {k: v.strip() for k, v in re.findall(r"^(ISR|IRR|ICR)\s+(.*)$", lapic, re.M)}
        print(f"  CPU {i} local APIC: ISR {regs.get('ISR', '?')}; IRR {regs.get('IRR', '?')}; "
              f"ICR {regs.get('ICR', '?')}")
        with open(sock_path + f".lapic{n + 1}", "a") as f:
            f.write(lapic)
    time.sleep(2)
try:
    with open(jl_path, errors="replace") as f:
        patches = re.findall(r"^\s*(\S+)\s.*?\s([\d.]+): rig_jl: .*entry=0x([0-9a-f]+) "
                             r"code=(-?\d+) type=(\d+)", f.read(), re.M)
    print(f"{len(patches)} static branch sites patched since L1 started; the last:")
    for task, t, entry, code, kind in patches[-8:]:
        site = int(entry, 16) + int(code)
        print(f"  {t} s {task}: {name(site)} ({'jump' if kind == '1' else 'nop'})")
except OSError:
    print("no jump-labels.log (l1-init could not set the kprobe)")
PY
}

# Stops L1 and the host-side helpers, removes the forwarded unix sockets.
# Runs on every exit, Ctrl-C and kill included.
cleanup() {
    local pid path
    set +e
    if [ -n "${QPID:-}" ]; then
        kill "$QPID" 2> /dev/null
        wait "$QPID" 2> /dev/null
        QPID=""
    fi
    if [ -n "${RUN:-}" ] && [ -s "$RUN/helpers" ]; then
        for pid in $(cat "$RUN/helpers"); do
            kill $(ps -o pid= --ppid "$pid" 2> /dev/null) "$pid" 2> /dev/null
        done
        : > "$RUN/helpers"
    fi
    for path in "${FWD_UNIX[@]}"; do [ ! -S "$path" ] || rm -f "$path"; done
    [ -z "${RUN:-}" ] || rm -f "$RUN/scratch.img" "$RUN/initrd" "$RUN/kernel"
}

# One line on why no exit status came back from L1.
explain_failure() {
    local qrc=$1 last
    last=$(tr -d '\r' < "$RUN/console.log" | grep -E 'Kernel panic|BUG:|Oops' | head -n 1 || true)
    [ -n "$last" ] ||
        last=$(tr -d '\r' < "$RUN/console.log" | grep -v '^\s*$' | tail -n 1 || true)
    last=${last:0:160}
    if [ ! -s "$RUN/console.log" ] && [ -s "$RUN/qemu.log" ]; then
        echo "rig: L1's QEMU did not start: $(head -n 1 "$RUN/qemu.log") (log: $RUN/qemu.log)" >&2
    elif grep -q 'running the command' "$RUN/console.log"; then
        ! grep -q 'Triple fault' "$RUN/qemu-debug.log" 2> /dev/null ||
            qrc="$qrc, L1 took a triple fault: $RUN/qemu-debug.log"
        echo "rig: L1 stopped before the command ended (QEMU status $qrc; last L1 line: \"$last\"; L1 kernel log: $RUN/console.log)" >&2
    else
        echo "rig: L1 did not boot (QEMU status $qrc; last L1 line: \"$last\"; L1 kernel log: $RUN/console.log)" >&2
    fi
}

main() {
    parse_args "$@"
    mkdir -p "$WORK/runs"
    # The cache is built, and each run's files copied out of it, under one
    # lock; the L1s themselves run in parallel, each in its own directory.
    exec {lock}> "$WORK/.lock"
    flock -w 900 "$lock" || die "another rig.sh has held $WORK/.lock for 15 minutes"
    if [ "$REBUILD" = 1 ] || ! cache_ready; then
        local t0=$SECONDS
        build
        say "build took $((SECONDS - t0)) s"
    fi
    KVER=$(cat "$WORK/kernel/kver")
    if [ "$BUILD_ONLY" = 1 ]; then exit 0; fi
    prune_runs
    RUN=$(mktemp -d "$WORK/runs/run.XXXXXX")
    exec {runlock}> "$RUN/lock"
    flock "$runlock"
    make_qemu_args
    make_run_initrd
    exec {lock}>&-

    if [ "$SHELL_MODE" = 1 ]; then
        say "interactive L1 shell; Ctrl-A x quits"
        exec "$QEMU" "${QARGS[@]}" -append "$KAPPEND rig.shell=1" -serial mon:stdio
    fi

    : > "$RUN/console.log"
    : > "$RUN/out.log"
    : > "$RUN/helpers"
    : > "$RUN/heartbeat.log"
    # cpu_reset: QEMU logs "Triple fault" when L1 takes one (an L1 that
    # dies with nothing in console.log: QEMU status 0 under -no-reboot)
    QARGS+=(-serial "file:$RUN/console.log" -serial "file:$RUN/out.log"
            -serial "file:$RUN/heartbeat.log" -d cpu_reset -D "$RUN/qemu-debug.log"
            -monitor "unix:$RUN/monitor.sock,server,nowait")
    say "booting L1 ($CPU, smp $SMP, tcg $TCG_THREAD, $MEM$([ "$IOMMU" = 0 ] || echo ', iommu + 2 NICs')); logs in $RUN"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    local start=${EPOCHREALTIME/./} timeout=()
    [ "$TIMEOUT" = 0 ] || timeout=(timeout --foreground -k 10 "$TIMEOUT")
    # --foreground keeps L1 in this process group: whoever kills the group
    # kills L1 too
    "${timeout[@]}" "$QEMU" "${QARGS[@]}" -append "$KAPPEND" > "$RUN/qemu.log" 2>&1 &
    QPID=$!
    [ "$WEDGE" = 0 ] || { watch_heartbeat & echo $! >> "$RUN/helpers"; }
    serve_unix_forwards
    # the command's output (L1's ttyS1) as it comes, less the status line
    tail -n +1 -s 0.2 -f --pid="$QPID" "$RUN/out.log" |
        sed -u -e '/^@@RIG_RC=[0-9]*$/d' -e 's/@@RIG_RC=[0-9]*$//' &
    local streamer=$! qrc=0 rc secs
    wait "$QPID" || qrc=$?
    QPID=""
    wait "$streamer" || true
    secs=$(((${EPOCHREALTIME/./} - start) / 100000))
    secs=$((secs / 10)).$((secs % 10))
    rc=$(sed -n 's/.*@@RIG_RC=\([0-9]*\)$/\1/p' "$RUN/out.log" | tail -n 1)
    if [ -z "$rc" ]; then
        if [ -s "$RUN/wedged" ]; then
            echo "rig: L1 wedged: no heartbeat for $(cat "$RUN/wedged") s; L1 stopped (L1 kernel log: $RUN/console.log; its CPUs: $RUN/wedge.txt)" >&2
            grep -m 1 '^sample 1' "$RUN/wedge.txt" 2> /dev/null | sed 's/^/rig: wedged L1, /' >&2
            exit 124
        fi
        if [ "$TIMEOUT" != 0 ] && [ "$qrc" = 124 ]; then
            echo "rig: timed out after $TIMEOUT s; L1 stopped (L1 kernel log: $RUN/console.log)" >&2
            exit 124
        fi
        explain_failure "$qrc"
        exit 125
    fi
    say "L1 ran ${secs} s; the command's exit status: $rc (logs in $RUN)"
    exit "$rc"
}

main "$@"
