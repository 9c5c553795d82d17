#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench_adamw_vs_torch.sh: zrt's CPU AdamW against memory bandwidth, a naive
# loop and PyTorch, on the same sizes and thread counts.
#
# Runs build/bin/bench_adamw (fused kernel, STREAM-like triad, naive 8-pass
# AdamW; 1 thread and THREADS threads), then bench/adamw_torch.py (torch
# AdamW foreach=True and fused=True at the same thread counts) with
# bench_adamw's output, which adds a side-by-side table. Without an
# importable torch the second half prints a note and the script still
# succeeds.
#
# Usage (from the repo root):
#   bench/bench_adamw_vs_torch.sh [BUILD_DIR]    # BUILD_DIR defaults to "build"
# Environment overrides: SIZES (default 1M,16M,64M), REPS (default 10),
# THREADS (default: nproc, the pool bench_adamw starts by default),
# PYTHON (default python3).
set -euo pipefail

build=${1:-build}
bin="$build/bin/bench_adamw"
sizes=${SIZES:-1M,16M,64M}
reps=${REPS:-10}
threads=${THREADS:-$(nproc)}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)

if [[ ! -x "$bin" ]]; then
    echo "bench_adamw_vs_torch.sh: $bin not found (build the bench_adamw target first)" >&2
    exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$bin" --sizes "$sizes" --reps "$reps" --threads "$threads" | tee "$out"
echo
"$python" "$here/adamw_torch.py" --sizes "$sizes" --reps "$reps" --threads "$threads" \
    --zrt "$out"
