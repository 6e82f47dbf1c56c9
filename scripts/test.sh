#!/bin/sh
# Build everything and run every test (unit and functional).  The last
# line of output is pytest's "N passed, N failed" summary.
set -e
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./configure
make -j"$(nproc)" all unit
exec make check
