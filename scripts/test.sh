#!/bin/sh
# Build everything and run every test (unit and functional): natively what
# this machine's /dev/kvm can run, the rest inside the nested KVM rig
# (tests/rig/README.md).  The build is the main job's own (scripts/run.sh:
# ./configure, plain make), so a green run proves that build too.  The last
# line of output is "N passed, N failed" over all the tests.
set -e
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./configure --enable-werror
make -j"$(nproc)"
exec make -j"$(nproc)" check
