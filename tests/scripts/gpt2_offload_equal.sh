#!/usr/bin/env bash
# GPT-2 d4 on 2 ranks, 20 steps: with the optimizer state in host memory or
# on NVMe (stages 1-3), and at stage 3 with the parameter shards on NVMe too,
# the parameter dump is byte-identical to the same stage without offload.
source "$(dirname "$0")/common.sh"
TRAIN=$1 COMPARE=$2
SWAP="$WORK/swap"
train() { # name, stage, extra flags...
    local name=$1 stage=$2
    shift 2
    run_ranks 2 "$TRAIN" --model d4 --stage "$stage" --steps 20 --val-every 0 \
        --sample-len 0 --dump-params "$WORK/$name.bin" "$@" ||
        { cat "$WORK/out"; fail "train_gpt2 $name"; }
    grep '^final loss' "$WORK/out"
}
same() { # name, reference
    "$COMPARE" "$WORK/$2.bin" "$WORK/$1.bin" || fail "$1 differs from $2"
    echo "$1: identical to $2"
}
for stage in 1 2 3; do
    train "s$stage" "$stage"
    train "s$stage-optim-cpu" "$stage" --offload-optimizer cpu
    same "s$stage-optim-cpu" "s$stage"
    train "s$stage-optim-nvme" "$stage" --offload-optimizer nvme --nvme-path "$SWAP"
    same "s$stage-optim-nvme" "s$stage"
done
train s3-param-nvme 3 --offload-param nvme --nvme-path "$SWAP"
same s3-param-nvme s3
train s3-both-nvme 3 --offload-optimizer nvme --offload-param nvme --nvme-path "$SWAP"
same s3-both-nvme s3
# the swap files are scratch: every rank removed its own
[ -z "$(ls -A "$SWAP" 2>/dev/null)" ] || fail "swap files left in $SWAP: $(ls -R "$SWAP")"
echo "PASS"
