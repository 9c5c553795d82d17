#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-launch --bind core gives each rank max(1, cores / ranks) cores; the
# rank sees that CPU set (the OS and hwloc agree), and zrt's helper threads
# are bound one per core inside it.
source "$(dirname "$0")/common.sh"
LAUNCH=$1 PROBE=$2
for n in 1 2; do
    "$LAUNCH" --allow-run-as-root -n "$n" --bind core -- "$PROBE" >"$WORK/out" 2>&1 ||
        { cat "$WORK/out"; fail "binding probe on $n rank(s)"; }
    cat "$WORK/out"
    grep -q "1 passed, 0 failed" "$WORK/out" || fail "binding probe on $n rank(s)"
    [ "$(grep -c 'bound to PUs' "$WORK/out")" -eq "$n" ] || fail "not every rank reported"
done
echo "PASS"
