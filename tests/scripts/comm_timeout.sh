#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A lost peer does not hang the MPI communicator: with comm_timeout_seconds 1,
# every wait, barrier and agree of the ranks left fails within the timeout
# plus a margin, with a sentence naming the collective (its bytes, its layer,
# the missing rank where MPI lets it be known), and the job then ends through
# abort_job (MPI_Abort), the sleeping rank included. The checks on each case
# are in tests/mpi/test_comm_timeout.c; this script checks that every
# surviving rank passed them, that the job ended soon, and that no process
# was left.
#   comm_timeout.sh TEST_COMM_TIMEOUT
source "$(dirname "$0")/common.sh"
PROG=$1
LIMIT=30 # 6 cases of at most 2.5 s each, and the job's start and end
for n in 2 3; do
    start=$(date +%s.%N)
    status=0
    # shellcheck disable=SC2086
    timeout 120 $MPIRUN -np "$n" "$PROG" >"$WORK/out" 2>&1 || status=$?
    elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    echo "n=$n: exit status $status after ${elapsed}s"
    check_aborted "n=$n" "$status" "$elapsed" "$LIMIT"
    ! grep -q '^FAIL' "$WORK/out" || { cat "$WORK/out"; fail "n=$n: a check failed"; }
    for ((r = 0; r < n - 1; r++)); do
        grep -q "^PASS rank $r\$" "$WORK/out" || { cat "$WORK/out"; fail "n=$n: rank $r did not pass"; }
    done
    grep -E '^rank 0 (all-reduce|reduce-scatter) after' "$WORK/out"
    check_no_process "n=$n" "^$PROG\$"
done
echo "PASS"
