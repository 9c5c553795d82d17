#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Training that survives losing a host (zero-launch --max-restarts), on a
# 3-host cluster of network namespaces (scripts/cluster.sh), 2 ranks a host:
# GPT-2 d4, STEPS (12) steps, 2 micro-batches a step (a global batch of 12),
# stage 3, an asynchronous save every 5 steps. Each trial kills every
# process of host 2 or 3 (drawn; host 1 runs zero-launch) when the job
# prints a drawn step, then checks:
#   - zero-launch drops that host, restarts the job on the 2 hosts left (4
#     ranks), and exits 0 after the last step;
#   - the restarted ranks resumed from the newest checkpoint that was
#     published before the kill (or from step 0 when there was none yet),
#     and the runtime raised gradient accumulation 2 -> 3 to keep the global
#     batch, saying so;
#   - the final parameters (--save) are byte-identical to a run resumed by
#     hand from the same checkpoint on 4 ranks of one host with
#     --grad-accum 3 (both with flat collectives: the summation order of a
#     hierarchical reduction would depend on the hosts);
#   - no process is left in any host, and nothing the cluster made is left.
# It prints, per trial, the time from the kill to the restart's first step
# (docs/benchmarks.md). Skipped (77) where network namespaces cannot be made.
#   cluster_elastic.sh ZERO_LAUNCH TRAIN_GPT2 [TRIALS]
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/cluster_common.sh"
ZL=$1 TRAIN=$2 TRIALS=${3:-1}
STEPS=${STEPS:-12} # 16 in the hand runs of docs/testing.md
MODEL=(--model d4 --val-every 0 --sample-len 0 --stage 3 --steps "$STEPS")

cat >"$WORK/zero.json" <<JSON
{"comm_timeout_seconds": 3, "comm_hierarchy": "flat"}
JSON
ROOT=()
[ "$(id -u)" != 0 ] || ROOT=(--allow-run-as-root)


# stamp_output : every line the job prints, with the time it appeared
# ($WORK/stamped), from $WORK/out.
stamp_output() {
    tail -n +1 -F "$WORK/out" 2>/dev/null | while IFS= read -r line; do
        printf '%s %s\n' "$(date +%s.%N)" "$line"
    done >"$WORK/stamped" &
    stamper=$!
}

# start_job : the elastic job from host 1, in the background ($job).
start_job() {
    rm -rf "$WORK/ck" "$WORK/final.bin"
    : >"$WORK/out"
    "$CLUSTER" exec 1 "$ZL" "${ROOT[@]}" --bind none --env OPENBLAS_NUM_THREADS=1 \
        --mca mpi_yield_when_idle 1 --hostfile "$HOSTFILE" --ranks-per-host 2 \
        --launch-agent "$AGENT" --net "$SUBNET" --max-restarts 1 --min-hosts 2 -- \
        "$TRAIN" "${MODEL[@]}" --grad-accum 2 --config "$WORK/zero.json" \
        --save-dir "$WORK/ck" --save-every 5 --async-save --save "$WORK/final.bin" \
        >"$WORK/out" 2>&1 &
    job=$!
    stamp_output
}

# wait_for_step N : returns once the job printed step N.
wait_for_step() {
    local n
    for ((n = 0; n < 1200; n++)); do
        grep -Eq "step +$1/$STEPS " "$WORK/out" && return 0
        kill -0 "$job" 2>/dev/null || break
        sleep 0.05
    done
    cat "$WORK/out"
    fail "the job did not reach step $1"
}

end_of_job() {
    local status=0 n
    for ((n = 0; n < 3000; n++)); do
        kill -0 "$job" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$job" 2>/dev/null && { cat "$WORK/out"; fail "$1: the job still runs after 300 s"; }
    wait "$job" || status=$?
    sleep 0.3 # the stamper's last lines
    kill "$stamper" 2>/dev/null || true
    wait "$stamper" 2>/dev/null || true
    ((status == 0)) || { cat "$WORK/out"; fail "$1: zero-launch exited $status after the restart"; }
}

# says CASE REGEX : a line of the output matches REGEX; prints it.
says() {
    grep -Em1 -- "$2" "$WORK/out" || { cat "$WORK/out"; fail "$1: no line matching '$2'"; }
}

# reference STEP : the final parameters of a run resumed by hand from
# step-STEP (or started fresh when STEP is 0) on 4 ranks of this host.
reference() {
    local from=()
    [ "$1" = 0 ] || from=(--resume "$WORK/ck/$(printf 'step-%08d' "$1")")
    mpirun "${ROOT[@]}" -np 4 --oversubscribe -x OPENBLAS_NUM_THREADS=1 \
        --mca mpi_yield_when_idle 1 "$TRAIN" "${MODEL[@]}" --grad-accum 3 \
        --config "$WORK/zero.json" "${from[@]}" --save "$WORK/ref.bin" >"$WORK/ref.out" 2>&1 ||
        { cat "$WORK/ref.out"; fail "the hand-resumed run failed"; }
}

# restart_timeline : from FAULT_AT, when zero-launch saw the failure, when
# it started attempt 2 (both from its own lines) and when the restart's
# first step line appeared ($WORK/stamped): "seen +A s, restarted +B s,
# first step +C s".
restart_timeline() {
    awk -v a="$FAULT_AT" '
        / zero-launch: restart 1 of / {
            restarted = 1
            if (match($0, /failure was seen at [0-9.]+/))
                seen = substr($0, RSTART + 20, RLENGTH - 20) - a
        }
        / zero-launch: attempt 2 started at / {
            match($0, /started at [0-9.]+/)
            again = substr($0, RSTART + 11, RLENGTH - 11) - a
        }
        restarted && /step +[0-9]+\// {
            printf "seen +%.1f s, relaunched +%.1f s, first step +%.1f s", seen, again, $1 - a
            found = 1
            exit
        }
        END { if (!found) exit 1 }' "$WORK/stamped"
}

trial() {
    local t=$1 victim=$((2 + RANDOM % 2)) at=$((3 + RANDOM % (STEPS - 4))) pids resumed
    start_job
    wait_for_step "$at"
    pids=$(job_pids "$victim")
    [ -n "$pids" ] || fail "trial $t: no job process in zrt-h$victim"
    FAULT_AT=$(date +%s.%N)
    # shellcheck disable=SC2086
    kill -KILL $pids
    end_of_job "trial $t"
    says "trial $t" "zero-launch: restart 1 of 1: .*zrt-h$victim|zero-launch: restart 1 of 1: .*\.$victim[ :)]" >/dev/null
    says "trial $t" "restart 1: 4 ranks instead of the first attempt's 6: gradient_accumulation_steps 2 -> 3" >/dev/null
    resumed=$( (grep -Eo "resumed from [^ ]+ at step [0-9]+" "$WORK/out" || true) | awk '{print $NF}' | tail -1)
    [ -n "$resumed" ] || grep -q "restart 1: no checkpoint" "$WORK/out" ||
        { cat "$WORK/out"; fail "trial $t: the restart neither resumed nor said there was no checkpoint"; }
    resumed=${resumed:-0}
    ((resumed <= at)) || fail "trial $t: resumed at step $resumed, after the kill at step $at"
    reference "$resumed"
    cmp -s "$WORK/final.bin" "$WORK/ref.bin" ||
        fail "trial $t: the final parameters differ from the run resumed by hand at step $resumed"
    local took
    took=$(restart_timeline) || { cat "$WORK/stamped"; fail "trial $t: no step after the restart"; }
    echo "trial $t: zrt-h$victim killed at step $at; restarted on 4 ranks from step $resumed; after the kill: $took; final parameters = the hand-resumed run's"
    for h in 1 2 3; do
        [ -z "$(job_pids "$h")" ] || fail "trial $t: processes left in zrt-h$h"
    done
}

bring_up_cluster 3
for ((t = 1; t <= TRIALS; t++)); do
    trial "$t"
done
"$CLUSTER" down
cluster_up=0
# shellcheck disable=SC2086 # one inode a word
"$CLUSTER" check-clean $INODES
echo "PASS: $TRIALS of $TRIALS trials"
