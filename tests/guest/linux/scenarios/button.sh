# button: the ACPI power button powers the guest off, as a distribution's
# acpid does.  Loads button (Linux's ACPI button driver, a module in Debian's
# kernel: the fixed-feature power button becomes the input device "Power
# Button", which sends KEY_POWER) and evdev (its /dev/input/eventN), then
# starts busybox acpid, which runs /etc/acpi/PWRF/00000080 on KEY_POWER.
# That handler prints "linux: power button" and powers off at once
# (poweroff -f: S5 through the FADT's PM1a_CNT; the VMM ends or, under
# -no-shutdown, stops the VM).  One line when armed:
#   linux: button armed input=eventN
# No driver, no input device or no acpid: a fail line, status 1.
. /etc/dv/lib.sh
modprobe button || { fail "button: modprobe button"; exit 1; }
modprobe evdev || { fail "button: modprobe evdev"; exit 1; }
# the power button's event device (devtmpfs makes the node); up to 5 s
ev=
n=0
while [ -z "$ev" ] && [ $n -lt 50 ]; do
    for d in /sys/class/input/event*; do
        [ "$(cat "$d/device/name" 2>/dev/null)" = "Power Button" ] || continue
        [ -c "/dev/input/${d##*/}" ] && ev=${d##*/}
    done
    [ -n "$ev" ] || sleep 0.1
    n=$((n + 1))
done
[ -n "$ev" ] || { fail "button: no Power Button input device ($(ls /sys/class/input 2>&1 | tr '\n' ' '))"; exit 1; }
mkdir -p /etc/acpi/PWRF
cat > /etc/acpi/PWRF/00000080 <<'EOF'
#!/bin/sh
echo "linux: power button" > /dev/console
sync
poweroff -f
EOF
chmod 755 /etc/acpi/PWRF/00000080
# acpid opens the event devices when it starts: the button's is there now
acpid -c /etc/acpi -l /tmp/acpid.log || { fail "button: acpid"; exit 1; }
n=0
while ! pidof acpid > /dev/null && [ $n -lt 50 ]; do
    sleep 0.1
    n=$((n + 1))
done
pidof acpid > /dev/null || { fail "button: acpid not running ($(cat /tmp/acpid.log 2>&1))"; exit 1; }
say "button armed input=$ev"
exit 0
