#!/bin/sh
# Regenerates the seed corpus in tests/fuzz/corpus-qcow2/ with Debian's
# qemu-img and qemu-io (qemu-utils): small valid images of every kind the
# driver reads, plus a few deliberately broken ones.  Keep it under 200 KiB.
set -e
out=$(cd "$(dirname "$0")" && pwd)/corpus-qcow2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
mkdir -p "$out"
q() { qemu-img create -q -f qcow2 -o "cluster_size=512,$1" "$2" "${3:-256K}"; }
io() { img=$1; shift; for c in "$@"; do qemu-io -f qcow2 -c "$c" "$img" >/dev/null; done; }

q compat=1.1 v3-data.qcow2
io v3-data.qcow2 "write -P 0xaa 0 4k" "write -P 0x55 100k 3k" "write -z 8k 2k"
q compat=0.10 v2-data.qcow2
io v2-data.qcow2 "write -P 0xaa 0 4k" "write -P 0x55 100k 3k"
q compat=1.1,refcount_bits=1 rc1.qcow2
io rc1.qcow2 "write -P 1 1k 9k"
q compat=1.1,refcount_bits=64 rc64.qcow2
io rc64.qcow2 "write -P 2 0 12k"
q compat=1.1,preallocation=metadata prealloc.qcow2 8K
q compat=1.1 base.qcow2
q compat=1.1 backing.qcow2
qemu-img rebase -q -u -b base.qcow2 -F qcow2 backing.qcow2
io backing.qcow2 "write -P 3 1000 2000"
q compat=1.1 snap.qcow2
io snap.qcow2 "write -P 4 0 8k"
qemu-img snapshot -c s1 snap.qcow2
io snap.qcow2 "write -P 5 1k 2k"
python3 -c "import sys; sys.stdout.buffer.write(b''.join(b'line %06d ' % i for i in range(6554)))" > text.raw
truncate -s 64K text.raw
qemu-img convert -q -c -O qcow2 -o cluster_size=512 text.raw compressed.qcow2
qemu-img convert -q -c -O qcow2 -o cluster_size=512,compat=0.10 text.raw compressed-v2.qcow2
cp v3-data.qcow2 "$out/"; cp v2-data.qcow2 rc1.qcow2 rc64.qcow2 prealloc.qcow2 "$out/"
cp backing.qcow2 snap.qcow2 compressed.qcow2 compressed-v2.qcow2 "$out/"

# Broken ones: poke one header field of a valid image.
poke() { # name offset hexbytes: the first 4 KiB (header and tables) will do
    head -c 4096 v3-data.qcow2 > "$out/$1"
    printf "$3" | dd of="$out/$1" bs=1 seek="$2" conv=notrunc status=none
}
poke bad-magic.qcow2 0 'QFI\376'
poke bad-version.qcow2 4 '\0\0\0\4'
poke bad-cluster-bits.qcow2 20 '\0\0\0\36'
poke unknown-feature.qcow2 72 '\0\0\0\0\0\0\1\0'
poke dirty.qcow2 72 '\0\0\0\0\0\0\0\1'
poke l1-past-end.qcow2 40 '\0\0\0\1\0\0\0\0'
poke reftable-unaligned.qcow2 48 '\0\0\0\0\0\0\2\10'
poke l1-huge.qcow2 36 '\0\100\0\0'
# Two images in one input (fuzz-qcow2.c): a top whose backing file is
# base.qcow2, with the base holding data of its own; and a chain header
# whose top length runs past the input.
q compat=1.1 base-data.qcow2
io base-data.qcow2 "write -P 7 0 8k" "write -P 9 200k 4k"
chain() { # name top base [length]
    python3 - "$out/$1" "$2" "$3" "${4:-}" <<'PY'
import struct, sys
top = open(sys.argv[2], "rb").read()
base = open(sys.argv[3], "rb").read() if sys.argv[3] != "-" else b""
n = int(sys.argv[4]) if sys.argv[4] else len(top)
open(sys.argv[1], "wb").write(b"QCOW2CHAIN\n" + struct.pack("<I", n) + top + base)
PY
}
chain chain-backing.qcow2 backing.qcow2 base-data.qcow2
chain chain-truncated.qcow2 backing.qcow2 - 1005120
# Inputs that crashed the fuzzer once (regress-*) are kept in the directory.
ls -l "$out"
