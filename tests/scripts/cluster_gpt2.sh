#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GPT-2 d4 across a 2-host cluster of network namespaces (scripts/cluster.sh):
# 2 hosts x 2 ranks (launched through scripts/cluster-agent.sh) for 10 steps
# at stages 0 and 3, each byte-identical to 4 ranks on one host; ranks 0-1 ran
# on zrt-h1 and 2-3 on zrt-h2, each reaching the other rank of its host through
# shared memory (vader) and the other host's through TCP, as Open MPI's BML
# reports; at least the model's bytes per step crossed each host's link each
# way; and after `cluster.sh down` nothing it made is left (namespaces, links,
# the bridge, its state directory, processes). Skipped (77) where network
# namespaces cannot be made (not root, no CAP_NET_ADMIN).
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/cluster_common.sh"
TRAIN=$1 COMPARE=$2
STEPS=10
export OPENBLAS_NUM_THREADS=1 # 4 ranks on this host's cores, as on one host


# link_bytes I DIR : bytes host I sent (DIR=rx on the bridge side) or
# received (DIR=tx) so far.
link_bytes() { cat "/sys/class/net/zrt-v$1/statistics/$2_bytes"; }

snapshot_links() { echo "$(link_bytes 1 rx) $(link_bytes 1 tx) $(link_bytes 2 rx) $(link_bytes 2 tx)"; }

TRAIN_ARGS=(--model d4 --steps "$STEPS" --val-every 0 --sample-len 0)
# Each rank says where it runs, then becomes train_gpt2.
WHERE=(sh -c 'echo "rank $OMPI_COMM_WORLD_RANK on $(hostname)"; exec "$@"' _)

# run_on_cluster STAGE DUMP : 2 hosts x 2 ranks, mpirun inside host 1.
run_on_cluster() {
    # shellcheck disable=SC2086
    "$CLUSTER" exec 1 $MPIRUN -np 4 --hostfile "$HOSTFILE" --map-by slot \
        --mca plm_rsh_agent "$AGENT" \
        --mca btl self,vader,tcp --mca btl_tcp_if_include "$SUBNET" \
        --mca oob_tcp_if_include "$SUBNET" --mca mpi_yield_when_idle 1 \
        --mca btl_base_verbose 100 \
        -x OPENBLAS_NUM_THREADS \
        "${WHERE[@]}" "$TRAIN" "${TRAIN_ARGS[@]}" --stage "$1" --dump-params "$2" \
        >"$WORK/out" 2>&1 &
    wait $! # in the background, so that a signal brings the cluster down at once
}

check_placement() {
    local r
    for r in 0 1 2 3; do
        local want=zrt-h$((r / 2 + 1))
        grep -q "^rank $r on $want$" "$WORK/out" || { cat "$WORK/out"; fail "rank $r did not run on $want"; }
    done
    grep '^rank [0-3] on ' "$WORK/out" | sort | tr '\n' ' '
    echo
}

# check_transports : what each rank's BML chose to reach each other rank:
# vader within a host, tcp between hosts (from btl_base_verbose's lines).
check_transports() {
    local host to btl
    for host in 1 2; do
        for to in 0 1 2 3; do
            btl=tcp
            [ $((to / 2 + 1)) != "$host" ] || btl=vader
            grep -Eq "^\[zrt-h$host:[0-9]+\] mca: bml: Using $btl btl for send to \[\[[0-9]+,1\],$to\]" "$WORK/out" ||
                { cat "$WORK/out"; fail "no rank on zrt-h$host used $btl to reach rank $to"; }
        done
    done
    if grep -Eq "^\[zrt-h1:[0-9]+\] mca: bml: Using tcp btl for send to \[\[[0-9]+,1\],[01]\]|^\[zrt-h2:[0-9]+\] mca: bml: Using tcp btl for send to \[\[[0-9]+,1\],[23]\]" "$WORK/out"; then
        fail "ranks of one host talk over TCP"
    fi
    echo "transports: vader within each host, tcp between them"
}

# check_traffic BEFORE AFTER MODEL_BYTES STAGE : each host sent and received
# at least the model's bytes per step.
check_traffic() {
    local before after min=$(($3 * STEPS)) i names=(h1-sent h1-received h2-sent h2-received)
    read -ra before <<<"$1"
    read -ra after <<<"$2"
    for i in 0 1 2 3; do
        local moved=$((after[i] - before[i]))
        echo "stage $4: ${names[i]} $moved bytes"
        [ "$moved" -ge "$min" ] ||
            fail "stage $4: ${names[i]} moved $moved bytes over its link, less than $min ($STEPS steps x the model's bytes): did the ranks talk over the cluster?"
    done
}

# check_nothing_left NETNS_INODES HOLDER_PIDS : after down.
check_nothing_left() {
    local left="" inode pid p
    left+=$(ip netns list | grep '^zrt-' || true)
    left+=$(ip -o link show | grep -E '^[0-9]+: zrt-' || true)
    [ ! -e /run/zrt-cluster ] || left+=" /run/zrt-cluster"
    for pid in $2; do
        # A zombie has ended; pid 1 reaps it (a second or so in a container).
        [ ! -e "/proc/$pid" ] || grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null ||
            left+=" holder process $pid"
    done
    for inode in $1; do
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/ns/net" 2>/dev/null)" != "net:[$inode]" ] ||
                left+=" process ${p#/proc/} in a cluster namespace"
        done
    done
    [ -z "$left" ] || fail "left behind after cluster.sh down: $left"
}

bring_up_cluster
for stage in 0 3; do
    run_ranks 4 "$TRAIN" "${TRAIN_ARGS[@]}" --stage "$stage" --dump-params "$WORK/one$stage.bin" ||
        { cat "$WORK/out"; fail "4 ranks on one host at stage $stage"; }
    counters_before=$(snapshot_links)
    run_on_cluster "$stage" "$WORK/two$stage.bin" ||
        { cat "$WORK/out"; fail "2 hosts x 2 ranks at stage $stage"; }
    counters_after=$(snapshot_links)
    grep -E '^(final loss|timing)' "$WORK/out"
    check_placement
    check_transports
    "$COMPARE" "$WORK/one$stage.bin" "$WORK/two$stage.bin" ||
        fail "stage $stage: 2 hosts x 2 ranks differ from 4 ranks on one host"
    check_traffic "$counters_before" "$counters_after" "$(stat -c %s "$WORK/one$stage.bin")" "$stage"
done
"$COMPARE" "$WORK/two0.bin" "$WORK/two3.bin" || fail "stage 3 differs from stage 0 across hosts"
check_only_holders_in_hosts
inodes=$(stat -L -c %i /run/netns/zrt-h1 /run/netns/zrt-h2)
holders=$(awk '$1 == "host" {print $6}' /run/zrt-cluster/state)
"$CLUSTER" down
cluster_up=0
check_nothing_left "$inodes" "$holders"
echo "PASS"
