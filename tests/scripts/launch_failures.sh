#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A rank that fails ends the whole job quickly, the failing rank is named with
# its exit status or signal, and zero-launch's own exit status is non-zero.
# The victim's healthy ranks sit in MPI_Allreduce and would wait forever, and
# a job where nothing fails runs ~10 s, so "ended within 10 s" means the
# failure, not the program, ended it.
#   launch_failures.sh ZERO_LAUNCH VICTIM   (VICTIM: tests/tools/launch_victim.c)
source "$(dirname "$0")/common.sh"
ZL=$1
VICTIM=$2
LIMIT=10

# launch N MODE: runs the victim on N ranks; sets STATUS and ELAPSED (seconds).
launch() {
    local start end
    start=$(date +%s.%N)
    STATUS=0
    timeout 60 "$ZL" --allow-run-as-root -n "$1" "$VICTIM" "$2" >"$WORK/out" 2>&1 || STATUS=$?
    end=$(date +%s.%N)
    ELAPSED=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    echo "n=$1 $2: exit status $STATUS after ${ELAPSED}s"
}
# says REGEX: the output has a line matching REGEX (extended).
says() { grep -Eq -- "$1" "$WORK/out" || { cat "$WORK/out"; fail "no line matching '$1'"; }; }
# no_leftovers MODE: every rank of the victim (and its wrapper) is gone within 2 s.
no_leftovers() {
    local re
    re="$(printf '%s' "$VICTIM" | sed 's/[][\\.*^$+?(){}|]/\\&/g') $1\$"
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        pgrep -f -- "$re" >/dev/null || return 0
        sleep 0.2
    done
    pgrep -af -- "$re"
    fail "victim processes left after the job ended"
}
# failed N MODE: the job failed by itself, soon, and zero-launch said so.
failed() {
    launch "$1" "$2"
    ((STATUS != 0)) || { cat "$WORK/out"; fail "n=$1 $2: zero-launch exited 0"; }
    ((STATUS != 124)) || { cat "$WORK/out"; fail "n=$1 $2: hung until timeout 60"; }
    awk -v t="$ELAPSED" -v l="$LIMIT" 'BEGIN { exit !(t < l) }' ||
        { cat "$WORK/out"; fail "n=$1 $2: took ${ELAPSED}s (limit ${LIMIT}s)"; }
    says '^zero-launch: the job failed \(mpirun exit status [1-9][0-9]*\)'
    no_leftovers "$2"
}

RANK='zero-launch: rank'
HOSTPID='\(host [^,]+, pid [0-9]+\)'
for n in 2 4; do
    failed "$n" exit3
    ((STATUS == 3)) || fail "n=$n exit3: zero-launch exited $STATUS, not 3"
    says "$RANK 1 $HOSTPID exited with status 3\$"

    failed "$n" abort
    says "$RANK 1 $HOSTPID was killed by signal 6 \(SIGABRT\)\$"

    failed "$n" kill
    says "$RANK $((n - 1)) $HOSTPID was killed by signal 9 \(SIGKILL\)\$"
done

launch 2 ok
((STATUS == 0)) || { cat "$WORK/out"; fail "ok: exit status $STATUS"; }
says '<stdout>: ?launch_victim: 1000 steps'
! grep -q 'zero-launch:' "$WORK/out" || { cat "$WORK/out"; fail "ok: zero-launch complained"; }
echo "PASS"
