#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Asynchronous against synchronous checkpoints (issue 21): the step time of
# GPT-2 training with a save every K steps, each as a ratio to the same run
# without saving.
#
# On 2 ranks, runs train_gpt2 (d12 by default: 86 M parameters with the byte
# vocabulary, a checkpoint of ~985 MiB) with the same steps and batch in three
# modes, interleaved REPEATS times (none, sync K, async K, none, ...):
#   none   no --save-dir
#   sync   --save-dir DIR --save-every K                (zrt_save writes, fsyncs, renames)
#   async  --save-dir DIR --save-every K --async-save   (zrt_save copies; a thread writes)
# Every run has "log_level": 2 (zrt logs "zrt_save: wrote ... in X s" when a
# checkpoint is published) and --save FILE (the final model), which is compared
# with cmp against the first run without saving: saving must not change training.
# Each output line is stamped with its arrival time; bench/ckpt_async_summary.py
# computes the mean time per loop iteration from the stamps (saves included:
# the example's own "timing:" line times zero_grad .. zrt_step only, and the
# save runs after it) and prints the table (summary.md, runs.csv under the
# results directory).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash bench/bench_ckpt_async.sh [RESULTS_DIR]

  RESULTS_DIR  logs, final models and the tables (default /var/tmp/zrt-bench-ckpt-async);
               checkpoints go to RESULTS_DIR/ckpt, removed after each run. It must
               be on a disk, not tmpfs (the point is the write to disk).

Environment: TRAIN (default build/bin/train_gpt2), PYTHON (default python3),
MODEL (d12), STAGE (1), BATCH (2), SEQ (64), STEPS (22), KS (save intervals,
default "5"; e.g. "5 2"), REPEATS (2), NP (2), BIND (mpirun --bind-to, default none,
as the other bench scripts). The timed window is the loop iterations from
step 2's line to step STEPS's: STEPS - 2 must be a multiple of every K, so that the
window holds exactly (STEPS - 2) / K saves.
EOF
}

OUT=/var/tmp/zrt-bench-ckpt-async
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h) usage; exit 0 ;;
        -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
        *) OUT="$1"; shift ;;
    esac
done

HERE="$(cd "$(dirname "$0")" && pwd)"
TRAIN="${TRAIN:-build/bin/train_gpt2}"
PYTHON="${PYTHON:-python3}"
MODEL="${MODEL:-d12}" STAGE="${STAGE:-1}" BATCH="${BATCH:-2}" SEQ="${SEQ:-64}"
STEPS="${STEPS:-22}" KS="${KS:-5}" REPEATS="${REPEATS:-2}" NP="${NP:-2}"
BIND="${BIND:-none}"
WARM=2 # the window starts at step 2's line (as the example's timing: steps 3..N)
[ -x "$TRAIN" ] || { echo "no $TRAIN: build train_gpt2 or set TRAIN" >&2; exit 1; }
for k in $KS; do
    if [ $(((STEPS - WARM) % k)) -ne 0 ]; then
        echo "STEPS - $WARM = $((STEPS - WARM)) is not a multiple of K = $k" >&2; exit 2
    fi
done
mkdir -p "$OUT"
CKPT="$OUT/ckpt"
if [ "$(stat -f -c %T "$OUT")" = tmpfs ]; then
    echo "$OUT is on tmpfs: checkpoints would be written to memory; pass a directory on disk" >&2
    exit 1
fi
free_gib=$(df -P -k "$OUT" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
# the saves of one run stay until it ends: (STEPS / K) checkpoints of ~1 GiB (d12)
need=$((STEPS / $(echo "$KS" | tr ' ' '\n' | sort -n | head -1) + 2))
if [ "$free_gib" -lt "$need" ]; then
    echo "$OUT has $free_gib GiB free; $MODEL needs about $need GiB" >&2; exit 1
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo '{"log_level": 2}' > "$OUT/log2.json"

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host: $(hostname), nproc: $(nproc)"
    echo "disk: $(df -P -T -h "$OUT" | awk 'NR == 2 { print $1 ", " $2 " (" $3 ", " $5 " free)" }')"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "$MODEL stage $STAGE, $NP ranks, batch $BATCH x seq $SEQ, $STEPS steps, K = $KS, repeats $REPEATS, bind-to $BIND"
} | tee "$OUT/machine.txt" >&2

# stamp: prefixes each line with its arrival time (bash's $EPOCHREALTIME).
stamp() {
    local line
    while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

REF="" # the final model of the first run without saving
# run NAME K ASYNC: one training run under $OUT/NAME (K 0: no saving).
run() {
    local name="$1" k="$2" async="$3" dir="$OUT/$1"
    rm -rf "$dir" "$CKPT"; mkdir -p "$dir"
    local args=(--model "$MODEL" --stage "$STAGE" --batch "$BATCH" --seq-len "$SEQ"
                --steps "$STEPS" --val-every 0 --sample-len 0 --config "$OUT/log2.json"
                --save "$dir/model.bin")
    [ "$k" -gt 0 ] && args+=(--save-dir "$CKPT" --save-every "$k")
    [ "$async" = 1 ] && args+=(--async-save)
    echo "$NP ${args[*]}" > "$dir/cmd"
    local t0 rc=0; t0=$(date +%s.%N)
    mpirun --bind-to "$BIND" -np "$NP" "$TRAIN" "${args[@]}" 2>&1 | stamp > "$dir/log" ||
        rc=$?
    echo "$rc" > "$dir/rc"
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' > "$dir/wall_s"
    cut -d' ' -f1-3 /proc/loadavg > "$dir/load"
    if [ -d "$CKPT" ]; then du -sb "$CKPT" | cut -f1 > "$dir/ckpt_bytes"; fi
    rm -rf "$CKPT"
    local same=-
    if [ "$rc" = 0 ] && [ -f "$dir/model.bin" ]; then
        if [ -z "$REF" ]; then
            REF="$OUT/ref-model.bin"; mv "$dir/model.bin" "$REF"; same=ref
        else
            same=no; cmp -s "$REF" "$dir/model.bin" && same=yes
            rm -f "$dir/model.bin"
        fi
    fi
    echo "$same" > "$dir/same_as_none"
    echo "  $name: rc $rc, $(cat "$dir/wall_s") s, final model = none's: $same," \
         "load $(cat "$dir/load")" >&2
}

for rep in $(seq 1 "$REPEATS"); do
    run "none-r$rep" 0 0
    for k in $KS; do
        run "sync-k$k-r$rep" "$k" 0
        run "async-k$k-r$rep" "$k" 1
    done
done
"$PYTHON" "$HERE/ckpt_async_summary.py" "$OUT" "$WARM" | tee "$OUT/summary.md"
