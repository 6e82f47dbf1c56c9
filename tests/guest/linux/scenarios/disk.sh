# disk: on every virtio disk (vda, vdb, ...) writes dv.disk_mib MiB (default
# 4) of random data from 1 MiB on with O_DIRECT, syncs, reads it back with
# O_DIRECT, and prints "linux: disk NAME offset=1048576 bytes=B wrote=SHA
# read=SHA" (SHA-256 of the data written and of what came back).
. /etc/dv/lib.sh
mib=$(arg disk_mib 4)
n=0
for dev in /sys/block/vd*; do
    [ -e "$dev" ] || continue
    name=${dev##*/}
    dd if=/dev/urandom of=/tmp/pattern bs=1M count="$mib" 2>/dev/null || exit 1
    wrote=$(sha256sum < /tmp/pattern | cut -d' ' -f1)
    dd if=/tmp/pattern of=/dev/$name bs=1M seek=1 oflag=direct conv=fsync,notrunc \
        2>/dev/null || { fail "disk $name write"; exit 1; }
    sync
    echo 3 > /proc/sys/vm/drop_caches
    read=$(dd if=/dev/$name bs=1M skip=1 count="$mib" iflag=direct 2>/dev/null |
           sha256sum | cut -d' ' -f1)
    say "disk $name offset=1048576 bytes=$((mib << 20)) wrote=$wrote read=$read"
    n=$((n + 1))
    rm -f /tmp/pattern
done
[ $n -gt 0 ] || { fail "disk: no virtio disk"; exit 1; }
