# dmesg: the kernel log's records at level dv.dmesg_level (default 4, warn)
# or more urgent, and the kernel's "Memory: ..." record, one line each as
# "linux: kmsg L TEXT" (L: the record's level, 0 emerg .. 7 debug), between
# "linux: dmesg begin records=N" (N: records in the whole log) and
# "linux: dmesg end".  Only a part of the log: each character on the
# serial port is a VM exit, slow when nested.
. /etc/dv/lib.sh
max=$(arg dmesg_level 4)
dmesg -r > /tmp/kmsg || exit 1
say "dmesg begin records=$(grep -c '^<' /tmp/kmsg)"
# "<P>[   T] text": P = facility * 8 + level; the time stamp is dropped
sed -n 's/^<\([0-9]*\)>\(\[[ 0-9.]*\] \)\{0,1\}\(.*\)$/\1 \3/p' /tmp/kmsg |
    while read -r p text; do
        l=$((p % 8))
        case "$text" in Memory:*) ;; *) [ $l -le $max ] || continue ;; esac
        echo "linux: kmsg $l $text"
    done
say "dmesg end"
