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
# check_aborted LABEL STATUS ELAPSED LIMIT : a job run under `timeout` that
# was to end by an abort did: not hung (status 124), not 0, within LIMIT s.
check_aborted() {
    ((${2} != 124)) || { cat "$WORK/out"; fail "$1: the job hung"; }
    ((${2} != 0)) || { cat "$WORK/out"; fail "$1: the job ended with status 0, not by abort"; }
    awk -v t="$3" -v l="$4" 'BEGIN { exit !(t < l) }' ||
        { cat "$WORK/out"; fail "$1: took ${3}s (limit ${4}s)"; }
}
# check_no_process LABEL PATTERN : no process's command line matches PATTERN
# (pgrep -f), given 4 s after the job's end.
check_no_process() {
    for _ in $(seq 20); do
        pgrep -f -- "$2" >/dev/null || break
        sleep 0.2
    done
    ! pgrep -af -- "$2" || fail "$1: processes left after the job ended"
}
