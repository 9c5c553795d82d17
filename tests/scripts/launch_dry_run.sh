#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# zero-launch builds the mpirun command line it promises: --dry-run prints it
# shell-quoted, and reading that text back as a shell would gives the exact
# argv checked here. Bad options fail with a message naming the option and
# value; hostfile lines of any length are read whole, and a line that is not
# Open MPI's "host [slots=N] [max_slots=N]" is refused with its file, number
# and text; a missing --nvme-path directory is created (not by --dry-run).
# Across hosts: --ranks-per-host (ppr:N:node, -np hosts x N, a -n that
# disagrees refused), --launch-agent (plm_rsh_agent, an absolute path to an
# executable), --net (shared memory within a host, TCP on that network between
# hosts; malformed or absent networks refused), --mca (repeatable, replacing an
# option's value), and the OMPI_MCA_* variables --dry-run lists. A run across
# hosts (a hostfile of several, or --launch-agent) gets the daemons' keepalive
# and `-x ZRT_LAUNCH_MONITOR` (the name only: its value, drawn per run, is in
# mpirun's environment, so the command line stays the same); one host gets
# neither. A real two-rank run shows arguments reach the program unchanged and
# each output line is tagged once, a stale ZRT_LAUNCH_MONITOR not reaching it;
# real runs with the monitor on this host (--launch-agent) show it naming a
# rank whose wrapper is killed or stopped (with the wrapper's pid), dropping
# hostile connections, letting wrappers in past idle connections that fill
# every slot, naming ranks that never connect (a fake mpirun that starts
# nothing and ignores SIGTERM, which is then killed),
# wrappers stopping their programs when the top level stops answering, a
# wrapper signalled while it connects not starting its program, the open-file
# limit raised or its shortfall said, a failing ppoll ending the job, and the
# address the monitor listens on and gives the ranks.
#   launch_dry_run.sh ZERO_LAUNCH
# '$HOME' below is meant literally: it must reach the program unexpanded.
# shellcheck disable=SC2016
source "$(dirname "$0")/common.sh"
ZL=$1
SELF=$(readlink -f "$ZL")
CORES=$("$ZL" --topology | awk '/^cores:/ {print $2}')
[[ $CORES =~ ^[0-9]+$ ]] || fail "--topology printed no core count"
HEAD=(mpirun)
TAIL=(--tag-output -x ZRT_LOG_RANK_PREFIX=0)
# across hosts: the daemons' keepalive, and the monitor's variable (by name)
KEEP=(--mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 2
    --mca oob_tcp_keepalive_probes 3)
MON=(-x ZRT_LAUNCH_MONITOR)

# dry ARGS... : runs --dry-run; the command line, read back, lands in ARGV.
dry() {
    "$ZL" --dry-run "$@" >"$WORK/out" 2>"$WORK/err" ||
        { cat "$WORK/err"; fail "--dry-run $* exited non-zero"; }
    eval "ARGV=($(cat "$WORK/out"))"
}
# expect_argv WORD... : ARGV is exactly these words.
expect_argv() {
    [[ "${ARGV[*]@Q}" == "${*@Q}" ]] ||
        fail "argv: got ${ARGV[*]@Q}; expected ${*@Q}"
}
has() { grep -qF -- "$1" "$WORK/out" || fail "no '$1' in: $(cat "$WORK/out")"; }
lacks() { ! grep -qF -- "$1" "$WORK/out" || fail "'$1' in: $(cat "$WORK/out")"; }
# refused PATTERN ARGS... : zero-launch ARGS exits non-zero saying PATTERN.
refused() {
    local pattern=$1; shift
    if "$ZL" "$@" >"$WORK/out" 2>&1; then fail "accepted: $*"; fi
    grep -qF -- "$pattern" "$WORK/out" || fail "no '$pattern' for $*: $(cat "$WORK/out")"
}
over() { (($1 > CORES)) && echo --oversubscribe; }
pe() { echo $((CORES / $1 > 1 ? CORES / $1 : 1)); }

# One host, exact argv; more ranks than cores adds --oversubscribe.
dry -n 2 --bind none /bin/echo hi
# shellcheck disable=SC2046 # over prints nothing or one word
expect_argv "${HEAD[@]}" -np 2 $(over 2) --bind-to none "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- /bin/echo hi
dry -n "$CORES" prog
lacks --oversubscribe
dry -n $((CORES + 2)) prog
has "-np $((CORES + 2)) --oversubscribe"

# Binding flags.
dry -n 1 --bind core prog
expect_argv "${HEAD[@]}" -np 1 --map-by "slot:PE=$CORES" --bind-to core "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- prog
if ((CORES >= 2)); then
    dry -n 2 --bind core prog
    has "--map-by slot:PE=$(pe 2) --bind-to core"
fi
dry -n 1 --bind numa prog
has "-np 1 --map-by numa --bind-to numa --tag-output"
dry -n 1 --bind socket prog
has "-np 1 --map-by socket --bind-to socket --tag-output"
dry -n 1 --bind none prog
has "-np 1 --bind-to none --tag-output"
lacks --map-by
dry -n $((CORES + 2)) --bind core prog
has "--oversubscribe --bind-to none --tag-output"
grep -q "binding to cores is off" "$WORK/err" || fail "no note on oversubscribed core binding"

# A hostfile: its slots are the default rank count; more ranks oversubscribe.
printf '# this host\nlocalhost slots=2  # two ranks\n\n' >"$WORK/hosts"
dry --hostfile "$WORK/hosts" prog
has "-np 2 --hostfile $WORK/hosts --"
lacks --oversubscribe
dry --hostfile "$WORK/hosts" -n 3 prog
has "-np 3 --hostfile $WORK/hosts --oversubscribe"

# Environment: --env, --config and --nvme-path (relative paths made absolute).
printf '{}' >"$WORK/cfg.json"
mkdir "$WORK/nvme"
ABS=$(readlink -f "$WORK")
(cd "$WORK" && "$ZL" --dry-run -n 2 --bind none --env A=B --env EMPTY= \
    --config cfg.json --nvme-path nvme prog) >"$WORK/out" || fail "--env/--config refused"
eval "ARGV=($(cat "$WORK/out"))"
expect_argv "${HEAD[@]}" -np 2 --bind-to none "${TAIL[@]}" -x "ZRT_CONFIG=$ABS/cfg.json" \
    -x "ZRT_NVME_PATH=$ABS/nvme" -x A=B -x EMPTY= "$SELF" --rank-wrapper -- prog

# Arguments with spaces and quotes are quoted so the line can be pasted; `--`
# ends zero-launch's options, and options after PROGRAM belong to it.
dry -n 1 --bind none -- prog 'a b' "it's" '$HOME' '' --dry-run
has "prog 'a b' 'it'\\''s' '\$HOME' '' --dry-run"
expect_argv "${HEAD[@]}" -np 1 --bind-to none "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- prog 'a b' "it's" '$HOME' '' --dry-run
dry --allow-run-as-root -n 1 --bind none prog
has "-np 1 --allow-run-as-root --bind-to none"

# Errors name the option and the value, or the file and line.
refused "--bind: 'bogus'" --bind bogus prog
refused "--env: 'noequals' is not K=V" --env noequals prog
refused "--env: '1A' is not a valid variable name" --env 1A=b prog
refused "--config: '/nonexistent'" --config /nonexistent prog
refused "--nvme-path: '$WORK/cfg.json' is not a directory" --nvme-path "$WORK/cfg.json" prog
refused "--nproc: '0'" -n 0 prog
refused "--nproc: 'x'" --nproc x prog
refused "unknown option '--bogus'" --bogus prog
refused "no PROGRAM" -n 2
printf 'localhost slots=2\nlocalhost slots=x\n' >"$WORK/bad_hosts"
refused "$WORK/bad_hosts:2: 'slots=x'" --hostfile "$WORK/bad_hosts" prog
printf 'localhost\nlocalhost slots=2\n' >"$WORK/twice_hosts"
refused "$WORK/twice_hosts:2: host 'localhost' is already named on line 1" \
    --hostfile "$WORK/twice_hosts" prog
refused "--hostfile: '$WORK/missing'" --hostfile "$WORK/missing" prog

# Hostfile lines are read whole, whatever their length: a 1500-byte comment
# is one comment (it was split at 1023 bytes, its tail read as a host).
{ printf '# %s\n' "$(head -c 1500 /dev/zero | tr '\0' x)"; echo 'localhost slots=2'; } \
    >"$WORK/long_hosts"
dry --hostfile "$WORK/long_hosts" prog
has "-np 2 --hostfile $WORK/long_hosts"
# Open MPI's syntax: user@host, addresses, the max_slots spellings, '=' with
# blanks, comments after a host.
printf 'node1 slots=2 max_slots=4\nbob@node2 max-slots=3 # two\nnode3 count = 2\n10.0.0.1 cpu=1 username=bob\n::1\n' \
    >"$WORK/ompi_hosts"
dry --hostfile "$WORK/ompi_hosts" prog
has "-np 7 --hostfile $WORK/ompi_hosts"
# Anything else is refused, naming the file, the line and its text.
printf 'localhost slots=2\nnode1 slots=2 bogus\n' >"$WORK/junk_hosts"
refused "$WORK/junk_hosts:2: 'node1 slots=2 bogus' is not a hostfile line" \
    --hostfile "$WORK/junk_hosts" prog
grep -qF "'bogus' is not slots=N, max_slots=N or username=NAME" "$WORK/out" ||
    fail "no reason for the junk line: $(cat "$WORK/out")"
printf 'localhost\n$(reboot) !!\n' >"$WORK/junk_hosts"
refused "$WORK/junk_hosts:2: '\$(reboot) !!' is not a hostfile line" \
    --hostfile "$WORK/junk_hosts" prog
grep -qF "'\$(reboot)' is not a host name or address" "$WORK/out" ||
    fail "no reason for the junk host: $(cat "$WORK/out")"
{ echo localhost; printf '%s slots=4\n' "$(head -c 1100 /dev/zero | tr '\0' x)"; } \
    >"$WORK/long_hosts"
refused "$WORK/long_hosts:2: 'xxxx" --hostfile "$WORK/long_hosts" prog
grep -qF "... (1108 bytes)' is not a hostfile line" "$WORK/out" &&
    grep -qF "is not a host name or address (over 255 bytes)" "$WORK/out" ||
    fail "the long line is not refused whole: $(cat "$WORK/out")"
printf 'node1 slots=4 max_slots=2\n' >"$WORK/max_hosts"
refused "$WORK/max_hosts:1: 'node1 slots=4 max_slots=2' is not a hostfile line" \
    --hostfile "$WORK/max_hosts" prog
grep -qF "max_slots=2 is below slots=4" "$WORK/out" || fail "no max_slots reason"

# --nvme-path DIR that does not exist: --dry-run creates nothing and says the
# job would; a real run creates it and its parents (mode 0700) first.
dry -n 1 --bind none --nvme-path "$WORK/new/swap" prog
has "-x ZRT_NVME_PATH=$WORK/new/swap "
grep -qF "'$WORK/new/swap' does not exist; the job would create it (mode 0700)" \
    "$WORK/err" || fail "--dry-run does not say it would create the directory"
[ ! -e "$WORK/new" ] || fail "--dry-run created the --nvme-path directory"
"$ZL" --allow-run-as-root -n 1 --bind none --nvme-path "$WORK/new/swap" \
    /usr/bin/printenv ZRT_NVME_PATH >"$WORK/out" 2>&1 ||
    { cat "$WORK/out"; fail "--nvme-path with a missing directory: the job did not run"; }
grep -qx "\[[0-9]*,0\]<stdout>: \?$ABS/new/swap" "$WORK/out" ||
    fail "the rank did not get ZRT_NVME_PATH=$ABS/new/swap: $(cat "$WORK/out")"
for d in "$WORK/new" "$WORK/new/swap"; do
    [ "$(stat -c %a "$d")" = 700 ] || fail "$d: mode $(stat -c %a "$d"), not 700"
done
refused "--nvme-path: '$WORK/cfg.json/x': Not a directory" --nvme-path "$WORK/cfg.json/x" prog

# --ranks-per-host N: N ranks on each host of the hostfile (ppr:N:node), with
# the binding computed for N ranks a host; -np is the hosts times N.
printf 'node1 slots=2\nnode2 slots=2 # two hosts\n' >"$WORK/two_hosts"
dry --hostfile "$WORK/two_hosts" --ranks-per-host 2 --bind none prog
expect_argv "${HEAD[@]}" -np 4 --hostfile "$WORK/two_hosts" "${KEEP[@]}" --map-by ppr:2:node \
    --bind-to none "${TAIL[@]}" "${MON[@]}" "$SELF" --rank-wrapper -- prog
dry --hostfile "$WORK/two_hosts" --ranks-per-host 2 -n 4 --bind core prog
has "-np 4 --hostfile $WORK/two_hosts ${KEEP[*]} --map-by ppr:2:node:PE=$(pe 2) --bind-to core --tag"
dry --hostfile "$WORK/two_hosts" --ranks-per-host 3 --bind numa prog
has "-np 6 --hostfile $WORK/two_hosts --oversubscribe ${KEEP[*]} --map-by ppr:3:node --bind-to numa:overload-allowed --tag"
printf 'node1 slots=4\nnode2 slots=1\n' >"$WORK/uneven_hosts" # node2 lacks a slot
dry --hostfile "$WORK/uneven_hosts" --ranks-per-host 2 --bind socket prog
has "-np 4 --hostfile $WORK/uneven_hosts --oversubscribe ${KEEP[*]} --map-by ppr:2:node --bind-to socket:overload-allowed"
dry --ranks-per-host 1 --bind none prog # no hostfile: this host
expect_argv "${HEAD[@]}" -np 1 --map-by ppr:1:node --bind-to none "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- prog
dry --ranks-per-host 1 -n 3 --bind none prog # a Slurm allocation: mpirun finds the hosts
has "-np 3 --map-by ppr:1:node --bind-to none"
refused "-n 3 disagrees with --ranks-per-host 2: '$WORK/two_hosts' names 2 hosts, so 4 ranks" \
    --hostfile "$WORK/two_hosts" --ranks-per-host 2 -n 3 prog
refused "-n 3 disagrees with --ranks-per-host 2: without --hostfile, -n must be the hosts times 2" \
    --ranks-per-host 2 -n 3 prog
refused "--ranks-per-host: '0' is not a positive integer" --ranks-per-host 0 prog

# --launch-agent PATH: mpirun's remote launch agent in place of ssh, as an
# absolute path (links kept); a name without '/' is looked up in PATH.
mkdir "$WORK/bin"
printf '#!/bin/sh\nexec ssh "$@"\n' >"$WORK/bin/my-agent"
chmod +x "$WORK/bin/my-agent"
(cd "$WORK" && "$ZL" --dry-run -n 1 --bind none --launch-agent ./bin/my-agent prog) \
    >"$WORK/out" 2>"$WORK/err" || fail "--launch-agent ./bin/my-agent refused"
eval "ARGV=($(cat "$WORK/out"))"
expect_argv "${HEAD[@]}" -np 1 --mca plm_rsh_agent "$ABS/bin/my-agent" "${KEEP[@]}" \
    --bind-to none "${TAIL[@]}" "${MON[@]}" "$SELF" --rank-wrapper -- prog
PATH="$WORK/bin:$PATH" dry -n 1 --launch-agent my-agent prog
has "--mca plm_rsh_agent $WORK/bin/my-agent --"
refused "--launch-agent: '$WORK/missing': No such file or directory" \
    --launch-agent "$WORK/missing" prog
refused "--launch-agent: '$ABS/cfg.json' is not an executable file" \
    --launch-agent "$ABS/cfg.json" prog
refused "--launch-agent: '$WORK/bin' is not an executable file" --launch-agent "$WORK/bin" prog
refused "--launch-agent: no executable 'zrt-no-such-agent' in PATH" \
    --launch-agent zrt-no-such-agent prog

# --net IF|CIDR[,...]: the TCP btl (under the ob1 pml: no UCX or libfabric
# path around it) and mpirun's daemons use that network, ranks of one host
# shared memory; an item nothing here matches is said, and
# a run (not --dry-run) where nothing matches is refused before mpirun starts.
dry -n 2 --bind none --net lo,127.0.0.0/8 prog
expect_argv "${HEAD[@]}" -np 2 --mca pml ob1 --mca btl self,vader,tcp --mca btl_tcp_if_include \
    lo,127.0.0.0/8 --mca oob_tcp_if_include lo,127.0.0.0/8 --bind-to none "${TAIL[@]}" \
    "$SELF" --rank-wrapper -- prog
dry -n 1 --net lo,zrtnone0 prog
grep -qF "no interface of this host ($(hostname)) is named 'zrtnone0'" "$WORK/err" ||
    fail "--net: no note on the absent interface: $(cat "$WORK/err")"
dry -n 1 --net zrtnone0 prog
grep -qF "a run here would be refused" "$WORK/err" || fail "--net: no note: $(cat "$WORK/err")"
refused "--net 'zrtnone0': no interface of this host ($(hostname)) matches it" \
    -n 1 --net zrtnone0 prog
refused "--net: '10.1.2.3' is an address; give its network, a.b.c.d/N (for example 10.1.2.3/24)" \
    --net 10.1.2.3 prog
refused "--net: '10.0.0.0/33' is not an IPv4 network a.b.c.d/N" --net lo,10.0.0.0/33 prog
refused "--net: 'bad name' is not an interface name" --net 'bad name' prog
refused "--net: 'lo,,eth0' has an empty item" --net lo,,eth0 prog

# --mca KEY VALUE (repeatable), after the options' own; one an option sets
# replaces that value in its place, and says so.
dry -n 1 --bind none --mca mpi_yield_when_idle 1 --launch-agent "$WORK/bin/my-agent" \
    --mca btl_tcp_if_exclude 'lo,docker0' prog
expect_argv "${HEAD[@]}" -np 1 --mca plm_rsh_agent "$WORK/bin/my-agent" "${KEEP[@]}" \
    --mca mpi_yield_when_idle 1 --mca btl_tcp_if_exclude lo,docker0 --bind-to none \
    "${TAIL[@]}" "${MON[@]}" "$SELF" --rank-wrapper -- prog
dry -n 1 --net lo --mca btl self,tcp prog
has "--mca pml ob1 --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo --"
grep -qF -- "--mca btl self,tcp replaces the value --net gives it (self,vader,tcp)" \
    "$WORK/err" || fail "--mca btl: no note: $(cat "$WORK/err")"
refused "--mca btl needs a VALUE" --mca btl
refused "--mca btl needs a VALUE" --mca btl -- prog
refused "--mca btl is given twice ('tcp' and 'self'); give it once" --mca btl tcp --mca btl self prog
refused "--mca: 'btl-x' is not an MCA parameter name" --mca btl-x 1 prog

# --dry-run lists the OMPI_MCA_* variables mpirun would read as well.
OMPI_MCA_zrt_test_a=7 OMPI_MCA_zrt_test_b=8 dry -n 1 --mca zrt_test_b 9 prog
grep -qxF "zero-launch: the environment sets OMPI_MCA_zrt_test_a=7: mpirun reads it too (it is not in the command)" \
    "$WORK/err" && grep -qxF "zero-launch: the environment sets OMPI_MCA_zrt_test_b=8: mpirun reads it too, but the command's --mca of that name wins" \
    "$WORK/err" || fail "--dry-run: OMPI_MCA_* not listed: $(cat "$WORK/err")"

# Across hosts only: one host (a hostfile of one, or none) gets neither the
# keepalive nor the monitor; --dry-run says what the variable will hold; a
# keepalive key given with --mca replaces that one value, and says so.
dry --hostfile "$WORK/hosts" prog
lacks ZRT_LAUNCH_MONITOR
lacks oob_tcp_keepalive
dry -n 2 --bind none --hostfile "$WORK/two_hosts" prog
grep -qF "mpirun's environment also gets ZRT_LAUNCH_MONITOR=ADDR:PORT:TOKEN:SECONDS" \
    "$WORK/err" || fail "--dry-run does not say what ZRT_LAUNCH_MONITOR holds: $(cat "$WORK/err")"
dry -n 2 --bind none --hostfile "$WORK/two_hosts" --mca oob_tcp_keepalive_time 30 prog
expect_argv "${HEAD[@]}" -np 2 --hostfile "$WORK/two_hosts" --mca oob_tcp_keepalive_time 30 \
    "${KEEP[@]:3}" --bind-to none "${TAIL[@]}" "${MON[@]}" "$SELF" --rank-wrapper -- prog
grep -qF -- "--mca oob_tcp_keepalive_time 30 replaces the value a run across hosts gives it (2)" \
    "$WORK/err" || fail "--mca oob_tcp_keepalive_time: no note: $(cat "$WORK/err")"
dry -n 2 --bind none --hostfile "$WORK/two_hosts" --heartbeat-timeout 7 --start-timeout 9 prog
has "${MON[*]} $SELF"
refused "--heartbeat-timeout: '1' is not a whole number of seconds from 2 to 86400" \
    --heartbeat-timeout 1 prog
refused "--heartbeat-timeout: 'x' is not a whole number" --heartbeat-timeout x prog
refused "--start-timeout: '0' is not a whole number of seconds from 1 to 86400" \
    --start-timeout 0 prog

# --topology, --version, --help.
"$ZL" --topology >"$WORK/out" || fail "--topology exited non-zero"
has "cores:"
grep -q '^binding: *\(none\|core\|numa\|socket\)' "$WORK/out" || fail "no binding line"
"$ZL" --version >"$WORK/out" || fail "--version exited non-zero"
grep -q '^zero-launch [0-9]' "$WORK/out" || fail "--version: $(cat "$WORK/out")"
"$ZL" --help >"$WORK/out" || fail "--help exited non-zero"
has "--allow-run-as-root"
for opt in --ranks-per-host --launch-agent --net --mca --heartbeat-timeout \
    --start-timeout; do has "$opt"; done

# A real run: each rank's program gets the arguments unchanged (no shell), and
# every line carries Open MPI's tag once.
"$ZL" --allow-run-as-root -n 2 --env 'SPACED=x y' /usr/bin/printf \
    '%s|%s|%s|\n' 'a b' "it's" '$HOME' >"$WORK/out" 2>&1 ||
    { cat "$WORK/out"; fail "real run failed"; }
for r in 0 1; do
    n=$(grep -cx "\[[0-9]*,$r\]<stdout>: \?a b|it's|\$HOME|" "$WORK/out" || true)
    ((n == 1)) || { cat "$WORK/out"; fail "rank $r: $n lines 'a b|it's|\$HOME|'"; }
done
"$ZL" --allow-run-as-root -n 2 --env 'SPACED=x y' /usr/bin/printenv SPACED \
    ZRT_LOG_RANK_PREFIX >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "printenv failed"; }
for r in 0 1; do
    grep -qx "\[[0-9]*,$r\]<stdout>: \?x y" "$WORK/out" || fail "rank $r: no SPACED=x y"
    grep -qx "\[[0-9]*,$r\]<stdout>: \?0" "$WORK/out" || fail "rank $r: no ZRT_LOG_RANK_PREFIX=0"
done
# A ZRT_LAUNCH_MONITOR left in the environment (a shell inside another job's
# rank) does not reach the wrappers of a run without a monitor.
ZRT_LAUNCH_MONITOR="127.0.0.1:1:$(printf '%032d' 0):5" "$ZL" --allow-run-as-root -n 2 \
    --bind none /usr/bin/printenv ZRT_LOG_RANK_PREFIX >"$WORK/out" 2>&1 ||
    { cat "$WORK/out"; fail "a stale ZRT_LAUNCH_MONITOR: the job failed"; }
# A wrapper that cannot read the variable says so without printing it.
if ZRT_LAUNCH_MONITOR=127.0.0.1:1:zrtsecretish:5 OMPI_COMM_WORLD_RANK=0 "$ZL" \
    --rank-wrapper -- /bin/true >"$WORK/out" 2>&1; then fail "a malformed variable: accepted"; fi
grep -qF "rank 0 (host $(hostname)): ZRT_LAUNCH_MONITOR (26 bytes, not shown" "$WORK/out" &&
    ! grep -q zrtsecretish "$WORK/out" || fail "a malformed variable: $(cat "$WORK/out")"

# Real runs with the monitor, all on this host: --launch-agent makes a run
# one "across hosts" (mpirun starts every rank here all the same), --net lo
# puts the monitor on 127.0.0.1. The program does not see the variable.
MONITORED=("$ZL" --allow-run-as-root -n 2 --bind none --launch-agent /bin/true --net lo)
"${MONITORED[@]}" /usr/bin/env >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "a monitored run failed"; }
grep -q "^\[[0-9]*,1\]<stdout>: \?ZRT_LOG_RANK_PREFIX=0" "$WORK/out" || fail "monitored: no env"
! grep -q ZRT_LAUNCH_MONITOR "$WORK/out" || fail "the program sees ZRT_LAUNCH_MONITOR"

# start_monitored ARGS... : a monitored job of 2 ranks running PROGRAM ARGS
# in the background ($job), returning once both programs run (their wrappers
# have said hello): $mpirun, $wrappers, $programs.
start_monitored() {
    "${MONITORED[@]}" "$@" >"$WORK/out" 2>&1 &
    job=$!
    local n w
    for ((n = 0; n < 100; n++)); do
        mpirun=$(ps --ppid "$job" -o pid= | tr -d ' ' || true)
        wrappers=$([ -z "$mpirun" ] || ps --ppid "$mpirun" -o pid= || true)
        programs=$(for w in $wrappers; do ps --ppid "$w" -o pid= || true; done)
        (($(wc -w <<<"$programs") < 2)) || return 0
        sleep 0.1
    done
    fail "the monitored job did not start: $(cat "$WORK/out")"
}
# running PID... : one of them runs (a zombie has ended; pid 1 reaps it,
# which can take a moment in a container).
running() { ps -o stat= -p "$(tr -s ' \n' , <<<"$*" | sed 's/^,//; s/,$//')" | grep -qv '^Z'; }
# ended CASE : $job ends within 15 s with a status that is not 0, and its
# programs are gone (given 2 s).
ended() {
    local n status=0
    for ((n = 0; n < 150; n++)); do
        kill -0 "$job" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$job" 2>/dev/null && { kill -CONT "$job"; cat "$WORK/out"; fail "$1: still running"; }
    wait "$job" || status=$?
    ((status != 0)) || { cat "$WORK/out"; fail "$1: zero-launch exited 0"; }
    for ((n = 0; n < 20; n++)); do
        running "$programs" || return 0
        sleep 0.1
    done
    fail "$1: programs left: $programs"
}
says() { grep -Eq -- "$2" "$WORK/out" || { cat "$WORK/out"; fail "$1: no '$2'"; }; }
HERE="on host $(hostname) \(127\.0\.0\.1\), rank [01] stopped answering"
# monitor_of PID : ZRT_LAUNCH_MONITOR in PID's environment (empty before exec).
monitor_of() { tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^ZRT_LAUNCH_MONITOR=//p' || true; }
# fake_mpirun DIR ARGS... : a monitored job of 2 ranks in the background
# ($job) whose "mpirun" is DIR/mpirun; returns once that runs: $mpirun, and
# the variable's $value, $addr, $port, $token.
fake_mpirun() {
    local dir=$1 n
    shift
    PATH="$dir:$PATH" "${MONITORED[@]}" "$@" >"$WORK/out" 2>&1 &
    job=$!
    for ((n = 0; n < 100; n++)); do
        mpirun=$(ps --ppid "$job" -o pid= | tr -d ' ' || true)
        value=$([ -z "$mpirun" ] || monitor_of "$mpirun")
        [ -z "$value" ] || break
        sleep 0.1
    done
    IFS=: read -r addr port token _ <<<"$value"
    [[ $token =~ ^[0-9a-f]{32}$ ]] || fail "ZRT_LAUNCH_MONITOR: no token in mpirun's environment"
}

# A wrapper killed (its connection closes without an exit status), and one
# stopped (silent): zero-launch names the rank, its host and its wrapper's
# pid, and ends the job.
start_monitored sleep 30
w=$(head -1 <<<"$wrappers" | tr -d ' ')
kill -KILL "$w"
ended "a killed wrapper"
says "a killed wrapper" "^zero-launch: $HERE \(its connection closed without an exit status\); wrapper pid $w; (ending|mpirun has ended) the job"
start_monitored --heartbeat-timeout 2 sleep 30
w=$(head -1 <<<"$wrappers" | tr -d ' ')
kill -STOP "$w"
ended "a stopped wrapper"
says "a stopped wrapper" "^zero-launch: $HERE \(no heartbeat for 2 s: the host or its link is down\); wrapper pid $w; ending the job"

# Hostile connections are dropped, each said, and the job goes on: a wrong
# token, a hello for a rank that has one, a malformed hello, a line too long,
# not a hello, no hello at all. The variable is read from mpirun's environment.
start_monitored --heartbeat-timeout 2 sleep 4
IFS=: read -r addr port token _ <<<"$(monitor_of "$mpirun")"
[[ $token =~ ^[0-9a-f]{32}$ ]] || fail "ZRT_LAUNCH_MONITOR: no token in mpirun's environment"
for line in "hello ${token//?/0} 0 x 1" "hello $token 0 x 1" "hello $token 9 x 1" \
    "$(head -c 400 /dev/zero | tr '\0' a)" "GET / HTTP/1.0" ""; do
    exec 3<>"/dev/tcp/$addr/$port"
    if [ -n "$line" ]; then echo "$line" >&3; else sleep 2.5; fi
    exec 3>&-
done
wait "$job" || { cat "$WORK/out"; fail "hostile connections: the job failed"; }
for why in "a wrong token" "a second hello for rank 0" "a malformed hello" \
    "a line of more than 319 bytes" "its first line is not 'hello" "no hello within 2 s"; do
    grep -qF "zero-launch: monitor: dropped a connection from 127.0.0.1: $why" "$WORK/out" ||
        { cat "$WORK/out"; fail "hostile connections: not said: $why"; }
done

# Ranks that never connect are named too, and an mpirun that ignores SIGTERM
# is killed: an "mpirun" that starts nothing and ignores SIGTERM.
mkdir "$WORK/fake"
printf '#!/bin/sh\ntrap "" TERM\nexec sleep 30\n' >"$WORK/fake/mpirun"
chmod +x "$WORK/fake/mpirun"
start=$SECONDS
if PATH="$WORK/fake:$PATH" "${MONITORED[@]}" --start-timeout 1 prog >"$WORK/out" 2>&1; then
    fail "never connected: zero-launch exited 0"
fi
((SECONDS - start <= 8)) || fail "never connected: the job took $((SECONDS - start)) s"
grep -Eq "^zero-launch: ranks 0, 1 did not connect to zero-launch \(127\.0\.0\.1:[0-9]+\) within 1 s of the start" \
    "$WORK/out" || { cat "$WORK/out"; fail "never connected: the ranks are not named"; }
grep -qxF "zero-launch: mpirun did not end within 3 s of SIGTERM; killed it (SIGKILL)" \
    "$WORK/out" || { cat "$WORK/out"; fail "never connected: mpirun was not killed"; }

# Wrappers get in past idle connections that fill every slot (2 ranks + 64):
# the oldest that has said no hello is dropped for each new one. "mpirun"
# starts nothing; the wrappers are started here. One signalled while it
# connects (the top level stopped: it waits for "ok") records the signal,
# starts nothing and tells its exit status: no rank is named lost.
mkdir "$WORK/idle"
printf '#!/bin/sh\nexec sleep 30\n' >"$WORK/idle/mpirun"
chmod +x "$WORK/idle/mpirun"
fake_mpirun "$WORK/idle" --start-timeout 30 prog
# shellcheck disable=SC2034 # fd: each connection stays open, unused
(for ((n = 0; n < 66; n++)); do exec {fd}<>"/dev/tcp/$addr/$port"; done
    touch "$WORK/idle/open"; exec sleep 30) &
holder=$!
for ((n = 0; n < 100; n++)); do [ -e "$WORK/idle/open" ] && break; sleep 0.1; done
wrapper() { ZRT_LAUNCH_MONITOR=$value OMPI_COMM_WORLD_RANK=$1 "$ZL" --rank-wrapper -- "${@:2}"; }
wrapper 0 /bin/echo ran >"$WORK/w0" 2>&1 || { cat "$WORK/w0"; fail "idle connections: the wrapper failed"; }
grep -qx ran "$WORK/w0" || fail "idle connections: the program did not run: $(cat "$WORK/w0")"
kill -STOP "$job"
ZRT_LAUNCH_MONITOR=$value OMPI_COMM_WORLD_RANK=1 "$ZL" --rank-wrapper -- \
    touch "$WORK/idle/started" >"$WORK/w1" 2>&1 &
w=$!
for ((n = 0; n < 100; n++)); do # connecting: its handlers are in place
    find "/proc/$w/fd" -lname 'socket:*' 2>/dev/null | grep -q . && break
    sleep 0.1
done
kill -TERM "$w"
kill -CONT "$job"
status=0
wait "$w" || status=$?
((status == 143)) && [ ! -e "$WORK/idle/started" ] &&
    grep -qxF "zero-launch: rank 1 (host $(hostname)): signal 15 (SIGTERM) from outside the rank (mpirun ending the job, or a user) before its program started; not starting it" \
        "$WORK/w1" || { cat "$WORK/w1"; fail "a wrapper signalled while connecting (status $status)"; }
kill "$mpirun" "$holder"
wait "$job" || true
grep -qF "zero-launch: monitor: dropped a connection from 127.0.0.1: no hello yet, and all 66 connections are open" \
    "$WORK/out" && ! grep -Eq "stopped answering|did not connect" "$WORK/out" ||
    { cat "$WORK/out"; fail "idle connections: not said, or a rank named"; }

# The address: with --net, the first of this host's on it that is not
# loopback (0.0.0.0/0 matches lo too); without, the default one, listened on
# alone. A fake mpirun notes the variable and the listening sockets.
mkdir "$WORK/rec"
printf '#!/bin/sh\nprintenv ZRT_LAUNCH_MONITOR >"$0.env"\nss -Hltn >"$0.ss" 2>&1\n' \
    >"$WORK/rec/mpirun"
chmod +x "$WORK/rec/mpirun"
mine=$(ip -4 -o addr show up 2>/dev/null | awk '{sub("/.*", "", $4); print $4}' || true)
PATH="$WORK/rec:$PATH" "$ZL" --allow-run-as-root -n 2 --launch-agent /bin/true \
    --net 0.0.0.0/0 prog >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "--net 0.0.0.0/0 failed"; }
addr=$(cut -d: -f1 "$WORK/rec/mpirun.env")
if grep -qv '^127\.' <<<"$mine"; then
    [[ $addr != 127.* ]] || fail "--net 0.0.0.0/0: the monitor gives the ranks $addr"
fi
PATH="$WORK/rec:$PATH" "$ZL" --allow-run-as-root -n 2 --launch-agent /bin/true prog \
    >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "a fake run without --net failed"; }
IFS=: read -r addr port _ <"$WORK/rec/mpirun.env"
if grep -qxF "$addr" <<<"$mine" && command -v ss >/dev/null; then
    grep -qF " $addr:$port " "$WORK/rec/mpirun.ss" ||
        fail "without --net: not listening on $addr:$port alone: $(cat "$WORK/rec/mpirun.ss")"
fi

# Open files: the monitor needs 2 ranks + 64 + 17; a soft limit below is
# raised (the ranks inherit it), a hard limit below is said. A limit lowered
# under it while the job runs fails ppoll, which ends the job.
if command -v prlimit >/dev/null; then
    if prlimit --nofile=40:40 "${MONITORED[@]}" /bin/true >"$WORK/out" 2>&1; then
        fail "a low hard open-file limit: accepted"
    fi
    grep -qxF "zero-launch: monitor: 2 ranks need 83 open files (one a rank, 64 spare, 17 of its own); ulimit -n is 40, and its hard limit (ulimit -Hn) 40: raise that to 83" \
        "$WORK/out" || fail "a low hard open-file limit: $(cat "$WORK/out")"
    prlimit --nofile=40:100 "${MONITORED[@]}" /bin/sh -c 'ulimit -n' >"$WORK/out" 2>&1 ||
        { cat "$WORK/out"; fail "a low soft open-file limit: the job failed"; }
    (($(grep -cx "\[[0-9]*,[01]\]<stdout>: \?83" "$WORK/out") == 2)) ||
        fail "a low soft open-file limit: not raised to 83: $(cat "$WORK/out")"
    start_monitored sleep 30
    prlimit --pid "$job" --nofile=20:20
    ended "a failing ppoll"
    says "a failing ppoll" "^zero-launch: monitor: ppoll: Invalid argument; ending the job, whose ranks can no longer be watched"
fi

# The top level stopped (silent): each wrapper stops its program.
start_monitored --heartbeat-timeout 2 sleep 30
kill -STOP "$job"
for ((n = 0; n < 100; n++)); do
    running "$programs" || break
    sleep 0.1
done
kill -CONT "$job"
ended "a stopped top level"
says "a stopped top level" "zero-launch: rank [01] \(host $(hostname), pid [0-9]+\): zero-launch at 127\.0\.0\.1:[0-9]+ did not answer for 2 s; stopping the program"
! grep -q "stopped answering" "$WORK/out" ||
    { cat "$WORK/out"; fail "a stopped top level: its ranks were said lost"; }
echo "PASS"
