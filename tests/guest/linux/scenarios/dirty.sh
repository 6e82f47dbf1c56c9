# dirty: /bin/dv-dirty (dirty.c), a memory-dirtying self-checking counter
# for migration tests; never ends.  dv.mibps (default 8), dv.wss_mib (32),
# dv.period_ms (100).
. /etc/dv/lib.sh
exec /bin/dv-dirty "$(arg wss_mib 32)" "$(arg mibps 8)" "$(arg period_ms 100)"
