# SPDX-License-Identifier: Apache-2.0
# tests/scripts/cluster_common.sh — shared by the tests that run on the
# namespace cluster (scripts/cluster.sh): sourced after common.sh. It brings a
# 2-host cluster up (waiting while another run's cluster is up: one cluster
# at a time, fixed names) and always brings it down on exit, with $WORK.
#   bring_up_cluster [HOSTS] : HOSTS (default 2) hosts of 2 slots; sets
#                      SUBNET (a.b.c.0/24), HOSTFILE and INODES (the hosts'
#                      network namespace inodes, for `cluster.sh check-clean
#                      $INODES`); exits 77 where namespaces cannot be made.
#   holder_of I, job_pids I : host I's holder process, and the processes in
#                      host I other than it (a job's daemon, wrappers, ranks).
#   check_only_holders_in_hosts : no job process is left in the hosts.
#   check_placement, check_transports : where 2 hosts x 2 ranks ran, and how
#                      they reached each other.
SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts" && pwd)
CLUSTER=$SCRIPTS/cluster.sh
AGENT=$SCRIPTS/cluster-agent.sh
WAIT_S=${WAIT_S:-120} # for another run's cluster to come down
cluster_up=0

bring_down_and_clean() {
    [ "$cluster_up" = 0 ] || "$CLUSTER" down || true
    rm -rf "$WORK"
}
trap bring_down_and_clean EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bring_up_cluster() {
    local status start=$SECONDS said=0 hosts=${1:-2} i
    while :; do
        status=0
        "$CLUSTER" up "$hosts" --slots 2 >"$WORK/up" 2>&1 || status=$?
        [ "$status" != 77 ] || { cat "$WORK/up"; exit 77; }
        [ "$status" != 0 ] || break
        if ! grep -q "a cluster is up" "$WORK/up" || ((SECONDS - start >= WAIT_S)); then
            cat "$WORK/up"
            fail "cluster.sh up $hosts (status $status)"
        fi
        ((said++)) || echo "a cluster is up (another run's?); waiting up to $WAIT_S s"
        sleep 2
    done
    cluster_up=1
    cat "$WORK/up"
    SUBNET=$(awk '$1 == "subnet" {print $2 ".0/24"}' /run/zrt-cluster/state)
    HOSTFILE=$("$CLUSTER" hostfile)
    INODES=$(for ((i = 1; i <= hosts; i++)); do stat -L -c %i "/run/netns/zrt-h$i"; done)
}

holder_of() { awk -v n="zrt-h$1" '$1 == "host" && $3 == n {print $6}' /run/zrt-cluster/state; }
job_pids() { ip netns pids "zrt-h$1" | grep -vx "$(holder_of "$1")" || true; }

# check_only_holders_in_hosts : the job's processes (orted, ranks) have ended
# on every host (given 2 s after the job returns); only the holders are
# left. Checked before `down`, which would end them silently.
check_only_holders_in_hosts() {
    local i n pids
    for i in 1 2; do
        for ((n = 0; n < 20; n++)); do
            pids=$(job_pids "$i")
            [ -n "$pids" ] || break
            sleep 0.1
        done
        [ -z "$pids" ] ||
            fail "processes left in zrt-h$i after the job: $(echo "$pids" | xargs ps -o pid,args -p)"
    done
}

# check_placement LABEL PREFIX : ranks 0-1 ran on zrt-h1 and 2-3 on zrt-h2, as
# the line "rank R on HOST" each printed says; PREFIX is a regex for what the
# launcher puts before a rank's output line.
check_placement() {
    local r want
    for r in 0 1 2 3; do
        want=zrt-h$((r / 2 + 1))
        grep -Eq "$2rank $r on $want\$" "$WORK/out" ||
            { cat "$WORK/out"; fail "$1: rank $r did not run on $want"; }
    done
    echo "$1: ranks 0-1 on zrt-h1, 2-3 on zrt-h2"
}

# check_transports LABEL PREFIX : what each rank's BML chose to reach each
# other rank (btl_base_verbose 100): vader within a host, tcp between hosts.
check_transports() {
    local host to btl
    local using="mca: bml: Using"
    for host in 1 2; do
        for to in 0 1 2 3; do
            btl=tcp
            [ $((to / 2 + 1)) != "$host" ] || btl=vader
            grep -Eq "$2\[zrt-h$host:[0-9]+\] $using $btl btl for send to \[\[[0-9]+,1\],$to\]" \
                "$WORK/out" ||
                { cat "$WORK/out"; fail "$1: no rank on zrt-h$host used $btl to reach rank $to"; }
        done
    done
    ! grep -Eq "$2(\[zrt-h1:[0-9]+\] $using tcp btl for send to \[\[[0-9]+,1\],[01]\]|\[zrt-h2:[0-9]+\] $using tcp btl for send to \[\[[0-9]+,1\],[23]\])" \
        "$WORK/out" || fail "$1: ranks of one host talk over TCP"
    echo "$1: vader within each host, tcp between them"
}
