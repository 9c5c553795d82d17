#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GPT-2 d4 through a pipeline (issue 20): 4 ranks as pipeline 2 x data 2 and
# as pipeline 4 x data 1, GPipe and 1F1B, ZeRO stages 0-3, f32, bf16 and
# fp16 (with a skipped step), with and without recomputation, with qgZ,
# top-k, qwZ and offload (host, NVMe), write the
# same model file, byte for byte, as the data-parallel run with
# gradient accumulation over the same micro-batches (2 ranks, and 1 rank);
# the memory plan matches the measured peaks on every rank; recomputation
# holds less; checkpoints resume bit for bit; what a pipeline does not do is
# refused with a sentence.
source "$(dirname "$0")/common.sh"
TRAIN=$1
M=4
COMMON=(--model d4 --seq-len 32 --steps 4 --val-every 2 --val-batches 2 --sample-len 8
    --micro-batches "$M")

train() { # RANKS OUT ARGS...: trains, saves the model to OUT
    local ranks=$1 out=$2
    shift 2
    run_ranks "$ranks" "$TRAIN" "${COMMON[@]}" --save "$out" "$@" ||
        { cat "$WORK/out"; fail "train_gpt2 on $ranks ranks $*"; }
}
same() { # REFERENCE CANDIDATE WHAT
    cmp -s "$1" "$2" || fail "$3 differs from the data-parallel run"
    echo "equal: $3"
}
planned_peak() { # DIR: the largest activation peak over the reports, bytes
    python3 - "$1" <<'PY'
import glob, json, sys
print(max(json.load(open(p))["tiers"]["device"]["categories"]["activation"]["peak"]
          for p in glob.glob(sys.argv[1] + "/r*.json")))
PY
}

for stage in 1 2; do
    train 2 "$WORK/dp2_s$stage.bin" --stage "$stage"
    for sched in gpipe 1f1b; do
        mkdir -p "$WORK/m_$stage$sched"
        train 4 "$WORK/pp2_$sched.bin" --stage "$stage" --pp 2 --schedule "$sched" \
            --mem-report "$WORK/m_$stage$sched/r%r.json"
        same "$WORK/dp2_s$stage.bin" "$WORK/pp2_$sched.bin" "stage $stage, pipeline 2 x data 2, $sched"
        check_plan "$WORK/m_$stage$sched" 4
    done
done
grep -q "idle fraction per stage" "$WORK/out" || fail "no bubble line in the pipeline's log"
train 2 "$WORK/dp2_s3.bin" --stage 3
train 4 "$WORK/pp2_s3.bin" --stage 3 --pp 2
same "$WORK/dp2_s3.bin" "$WORK/pp2_s3.bin" "stage 3, pipeline 2 x data 2, 1f1b"

# recomputation: the same bits, less activation memory
mkdir -p "$WORK/m_rc"
train 4 "$WORK/pp2_rc.bin" --stage 1 --pp 2 --recompute --mem-report "$WORK/m_rc/r%r.json"
same "$WORK/dp2_s1.bin" "$WORK/pp2_rc.bin" "stage 1, pipeline 2 x data 2, 1f1b, recompute"
check_plan "$WORK/m_rc" 4
full=$(planned_peak "$WORK/m_11f1b") recomputed=$(planned_peak "$WORK/m_rc")
echo "activations: 1f1b $full bytes, with recomputation $recomputed"
((recomputed < full)) || fail "recomputation does not lower the activations"

# 16-bit: bf16 with recomputation; fp16 with the last rank's gradients made
# inf in step 2 (the norm over every stage makes every stage skip alike)
echo '{"bf16": {"enabled": true}}' >"$WORK/bf16.json"
echo '{"fp16": {"enabled": true}}' >"$WORK/fp16.json"
train 2 "$WORK/dp2_bf16.bin" --stage 2 --config "$WORK/bf16.json"
train 4 "$WORK/pp2_bf16.bin" --stage 2 --config "$WORK/bf16.json" --pp 2 --recompute
same "$WORK/dp2_bf16.bin" "$WORK/pp2_bf16.bin" "bf16, stage 2, pipeline 2 x data 2, recompute"
train 2 "$WORK/dp2_fp16.bin" --stage 1 --config "$WORK/fp16.json" --overflow-at 2
train 4 "$WORK/pp2_fp16.bin" --stage 1 --config "$WORK/fp16.json" --overflow-at 2 --pp 2
same "$WORK/dp2_fp16.bin" "$WORK/pp2_fp16.bin" "fp16 with an overflow, pipeline 2 x data 2"
[ "$(grep -c 'step(s) skipped for overflow' "$WORK/out")" = 4 ] ||
    { cat "$WORK/out"; fail "fp16: not every rank reported its skipped steps"; }

# the other model-state features run on the stage's group alike: qgZ with the
# optimizer in host memory (stage 2), top-k (stage 1), stage 3 with qwZ and
# the optimizer and parameter shards on NVMe
echo '{"zero_optimization": {"zero_quantized_gradients": true}}' >"$WORK/qgz.json"
echo '{"zero_optimization": {"gradient_topk_ratio": 0.01}}' >"$WORK/topk.json"
echo '{"zero_optimization": {"zero_quantized_weights": true}}' >"$WORK/qwz.json"
features=("--stage 2 --config $WORK/qgz.json --offload-optimizer cpu"
    "--stage 1 --config $WORK/topk.json"
    "--stage 3 --config $WORK/qwz.json"
    "--stage 3 --offload-optimizer nvme --offload-param nvme --nvme-path $WORK/swap")
mkdir -p "$WORK/swap"
for f in "${features[@]}"; do
    read -ra args <<<"$f"
    train 2 "$WORK/dp2_f.bin" "${args[@]}"
    train 4 "$WORK/pp2_f.bin" "${args[@]}" --pp 2 --schedule gpipe
    same "$WORK/dp2_f.bin" "$WORK/pp2_f.bin" "$f, pipeline 2 x data 2"
done

# pipeline 4 x data 1 against one rank
train 1 "$WORK/dp1.bin" --stage 0
for sched in gpipe 1f1b; do
    mkdir -p "$WORK/m4_$sched"
    train 4 "$WORK/pp4_$sched.bin" --stage 0 --pp 4 --schedule "$sched" \
        --mem-report "$WORK/m4_$sched/r%r.json"
    same "$WORK/dp1.bin" "$WORK/pp4_$sched.bin" "stage 0, pipeline 4 x data 1, $sched"
    check_plan "$WORK/m4_$sched" 4 # the norm's all-reduce over the stages too
done

# checkpoints: every stage saves its own under step-N/stage-S; a resumed run
# ends as the uninterrupted one; another stage count, or none, is refused
# naming both
train 4 "$WORK/ck_full.bin" --stage 2 --pp 2 --save-dir "$WORK/ck" --save-every 2
[ -f "$WORK/ck/step-00000002/stage-1/meta.json" ] || fail "no stage-1 checkpoint"
train 4 "$WORK/ck_resumed.bin" --stage 2 --pp 2 --resume "$WORK/ck/step-00000002"
same "$WORK/ck_full.bin" "$WORK/ck_resumed.bin" "a 2 x 2 run resumed at step 2"
expect_refused 4 "saved by a pipeline of 2 stages; this run has pipeline_stages 4" \
    "resuming 2 stages as 4" "$TRAIN" "${COMMON[@]}" --pp 4 --resume "$WORK/ck"
expect_refused 2 "is a pipeline's: 2 stages" "resuming a pipeline without one" \
    "$TRAIN" "${COMMON[@]}" --resume "$WORK/ck"

# refusals, each before training, with a sentence naming what is wrong
expect_refused 4 "pipeline_stages.*3.*4" "--pp 3 on 4 ranks" "$TRAIN" --model d4 --pp 3
expect_refused 4 "at least 4 layers" "--pp 4 with 2 layers" "$TRAIN" --model d4 --layers 2 \
    --pp 4
expect_refused 4 "--dump-params with --pp 2" "a parameter dump of a pipeline" "$TRAIN" \
    --model d4 --pp 2 --dump-params "$WORK/dump.bin"
expect_refused 1 "--schedule: 'zigzag'" "an unknown schedule" "$TRAIN" --model d4 \
    --schedule zigzag
echo "PASS"
