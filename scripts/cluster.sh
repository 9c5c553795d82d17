#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/cluster.sh — a small cluster on this machine, for testing zrt across
# hosts: K "hosts", each a network namespace (its own network stack) with its
# own UTS namespace (its own hostname, so Open MPI's per-host session files
# and shared memory do not collide), joined by veth pairs through a bridge in
# the root namespace, each link optionally shaped to a bandwidth with tc (tbf,
# both directions). Root only (CAP_NET_ADMIN); exits 77 when namespaces
# cannot be made.
#
#   cluster.sh up K [--rate 1gbit] [--slots N]  make hosts zrt-h1..zrt-hK
#   cluster.sh down                             remove everything it made
#   cluster.sh exec HOST CMD [ARGS...]          run CMD in HOST (1, h1,
#                                               zrt-h1 or its address)
#   cluster.sh status                           per host: its link, rate,
#                                               bytes it sent (tx) and
#                                               received (rx) over the link
#   cluster.sh hostfile                         the hostfile's path
#   cluster.sh check-clean [INODE...]           exit 1 naming what is left:
#                                               a zrt- namespace or link, the
#                                               state directory, a holder, a
#                                               process in a network namespace
#                                               of these inodes (stat -L -c %i
#                                               /run/netns/zrt-hI while up)
#
# Host i is namespace zrt-hi, hostname zrt-hi, address <subnet>.i/24 on its
# interface zrt0; its link's other end is zrt-vi on bridge zrt-br0, which has
# no address (nothing is routed to or from the root namespace). A process per
# host (argv[0] "zrt-cluster-holder zrt-hi") holds its UTS namespace and a
# mount namespace where /sys shows the host's interfaces; `exec` enters the
# host's network, UTS and mount namespaces through it, keeping the working
# directory (the file system is this machine's: same paths on every host).
# The byte counters are the bridge side's (/sys/class/net/zrt-vi/statistics:
# its rx is what host i sent). The /24 is the first of SUBNETS that neither
# `ip -o addr` nor `ip route` shows here.
# `up` writes the hostfile (one "address slots=N" line per host) and a state
# file under /run/zrt-cluster listing each object before it is created, so
# `down` removes all of it even after a crash; `down` is idempotent and touches
# only names starting with zrt- that its state file lists. A failed or
# interrupted `up` removes what it made. Run mpirun inside host 1 with
# scripts/cluster-agent.sh as its remote launch agent (see that file).
set -euo pipefail
STATE_DIR=/run/zrt-cluster
STATE=$STATE_DIR/state
HOSTFILE=$STATE_DIR/hostfile
BRIDGE=zrt-br0
HOST_IF=zrt0
SUBNETS=(10.213.17 10.213.117 10.213.217 10.214.17 10.214.117)
MAX_HOSTS=32

die() { echo "cluster.sh: $*" >&2; exit 1; }
skip() { echo "cluster.sh: SKIP: $*" >&2; exit 77; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# record KIND NAME [MORE...] : appends a line to the state file; called
# before the object is created, so a crash never leaves an unlisted one.
record() { echo "$*" >>"$STATE"; }

require_namespaces() {
    [ "$(id -u)" -eq 0 ] || skip "needs root (CAP_NET_ADMIN) to create network namespaces"
    local cmd
    for cmd in ip tc nsenter unshare; do
        command -v "$cmd" >/dev/null || skip "'$cmd' is not installed"
    done
    # A probe: containers without CAP_NET_ADMIN or CAP_SYS_ADMIN refuse this.
    local probe=zrt-probe-$$ err
    if ! err=$(ip netns add "$probe" 2>&1); then
        skip "cannot create a network namespace: $err"
    fi
    ip netns del "$probe"
    if ! err=$(unshare --uts true 2>&1); then
        skip "cannot create a UTS namespace: $err"
    fi
}

subnet_in_use() {
    local prefix=$1
    ip -o addr show | grep -q " ${prefix//./\\.}\." && return 0
    ip -o route show | grep -q "^${prefix//./\\.}\.\|via ${prefix//./\\.}\." && return 0
    ip -o -4 route show table all | grep -q "${prefix//./\\.}\." && return 0
    return 1
}

pick_subnet() {
    local prefix
    for prefix in "${SUBNETS[@]}"; do
        if subnet_in_use "$prefix"; then
            echo "cluster.sh: $prefix.0/24 is in use here, trying the next one" >&2
        else
            echo "$prefix"
            return 0
        fi
    done
    die "every candidate subnet (${SUBNETS[*]/%/.0/24}) is in use on this machine"
}

# rate_bits RATE : RATE (N followed by bit, kbit, mbit or gbit, as tc reads
# them) in bits per second.
rate_bits() {
    local r=${1,,} n unit
    [[ $r =~ ^([0-9]+)(bit|kbit|mbit|gbit)$ ]] ||
        die "--rate '$1' is not N followed by bit, kbit, mbit or gbit (e.g. 1gbit, 100mbit)"
    n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
    case $unit in
        bit) echo "$n" ;;
        kbit) echo $((n * 1000)) ;;
        mbit) echo $((n * 1000000)) ;;
        gbit) echo $((n * 1000000000)) ;;
    esac
}

# shape_device RATE DEV [NETNS] : token bucket at RATE on DEV's egress. The
# bucket holds 10 ms at RATE and at least 2 x 64 KiB (a veth passes 64 KiB GSO
# packets); up to 50 ms of packets queue behind it.
shape_device() {
    local rate=$1 dev=$2 ns=${3:-} bits burst
    bits=$(rate_bits "$rate")
    burst=$((bits / 8 / 100))
    [ "$burst" -ge 131072 ] || burst=131072
    local tc=(tc)
    [ -z "$ns" ] || tc=(ip netns exec "$ns" tc)
    "${tc[@]}" qdisc add dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
}

disable_ipv6() { # keeps IPv6 neighbour discovery chatter off the byte counters
    local f=/proc/sys/net/ipv6/conf/$1/disable_ipv6
    if [ -n "${2:-}" ]; then
        ip netns exec "$2" sh -c "[ ! -w $f ] || echo 1 >$f"
    elif [ -w "$f" ]; then
        echo 1 >"$f"
    fi
}

# start_holder I : a process that keeps host I's UTS namespace (hostname
# zrt-hI) and the mount namespace `ip netns exec` made for it (/sys of the
# host's network namespace) alive; `exec` enters them through it. Its argv[0]
# names it, so `down` kills only what it started.
start_holder() {
    local i=$1 ns=zrt-h$1 pid n
    ip netns exec "$ns" unshare --uts bash -c \
        'hostname "$1" && exec -a "zrt-cluster-holder $1" sleep infinity' _ "$ns" \
        </dev/null >/dev/null 2>&1 &
    pid=$!
    record holder "$ns" "$pid"
    for ((n = 0; n < 100; n++)); do
        if holder_alive "$pid" "$ns" &&
            [ "$(nsenter -t "$pid" -u hostname)" = "$ns" ]; then
            echo "$pid"
            return 0
        fi
        sleep 0.05
    done
    die "the holder process of $ns did not start"
}

holder_alive() { # PID NS : PID is the holder this script started for NS
    local cmdline
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
    [[ $cmdline == "zrt-cluster-holder $2 "* ]]
}

add_host() {
    local i=$1 prefix=$2 rate=$3 ns=zrt-h$1 link=zrt-v$1 pid
    record netns "$ns"
    ip netns add "$ns"
    record link "$link"
    ip link add "$link" type veth peer name "$HOST_IF" netns "$ns"
    disable_ipv6 "$link"
    disable_ipv6 all "$ns"
    disable_ipv6 default "$ns"
    disable_ipv6 "$HOST_IF" "$ns"
    ip link set "$link" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$prefix.$i/24" dev "$HOST_IF"
    ip -n "$ns" link set "$HOST_IF" up
    if [ "$rate" != none ]; then
        shape_device "$rate" "$HOST_IF" "$ns"  # what host i sends
        shape_device "$rate" "$link"           # what host i receives
    fi
    pid=$(start_holder "$i")
    record host "$i" "$ns" "$prefix.$i" "$link" "$pid" "$rate"
}

# wait_reachable K PREFIX : host 1 reaches every host over TCP (a refused
# connection is an answer); bridge ports take a moment to forward.
wait_reachable() {
    local k=$1 prefix=$2 i n
    for ((i = 2; i <= k; i++)); do
        for ((n = 0; ; n++)); do
            if ip netns exec zrt-h1 bash -c \
                "exec 3<>/dev/tcp/$prefix.$i/9 || true; ip neigh show $prefix.$i" 2>/dev/null |
                grep -q "lladdr"; then
                break
            fi
            [ "$n" -lt 100 ] || die "zrt-h1 cannot reach zrt-h$i at $prefix.$i"
            sleep 0.05
        done
    done
}

undo_failed_up() {
    local status=$?
    trap - EXIT INT TERM
    echo "cluster.sh: up failed; removing what it made" >&2
    cmd_down >&2 || true
    exit "$status"
}

cmd_up() {
    local k=${1:-} rate=none slots=2
    [[ $k =~ ^[0-9]+$ ]] && [ "$k" -ge 1 ] && [ "$k" -le "$MAX_HOSTS" ] ||
        die "up K: K must be 1 to $MAX_HOSTS hosts (got '${k}')"
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --rate) rate=${2:?--rate needs a value}; rate_bits "$rate" >/dev/null; shift 2 ;;
            --slots) slots=${2:?--slots needs a value}; shift 2
                [[ $slots =~ ^[1-9][0-9]*$ ]] || die "--slots must be a positive integer" ;;
            *) die "up: unknown option '$1'" ;;
        esac
    done
    require_namespaces
    mkdir -p "$(dirname "$STATE_DIR")"
    mkdir "$STATE_DIR" 2>/dev/null ||
        die "$STATE_DIR exists: a cluster is up (or a crashed one's leftovers); run 'cluster.sh down' first"
    trap undo_failed_up EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    : >"$STATE"
    local prefix i
    prefix=$(pick_subnet)
    record subnet "$prefix"
    record bridge "$BRIDGE"
    ip link add "$BRIDGE" type bridge
    disable_ipv6 "$BRIDGE"
    ip link set "$BRIDGE" up
    for ((i = 1; i <= k; i++)); do
        add_host "$i" "$prefix" "$rate"
    done
    wait_reachable "$k" "$prefix"
    for ((i = 1; i <= k; i++)); do
        echo "$prefix.$i slots=$slots"
    done >"$HOSTFILE"
    trap - EXIT INT TERM
    echo "cluster.sh: $k hosts on $prefix.0/24 (links: ${rate/none/unshaped}); hostfile $HOSTFILE"
}

# stop_processes_in NS : every process in network namespace NS (the holder,
# and whatever was started there and outlived its job), TERM then KILL.
stop_processes_in() {
    local ns=$1 pids n
    [ -e "/run/netns/$ns" ] || return 0
    for ((n = 0; n < 40; n++)); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] || return 0
        # shellcheck disable=SC2086
        if [ "$n" -lt 20 ]; then kill -TERM $pids 2>/dev/null || true
        else kill -KILL $pids 2>/dev/null || true; fi
        sleep 0.1
    done
    echo "cluster.sh: processes still in $ns: $(ip netns pids "$ns" | tr '\n' ' ')" >&2
}

# exited PID : PID has ended: gone, or a zombie waiting for pid 1 to reap it
# (which can take a second in a container).
exited() {
    [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

wait_gone() { # PID : until PID has exited (at most 5 s)
    local n
    for ((n = 0; n < 100; n++)); do
        ! exited "$1" || return 0
        sleep 0.05
    done
}

# Open MPI's shared-memory segments of the cluster's hosts, named after their
# hostnames (zrt-hN): a rank that was killed (the fault tests) leaves its own.
remove_shm_segments() {
    rm -f /dev/shm/vader_segment.zrt-h[0-9]*
}

cmd_down() {
    [ "$(id -u)" -eq 0 ] || skip "needs root"
    if [ ! -e "$STATE" ]; then
        rm -rf "$STATE_DIR"
        remove_shm_segments
        return 0
    fi
    local kind name pid
    # Processes first (they keep a namespace and its links alive), then the
    # objects in the reverse of their creation order.
    while read -r kind name pid _; do
        case $kind in
            holder) if holder_alive "$pid" "$name"; then
                    kill -KILL "$pid" 2>/dev/null || true
                    wait_gone "$pid"
                fi ;;
            netns) if [[ $name == zrt-* ]]; then stop_processes_in "$name"; fi ;;
        esac
    done < <(tac "$STATE")
    while read -r kind name _; do
        [[ $name == zrt-* ]] || continue
        case $kind in
            netns) [ ! -e "/run/netns/$name" ] || ip netns del "$name" ;;
            link | bridge) ! ip link show "$name" >/dev/null 2>&1 || ip link del "$name" ;;
        esac
    done < <(tac "$STATE")
    rm -rf "$STATE_DIR"
    remove_shm_segments
}

# host_field HOST N : field N of the state's "host" line for HOST (1, h1,
# zrt-h1, the hostname or the address): 2 index, 3 name, 4 address, 5 link,
# 6 holder pid, 7 rate.
host_field() {
    local want=$1 field=$2 line
    [ -e "$STATE" ] || die "no cluster is up (no $STATE)"
    want=${want#zrt-}
    want=${want#h}
    line=$(awk -v w="$want" -v full="$1" \
        '$1 == "host" && ($2 == w || $3 == full || $4 == full) {print; exit}' "$STATE")
    [ -n "$line" ] || die "no host '$1' in this cluster"
    awk -v f="$field" '{print $f}' <<<"$line"
}

cmd_exec() {
    [ $# -ge 2 ] || die "exec HOST CMD [ARGS...]"
    local host=$1 pid ns
    shift
    pid=$(host_field "$host" 6)
    ns=$(host_field "$host" 3)
    holder_alive "$pid" "$ns" || die "the holder process of $ns ($pid) is gone; run down and up"
    exec nsenter -t "$pid" -n -u -m --wd="$PWD" -- "$@"
}

link_bytes() { cat "/sys/class/net/$1/statistics/$2_bytes" 2>/dev/null || echo "?"; }

cmd_status() {
    [ -e "$STATE" ] || { echo "cluster.sh: no cluster is up"; return 0; }
    local kind i ns addr link pid rate alive
    printf '%-8s %-14s %-8s %-9s %-6s %14s %14s\n' \
        host address link rate holder tx_bytes rx_bytes
    while read -r kind i ns addr link pid rate; do
        [ "$kind" = host ] || continue
        alive=up
        holder_alive "$pid" "$ns" || alive=GONE
        # The bridge side's rx is what the host sent, its tx what it received.
        printf '%-8s %-14s %-8s %-9s %-6s %14s %14s\n' "$ns" "$addr" "$link" \
            "${rate/none/-}" "$alive" "$(link_bytes "$link" rx)" "$(link_bytes "$link" tx)"
    done <"$STATE"
    echo "hostfile: $HOSTFILE"
}

# cmd_check_clean [INODE...] : nothing `up` made is left (after `down`; a
# cluster that is up is not clean). A zombie has ended: pid 1 reaps it.
cmd_check_clean() {
    [ "$(id -u)" -eq 0 ] || skip "needs root (to read every process's namespaces)"
    local left=() name p pid args inode
    for inode in "$@"; do
        [[ $inode =~ ^[0-9]+$ ]] || die "check-clean: '$inode' is not a namespace inode number"
    done
    while read -r name _; do
        left+=("namespace $name")
    done < <(ip netns list 2>/dev/null | grep '^zrt-' || true)
    while read -r name; do
        left+=("link $name")
    done < <(ip -o link show | awk -F': ' '$2 ~ /^zrt-/ {sub(/@.*/, "", $2); print $2}')
    [ ! -e "$STATE_DIR" ] || left+=("$STATE_DIR")
    for name in /dev/shm/vader_segment.zrt-h[0-9]*; do
        [ ! -e "$name" ] || left+=("shared memory $name")
    done
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        ! exited "$pid" || continue
        args=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        args=${args% }
        if [[ $args == "zrt-cluster-holder "* ]]; then
            left+=("holder process $pid ($args)")
            continue
        fi
        for inode in "$@"; do
            [ "$(readlink "$p/ns/net" 2>/dev/null)" != "net:[$inode]" ] ||
                left+=("process $pid (${args:0:60}) in network namespace $inode")
        done
    done
    if [ "${#left[@]}" -gt 0 ]; then
        printf 'cluster.sh: left behind: %s\n' "${left[@]}" >&2
        exit 1
    fi
    echo "cluster.sh: nothing left"
}

main() {
    local cmd=${1:-}
    [ $# -eq 0 ] || shift
    case $cmd in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        exec) cmd_exec "$@" ;;
        status) cmd_status ;;
        hostfile) [ -e "$HOSTFILE" ] || die "no cluster is up"; echo "$HOSTFILE" ;;
        check-clean) cmd_check_clean "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
