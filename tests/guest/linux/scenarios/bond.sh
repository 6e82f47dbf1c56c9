# bond: the Directvisor guest's network (issue 16): an active-backup Ethernet
# bond over the passthrough NIC (the e1000e a vfio-pci device gives the
# guest: the primary) and the virtio-net NIC (the standby), so that traffic
# moves to virtio-net while the passthrough NIC is unplugged for a
# migration and back once one is plugged again.
#   bonding: active-backup, miimon 100 ms, fail_over_mac=none: every slave
#   takes bond0's MAC, dv.bond_mac (default 52:54:00:12:34:56, the
#   virtio-net NIC's mac= on the VMM's command line), so the peer and the
#   switch see one MAC whichever NIC carries it; bond0 gets dv.ip
#   (198.18.0.2/24).
# Modules: /modules/NAME.ko when a test appended them (tls, bonding, e1000e:
# the initramfs loads virtio only), else modprobe.  /bin/dv-udpecho (appended
# by the test, tests/guest/linux/udpecho.c) answers bench/outage.py's stream
# on UDP port dv.echo_port (7777).  Lines:
#   linux: bond up mac=MAC active=DEV vf=DEV standby=DEV
#   linux: bond active=DEV                  (each time the active slave changes)
#   linux: bond enslaved DEV                (a passthrough NIC plugged later)
#   linux: bond stat active=DEV vf=DEV vf_rx=N vf_tx=N sb_rx=N sb_tx=N
#                                           (every dv.bond_stat_s, 2 s: packets)
# The watcher and the echo run in the background: init goes on with the
# next scenario (dirty, for a memory check across the migration).
. /etc/dv/lib.sh
mac=$(arg bond_mac 52:54:00:12:34:56)
ip=$(arg ip 198.18.0.2/24)
port=$(arg echo_port 7777)
stat_s=$(arg bond_stat_s 2)
B=/sys/class/net/bond0/bonding

for m in tls bonding e1000e; do
    if [ -f "/modules/$m.ko" ]; then
        insmod "/modules/$m.ko" || { fail "bond: insmod $m"; exit 1; }
    else
        modprobe "$m" || { fail "bond: modprobe $m"; exit 1; }
    fi
done

# the interface a driver drives (the first), or nothing
dev_of() {
    local d drv
    for d in /sys/class/net/*; do
        drv=$(readlink "$d/device/driver" 2>/dev/null) || continue
        [ "${drv##*/}" = "$1" ] && { echo "${d##*/}"; return; }
    done
}

# enslaves DEV (it must be down) and, for the passthrough NIC, makes it primary
enslave() {
    ip link set "$1" down
    echo "+$1" > $B/slaves || return 1
    [ "$2" = primary ] && echo "$1" > $B/primary
    return 0
}

n=0
while [ ! -d $B ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
[ -d $B ] || { fail "bond: no bond0"; exit 1; }
echo active-backup > $B/mode || { fail "bond: mode"; exit 1; }
echo 100 > $B/miimon
echo none > $B/fail_over_mac
ip link set bond0 address "$mac" || { fail "bond: address"; exit 1; }

sb=$(dev_of virtio_net)
[ -n "$sb" ] || { fail "bond: no virtio_net interface"; exit 1; }
n=0
vf=$(dev_of e1000e)
while [ -z "$vf" ] && [ $n -lt 200 ]; do sleep 0.1; vf=$(dev_of e1000e); n=$((n + 1)); done
[ -n "$vf" ] || { fail "bond: no e1000e interface (the passthrough NIC)"; exit 1; }
enslave "$sb" || { fail "bond: enslave $sb"; exit 1; }
enslave "$vf" primary || { fail "bond: enslave $vf"; exit 1; }
ip addr add "$ip" dev bond0 && ip link set bond0 up || { fail "bond: ip"; exit 1; }
n=0
while [ "$(cat $B/active_slave)" != "$vf" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
say "bond up mac=$(cat /sys/class/net/bond0/address) active=$(cat $B/active_slave) vf=$vf standby=$sb"

if [ -x /bin/dv-udpecho ]; then
    /bin/dv-udpecho "$port" &
fi

# The watcher: what a distribution's hotplug scripts (ifenslave, udev) do
# when the passthrough NIC comes back, and the status lines.
(
    prev=$(cat $B/active_slave)
    ticks=0
    per=$((stat_s * 5))
    while :; do
        vf=$(dev_of e1000e)
        # quiet: a NIC being unplugged can vanish between dev_of and the
        # write ("sh: write error: No such device" on the console, where
        # it broke into the memory check's lines); the next pass sees it gone
        if [ -n "$vf" ] && ! grep -qw "$vf" $B/slaves; then
            enslave "$vf" primary 2>/dev/null && say "bond enslaved $vf"
        fi
        act=$(cat $B/active_slave)
        if [ "$act" != "$prev" ]; then
            say "bond active=${act:-none}"
            prev=$act
        fi
        ticks=$((ticks + 1))
        if [ $ticks -ge $per ]; then
            ticks=0
            s=/sys/class/net
            say "bond stat active=${act:-none} vf=${vf:-none}" \
                "vf_rx=$(cat $s/$vf/statistics/rx_packets 2>/dev/null || echo 0)" \
                "vf_tx=$(cat $s/$vf/statistics/tx_packets 2>/dev/null || echo 0)" \
                "sb_rx=$(cat $s/$sb/statistics/rx_packets) sb_tx=$(cat $s/$sb/statistics/tx_packets)"
        fi
        sleep 0.2
    done
) &
exit 0
