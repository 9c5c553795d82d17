#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GPT-2 d4 on 2 ranks, 10 steps: with the optimizer state in host memory or
# on NVMe (stages 1-3), and at stage 3 with the parameter shards on NVMe too,
# the parameter dump is byte-identical to the same stage without offload.
source "$(dirname "$0")/common.sh"
TRAIN=$1 COMPARE=$2
SWAP="$WORK/swap"
train() { # name, stage, extra flags...
    local name=$1 stage=$2
    shift 2
    run_ranks 2 "$TRAIN" --model d4 --stage "$stage" --steps 10 --val-every 0 \
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

# ... and they vanish with a rank that is SIGKILLed mid-run (they have no name)
KILLED="$WORK/killed"
mkdir -p "$KILLED"
KILLED=$(realpath "$KILLED")
holder_of_rank0_swap() { # the pid whose descriptor points into zrt-rank0
    local fd
    for fd in /proc/[0-9]*/fd/*; do
        case "$(readlink "$fd" 2>/dev/null)" in
        "$KILLED/zrt-rank0/"*) fd=${fd#/proc/}; echo "${fd%%/*}"; return 0 ;;
        esac
    done
    return 1
}
# shellcheck disable=SC2086
$MPIRUN -np 2 "$TRAIN" --model d4 --stage 2 --steps 100000 --val-every 0 --sample-len 0 \
    --offload-optimizer nvme --nvme-path "$KILLED" >"$WORK/out" 2>&1 &
launcher=$!
rank0=
for _ in $(seq 600); do
    rank0=$(holder_of_rank0_swap) && break
    sleep 0.1
done
[ -n "$rank0" ] || { kill "$launcher"; cat "$WORK/out"; fail "rank 0 never opened its swap file"; }
kill -KILL "$rank0"
wait "$launcher" && fail "the run whose rank 0 was SIGKILLed succeeded"
left=$(find "$KILLED" ! -type d)
[ -z "$left" ] || fail "a SIGKILLed run left swap files: $left"
echo "rank 0 SIGKILLed: no swap file left"
echo "PASS"
