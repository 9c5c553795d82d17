#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GPT-2 d4 on 4 ranks routed hierarchically over 2 groups of 2 ranks
# (comm_hierarchy "hierarchical", comm_group_size 2, forced on one host):
# stages 0, 1, 2 and 3 give byte-identical parameter dumps, a repeated run
# gives the same bytes again, and a flat run differs (its summation order
# is rank order), so the routing did take effect. At every stage each rank's
# memory plan matches its measured peaks to the byte (the hierarchical
# scratch is the flat one's), and at stages 0-2 the bytes each step sends
# for the layers are the ZeRO paper's 2 psi (N-1)/N, as flat. Groups that do
# not divide the world are refused with a sentence naming the numbers.
source "$(dirname "$0")/common.sh"
TRAIN=$1 COMPARE=$2
STEPS=12
cat >"$WORK/hier.json" <<'JSON'
{"comm_hierarchy": "hierarchical", "comm_group_size": 2, "log_level": "info"}
JSON
echo '{"comm_hierarchy": "flat"}' >"$WORK/flat.json"
# train CONFIG STAGE DUMP [ARGS...] : on 4 ranks.
train() { train_gpt2_d4 4 "$@"; }
for stage in 0 1 2 3; do
    mkdir -p "$WORK/m$stage"
    train "$WORK/hier.json" "$stage" "$WORK/s$stage.bin" --mem-report "$WORK/m$stage/r%r.json"
    traffic=traffic
    [ "$stage" != 3 ] || traffic=""
    check_plan "$WORK/m$stage" 4 $traffic
    grep -q 'collectives: hierarchical: 2 groups of 2 ranks (comm_group_size)' "$WORK/out" ||
        { cat "$WORK/out"; fail "stage $stage: no log line saying the collectives are hierarchical"; }
    [ "$stage" = 0 ] || "$COMPARE" "$WORK/s0.bin" "$WORK/s$stage.bin" ||
        fail "stage $stage differs from stage 0 (hierarchical)"
done
train "$WORK/hier.json" 3 "$WORK/again.bin"
cmp -s "$WORK/s3.bin" "$WORK/again.bin" || fail "a repeated stage 3 run gave other bytes"
train "$WORK/flat.json" 0 "$WORK/flat.bin"
! cmp -s "$WORK/s0.bin" "$WORK/flat.bin" ||
    fail "the flat run equals the hierarchical one: the routing took no effect"
# Groups that do not divide the world: refused before training, named.
echo '{"comm_hierarchy": "hierarchical", "comm_group_size": 3}' >"$WORK/bad.json"
expect_refused 4 "'comm_group_size' is 3 but the job has 4 ranks" "groups of 3 on 4 ranks" \
    "$TRAIN" --model d4 --steps 1 --val-every 0 --sample-len 0 --config "$WORK/bad.json"
echo "PASS"
