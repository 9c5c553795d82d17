# SPDX-License-Identifier: Apache-2.0
# tests/scripts/common.sh — shared by the example-driving test scripts.
# ZRT_MPIRUN (set by ctest) is the mpirun command with its flags.
set -euo pipefail
MPIRUN=${ZRT_MPIRUN:-mpirun --oversubscribe --bind-to none}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zrt-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# run_ranks N PROGRAM ARGS... : runs PROGRAM on N ranks, output in $WORK/out
run_ranks() {
    local n=$1; shift
    # shellcheck disable=SC2086
    $MPIRUN -np "$n" "$@" >"$WORK/out" 2>&1
}
