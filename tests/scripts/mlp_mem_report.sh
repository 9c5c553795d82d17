#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --mem-report writes one JSON report per rank (%r = rank) with the rank,
# world size, stage, parameter count and peak bytes per tier and category,
# and the peaks follow the stage: stage 3 holds a quarter of stage 0's
# optimizer state on 4 ranks.
source "$(dirname "$0")/common.sh"
MLP=$1
for stage in 0 3; do
    run_ranks 4 "$MLP" --stage "$stage" --steps 2 --mem-report "$WORK/s$stage-r%r.json" ||
        { cat "$WORK/out"; fail "mlp stage $stage"; }
    for r in 0 1 2 3; do
        f="$WORK/s$stage-r$r.json"
        [ -f "$f" ] || fail "no report $f"
        python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$f" ||
            fail "$f is not JSON"
        grep -q "\"rank\": $r," "$f" || fail "$f: wrong rank"
        grep -q '"world_size": 4,' "$f" || fail "$f: wrong world size"
        grep -q "\"stage\": $stage," "$f" || fail "$f: wrong stage"
        grep -q '"param_count": 87603,' "$f" || fail "$f: wrong parameter count"
    done
done
optim_peak() {
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['tiers']['device']['categories']['optim']['peak'])" "$1"
}
o0=$(optim_peak "$WORK/s0-r0.json")
o3=$(optim_peak "$WORK/s3-r0.json")
[ "$o0" -eq $((o3 * 4)) ] || fail "optim peak stage 0 $o0 is not 4 x stage 3 $o3"
echo "PASS"
