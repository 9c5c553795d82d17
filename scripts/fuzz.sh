#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/fuzz.sh [SECONDS] — builds the libFuzzer harnesses of tests/fuzz
# with clang (ZRT_FUZZ=ON: ASan + UBSan + libFuzzer) in build-fuzz/, then runs
# each for SECONDS (default 10) on a copy of its committed corpus, as ctest's
# fuzz entries. Fails if any target crashes, leaks or hits UB; the input is
# then under build-fuzz/tests/fuzz/crashes/. scripts/test.sh calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${JOBS:-$(nproc)}
targets=(fuzz_config fuzz_size fuzz_gpt2_model fuzz_gpt2_shard fuzz_ckpt fuzz_report)
command -v clang >/dev/null || { echo "fuzz.sh: clang is missing (scripts/setup.sh installs it)" >&2; exit 1; }
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DZRT_WITH_CUDA=OFF -DZRT_FUZZ=ON -DZRT_FUZZ_SECONDS="$seconds" \
      -DZRT_BUILD_TESTS=OFF -DZRT_BUILD_EXAMPLES=OFF -DZRT_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j "$jobs" --target "${targets[@]}" >/dev/null
ctest --test-dir "$dir" -L fuzz --output-on-failure
