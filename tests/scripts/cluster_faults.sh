#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A lost host, on a 2-host cluster of network namespaces (scripts/cluster.sh),
# GPT-2 d4 on 2 hosts x 2 ranks through zero-launch (comm_timeout_seconds 5):
#   link: host 2's link goes down mid-run (`ip link set zrt-v2 down`, the
#         bridge side): the job ends within comm_timeout_seconds + 10 s with
#         the communicator's sentence naming the collective and the host;
#   kill: every process in host 2 (its daemon, wrappers and ranks; not the
#         cluster's holder) is SIGKILLed: the job ends within 10 s with a
#         sentence naming the host;
# and each time zero-launch's status is not 0 and no process of the job is
# left in either host (given 2 s); after `cluster.sh down` nothing the cluster
# made is left (`cluster.sh check-clean`). TRIALS (default 1) trials of each.
# Skipped (77) where network namespaces cannot be made.
#   cluster_faults.sh ZERO_LAUNCH TRAIN_GPT2 [TRIALS]
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/cluster_common.sh"
ZL=$1 TRAIN=$2 TRIALS=${3:-1}
TIMEOUT=5          # comm_timeout_seconds
LINK_LIMIT=$((TIMEOUT + 10))
KILL_LIMIT=10


# The cluster, plus what the fault cases need: host 2's names, and TCP that
# gives up within seconds.
bring_up_fault_cluster() {
    bring_up_cluster
    # host 2 as Open MPI names it (its hostfile line) or as zero-launch does
    ADDR2=$(awk '$1 == "host" && $3 == "zrt-h2" {print $4}' /run/zrt-cluster/state)
    LOST_HOST="(node|[Hh]ost):? +(zrt-h2|${ADDR2//./\\.})"
    # Each host's TCP gives up on an unanswered segment after about 3 s
    # (tcp_retries2 3: 0.2 s x (2^4 - 1)) instead of the default's 15 min:
    # once the job aborts, mpirun's order to the lost host's daemon is such a
    # segment, and mpirun waits for that daemon until its connection fails.
    local i
    for i in 1 2; do
        ip netns exec "zrt-h$i" sysctl -qw net.ipv4.tcp_retries2=3
    done
}

holder_of() { awk -v n="zrt-h$1" '$1 == "host" && $3 == n {print $6}' /run/zrt-cluster/state; }

# job_pids I : the processes in host I other than the cluster's holder.
job_pids() { ip netns pids "zrt-h$1" | grep -vx "$(holder_of "$1")" || true; }

# only_holders_left CASE [TENTHS] : the job's processes have ended in both
# hosts, given TENTHS tenths of a second (default 20) after the job's end.
only_holders_left() {
    local i n pids
    for i in 1 2; do
        for ((n = 0; n < ${2:-20}; n++)); do
            pids=$(job_pids "$i")
            [ -n "$pids" ] || break
            sleep 0.1
        done
        [ -z "$pids" ] ||
            fail "$1: processes left in zrt-h$i after the job: $(echo "$pids" | xargs ps -o pid,args -p)"
    done
}

cat >"$WORK/zero.json" <<JSON
{"comm_timeout_seconds": $TIMEOUT}
JSON
KEEPALIVE=(--mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 3 --mca oob_tcp_keepalive_probes 3)
ROOT=()
[ "$(id -u)" != 0 ] || ROOT=(--allow-run-as-root)

# start_job : GPT-2 d4 for many steps from host 1, in the background ($job);
# returns once training runs (step 3 printed).
start_job() {
    "$CLUSTER" exec 1 "$ZL" "${ROOT[@]}" --bind none --env OPENBLAS_NUM_THREADS=1 \
        --mca mpi_yield_when_idle 1 --hostfile "$HOSTFILE" --ranks-per-host 2 \
        --launch-agent "$AGENT" --net "$SUBNET" "${KEEPALIVE[@]}" -- \
        "$TRAIN" --model d4 --steps 100000 --val-every 0 --sample-len 0 --stage 3 \
        --config "$WORK/zero.json" >"$WORK/out" 2>&1 &
    job=$!
    local n
    for ((n = 0; n < 600; n++)); do
        grep -q 'step    3/' "$WORK/out" && return 0
        kill -0 "$job" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/out"
    fail "training did not start"
}

# end_of_job CASE LIMIT : waits for the job (at most 120 s), then checks its
# status and time; sets ELAPSED.
end_of_job() {
    local status=0 n
    for ((n = 0; n < 1200; n++)); do
        kill -0 "$job" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$job" 2>/dev/null; then
        cat "$WORK/out"
        fail "$1: the job still runs 120 s after the fault"
    fi
    wait "$job" || status=$?
    ELAPSED=$(awk -v a="$FAULT_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    ((status != 0)) || { cat "$WORK/out"; fail "$1: zero-launch exited 0"; }
    awk -v t="$ELAPSED" -v l="$2" 'BEGIN { exit !(t < l) }' ||
        { cat "$WORK/out"; fail "$1: the job ended ${ELAPSED}s after the fault (limit $2 s)"; }
    STATUS=$status
}

# says CASE REGEX : a line of the output matches REGEX; prints it.
says() {
    grep -Em1 -- "$2" "$WORK/out" || { cat "$WORK/out"; fail "$1: no line matching '$2'"; }
}

link_trial() {
    local t=$1
    start_job
    FAULT_AT=$(date +%s.%N)
    ip link set zrt-v2 down
    end_of_job "link $t" "$LINK_LIMIT"
    echo "link $t: zrt-v2 down; the job ended ${ELAPSED}s later (zero-launch status $STATUS)"
    says "link $t" "(all-reduce|all-gather|reduce-scatter|broadcast|barrier|agree).* did not complete within $TIMEOUT\.[0-9] s \(comm_timeout_seconds $TIMEOUT\): no answer from .*zrt-h2"
    # The lost host's daemon ends once its own connection to mpirun fails
    # (tcp_retries2 or keepalive), with the link still down.
    only_holders_left "link $t" 100
    echo "link $t: no job process left in either host $(awk -v a="$FAULT_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s after the fault"
    ip link set zrt-v2 up
}

kill_trial() {
    local t=$1 pids
    start_job
    pids=$(job_pids 2)
    [ -n "$pids" ] || fail "kill $t: no job process in zrt-h2"
    FAULT_AT=$(date +%s.%N)
    # shellcheck disable=SC2086
    kill -KILL $pids
    end_of_job "kill $t" "$KILL_LIMIT"
    echo "kill $t: $(wc -w <<<"$pids") processes in zrt-h2 SIGKILLed; the job ended ${ELAPSED}s later (zero-launch status $STATUS)"
    says "kill $t" "$LOST_HOST"
    only_holders_left "kill $t"
}

bring_up_fault_cluster
for ((t = 1; t <= TRIALS; t++)); do
    for c in ${CASES:-link kill}; do
        "${c}_trial" "$t"
    done
done
"$CLUSTER" down
cluster_up=0
# shellcheck disable=SC2086 # one inode a word
"$CLUSTER" check-clean $INODES
echo "PASS"
