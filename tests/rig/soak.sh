#!/bin/bash
# soak.sh -- run a pytest selection ROUNDS times in a row in one rig L1 and
# count: how many rounds passed, the longest run of passing rounds, and
# whether L1 itself was lost (wedged, panicked, timed out).  What the rig's
# README reports as "N migration rounds in a row" comes from here.
#
# Usage:
#   tests/rig/soak.sh [--rounds N] [--timeout SEC] [rig.sh options] -- PYTEST-ARGS
#
#   --rounds N      rounds in the one L1 (default 10)
#   --timeout SEC   the rig's --timeout for the whole soak (default 3600)
#   --stop          stop at the first failing round
#   --marks EXPR    pytest's -m (default: the rig's share in make check,
#                   "(hwkvm or rig_too) and not iommu")
#   other options before -- go to rig.sh (--smp, --append, --qemu-arg...)
#
# Each round is `python3 -m pytest -q -p no:cacheprovider --timeout=420
# -m MARKS PYTEST-ARGS` in /share.  Every line comes back stamped with
# the host's clock (L1's own clock is unreliable under TCG).  Each round's
# pytest output and, at the end, L1's kernel log (console.log) are kept in
# build/rig/soak/STAMP/; a failing round's FAILED lines are printed.  The last line:
#   soak: R of N rounds passed, P in a row[, L1 lost: WHY][, L1 kernel: LINE]
# (LINE: the first oops, panic, soft lockup or RCU stall of L1's own kernel
# in its console.log, as scripts/check.py finds them).
# Exit status 0 only when every round passed.
#
# Example (the migration tests, the ten hops included, ten rounds: 24
# tests a round, the --iommu ones apart):
#   tests/rig/soak.sh --marks '(vm or hwkvm) and not iommu' -- \
#       tests/functional/test_migration.py tests/functional/test_net_migration.py \
#       tests/functional/test_did_migration.py tests/functional/test_linux.py -k migrat
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=10 TIMEOUT=3600 STOP=0 MARKS="(hwkvm or rig_too) and not iommu" RIG=()
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --stop) STOP=1; shift ;;
    --marks) MARKS=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --append|--qemu-arg|--smp|--mem|--cpu|--wedge|--scratch|--nic|--tcg-thread) RIG+=("$1" "$2"); shift 2 ;;
    *) RIG+=("$1"); shift ;;
    esac
done
[ $# -gt 0 ] || { echo "soak: give the pytest arguments after --" >&2; exit 2; }
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "soak: --rounds $ROUNDS: not a count" >&2; exit 2; }

args=$(printf '%q ' -m "$MARKS" "$@")
keep=build/rig/soak/$(date -u +%Y%m%d-%H%M%S)-$$
mkdir -p "$ROOT/$keep"
echo "soak: logs in $ROOT/$keep" >&2
inner="for i in \$(seq $ROUNDS); do
  echo \"soak: round \$i starts\"
  /usr/bin/python3 -m pytest -q -p no:cacheprovider --timeout=420 $args > $keep/round.\$i.log 2>&1
  rc=\$?
  echo \"soak: round \$i: rc=\$rc: \$(tail -n 1 $keep/round.\$i.log)\"
  [ \$rc = 0 ] || grep -E '^(FAILED|ERROR)|L1 is wedged' $keep/round.\$i.log | head -n 20
  [ \$rc = 0 ] || [ $STOP = 0 ] || break
  [ \$rc != 42 ] || break
done"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
bash "$ROOT/tests/rig/rig.sh" --share "$ROOT" --timeout "$TIMEOUT" ${RIG[@]+"${RIG[@]}"} \
    -- "$inner" 2>&1 | while IFS= read -r line; do
        printf '[%s] %s\n' "$(date -u +%T)" "$line"
    done | tee "$log"
rig_rc=${PIPESTATUS[0]}
run=$(sed -n 's/.*logs in \(.*\/runs\/run\.[A-Za-z0-9]*\)$/\1/p' "$log" | head -n 1)
[ -z "$run" ] || cp "$run/console.log" "$ROOT/$keep/" 2> /dev/null || true

passed=0 run=0 best=0 done_rounds=0
while read -r rc; do
    done_rounds=$((done_rounds + 1))
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1)) run=$((run + 1))
        [ $run -le $best ] || best=$run
    else
        run=0
    fi
done < <(sed -n 's/.*soak: round [0-9]*: rc=\([0-9]*\):.*/\1/p' "$log")
lost=""
case $rig_rc in
0|1) ;;
124) lost=", L1 lost: wedged or timed out" ;;
125) lost=", L1 lost: died or did not boot" ;;
*) lost=", rig exit status $rig_rc" ;;
esac
[ "$done_rounds" = "$ROUNDS" ] || lost="$lost, $((ROUNDS - done_rounds)) round(s) not run"
# L1's own kernel failure, if any: the first line scripts/check.py's L1_OOPS
# finds in its console.log (an oops, a panic, a soft lockup, an RCU stall)
oops=$(/usr/bin/python3 -c 'import importlib.util as u, sys
s = u.spec_from_file_location("check", sys.argv[1]); m = u.module_from_spec(s)
s.loader.exec_module(m); print(m.l1_oops(sys.argv[2]) or "")' \
    "$ROOT/scripts/check.py" "$ROOT/$keep/console.log" 2> /dev/null)
[ -z "$oops" ] || lost="$lost, L1 kernel: $oops"
echo "soak: $passed of $ROUNDS rounds passed, $best in a row$lost"
[ "$passed" = "$ROUNDS" ]
