#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checkpoints resume exactly at the same world size: GPT-2 (d4 shape, 64
# channels) on 2 ranks, 10 steps saving at 5 and 10, against a run resumed
# from step 5: the last 5 losses (%.9g) and the parameter dump are
# byte-identical, for stage 0, stage 1 with the optimizer on the host,
# stage 2 with it on NVMe, stage 3 with optimizer and parameters on NVMe,
# and stage 1 with gradient accumulation (2) and clipping. A checkpoint of
# stage 3 on NVMe resumes at stage 2 (stages are bit-identical). The MLP on
# 3 ranks at stage 3 resumes exactly too. 16-bit parameters: bf16 at stage 2,
# bf16 at stage 3 with optimizer and parameters on NVMe, and fp16 (dynamic
# loss scale) at stage 3 resume with the same losses, and
# the last checkpoints of both runs (16-bit params, f32 master, moments)
# are byte-identical, as is fp16's "skipped, loss scale" report; its
# loss scale starts high enough to overflow (3 skipped steps).
source "$(dirname "$0")/common.sh"
TRAIN=$1 MLP=$2 COMPARE=$3
SWAP="$WORK/swap"
GPT=(--model d4 --channels 64 --max-seq-len 64 --seq-len 32 --batch 2 --val-every 0
     --sample-len 0)

full() { # name, flags...: 10 steps, checkpoints at 5 and 10
    local name=$1; shift
    run_ranks 2 "$TRAIN" "${GPT[@]}" --steps 10 --save-dir "$WORK/$name.ckpt" \
        --save-every 5 --dump-params "$WORK/$name.bin" --loss-log "$WORK/$name.loss" "$@" ||
        { cat "$WORK/out"; fail "train_gpt2 $name"; }
}
resumed() { # name, checkpoint of, flags...: resumes at step 5
    local name=$1 from=$2; shift 2
    run_ranks 2 "$TRAIN" "${GPT[@]}" --steps 10 --resume "$WORK/$from.ckpt/step-00000005" \
        --dump-params "$WORK/$name.bin" --loss-log "$WORK/$name.loss" "$@" ||
        { cat "$WORK/out"; fail "train_gpt2 $name"; }
    grep -q "^resumed from .* at step 5 (saved by 2 ranks" "$WORK/out" ||
        { cat "$WORK/out"; fail "$name did not say where it resumed"; }
}
same() { # resumed name, full name
    "$COMPARE" "$WORK/$2.bin" "$WORK/$1.bin" || fail "$1: parameters differ from $2"
    tail -n 5 "$WORK/$2.loss" | cmp -s - "$WORK/$1.loss" ||
        { paste "$WORK/$2.loss" "$WORK/$1.loss"; fail "$1: losses differ from $2"; }
    echo "$1: losses 6-10 and parameters identical to $2 ($(tail -n 1 "$WORK/$1.loss"))"
}
case_() { # name, flags...
    local name=$1; shift
    full "$name" "$@"
    resumed "$name-r" "$name" "$@"
    same "$name-r" "$name"
}

case_ s0 --stage 0
case_ s1-optim-cpu --stage 1 --offload-optimizer cpu
case_ s2-optim-nvme --stage 2 --offload-optimizer nvme --nvme-path "$SWAP"
case_ s3-all-nvme --stage 3 --offload-optimizer nvme --offload-param nvme --nvme-path "$SWAP"
case_ s1-accum-clip --stage 1 --grad-accum 2 --clip 0.5
resumed s3-at-s2 s3-all-nvme --stage 2
same s3-at-s2 s3-all-nvme

# 16-bit: --dump-params writes f32, so the last checkpoints (after step 10)
# are compared. fp16 starts at a loss scale that overflows: skipped steps
# do not count as optimizer steps, so the step directories are found by
# order (the first save is after loop step 5, the last after 10).
half() { # name, config JSON, flags...
    local name=$1 config=$2; shift 2
    echo "$config" >"$WORK/$name.json"
    run_ranks 2 "$TRAIN" "${GPT[@]}" --steps 10 --config "$WORK/$name.json" \
        --save-dir "$WORK/$name.ckpt" --save-every 5 --loss-log "$WORK/$name.loss" "$@" ||
        { cat "$WORK/out"; fail "train_gpt2 $name"; }
    grep "^fp16 on rank" "$WORK/out" | sort >"$WORK/$name.scale" || true
    local first last
    first=$(find "$WORK/$name.ckpt" -maxdepth 1 -name 'step-*' | sort | head -n 1)
    last=$(cat "$WORK/$name.ckpt/latest")
    run_ranks 2 "$TRAIN" "${GPT[@]}" --steps 10 --config "$WORK/$name.json" \
        --resume "$first" --save-dir "$WORK/$name-r.ckpt" --save-every 5 \
        --loss-log "$WORK/$name-r.loss" "$@" || { cat "$WORK/out"; fail "train_gpt2 $name resumed"; }
    grep "^fp16 on rank" "$WORK/out" | sort >"$WORK/$name-r.scale" || true
    tail -n 5 "$WORK/$name.loss" | cmp -s - "$WORK/$name-r.loss" ||
        { paste "$WORK/$name.loss" "$WORK/$name-r.loss"; fail "$name: losses differ"; }
    [ "$(cat "$WORK/$name-r.ckpt/latest")" = "$last" ] || fail "$name: resumed to another step"
    for f in "$WORK/$name.ckpt/$last"/rank-*.zrtc; do
        cmp "$f" "$WORK/$name-r.ckpt/$last/${f##*/}" || fail "$name: $last/${f##*/} differs"
    done
    cmp -s "$WORK/$name.scale" "$WORK/$name-r.scale" ||
        { cat "$WORK/$name.scale" "$WORK/$name-r.scale"; fail "$name: loss scale differs"; }
    echo "$name: losses 6-10 and the rank files of $last identical" \
        "($(tail -n 1 "$WORK/$name.loss")) $(head -n 1 "$WORK/$name.scale")"
}
half bf16-s2 '{"bf16": {"enabled": true}}' --stage 2
half bf16-s3-nvme '{"bf16": {"enabled": true}}' --stage 3 --offload-optimizer nvme \
    --offload-param nvme --nvme-path "$SWAP"
half fp16-s3 '{"fp16": {"enabled": true, "initial_scale_power": 17, "loss_scale_window": 2,
               "hysteresis": 1}}' --stage 3
grep -q '"dtype": "f16"' "$WORK/fp16-s3.ckpt/$(cat "$WORK/fp16-s3.ckpt/latest")/meta.json" ||
    fail "meta.json does not record f16"
grep -q '"skipped": [1-9]' "$WORK/fp16-s3.ckpt/$(cat "$WORK/fp16-s3.ckpt/latest")/meta.json" ||
    fail "fp16-s3 skipped no step: the loss scaler was not exercised"

# The MLP: 3 ranks, stage 3, 8 steps saving at 4, resumed from step 4.
MLPF=(--stage 3 --steps 8 --hidden 64 --batch 24)
run_ranks 3 "$MLP" "${MLPF[@]}" --save-dir "$WORK/mlp.ckpt" --save-every 4 \
    --dump-params "$WORK/mlp.bin" || { cat "$WORK/out"; fail "mlp"; }
run_ranks 3 "$MLP" "${MLPF[@]}" --resume "$WORK/mlp.ckpt/step-00000004" \
    --dump-params "$WORK/mlp-r.bin" || { cat "$WORK/out"; fail "mlp resumed"; }
"$COMPARE" "$WORK/mlp.bin" "$WORK/mlp-r.bin" || fail "mlp: resumed parameters differ"
echo "mlp: resumed at step 4, parameters identical"
[ -z "$(ls -A "$SWAP" 2>/dev/null)" ] || fail "swap files left in $SWAP"
echo "PASS"
