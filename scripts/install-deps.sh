#!/bin/sh
# Install the Debian packages this project builds and tests with, once:
# packages already present are not reinstalled.  Needs root (or sudo).
set -e
PKGS="build-essential pkg-config libglib2.0-dev libjansson-dev zlib1g-dev
libcap-ng-dev libseccomp-dev seabios qemu-system-x86 qemu-utils python3 python3-pytest
python3-pytest-timeout python3-pexpect netcat-openbsd socat telnet expect procps util-linux
clang libclang-rt-14-dev clang-format acpica-tools iperf3 ethtool
libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
