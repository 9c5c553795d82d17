#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-launch -n 2 with a hostfile naming localhost twice (one slot
# per line) and trains the GPT-2 example; every output line carries its rank
# once (Open MPI's --tag-output, the runtime's own prefix off); the config
# file given to zero-launch reaches every rank.
source "$(dirname "$0")/common.sh"
LAUNCH=$1 TRAIN=$2
printf 'localhost\nlocalhost\n' >"$WORK/hosts"
printf '{"zero_optimization": {"stage": 2}, "log_level": "info"}' >"$WORK/zero.json"
"$LAUNCH" --allow-run-as-root -n 2 --hostfile "$WORK/hosts" --config "$WORK/zero.json" -- \
    "$TRAIN" --model d4 --steps 5 --val-every 0 --sample-len 0 >"$WORK/out" 2>&1 ||
    { cat "$WORK/out"; fail "zero-launch --hostfile"; }
cat "$WORK/out"
grep -q "2 ranks x batch" "$WORK/out" || fail "not 2 ranks"
grep -q "stage 2$" "$WORK/out" || fail "the --config file did not reach the ranks"
grep -q "^\[[0-9]*,0\]<stdout>: \?final loss" "$WORK/out" || fail "rank 0's output is not tagged"
grep -q "^\[[0-9]*,1\]<stderr>: \?\[zrt\] context created" "$WORK/out" ||
    fail "rank 1's runtime log is not tagged once"
if grep -q "\[zrt rank" "$WORK/out"; then fail "lines tagged twice"; fi
echo "PASS"
