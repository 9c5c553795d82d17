#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GPT-2 d4 on 2 ranks, 30 steps at stages 0, 1, 2 and 3: byte-identical
# parameter dumps.
source "$(dirname "$0")/common.sh"
TRAIN=$1 COMPARE=$2
for stage in 0 1 2 3; do
    run_ranks 2 "$TRAIN" --model d4 --stage "$stage" --steps 30 --val-every 0 \
        --sample-len 0 --dump-params "$WORK/s$stage.bin" ||
        { cat "$WORK/out"; fail "train_gpt2 at stage $stage"; }
    grep '^final loss' "$WORK/out"
    [ "$stage" = 0 ] || "$COMPARE" "$WORK/s0.bin" "$WORK/s$stage.bin" ||
        fail "stage $stage differs from stage 0"
done
echo "PASS"
