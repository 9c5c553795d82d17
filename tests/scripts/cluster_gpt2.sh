#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GPT-2 d4 across a 2-host cluster of network namespaces (scripts/cluster.sh):
# 2 hosts x 2 ranks (launched through scripts/cluster-agent.sh) for 10 steps
# at stages 0 and 3 (comm_hierarchy auto: hierarchical, one group per host),
# each byte-identical to 4 ranks on one host routed over the same groups
# (comm_group_size 2), and, with comm_hierarchy flat, to 4 flat ranks on one
# host; ranks 0-1 ran
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
echo '{"log_level": "info"}' >"$WORK/auto.json"
echo '{"comm_group_size": 2, "log_level": "info"}' >"$WORK/groups.json"
echo '{"comm_hierarchy": "flat", "log_level": "info"}' >"$WORK/flat.json"
# Each rank says where it runs, then becomes train_gpt2.
WHERE=(sh -c 'echo "rank $OMPI_COMM_WORLD_RANK on $(hostname)"; exec "$@"' _)

# run_on_cluster STAGE DUMP CONFIG : 2 hosts x 2 ranks, mpirun inside host 1.
run_on_cluster() {
    # shellcheck disable=SC2086
    "$CLUSTER" exec 1 $MPIRUN -np 4 --hostfile "$HOSTFILE" --map-by slot \
        --mca plm_rsh_agent "$AGENT" \
        --mca btl self,vader,tcp --mca btl_tcp_if_include "$SUBNET" \
        --mca oob_tcp_if_include "$SUBNET" --mca mpi_yield_when_idle 1 \
        --mca btl_base_verbose 100 \
        -x OPENBLAS_NUM_THREADS \
        "${WHERE[@]}" "$TRAIN" "${TRAIN_ARGS[@]}" --stage "$1" --dump-params "$2" --config "$3" \
        >"$WORK/out" 2>&1 &
    wait $! # in the background, so that a signal brings the cluster down at once
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

# routed MODE : the log line saying how the collectives route.
routed() {
    grep -q "collectives: $1" "$WORK/out" || { cat "$WORK/out"; fail "the collectives were not $1"; }
}

bring_up_cluster
for stage in 0 3; do
    run_ranks 4 "$TRAIN" "${TRAIN_ARGS[@]}" --stage "$stage" --dump-params "$WORK/one$stage.bin" \
        --config "$WORK/groups.json" || { cat "$WORK/out"; fail "4 ranks on one host at stage $stage"; }
    routed "hierarchical: 2 groups of 2 ranks"
    counters_before=$(snapshot_links)
    run_on_cluster "$stage" "$WORK/two$stage.bin" "$WORK/auto.json" ||
        { cat "$WORK/out"; fail "2 hosts x 2 ranks at stage $stage"; }
    counters_after=$(snapshot_links)
    routed "hierarchical: 2 groups of 2 ranks"
    grep -E '^(final loss|timing)' "$WORK/out"
    check_placement "stage $stage" "^"
    check_transports "stage $stage" "^"
    "$COMPARE" "$WORK/one$stage.bin" "$WORK/two$stage.bin" ||
        fail "stage $stage: 2 hosts x 2 ranks differ from 4 ranks on one host in 2 groups"
    check_traffic "$counters_before" "$counters_after" "$(stat -c %s "$WORK/one$stage.bin")" "$stage"
done
"$COMPARE" "$WORK/two0.bin" "$WORK/two3.bin" || fail "stage 3 differs from stage 0 across hosts"
# Flat, every rank to every rank: the same as flat on one host.
run_ranks 4 "$TRAIN" "${TRAIN_ARGS[@]}" --stage 3 --dump-params "$WORK/one-flat.bin" \
    --config "$WORK/flat.json" || { cat "$WORK/out"; fail "4 flat ranks on one host"; }
run_on_cluster 3 "$WORK/two-flat.bin" "$WORK/flat.json" ||
    { cat "$WORK/out"; fail "2 hosts x 2 flat ranks"; }
routed flat
"$COMPARE" "$WORK/one-flat.bin" "$WORK/two-flat.bin" ||
    fail "flat: 2 hosts x 2 ranks differ from 4 ranks on one host"
check_only_holders_in_hosts
"$CLUSTER" down
cluster_up=0
# shellcheck disable=SC2086 # one inode a word
"$CLUSTER" check-clean $INODES
echo "PASS"
