#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A lost host, on a 2-host cluster of network namespaces (scripts/cluster.sh),
# GPT-2 d4 on 2 hosts x 2 ranks through plain zero-launch (its own monitor
# and keepalive defaults; comm_timeout_seconds 3, below the monitor's 5 s
# heartbeat bound so that the ranks left waiting speak first):
#   link: host 2's link goes down mid-run (`ip link set zrt-v2 down`, the
#         bridge side): the job ends within comm_timeout_seconds + 10 s with
#         the communicator's sentence naming the collective and the host, and
#         zero-launch's naming zrt-h2 and its ranks (no heartbeat);
#   kill: every process in host 2 (its daemon, wrappers and ranks; not the
#         cluster's holder) is SIGKILLed: the job ends within 10 s with
#         zero-launch's sentence naming zrt-h2 and its ranks (their
#         connections closed without an exit status);
# and each time zero-launch's status is not 0 and no process of the job is
# left in either host (given 2 s; 10 s for the lost host's daemon with its
# link down, below); after `cluster.sh down` nothing the cluster made is left
# (`cluster.sh check-clean`). TRIALS (default 1) trials of each; CASES
# (default "link kill") the cases, in that order each trial.
# Skipped (77) where network namespaces cannot be made.
#   cluster_faults.sh ZERO_LAUNCH TRAIN_GPT2 [TRIALS]
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/cluster_common.sh"
ZL=$1 TRAIN=$2 TRIALS=${3:-1}
TIMEOUT=3          # comm_timeout_seconds
LINK_LIMIT=$((TIMEOUT + 10))
KILL_LIMIT=10


# The cluster, plus what the fault cases need: zero-launch's sentence for
# host 2, and host 2's TCP giving up within seconds.
bring_up_fault_cluster() {
    bring_up_cluster
    local addr2
    addr2=$(addr_of 2)
    LOST_HOST="^zero-launch: host zrt-h2 \(${addr2//./\\.}\) lost: ranks 2, 3 stopped answering \("
    # Only for the no-process-left check of the link case, and only in host 2:
    # zero-launch ends the job (it kills mpirun) and the wrappers in host 2
    # stop their ranks, but host 2's Open MPI daemon (orted) is out of every
    # reach there. It ends once its TCP connection to mpirun fails, and that
    # connection holds unacknowledged segments (its reports that its ranks
    # ended; `ss -to` shows a Send-Q of a few KiB and the retransmission
    # timer, not keepalive's), so keepalive does not apply, only the
    # retransmission limit: about 15 min at Linux's tcp_retries2 15, 3 s at 3
    # (0.2 s x (2^4 - 1)). Nothing in host 1 needs it.
    ip netns exec zrt-h2 sysctl -qw net.ipv4.tcp_retries2=3
}

addr_of() { awk -v n="zrt-h$1" '$1 == "host" && $3 == n {print $4}' /run/zrt-cluster/state; }

# link_up : host 2's link up again, and each host reaching the other (a
# refused connection is an answer): a neighbour entry that failed while the
# link was down would refuse the next job's daemon its connection for a while.
link_up() {
    local n from to said
    ip link set zrt-v2 up
    for from in 1 2; do
        to=$((3 - from))
        for ((n = 0; ; n++)); do
            said=$(ip netns exec "zrt-h$from" timeout 1 bash -c \
                "exec 3<>/dev/tcp/$(addr_of "$to")/9" 2>&1 || true)
            [[ $said != *refused* ]] || break
            ((n < 100)) || fail "zrt-h$from does not reach zrt-h$to after the link came up"
            sleep 0.1
        done
    done
}


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
ROOT=()
[ "$(id -u)" != 0 ] || ROOT=(--allow-run-as-root)

# start_job : GPT-2 d4 for many steps from host 1, in the background ($job);
# returns once training runs (step 3 printed).
start_job() {
    : >"$WORK/out" # here: the job's own `>` may come after the first grep below
    "$CLUSTER" exec 1 "$ZL" "${ROOT[@]}" --bind none --env OPENBLAS_NUM_THREADS=1 \
        --mca mpi_yield_when_idle 1 --hostfile "$HOSTFILE" --ranks-per-host 2 \
        --launch-agent "$AGENT" --net "$SUBNET" -- \
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
    says "link $t" "${LOST_HOST}no heartbeat for 5 s"
    # The lost host's daemon ends once its own connection to mpirun fails
    # (tcp_retries2, above), with the link still down.
    only_holders_left "link $t" 100
    echo "link $t: no job process left in either host $(awk -v a="$FAULT_AT" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s after the fault"
    link_up
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
    says "kill $t" "${LOST_HOST}their connections closed without an exit status\)"
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
