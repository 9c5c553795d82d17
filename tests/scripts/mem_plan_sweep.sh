#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The memory plan against the run: for the MLP and GPT-2 examples at stages
# 0-3 (GPT-2 also in bf16), with and without offload (optimizer on the host or NVMe, stage-3
# parameter shards on the host or NVMe), on 1-4 ranks, every rank's planned
# peak of every tier is within 1% (or 64 KiB, whichever is larger) of the
# peak it measured. The planned peaks come from zrt_plan_memory inside the
# run (the report's "plan"), the measured ones from the memory account.
source "$(dirname "$0")/common.sh"
MLP=$1 GPT=$2
SWAP="$WORK/swap"
# Small buckets, so that gathers, prefetches and reductions in flight are a
# real part of the peak; a threshold that leaves some MLP layers persistent.
printf '%s' '{"zero_optimization": {"reduce_bucket_size": 50000,
  "allgather_bucket_size": 50000, "stage3_prefetch_bucket_size": 60000,
  "stage3_param_persistence_threshold": 1000}}' >"$WORK/small.json"
runs=0
sweep() { # sweep NAME RANKS PROGRAM ARGS...
    local name=$1 n=$2; shift 2
    mkdir -p "$WORK/$name"
    run_ranks "$n" "$@" --mem-report "$WORK/$name/r%r.json" ||
        { cat "$WORK/out"; fail "$name did not run"; }
    runs=$((runs + 1))
}
offloads=("" "--offload-optimizer cpu" "--offload-optimizer nvme --nvme-path $SWAP")
for stage in 0 1 2 3; do
    for n in 1 2 3 4; do
        sweep "mlp-s$stage-n$n" "$n" "$MLP" --stage "$stage" --steps 3 --config "$WORK/small.json"
        [ "$n" = 2 ] && continue # GPT-2 on 2 ranks: the offload runs below
        sweep "gpt-s$stage-n$n" "$n" "$GPT" --model d4 --stage "$stage" --steps 3 \
            --val-every 0 --sample-len 0
    done
    [ "$stage" -eq 0 ] && continue
    for k in 1 2; do
        for n in 2 3; do
            # shellcheck disable=SC2086
            sweep "mlp-s$stage-n$n-off$k" "$n" "$MLP" --stage "$stage" --steps 3 \
                --config "$WORK/small.json" ${offloads[$k]}
        done
        # shellcheck disable=SC2086
        sweep "gpt-s$stage-n2-off$k" 2 "$GPT" --model d4 --stage "$stage" --steps 3 \
            --val-every 0 --sample-len 0 --config "$WORK/small.json" ${offloads[$k]}
    done
done
for n in 1 4; do
    sweep "mlp-s3-n$n-pcpu" "$n" "$MLP" --stage 3 --steps 3 --config "$WORK/small.json" \
        --offload-param cpu --offload-optimizer cpu
    sweep "mlp-s3-n$n-pnvme" "$n" "$MLP" --stage 3 --steps 3 --config "$WORK/small.json" \
        --offload-param nvme --offload-optimizer nvme --nvme-path "$SWAP"
    sweep "gpt-s3-n$n-pnvme" "$n" "$GPT" --model d4 --stage 3 --steps 3 --val-every 0 \
        --sample-len 0 --config "$WORK/small.json" --offload-param nvme --nvme-path "$SWAP"
done
# 16-bit parameters: 2 bytes a parameter and gradient, an f32 master copy,
# the example's f32 copies of the live layers (declared).
printf '%s' '{"bf16": {"enabled": true}}' >"$WORK/bf16.json"
for stage in 1 3; do
    sweep "gpt-s$stage-n3-bf16" 3 "$GPT" --model d4 --stage "$stage" --steps 3 \
        --val-every 0 --sample-len 0 --config "$WORK/bf16.json"
done
sweep "gpt-s3-n2-bf16-nvme" 2 "$GPT" --model d4 --stage 3 --steps 3 --val-every 0 \
    --sample-len 0 --config "$WORK/bf16.json" --offload-optimizer nvme \
    --offload-param nvme --nvme-path "$SWAP"
echo "$runs runs"
python3 - "$WORK" <<'PY' || fail "a planned peak is off by more than 1% / 64 KiB"
import glob, json, os, sys
worst, bad, checked = 0.0, [], 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*", "r*.json"))):
    r = json.load(open(path))
    run = os.path.basename(os.path.dirname(path))
    for tier, measured in r["tiers"].items():
        planned = r["plan"][tier]["peak"]
        allowed = max(0.01 * measured["peak"], 65536)
        off = abs(measured["peak"] - planned)
        worst = max(worst, off / max(measured["peak"], 1))
        checked += 1
        if off > allowed:
            bad.append(f"{run} rank {r['rank']} {tier}: planned {planned}, "
                       f"measured {measured['peak']} at {measured['peak_phase']}")
print(f"{checked} tier peaks checked; largest difference {100 * worst:.4f}% of measured")
for line in bad:
    print("OFF PLAN:", line)
sys.exit(1 if bad or checked == 0 else 0)
PY
echo "PASS"
