#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/bench_quality.sh — what compression costs in model quality: GPT-2
# (default d6: 6 layers, 384 channels, 11.1 M parameters) trained on the KJV
# corpus (examples/data, read as bytes) with each compression option, and
# every option's losses against the uncompressed run's.
#
# Each option is a ZeRO stage and a config (the table in option_spec below);
# every run has the same ranks, seed, data, batch, sequence length and
# learning-rate schedule (warmup, then cosine to 0.1 of the peak over
# --steps), so the runs differ by the option alone. zrt's stages 0-3 train
# bit-identically, so one uncompressed run ("plain", stage 3) is the baseline
# of every option, stage-1 ones (top-k) included.
#
# Per option, train_gpt2 writes OUTDIR/<option>/: zero.json (its config),
# loss.log (--loss-log: the mean over ranks of each step's training loss,
# measured before that step's update) and out.txt (its output: the validation
# loss every --val-every steps, over the same --val-batches held-out batches
# each time, printed to 4 decimals; "at step k" is after k updates, step 0
# before any). Then:
#   OUTDIR/quality.csv  option,step,train_loss,val_loss (empty where not measured)
#   OUTDIR/summary.md   the command, date, machine, commit, and per option: the
#                       final validation loss and its difference from plain's
#                       (absolute, %), the mean training loss of the last 50
#                       steps and its difference, ms/step, the run's wall time
#   --plot FILE (.png or .svg)   bench/plot_quality.py: training loss (moving average)
#                       and validation loss (markers) per option, and each
#                       option's validation loss less plain's (needs matplotlib)
# An option whose run fails is reported (the end of its output) and the others
# still run; the exit status is then 1. --report-only rebuilds the CSV,
# summary and plot from an OUTDIR already run.
#
#   bench/bench_quality.sh [--steps 500] [--ranks 4] [--val-every 25]
#       [--val-batches 8] [--options "plain qwz qgz8 qgz4 qwz+qgz qgz-hier topk topk10"]
#       [--outdir build/bench-quality] [--plot docs/images/compression-loss.png]
#       [--build build] [--model d6] [--batch 4] [--seq-len 64] [--lr 1e-3]
#       [--warmup 20] [--seed 1234] [--report-only]
# Environment: MPIRUN (default mpirun). As root it sets
# OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1 unless set. Run it on an otherwise idle
# machine: the ranks share its cores (4 ranks on 2 cores are oversubscribed).
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT_DIR/build
STEPS=500 RANKS=4 VAL_EVERY=25 VAL_BATCHES=8
OPTIONS="plain qwz qgz8 qgz4 qwz+qgz qgz-hier topk topk10"
OUTDIR=$ROOT_DIR/build/bench-quality
PLOT=$ROOT_DIR/docs/images/compression-loss.png
MODEL=d6 BATCH=4 SEQ_LEN=64 LR=1e-3 WARMUP=20 SEED=1234
REPORT_ONLY=0
COMMAND_LINE=$0
for a in "$@"; do # quoted where the shell needs it
    if [[ $a =~ ^[][A-Za-z0-9_./=+:,@%-]+$ ]]; then COMMAND_LINE+=" $a"; else COMMAND_LINE+=" '${a//\'/\'\\\'\'}'"; fi
done

die() { echo "bench_quality.sh: $*" >&2; exit 2; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 '$2': it must be a whole number above 0"; }

# option_spec NAME: sets STAGE and CONFIG (the ZeRO config JSON) for NAME.
option_spec() {
    local zo top=''
    case $1 in
        plain) STAGE=3 zo='' ;;
        qwz) STAGE=3 zo='"zero_quantized_weights": true' ;;
        qgz8) STAGE=3 zo='"zero_quantized_gradients": true' ;;
        qgz4) STAGE=3 zo='"zero_quantized_gradients": true, "zero_quantized_gradient_bits": 4' ;;
        qwz+qgz) STAGE=3 zo='"zero_quantized_weights": true, "zero_quantized_gradients": true' ;;
        topk) STAGE=1 zo='"gradient_topk_ratio": 0.01' ;;
        topk10) STAGE=1 zo='"gradient_topk_ratio": 0.1' ;;
        qgz-hier) STAGE=3 zo='"zero_quantized_gradients": true' top='"comm_hierarchy": "hierarchical", "comm_group_size": 2, ' ;;
        *) return 1 ;;
    esac
    CONFIG=${zo:+"{$top\"zero_optimization\": {$zo}}"}
    CONFIG=${CONFIG:-"{}"}
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --steps) posint "$1" "${2-}"; STEPS=$2; shift 2 ;;
            --ranks) posint "$1" "${2-}"; RANKS=$2; shift 2 ;;
            --val-every) posint "$1" "${2-}"; VAL_EVERY=$2; shift 2 ;;
            --val-batches) posint "$1" "${2-}"; VAL_BATCHES=$2; shift 2 ;;
            --options) OPTIONS=${2-}; shift 2 ;;
            --outdir) OUTDIR=${2-}; shift 2 ;;
            --plot) PLOT=${2-}; shift 2 ;;
            --build) BUILD=${2-}; shift 2 ;;
            --model) MODEL=${2-}; shift 2 ;;
            --batch) posint "$1" "${2-}"; BATCH=$2; shift 2 ;;
            --seq-len) posint "$1" "${2-}"; SEQ_LEN=$2; shift 2 ;;
            --lr) LR=${2-}; shift 2 ;;
            --warmup) posint "$1" "${2-}"; WARMUP=$2; shift 2 ;;
            --seed) SEED=${2-}; shift 2 ;;
            --report-only) REPORT_ONLY=1; shift ;;
            -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            *) die "unknown option '$1' (--help)" ;;
        esac
    done
    local o
    [ -n "$OPTIONS" ] || die "--options: give at least one option"
    for o in $OPTIONS; do
        option_spec "$o" || die "--options: '$o' is none of plain qwz qgz8 qgz4 qwz+qgz topk topk10"
    done
}

# header: the command, date, machine and commit, as docs/benchmarks.md records.
header() {
    local commit dirty="" cpu
    commit=$(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -z "$(git -C "$ROOT_DIR" --no-optional-locks status --porcelain -uno 2>/dev/null)" ] ||
        dirty=" (working tree modified)"
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    echo "# GPT-2 quality with compression: bench/bench_quality.sh"
    echo
    echo "- command: \`$COMMAND_LINE\`"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores, ${cpu:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg); $("$MPIRUN" --version 2>/dev/null | head -n 1)"
    echo "- commit: $commit$dirty; binary $TRAIN ($(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true))"
    echo "- runs: GPT-2 $MODEL, $RANKS ranks x batch $BATCH x seq $SEQ_LEN, $STEPS steps, lr $LR (warmup $WARMUP, cosine to 0.1x), seed $SEED, validation every $VAL_EVERY steps over $VAL_BATCHES batches, KJV corpus"
}

# run_option NAME: one training run into OUTDIR/NAME; appends its line
# (name, stage, status, wall seconds) to OUTDIR/runs.tsv.
run_option() {
    local name=$1 dir=$OUTDIR/$1 t0 status=0
    option_spec "$name"
    mkdir -p "$dir"
    rm -f "$dir/loss.log" "$dir/out.txt"
    echo "$CONFIG" >"$dir/zero.json"
    echo "bench_quality.sh: $name: stage $STAGE, $CONFIG ..." >&2
    t0=$EPOCHREALTIME
    "$MPIRUN" -np "$RANKS" --oversubscribe --bind-to none "$TRAIN" --model "$MODEL" \
        --stage "$STAGE" --config "$dir/zero.json" --steps "$STEPS" --batch "$BATCH" \
        --seq-len "$SEQ_LEN" --lr "$LR" --warmup "$WARMUP" --seed "$SEED" \
        --val-every "$VAL_EVERY" --val-batches "$VAL_BATCHES" --sample-len 0 \
        --train "$DATA/kjv_train.txt" --val "$DATA/kjv_val.txt" --loss-log "$dir/loss.log" \
        >"$dir/out.txt" 2>&1 || status=$?
    local wall
    wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
    if [ "$status" = 0 ] && ! grep -q "^val loss .* at step $STEPS\$" "$dir/out.txt"; then
        status=incomplete
    fi
    if [ "$status" = 0 ]; then
        echo "bench_quality.sh: $name: done in $wall s; $(grep '^final loss' "$dir/out.txt")" >&2
    else
        echo "bench_quality.sh: $name FAILED (exit status $status); from $dir/out.txt:" >&2
        { grep -m 2 '^error' "$dir/out.txt" || tail -n 15 "$dir/out.txt"; } | sed 's/^/    /' >&2
        FAILED+=("$name")
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$STAGE" "$status" "$wall" >>"$OUTDIR/runs.tsv"
}

# report: quality.csv and summary.md from OUTDIR/runs.tsv and the runs' files.
report() {
    python3 - "$OUTDIR" "$STEPS" <<'PY'
import csv, re, sys
out, steps = sys.argv[1], int(sys.argv[2])
runs = [l.rstrip("\n").split("\t") for l in open(f"{out}/runs.tsv")]
runs = list({r[0]: r for r in runs}.values())  # the last run of each option
data = {}
for name, stage, status, wall in runs:
    train, val, ms = {}, {}, None
    try:
        for line in open(f"{out}/{name}/loss.log"):
            s, loss = line.split()
            train[int(s)] = float(loss)
        for line in open(f"{out}/{name}/out.txt"):
            m = re.match(r"val loss ([0-9.]+) at step (\d+)", line)
            if m:
                val[int(m.group(2))] = float(m.group(1))
            m = re.match(r"timing: ([0-9.]+) ms/step", line)
            if m:
                ms = float(m.group(1))
    except FileNotFoundError:
        pass
    last = [train[s] for s in range(max(1, steps - 49), steps + 1) if s in train]
    data[name] = {"stage": stage, "ok": status == "0", "status": status, "wall": float(wall),
                  "train": train, "val": val, "ms": ms,
                  "final_val": val.get(steps) if status == "0" else None,
                  "tail_train": sum(last) / len(last) if status == "0" and last else None}
with open(f"{out}/quality.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["option", "step", "train_loss", "val_loss"])
    for name, d in data.items():
        for s in sorted(set(d["train"]) | set(d["val"])):
            w.writerow([name, s, "%.9g" % d["train"][s] if s in d["train"] else "",
                        "%.4f" % d["val"][s] if s in d["val"] else ""])
base = data.get("plain", {})
def diff(name, key):
    a, b = data[name][key], base.get(key)
    if a is None or b is None:
        return "-", "-"
    return "%+.4f" % (a - b), "%+.2f %%" % (100 * (a - b) / b)
def num(x, fmt):
    return fmt % x if x is not None else "-"
k = min(50, steps)
rows = ["| option | stage | final val loss | vs plain | vs plain (%%) | train loss, mean of last %d | vs plain | vs plain (%%) | ms/step | wall (s) | status |" % k,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
for name, d in data.items():
    rows.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %s |" % (
        name, d["stage"], num(d["final_val"], "%.4f"), *diff(name, "final_val"),
        num(d["tail_train"], "%.4f"), *diff(name, "tail_train"), num(d["ms"], "%.0f"),
        d["wall"], "ok" if d["ok"] else "FAILED (%s)" % d["status"]))
notes = ["",
         "final val loss: after step %d (train_gpt2 prints it to 4 decimals); vs plain: the option's less plain's, and that over plain's." % steps,
         "ms/step: train_gpt2's \"timing\" line (mean over ranks, steps 3 on); wall: the whole run, validation and start-up included."]
if "plain" not in data or not base.get("ok"):
    notes.append("no successful plain run: no differences.")
with open(f"{out}/summary.md", "w") as f:
    f.write(open(f"{out}/header.md").read() + "\n" + "\n".join(rows + notes) + "\n")
PY
}

# plot: bench/plot_quality.py, or how to get matplotlib.
plot() {
    if ! python3 -c 'import matplotlib' 2>/dev/null; then
        echo "bench_quality.sh: no plot: python3 has no matplotlib. Install it (pip install matplotlib," >&2
        echo "  or apt-get install python3-matplotlib), then: python3 bench/plot_quality.py $OUTDIR/quality.csv $PLOT" >&2
        return 0
    fi
    mkdir -p "$(dirname "$PLOT")"
    python3 "$ROOT_DIR/bench/plot_quality.py" "$OUTDIR/quality.csv" "$PLOT" &&
        echo "bench_quality.sh: plot written to $PLOT" >&2
}

main() {
    parse_args "$@"
    MPIRUN=${MPIRUN:-mpirun}
    TRAIN=$BUILD/bin/train_gpt2
    DATA=$ROOT_DIR/examples/data
    FAILED=()
    [ "$REPORT_ONLY" = 1 ] || [ -x "$TRAIN" ] || die "no $TRAIN (build it, or give --build)"
    if [ "$(id -u)" = 0 ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
        export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
    fi
    mkdir -p "$OUTDIR"
    if [ "$REPORT_ONLY" = 0 ]; then
        : >"$OUTDIR/runs.tsv"
        header >"$OUTDIR/header.md"
        local o
        for o in $OPTIONS; do run_option "$o"; done
    else
        [ -s "$OUTDIR/runs.tsv" ] || die "--report-only: no runs in $OUTDIR"
        [ -f "$OUTDIR/header.md" ] || header >"$OUTDIR/header.md"
        # the failures recorded by the runs
        mapfile -t FAILED < <(awk -F'\t' '$3 != "0" {print $1}' "$OUTDIR/runs.tsv")
    fi
    report
    cat "$OUTDIR/summary.md"
    echo "CSV: $OUTDIR/quality.csv; summary: $OUTDIR/summary.md; runs: $OUTDIR/<option>/"
    plot
    if [ "${#FAILED[@]}" -gt 0 ]; then
        echo "bench_quality.sh: FAILED: ${FAILED[*]} (see $OUTDIR/<option>/out.txt)" >&2
        exit 1
    fi
}

main "$@"
