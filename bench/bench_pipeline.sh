#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Pipeline parallelism (issue 20): activation memory with and without
# recomputation, the pipeline bubble against (P-1)/(M+P-1), and the largest
# model a fixed per-rank budget trains with pipeline + ZeRO + recomputation
# against data-parallel ZeRO alone. Each part prints a markdown table and
# writes a CSV under the results directory (bench/pipeline_summary.py).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash bench/bench_pipeline.sh [--part activations|bubble|largest|all] [RESULTS_DIR]

  --part P     which part to run (default all):
               activations  activation peak per rank, plan and measured, with and
                            without --recompute (d6, d12; 1 rank DP, 4 ranks --pp 4
                            gpipe and 1f1b)
               bubble       idle fraction per stage against (P-1)/(M+P-1), step time,
                            stage 0's activation peak under 1f1b and gpipe (d4;
                            P=2 on 2 ranks, P=4 on 4 ranks)
               largest      --plan-only search for the largest --layers L (C=1024)
                            under --device-mem 5G on 4 ranks for DP ZeRO-3 and
                            pipeline configurations (default buckets, then buckets
                            of one block), then 1-step runs of the default-bucket
                            winners
  RESULTS_DIR  where logs, memory reports and CSVs go (default /tmp/zrt-bench-pipeline)

Environment: TRAIN (default build-h-bench/bin/train_gpt2), PYTHON (default python3),
BUBBLE_P4=0 skips the P=4 bubble runs, CONFIRM=0 skips the largest part's real runs,
CONFIRM_STEPS (default 1: a step of the largest
models takes 7-9 minutes on 2 cores), CONFIRM_TIMEOUT seconds per real run (default 900),
CONFIRM_L_A / CONFIRM_L_PP override the L of the real runs (default: the largest
that fits; 0 skips that run), SEARCH=0 reuses the L found by an earlier run in RESULTS_DIR.
EOF
}

PART=all
OUT=/tmp/zrt-bench-pipeline
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h) usage; exit 0 ;;
        --part) PART="$2"; shift 2 ;;
        --part=*) PART="${1#--part=}"; shift ;;
        -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
        *) OUT="$1"; shift ;;
    esac
done
case "$PART" in activations|bubble|largest|all) ;; *) echo "bad --part $PART" >&2; exit 2 ;; esac

HERE="$(cd "$(dirname "$0")" && pwd)"
TRAIN="${TRAIN:-build-h-bench/bin/train_gpt2}"
PYTHON="${PYTHON:-python3}"
SUMMARY="$HERE/pipeline_summary.py"
[ -x "$TRAIN" ] || { echo "no $TRAIN: build train_gpt2 or set TRAIN" >&2; exit 1; }
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# run NAME NP ARGS...: one training run, its log and per-rank memory reports
# under $OUT/NAME. A failing run is recorded (rc file), not fatal; RUN_TIMEOUT
# (seconds, 0 = none) bounds it (rc 124).
run() {
    local name="$1" np="$2"; shift 2
    local dir="$OUT/$name"
    rm -rf "$dir"; mkdir -p "$dir"
    echo "$np $*" > "$dir/cmd"
    local t0 rc=0; t0=$(date +%s.%N)
    timeout "${RUN_TIMEOUT:-0}" mpirun --oversubscribe --bind-to none -np "$np" "$TRAIN" "$@" \
        --mem-report "$dir/r%r.json" > "$dir/log" 2>&1 || rc=$?
    echo "$rc" > "$dir/rc"
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' > "$dir/wall_s"
    echo "  $name: rc $rc, $(cat "$dir/wall_s") s" >&2
}

part_activations() {
    echo "== activations" >&2
    local common=(--batch 4 --seq-len 128 --micro-batches 4 --steps 2 --val-every 0 --sample-len 0)
    local model rc_flag tag
    for model in d6 d12; do
        for tag in 0 1; do
            rc_flag=(); [ "$tag" = 1 ] && rc_flag=(--recompute)
            run "act-$model-dp1-rc$tag" 1 --model "$model" "${common[@]}" "${rc_flag[@]}"
            run "act-$model-gpipe4-rc$tag" 4 --model "$model" "${common[@]}" --pp 4 \
                --schedule gpipe "${rc_flag[@]}"
            run "act-$model-1f1b4-rc$tag" 4 --model "$model" "${common[@]}" --pp 4 \
                --schedule 1f1b "${rc_flag[@]}"
        done
    done
    "$PYTHON" "$SUMMARY" activations "$OUT"
}

part_bubble() {
    echo "== bubble" >&2
    local common=(--model d4 --batch 4 --seq-len 64 --val-every 0 --sample-len 0)
    local m s
    for m in 2 4 8 16; do
        for s in gpipe 1f1b; do
            run "bub-p2-m$m-$s" 2 "${common[@]}" --pp 2 --micro-batches "$m" --schedule "$s" --steps 8
        done
    done
    if [ "${BUBBLE_P4:-1}" != 0 ]; then
        for m in 4 8 16 32; do
            for s in gpipe 1f1b; do
                run "bub-p4-m$m-$s" 4 "${common[@]}" --pp 4 --micro-batches "$m" --schedule "$s" --steps 5
            done
        done
    fi
    "$PYTHON" "$SUMMARY" bubble "$OUT"
}

# The largest model: --layers L, 1024 channels, 16 heads, 4 x 256 tokens per
# micro-batch, 4 micro-batches, 5 GiB per rank, 4 ranks.
LARGE=(--channels 1024 --heads 16 --batch 4 --seq-len 256 --micro-batches 4 --device-mem 5G)
declare -A CFG=(
    [a]="--stage 3"
    [b]="--stage 3 --recompute"
    [c]="--pp 2 --stage 2 --recompute --schedule 1f1b"
    [d]="--pp 4 --stage 1 --recompute --schedule 1f1b"
    [e]="--pp 2 --stage 3 --recompute --schedule 1f1b"
)
# The same five with buckets of one transformer block (12 C^2 + 13 C elements)
# instead of zrt's defaults (DeepSpeed's: 500 M-element reduce and all-gather
# buckets, 50 M prefetch), as bench/bench_gpt2.sh sizes them: data-parallel
# ZeRO's peak is mostly the default reduce bucket.
BLOCK_CFG="$OUT/block-buckets.json"
for c in a b c d e; do CFG[${c}1]="${CFG[$c]} --config $BLOCK_CFG"; done

# fits CFG L: 0 if --plan-only says every rank fits, 1 if not (exit 3);
# anything else is an error.
fits() {
    local c="$1" l="$2" rc=0
    # shellcheck disable=SC2086
    mpirun --oversubscribe --bind-to none -np 4 "$TRAIN" --layers "$l" "${LARGE[@]}" \
        ${CFG[$c]} --plan-only > "$OUT/largest-$c/plan-L$l.log" 2>&1 || rc=$?
    echo "$c,$l,$rc" >> "$OUT/largest-$c/search.csv"
    case $rc in 0) return 0 ;; 3) return 1 ;;
        *) echo "plan-only failed ($c, L=$l, rc $rc): $OUT/largest-$c/plan-L$l.log" >&2; exit 1 ;;
    esac
}

# search CFG: largest L that fits (doubling, then bisection); 0 if none.
search() {
    local c="$1" lo=0 hi=4
    rm -rf "$OUT/largest-$c"; mkdir -p "$OUT/largest-$c"
    echo "config,L,rc" > "$OUT/largest-$c/search.csv"
    while fits "$c" "$hi"; do lo=$hi; hi=$((hi * 2)); [ $hi -le 4096 ] || break; done
    while [ $((hi - lo)) -gt 1 ]; do
        local mid=$(((lo + hi) / 2))
        if fits "$c" "$mid"; then lo=$mid; else hi=$mid; fi
    done
    if [ "$lo" -eq 0 ]; then  # below 4: check 1..3
        local l; for l in 3 2 1; do if fits "$c" "$l"; then lo=$l; break; fi; done
    fi
    echo "$lo" > "$OUT/largest-$c/L"
    # the plan at the largest L (per-rank peaks), for the table
    [ "$lo" -gt 0 ] && cp "$OUT/largest-$c/plan-L$lo.log" "$OUT/largest-$c/plan-best.log"
    echo "  ($c) ${CFG[$c]}: largest L = $lo" >&2
}

part_largest() {
    echo "== largest" >&2
    local c block=$((12 * 1024 * 1024 + 13 * 1024))
    printf '{"zero_optimization": {"reduce_bucket_size": %d, "allgather_bucket_size": %d,
  "stage3_prefetch_bucket_size": %d, "stage3_param_persistence_threshold": 0}}\n' \
        "$block" "$block" "$block" > "$BLOCK_CFG"
    if [ "${SEARCH:-1}" != 0 ]; then
        for c in a b c d e a1 b1 c1 d1 e1; do search "$c"; done
    fi
    if [ "${CONFIRM:-1}" != 0 ]; then
        local steps="${CONFIRM_STEPS:-1}" to="${CONFIRM_TIMEOUT:-900}"
        local la="${CONFIRM_L_A:-$(cat "$OUT/largest-a/L")}"
        # the largest pipeline configuration (c, d or e)
        local best=c bl=0
        for c in c d e; do
            local l; l=$(cat "$OUT/largest-$c/L")
            if [ "$l" -gt "$bl" ]; then bl=$l; best=$c; fi
        done
        local lp="${CONFIRM_L_PP:-$bl}"
        if [ "$la" -gt 0 ]; then
            # shellcheck disable=SC2086
            RUN_TIMEOUT="$to" run "largest-run-a-L$la" 4 --layers "$la" "${LARGE[@]}" \
                ${CFG[a]} --steps "$steps" --val-every 0 --sample-len 0
        fi
        if [ "$lp" -gt 0 ]; then
            # shellcheck disable=SC2086
            RUN_TIMEOUT="$to" run "largest-run-$best-L$lp" 4 --layers "$lp" "${LARGE[@]}" \
                ${CFG[$best]} --steps "$steps" --val-every 0 --sample-len 0
        fi
    fi
    "$PYTHON" "$SUMMARY" largest "$OUT"
}

case "$PART" in
    activations) part_activations ;;
    bubble) part_bubble ;;
    largest) part_largest ;;
    all) part_activations; part_bubble; part_largest ;;
esac
