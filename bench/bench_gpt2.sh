#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench_gpt2.sh: end-to-end GPT-2 training throughput and memory through zrt.
#
# For model shapes d4 (4 layers, 256 channels, ~3.5M parameters) and d12
# (GPT-2 124M's shape with a byte vocabulary, ~86M parameters) and ZeRO
# stages 0, 1, 2, 3, runs build/bin/train_gpt2 on 2 MPI ranks with a fixed
# batch and sequence length, no validation and no sampling, and prints a
# markdown table of:
#   - ms/step, tok/s, and the share of the step spent waiting on
#     communication, as printed by train_gpt2's "timing:" line (steady
#     state: the mean over ranks of the steps after the first 2);
#   - tok/s relative to stage 0 of the same model;
#   - rank 0's peak device memory (tiers.device.peak of --mem-report).
# Every run uses a config whose reduce and prefetch buckets hold one
# transformer block (and no persistent layers), as a user sizing buckets to
# the model would: DeepSpeed's defaults (5e8 / 5e7 elements) would let stage 3
# gather most of these models ahead of use.
#
# Usage (from the repo root):
#   bench/bench_gpt2.sh [BUILD_DIR]        # BUILD_DIR defaults to "build"
# Environment overrides: D4_STEPS (default 12), D12_STEPS (default 8; the
# first 2 steps are not timed), NP (default 2), MPIRUN (default mpirun).
# Running as root needs OMPI_ALLOW_RUN_AS_ROOT=1
# OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, which this script sets if unset.
# Run it on an otherwise idle machine: the ranks share its cores.
set -euo pipefail

build=${1:-build}
bin="$build/bin/train_gpt2"
np=${NP:-2}
mpirun_cmd=${MPIRUN:-mpirun}
d4_steps=${D4_STEPS:-12}
d12_steps=${D12_STEPS:-8}

if [[ ! -x "$bin" ]]; then
    echo "bench_gpt2.sh: $bin not found or not executable (build first, or pass the build dir)" >&2
    exit 1
fi

export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One block of a preset: 12 C^2 + 13 C parameters.
write_config() { # write_config MODEL CHANNELS
    local block=$((12 * $2 * $2 + 13 * $2))
    printf '{"zero_optimization": {"reduce_bucket_size": %d, "allgather_bucket_size": %d,
  "stage3_prefetch_bucket_size": %d, "stage3_param_persistence_threshold": 0}}\n' \
        "$block" "$block" "$block" >"$tmp/$1.json"
}
write_config d4 256
write_config d12 768

# model -> extra flags
declare -A model_args=(
    [d4]="--batch 4 --seq-len 64 --steps $d4_steps --config $tmp/d4.json"
    [d12]="--batch 2 --seq-len 64 --steps $d12_steps --config $tmp/d12.json"
)
models=(d4 d12)
stages=(0 1 2 3)
launch="$mpirun_cmd -np $np --oversubscribe --bind-to none"
common="--val-every 0 --sample-len 0"

echo "# zrt GPT-2 benchmark"
echo
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host: $(hostname), nproc: $(nproc), ranks: $np"
echo
echo "commands (\$tmp is a temp dir; STAGE in 0 1 2 3):"
echo
for m in "${models[@]}"; do
    echo "    $launch $bin --model $m --stage STAGE ${model_args[$m]} $common --mem-report \$tmp/m%r.json"
done
echo
echo "timing = train_gpt2's steady-state \"timing:\" line (mean over ranks, steps after the first 2)."
echo

rows=()
t_start=$(date +%s)
for m in "${models[@]}"; do
    base_toks=""
    for s in "${stages[@]}"; do
        log="$tmp/$m-s$s.log"
        rm -f "$tmp"/m*.json
        # shellcheck disable=SC2086
        if ! $launch "$bin" --model "$m" --stage "$s" ${model_args[$m]} $common \
                --mem-report "$tmp/m%r.json" >"$log" 2>&1; then
            echo "bench_gpt2.sh: $m stage $s FAILED; last lines of its output:" >&2
            tail -n 20 "$log" >&2
            rows+=("| $m | - | $s | FAILED | - | - | - | - |")
            continue
        fi
        timing=$(grep '^timing:' "$log" | tail -n 1 || true)
        if [[ -z "$timing" ]]; then
            echo "bench_gpt2.sh: $m stage $s printed no timing line" >&2
            tail -n 20 "$log" >&2
            rows+=("| $m | - | $s | no timing | - | - | - | - |")
            continue
        fi
        # timing: 191.5 ms/step, 2673 tok/s, waiting on communication 3.2% of the step (...)
        ms=$(sed -E 's/^timing: *([0-9.]+) ms\/step.*/\1/' <<<"$timing")
        toks=$(sed -E 's/^timing: [^,]*, *([0-9.]+) tok\/s.*/\1/' <<<"$timing")
        comm=$(sed -E 's/.*waiting on communication *([0-9.]+)%.*/\1/' <<<"$timing")
        read -r params peak < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("%.2f %.1f" % (d["param_count"] / 1e6, d["tiers"]["device"]["peak"] / 2**20))
' "$tmp/m0.json")
        if [[ "$s" == 0 ]]; then base_toks=$toks; fi
        if [[ -n "$base_toks" ]]; then
            ratio=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$toks" "$base_toks")
        else
            ratio="-"
        fi
        rows+=("| $m | $params | $s | $ms | $toks | $ratio | $comm | $peak |")
        echo "  done: $m stage $s: $timing" >&2
    done
done
t_end=$(date +%s)

echo "| model | parameters (M) | stage | ms/step | tok/s | vs stage 0 (tok/s ratio) | comm wait % | device peak MiB per rank |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "device peak = rank 0's tiers.device.peak from --mem-report; total bench wall time $((t_end - t_start)) s."
