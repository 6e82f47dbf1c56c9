# reboot: "linux: rebooting", then reboot -f (a reset of the machine; the
# guest boots again, or under -no-reboot the VMM exits).
. /etc/dv/lib.sh
say rebooting
reboot -f
sleep 1000000
