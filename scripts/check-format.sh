#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/check-format.sh — checks that every C, header and CUDA file git
# tracks is formatted as .clang-format says; `--fix` formats them in place.
# CI runs the check (scripts/test.sh): a formatting difference fails it,
# naming the files and this command to fix them.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cu' '*.cuh' | grep -v '^third_party/')
if [ "${1:-}" = "--fix" ]; then
    clang-format -i "${files[@]}"
    echo "check-format: formatted ${#files[@]} files"
    exit 0
fi
bad=()
for f in "${files[@]}"; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
    echo "check-format: ${#bad[@]} file(s) differ from .clang-format:" >&2
    printf '  %s\n' "${bad[@]}" >&2
    echo "check-format: run 'bash scripts/check-format.sh --fix' ($(clang-format --version))" >&2
    exit 1
fi
echo "check-format: ${#files[@]} files match .clang-format ($(clang-format --version | sed 's/.*version //'))"
