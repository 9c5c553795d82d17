#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Hybrid sharding (hybrid_shard_size): GPT-2 d4 on 4 ranks as 2 shard groups
# of 2 ranks, the model states sharded within a group and replicated across.
#   - stages 0, 1, 2 and 3 give byte-identical parameter dumps, and a
#     repeated run gives the same bytes again;
#   - at every stage each rank's memory plan matches its measured peaks to
#     the byte (the replicas' all-reduce scratch included), and the model
#     states a rank holds (param, grad, optim) are those of a plain 2-rank
#     run: 2-way sharding, not 4-way;
#   - at stages 0-2 each step's layer bytes are the report's theory, on the
#     host and off it: 2 psi (S-1)/S in the group, and the replicas'
#     all-reduce, 2 range/G to each replica peer (range: the whole buffer at
#     stage 0, the shard at 1-2);
#   - hybrid_shard_size 4 (one group) equals a plain 4-rank run bit for bit;
#   - hybrid_shard_size 1 (pure replication) on 3 ranks plans its replicas'
#     all-reduce (with padding: a shard is not a multiple of 3) exactly, and
#     its bytes (the padded range) are the theory's;
#   - a checkpoint saved with hybrid 2 on 4 ranks holds one copy (2 rank
#     files, world_size 2) and resumes identically to an uninterrupted run;
#   - a shard size that does not divide the world is refused, named.
source "$(dirname "$0")/common.sh"
TRAIN=$1 COMPARE=$2
STEPS=8
echo '{"hybrid_shard_size": 2, "log_level": "info"}' >"$WORK/h2.json"
echo '{"hybrid_shard_size": 4}' >"$WORK/h4.json"
echo '{"hybrid_shard_size": 1}' >"$WORK/h1.json"
echo '{}' >"$WORK/plain.json"
# train RANKS CONFIG STAGE DUMP [ARGS...]
train() { train_gpt2_d4 "$@"; }
# same_states HYBRID_DIR PLAIN_DIR: every hybrid rank holds the model states
# (device param, grad, optim, master peaks) of rank 0 of the plain run.
same_states() {
    python3 - "$1" "$2" <<'PY' || fail "$1: model states are not those of $2"
import glob, json, os, sys
cats = ("param", "grad", "optim", "master")
def states(path):
    dev = json.load(open(path))["tiers"]["device"]["categories"]
    return {c: dev[c]["peak"] for c in cats}
want = states(os.path.join(sys.argv[2], "r0.json"))
for path in sorted(glob.glob(os.path.join(sys.argv[1], "r*.json"))):
    got = states(path)
    if got != want:
        sys.exit(f"{path}: {got}, plain 2-rank run {want}")
print(f"model states per rank as 2-way sharding: {want}")
PY
}
for stage in 0 1 2 3; do
    mkdir -p "$WORK/m$stage"
    train 4 "$WORK/h2.json" "$stage" "$WORK/s$stage.bin" --mem-report "$WORK/m$stage/r%r.json"
    traffic=traffic
    [ "$stage" != 3 ] || traffic="" # GPT-2's tied embedding is gathered twice
    check_plan "$WORK/m$stage" 4 $traffic
    grep -q 'hybrid sharding: 2 shard groups of 2 ranks (hybrid_shard_size 2)' "$WORK/out" ||
        { cat "$WORK/out"; fail "stage $stage: no log line saying the shard groups"; }
    [ "$stage" = 0 ] || "$COMPARE" "$WORK/s0.bin" "$WORK/s$stage.bin" ||
        fail "stage $stage differs from stage 0 (hybrid 2)"
done
train 4 "$WORK/h2.json" 3 "$WORK/again.bin"
cmp -s "$WORK/s3.bin" "$WORK/again.bin" || fail "a repeated stage 3 run gave other bytes"
# 2-way sharding: the states of a plain run on 2 ranks.
for stage in 1 3; do
    mkdir -p "$WORK/p$stage"
    train 2 "$WORK/plain.json" "$stage" "$WORK/p$stage.bin" \
        --mem-report "$WORK/p$stage/r%r.json"
    same_states "$WORK/m$stage" "$WORK/p$stage"
done
# One group of every rank is plain ZeRO, bit for bit.
train 4 "$WORK/plain.json" 2 "$WORK/plain4.bin"
train 4 "$WORK/h4.json" 2 "$WORK/h4.bin"
cmp -s "$WORK/plain4.bin" "$WORK/h4.bin" || fail "hybrid_shard_size 4 differs from plain"
! cmp -s "$WORK/plain4.bin" "$WORK/s2.bin" ||
    fail "hybrid 2 equals plain: the shard groups took no effect"
# Groups of one rank: nothing sharded, the replicas' all-reduce holds the
# only scratch (padded to 3 blocks), planned to the byte.
mkdir -p "$WORK/r1"
train 3 "$WORK/h1.json" 2 "$WORK/h1.bin" --mem-report "$WORK/r1/r%r.json"
check_plan "$WORK/r1" 3 traffic
# A checkpoint: one copy, by group 0, resumed exactly.
GPT=(--model d4 --channels 64 --max-seq-len 64 --seq-len 32 --batch 2 --val-every 0
     --sample-len 0 --steps 10 --config "$WORK/h2.json")
run_ranks 4 "$TRAIN" "${GPT[@]}" --stage 3 --save-dir "$WORK/ckpt" --save-every 5 \
    --dump-params "$WORK/full.bin" --loss-log "$WORK/full.loss" ||
    { cat "$WORK/out"; fail "hybrid 2 saving"; }
ls "$WORK/ckpt/step-00000005"
[ "$(ls "$WORK/ckpt/step-00000005" | grep -c '^rank-.*\.zrtc$')" = 2 ] ||
    fail "the checkpoint does not hold 2 rank files (one copy of 2 shards)"
grep -q '"world_size": 2' "$WORK/ckpt/step-00000005/meta.json" ||
    fail "meta.json does not say world_size 2"
for stage in 3 1; do
    run_ranks 4 "$TRAIN" "${GPT[@]}" --stage "$stage" \
        --resume "$WORK/ckpt/step-00000005" --dump-params "$WORK/res$stage.bin" \
        --loss-log "$WORK/res$stage.loss" || { cat "$WORK/out"; fail "hybrid 2 resuming"; }
    grep -q "^resumed from .* at step 5 (saved by 2 ranks" "$WORK/out" ||
        { cat "$WORK/out"; fail "stage $stage: did not say where it resumed"; }
    ! grep -q "^note: the checkpoint was trained with" "$WORK/out" ||
        fail "stage $stage: the resumed run does not see the saved global batch"
    "$COMPARE" "$WORK/full.bin" "$WORK/res$stage.bin" ||
        fail "resumed at stage $stage: parameters differ from the uninterrupted run"
    tail -n 5 "$WORK/full.loss" | cmp -s - "$WORK/res$stage.loss" ||
        { paste "$WORK/full.loss" "$WORK/res$stage.loss"; fail "resumed: losses differ"; }
done
# A shard size that does not divide the world, and a negative one: refused
# before training, named.
echo '{"hybrid_shard_size": 3}' >"$WORK/bad.json"
expect_refused 4 "'hybrid_shard_size' is 3 but the job has 4 ranks" \
    "hybrid_shard_size 3 on 4 ranks" \
    "$TRAIN" --model d4 --steps 1 --val-every 0 --sample-len 0 --config "$WORK/bad.json"
echo '{"hybrid_shard_size": -2}' >"$WORK/neg.json"
expect_refused 2 "hybrid_shard_size" "hybrid_shard_size -2" \
    "$TRAIN" --model d4 --steps 1 --val-every 0 --sample-len 0 --config "$WORK/neg.json"
echo "PASS"
