#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Asynchronous saves under SIGKILL: KILLS trials (third argument, default
# 3; 20 by hand, docs/testing.md). Each starts GPT-2 d4 on 2 ranks at
# stage 3 saving after every step with --async-save (a save is nearly
# always in flight: the next zrt_save waits for the previous one), waits
# for the first `latest`, sleeps a random 0-1.5 s, then SIGKILLs every
# process of the job at once (mpirun and both ranks, writer threads with
# them). `zero-ckpt verify` must accept what `latest` names; a step-N.tmp
# left behind means the kill landed during an asynchronous save.
source "$(dirname "$0")/common.sh"
TRAIN=$1 CKPT=$2
KILLS=${3:-3}

wait_for_latest() { # dir, pid
    for _ in $(seq 600); do
        [ -f "$1/latest" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# mpirun's pid and its children's (the ranks), killed in one call.
kill_job() { # pid
    local pids
    mapfile -t pids < <(pgrep -P "$1" -x train_gpt2)
    [ "${#pids[@]}" -eq 2 ] || fail "found ${#pids[@]} ranks, not 2"
    kill -9 "$1" "${pids[@]}"
    wait "$1" 2>/dev/null || true
    for _ in $(seq 50); do # the ranks, reparented, gone
        kill -0 "${pids[@]}" 2>/dev/null || return 0
        sleep 0.1
    done
    fail "ranks ${pids[*]} still alive after SIGKILL"
}

# Open MPI's shared-memory segments (vader) are removed by mpirun at the
# end of a job; a job killed with its mpirun leaves them in /dev/shm. Those
# that appeared since LIST was taken and that no live process maps are the
# killed job's.
remove_orphan_segments() { # LIST
    local f
    for f in /dev/shm/vader_segment.*; do
        [ -e "$f" ] || continue
        grep -qxF -- "$f" "$1" && continue
        grep -qsF -- "$f" /proc/[0-9]*/maps && continue
        rm -f -- "$f"
    done
}

# A trial that fails leaves no job behind.
job=0
trap 'pkill -9 -P "$job" -x train_gpt2 || true; kill -9 "$job" 2>/dev/null || true; rm -rf "$WORK"' EXIT
inside=0
for t in $(seq "$KILLS"); do
    dir="$WORK/t$t"
    compgen -G '/dev/shm/vader_segment.*' >"$WORK/shm" || true
    $MPIRUN -np 2 "$TRAIN" --model d4 --steps 100000 --val-every 0 --sample-len 0 \
        --stage 3 --save-dir "$dir" --save-every 1 --async-save >"$WORK/run" 2>&1 &
    job=$!
    wait_for_latest "$dir" "$job" || { cat "$WORK/run"; fail "trial $t: no checkpoint"; }
    ms=$((RANDOM % 1501))
    delay=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
    sleep "$delay"
    kill_job "$job"
    remove_orphan_segments "$WORK/shm"
    [ -f "$dir/latest" ] || fail "trial $t: no latest after the kill"
    latest=$(cat "$dir/latest")
    saving=no
    if compgen -G "$dir/step-*.tmp" >/dev/null; then
        saving=yes
        inside=$((inside + 1))
    fi
    if "$CKPT" verify "$dir" >"$WORK/verify" 2>&1; then
        verified=ok
    else
        verified=FAILED
    fi
    echo "trial $t: killed after ${delay} s, latest $latest, save in flight: $saving," \
         "verify $verified"
    [ "$verified" = ok ] || { cat "$WORK/verify"; fail "trial $t: latest names a bad checkpoint"; }
    rm -rf "$dir"
done
echo "$KILLS of $KILLS kills left a latest that verifies; $inside landed during a save"
echo "PASS"
