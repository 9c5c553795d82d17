#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/fuzz/run.sh TARGET CORPUS SECONDS CRASH_DIR — runs one libFuzzer
# target for SECONDS on a copy of CORPUS (the committed corpus stays as it
# is); a crash, leak or UB report fails it, with the input saved in
# CRASH_DIR. The ctest entries of tests/fuzz/CMakeLists.txt call it.
set -euo pipefail
target=$1 corpus=$2 seconds=$3 crashes=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/zrt-fuzz-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$corpus"/* "$work"/
mkdir -p "$crashes"
dict=()
[ -f "$corpus.dict" ] && dict=(-dict="$corpus.dict")
# stderr of the readers (one sentence per refused input) is closed; libFuzzer
# and the sanitizers still report on their own descriptor.
export LSAN_OPTIONS="suppressions=$here/../lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -close_fd_mask=3 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$crashes/$(basename "$target")-" "$work"
