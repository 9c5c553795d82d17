#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Crash safety: 20 trials (CKPT_CRASH_TRIALS). Each starts GPT-2 (d4 shape,
# 64 channels) on 2 or 3 ranks at a random stage, saving after every step
# (a save is about half of a step here), waits for the first checkpoint,
# then SIGKILLs one rank: half the trials at a random moment within the
# next 0.3 s, half 0-9 ms after a save created its step-N.tmp. The job
# must end (no rank left waiting), `zero-ckpt verify` must accept whatever
# `latest` names, and a 1-rank run must resume from it. At least one kill
# must land inside a save (a step-N.tmp directory left behind), or the test
# tested nothing.
source "$(dirname "$0")/common.sh"
TRAIN=$1 CKPT=$2
TRIALS=${CKPT_CRASH_TRIALS:-20}
GPT=(--model d4 --channels 64 --max-seq-len 64 --seq-len 32 --batch 2 --val-every 0
     --sample-len 0)

wait_for_latest() { # dir, pid
    for _ in $(seq 300); do
        [ -f "$1/latest" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
wait_for_save() { # dir, pid
    for _ in $(seq 20000); do
        compgen -G "$1/*.tmp" >/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
    done
}
# The job must end by itself once a rank is gone: 30 s at most.
wait_for_end() { # pid
    for _ in $(seq 300); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -9 "$1"
    return 1
}

# One trial; its files are named after the lane that runs it.
trial() { # lane, number
    local lane=$1 t=$2
    local dir="$WORK/t$t" n=$((2 + RANDOM % 2)) stage=$((RANDOM % 4)) out="$WORK/lane$1"
    $MPIRUN -np "$n" "$TRAIN" "${GPT[@]}" --stage "$stage" --steps 100000 \
        --save-dir "$dir" --save-every 1 >"$out.run" 2>&1 &
    local job=$!
    wait_for_latest "$dir" "$job" || { cat "$out.run"; fail "trial $t: no checkpoint"; }
    local ranks
    mapfile -t ranks < <(pgrep -P "$job" -x train_gpt2)
    [ "${#ranks[@]}" -eq "$n" ] || fail "trial $t: found ${#ranks[@]} ranks, not $n"
    local victim=$((RANDOM % n))
    if [ $((t % 4)) -lt 2 ]; then # any moment in the next 0.3 s
        sleep "0.$(printf %03d $((RANDOM % 300)))"
    else # 0-9 ms after a save created its step-N.tmp
        wait_for_save "$dir" "$job"
        sleep "0.00$((RANDOM % 10))"
    fi
    kill -9 "${ranks[$victim]}"
    wait_for_end "$job" || fail "trial $t: the job did not end after a rank was killed"
    local left
    left=$(find "$dir" -maxdepth 1 -name '*.tmp' | wc -l)
    "$CKPT" verify "$dir" >"$out.verify" 2>&1 ||
        { cat "$out.verify"; fail "trial $t: latest names a bad checkpoint"; }
    local latest step
    latest=$(cat "$dir/latest")
    step=$((10#${latest#step-}))
    $MPIRUN -np 1 "$TRAIN" "${GPT[@]}" --steps $((step + 1)) --resume "$dir" >"$out.resume" 2>&1 ||
        { cat "$out.resume"; fail "trial $t: cannot resume from $latest"; }
    grep -q "^resumed from $dir at step $step " "$out.resume" ||
        { cat "$out.resume"; fail "trial $t: did not resume at step $step"; }
    echo "trial $t: $n ranks, stage $stage, rank $victim killed; latest $latest" \
         "verified and resumed$([ "$left" -eq 0 ] || echo " (killed inside a save)")"
    rm -rf "$dir"
}

# Two lanes at once: most of a trial is mpirun noticing the dead rank.
lane() { # lane, first trial, step
    for t in $(seq "$2" 2 "$TRIALS"); do trial "$1" "$t" || exit 1; done
}
lane a 1 >"$WORK/a.log" 2>&1 &
pa=$!
lane b 2 >"$WORK/b.log" 2>&1 &
pb=$!
ok=1
wait "$pa" || ok=0
wait "$pb" || ok=0
cat "$WORK/a.log" "$WORK/b.log"
[ "$ok" -eq 1 ] || fail "a trial failed (above)"
inside=$(cat "$WORK/a.log" "$WORK/b.log" | grep -c "killed inside a save" || true)
echo "$inside of $TRIALS kills landed inside a save"
[ "$inside" -gt 0 ] || fail "no kill landed inside a save: nothing was tested"
echo "PASS"
