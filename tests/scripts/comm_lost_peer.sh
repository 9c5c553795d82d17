#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A rank that stops mid-run (kill -STOP: alive, holding its sockets, answering
# nothing, as a hung or partitioned host would) ends the job within
# comm_timeout_seconds and a margin instead of hanging it until TCP gives up:
# the other rank's wait fails with a sentence naming the collective, its
# bytes and the layer, the example calls zrt_abort_job, and MPI_Abort takes
# every process, the stopped one included. Stages 0 (all-reduce) and 3
# (all-gather, reduce-scatter).
#   comm_lost_peer.sh MLP
source "$(dirname "$0")/common.sh"
MLP=$1
LIMIT=10 # seconds from the stop to the job's end (timeout 3)
cleanup() {
    local p
    for p in $(pgrep -f -- "^$MLP " || true); do
        kill -CONT "$p" 2>/dev/null || true
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
cat >"$WORK/zero.json" <<'JSON'
{"zero_optimization": {"stage3_prefetch_bucket_size": 50000,
                       "stage3_param_persistence_threshold": 1000},
 "comm_timeout_seconds": 3}
JSON
# rank_pid R: the pid of the mlp process that is rank R.
rank_pid() {
    local p
    for p in $(pgrep -f -- "^$MLP " || true); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
RE='ending the job: .*(all-reduce|all-gather|reduce-scatter|broadcast|barrier|agree)[^:]* did not complete within 3\.[0-9] s \(comm_timeout_seconds 3\): no answer from'

# trial STAGE : trains, stops rank 1 mid-run, checks that the job ended in
# time with the sentence naming the collective and left nothing behind.
trial() {
    local stage=$1
    # shellcheck disable=SC2086
    timeout 120 $MPIRUN -np 2 "$MLP" --stage "$stage" --steps 1000000 --hidden 300 --depth 4 \
        --config "$WORK/zero.json" >"$WORK/out" 2>&1 &
    job=$!
    for _ in $(seq 100); do # until training runs
        grep -q '^step 5/' "$WORK/out" && break
        sleep 0.1
    done
    grep -q '^step 5/' "$WORK/out" || { cat "$WORK/out"; fail "stage $stage: training did not start"; }
    victim=$(rank_pid 1) || fail "stage $stage: no rank 1 process"
    kill -STOP "$victim"
    stopped=$(date +%s.%N)
    status=0
    wait "$job" || status=$?
    elapsed=$(awk -v a="$stopped" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    echo "stage $stage: rank 1 (pid $victim) stopped; the job ended ${elapsed}s later, status $status"
    check_aborted "stage $stage" "$status" "$elapsed" "$LIMIT"
    grep -E "$RE" "$WORK/out" || { cat "$WORK/out"; fail "stage $stage: no sentence naming the collective"; }
    check_no_process "stage $stage" "^$MLP "
}

trial 0
# At stage 3 the sentence names the layer whose gather or reduction waited.
# The stop can land in the loop's own loss all-reduce instead (4 bytes, no
# layer; its sentence is right too): then it is tried again, 3 times at most.
for attempt in 1 2 3; do
    trial 3
    ! grep -Eq "$RE" <(grep 'for layer [0-9]' "$WORK/out") || break
    grep -Eq "all-reduce of 4 bytes did not complete" "$WORK/out" ||
        { cat "$WORK/out"; fail "stage 3: the sentence names neither a layer nor the loss"; }
    ((attempt < 3)) || { cat "$WORK/out"; fail "stage 3: 3 stops, none named a layer"; }
    echo "stage 3: the stop landed in the loss all-reduce; again"
done
echo "PASS"
