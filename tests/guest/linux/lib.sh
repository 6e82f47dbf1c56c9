# /etc/dv/lib.sh: what scenario scripts share (sourced).
say() { echo "linux: $*"; }
fail() { echo "linux: fail $*"; }

# dv.NAME=VALUE from the kernel command line (the last one wins), else $2
arg() {
    local w v=$2
    for w in $(cat /proc/cmdline); do
        case "$w" in "dv.$1="*) v=${w#*=} ;; esac
    done
    echo "$v"
}

# Wait until interface $1 has carrier, at most $2 tenths of a second.
wait_carrier() {
    local n=0
    while [ "$(cat /sys/class/net/$1/carrier 2>/dev/null)" != 1 ] && [ $n -lt "$2" ]; do
        sleep 0.1
        n=$((n + 1))
    done
}

# The interface the e1000e driver made (waited for up to 10 s) with the
# address $1 on it, up, its carrier waited for (up to 20 s); prints its
# name.  Fails (status 1) when there is none or ip refuses.
e1000e_up() {
    local d drv dev= n=0
    while [ -z "$dev" ] && [ $n -lt 100 ]; do
        for d in /sys/class/net/*; do
            drv=$(readlink "$d/device/driver" 2>/dev/null) || continue
            [ "${drv##*/}" = e1000e ] && dev=${d##*/}
        done
        [ -n "$dev" ] || sleep 0.1
        n=$((n + 1))
    done
    [ -n "$dev" ] || return 1
    ip addr add "$1" dev "$dev" && ip link set "$dev" up || return 1
    wait_carrier "$dev" 200
    echo "$dev"
}
