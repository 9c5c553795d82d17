#!/usr/bin/env bash
# scripts/train.sh — sets up the machine, builds, and trains the MLP example
# on 2 ranks at ZeRO stage 3 on the cpu backend (config: examples/mlp/zero3.json;
# per-rank memory reports: build/mlp-mem-rank*.json). Extra arguments go to the
# example (see build/bin/mlp --help), e.g. scripts/train.sh --steps 100.
# RANKS=4 scripts/train.sh runs on 4 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
RANKS=${RANKS:-2}
MPI_FLAGS=(--oversubscribe --bind-to none)
[ "$(id -u)" -ne 0 ] || MPI_FLAGS+=(--allow-run-as-root)
exec mpirun -np "$RANKS" "${MPI_FLAGS[@]}" build/bin/mlp --config examples/mlp/zero3.json \
    --steps 50 --mem-report build/mlp-mem-rank%r.json "$@"
