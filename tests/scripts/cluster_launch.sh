#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-launch across hosts, on a 2-host cluster of network namespaces
# (scripts/cluster.sh): from inside host 1, `zero-launch --hostfile
# --launch-agent scripts/cluster-agent.sh --net <the cluster's subnet>
# --ranks-per-host 2` trains GPT-2 d4 on 2 hosts x 2 ranks at stages 0, 1, 2
# and 3, its collectives hierarchical (comm_hierarchy auto: one group per
# host). Its parameters are bit-identical across the stages and to 4 ranks on
# one host through zero-launch routed over the same groups (comm_group_size
# 2); ranks 0-1 ran on zrt-h1 and 2-3 on zrt-h2;
# each rank reached the other rank of its host through shared memory (vader)
# and the other host's through TCP (Open MPI's BML says so); the job left no
# process in the hosts, and after `cluster.sh down` nothing the cluster made is
# left (`cluster.sh check-clean`). Traffic stays between the namespaces the
# cluster makes. Skipped (77) where network namespaces cannot be made.
#   cluster_launch.sh ZERO_LAUNCH TRAIN_GPT2 DUMP_COMPARE
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/cluster_common.sh"
ZL=$1 TRAIN=$2 COMPARE=$3
STEPS=6


ROOT=()
[ "$(id -u)" != 0 ] || ROOT=(--allow-run-as-root)
TRAIN_ARGS=(--model d4 --steps "$STEPS" --val-every 0 --sample-len 0)
# 4 ranks share this machine's cores wherever they run: no binding, one BLAS
# thread each, and ranks that yield while they wait.
COMMON=("${ROOT[@]}" --bind none --env OPENBLAS_NUM_THREADS=1 --mca mpi_yield_when_idle 1)
# Each rank says where it runs, then becomes train_gpt2.
# shellcheck disable=SC2016 # expanded by the rank's shell
WHERE=(sh -c 'echo "rank $OMPI_COMM_WORLD_RANK on $(hostname)"; exec "$@"' _)

# on_cluster ZERO_LAUNCH_ARGS... : zero-launch across the hosts, from host 1.
on_cluster() {
    "$CLUSTER" exec 1 "$ZL" "${COMMON[@]}" --hostfile "$HOSTFILE" --ranks-per-host 2 \
        --launch-agent "$AGENT" --net "$SUBNET" "$@"
}

# run_on_cluster STAGE DUMP : in the background, so that a signal brings the
# cluster down at once.
run_on_cluster() {
    on_cluster --mca btl_base_verbose 100 -- "${WHERE[@]}" "$TRAIN" "${TRAIN_ARGS[@]}" \
        --stage "$1" --dump-params "$2" >"$WORK/out" 2>&1 &
    wait $!
}

# Every line is tagged by Open MPI: [job,rank]<stdout>: or <stderr>:.
TAG='^\[[0-9]+,[0-9]+\]<std(out|err)>: ?'

# 4 ranks on one host in 2 groups of 2, the reference.
echo '{"comm_group_size": 2}' >"$WORK/groups.json"
"$ZL" "${COMMON[@]}" -n 4 -- "$TRAIN" "${TRAIN_ARGS[@]}" --stage 0 \
    --config "$WORK/groups.json" --dump-params "$WORK/one.bin" >"$WORK/out" 2>&1 ||
    { cat "$WORK/out"; fail "4 ranks on one host"; }
grep -E "${TAG}final loss" "$WORK/out"

bring_up_cluster
on_cluster --dry-run -- "$TRAIN" "${TRAIN_ARGS[@]}" || fail "zero-launch --dry-run in zrt-h1"
for stage in 0 1 2 3; do
    start=$SECONDS
    run_on_cluster "$stage" "$WORK/two$stage.bin" ||
        { cat "$WORK/out"; fail "2 hosts x 2 ranks at stage $stage"; }
    grep -E "${TAG}final loss" "$WORK/out" | sed "s/^/stage $stage ($((SECONDS - start)) s): /"
    check_placement "stage $stage" "$TAG"
    check_transports "stage $stage" "$TAG"
    "$COMPARE" "$WORK/one.bin" "$WORK/two$stage.bin" ||
        fail "stage $stage: 2 hosts x 2 ranks differ from 4 ranks on one host in 2 groups at stage 0"
done
check_only_holders_in_hosts
"$CLUSTER" down
cluster_up=0
# shellcheck disable=SC2086 # one inode a word
"$CLUSTER" check-clean $INODES
echo "PASS"
