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
