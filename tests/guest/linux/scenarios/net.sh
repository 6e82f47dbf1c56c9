# net: the first interface virtio_net drives gets the static address dv.ip
# (default 198.18.0.2/24) and goes up; then, one line each:
#   linux: net dev=DEV driver=virtio_net mac=MAC
#   linux: net features=0101...                 (negotiated, bit 0 first)
#   linux: net up dev=DEV ip=ADDR carrier=0|1   (carrier: after up to 10 s)
#   linux: net offloads on=NAME,NAME,...        (`ethtool -k`'s top-level
#       features that are on, fixed ones included, in its order)
#   linux: net channels max=N combined=M        (`ethtool -l`'s combined
#       channels: the queue pairs offered and in use)
#   linux: net ping peer=IP sent=N received=M   (busybox ping -c 3 dv.peer,
#       default 198.18.0.1)
#   linux: net iperf3 server port=5201          (iperf3 -s -D: the host's
#       iperf3 client measures both ways against it)
# and then waits dv.net_hold seconds (default 0) before init goes on, so a
# test can use the server; with dv.net_queue_stats=1 it prints, every 2 s
# while it waits, the packets each queue moved (`ethtool -S`):
#   linux: net queues rx=N,N,... tx=N,N,...
# No virtio_net interface: a fail line, status 1.
. /etc/dv/lib.sh
ip=$(arg ip 198.18.0.2/24)
peer=$(arg peer 198.18.0.1)
dev=
for d in /sys/class/net/*; do
    drv=$(readlink "$d/device/driver" 2>/dev/null) || continue
    if [ "${drv##*/}" = virtio_net ]; then
        dev=${d##*/}
        break
    fi
done
[ -n "$dev" ] || { fail "net: no virtio_net interface"; exit 1; }
say "net dev=$dev driver=virtio_net mac=$(cat /sys/class/net/$dev/address)"
# the feature bits the driver negotiated, bit 0 first (virtio's sysfs file)
say "net features=$(cat /sys/class/net/$dev/device/features)"
ip addr add "$ip" dev "$dev" || { fail "net: ip addr add $ip"; exit 1; }
ip link set "$dev" up || { fail "net: ip link set $dev up"; exit 1; }
wait_carrier "$dev" 100
say "net up dev=$dev ip=$ip carrier=$(cat /sys/class/net/$dev/carrier 2>/dev/null)"
on=$(/usr/sbin/ethtool -k "$dev" | sed -n 's/^\([a-z0-9-]*\): on.*/\1/p' | tr '\n' ',')
say "net offloads on=${on%,}"
# the Combined lines of ethtool -l: the pre-set maximum, then the current
set -- $(/usr/sbin/ethtool -l "$dev" 2>/dev/null | sed -n 's/^Combined:[^0-9n]*//p')
say "net channels max=${1:-none} combined=${2:-none}"
out=$(ping -c 3 -W 5 "$peer" 2>&1)
sent=$(echo "$out" | sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p')
got=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
say "net ping peer=$peer sent=${sent:-0} received=${got:-0}"
/usr/bin/iperf3 -s -D -p 5201 || { fail "net: iperf3 -s"; exit 1; }
say "net iperf3 server port=5201"
queue_stats() {
    local s rx tx
    s=$(/usr/sbin/ethtool -S "$dev" 2>/dev/null)
    rx=$(echo "$s" | sed -n 's/^ *rx_queue_[0-9]*_packets: //p' | tr '\n' ',')
    tx=$(echo "$s" | sed -n 's/^ *tx_queue_[0-9]*_packets: //p' | tr '\n' ',')
    echo "rx=${rx%,} tx=${tx%,}"
}
hold=$(arg net_hold 0)
if [ "$(arg net_queue_stats 0)" = 1 ]; then
    end=$(($(date +%s) + hold))
    while [ "$(date +%s)" -lt "$end" ]; do
        say "net queues $(queue_stats)"
        sleep 2
    done
elif [ "$hold" != 0 ]; then
    sleep "$hold"
fi
exit 0
