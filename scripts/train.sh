#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/train.sh — sets up the machine, builds, and trains GPT-2 (the d4
# preset: 4 layers, 256 channels, 3.5 M parameters) on the bundled King James
# Bible text, read as bytes, on 2 ranks at ZeRO stage 3 on the cpu backend.
# Prints the loss per step, the validation loss every 100 steps, and a short
# sample at the end; writes the model as build/gpt2_d4.bin (llm.c's layout).
# It starts the ranks with zero-launch (docs/launch.md), so every output line
# carries its rank. Extra arguments go to train_gpt2 (--help), e.g.
#   scripts/train.sh --steps 1000 --model d6
#   RANKS=4 scripts/train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
RANKS=${RANKS:-2}
LAUNCH_FLAGS=(-n "$RANKS")
[ "$(id -u)" -ne 0 ] || LAUNCH_FLAGS+=(--allow-run-as-root)
exec build/bin/zero-launch "${LAUNCH_FLAGS[@]}" -- build/bin/train_gpt2 --model d4 --stage 3 \
    --steps 300 --val-every 100 --save build/gpt2_d4.bin \
    --mem-report build/gpt2-mem-rank%r.json "$@"
