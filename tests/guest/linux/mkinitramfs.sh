#!/bin/bash
# mkinitramfs.sh -- builds the Linux test guest's initramfs (README.md): an
# uncompressed cpio (newc) with busybox, /init, the scenarios, the kernel
# modules it loads at boot (with their dependencies), dv-dirty, and host
# tools copied with the shared libraries ldd names.  The kernel, its modules
# and busybox come from the rig's cache (bash tests/rig/rig.sh --build-only).
#
#   mkinitramfs.sh [--out FILE] [--kernel-dir DIR] [--modules "M ..."]
#                  [--spare-modules "M ..."] [--tools "T ..."] [--cc CC]
#
#   --out        default build/tests/guest/linux/initramfs.cpio
#   --kernel-dir default build/rig/kernel (vmlinuz, kver, busybox,
#                root/lib/modules/KVER)
#   --modules    loaded at boot in this order (default: $DEFAULT_MODULES)
#   --spare-modules  copied with their dependencies but not loaded: a
#                scenario loads them (default: $DEFAULT_SPARE; the button
#                scenario's ACPI power button)
#   --tools      host programs to copy (default: $DEFAULT_TOOLS); one the
#                host lacks is left out with a warning; /etc/dv/tools in the
#                guest lists "NAME PATH" for those copied
#   --cc         compiler for dv-dirty (default gcc; built static, -O2)
set -euo pipefail

DEFAULT_MODULES="virtio_pci virtio_blk virtio_net"
DEFAULT_SPARE="button evdev"
DEFAULT_TOOLS="ip iperf3 ethtool"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=$ROOT/build/tests/guest/linux/initramfs.cpio
KDIR=$ROOT/build/rig/kernel
MODULES=$DEFAULT_MODULES
SPARE=$DEFAULT_SPARE
TOOLS=$DEFAULT_TOOLS
CC=gcc

die() { echo "mkinitramfs: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --kernel-dir) KDIR=$2; shift 2 ;;
        --modules) MODULES=$2; shift 2 ;;
        --spare-modules) SPARE=$2; shift 2 ;;
        --tools) TOOLS=$2; shift 2 ;;
        --cc) CC=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d;s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
for f in vmlinuz kver busybox; do
    [ -s "$KDIR/$f" ] || die "$KDIR/$f missing: run bash tests/rig/rig.sh --build-only"
done
KVER=$(cat "$KDIR/kver")
KMODS=$KDIR/root/lib/modules/$KVER
[ -s "$KMODS/modules.dep" ] || die "$KMODS/modules.dep missing"
BB=$KDIR/busybox
OUTDIR=$(dirname "$OUT")
mkdir -p "$OUTDIR"
R=$(mktemp -d "$OUTDIR/root.XXXXXX")
trap 'rm -rf "$R"' EXIT

# --- busybox: every applet a link in /bin
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,run,root,etc/dv,scenarios,usr/bin,usr/sbin}
cp "$BB" "$R/bin/busybox"
for a in $("$BB" --list); do
    [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"
done

# --- init, the shared shell functions, the scenarios
install -m 755 "$HERE/init" "$R/init"
install -m 644 "$HERE/lib.sh" "$R/etc/dv/lib.sh"
install -m 644 "$HERE"/scenarios/*.sh "$R/scenarios/"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
printf '127.0.0.1 localhost\n' > "$R/etc/hosts"

# --- kernel modules: the closure of $MODULES and $SPARE over modules.dep
dst=$R/lib/modules/$KVER
mkdir -p "$dst"
cp "$KMODS"/modules.builtin* "$KMODS"/modules.order "$dst"/ 2>/dev/null || true
mod_path() {   # module name -> path in modules.dep ('-' and '_' alike)
    local pat=${1//[-_]/[-_]}
    sed -n "s|^\([^:]*/$pat\.ko\):.*|\1|p" "$KMODS/modules.dep" | head -1
}
declare -A seen=()
todo=()
for m in $MODULES $SPARE; do
    p=$(mod_path "$m")
    if [ -z "$p" ]; then
        grep -q "/${m//[-_]/[-_]}\.ko$" "$KMODS/modules.builtin" ||
            die "module $m is neither in $KMODS nor built in (the rig's cache: MODULES in tests/rig/rig.sh)"
        continue
    fi
    todo+=("$p")
done
while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}; todo=("${todo[@]:1}")
    [ -z "${seen[$p]:-}" ] || continue
    seen[$p]=1
    mkdir -p "$dst/$(dirname "$p")"
    cp "$KMODS/$p" "$dst/$p"
    for d in $(sed -n "s|^$p: *||p" "$KMODS/modules.dep"); do todo+=("$d"); done
done
"$BB" depmod -b "$R" "$KVER"
echo "$MODULES" | tr ' ' '\n' | sed '/^$/d' > "$R/etc/dv/modules"

# --- dv-dirty (static: the guest has no C library)
DIRTY=$OUTDIR/dv-dirty
if [ ! -x "$DIRTY" ] || [ "$DIRTY" -ot "$HERE/dirty.c" ]; then
    "$CC" -static -O2 -Wall -Wextra -o "$DIRTY.tmp" "$HERE/dirty.c"
    mv "$DIRTY.tmp" "$DIRTY"
fi
install -m 755 "$DIRTY" "$R/bin/dv-dirty"

# --- host tools with their shared libraries (and the dynamic loader), each
# at its host path.  Busybox's shell runs its own applet before anything in
# PATH (ip is one): call such a tool by the full path /etc/dv/tools gives.
copy_file() {   # host path -> same path in the initramfs, links followed
    mkdir -p "$R$(dirname "$1")"
    [ -e "$R$1" ] || cp -L "$1" "$R$1"
}
: > "$R/etc/dv/tools"
for t in $TOOLS; do
    p=$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v "$t" || true)
    if [ -z "$p" ]; then
        echo "mkinitramfs: warning: host tool $t not found, left out" >&2
        continue
    fi
    copy_file "$p"
    for lib in $(ldd "$p" 2>/dev/null | sed -n 's|.*=> \(/[^ ]*\).*|\1|p; s|^[[:space:]]*\(/[^ ]*\) (.*|\1|p'); do
        copy_file "$lib"
    done
    echo "$t $p" >> "$R/etc/dv/tools"
done

# --- the archive (uncompressed: the kernel unpacks it without a decompressor)
( cd "$R" && find . | sort | "$BB" cpio -o -H newc 2>/dev/null ) > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "mkinitramfs: $OUT ($(( $(stat -c %s "$OUT") / 1024 )) KiB, kernel $KVER," \
     "modules: $MODULES, spare: $SPARE; tools: $(cut -d' ' -f1 "$R/etc/dv/tools" | tr '\n' ' '))" >&2
